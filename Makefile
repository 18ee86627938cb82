# orderflow — the commands users and CI run. `make up` and `make test` are the README's two commands.
SHELL := /bin/bash
.DEFAULT_GOAL := help
KAFKA := infra/kafka/kafka.sh
REDIS := infra/redis.sh
CLI := node services/cli/orderflow.mjs
# `make up TRACING=1` also runs Jaeger and has every service export its spans to it.
TRACING ?= 0
TRACING_ENV := $(if $(filter 1,$(TRACING)),OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_TRACES_SAMPLER=parentbased_always_on,)

.PHONY: help setup up down status demo test test-unit chaos bench lint gen check-gen breaking compose-check ci

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## install OS packages and npm dependencies
	@bash infra/setup.sh

up: setup ## start Kafka, Redis, topics, catalog, the mail sink and all services in the background (TRACING=1: and Jaeger); returns when ready
	@$(if $(filter 1,$(TRACING)),bash infra/jaeger.sh start)
	@bash $(KAFKA) start single
	@bash $(REDIS) start
	@$(CLI) topics apply
	@$(CLI) stock seed
	@$(TRACING_ENV) bash infra/services.sh start
	@echo "orderflow is up: API http://127.0.0.1:8080 · admin http://127.0.0.1:8081 (dashboard /dashboard) · Kafka $$(bash $(KAFKA) bootstrap single) · Redis 127.0.0.1:$${REDIS_PORT:-6379} · mail http://127.0.0.1:8025/messages"

down: ## stop everything `make up` started
	@bash infra/services.sh stop
	@bash $(KAFKA) stop all
	@bash $(REDIS) stop
	@bash infra/jaeger.sh stop

demo: ## run the seed's three scenarios against the running system (after make up)
	@$(CLI) demo

status: ## what is running
	@bash infra/services.sh status || true
	@bash $(KAFKA) status || true
	@bash $(REDIS) status || true
	@bash infra/jaeger.sh status || true

test: setup ## the whole suite (unit + integration on the real broker and Redis) with coverage
	@npx vitest run --coverage

chaos: setup ## the whole fault-injection suite (every fault, 20,000+ orders at 20/s, 1,000 poison records per topic, 10,000 hostile requests; ~40 min); report in docs/reports/chaos.md
	@npx tsx test/chaos/main.ts $(CHAOS_ARGS)

bench: setup ## the saga against the bare pipeline (three ramps, 100 orders/s for 60 s), a backlog relay against Kafka Streams, CPU, memory, record operations, broker request rates, profiles (~30 min; needs a JDK and Maven); report in bench/results/
	@npx tsx test/load/bench.ts $(BENCH_ARGS)

test-unit: ## unit tests only, no broker needed
	@npx vitest run --project unit

gen: ## regenerate gen/ and API_SPEC.md from proto/
	@npx tsx infra/buf/validate-proto.ts
	@npx buf generate
	@npx tsx infra/api-spec.ts --write

check-gen: gen ## fail when gen/ or API_SPEC.md differ from what proto/ generates
	@git diff --exit-code --stat -- gen API_SPEC.md || (echo "gen/ or API_SPEC.md is stale: run make gen and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- gen)" || (echo "untracked files in gen/: run make gen and commit" >&2; exit 1)

lint: ## type-check, eslint, buf lint
	@npx tsx infra/buf/validate-proto.ts
	@npx tsc -p tsconfig.json
	@npx eslint .
	@npx buf lint

breaking: ## buf breaking against the previous commit
	@npx tsx infra/buf/validate-proto.ts
	@bash infra/buf/breaking.sh

compose-check: ## validate infra/docker-compose.yml (no engine needed)
	@docker-compose -f infra/docker-compose.yml config >/dev/null && echo "compose: infra/docker-compose.yml is valid"
	@bash $(KAFKA) check-pins

ci: setup lint check-gen breaking compose-check test ## what .ci/run runs
