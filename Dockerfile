# syntax=docker/dockerfile:1
# Multi-stage build: dependencies in a virtualenv, copied into a slim runtime as a non-root user.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU-only torch first: the default index would bring a multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /build
COPY pyproject.toml README.md ./
COPY app ./app
# The project itself, with the ranges of pyproject.toml (torch is already satisfied).
# hadolint ignore=DL3013
RUN pip install '.[local]'

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    DATABASE_URL=sqlite+aiosqlite:////data/chatbot.db \
    FORWARDED_ALLOW_IPS=127.0.0.1 \
    HF_HOME=/tmp/hf
RUN groupadd --gid 10001 chatbot \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin chatbot \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY alembic.ini ./
COPY migrations ./migrations
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# Migrations, then uvicorn trusting X-Forwarded-* from the reverse proxy at FORWARDED_ALLOW_IPS,
# without advertising itself in a `server` header. A path prefix comes from ROOT_PATH.
CMD ["sh", "-c", "alembic upgrade head && exec uvicorn app.main:app --host 0.0.0.0 --port 8000 --proxy-headers --forwarded-allow-ips \"$FORWARDED_ALLOW_IPS\" --no-server-header"]
