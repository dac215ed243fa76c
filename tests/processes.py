"""Stopping the subprocesses tests start in their own process group (servers, workers):
the portal's own helper (``ragportal serve`` stops its embedded worker with it), with a
shorter wait before SIGKILL."""

from __future__ import annotations

import subprocess

from portal_backend import processes


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    processes.stop_process_group(process, timeout)
