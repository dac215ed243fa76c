"""Following ``Location`` entities: a registered location and every target it leads to.

As in Backstage's LocationEntityProcessor, a ``Location`` entity read from a location
names more locations in ``spec.target`` / ``spec.targets``; their type is the entity's
``spec.type`` or else the parent location's type, and relative targets are resolved
against the parent (``urljoin`` for URLs, the parent's folder for files). Each target is
read with the same checks as a directly registered location (URL safety, file roots).

Policy on top of Backstage (which silently skips repeats):
- a target that is one of its own ancestors is a cycle and refused (400), naming the chain;
- nesting deeper than ``LocationPolicy.max_depth`` or more than ``max_locations`` locations
  in one tree is refused (400);
- a ``url`` location cannot lead to a ``file`` target (a remote file must not make the
  server read its own disk): 403;
- the same target reached twice by different paths (a diamond) is read once;
- an ``mlflow`` target (a model registry, ``catalog.mlflow_source``) is read like a
  registered one: its target is an absolute URL, and it leads nowhere further.

``file`` targets may be glob patterns (``./teams/*/catalog-info.yaml``, ``**`` included), as
Backstage's FileReaderProcessor allows: each matching file is read as a location of its
own (so it is what its entities' managed-by-location names). The pattern's fixed folder
must lie under the allowed roots before anything is listed, every match is checked like
any file target, a match that is one of the pattern's ancestors (``./*.yaml`` next to the
file that holds it) is skipped rather than a cycle, and no match is not an error.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urljoin

from catalog.errors import ErrorDetail, InputError, NotAllowedError, PortalError
from catalog.locations import LOCATION_TYPES, LocationPolicy, check_file, location_key


@dataclass(frozen=True)
class TreeLocation:
    type: str
    target: str
    depth: int
    # Keys from the registered location down to this one's parent.
    ancestors: tuple[str, ...]
    # How the parent named it ("url:...: Location 'x' spec.targets[0]") and that field's
    # path in the parent's documents; errors reading this location are reported with them.
    via: str = ""
    field: str = ""

    @property
    def key(self) -> str:
        return location_key(self.type, self.target)


@dataclass(frozen=True)
class ReadLocation:
    """One location of the tree and the (validated) documents read from it."""

    key: str
    documents: list[Any]


# Reads and validates one location's documents: (type, target, is_the_registered_root).
Reader = Callable[[str, str, bool], list[Any]]


def _targets_of(document: Any) -> list[tuple[str, Any]]:
    """(path, target) pairs named by a Location entity; none for other kinds."""
    if not isinstance(document, dict) or str(document.get("kind", "")).lower() != "location":
        return []
    spec = document.get("spec") or {}
    found: list[tuple[str, Any]] = []
    if spec.get("target") is not None:
        found.append(("spec.target", spec["target"]))
    for index, target in enumerate(spec.get("targets") or []):
        found.append((f"spec.targets[{index}]", target))
    return found


def resolve_target(parent_type: str, parent_target: str, child_type: str, target: str) -> str:
    """An absolute target for ``target`` as written in a Location entity read from parent."""
    if child_type == "file":
        if target.endswith(("/", os.sep)):
            raise InputError(
                f"file target {target!r} ends with a path separator; name a file",
                [ErrorDetail("target", "a file path, not a folder")],
            )
        if PurePosixPath(target).is_absolute() or parent_type != "file":
            return target
        return os.path.normpath(os.path.join(os.path.dirname(parent_target), target))
    if child_type == "url" and parent_type == "url":
        return urljoin(parent_target, target)
    return target


def _with_context(exc: PortalError, context: str, path: str) -> PortalError:
    # "target"/"type" details are about the location itself: point at the field naming it.
    details = [
        ErrorDetail(path if d.path in ("", "target", "type") else d.path, d.message)
        for d in exc.details
    ] or [ErrorDetail(path, exc.message)]
    return type(exc)(f"{context}: {exc.message}", details)


def read_tree(
    root_type: str, root_target: str, policy: LocationPolicy, read: Reader
) -> list[ReadLocation]:
    """Every location of the tree, depth first, each with its documents.

    Any location that cannot be read or validated fails the whole tree (all or nothing),
    with a message naming the Location entity and field that led to it.
    """
    result: list[ReadLocation] = []
    seen: set[str] = set()
    stack = [TreeLocation(root_type, root_target, 0, ())]
    while stack:
        current = stack.pop()
        if current.key in seen:
            continue
        seen.add(current.key)
        if len(seen) > policy.max_locations:
            raise InputError(
                f"location {location_key(root_type, root_target)} leads to more than "
                f"{policy.max_locations} locations; split it into several registrations",
                [ErrorDetail("target", f"more than {policy.max_locations} locations")],
            )
        is_root = not current.ancestors
        try:
            if current.type == "file" and glob.has_magic(current.target):
                # Matches are read next, in name order; the pattern itself holds nothing.
                stack.extend(reversed(_matches(current, policy)))
                continue
            documents = read(current.type, current.target, is_root)
        except PortalError as exc:
            if is_root:
                raise
            raise _with_context(exc, current.via, current.field) from exc
        result.append(ReadLocation(current.key, documents))
        children: list[TreeLocation] = []
        for index, document in enumerate(documents):
            for path, written in _targets_of(document):
                field = f"documents[{index}].{path}"
                name = (document.get("metadata") or {}).get("name")
                context = f"{current.key}: Location {name!r} {path}"
                children.append(_child(current, document, written, field, context, policy))
        # Depth first, in document order.
        stack.extend(reversed(children))
    return result


def _matches(pattern: TreeLocation, policy: LocationPolicy) -> list[TreeLocation]:
    """The files a ``file`` glob target matches, as locations one step below the pattern."""
    parts = pattern.target.split(os.sep)
    fixed = os.sep.join(
        p for p in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]
    )
    check_file(fixed or os.sep, policy)  # nothing is listed outside the allowed roots
    ancestors = (*pattern.ancestors, pattern.key)
    found = []
    for match in sorted(glob.glob(pattern.target, recursive=True)):
        if not os.path.isfile(match) or location_key("file", match) in ancestors:
            continue
        found.append(
            TreeLocation("file", match, pattern.depth, ancestors, pattern.via, pattern.field)
        )
    return found


def _child(
    parent: TreeLocation,
    document: dict[str, Any],
    written: Any,
    field: str,
    context: str,
    policy: LocationPolicy,
) -> TreeLocation:
    if not isinstance(written, str) or not written.strip():
        raise InputError(f"{context} must be a non-empty string", [ErrorDetail(field, "string")])
    child_type = (document.get("spec") or {}).get("type") or parent.type
    if child_type not in LOCATION_TYPES:
        raise InputError(
            f"{context}: location type {child_type!r} is not supported; "
            "use 'url', 'file' or 'mlflow'",
            [ErrorDetail(field.rsplit(".", 1)[0] + ".type", "must be 'url', 'file' or 'mlflow'")],
        )
    if parent.type == "url" and child_type == "file":
        raise NotAllowedError(
            f"{context}: a url location cannot lead to a file target ({written!r}); "
            "the server does not read its own files on behalf of remote catalog files",
            [ErrorDetail(field, "file target from a url location")],
        )
    try:
        target = resolve_target(parent.type, parent.target, child_type, written.strip())
    except PortalError as exc:
        raise _with_context(exc, context, field) from exc
    child = TreeLocation(
        child_type, target, parent.depth + 1, (*parent.ancestors, parent.key), context, field
    )
    chain = (*child.ancestors, child.key)
    if child.key in child.ancestors:
        raise InputError(
            f"{context}: location cycle {' -> '.join(chain)}; a location cannot lead back "
            "to one of its own ancestors",
            [ErrorDetail(field, "cycle")],
        )
    if child.depth > policy.max_depth:
        raise InputError(
            f"{context}: locations nest deeper than {policy.max_depth} levels "
            f"({' -> '.join(chain)})",
            [ErrorDetail(field, f"deeper than {policy.max_depth} levels")],
        )
    return child


__all__ = ["ReadLocation", "read_tree", "resolve_target"]
