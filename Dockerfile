# The segmenter streaming worker. Used by docker-compose.yml; also runs alone:
#   docker build -t segmenter . && docker run -e SEGMENTER_BOOTSTRAP_SERVERS=host:9092 segmenter
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
RUN pip install .
# The rest (rule files, ...); .dockerignore keeps local clutter out.
COPY . .

# The worker keeps its local state (RocksDB) under its working directory.
RUN useradd --create-home --uid 10001 segmenter && chown segmenter /app
USER segmenter

ENTRYPOINT ["segmenter", "worker"]
