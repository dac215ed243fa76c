"""Small real PDFs for ingestion tests: the generated repository's own maker, loaded from
the skeleton (a plain Python file there), so the two never drift apart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_MAKER = (
    Path(__file__).resolve().parents[2]
    / "scaffolder_templates/rag-service/skeleton/{{cookiecutter.service_name}}/tests/pdf_maker.py"
)
_spec = importlib.util.spec_from_file_location("rag_skeleton_pdf_maker", _MAKER)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

text_pdf = _module.text_pdf
