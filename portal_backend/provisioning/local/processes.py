"""Starting, checking and stopping the local runtime's processes (no database here).

A process is known by its pid and the kernel's record of when it started (psutil), so a
pid that the kernel handed to another program after a death is never mistaken for it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

LAUNCHER = "portal_backend.provisioning.local.launcher"
LOG_ROTATE_BYTES = 5 * 1024 * 1024


class StartError(Exception):
    pass


@dataclass(frozen=True)
class Started:
    pid: int
    started_ts: float


@dataclass(frozen=True)
class Ended:
    code: int | None
    signal: str | None

    def describe(self) -> str:
        if self.signal:
            return f"killed by {self.signal}"
        if self.code is None:
            return "ended (no exit status recorded: its launcher was killed too)"
        return f"exited with code {self.code}"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on the port now. With SO_REUSEADDR, as uvicorn and
    llama.cpp's server bind: connections of a dead process left in TIME_WAIT do not
    count, only a socket someone listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def start(
    role: str,
    command: list[str],
    *,
    run_dir: Path,
    log_path: Path,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float = 15.0,
) -> Started:
    """Starts ``command`` under the launcher; returns its pid once it runs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (run_dir / f"{role}.pid", run_dir / f"{role}.exit"):
        stale.unlink(missing_ok=True)
    if log_path.exists() and log_path.stat().st_size > LOG_ROTATE_BYTES:
        os.replace(log_path, log_path.with_suffix(log_path.suffix + ".1"))
    with log_path.open("a") as log:
        log.write(f"\n[rag-portal] starting {role}: {' '.join(command)}\n")
    launcher = [
        sys.executable, "-m", LAUNCHER, "--run-dir", str(run_dir), "--role", role,
        "--log", str(log_path), "--cwd", str(cwd), "--", *command,
    ]  # fmt: skip
    # The launcher's own imports come from the portal's environment, not the service's.
    launcher_env = {**env, "PYTHONPATH": _portal_path()}
    first = subprocess.Popen(
        launcher,
        env=launcher_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first.wait(timeout=30)  # it forks and leaves at once
    pid_file = run_dir / f"{role}.pid"
    deadline = time.monotonic() + timeout_s
    while not pid_file.exists():
        if time.monotonic() > deadline:
            raise StartError(f"{role}: the launcher did not start it within {timeout_s:.0f} s")
        time.sleep(0.05)
    pid = int(json.loads(pid_file.read_text())["pid"])
    try:
        started_ts = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        started_ts = 0.0  # already gone: the supervisor reads why from the exit file
    return Started(pid, started_ts)


def _portal_path() -> str:
    import portal_backend

    return str(Path(portal_backend.__file__).resolve().parent.parent)


def is_alive(pid: int | None, started_ts: float | None) -> bool:
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if started_ts and abs(process.create_time() - started_ts) > 1.0:
            return False  # the pid belongs to another process now
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ended(run_dir: Path, role: str, wait_s: float = 1.0) -> Ended:
    """How a dead process ended, from its launcher's exit file."""
    exit_file = run_dir / f"{role}.exit"
    deadline = time.monotonic() + wait_s
    while not exit_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the launcher writes it right after the process ends
    if not exit_file.exists():
        return Ended(None, None)
    data = json.loads(exit_file.read_text())
    return Ended(data.get("code"), data.get("signal"))


def recorded(run_dir: Path) -> list[tuple[str, int, float]]:
    """(role, pid, start time) of the processes the launcher recorded in ``run_dir`` that
    still run: a second source besides the database's rows (which a restore, or a
    careless DELETE, can lose while the processes go on).

    A pid counts only when its process began before its pid file was written (the
    launcher writes it right after the fork): a later process with a reused pid does not.
    """
    found = []
    for pid_file in sorted(run_dir.glob("*.pid")) if run_dir.is_dir() else []:
        try:
            pid = int(json.loads(pid_file.read_text())["pid"])
            written = pid_file.stat().st_mtime
            started_ts = psutil.Process(pid).create_time()
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            continue
        if started_ts <= written + 1.0 and is_alive(pid, started_ts):
            found.append((pid_file.stem, pid, started_ts))
    return found


def stop(pid: int | None, started_ts: float | None, timeout_s: float = 10.0) -> None:
    """SIGTERM the process's group (launcher and process), SIGKILL after ``timeout_s``."""
    if not is_alive(pid, started_ts):
        return
    assert pid is not None
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while is_alive(pid, started_ts) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while is_alive(pid, started_ts) and time.monotonic() < deadline:
        time.sleep(0.05)


def log_tail(path: Path | str | None, lines: int = 12, max_bytes: int = 16384) -> str:
    if not path or not Path(path).exists():
        return ""
    with Path(path).open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - max_bytes))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False
