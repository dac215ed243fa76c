"""Template versions as text: ``spec.version`` (semver), ordering, and changelogs.

A template's changelog is ``spec.changelog`` in template.yaml (a list of
``{version, changes}``, changes a string or a list of strings) or, without it, the
``CHANGELOG.md`` beside template.yaml, one ``## <version>`` section per version (Keep a
Changelog's ``## [1.2.0] - 2026-12-06`` is read too). Pure functions: no database, no git.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import semver

CHANGELOG_FILE = "CHANGELOG.md"
_HEADING = re.compile(r"^##\s+\[?v?(?P<version>[0-9][^\]\s]*)\]?(?P<rest>.*)$")


class VersionError(ValueError):
    """A version string that is not semver; the message says what to write instead."""


def parse(version: str) -> semver.Version:
    try:
        return semver.Version.parse(str(version).strip().removeprefix("v"))
    except (ValueError, TypeError) as exc:
        raise VersionError(
            f"{version!r} is not a semantic version: write MAJOR.MINOR.PATCH, e.g. 1.2.0"
        ) from exc


def normalize(version: str) -> str:
    """``v1.2.0`` and ``1.2.0`` are one version; stored and shown without the ``v``."""
    return str(parse(version))


def template_version(entity: dict[str, Any]) -> str | None:
    """The template's ``spec.version``, normalised; None for an unversioned template."""
    raw = (entity.get("spec") or {}).get("version")
    if raw in (None, ""):
        return None
    return normalize(str(raw))


def version_of(entity: dict[str, Any]) -> str | None:
    """``template_version``, or None where spec.version is not semver (such a template is
    refused when it is registered)."""
    try:
        return template_version(entity)
    except VersionError:
        return None


def ordered(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=parse)


def latest(versions: Iterable[str]) -> str | None:
    found = ordered(versions)
    return found[-1] if found else None


def between(versions: Iterable[str], after: str | None, upto: str) -> list[str]:
    """Versions in ``(after, upto]``, oldest first: what an upgrade from ``after`` brings."""
    low = parse(after) if after else None
    high = parse(upto)
    return [v for v in ordered(versions) if (low is None or parse(v) > low) and parse(v) <= high]


def distance(current: str, target: str) -> str:
    """How far behind, in semver terms: ``major``, ``minor``, ``patch``, ``prerelease`` or
    ``none``."""
    a, b = parse(current), parse(target)
    if a >= b:
        return "none"
    if a.major != b.major:
        return "major"
    if a.minor != b.minor:
        return "minor"
    if a.patch != b.patch:
        return "patch"
    return "prerelease"


def changelog_from_markdown(text: str) -> dict[str, str]:
    """``## <version>`` sections of a CHANGELOG.md, each section's body as written."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            try:
                current = normalize(match["version"])
            except VersionError:
                current = None  # "## Unreleased" and the like
                continue
            sections[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None:
            sections[current].append(line)
    return {v: "\n".join(lines).strip() for v, lines in sections.items()}


def _changelog_from_spec(entries: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or "version" not in entry:
            continue
        changes = entry.get("changes") or ""
        if isinstance(changes, list):
            changes = "\n".join(f"- {c}" for c in changes)
        found[normalize(str(entry["version"]))] = str(changes).strip()
    return found


def changelog(entity: dict[str, Any], directory: Path | None) -> dict[str, str]:
    """The template's changelog by version: ``spec.changelog`` wins, else CHANGELOG.md."""
    spec_entries = (entity.get("spec") or {}).get("changelog")
    if spec_entries:
        return _changelog_from_spec(spec_entries)
    if directory is not None and (directory / CHANGELOG_FILE).is_file():
        return changelog_from_markdown((directory / CHANGELOG_FILE).read_text(encoding="utf-8"))
    return {}
