# For those who reach for make: each target is a thin call of the real
# command (docs/OPERATIONS.md explains them). `make help` lists them.
#
#   make up && make status STACK=compose
#   make run            # then, in another terminal: make status

.DEFAULT_GOAL := help
.PHONY: help up down logs status test bench load run

# `make status STACK=compose` points the commands at the compose stack's
# published ports; without it they find the local run (`make run`).
ifeq ($(STACK),compose)
STATUS_ENV := KAFKA_BOOTSTRAP_SERVERS=localhost:29092 DATABASE_URL=postgres://eventpipe:$${POSTGRES_PASSWORD:-eventpipe}@localhost:5432/eventpipe
endif
# `make load URL=...` drives another API; `make logs SERVICE=worker` follows one service.
URL ?= http://localhost:8080
SERVICE ?=

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-8s %s\n", $$1, $$2}'

up: ## start the compose stack (docker compose up -d --build)
	docker compose up -d --build

down: ## stop the compose stack (docker compose down)
	docker compose down

logs: ## follow the compose stack's logs (SERVICE=api for one)
	docker compose logs -f --tail=100 $(SERVICE)

status: ## eventpipe status: services, PostgreSQL, topics, lag, DLQ (STACK=compose for the stack)
	$(STATUS_ENV) cargo run --release -q -p eventpipe-local -- status

test: ## the test command (scripts/test)
	scripts/test

bench: ## the end-to-end benchmark (scripts/bench); the component ones: docs/BENCHMARKS.md
	scripts/bench

load: ## the realistic load scenario against URL (default the compose API)
	cargo run --release -q -p eventpipe-load -- load/scenarios/realistic.toml --url $(URL)

run: ## the whole pipeline locally, no Docker (cargo run --release)
	cargo run --release
