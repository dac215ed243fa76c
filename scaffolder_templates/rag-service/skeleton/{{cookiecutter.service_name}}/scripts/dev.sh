#!/usr/bin/env bash
# Local stack without GPU or cluster: SmolLM2 on CPU through llama.cpp's
# OpenAI-compatible server, Qdrant in local mode, sources.json ingested, the API on
# http://127.0.0.1:8000 (API_PORT, LLM_PORT to change). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
LLM_PORT="${LLM_PORT:-8080}"
MODEL_PATH="${LOCAL_GGUF:-$("$PY" -c 'import app.local_models as m; print(m.smollm2_gguf())')}"

# llama.cpp's server (app/llm_server.py: AMX-safe) also reads PORT/HOST from the
# environment: keep them out of it.
env -u PORT -u HOST "$PY" -m app.llm_server --model "$MODEL_PATH" --model_alias smollm2 \
  --host 127.0.0.1 --port "$LLM_PORT" \
  --n_ctx 4096 >.llama-server.log 2>&1 &
LLM_PID=$!
trap 'kill $LLM_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$LLM_PORT/v1/models" >/dev/null && break
  sleep 0.5
done

export LLM_BASE_URL="http://127.0.0.1:$LLM_PORT/v1" LLM_MODEL=smollm2 FALLBACK_LLM_BASE_URL=""
"$PY" -m ingestion
"$PY" -m uvicorn app.main:app --host 127.0.0.1 --port "${API_PORT:-8000}"
