"""The periodic refresh of every location: Celery beat in a real worker process (real
Redis) refreshes changed locations, keeps unchanged entities' etags, records each
location's last refresh and error in GET /locations, and never runs two refreshes of one
location at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from catalog import refresh
from catalog.location_registry import LocationRegistry
from catalog.locations import LocationPolicy
from catalog.service import CatalogService
from portal_backend.db import REPO_ROOT, make_engine, make_session_factory, session_scope
from tests.catalog.conftest import YamlServer
from tests.catalog.factories import component
from tests.conftest import POSTGRES_URL, REDIS_URL, LiveServer, make_settings

LOCATIONS = "/api/catalog/locations"


def _wait(check: Callable[[], object], what: str, log: Path, timeout: float = 90) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout} s\n{log.read_text()[-3000:]}")


def _entity(client: httpx.Client, name: str) -> dict:
    return client.get(f"/api/catalog/entities/by-name/component/default/{name}").json()


@pytest.mark.usefixtures("allow_private_urls")
def test_beat_refreshes_locations_and_records_errors(
    admin_client: httpx.Client, live_server: LiveServer, yaml_server: YamlServer, tmp_path: Path
) -> None:
    url = yaml_server.publish("svc.yaml", component("web"), component("same"), component("old"))
    created = admin_client.post(LOCATIONS, json={"type": "url", "target": url})
    assert created.status_code == 201, created.text
    location_id = created.json()["location"]["id"]
    [listed] = admin_client.get(LOCATIONS).json()
    assert listed["data"] == created.json()["location"]
    registered_at = datetime.fromisoformat(listed["status"]["lastRefreshAt"])
    assert listed["status"]["lastRefreshError"] is None
    same_before = _entity(admin_client, "same")

    yaml_server.publish(
        "svc.yaml", component("web", description="edited"), component("same"), component("new")
    )
    settings = live_server.settings
    log_path = tmp_path / "worker.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAGPORTAL_")},
        "PYTHONPATH": str(REPO_ROOT),
        "DATABASE_URL": settings.database_url_override or settings.database_url,
        "REDIS_URL": REDIS_URL,
        "RAGPORTAL_DATA_DIR": str(tmp_path / "data"),
        "RAGPORTAL_CELERY_QUEUE": f"catalog-refresh-test-{uuid.uuid4().hex[:8]}",
        "RAGPORTAL_LOG_JSON": "false",
        "RAGPORTAL_CATALOG_REFRESH_INTERVAL_S": "1",
        "RAGPORTAL_ALLOW_PRIVATE_URLS": "true",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "portal_backend.cli", "worker", "--beat", "--pool", "solo"],
        env=env,
        cwd=tmp_path,  # beat keeps its schedule file in the working directory
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait(
            lambda: _entity(admin_client, "web")["metadata"].get("description") == "edited",
            "the background refresh did not pick up the edit",
            log_path,
        )
        [listed] = admin_client.get(LOCATIONS).json()
        assert datetime.fromisoformat(listed["status"]["lastRefreshAt"]) > registered_at
        assert listed["status"]["lastRefreshError"] is None
        assert _entity(admin_client, "new")["metadata"]["name"] == "new"
        orphan = _entity(admin_client, "old")["metadata"]["annotations"]
        assert orphan["backstage.io/orphan"] == "true"
        # Unchanged: not rewritten, so the etag stays (over several refreshes).
        time.sleep(2.5)
        assert _entity(admin_client, "same")["metadata"]["etag"] == same_before["metadata"]["etag"]

        # A location that breaks keeps its entities and shows the error.
        yaml_server.publish("svc.yaml", "kind: [unclosed")

        def failed() -> dict | None:
            [item] = admin_client.get(LOCATIONS).json()
            return item["status"] if item["status"]["lastRefreshError"] else None

        status = _wait(failed, "no refresh error recorded", log_path)
        assert "not valid YAML" in status["lastRefreshError"]  # type: ignore[index]
        assert _entity(admin_client, "web")["metadata"]["description"] == "edited"

        # Fixed again, while another worker holds the only background-refresh slot
        # (RAGPORTAL_CATALOG_REFRESH_CONCURRENCY=1): the refresh waits its turn, retried
        # without holding the worker, and runs once the slot is free.
        yaml_server.publish("svc.yaml", component("web"), component("same"))
        factory = live_server.app.state.session_factory  # type: ignore[attr-defined]
        with refresh.refresh_slot(factory, 1) as slot:
            assert slot == 0
            _wait(
                lambda: "Retry in" in log_path.read_text(),
                "a refresh without a free slot was not retried",
                log_path,
            )
            [item] = admin_client.get(LOCATIONS).json()
            assert item["status"]["lastRefreshError"] is not None  # not refreshed meanwhile
        _wait(
            lambda: admin_client.get(LOCATIONS).json()[0]["status"]["lastRefreshError"] is None,
            "the error was not cleared",
            log_path,
        )
        assert worker.poll() is None, log_path.read_text()[-3000:]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert admin_client.delete(f"{LOCATIONS}/{location_id}").status_code == 204


@pytest.mark.usefixtures("allow_private_urls")
def test_one_refresh_per_location_at_a_time(
    admin_client: httpx.Client, live_server: LiveServer, yaml_server: YamlServer
) -> None:
    url = yaml_server.publish("one.yaml", component("web"))
    created = admin_client.post(LOCATIONS, json={"type": "url", "target": url})
    location_id = created.json()["location"]["id"]
    factory = live_server.app.state.session_factory  # type: ignore[attr-defined]
    policy = LocationPolicy(allow_private_urls=True)
    yaml_server.publish("one.yaml", component("web", description="v2"))

    # While a refresh holds the location, another one is skipped (background) or
    # refused (API) instead of waiting, and nothing is written by either.
    with refresh.location_lock(factory, location_id) as held:
        assert held
        with refresh.location_lock(factory, location_id) as second:
            assert second is False
        assert refresh.refresh_claimed(factory, location_id, policy).state == "busy"
        busy = admin_client.post("/api/catalog/refresh", json={"entityRef": "component:web"})
        assert busy.status_code == 409, busy.text
        assert "being refreshed" in busy.json()["error"]["message"]
        assert "description" not in _entity(admin_client, "web")["metadata"]

    done = admin_client.post("/api/catalog/refresh", json={"entityRef": "component:web"})
    assert done.status_code == 200, done.text
    assert _entity(admin_client, "web")["metadata"]["description"] == "v2"

    # A refresh found due but done by someone else meanwhile is not repeated.
    before = datetime.now(UTC) - timedelta(seconds=60)
    outcome = refresh.refresh_claimed(factory, location_id, policy, unless_refreshed_since=before)
    assert outcome.state == "fresh"
    with session_scope(factory) as session:
        assert refresh.due_locations(session, 60, datetime.now(UTC)) == []
        assert refresh.due_locations(session, 0, datetime.now(UTC) + timedelta(seconds=1)) == [
            location_id
        ]
        CatalogService(session).delete_location(location_id)
    assert refresh.refresh_claimed(factory, location_id, policy).state == "missing"


def test_refresh_interval_setting_schedules_or_turns_off_the_beat_entry(tmp_path: Path) -> None:
    from portal_backend.settings import Settings
    from workers.catalog import REFRESH_DUE
    from workers.celery_app import make_celery

    default = make_celery(Settings(data_dir=tmp_path / "a"))
    entry = default.conf.beat_schedule["catalog-refresh"]
    assert entry["task"] == REFRESH_DUE
    assert entry["schedule"] == 75.0  # four checks per 300 s interval
    off = make_celery(Settings(data_dir=tmp_path / "b", catalog_refresh_interval_s=0))
    assert "catalog-refresh" not in off.conf.beat_schedule
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings(data_dir=tmp_path / "c", catalog_refresh_interval_s=-1)


@pytest.mark.usefixtures("allow_private_urls")
def test_background_refresh_runs_below_the_priority_of_reads(
    admin_client: httpx.Client,
    live_server: LiveServer,
    yaml_server: YamlServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers.catalog import background_refresh
    from workers.low_priority import thread_niceness

    url = yaml_server.publish("nice.yaml", component("nice-web"))
    created = admin_client.post(LOCATIONS, json={"type": "url", "target": url})
    location_id = created.json()["location"]["id"]
    yaml_server.publish("nice.yaml", component("nice-web", description="v2"))

    seen: list[int] = []
    refresh_location = LocationRegistry.refresh_location

    def recording(self: LocationRegistry, location_id: str) -> dict:
        seen.append(thread_niceness())
        return refresh_location(self, location_id)

    monkeypatch.setattr(LocationRegistry, "refresh_location", recording)
    base = thread_niceness()
    settings = live_server.settings.model_copy(update={"catalog_refresh_niceness": 7})
    outcome = background_refresh(settings, location_id)

    # The refresh wrote its change from a thread 7 steps nicer than the caller, which
    # keeps its own priority for whatever it runs next.
    assert outcome.state == "refreshed", outcome.error
    assert seen == [min(19, base + 7)]
    assert thread_niceness() == base
    assert _entity(admin_client, "nice-web")["metadata"]["description"] == "v2"

    # 0 turns it off: the refresh runs in the caller's thread at its priority.
    yaml_server.publish("nice.yaml", component("nice-web", description="v3"))
    same = live_server.settings.model_copy(update={"catalog_refresh_niceness": 0})
    assert background_refresh(same, location_id).state == "refreshed"
    assert seen[-1] == base
    assert _entity(admin_client, "nice-web")["metadata"]["description"] == "v3"
    assert admin_client.delete(f"{LOCATIONS}/{location_id}").status_code == 204


def test_refresh_niceness_setting_is_bounded(tmp_path: Path) -> None:
    from portal_backend.settings import Settings

    assert Settings(data_dir=tmp_path).catalog_refresh_niceness == 10
    with pytest.raises(ValueError, match="catalog_refresh_niceness"):
        Settings(data_dir=tmp_path, catalog_refresh_niceness=20)


def test_background_refresh_slots_are_shared_and_given_back(
    settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    from workers.catalog import background_refresh

    with refresh.refresh_slot(session_factory, 2) as first:
        with refresh.refresh_slot(session_factory, 2) as second:
            with refresh.refresh_slot(session_factory, 2) as third:
                assert (first, second, third) == (0, 1, None)
        with refresh.refresh_slot(session_factory, 2) as again:
            assert again == 1  # given back when its block ended
        # A background refresh finding every slot taken is deferred, touching nothing
        # (the location does not even exist: no refresh was attempted).
        one_slot = settings.model_copy(update={"catalog_refresh_concurrency": 1})
        assert background_refresh(one_slot, "no-such-location").state == "deferred"
    assert background_refresh(one_slot, "no-such-location").state == "missing"


def test_refresh_locks_of_one_schema_leave_other_schemas_alone(tmp_path: Path) -> None:
    """Portals (and test runs) sharing a PostgreSQL database in different schemas do not
    share refresh slots or location locks (advisory locks span the whole database)."""
    schemas = [f"t_locks_{i}_" + tmp_path.name[-8:].replace("-", "_").lower() for i in (1, 2)]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
    engines = []
    try:
        factories = []
        for schema in schemas:
            engine = make_engine(make_settings("postgresql", tmp_path, schema).database_url)
            engines.append(engine)
            factories.append(make_session_factory(engine))
        one, other = factories
        with refresh.refresh_slot(one, 1) as mine, refresh.refresh_slot(other, 1) as theirs:
            assert (mine, theirs) == (0, 0)
            with refresh.refresh_slot(one, 1) as again:
                assert again is None  # the same schema still shares its slots
        with refresh.location_lock(one, "same-id") as held:
            with refresh.location_lock(other, "same-id") as held_elsewhere:
                with refresh.location_lock(one, "same-id") as held_twice:
                    assert (held, held_elsewhere, held_twice) == (True, True, False)
    finally:
        for engine in engines:
            engine.dispose()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
