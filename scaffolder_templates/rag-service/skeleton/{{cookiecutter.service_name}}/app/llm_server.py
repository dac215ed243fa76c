"""llama.cpp's OpenAI-compatible server for local runs: `python -m app.llm_server`
takes the same arguments as `python -m llama_cpp.server`.

The one difference: ggml's extra CPU buffer types are off. On a CPU that reports AMX
(recent Xeons), llama-cpp-python built for that CPU dies on the first completion (a
general protection fault in ggml's AMX path) after it has answered /v1/models, so the
server looks up while every question fails. The plain CPU kernels serve the small
local models (SmolLM2) as fast.
"""

from __future__ import annotations

from typing import Any

import llama_cpp.llama_cpp as llama_lib

_default_model_params = llama_lib.llama_model_default_params


def _model_params() -> Any:
    params = _default_model_params()
    params.use_extra_bufts = False
    return params


def main() -> None:
    llama_lib.llama_model_default_params = _model_params
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
