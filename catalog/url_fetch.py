"""HTTP(S) fetches that connect only to addresses that passed the safety check.

A host name is resolved once per connection, every address it resolves to is checked,
and the connection is made to one of those very addresses (the TLS server name and the
Host header stay the host name). Checking a name and then letting the HTTP client
resolve it again would let a DNS answer that changes in between (DNS rebinding) send
the fetch to a private address that was never checked; a redirect opens a connection
through the same check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from catalog.errors import ErrorDetail, InputError

# host, port -> the addresses to try, in order (socket.getaddrinfo's by default).
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(
            f"cannot resolve host {host!r}",
            [ErrorDetail("target", f"host does not resolve: {exc}")],
        ) from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def checked_addresses(
    host: str, port: int, *, allow_private: bool, resolver: Resolver, url: str | None = None
) -> list[str]:
    """The addresses of ``host``, all checked; refuses the host if any of them is refused
    (an answer mixing public and private addresses is no safer than a private one)."""
    where = f"location target {url!r}" if url else f"host {host!r}"
    addresses = resolver(host, port)
    if not addresses:
        raise InputError(f"{where} resolves to no address", [ErrorDetail("target", "no address")])
    if allow_private:
        return addresses
    for address in addresses:
        if refused_address(address):
            raise InputError(
                f"{where} resolves to a private, loopback or "
                f"link-local address ({address}); such targets are refused "
                "(RAGPORTAL_ALLOW_PRIVATE_URLS=true allows them)",
                [ErrorDetail("target", "private, loopback or link-local address refused")],
            )
    return addresses


class PinnedNetworkBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting to a checked address of the host it is asked
    for. httpcore passes the origin's host name here and uses it again for TLS (SNI,
    certificate check), so only the TCP connect moves to the pinned address."""

    def __init__(self, *, allow_private: bool, resolver: Resolver) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = checked_addresses(
            host, port, allow_private=self.allow_private, resolver=self.resolver
        )
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses is never empty
        raise failure


def pinned_client(*, allow_private: bool, resolver: Resolver, timeout_s: float) -> httpx.Client:
    """An httpx client (no redirects followed, no proxies from the environment: a proxy
    would resolve the name itself) whose every connection goes through the check."""
    transport = httpx.HTTPTransport(trust_env=False)
    # httpx takes no network backend of its own; its transport is a thin adapter over this
    # httpcore pool, built here with the same TLS context and the pinned backend.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        network_backend=PinnedNetworkBackend(allow_private=allow_private, resolver=resolver),
    )
    return httpx.Client(
        transport=transport, timeout=timeout_s, follow_redirects=False, trust_env=False
    )
