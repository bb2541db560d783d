# Every target is a thin wrapper; settings come from the environment (see .env.example) and win over these defaults.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BACKEND ?= inprocess
PROFILE ?= default
# pip may put uv where PATH does not look (e.g. ~/.local/bin); `python3 -m uv` works wherever pip put it.
UV ?= $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
RUN := $(UV) run --frozen

.PHONY: help setup run api worker test lint format compare

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## Install uv if missing, then the locked workspace (idempotent)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

run: setup ## Start Redis, an SMTP sink, the API and BACKEND's workers; Ctrl-C stops them all
	@BACKEND=$(BACKEND) $(RUN) fbt-run

api: setup ## Start only the API against the configured REDIS_URL and SMTP
	@BACKEND=$(BACKEND) $(RUN) fbt-api

worker: setup ## Start only BACKEND's worker against the configured REDIS_URL and SMTP
	@test "$(BACKEND)" != inprocess || { echo "inprocess has no worker: tasks run inside the API"; exit 2; }
	@BACKEND=$(BACKEND) $(RUN) fbt-worker-$(BACKEND)

test: setup ## Run the whole test suite (real Redis, real SMTP sink, real workers)
	@$(RUN) pytest

lint: setup ## ruff check and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

format: setup ## Apply ruff's fixes and formatting
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

compare: setup ## Benchmark the four runners side by side (PROFILE=quick|default); writes results/latest/
	@$(RUN) fbt-bench compare --profile $(PROFILE)
