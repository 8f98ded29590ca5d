# syntax=docker/dockerfile:1
#
# One image per service, all from this file:
#
#   docker build --target api            -t switchboard/api .
#   docker build --target dialer         -t switchboard/dialer .
#   docker build --target webhook-ingest -t switchboard/webhook-ingest .
#   docker build --target notifier       -t switchboard/notifier .
#   docker build --target provider-sim   -t switchboard/provider-sim .
#   docker build --target all            -t switchboard/all .   # `switchboard` CLI + every service
#
# Each builder stage installs one workspace member and its locked dependencies (uv.lock,
# no dev group) into /app/.venv; the final stage copies only that venv onto a slim Python
# with no build tools, runs as a non-root user and answers the HEALTHCHECK on /healthz.
# See docs/operations.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- builder: the workspace manifests, so dependency layers are cached across code edits ---
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_FROZEN=1 \
    UV_NO_DEV=1
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/api/pyproject.toml services/api/
COPY services/dialer/pyproject.toml services/dialer/
COPY services/webhook-ingest/pyproject.toml services/webhook-ingest/
COPY services/notifier/pyproject.toml services/notifier/
COPY services/provider-sim/pyproject.toml services/provider-sim/

FROM builder AS build-api
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-install-workspace --package switchboard-api
COPY shared/src shared/src
COPY services/api/src services/api/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-editable --package switchboard-api

FROM builder AS build-dialer
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-install-workspace --package switchboard-dialer
COPY shared/src shared/src
COPY services/dialer/src services/dialer/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-editable --package switchboard-dialer

FROM builder AS build-webhook-ingest
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-install-workspace --package switchboard-webhook-ingest
COPY shared/src shared/src
COPY services/webhook-ingest/src services/webhook-ingest/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-editable --package switchboard-webhook-ingest

FROM builder AS build-notifier
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-install-workspace --package switchboard-notifier
COPY shared/src shared/src
COPY services/notifier/src services/notifier/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-editable --package switchboard-notifier

FROM builder AS build-media-edge
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-install-workspace --package switchboard-media-edge
COPY shared/src shared/src
COPY services/media-edge/src services/media-edge/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-editable --package switchboard-media-edge

FROM builder AS build-provider-sim
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-install-workspace --package switchboard-provider-sim
COPY shared/src shared/src
COPY services/provider-sim/src services/provider-sim/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-editable --package switchboard-provider-sim

FROM builder AS build-all
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-install-workspace --package switchboard
COPY README.md ./
COPY shared/src shared/src
COPY services services
COPY src src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-editable --package switchboard

# --- runtime: what every service image shares ---------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric id so Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin switchboard
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_PORT=8000
WORKDIR /app
EXPOSE 8000
# No curl in slim images: ask /healthz with the interpreter that is there anyway.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SWITCHBOARD_PORT', '8000'), timeout=2)"]
USER 10001:10001

# --- final images (exec form, so SIGTERM reaches Python as PID 1 and it drains) -------------
FROM runtime AS api
COPY --from=build-api /app/.venv /app/.venv
ENTRYPOINT ["python", "-m", "switchboard_api"]

FROM runtime AS dialer
COPY --from=build-dialer /app/.venv /app/.venv
ENTRYPOINT ["python", "-m", "switchboard_dialer"]

FROM runtime AS webhook-ingest
COPY --from=build-webhook-ingest /app/.venv /app/.venv
ENTRYPOINT ["python", "-m", "switchboard_ingest"]

FROM runtime AS notifier
COPY --from=build-notifier /app/.venv /app/.venv
ENTRYPOINT ["python", "-m", "switchboard_notifier"]

FROM runtime AS media-edge
COPY --from=build-media-edge /app/.venv /app/.venv
ENTRYPOINT ["python", "-m", "switchboard_media_edge"]

FROM runtime AS provider-sim
COPY --from=build-provider-sim /app/.venv /app/.venv
ENTRYPOINT ["python", "-m", "switchboard_provider_sim"]

# The operator CLI and every service in one image: `switchboard run all` (embedded mode,
# SQLite under /data), any single service, or `switchboard tenants|keys|agents …`.
FROM runtime AS all
USER root
RUN mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
ENV SWITCHBOARD_DATA_DIR=/data
VOLUME ["/data"]
COPY --from=build-all /app/.venv /app/.venv
COPY deploy/agents.example.yaml /app/deploy/agents.example.yaml
ENTRYPOINT ["switchboard"]
CMD ["run", "all"]
