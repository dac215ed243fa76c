"""DESIGN.md's import rules hold: the import-linter contracts in pyproject.toml.

HTTP layer (routers, web, cli) -> domain packages -> storage; routers and pages never
import each other; portal_backend never imports workers; domain code never imports
FastAPI, Starlette or Celery; catalog imports only what DESIGN.md allows it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
from importlinter import ContractCheck

from tests.import_contracts import AllowedExternalImports

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _check(imports: list[tuple[str, str]]) -> ContractCheck:
    graph = grimp.ImportGraph()
    graph.add_module("pkg")
    for importer, imported in imports:
        for module in (importer, imported):
            if module not in graph.modules:
                graph.add_module(module, is_squashed="." not in module)
        graph.add_import(importer=importer, imported=imported, line_number=3, line_contents="")
    contract = AllowedExternalImports(
        name="pkg's imports",
        session_options={"root_packages": ["pkg"]},
        contract_options={"source_modules": ["pkg"], "allowed_modules": ["sqlalchemy"]},
    )
    return contract.check(graph, verbose=False)


def test_the_allow_list_contract_refuses_what_it_does_not_list() -> None:
    kept = _check([("pkg.a", "sqlalchemy"), ("pkg.a", "json"), ("pkg.a", "pkg.b")])
    assert kept.kept
    broken = _check([("pkg.a", "sqlalchemy"), ("pkg.b", "fastapi"), ("pkg.a", "portal.x")])
    assert not broken.kept
    assert [(b["importer"], b["imported"]) for b in broken.metadata["broken"]] == [
        ("pkg.a", "portal.x"),
        ("pkg.b", "fastapi"),
    ]
