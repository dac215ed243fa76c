"""Launching, judging and stopping the local runtime's processes (the launcher and its
records), with real processes."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

from portal_backend.db import make_engine, make_session_factory, upgrade_database
from portal_backend.provisioning.local import processes
from portal_backend.provisioning.local.runtime import LocalRuntime, service_dir
from tests.conftest import make_settings


def _start(tmp_path: Path, role: str, code: str) -> processes.Started:
    return processes.start(
        role,
        [sys.executable, "-c", code],
        run_dir=tmp_path / "run",
        log_path=tmp_path / "logs" / f"{role}.log",
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
    )


def _wait_dead(started: processes.Started, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while processes.is_alive(started.pid, started.started_ts):
        assert time.monotonic() < deadline, "process did not end"
        time.sleep(0.05)


def test_a_process_outlives_its_starter_and_its_exit_code_is_recorded(tmp_path: Path) -> None:
    started = _start(
        tmp_path, "job", "import sys, time; print('working'); time.sleep(0.5); sys.exit(3)"
    )
    # Detached: its own session, not a child of this process (a portal restart keeps it).
    assert os.getsid(started.pid) != os.getsid(0)
    assert os.getppid() != started.pid and processes.is_alive(started.pid, started.started_ts)
    _wait_dead(started)
    ended = processes.ended(tmp_path / "run", "job")
    assert ended == processes.Ended(3, None) and ended.describe() == "exited with code 3"
    assert "working" in processes.log_tail(tmp_path / "logs" / "job.log")


def test_sigkill_is_recorded_as_the_signal(tmp_path: Path) -> None:
    started = _start(tmp_path, "api", "import time; time.sleep(60)")
    os.kill(started.pid, signal.SIGKILL)
    _wait_dead(started)
    ended = processes.ended(tmp_path / "run", "api")
    assert ended.signal == "SIGKILL" and "killed by SIGKILL" in ended.describe()


def test_a_reused_pid_is_not_taken_for_the_process(tmp_path: Path) -> None:
    started = _start(tmp_path, "api", "import time; time.sleep(60)")
    try:
        assert processes.is_alive(started.pid, started.started_ts)
        # Same pid, another start time: the kernel gave the pid to someone else.
        assert not processes.is_alive(started.pid, started.started_ts - 100)
    finally:
        processes.stop(started.pid, started.started_ts)


def test_stop_ends_the_process_and_its_launcher_even_when_it_ignores_sigterm(
    tmp_path: Path,
) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    started = _start(tmp_path, "stubborn", code)
    launcher = int((tmp_path / "run" / "stubborn.pid").read_text().split('"launcher": ')[1][:-1])
    began = time.monotonic()
    processes.stop(started.pid, started.started_ts, timeout_s=1.0)
    assert not processes.is_alive(started.pid, started.started_ts)
    assert time.monotonic() - began < 8
    time.sleep(0.3)
    assert not processes.is_alive(launcher, None)


def test_ports(tmp_path: Path) -> None:
    port = processes.free_port("127.0.0.1")
    assert processes.port_is_free("127.0.0.1", port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert not processes.port_is_free("127.0.0.1", port)


def test_the_launchers_records_name_the_processes_that_still_run(tmp_path: Path) -> None:
    alive = _start(tmp_path, "api", "import time; time.sleep(60)")
    dead = _start(tmp_path, "job", "pass")
    _wait_dead(dead)
    # A pid file written before its pid's process began: the pid was reused since.
    later = _start(tmp_path / "other", "llm", "import time; time.sleep(60)")
    stale = tmp_path / "run" / "llm.pid"
    stale.write_text(f'{{"pid": {later.pid}, "launcher": 1}}')
    os.utime(stale, (later.started_ts - 100, later.started_ts - 100))
    try:
        assert processes.recorded(tmp_path / "run") == [("api", alive.pid, alive.started_ts)]
        assert processes.recorded(tmp_path / "missing") == []
    finally:
        processes.stop(alive.pid, alive.started_ts)
        processes.stop(later.pid, later.started_ts)


def test_remove_stops_a_service_whose_process_rows_are_gone(tmp_path: Path) -> None:
    settings = make_settings("sqlite", tmp_path, None)
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    folder = service_dir(settings, "orphaned-bot")
    started = _start(folder, "api", "import time; time.sleep(60)")
    try:
        # No runtime_processes row names it (a restored database, an emptied table).
        removed = LocalRuntime(settings, make_session_factory(engine)).remove("orphaned-bot")
        assert removed["stoppedProcesses"] == [f"api (pid {started.pid})"]
        assert not processes.is_alive(started.pid, started.started_ts)
        assert not folder.exists()
    finally:
        processes.stop(started.pid, started.started_ts)
        engine.dispose()
