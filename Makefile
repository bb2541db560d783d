# Every target is a thin wrapper; settings come from the environment (see .env.example) and win over these defaults.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BACKEND ?= inprocess
# Empty: the runner's default broker (Redis; none for inprocess). rabbitmq for Celery or Dramatiq on RabbitMQ.
BROKER ?=
PROFILE ?= default
# pip may put uv where PATH does not look (e.g. ~/.local/bin); `python3 -m uv` works wherever pip put it.
UV ?= $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
RUN := $(UV) run --frozen

.PHONY: help setup run api worker test test-slow lint format compare faults report

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## Install uv if missing, then the locked workspace (idempotent)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --all-packages --quiet

run: setup ## Start Redis (and RabbitMQ if BROKER=rabbitmq), an SMTP sink, the API and BACKEND's workers; Ctrl-C stops them all
	@BACKEND=$(BACKEND) $(if $(BROKER),BROKER=$(BROKER)) $(RUN) fbt-run

api: setup ## Start only the API against the configured REDIS_URL and SMTP
	@BACKEND=$(BACKEND) $(if $(BROKER),BROKER=$(BROKER)) $(RUN) fbt-api

worker: setup ## Start only BACKEND's worker against the configured REDIS_URL and SMTP (exit 2 if it has none)
	@BACKEND=$(BACKEND) $(if $(BROKER),BROKER=$(BROKER)) $(RUN) fbt-worker

test: setup ## Run the whole test suite (real Redis, real SMTP sink, real workers)
	@$(RUN) pytest

test-slow: setup ## The slow end-to-end tests (fault and kill cells, the harness over every runner): CI's second step
	@FBT_SLOW=1 $(RUN) pytest -m slow

lint: setup ## ruff check, format check and mypy (every member's src; config in pyproject.toml)
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy

format: setup ## Apply ruff's fixes and formatting
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

compare: setup ## Benchmark every installed runner on every broker it supports (PROFILE=quick|default|full; network: broker RTT 0/1/5 ms across namespaces, needs root; scaling: drain and email-io at 1-32 slots per runner); writes results/latest/
	@$(RUN) fbt-bench compare --profile $(PROFILE)

faults: setup ## Kill, deploy, restart/crash/fill the broker, cut and slow its link (root), delay, poison, fail tasks: every runner x broker x queue config, 3 trials, progress with time left; writes results/faults/
	@$(RUN) fbt-bench faults

RESULTS ?= results/latest
report: setup ## Re-render report.md and report.html of RESULTS (default results/latest); FAULTS=results/faults/latest puts a `make faults` run in place of its short fault pass
	@$(RUN) python -m fbt_bench.report $(RESULTS) $(if $(FAULTS),--faults $(FAULTS))

# --- docker compose: the whole comparison as one stack (docs/deploy.md) ---
COMPOSE ?= docker compose

.PHONY: up down logs

up: ## docker compose: build and start the stack, wait until healthy (needs API_KEY in .env)
	@test -f .env || { echo "no .env: cp .env.example .env and set API_KEY (docs/deploy.md)"; exit 2; }
	@$(COMPOSE) up --build --detach --wait
	@$(COMPOSE) ps

down: ## docker compose: stop and remove the stack's containers (volumes are kept)
	@$(COMPOSE) down

logs: ## docker compose: follow the stack's logs
	@$(COMPOSE) logs --follow --tail=100
