"""Serve the model with vLLM on a GPU machine, outside Kubernetes (`make serve-llm`).

The arguments are serving/vllm-args.json: the very list the Kubernetes Deployment
passes to vLLM, so what you try here is what the cluster runs. Environment overrides
for trying things out:

- ``VLLM_MODEL``: another model (a Hugging Face id or a local path) in place of
  ``--model``, e.g. a small model to check the setup; the quantization and LoRA
  arguments, which belong to the real model, are then left out;
- ``VLLM_MAX_MODEL_LEN``: another ``--max-model-len`` (a small model's context is shorter);
- ``VLLM_PORT``: another port (default 8000);
- ``VLLM_EXTRA_ARGS``: more arguments, space-separated.

Point the RAG API at it with ``LLM_BASE_URL=http://localhost:8000/v1``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

ARGS_FILE = Path(__file__).with_name("vllm-args.json")


# Arguments tied to the configured checkpoint, dropped when VLLM_MODEL swaps it:
# flag -> how many values follow it (-1: all values up to the next flag).
_MODEL_SPECIFIC = {
    "--quantization": 1,
    "--enable-lora": 0,
    "--max-loras": 1,
    "--max-lora-rank": 1,
    "--lora-modules": -1,
}


def _without(args: list[str], flags: dict[str, int]) -> list[str]:
    kept: list[str] = []
    index = 0
    while index < len(args):
        flag = args[index]
        if flag not in flags:
            kept.append(flag)
            index += 1
            continue
        count = flags[flag]
        index += 1
        if count < 0:
            while index < len(args) and not args[index].startswith("--"):
                index += 1
        else:
            index += count
    return kept


def vllm_args(environ: dict[str, str]) -> list[str]:
    args: list[str] = json.loads(ARGS_FILE.read_text())
    if environ.get("VLLM_MODEL"):
        args = _without(args, _MODEL_SPECIFIC)
    overrides = {
        "--model": environ.get("VLLM_MODEL"),
        "--port": environ.get("VLLM_PORT"),
        "--max-model-len": environ.get("VLLM_MAX_MODEL_LEN"),
    }
    for flag, value in overrides.items():
        if value:
            args[args.index(flag) + 1] = value
    return args + shlex.split(environ.get("VLLM_EXTRA_ARGS", ""))


def main() -> int:
    args = vllm_args(dict(os.environ))
    if shutil.which("vllm") is None:
        print(
            "vllm is not installed: `pip install -e '.[gpu]'` on a machine with an NVIDIA GPU",
            file=sys.stderr,
        )
        return 2
    print("vllm serve " + " ".join(shlex.quote(a) for a in args), flush=True)
    os.execvp("vllm", ["vllm", "serve", *args])
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    raise SystemExit(main())
