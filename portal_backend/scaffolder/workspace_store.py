"""A task's workspace travels between workers through the database.

One queue message runs one step, on whichever worker takes it, and workers need not
share a folder (the Helm chart gives each pod its own). So after a step completes, the
workspace is saved as a gzipped tar on the task's row in ``scaffolder_workspaces``; before
a step runs, a worker whose local copy differs (or is missing) replaces it with the
saved one. A retry therefore also starts from the files as the last completed step left
them, not from what a failed attempt half-wrote.

Digests are over file contents (path, executable bit, bytes; link targets), not over
archive bytes, so an unchanged workspace is neither uploaded nor downloaded again.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import session_scope
from portal_backend.scaffolder.store import TERMINAL, now
from portal_backend.scaffolder.tables import ScaffolderTask, ScaffolderWorkspace

# Scratch folders actions keep inside the workspace that the next step never needs.
SCRATCH = (".provision",)


class WorkspaceTooLarge(Exception):
    pass


def _files(workspace: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(workspace):
        rel_root = Path(root).relative_to(workspace)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in SCRATCH]
        dirs.sort()
        for name in sorted(files):
            found.append(Path(root, name))
        # Symlinks to folders are listed as entries themselves, never followed.
        for name in list(dirs):
            if Path(root, name).is_symlink():
                found.append(Path(root, name))
                dirs.remove(name)
    return found


def content_digest(workspace: Path) -> str:
    digest = hashlib.sha256()
    if not workspace.is_dir():
        return ""
    for path in _files(workspace):
        rel = path.relative_to(workspace).as_posix()
        digest.update(rel.encode() + b"\0")
        if path.is_symlink():
            digest.update(b"L" + os.readlink(path).encode() + b"\0")
            continue
        digest.update(b"X" if os.access(path, os.X_OK) else b"F")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _archive(workspace: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for path in _files(workspace):
            archive.add(path, arcname=path.relative_to(workspace).as_posix(), recursive=False)
    return buffer.getvalue()


def save(
    factory: sessionmaker[Session], task_id: str, step_id: str, workspace: Path, max_bytes: int
) -> bool:
    """Store the workspace after ``step_id`` completed; False when it was already stored."""
    digest = content_digest(workspace)
    with session_scope(factory) as session:
        row = session.get(ScaffolderWorkspace, task_id)
        if row is not None and row.digest == digest:
            _mark(workspace, digest)
            return False
    archive = _archive(workspace)
    if len(archive) > max_bytes:
        raise WorkspaceTooLarge(
            f"the workspace is {len(archive) / 2**20:.1f} MiB compressed, more than the "
            f"{max_bytes / 2**20:.0f} MiB a task may carry between steps "
            "(RAGPORTAL_SCAFFOLDER_WORKSPACE_MAX_BYTES)"
        )
    with session_scope(factory) as session:
        # The task's row, inserted or updated in place (merge reads it by primary key).
        session.merge(
            ScaffolderWorkspace(
                task_id=task_id,
                digest=digest,
                archive=archive,
                size_bytes=len(archive),
                step_id=step_id,
                updated_at=now(),
            )
        )
    _mark(workspace, digest)
    return True


def _marker(workspace: Path) -> Path:
    """Beside the workspace (never published): the saved digest the local copy started from."""
    return workspace.parent / f".{workspace.name}.synced"


def _mark(workspace: Path, digest: str) -> None:
    _marker(workspace).write_text(digest, encoding="utf-8")


def restore(factory: sessionmaker[Session], task_id: str, workspace: Path) -> str | None:
    """Make the local workspace the saved one unless it already grew from it; returns the
    step it was saved after, or None when nothing needed to move.

    A local copy that started from the saved state is kept as it is: a failed step's
    partial work, or a fix the operator made before retrying, stays."""
    with session_scope(factory) as session:
        digest = session.scalar(
            select(ScaffolderWorkspace.digest).where(ScaffolderWorkspace.task_id == task_id)
        )
    marker = _marker(workspace)
    if digest is None or (
        workspace.is_dir() and marker.is_file() and marker.read_text(encoding="utf-8") == digest
    ):
        return None
    with session_scope(factory) as session:
        row = session.get(ScaffolderWorkspace, task_id)
        if row is None:
            return None
        archive, step_id, digest = row.archive, row.step_id, row.digest
    staging = workspace.parent / f".{workspace.name}.restore"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(staging, filter="data")
    shutil.rmtree(workspace, ignore_errors=True)
    staging.rename(workspace)
    _mark(workspace, digest)
    return step_id


def remove_local(workspace: Path) -> None:
    shutil.rmtree(workspace, ignore_errors=True)
    _marker(workspace).unlink(missing_ok=True)


def forget(factory: sessionmaker[Session], task_ids: list[str]) -> None:
    if not task_ids:
        return
    with session_scope(factory) as session:
        session.execute(
            delete(ScaffolderWorkspace).where(ScaffolderWorkspace.task_id.in_(task_ids))
        )


def forget_ended_before(factory: sessionmaker[Session], cutoff_epoch: float) -> int:
    """Saved workspaces of tasks that ended before the cutoff (kept until then for a retry)."""
    cutoff = datetime.fromtimestamp(cutoff_epoch, UTC)
    ended = (
        select(ScaffolderTask.id)
        .where(ScaffolderTask.status.in_(TERMINAL), ScaffolderTask.completed_at < cutoff)
        .scalar_subquery()
    )
    with session_scope(factory) as session:
        # A DELETE's result is a CursorResult (Session.execute is typed for any statement).
        result = cast(
            CursorResult[Any],
            session.execute(
                delete(ScaffolderWorkspace).where(ScaffolderWorkspace.task_id.in_(ended))
            ),
        )
        return int(result.rowcount or 0)
