"""Recorded template versions: a snapshot of the template's folder per ``spec.version``.

Why snapshots in the database rather than the git history of the templates folder: the
portal runs from an installed package or an image (no .git), templates also come from
folders outside this repository, and workers on several machines share only the
database. So when a versioned template is registered (at start-up, through the API, or
when a task of it is first submitted), its folder is archived (deterministic tar.gz) on
``scaffolder_template_versions`` under (template ref, version). Rendering a recorded
version later extracts that archive into ``<data_dir>/template-versions/<digest>/``
(once per machine) and renders from there.

Registering a folder whose content differs from what was recorded under the same
version is refused (``TemplateVersionConflict``, 409): a version names one content.

Versions recorded before a template was versioned ship with it as
``<template folder>/history/<version>.tar.gz`` (the folder as it was; built by
``scripts/template_history.py`` from a commit of this repository) and are recorded
beside the current one. ``history/`` itself is not part of any version's content.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError, ErrorDetail, InputError, NotFoundError
from portal_backend.db import session_scope
from portal_backend.scaffolder import versions
from portal_backend.scaffolder.templates import Template, load_template_file
from portal_backend.scaffolder.upgrade_tables import TemplateVersion
from portal_backend.settings import Settings

HISTORY_DIR = "history"
# Never part of a template's content: build and editor leftovers.
_SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git"}
_SKIPPED_FILES = {".DS_Store"}


class TemplateVersionConflict(ConflictError):
    """The folder changed but its ``spec.version`` did not (or went backwards)."""


@dataclass(frozen=True)
class RecordedVersion:
    template_ref: str
    version: str
    digest: str
    trusted: bool
    changelog: dict[str, str]
    source: str
    recorded_at: datetime


def _files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _SKIPPED_DIRS and not (rel_root == Path(".") and d == HISTORY_DIR)
        )
        for name in sorted(files):
            if name not in _SKIPPED_FILES and not name.endswith(".pyc"):
                found.append(Path(root, name))
    return found


def folder_digest(folder: Path) -> str:
    """Digest of the files (path, executable bit, bytes): what "the same content" means."""
    digest = hashlib.sha256()
    for path in _files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(b"X" if os.access(path, os.X_OK) else b"F")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def folder_archive(folder: Path) -> bytes:
    """A deterministic tar.gz of the folder (sorted, no times or owners), so the same
    content always makes the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in _files(folder):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def _extract(archive: bytes, dest: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")


def _view(row: TemplateVersion) -> RecordedVersion:
    return RecordedVersion(
        row.template_ref,
        row.version,
        row.digest,
        row.trusted,
        dict(row.changelog or {}),
        row.source,
        row.recorded_at,
    )


def _metadata_columns() -> tuple[Any, ...]:
    t = TemplateVersion
    return (
        t.template_ref,
        t.version,
        t.digest,
        t.trusted,
        t.changelog,
        t.source,
        t.recorded_at,
    )


def list_versions(session: Session, template_ref: str) -> list[RecordedVersion]:
    """Every recorded version of the template, oldest first (archives not loaded)."""
    rows = session.execute(
        select(*_metadata_columns()).where(TemplateVersion.template_ref == template_ref)
    ).all()
    found = [RecordedVersion(*row) for row in rows]
    return sorted(found, key=lambda v: versions.parse(v.version))


def get_version(session: Session, template_ref: str, version: str) -> RecordedVersion | None:
    row = session.execute(
        select(*_metadata_columns()).where(
            TemplateVersion.template_ref == template_ref,
            TemplateVersion.version == versions.normalize(version),
        )
    ).first()
    return RecordedVersion(*row) if row else None


def record_archive(
    factory: sessionmaker[Session],
    *,
    template_ref: str,
    version: str,
    folder: Path,
    trusted: bool,
    source: str,
) -> tuple[RecordedVersion, bool]:
    """Record ``folder`` as ``version`` of the template; (the record, whether it is new).
    The same content again is a no-op; other content under a recorded version is refused."""
    version = versions.normalize(version)
    digest = folder_digest(folder)
    with session_scope(factory) as session:
        existing = session.get(TemplateVersion, (template_ref, version))
        if existing is not None:
            _check_same(existing, digest, folder)
            return _view(existing), False
    entity = load_template_file(folder / "template.yaml")
    archive = folder_archive(folder)
    row = TemplateVersion(
        template_ref=template_ref,
        version=version,
        digest=digest,
        archive=archive,
        size_bytes=len(archive),
        trusted=trusted,
        changelog=versions.changelog(entity, folder),
        source=source[:255],
        recorded_at=datetime.now(UTC),
    )
    try:
        with session_scope(factory) as session:
            session.add(row)
        return _view(row), True
    except IntegrityError:
        # Another process recorded it at the same moment: same content or refused.
        with session_scope(factory) as session:
            existing = session.get(TemplateVersion, (template_ref, version))
            assert existing is not None
            _check_same(existing, digest, folder)
            return _view(existing), False


def _check_same(existing: TemplateVersion, digest: str, folder: Path) -> None:
    if existing.digest != digest:
        raise TemplateVersionConflict(
            f"template {existing.template_ref} in {folder} changed since version "
            f"{existing.version} was recorded, but its spec.version is still "
            f"{existing.version}: raise spec.version in template.yaml (semver, e.g. "
            f"{versions.parse(existing.version).bump_patch()}) and describe the change in "
            "its changelog, then register it again"
        )


def _history(folder: Path) -> list[tuple[str, Path]]:
    root = folder / HISTORY_DIR
    found = []
    for path in sorted(root.glob("*.tar.gz")) if root.is_dir() else []:
        found.append((versions.normalize(path.name.removesuffix(".tar.gz")), path))
    return found


def record_template(
    factory: sessionmaker[Session], template: Template, *, with_history: bool = True
) -> str | None:
    """Record a versioned template's folder (and, ``with_history``, its shipped earlier
    versions); returns its version, None for an unversioned template. Raises
    TemplateVersionConflict (409) for changed content under a recorded version, and
    InputError (400) for a spec.version that is not semver."""
    if template.directory is None or not (template.directory / "template.yaml").is_file():
        return None
    # The folder's own template.yaml says which version its content is.
    entity = load_template_file(template.directory / "template.yaml")
    try:
        version = versions.template_version(entity)
    except versions.VersionError as exc:
        raise InputError(
            f"template {template.ref}: spec.version {exc}", [ErrorDetail("spec.version", str(exc))]
        ) from exc
    if version is None:
        return None
    for old, archive in _history(template.directory) if with_history else []:
        if versions.parse(old) >= versions.parse(version):
            raise TemplateVersionConflict(
                f"{archive}: a shipped earlier version must be lower than spec.version {version}"
            )
        with session_scope(factory) as session:
            row = session.get(TemplateVersion, (template.ref, old))
            if row is not None and bytes(row.archive) == archive.read_bytes():
                continue  # recorded from this very archive (archives are deterministic)
        with tempfile.TemporaryDirectory(prefix="ragportal-template-history-") as scratch:
            _extract(archive.read_bytes(), Path(scratch))
            record_archive(
                factory,
                template_ref=template.ref,
                version=old,
                folder=Path(scratch),
                trusted=template.trusted,
                source=f"{HISTORY_DIR}/{archive.name}",
            )
    recorded, _ = record_archive(
        factory,
        template_ref=template.ref,
        version=version,
        folder=template.directory,
        trusted=template.trusted,
        source=str(template.directory),
    )
    return recorded.version


# Parsed template.yaml of each extracted snapshot, by digest (PyYAML takes ~0.1 s for
# the rag-service template; an upgrade reads two versions, a fleet a hundred times).
_entities: dict[str, dict[str, Any]] = {}


def _cache_root(settings: Settings) -> Path:
    return settings.data_dir / "template-versions"


def materialize(
    settings: Settings, factory: sessionmaker[Session], template_ref: str, version: str
) -> Template:
    """The recorded version as a Template whose folder is its snapshot, extracted once per
    machine under ``<data_dir>/template-versions/<digest>`` (atomically, by rename)."""
    with session_scope(factory) as session:
        info = get_version(session, template_ref, version)
        if info is None:
            known = ", ".join(v.version for v in list_versions(session, template_ref)) or "none"
            raise NotFoundError(
                f"version {version} of {template_ref} is not recorded (recorded: {known})"
            )
    folder = _cache_root(settings) / info.digest
    if not (folder / "template.yaml").is_file():
        with session_scope(factory) as session:
            row = session.get(TemplateVersion, (template_ref, info.version))
            assert row is not None
            archive = bytes(row.archive)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.parent / f".{info.digest}.{uuid.uuid4().hex[:8]}"
        _extract(archive, staging)
        try:
            os.rename(staging, folder)
        except OSError:  # another worker extracted it first: same content
            shutil.rmtree(staging, ignore_errors=True)
    entity = _entities.get(info.digest)
    if entity is None:  # a digest names one content: parse its template.yaml once
        entity = _entities[info.digest] = load_template_file(folder / "template.yaml")
    return Template(template_ref, copy.deepcopy(entity), folder, info.trusted)


def changelog_between(
    session: Session, template_ref: str, after: str | None, upto: str
) -> list[dict[str, str]]:
    """What versions in ``(after, upto]`` changed, newest first, as the newest recorded
    changelog tells it (a later version's changelog may describe older ones better)."""
    recorded = list_versions(session, template_ref)
    entries: dict[str, str] = {}
    for info in recorded:  # oldest first: later changelogs override earlier ones
        entries.update(info.changelog)
    wanted = versions.between([v.version for v in recorded] + list(entries), after, upto)
    return [{"version": v, "changes": entries.get(v, "")} for v in reversed(dict.fromkeys(wanted))]


def describe(info: RecordedVersion) -> dict[str, Any]:
    return {
        "version": info.version,
        "digest": info.digest,
        "source": info.source,
        "recordedAt": info.recorded_at.isoformat() if info.recorded_at else None,
        "changes": info.changelog.get(info.version, ""),
    }


def entity_of_archive(archive: bytes) -> dict[str, Any]:
    """template.yaml of an archive (for scripts and checks)."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile("template.yaml")
        assert member is not None
        return dict(yaml.safe_load(member.read()))
