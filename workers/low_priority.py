"""Run a call on a thread of its own at a lower CPU priority (Linux thread niceness).

Background work that competes with interactive reads for the same cores (the catalog's
refresh of every location: YAML parse, validation, diffing) should yield to them: on a
2-core machine two refreshes running at full priority more than doubled the by-query p95.
Linux keeps a niceness per thread, so the call runs on a short-lived thread that raises
its own niceness; the worker's other threads and later tasks keep theirs (an unprivileged
process cannot lower a niceness again, which rules out renicing the worker process
itself). Elsewhere (no per-thread niceness) the call runs unchanged.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
MAX_NICENESS = 19


def thread_niceness() -> int:
    """The calling thread's niceness (the process's where threads have none)."""
    if sys.platform != "linux":
        return os.getpriority(os.PRIO_PROCESS, 0)
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def run_at_lower_priority(niceness: int, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)`` with its thread's niceness raised by ``niceness`` (0 = as
    is); returns its result or raises its exception."""
    if niceness <= 0 or sys.platform != "linux":
        return call(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            tid = threading.get_native_id()
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICENESS, current + niceness))
            outcome["result"] = call(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="low-priority", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
