"""URL locations: the address that was checked is the address connected to (DNS rebinding).

Two YAML servers listen on the same port of two loopback addresses: 127.0.0.2 plays a
public host (the check is told to accept it, as it would a public address) and
127.0.0.3 an internal one holding something no location may read. The resolver answers
the public address on a name's first lookup and the internal one on every later lookup,
as a rebinding DNS server does. A fetch that resolved the name again after checking it
would read the internal document.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from catalog import url_fetch
from catalog.errors import InputError
from catalog.locations import LocationPolicy, read_target

PUBLIC, INTERNAL = "127.0.0.2", "127.0.0.3"


@dataclass
class Host:
    address: str
    hits: list[str] = field(default_factory=list)


def _serve(address: str, port: int, host: Host, routes: dict[str, tuple[int, str]]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            host.hits.append(self.path)
            status, body = routes.get(self.path, (404, "not here"))
            self.send_response(status)
            if status in (301, 302, 307):
                self.send_header("Location", body)
                body = ""
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@dataclass
class Hosts:
    port: int
    public: Host
    internal: Host
    public_routes: dict[str, tuple[int, str]]


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    public, internal = Host(PUBLIC), Host(INTERNAL)
    public_routes: dict[str, tuple[int, str]] = {
        "/catalog-info.yaml": (200, "public: true\n"),
    }
    first = _serve(PUBLIC, 0, public, public_routes)
    port = first.server_address[1]
    second = _serve(INTERNAL, port, internal, {"/catalog-info.yaml": (200, "internal: secret\n")})
    yield Hosts(port, public, internal, public_routes)
    for server in (first, second):
        server.shutdown()
        server.server_close()


class RebindingResolver:
    """The public address on each name's first lookup, the internal one afterwards."""

    def __init__(self, fixed: dict[str, str] | None = None) -> None:
        self.lookups: Counter[str] = Counter()
        self.fixed = fixed or {}

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups[host] += 1
        if host in self.fixed:
            return [self.fixed[host]]
        return [PUBLIC] if self.lookups[host] == 1 else [INTERNAL]


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The resolver answers the machine's own lookups of *.test names too, so that a fetch
    that resolved a name again through the system would meet the rebinding answer."""
    system = socket.getaddrinfo

    def use(resolver: RebindingResolver) -> RebindingResolver:
        def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
            if isinstance(host, str) and host.endswith(".test"):
                return [
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))
                    for address in resolver(host, int(port or 80))
                ]
            return system(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return resolver

    return use


@pytest.fixture(autouse=True)
def public_plays_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.2 counts as a public address for these tests; every other check stands."""
    refused = url_fetch.refused_address
    monkeypatch.setattr(
        url_fetch, "refused_address", lambda address: address != PUBLIC and refused(address)
    )


def test_the_fetch_connects_to_the_address_that_was_checked(hosts: Hosts, install) -> None:
    resolver = install(RebindingResolver())
    policy = LocationPolicy(resolver=resolver)
    text = read_target("url", f"http://rebind.test:{hosts.port}/catalog-info.yaml", policy)
    assert text == "public: true\n"
    assert hosts.public.hits == ["/catalog-info.yaml"]
    assert hosts.internal.hits == []
    assert resolver.lookups["rebind.test"] == 1  # one lookup: the checked one


def test_a_redirect_to_a_rebinding_name_is_checked_where_it_connects(hosts: Hosts, install) -> None:
    """public.test redirects to rebind.test, already looked up once (by an earlier check,
    say), so it now answers the internal address: the fetch refuses it, it never connects."""
    hosts.public_routes["/moved.yaml"] = (302, f"http://rebind.test:{hosts.port}/catalog-info.yaml")
    resolver = install(RebindingResolver(fixed={"public.test": PUBLIC}))
    resolver.lookups["rebind.test"] = 1
    policy = LocationPolicy(resolver=resolver)
    with pytest.raises(InputError, match=r"private, loopback or link-local address \(127.0.0.3\)"):
        read_target("url", f"http://public.test:{hosts.port}/moved.yaml", policy)
    assert hosts.public.hits == ["/moved.yaml"]
    assert hosts.internal.hits == []


def test_a_redirect_reads_from_the_address_its_own_check_passed(hosts: Hosts, install) -> None:
    hosts.public_routes["/moved.yaml"] = (302, f"http://rebind.test:{hosts.port}/catalog-info.yaml")
    resolver = install(RebindingResolver(fixed={"public.test": PUBLIC}))
    text = read_target(
        "url", f"http://public.test:{hosts.port}/moved.yaml", LocationPolicy(resolver=resolver)
    )
    assert text == "public: true\n"
    assert hosts.public.hits == ["/moved.yaml", "/catalog-info.yaml"]
    assert hosts.internal.hits == []


def test_a_name_with_any_private_address_is_refused_before_connecting(hosts: Hosts) -> None:
    policy = LocationPolicy(resolver=lambda host, port: [PUBLIC, INTERNAL])
    with pytest.raises(InputError, match=r"\(127.0.0.3\)"):
        read_target("url", f"http://mixed.test:{hosts.port}/catalog-info.yaml", policy)
    assert hosts.public.hits == [] and hosts.internal.hits == []
