#!/usr/bin/env bash
# vLLM's own source files (its argument definitions, quantization methods), fetched
# verbatim from its PyPI sdist into build/vllm-source/ and checked against the manifest
# in tests/fixtures/: the serving tests hold the generated vLLM arguments against them.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=0.10.1.1
[ -f "build/vllm-source/vllm-$VERSION/vllm/engine/arg_utils.py" ] && exit 0
.venv/bin/python scripts/vendor_vllm_source.py "$VERSION"
