"""A git smart-HTTP server with basic auth, and GitHub/GitLab stand-ins on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portal_backend.db import session_scope
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.settings import Settings
from tests.git_hosts.fakes import GITHUB_SPEC, FakeGitHub, FakeGitLab
from tests.git_hosts.openapi import OpenApiSpec
from tests.git_hosts.server import GitHttpServer

# Values no log line, output or error may ever contain.
TOKEN = "tok-SECRET-7f3a9c"
USER = "portal-bot"


def store_secret(settings: Settings, session_factory, name: str, value: str) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        SecretStore(session, settings).set(GLOBAL, name, value)


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitHttpServer]:
    server = GitHttpServer(tmp_path / "served", {USER: TOKEN}).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def github_spec() -> OpenApiSpec:
    assert GITHUB_SPEC.is_file(), (
        "GitHub's OpenAPI description is missing: run scripts/setup.d/10-git-host-specs.sh"
    )
    return OpenApiSpec(GITHUB_SPEC)


@pytest.fixture
def github(tmp_path: Path, github_spec: OpenApiSpec) -> Iterator[FakeGitHub]:
    # git over HTTPS authenticates the token as x-access-token, as github.com does.
    server = GitHttpServer(tmp_path / "github", {"x-access-token": TOKEN}, api_prefix="/api/v3")
    fake = FakeGitHub(github_spec, server, TOKEN, login="alice", organizations={"acme"})
    server.api = fake.handle
    server.start()
    yield fake
    server.stop()


@pytest.fixture
def gitlab(tmp_path: Path) -> Iterator[FakeGitLab]:
    server = GitHttpServer(tmp_path / "gitlab", {"oauth2": TOKEN}, api_prefix="/api/v4")
    fake = FakeGitLab(server, TOKEN, namespaces={"platform/rag": 42, "alice": 7})
    server.api = fake.handle
    server.start()
    yield fake
    server.stop()
