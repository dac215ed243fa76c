"""Build a template's shipped earlier version from a commit of this repository:
``<template folder>/history/<version>.tar.gz``, the folder exactly as it was at that
commit, archived the way recorded versions are (sorted, no times or owners), so the
portal records it beside the current version (portal_backend.scaffolder.version_store).

    .venv/bin/python scripts/template_history.py scaffolder_templates/rag-service 1.0.0 e486d5f
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from portal_backend.scaffolder import version_store, versions

ROOT = Path(__file__).resolve().parents[1]


def folder_at(commit: str, folder: str, dest: Path) -> Path:
    """``folder`` (relative to the repository) as it was at ``commit``, written under dest."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, folder],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the template folder, relative to the repository")
    parser.add_argument("version", help="the version that commit's content is (semver)")
    parser.add_argument("commit", help="a commit of this repository")
    args = parser.parse_args()
    version = versions.normalize(args.version)
    folder = args.folder.strip("/")
    with tempfile.TemporaryDirectory() as scratch:
        old = folder_at(args.commit, folder, Path(scratch))
        target = ROOT / folder / version_store.HISTORY_DIR / f"{version}.tar.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(version_store.folder_archive(old))
        print(
            f"{target.relative_to(ROOT)}: {target.stat().st_size} bytes, "
            f"digest {version_store.folder_digest(old)}"
        )


if __name__ == "__main__":
    main()
