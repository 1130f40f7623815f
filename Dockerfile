# syntax=docker/dockerfile:1.7
# eventpipe's images, from one build of the workspace:
#   docker build --target api    -t eventpipe-api .      (also the `eventpipe` operations commands)
#   docker build --target worker -t eventpipe-worker .   (likewise)
#   docker build --target load   -t eventpipe-load .   (the load generator; compose's emitter)
# Dependencies stay compiled between builds in BuildKit cache mounts (the
# cargo registry and the target directory), so a source change rebuilds
# only the workspace's own crates; both images share the one build stage.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p eventpipe-api -p eventpipe-worker -p eventpipe-load -p eventpipe-local \
 && cp target/release/eventpipe-api target/release/eventpipe-worker target/release/eventpipe-load \
       target/release/eventpipe /usr/local/bin/

FROM debian:bookworm-slim AS runtime
# libssl3: librdkafka's TLS; curl: the health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home eventpipe
USER eventpipe

FROM runtime AS api
COPY --from=build /usr/local/bin/eventpipe-api /usr/local/bin/eventpipe-api
# The operations commands, for wherever they are given DATABASE_URL (compose
# runs them in the worker's container, which has it).
COPY --from=build /usr/local/bin/eventpipe /usr/local/bin/eventpipe
ENV API_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=6 \
    CMD curl -fsS http://127.0.0.1:8080/ready || exit 1
ENTRYPOINT ["eventpipe-api"]

FROM runtime AS worker
COPY --from=build /usr/local/bin/eventpipe-worker /usr/local/bin/eventpipe-worker
# The operations commands (`docker compose exec worker eventpipe status`).
COPY --from=build /usr/local/bin/eventpipe /usr/local/bin/eventpipe
ENV WORKER_ADDR=0.0.0.0:8081
EXPOSE 8081
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=6 \
    CMD curl -fsS http://127.0.0.1:8081/health || exit 1
ENTRYPOINT ["eventpipe-worker"]

FROM runtime AS load
COPY --from=build /usr/local/bin/eventpipe-load /usr/local/bin/eventpipe-load
COPY load/scenarios /usr/local/share/eventpipe/scenarios
ENTRYPOINT ["eventpipe-load"]
