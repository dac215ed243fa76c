"""`ragportal catalog import PATH_OR_URL` against both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.settings import Settings
from tests.catalog.factories import component, group

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RAGPORTAL_DATA_DIR": str(settings.data_dir),
        "RAGPORTAL_LOG_JSON": "false",
    }
    env.pop("DATABASE_URL", None)
    if settings.database_url_override:
        env["DATABASE_URL"] = settings.database_url_override
    return subprocess.run(
        [sys.executable, "-m", "portal_backend.cli", "catalog", "import", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_file_then_reimport_refreshes(settings: Settings, session_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "catalog-info.yaml"
    path.write_text(yaml.safe_dump_all([component("web"), group("team-a")]))
    first = _run(settings, str(path))
    assert first.returncode == 0, first.stderr
    assert "imported 2 entities" in first.stdout
    assert "component:default/web" in first.stdout

    path.write_text(yaml.safe_dump_all([component("web", description="v2")]))
    second = _run(settings, str(path))
    assert second.returncode == 0, second.stderr
    assert "refreshed 1 entities" in second.stdout
    assert "orphaned: group:default/team-a" in second.stderr
    with session_scope(session_factory) as session:
        web = CatalogService(session).get_by_ref("component:default/web")
    assert web["metadata"]["description"] == "v2"


def test_import_reports_every_problem_and_exits_2(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = component("bad name")
    del bad["spec"]["owner"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = _run(settings, str(path))
    assert result.returncode == 2
    assert "documents[0].metadata.name" in result.stderr
    assert "documents[0].spec.owner" in result.stderr
    missing = _run(settings, str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2
    # The console wraps long lines (here: the temporary path) at its width.
    assert "does not exist" in " ".join(missing.stderr.split())
