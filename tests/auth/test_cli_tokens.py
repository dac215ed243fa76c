"""ragportal token create --as-user: a token that carries a catalog user's rights."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from portal_backend.auth.service import authenticate
from portal_backend.cli import app
from portal_backend.db import make_engine, make_session_factory, session_scope, upgrade_database
from portal_backend.settings import Settings
from tests.auth.conftest import people
from tests.ui.seed import seed


def test_token_create_as_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("DATABASE_URL", "RAGPORTAL_DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RAGPORTAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAGPORTAL_LOG_LEVEL", "WARNING")
    settings = Settings(data_dir=tmp_path)
    upgrade_database(settings)
    factory = make_session_factory(make_engine(settings.database_url))
    seed(factory, people())
    runner = CliRunner()
    missing = runner.invoke(
        app, ["token", "create", "--name", "x", "--subject", "user:default/carol", "--as-user"]
    )
    assert missing.exit_code == 2
    assert "no User entity user:default/carol" in missing.output
    created = runner.invoke(
        app,
        [
            "token",
            "create",
            "--name",
            "bob ci",
            "--scope",
            "write",
            "--subject",
            "bob",
            "--as-user",
        ],
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    with session_scope(factory) as session:
        principal = authenticate(session, token, None)
    assert principal is not None
    assert principal.subject == "user:default/bob"
    assert principal.groups == ("group:default/team-a", "group:default/team-b")
    assert not principal.unrestricted
