# Ingestion job image. Build: docker build -f ingestion.Dockerfile -t {{ cookiecutter.service_name }}-ingestion .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 app
WORKDIR /srv
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch
COPY pyproject.toml ./
COPY app ./app
COPY ingestion ./ingestion
COPY eval ./eval
RUN pip install .
COPY sources.json ./
COPY docs ./docs
COPY examples ./examples
# Git sources are cloned here: /srv is root-owned, the job runs as uid 10001.
ENV SOURCE_CACHE_DIR=/tmp/sources
USER 10001
# Shard from the Indexed Job's JOB_COMPLETION_INDEX; INGESTION_SHARDS = parallelism.
ENTRYPOINT ["python", "-m", "ingestion"]
