# For those who reach for make: each target is a thin call of the real
# command (docs/OPERATIONS.md explains them). `make help` lists them.
#
#   make up && make status STACK=compose
#   make run            # then, in another terminal: make status

.DEFAULT_GOAL := help
.PHONY: help up down clean logs status db-stats topics dlq test bench load run

# The operations commands and the load generator, built from this checkout
# unless given (the tests give the binaries they built).
EVENTPIPE ?= cargo run --release -q -p eventpipe-local --
LOAD ?= cargo run --release -q -p eventpipe-load --

# `make status STACK=compose` runs the commands in the stack's worker
# container, whose image ships them; without it they find the local run
# (`make run`). `make load` audits in the database of either.
ifeq ($(STACK),compose)
OPS := docker compose exec worker eventpipe
AUDIT_DATABASE_URL ?= postgres://eventpipe:$${POSTGRES_PASSWORD:-eventpipe}@localhost:5432/eventpipe
else
OPS := $(EVENTPIPE)
AUDIT_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/eventpipe
endif
# `make load URL=...` drives another API (LOAD_FLAGS: more eventpipe-load
# flags, e.g. --duration 10s); `make logs SERVICE=worker` follows one
# service; `make dlq ARGS="redrive --reason not_json"` runs a DLQ command.
URL ?= http://localhost:8080
LOAD_FLAGS ?=
SERVICE ?=
ARGS ?= list

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-9s %s\n", $$1, $$2}'

up: ## start the compose stack (docker compose up -d --build)
	docker compose up -d --build

down: ## stop the compose stack (docker compose down)
	docker compose down

clean: ## stop the compose stack and delete its data (docker compose down -v)
	docker compose down -v

logs: ## follow the compose stack's logs (SERVICE=api for one)
	docker compose logs -f --tail=100 $(SERVICE)

status: ## eventpipe status: services, PostgreSQL, topics, lag, DLQ (STACK=compose for the stack)
	$(OPS) status

db-stats: ## eventpipe db-stats: rows and size of each table and partition
	$(OPS) db-stats

topics: ## eventpipe topics: the cluster's topics and messages held
	$(OPS) topics

dlq: ## eventpipe dlq list (ARGS="redrive --reason R" for the rest)
	$(OPS) dlq $(ARGS)

test: ## the test command (scripts/test)
	scripts/test

bench: ## the end-to-end benchmark (scripts/bench); the component ones: docs/BENCHMARKS.md
	scripts/bench

load: ## the realistic load scenario against URL, audited in AUDIT_DATABASE_URL
	$(LOAD) --scenario load/scenarios/realistic.toml --url $(URL) --audit-database-url $(AUDIT_DATABASE_URL) $(LOAD_FLAGS)

run: ## the whole pipeline locally, no Docker (cargo run --release)
	$(EVENTPIPE)
