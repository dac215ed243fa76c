"""The local runtime with real processes: the shared environment the setup step built
(real MiniLM, SmolLM2 through llama.cpp, Qdrant local mode), real Celery workers on
Redis, PostgreSQL, the portal over HTTP. One backend: each service start costs tens of
seconds of CPU."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml

from catalog.service import CatalogService
from portal_backend.db import make_engine, make_session_factory, session_scope, upgrade_database
from portal_backend.settings import Settings
from tests.conftest import POSTGRES_URL, REDIS_URL, make_settings, remove_local_services
from tests.rag_template.conftest import VENV, generated_venv, render_defaults  # noqa: F401
from tests.scaffolder.conftest import FAST

TEAM = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Group",
    "metadata": {"name": "team-a"},
    "spec": {"type": "team", "children": []},
}
RUNTIME = {
    "runtime_supervise_interval_s": 1.0,
    "runtime_restart_backoff_s": (0.5, 4.0),
    "runtime_lease_s": 4.0,
    "runtime_start_timeout_s": 180.0,
}


@pytest.fixture
def runtime_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """PostgreSQL in a schema of its own, the tests' shared runtime environment."""
    request.getfixturevalue("generated_venv")  # built by the setup step, else here
    schema = f"t_runtime_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    settings = make_settings(
        "postgresql",
        tmp_path / "data",
        schema,
        redis_url=REDIS_URL,
        celery_queue=f"runtime-{uuid.uuid4().hex[:10]}",
        provisioning_secret_key="runtime-test-secret-key",
        runtime_envs_dir=VENV.resolve().parent,
        **FAST,
        **RUNTIME,
    )
    upgrade_database(settings)
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        CatalogService(session).upsert_entities([TEAM])
    try:
        yield settings
    finally:
        remove_local_services(settings, logs_to=settings.data_dir.parent / "logs")
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass
class PublishedService:
    name: str
    repo: Path  # the working copy it was pushed from
    contents_url: str


def publish(
    settings: Settings,
    name: str,
    *,
    edit: dict[str, str] | None = None,
    example_corpus: bool = False,
) -> PublishedService:
    """The rag-service skeleton rendered with its defaults, pushed to a bare repository of
    the portal (as publish:git does) and its catalog-info.yaml registered (as
    catalog:register does); ``edit`` overwrites files before the push."""
    repo = render_defaults(
        settings.data_dir / "render",
        service_name=name,
        owner="group:default/team-a",
        include_example_corpus="true" if example_corpus else "false",
    )
    for relative, text in (edit or {}).items():
        (repo / relative).write_text(text)
    bare = settings.data_dir / "repos" / "team-a" / f"{name}.git"
    git_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    }  # fmt: skip
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "rendered"],
        ["git", "push", "-q", str(bare), "main"],
    ):
        subprocess.run(command, cwd=repo, env=git_env, check=True, capture_output=True)
    url = f"file://{bare}/blob/main"
    documents = list(yaml.safe_load_all((repo / "catalog-info.yaml").read_text()))
    location = f"url:{url}/catalog-info.yaml"
    for document in documents:
        annotations = document["metadata"].setdefault("annotations", {})
        annotations["backstage.io/managed-by-location"] = location
        annotations["backstage.io/managed-by-origin-location"] = location
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        CatalogService(session).upsert_entities(documents)
    return PublishedService(name, repo, url)
