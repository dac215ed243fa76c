"""Short catalog reads run on the read pool's few threads; long requests do not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from catalog.entity_reads import EntityReads
from portal_backend.read_pool import ReadPool
from tests.catalog.factories import component, group
from tests.conftest import LiveServer


class HeldReads:
    """Holds every ``get_by_name`` until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = 0
        self.most = 0
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()

    def __call__(self, reads: EntityReads, *args: Any) -> dict[str, Any] | None:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.started.release()
        try:
            assert self.release.wait(20), "the test never released the held reads"
            return ORIGINAL_GET_BY_NAME(reads, *args)
        finally:
            with self._lock:
                self.running -= 1


ORIGINAL_GET_BY_NAME = EntityReads.get_by_name


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldReads]:
    reads = HeldReads()
    monkeypatch.setattr(EntityReads, "get_by_name", lambda self, *args: reads(self, *args))
    yield reads
    reads.release.set()


@pytest.fixture
def pool_of(live_server: LiveServer) -> Iterator[Any]:
    """Installs a read pool of N threads on the live portal (seeded with team-a and web)."""
    from catalog.service import CatalogService
    from portal_backend.db import session_scope

    state = live_server.app.state  # type: ignore[attr-defined]
    with session_scope(state.session_factory) as session:
        CatalogService(session).upsert_entities([group("team-a"), component("web")])
    previous = state.read_pool
    yield lambda threads: setattr(state, "read_pool", ReadPool(threads))
    state.read_pool = previous


def _by_name(client: httpx.Client) -> httpx.Response:
    return client.get("/api/catalog/entities/by-name/component/default/web")


def test_reads_run_on_at_most_the_pools_threads(
    live_server: LiveServer, pool_of: Any, held: HeldReads
) -> None:
    pool_of(2)
    with ThreadPoolExecutor(6) as requests:
        answers = [requests.submit(_by_name, live_server.client()) for _ in range(6)]
        for _ in range(2):
            assert held.started.acquire(timeout=10)
        # Two reads hold the pool's two threads; the other four wait for one.
        assert not held.started.acquire(timeout=0.5)
        assert held.running == 2
        held.release.set()
        results = [answer.result(timeout=30) for answer in answers]
    assert [r.status_code for r in results] == [200] * 6
    assert {r.json()["metadata"]["name"] for r in results} == {"web"}
    assert held.most == 2


def test_a_full_pool_holds_neither_listings_nor_writes(
    live_server: LiveServer, admin_client: httpx.Client, pool_of: Any, held: HeldReads
) -> None:
    pool_of(1)
    with ThreadPoolExecutor(2) as requests:
        blocked = requests.submit(_by_name, live_server.client())
        assert held.started.acquire(timeout=10)
        queued = requests.submit(
            live_server.client().get,
            "/api/catalog/entities/by-query",
            params={"filter": "kind=group"},
        )
        # The streamed listing and a write take FastAPI's own threads, not the held one.
        listing = admin_client.get("/api/catalog/entities", params={"filter": "kind=group"})
        assert listing.status_code == 200
        assert [e["metadata"]["name"] for e in listing.json()] == ["team-a"]
        web = admin_client.get("/api/catalog/entities", params={"filter": "kind=component"})
        uid = web.json()[0]["metadata"]["uid"]
        assert admin_client.delete(f"/api/catalog/entities/by-uid/{uid}").status_code == 204
        assert not queued.done()  # a short read waits for the pool's one thread
        held.release.set()
        assert queued.result(timeout=30).json()["totalItems"] == 1
        assert blocked.result(timeout=30).status_code == 404  # deleted meanwhile
