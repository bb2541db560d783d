# syntax=docker/dockerfile:1
#
# Three images from one locked workspace (uv.lock), each a venv copied into a slim runtime:
#   app         fbt-api + all four runners. Every API and worker service runs it with its own command.
#               One image, not one per runner: the runners add little on top of what they all share
#               (venvs from the same uv sync: fbt-tasks alone 33 MB; fbt-tasks with the API 45 MB, with
#               Celery 45 MB, with RQ 36 MB, with Dramatiq 34 MB; everything 57 MB), so four images would
#               hold ~190 MB of mostly identical venvs to save at most ~12 MB per container, and the APIs
#               must be one image anyway. One build, one tag, the same bytes in every container.
#   bench       fbt-benchmarks + the runners for `fbt-bench compare` (~190 MB: matplotlib, numpy),
#               kept out of `app`.
#   monitoring  `app` + Flower and rq-dashboard, pinned below and constrained to the locked Celery/RQ.
#
# Build from the repo root: `docker compose build`, or `docker build --target app .`.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build-base
COPY --from=uv /uv /usr/local/bin/uv
# Bytecode compiled at build time (faster start); copy, not hardlink, since the cache is a separate mount;
# never download a Python: the venv must use this image's interpreter, which the runtime image shares.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# The lock and every member's metadata first: the dependency layer below is rebuilt only when they change.
COPY pyproject.toml uv.lock ./
COPY packages/tasks/pyproject.toml packages/tasks/
COPY packages/api/pyproject.toml packages/api/
COPY packages/devstack/pyproject.toml packages/devstack/
COPY inprocess/pyproject.toml inprocess/
COPY celery_worker/pyproject.toml celery_worker/
COPY rq_worker/pyproject.toml rq_worker/
COPY dramatiq_worker/pyproject.toml dramatiq_worker/
COPY inprocess_async/pyproject.toml inprocess_async/
COPY taskiq_worker/pyproject.toml taskiq_worker/
COPY arq_worker/pyproject.toml arq_worker/
COPY saq_worker/pyproject.toml saq_worker/
COPY benchmarks/pyproject.toml benchmarks/

# ---------------------------------------------------------------------------------------------------------
FROM build-base AS app-build
# --frozen: exactly uv.lock, never re-resolved; --no-dev: no test tools; --no-editable: the members are
# installed into the venv, so the runtime image needs the venv and nothing of /src.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --no-install-workspace \
        --package fbt-api --package fbt-inprocess --package fbt-celery --package fbt-rq --package fbt-dramatiq \
        --package fbt-inprocess-async --package fbt-taskiq --package fbt-arq --package fbt-saq
COPY packages/tasks/ packages/tasks/
COPY packages/api/ packages/api/
COPY inprocess/ inprocess/
COPY celery_worker/ celery_worker/
COPY rq_worker/ rq_worker/
COPY dramatiq_worker/ dramatiq_worker/
COPY inprocess_async/ inprocess_async/
COPY taskiq_worker/ taskiq_worker/
COPY arq_worker/ arq_worker/
COPY saq_worker/ saq_worker/
# --reinstall-package for every member: uv keys its cache of a built member on pyproject.toml only, so with
# a cache mount a source-only change would otherwise install the previous build's wheel.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        --package fbt-api --package fbt-inprocess --package fbt-celery --package fbt-rq --package fbt-dramatiq \
        --package fbt-inprocess-async --package fbt-taskiq --package fbt-arq --package fbt-saq \
        --reinstall-package fbt-tasks --reinstall-package fbt-api --reinstall-package fbt-inprocess \
        --reinstall-package fbt-celery --reinstall-package fbt-rq --reinstall-package fbt-dramatiq \
        --reinstall-package fbt-inprocess-async --reinstall-package fbt-taskiq \
        --reinstall-package fbt-arq --reinstall-package fbt-saq

# ---------------------------------------------------------------------------------------------------------
FROM build-base AS bench-build
# The runners too: the harness describes each runner through its backend (fbt.backends entry points).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --no-install-workspace \
        --package fbt-benchmarks --package fbt-inprocess --package fbt-celery --package fbt-rq --package fbt-dramatiq \
        --package fbt-inprocess-async --package fbt-taskiq --package fbt-arq --package fbt-saq
COPY packages/tasks/ packages/tasks/
COPY packages/devstack/ packages/devstack/
COPY packages/api/ packages/api/
COPY inprocess/ inprocess/
COPY celery_worker/ celery_worker/
COPY rq_worker/ rq_worker/
COPY dramatiq_worker/ dramatiq_worker/
COPY inprocess_async/ inprocess_async/
COPY taskiq_worker/ taskiq_worker/
COPY arq_worker/ arq_worker/
COPY saq_worker/ saq_worker/
COPY benchmarks/ benchmarks/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        --package fbt-benchmarks --package fbt-inprocess --package fbt-celery --package fbt-rq --package fbt-dramatiq \
        --package fbt-inprocess-async --package fbt-taskiq --package fbt-arq --package fbt-saq \
        --reinstall-package fbt-tasks --reinstall-package fbt-devstack --reinstall-package fbt-api \
        --reinstall-package fbt-benchmarks --reinstall-package fbt-inprocess --reinstall-package fbt-celery --reinstall-package fbt-rq \
        --reinstall-package fbt-dramatiq --reinstall-package fbt-inprocess-async \
        --reinstall-package fbt-taskiq --reinstall-package fbt-arq --reinstall-package fbt-saq

# ---------------------------------------------------------------------------------------------------------
FROM app-build AS monitoring-build
# Not workspace dependencies (nothing in the comparison imports them), so pinned here. The locked versions of
# everything already in the venv are passed as constraints: Flower must run the workers' Celery 5.7 and
# rq-dashboard RQ 3.0 (a new major), and a pin that needs anything else fails the build instead of
# silently swapping the library it monitors. Both checked against celery 5.7.0 / rq 3.0.0 with JSON jobs.
ARG FLOWER_VERSION=2.2.0
ARG RQ_DASHBOARD_VERSION=0.9.0
RUN --mount=type=cache,target=/root/.cache/uv \
    uv export --frozen --no-dev --no-hashes --no-emit-workspace --output-file /tmp/locked.txt \
        --package fbt-api --package fbt-inprocess --package fbt-celery --package fbt-rq --package fbt-dramatiq \
        --package fbt-inprocess-async --package fbt-taskiq --package fbt-arq --package fbt-saq \
    && uv pip install --python /app/.venv/bin/python --constraint /tmp/locked.txt \
        "flower==${FLOWER_VERSION}" "rq-dashboard==${RQ_DASHBOARD_VERSION}"

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# A fixed non-root uid/gid; compose passes the same numbers to `user:` (set both to `id -u`/`id -g` on a
# Linux host so the bench can write ./results). var/ and results/ exist and are owned by it, so a fresh
# named volume mounted there starts out writable.
ARG APP_UID=10001
ARG APP_GID=10001
RUN groupadd --system --gid "${APP_GID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app/var /app/results \
    && chown "${APP_UID}:${APP_GID}" /app/var /app/results
# Logs straight to `docker compose logs`; nothing writes .pyc next to the read-only venv at run time.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Relative defaults (var/ledger.jsonl, results/) resolve here, as they do from the repo root on a host.
WORKDIR /app
USER ${APP_UID}:${APP_GID}

# ---------------------------------------------------------------------------------------------------------
FROM runtime AS bench
COPY --from=bench-build /app/.venv /app/.venv
# matplotlib's cache; its default under $HOME is not writable for the app user.
ENV MPLCONFIGDIR=/tmp/matplotlib
CMD ["fbt-bench", "compare"]

# ---------------------------------------------------------------------------------------------------------
FROM runtime AS monitoring
COPY --from=monitoring-build /app/.venv /app/.venv
EXPOSE 5555 9181
CMD ["celery", "-A", "fbt_celery.app", "flower"]

# ---------------------------------------------------------------------------------------------------------
# Last, so a plain `docker build .` gives the app image.
FROM runtime AS app
COPY --from=app-build /app/.venv /app/.venv
EXPOSE 8000
CMD ["fbt-api"]
