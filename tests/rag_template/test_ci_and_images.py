"""The rendered repository's CI workflow and Dockerfiles, checked without a Docker engine
or GitHub (neither runs here): the workflow validates against GitHub's workflow schema
(vendored by check-jsonschema) and runs the Makefile targets this suite proves; each
Dockerfile parses, copies only files the repository has, starts a module that imports in
the generated environment, and serves on the port the deploy bundle routes to."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from tests.rag_template.conftest import render_defaults, run_in_venv

WORKFLOW = ".github/workflows/ci.yml"
# The Makefile targets tests/rag_template/test_rendered_repos.py runs in every rendered
# repository (`make lint`, `make test`): CI may rely on these and no others.
PROVEN_TARGETS = {"lint", "test"}
IMAGES = {"Dockerfile": "api", "ingestion.Dockerfile": "ingestion"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_defaults(tmp_path_factory.mktemp("ci"), service_name="docs-bot")


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def workflow_runs(repo: Path) -> list[str]:
    workflow = yaml.safe_load((repo / WORKFLOW).read_text())
    return [
        step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
    ]


def test_workflow_validates_against_the_github_schema(repo: Path, tmp_path: Path):
    result = check_workflow(repo / WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    # The check is real: the same workflow with a job lacking `runs-on` is refused.
    broken = yaml.safe_load((repo / WORKFLOW).read_text())
    del broken["jobs"]["test"]["runs-on"]
    (tmp_path / "ci.yml").write_text(yaml.safe_dump(broken))
    refused = check_workflow(tmp_path / "ci.yml")
    assert refused.returncode != 0 and "runs-on" in refused.stdout + refused.stderr


def test_workflow_runs_the_make_targets_the_tests_prove(repo: Path):
    commands = [shlex.split(line) for run in workflow_runs(repo) for line in run.splitlines()]
    make_calls = [c for c in commands if c and c[0] == "make"]
    targets = {word for c in make_calls for word in c[1:] if "=" not in word}
    assert targets == PROVEN_TARGETS
    # PY=python: the runner's Python, where the install step put the dev extras (the
    # Makefile then creates no .venv of its own).
    assert all("PY=python" in c for c in make_calls), make_calls
    makefile = (repo / "Makefile").read_text()
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    installs = [c for c in commands if c[:4] == ["python", "-m", "pip", "install"]]
    extras = {m for c in installs for w in c for m in re.findall(r"^\.\[([\w,-]+)\]$", w)}
    assert extras == {"dev"}
    dev = " ".join(pyproject["project"]["optional-dependencies"]["dev"])
    assert "pytest" in dev and "ruff" in dev  # what `make test` and `make lint` run


def test_workflow_builds_every_image_from_its_dockerfile(repo: Path):
    builds = [shlex.split(line) for run in workflow_runs(repo) for line in run.splitlines()]
    builds = [c for c in builds if c[:2] == ["docker", "build"]]
    built = {c[c.index("-f") + 1] if "-f" in c else "Dockerfile" for c in builds}
    assert built == set(IMAGES)
    assert all(c[-1] == "." for c in builds)  # the repository is the build context


def instructions(repo: Path, dockerfile: str) -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(repo / dockerfile), cache_content=True)
    structure = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    assert structure and structure[0]["instruction"] == "FROM", dockerfile
    return structure


def exec_form(value: str) -> list[str]:
    argv = json.loads(value)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), value
    return argv


@pytest.mark.parametrize("dockerfile", list(IMAGES))
def test_dockerfile_copies_only_what_the_repository_has(repo: Path, dockerfile: str):
    copied: list[str] = []
    installed_after: list[str] | None = None
    for instruction in instructions(repo, dockerfile):
        if instruction["instruction"] in ("COPY", "ADD"):
            words = [w for w in shlex.split(instruction["value"]) if not w.startswith("--")]
            assert len(words) >= 2, instruction
            for source in words[:-1]:
                assert list(repo.glob(source)), f"{dockerfile}: COPY {source}: not in the repo"
                copied.append(source.strip("/"))
        if instruction["instruction"] == "RUN" and re.search(
            r"pip install \.(\s|$)", instruction["value"]
        ):
            installed_after = list(copied)
    # `pip install .` sees every package pyproject.toml declares.
    assert installed_after is not None, f"{dockerfile} does not install the project"
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    assert "pyproject.toml" in installed_after
    assert set(packages) <= set(installed_after), (packages, installed_after)


def _started(repo: Path, dockerfile: str) -> list[str]:
    commands = [
        exec_form(i["value"])
        for i in instructions(repo, dockerfile)
        if i["instruction"] in ("ENTRYPOINT", "CMD")
    ]
    assert len(commands) == 1, commands
    return commands[0]


def _deployment_container(repo: Path, name: str) -> dict[str, Any]:
    deployment = yaml.safe_load((repo / "deploy/k8s/base/rag-api-deployment.yaml").read_text())
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def test_api_image_starts_an_importable_app_on_the_deployed_port(repo: Path, generated_venv):
    argv = _started(repo, "Dockerfile")
    assert argv[0] == "uvicorn"
    module, _, attribute = argv[1].partition(":")
    probe = run_in_venv(
        repo,
        "-c",
        f"import importlib; app = getattr(importlib.import_module({module!r}), {attribute!r});"
        "print(type(app).__module__, type(app).__name__)",
        env={"EMBEDDING_PROVIDER": "hashing"},
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.split() == ["fastapi.applications", "FastAPI"]
    assert (generated_venv / "bin" / "uvicorn").exists()  # a dependency of the project
    port = int(argv[argv.index("--port") + 1])
    exposed = [
        int(p.split("/")[0])
        for i in instructions(repo, "Dockerfile")
        if i["instruction"] == "EXPOSE"
        for p in i["value"].split()
    ]
    assert exposed == [port]
    container = _deployment_container(repo, "rag-api")
    (http,) = [p for p in container["ports"] if p["name"] == "http"]
    assert http["containerPort"] == port
    # The Deployment runs the image's own command (or none): the same app and port.
    assert container.get("command", argv) == argv


def test_ingestion_image_entrypoint_runs_with_the_jobs_arguments(repo: Path, tmp_path: Path):
    # The team's documents: the form's default repository has an empty docs/ (the
    # example corpus is opt-in). Eight pages, so that every shard has some.
    repo = Path(shutil.copytree(repo, tmp_path / "repo"))
    for i in range(8):
        (repo / "docs" / f"page-{i}.md").write_text(f"# Page {i}\n\nText of page {i}.\n")
    argv = _started(repo, "ingestion.Dockerfile")
    assert argv[:2] == ["python", "-m"]
    pod = yaml.safe_load((repo / "deploy/k8s/base/ingestion-job.yaml").read_text())
    (container,) = pod["spec"]["template"]["spec"]["containers"]
    assert "command" not in container  # the Job relies on the image's ENTRYPOINT
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # The entrypoint with the Job's arguments, as shard 1 of an Indexed Job (hashing
    # embeddings and Qdrant local mode stand in for the cluster's model and server).
    result = run_in_venv(
        repo,
        *argv[1:],
        *container["args"],
        "--json",
        env={
            **env,
            "JOB_COMPLETION_INDEX": "1",
            "EMBEDDING_PROVIDER": "hashing",
            "QDRANT_PATH": str(tmp_path / "qdrant"),
            **dockerfile_env(repo, "ingestion.Dockerfile"),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert (report["shard_index"], report["shard_count"]) == (1, int(env["INGESTION_SHARDS"]))
    assert report["errors"] == [] and 0 < report["documents_seen"] < 8


def dockerfile_env(repo: Path, dockerfile: str) -> dict[str, str]:
    return dict(DockerfileParser(path=str(repo / dockerfile), cache_content=True).envs)


def test_ingestion_image_user_can_write_the_source_cache(repo: Path):
    """The ingestion image runs as uid 10001 over a root-owned /srv: git sources are
    cloned into SOURCE_CACHE_DIR, which must then lie outside it."""
    users = [
        i["value"] for i in instructions(repo, "ingestion.Dockerfile") if i["instruction"] == "USER"
    ]
    assert users and users[-1] not in ("root", "0")
    cache = dockerfile_env(repo, "ingestion.Dockerfile").get("SOURCE_CACHE_DIR", "")
    assert cache.startswith("/tmp/"), cache
