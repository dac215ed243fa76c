"""Pause Python's cyclic garbage collector while a catalog bulk write runs.

An import allocates ~10 containers per entity (parsed YAML, prepared documents, rows);
every 700 allocations the collector runs, and its older generations walk every object
the process holds (SQLAlchemy's metadata, the modules, ...). That was ~20% of an
importer's CPU (100k entities: ~210 -> ~170 us an entity with the collector paused).
Documents hold no reference cycles, so reference counting frees them all the same; the
collector resumes when the last bulk write of the process ends and catches up on
anything cyclic then. Nested and concurrent pauses (threads of one portal process)
share one counter.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

_lock = threading.Lock()
_depth = 0
# Whether the collector was enabled when the outermost pause began (restored at its end).
_state: dict[str, bool] = {"resume": True}

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def collector_paused() -> Iterator[None]:
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            was_enabled = gc.isenabled()
            gc.disable()
            _state["resume"] = was_enabled
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _state["resume"]:
                gc.enable()


def pausing_collector(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of ``collector_paused``."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with collector_paused():
            return function(*args, **kwargs)

    return wrapper
