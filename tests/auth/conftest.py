"""A real OpenID provider (npm oidc-provider, tests/oidc_provider/provider.mjs) on
127.0.0.1, portals configured to sign in through it, the catalog's users and groups, and
a driver that signs a person in over HTTP exactly as a browser would (redirects, the
provider's login form, the callback)."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest
import uvicorn

from portal_backend.settings import Settings
from tests.conftest import LiveServer, free_port, start_live_server
from tests.processes import stop_process_group
from tests.ui.seed import rag_service, seed

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"
ADMIN_GROUP = "group:default/platform"


@dataclass(frozen=True)
class OidcProvider:
    issuer: str


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").exists():
        raise RuntimeError(
            "oidc-provider is not installed: run scripts/setup.d/10-oidc-provider.sh"
        )
    port = free_port()
    log = (tmp_path_factory.mktemp("oidc") / "provider.log").open("w")
    process = subprocess.Popen(
        ["node", "provider.mjs"],
        cwd=PROVIDER_DIR,
        env={**os.environ, "PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            stop_process_group(process)
            raise RuntimeError(f"oidc-provider did not start; see {log.name}")
        time.sleep(0.1)
    yield OidcProvider(issuer)
    stop_process_group(process)
    log.close()


def user(name: str, email: str, *groups: str) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": name},
        "spec": {
            "profile": {"email": email, "displayName": name.title()},
            "memberOf": list(groups),
        },
    }


def group(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": name},
        "spec": {"type": "team", "children": []},
    }


def people() -> list[dict[str, Any]]:
    """bob is in two groups; dave is an admin (the admin group); carol is not here."""
    return [
        *(group(g) for g in ("team-a", "team-b", "team-c", "platform")),
        user("alice", "alice@example.com", "team-a"),
        user("bob", "bob@example.com", "team-a", "team-b"),
        user("dave", "dave@example.com", "platform"),
    ]


def services() -> list[dict[str, Any]]:
    """One RAG service per team: svc-a (team-a), svc-b (team-b), svc-c (team-c)."""
    return [e for team in "abc" for e in rag_service(f"svc-{team}", owner=f"team-{team}")]


PortalFactory = Callable[..., LiveServer]


@pytest.fixture
def oidc_portal(
    settings: Settings, session_factory: Any, oidc_provider: OidcProvider
) -> Iterator[PortalFactory]:
    """Starts portals that sign in through the provider (``client_id`` picks the provider
    client, so also its faults); the catalog holds people() and services()."""
    seed(session_factory, people() + services())
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(client_id: str = "portal", **overrides: Any) -> LiveServer:
        port = free_port()
        values = {
            "base_url": f"http://127.0.0.1:{port}",
            "oidc_issuer": oidc_provider.issuer,
            "oidc_client_id": client_id,
            "oidc_client_secret": f"{client_id}-secret",
            "oidc_scopes": ["openid", "email", "profile", "groups"],
            "admin_group": ADMIN_GROUP,
            **overrides,
        }
        live, server, thread = start_live_server(settings.model_copy(update=values), port=port)
        started.append((server, thread))
        return live

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class SignInResult:
    client: httpx.Client  # holds the portal's session cookie (and the provider's)
    response: httpx.Response  # the portal's last answer

    @property
    def session_cookie(self) -> str | None:
        return self.client.cookies.get("ragportal_session")


def sign_in(
    portal: LiveServer,
    login: str,
    next_path: str = "/",
    tamper: Callable[[str], str] | None = None,
) -> SignInResult:
    """Follows the whole flow as a browser: portal -> provider -> its login form -> its
    consent page -> the portal's callback (``tamper`` may change that address first) ->
    ``next_path``."""
    client = httpx.Client(timeout=30)
    callback = portal.url + "/login/oidc/callback"
    response = client.get(f"{portal.url}/login/oidc", params={"next": next_path})
    for _ in range(20):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if tamper is not None and location.startswith(callback):
                location = tamper(location)
            response = client.get(location)
            continue
        form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', response.text)
        if form and "/interaction/" in str(response.url):
            action = urljoin(str(response.url), form.group(1))
            if 'name="login"' in response.text:  # the provider's login form
                fields = {"prompt": "login", "login": login, "password": "any"}
            else:  # its consent page: the person authorizes the portal
                fields = {"prompt": "consent"}
            response = client.post(action, data=fields)
            continue
        return SignInResult(client, response)
    raise AssertionError("the sign-in flow did not settle in 20 steps")


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))
