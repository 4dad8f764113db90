# syntax=docker/dockerfile:1
# mailport's image: `mailport serve` (API + web wizard) by default, `mailport worker` as the
# alternative command. Build:  docker build -t mailport .   (docs/production.md)
# No secret is baked in: MAILPORT_SECRET_KEYS, MAILPORT_ADMIN_KEY and MAILPORT_DATABASE_URL come
# from the environment at run time (deploy/compose.yaml, deploy/k8s/secret.yaml).

ARG PYTHON_VERSION=3.12

# --- stage 1: build the wheel ---------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m build --wheel --outdir /dist

# --- stage 2: the slim runtime ----------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MAILPORT_HOST=0.0.0.0 \
    MAILPORT_PORT=8025 \
    MAILPORT_DATA_DIR=/var/lib/mailport
RUN groupadd --system --gid 10001 mailport \
    && useradd --system --uid 10001 --gid mailport --home-dir /var/lib/mailport --shell /usr/sbin/nologin mailport \
    && install -d -o mailport -g mailport -m 0700 /var/lib/mailport
COPY --from=build /dist/*.whl /tmp/
RUN python -m pip install --no-cache-dir /tmp/*.whl && rm -f /tmp/*.whl
USER 10001:10001
WORKDIR /var/lib/mailport
# The embedded SQLite database and its generated key live here when no MAILPORT_DATABASE_URL is
# set (one container); with PostgreSQL nothing needs to persist in the container.
VOLUME ["/var/lib/mailport"]
# 8025: `serve` (MAILPORT_PORT). 8026: a `worker`'s /healthz /readyz /metrics when
# MAILPORT_WORKER_PORT=8026 is set (deploy/compose.yaml and deploy/k8s/worker.yaml set it).
EXPOSE 8025 8026
# /healthz of `serve` (liveness). For a worker, compose and Kubernetes replace this check with
# one on its own port (deploy/compose.yaml, deploy/k8s/worker.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MAILPORT_PORT', '8025') + '/healthz', timeout=4)"]
ENTRYPOINT ["mailport"]
CMD ["serve"]
