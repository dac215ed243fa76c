"""Small helpers shared by the scaffolder tests: reading the published repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

from portal_backend.settings import Settings

API = "/api/scaffolder/v2"


def repos(settings: Settings) -> list[Path]:
    root = settings.data_dir / "repos"
    return sorted(root.glob("*/*.git")) if root.exists() else []


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def commit_count(repo: Path, branch: str = "main") -> int:
    return int(git(repo, "rev-list", "--count", branch).strip())


def values(name: str, **extra: object) -> dict:
    return {"name": name, "owner": "group:default/team-a", **extra}


def submit(client, name: str, **extra: object):  # type: ignore[no-untyped-def]
    return client.post(
        f"{API}/tasks",
        json={"templateRef": "template:default/demo-service", "values": values(name, **extra)},
    )
