"""Runs one service process detached from the worker that starts it, and records how it ended.

``python -m portal_backend.provisioning.local.launcher --run-dir D --role R --log L -- CMD...``

The launcher detaches (double fork + new session), so the process outlives the Celery
worker and the portal that started it: a portal restart finds it running and adopts it.
It starts CMD with its output appended to L, writes ``R.pid`` (CMD's pid) and, when CMD
ends, ``R.exit`` (exit code, or the signal that killed it): the supervisor reads the
reason for a death from there, since only a parent can learn a child's exit status.
SIGTERM to the launcher's process group stops both; the launcher passes it on to CMD.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    log = Path(args.log).open("ab", buffering=0)
    child = subprocess.Popen(
        args.command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=args.cwd or None,
    )

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    _write_json(run_dir / f"{args.role}.pid", {"pid": child.pid, "launcher": os.getpid()})
    code = child.wait()
    ended: dict[str, object] = {"code": code, "at": time.time()}
    if code < 0:
        ended["signal"] = signal.Signals(-code).name
    log.write(f"\n[rag-portal] process exited: {ended}\n".encode())
    _write_json(run_dir / f"{args.role}.exit", ended)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launcher")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--cwd")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given after --")
    # Detach: the first child leaves at once (its parent reaps it), the grandchild runs
    # in a session of its own, adopted by init, outside any worker's process tree.
    if os.fork() > 0:
        return 0
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    return _run(args)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
