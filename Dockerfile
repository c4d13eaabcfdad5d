# syntax=docker/dockerfile:1
# AgentFlow: one image for the web server, the run workers and the scheduler (deploy/README.md).
#
#   docker build -t agentflow .
#   docker run agentflow                                          # web: 2 uvicorn processes on :8000
#   docker run agentflow python manage.py runworker               # a run worker
#   docker run agentflow python manage.py qcluster                # schedules, webhooks, sweeps
#
# Configuration comes from the environment at run time (README "Configuration"); nothing secret
# is baked in. Production pins the base image by digest as well:
#   docker buildx imagetools inspect python:3.13-slim-bookworm   (then FROM python:…@sha256:…)

# --- builder: the locked dependencies, every file checked against its hash ------------------------
FROM python:3.13-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# --require-hashes: a file whose hash is not in the lock stops the build; --only-binary: wheels
# only, so the builder needs no compiler and builds exactly what `make run` installs.
RUN /opt/venv/bin/python -m pip install --require-hashes --no-deps --only-binary=:all: \
        -r /tmp/requirements.lock \
    && /opt/venv/bin/python -m pip uninstall -y pip

# --- runtime ----------------------------------------------------------------------------------------
FROM python:3.13-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=agentflow_site.settings \
    AGENTFLOW_DATA_DIR=/var/lib/agentflow \
    PROMETHEUS_MULTIPROC_DIR=/var/lib/agentflow/metrics \
    LOG_FORMAT=json

# An unprivileged user with a fixed uid/gid, so volumes and host directories can be chowned to it.
# The data directory's subdirectories are the volumes' mount points (compose.yaml): media (files
# runs produce), sqlite (tenants' sqlite sources) and metrics (the host's Prometheus samples).
# static/ stays in the image, so an upgrade always serves its own collected files.
RUN groupadd --system --gid 10001 agentflow \
    && useradd --system --uid 10001 --gid agentflow --home-dir /app --shell /usr/sbin/nologin agentflow \
    && mkdir -p /var/lib/agentflow/media /var/lib/agentflow/sqlite /var/lib/agentflow/metrics \
    && chown -R agentflow:agentflow /var/lib/agentflow

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY manage.py ./
COPY agentflow_site ./agentflow_site
COPY runtime ./runtime
COPY tenants ./tenants
COPY workflows ./workflows
COPY sources ./sources
COPY executions ./executions
COPY schedules ./schedules

# Static files, collected with DEBUG off (whitenoise's manifest storage, as production serves
# them). Settings refuse DEBUG=false without a 50+ character key: this one exists only for this
# command, is random on every build, and is not kept in any layer's environment.
RUN DEBUG=false \
    DJANGO_SECRET_KEY="collectstatic-only-$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q -j 0 /app

USER 10001:10001
EXPOSE 8000
# Liveness only (no database): /health/ready and /health are for the proxy and for people.
# ALLOWED_HOSTS must include 127.0.0.1 for it (compose.yaml adds it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "agentflow_site.serving", "--host", "0.0.0.0", "--port", "8000", "--processes", "2"]
