# Product Importer image: `docker build -t product-importer .`
# The same image runs the web processes (default command) and the workers (`worker ...`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: wheels of the project and of its pinned dependencies (all have binary wheels,
# so no compiler is needed here either).
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# Final stage: the wheels installed into a venv; no build tools, no pip cache, no sources.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PRODUCT_IMPORTER_HOME=/data
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels product-importer \
    && groupadd --system --gid 10001 product-importer \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin product-importer \
    && mkdir /data && chown 10001:10001 /data
# Embedded mode keeps its SQLite file, uploads and generated secret here; in distributed mode
# everything lives in PostgreSQL and this stays almost empty.
VOLUME /data
WORKDIR /data
# A numeric user, so orchestrators can check it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
# No curl in a slim image: the standard library asks /healthz (503 when the database is down).
# Workers serve no HTTP: compose.yaml gives them a Celery ping instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["product-importer"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
