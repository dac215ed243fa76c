"""A few threads for short catalog reads, instead of anyio's default pool of 40.

FastAPI runs a sync endpoint on anyio's default thread pool (40 threads). The portal
is one Python process: only one of those threads runs Python at a time, so eight
concurrent by-query requests on eight threads take turns on the GIL, and every
hand-over costs CPU (2-core VM, by-query on 100k entities: 3.0 ms of portal CPU per
request alone, 4.7 ms each with 8 clients at once; p95 with 8 clients 55 ms). Catalog
reads -- a few milliseconds of Python around one or two short queries -- run here
instead, on at most ``catalog_read_threads`` threads (default 4; 8 clients: p95 40-43
ms, 33-36 with 2 threads). Not fewer by default: two slow reads beside six quick clients
(broad full-text terms at 1M entities, several hundred milliseconds each, mostly in
PostgreSQL) held both threads of a pool of 2 and the quick reads' p95 rose to 1.5 s;
with 4 threads it stayed at 43 ms (45 ms with 40). Long requests (streamed listings,
scaffolder and provisioning calls) keep the default pool, so they never hold these
threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

Result = TypeVar("Result")


class ReadPool:
    def __init__(self, threads: int) -> None:
        self._limiter = CapacityLimiter(threads)

    async def run(self, work: Callable[[], Result]) -> Result:
        """``work()`` on one of the pool's threads; its exceptions propagate."""
        return await anyio.to_thread.run_sync(work, limiter=self._limiter)
