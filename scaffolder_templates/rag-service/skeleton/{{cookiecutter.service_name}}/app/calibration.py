"""The relevance threshold under which the API refuses ("I don't know") without calling
the LLM: a property of the embedding model (its cosine scores live in a model-specific
range) and of the ranking.

Where it comes from, first match wins:
1. RELEVANCE_THRESHOLD in the environment (or .env);
2. CALIBRATION_FILE (app/calibration.json), written by `python -m eval --calibrate` on
   the team's golden set, when it was calibrated for the same model and ranking;
3. the model's default below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Defaults per embedding model (the name's last part, lower case), on the relevance of
# app/rag.py (mean of cosine similarity and question-term coverage). all-MiniLM-L6-v2 is
# measured (rag-portal's benchmarks/rag_quality.py, two public corpora: refuses 14 of 15
# unanswerable questions and 1 of 85 answerable ones; each corpus calibrated alone gives
# 0.50 and 0.52); the others are starting points from their published cosine ranges (BGE
# models score unrelated text around 0.5-0.6): calibrate them on your golden set.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "all-minilm-l6-v2": 0.51,
    "all-mpnet-base-v2": 0.51,
    "bge-small-en-v1.5": 0.66,
    "bge-base-en-v1.5": 0.66,
    # Feature hashing (tests, offline): word overlap, not meaning; measured on the
    # template's example corpus and its golden questions.
    "hashing": 0.3,
}
FALLBACK_THRESHOLD = 0.3


def model_key(embedding_provider: str, embedding_model: str) -> str:
    if embedding_provider == "hashing":
        return "hashing"
    return embedding_model.rstrip("/").rsplit("/", 1)[-1].lower()


def read_calibration(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def resolve_threshold(
    embedding_provider: str, embedding_model: str, ranking: str, calibration_file: Path
) -> tuple[float, str]:
    """The threshold for this model and ranking, and where it came from."""
    key = model_key(embedding_provider, embedding_model)
    calibrated = read_calibration(calibration_file)
    if (
        calibrated is not None
        and calibrated.get("model") == key
        and calibrated.get("ranking") == ranking
        and isinstance(calibrated.get("relevance_threshold"), int | float)
    ):
        return float(calibrated["relevance_threshold"]), f"calibrated ({calibration_file.name})"
    if key in DEFAULT_THRESHOLDS:
        return DEFAULT_THRESHOLDS[key], f"default for {key}"
    return FALLBACK_THRESHOLD, "default for an uncalibrated model"


def write_calibration(path: Path, record: dict[str, Any]) -> None:
    """Written whole through a temporary file, so a reader never sees half of it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
