"""Reading location targets (``url``, ``file`` and ``mlflow``) safely.

URL targets: http(s) only; every address the host resolves to is checked (private,
loopback, link-local, multicast and reserved ranges are refused unless the policy
allows them) and the fetch connects to one of those checked addresses (catalog.url_fetch:
no second lookup a changed DNS answer could slip through); redirects are followed by hand
so each hop is checked again, and the fetch is capped in size and time. File targets:
only under the allowed roots. ``mlflow`` targets (an MLflow tracking server, read as
entities by ``catalog.mlflow_source``) get the URL checks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from catalog.errors import ErrorDetail, InputError, NotAllowedError, PayloadTooLargeError
from catalog.mlflow_source import MLFLOW, parse_target, read_registry
from catalog.url_fetch import Resolver, checked_addresses, pinned_client, system_resolver

LOCATION_TYPES = ("url", "file", MLFLOW)
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class LocationPolicy:
    allow_private_urls: bool = False
    # None: any path (trusted in-process callers); the HTTP API always passes roots.
    file_roots: tuple[Path, ...] | None = None
    max_bytes: int = 5 * 1024 * 1024
    timeout_s: float = 10.0
    # Location entities' targets: how deep they may nest, how many locations and how many
    # bytes in all one registration reaches (a tree is read whole: all or nothing).
    max_depth: int = 5
    max_locations: int = 1000
    max_tree_bytes: int = 50 * 1024 * 1024
    # How host names become addresses (tests answer differently from one lookup to the next).
    resolver: Resolver = field(default=system_resolver, compare=False)
    # mlflow targets: the Authorization header for a tracking server, by origin
    # (scheme://host[:port]).
    mlflow_auth: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


def location_key(location_type: str, target: str) -> str:
    return f"{location_type}:{target}"


def check_url(url: str, policy: LocationPolicy, *, resolve: bool = True) -> None:
    """Scheme and host; with ``resolve``, every address the host has now. A fetch checks
    the addresses it connects to itself, so it passes ``resolve=False``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InputError(
            f"location target {url!r} must be an http(s) URL",
            [ErrorDetail("target", "only http and https URLs are accepted")],
        )
    if not parts.hostname:
        raise InputError(f"location target {url!r} has no host", [ErrorDetail("target", "no host")])
    if policy.allow_private_urls or not resolve:
        return
    checked_addresses(
        parts.hostname,
        parts.port or (443 if parts.scheme == "https" else 80),
        allow_private=False,
        resolver=policy.resolver,
        url=url,
    )


def check_file(target: str, policy: LocationPolicy) -> Path:
    path = Path(target).expanduser()
    if not path.is_absolute():
        raise InputError(
            f"file location {target!r} must be an absolute path",
            [ErrorDetail("target", "use an absolute path")],
        )
    resolved = path.resolve()
    if policy.file_roots is not None and not any(
        resolved.is_relative_to(root) for root in policy.file_roots
    ):
        roots = ", ".join(str(r) for r in policy.file_roots)
        raise NotAllowedError(
            f"file location {target!r} is outside the allowed roots ({roots}); "
            "set RAGPORTAL_ALLOWED_FILE_ROOTS to allow more",
            [ErrorDetail("target", "outside the allowed file roots")],
        )
    return resolved


def check_target(location_type: str, target: str, policy: LocationPolicy) -> None:
    if location_type not in LOCATION_TYPES:
        raise InputError(
            f"location type {location_type!r} is not supported; use 'url', 'file' or 'mlflow'",
            [ErrorDetail("type", "must be 'url', 'file' or 'mlflow'")],
        )
    if not isinstance(target, str) or not target.strip():
        raise InputError("location target is required", [ErrorDetail("target", "required")])
    if location_type == "url":
        check_url(target, policy)
    elif location_type == MLFLOW:
        check_url(parse_target(target).base, policy)
    else:
        check_file(target, policy)


def _fetch_url(url: str, policy: LocationPolicy) -> str:
    deadline = time.monotonic() + policy.timeout_s
    current = url
    with pinned_client(
        allow_private=policy.allow_private_urls,
        resolver=policy.resolver,
        timeout_s=policy.timeout_s,
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(current, policy, resolve=False)  # the connection checks the address
            try:
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        current = urljoin(current, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise InputError(
                            f"fetching {current} returned HTTP {response.status_code}",
                            [ErrorDetail("target", f"HTTP {response.status_code}")],
                        )
                    chunks: list[bytes] = []
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > policy.max_bytes:
                            raise PayloadTooLargeError(
                                f"{current} is larger than the limit of {policy.max_bytes} bytes"
                            )
                        if time.monotonic() > deadline:
                            raise InputError(
                                f"fetching {current} took longer than {policy.timeout_s}s"
                            )
                        chunks.append(chunk)
                    return b"".join(chunks).decode("utf-8", errors="replace")
            except httpx.HTTPError as exc:
                raise InputError(
                    f"could not fetch {current}: {type(exc).__name__}: {exc}",
                    [ErrorDetail("target", "fetch failed")],
                ) from exc
    raise InputError(f"{url} redirected more than {MAX_REDIRECTS} times")


def read_mlflow(target: str, policy: LocationPolicy, budget: int) -> tuple[list[Any], int]:
    """The entities of an ``mlflow`` location (``catalog.mlflow_source``) and the bytes
    its answers held, at most ``budget``; raises a 4xx PortalError."""
    check_target(MLFLOW, target, policy)
    with pinned_client(
        allow_private=policy.allow_private_urls,
        resolver=policy.resolver,
        timeout_s=policy.timeout_s,
    ) as client:
        return read_registry(client, target, policy, budget)


def read_target(
    location_type: str, target: str, policy: LocationPolicy, *, registered: bool = False
) -> str:
    """The text at a location, after the safety checks; raises a 4xx PortalError.

    ``registered``: the target of a location already registered, whose file path passed
    the allowed-roots check (or was imported by the server's owner) when it was added;
    only targets reached through it are checked against the roots again. URL checks
    always apply, as DNS can change.
    """
    if registered and location_type == "file":
        policy = replace(policy, file_roots=None)
    if location_type == "url":
        return _fetch_url(target, policy)
    if location_type == MLFLOW:
        raise InputError("an mlflow location holds entities, not text: use read_mlflow")
    check_target(location_type, target, policy)
    path = check_file(target, policy)
    if not path.is_file():
        raise InputError(
            f"file location {target!r} does not exist or is not a file",
            [ErrorDetail("target", "no such file")],
        )
    size = path.stat().st_size
    if size > policy.max_bytes:
        raise PayloadTooLargeError(f"{target} is {size} bytes; the limit is {policy.max_bytes}")
    return path.read_text(encoding="utf-8", errors="replace")
