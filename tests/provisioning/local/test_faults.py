"""Faults on the local runtime: each gives a clear state and message on the entity, and
nothing is left running or on disk after teardown. Real processes and models."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog.service import CatalogService
from portal_backend.db import make_engine, make_session_factory, session_scope
from portal_backend.provisioning import targets
from portal_backend.provisioning.local import processes
from portal_backend.provisioning.local.runtime import (
    LocalRequest,
    LocalRuntime,
    LocalRuntimeError,
    service_dir,
)
from portal_backend.provisioning.local.tables import RuntimeProcess
from portal_backend.settings import Settings
from tests.provisioning.local.conftest import PublishedService, publish


def _factory(settings: Settings):  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine(settings.database_url))


def _deployment(settings: Settings, name: str) -> dict:
    with session_scope(_factory(settings)) as session:
        entity = CatalogService(session).get_by_ref(f"component:default/{name}")
    assert entity is not None
    return entity["status"]["deployment"]


def _processes(settings: Settings, name: str) -> dict[str, RuntimeProcess]:
    with session_scope(_factory(settings)) as session:
        rows = session.query(RuntimeProcess).filter(RuntimeProcess.service == name).all()
        session.expunge_all()
    return {p.role: p for p in rows}


def _request(service: PublishedService) -> LocalRequest:
    return LocalRequest(
        service.name, service.contents_url, "prod", f"component:default/{service.name}"
    )


def _assert_gone(settings: Settings, name: str, pids: list[tuple[int, float]]) -> None:
    teardown = targets.teardown(settings, _factory(settings), name)
    assert f"component:default/{name}" in teardown["deletedEntities"]
    for pid, started in pids:
        assert not processes.is_alive(pid, started), f"pid {pid} still runs"
    assert not service_dir(settings, name).exists()
    assert _processes(settings, name) == {}


def test_a_gguf_that_does_not_exist_is_refused_before_anything_starts(
    runtime_settings: Settings,
) -> None:
    settings = runtime_settings.model_copy(update={"runtime_llm_gguf": Path("/nowhere/model.gguf")})
    service = publish(settings, "gguf-bot")
    with pytest.raises(
        LocalRuntimeError, match="RAGPORTAL_RUNTIME_LLM_GGUF is /nowhere/model.gguf"
    ):
        LocalRuntime(settings, _factory(settings)).provision(_request(service))
    status = _deployment(settings, "gguf-bot")
    assert status["state"] == "Degraded" and status["target"] == "local"
    assert "does not exist" in status["message"]
    assert _processes(settings, "gguf-bot") == {}
    _assert_gone(settings, "gguf-bot", [])


def test_a_failing_ingestion_says_why_on_the_entity(runtime_settings: Settings) -> None:
    service = publish(runtime_settings, "ingest-bot", edit={"sources.json": "{not json"})
    runtime = LocalRuntime(runtime_settings, _factory(runtime_settings))
    with pytest.raises(LocalRuntimeError, match="ingestion exited with code"):
        runtime.provision(_request(service))
    status = _deployment(runtime_settings, "ingest-bot")
    assert status["state"] == "Degraded"
    assert "ingestion exited with code" in status["message"]
    # The ingestion's own words, from its log: the JSON parser's complaint.
    assert "Expecting property name enclosed in double quotes" in status["message"]
    failed = {o["name"]: o for o in status["objects"]}
    assert failed["ingestion"]["state"] == "Failed"
    procs = _processes(runtime_settings, "ingest-bot")
    assert "api" not in procs or procs["api"].pid is None
    llm = procs["llm"]
    assert processes.is_alive(llm.pid, llm.started_ts)
    _assert_gone(runtime_settings, "ingest-bot", [(llm.pid or 0, llm.started_ts or 0.0)])


PROVISION_IN_A_PROCESS = """
import sys
from pathlib import Path
from portal_backend.db import make_engine, make_session_factory
from portal_backend.provisioning.local.runtime import LocalRequest, LocalRuntime
from portal_backend.settings import Settings
settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
factory = make_session_factory(make_engine(settings.database_url))
name, url = sys.argv[2], sys.argv[3]
LocalRuntime(settings, factory, log=print).provision(
    LocalRequest(name, url, "prod", f"component:default/{name}")
)
"""


def test_a_provisioning_killed_mid_start_is_taken_over_and_adopts_what_runs(
    runtime_settings: Settings, tmp_path: Path
) -> None:
    """The portal (its worker) dies while the ingestion runs: the next provisioning waits
    for the dead one's lease to lapse, adopts the LLM server and the ingestion that still
    run instead of starting second copies, and ends Healthy."""
    service = publish(runtime_settings, "restart-bot")
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(runtime_settings.model_dump_json())
    first = subprocess.Popen(
        [sys.executable, "-c", PROVISION_IN_A_PROCESS, str(settings_file), service.name,
         service.contents_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while "ingestion" not in _processes(runtime_settings, service.name):
        assert first.poll() is None, "the provisioning ended before its ingestion started"
        assert time.monotonic() < deadline, "the ingestion did not start"
        time.sleep(0.2)
    first.kill()
    first.wait()
    before = _processes(runtime_settings, service.name)
    llm, ingestion = before["llm"], before["ingestion"]
    assert processes.is_alive(ingestion.pid, ingestion.started_ts)

    logs: list[str] = []
    outcome = LocalRuntime(runtime_settings, _factory(runtime_settings), log=logs.append).provision(
        _request(service)
    )
    assert outcome["state"] == "Healthy"
    text = "\n".join(logs)
    assert "another provisioning of restart-bot is running; waiting for it" in text
    assert f"ingestion: a run is still going (pid {ingestion.pid})" in text
    assert f"llm: adopting the running process (pid {llm.pid}" in text
    after = _processes(runtime_settings, service.name)
    assert after["llm"].pid == llm.pid and after["ingestion"].state == "completed"
    api = after["api"]
    assert _deployment(runtime_settings, service.name)["state"] == "Healthy"
    _assert_gone(
        runtime_settings,
        service.name,
        [(llm.pid or 0, llm.started_ts or 0.0), (api.pid or 0, api.started_ts or 0.0)],
    )
