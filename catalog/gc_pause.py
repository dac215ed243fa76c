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

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # pauses running in this process
_resume = True  # whether the collector was enabled when the outermost pause began


@contextmanager
def collector_paused() -> Iterator[None]:
    """Also a decorator (``@collector_paused()``), as every ``contextmanager`` is."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
