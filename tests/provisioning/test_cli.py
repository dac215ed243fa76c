"""ragportal secrets set/list: the value is stored encrypted and never printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from portal_backend.cli import app
from portal_backend.db import make_engine, make_session_factory, session_scope
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.settings import Settings


def test_secrets_set_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("DATABASE_URL", "RAGPORTAL_DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RAGPORTAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAGPORTAL_PROVISIONING_SECRET_KEY", "cli-test-key")
    monkeypatch.setenv("RAGPORTAL_LOG_LEVEL", "WARNING")
    runner = CliRunner()
    stored = runner.invoke(app, ["secrets", "set", "hf-token"], input="hf_cli_value\n")
    assert stored.exit_code == 0, stored.output
    assert "hf_cli_value" not in stored.output
    listed = runner.invoke(app, ["secrets", "list"])
    assert listed.exit_code == 0 and listed.output.strip().splitlines()[-1] == "hf-token"

    settings = Settings(data_dir=tmp_path, provisioning_secret_key="cli-test-key")
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        assert SecretStore(session, settings).get(GLOBAL, "hf-token") == "hf_cli_value"
    # Encrypted at rest: the database file does not hold the value.
    assert b"hf_cli_value" not in (tmp_path / "ragportal.db").read_bytes()
