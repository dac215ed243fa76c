"""Rendering the rag-service skeleton and running the rendered repository's own tools.

Rendering uses cookiecutter's Python API (as fetch:cookiecutter does) so these tests do
not depend on the scaffolder engine. Every rendered repository runs in ONE shared
virtual environment (scripts/setup.d/30-generated-repo-env.sh): creating one per
rendered repo would cost minutes each.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.generate import generate_files
from cookiecutter.main import cookiecutter

from portal_backend.scaffolder.actions.fetch import build_context

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "scaffolder_templates" / "rag-service"
SKELETON = TEMPLATE_DIR / "skeleton"
VENV = Path(os.environ.get("RAG_GENERATED_VENV", ROOT / "build" / "generated-venv"))
SETUP_SCRIPT = ROOT / "scripts" / "setup.d" / "30-generated-repo-env.sh"


def render(output_dir: Path, values: Mapping[str, Any]) -> Path:
    """Renders the skeleton with cookiecutter as fetch:cookiecutter does: form values go
    in verbatim (cookiecutter's own prompt step would evaluate `{{ }}` typed into a
    form), the skeleton's defaults are rendered. Returns the repository folder."""
    context = build_context(SKELETON, dict(values), {})
    context["cookiecutter"]["_template"] = str(SKELETON)
    context["cookiecutter"]["_output_dir"] = str(output_dir)
    return Path(
        generate_files(
            repo_dir=str(SKELETON),
            context=context,
            output_dir=str(output_dir),
            accept_hooks=False,
        )
    )


def render_defaults(output_dir: Path, **overrides: Any) -> Path:
    """cookiecutter's plain API (no_input) with the skeleton defaults."""
    return Path(
        cookiecutter(
            str(SKELETON), no_input=True, output_dir=str(output_dir), extra_context=overrides
        )
    )


def run_in_venv(
    repo: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        # The rendered repo must not pick up the portal's own settings or packages.
        "PYTHONPATH": str(repo),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **(env or {}),
    }
    environment.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [str(VENV / "bin" / "python"), *args],
        cwd=repo,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def generated_venv() -> Path:
    """The shared environment (the local runtime's, for the template's requirements).
    The setup step builds it; run again here (a no-op when it is ready) for test runs
    that did not go through `make test`."""
    subprocess.run(["bash", str(SETUP_SCRIPT)], check=True, cwd=ROOT, timeout=3600)
    return VENV
