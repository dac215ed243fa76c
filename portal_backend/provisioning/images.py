"""The repository's own images: what its CI pushes, and the tag a deployment pulls.

A generated repository's CI builds and pushes ``<registry>/<service>-api`` and
``<registry>/<service>-ingestion`` tagged with the commit it built (GitHub Actions
``$GITHUB_SHA`` or ``${{ github.sha }}``, GitLab CI ``$CI_COMMIT_SHA``). Its manifests
cannot name their own commit, so they carry a placeholder tag (kustomize ``images:``);
provisioning sets the tag of every image CI pushes to the commit it deploys (what
``kustomize edit set image`` would do) and then refuses, before anything is applied:

- an image of the repository (one named after the service, or under the registry CI
  pushes to) that no CI job of the repository pushes;
- on a real cluster, images under ``*.invalid``: the registry was not configured when
  the repository was created (``RAGPORTAL_IMAGE_REGISTRY`` or the template's
  ``rag-portal.io/image-registry`` annotation).

Third-party images (vLLM, Qdrant, llama.cpp, curl) are pulled as pinned and left alone.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from portal_backend import metadata_keys

COMMIT = "<commit>"
# How each CI system spells "the commit being built".
_COMMIT_EXPRESSIONS = (
    re.compile(r"\$\{\{\s*github\.sha\s*\}\}"),
    re.compile(r"\$\{?GITHUB_SHA\}?"),
    re.compile(r"\$\{?CI_COMMIT_SHA\}?"),
)
UNCONFIGURED_SUFFIX = ".invalid"
REGISTRY_SETTING = "RAGPORTAL_IMAGE_REGISTRY"


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag) of ``registry/path:tag`` (a digest counts as the tag)."""
    if "@" in image:
        repository, _, digest = image.partition("@")
        return repository, "@" + digest
    head, _, last = image.rpartition("/")
    if ":" in last:
        name, _, tag = last.partition(":")
        return f"{head}/{name}" if head else name, tag
    return image, ""


def _substitute(text: str, variables: dict[str, str]) -> str:
    for pattern in _COMMIT_EXPRESSIONS:
        text = pattern.sub(COMMIT, text)
    text = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: variables.get(m[1], m[0]), text)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m[1], m[0]), text)


def _pushes_in(script: str, variables: dict[str, str]) -> Iterator[str]:
    for line in script.splitlines():
        try:
            words = shlex.split(_substitute(line, variables))
        except ValueError:
            continue
        if words[:2] == ["docker", "push"] and len(words) >= 3:
            yield words[-1]


def _github_pushes(workflow: dict[str, Any]) -> Iterator[str]:
    top = {k: str(v) for k, v in (workflow.get("env") or {}).items()}
    for job in (workflow.get("jobs") or {}).values():
        variables = {**top, **{k: str(v) for k, v in (job.get("env") or {}).items()}}
        for step in job.get("steps") or []:
            if "run" in step:
                scoped = {**variables, **{k: str(v) for k, v in (step.get("env") or {}).items()}}
                yield from _pushes_in(str(step["run"]), scoped)


def _gitlab_pushes(pipeline: dict[str, Any]) -> Iterator[str]:
    top = {k: str(v) for k, v in (pipeline.get("variables") or {}).items()}
    for name, job in pipeline.items():
        if not isinstance(job, dict) or name in ("variables", "default", "workflow"):
            continue
        variables = {**top, **{k: str(v) for k, v in (job.get("variables") or {}).items()}}
        for key in ("before_script", "script", "after_script"):
            lines = job.get(key) or []
            for line in [lines] if isinstance(lines, str) else lines:
                yield from _pushes_in(str(line), variables)


def ci_pushed_images(repo: Path) -> set[str]:
    """Images the repository's CI pushes, with ``<commit>`` where the tag is the commit."""
    pushed: set[str] = set()
    workflows = repo / ".github" / "workflows"
    for path in sorted(workflows.glob("*.y*ml")) if workflows.is_dir() else []:
        pushed.update(_github_pushes(yaml.safe_load(path.read_text()) or {}))
    gitlab = repo / ".gitlab-ci.yml"
    if gitlab.is_file():
        pushed.update(_gitlab_pushes(yaml.safe_load(gitlab.read_text()) or {}))
    return pushed


def _containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    pod = ((spec.get("template") or {}).get("spec")) or {}
    for key in ("initContainers", "containers"):
        yield from pod.get(key) or []


def pin_repository_images(
    objects: list[dict[str, Any]], repo: Path, commit: str, service: str, *, cluster: bool
) -> list[str]:
    """Sets the tag of every image the repository's CI pushes to ``commit`` (in place);
    returns the problems that must stop the deployment."""
    pushed = ci_pushed_images(repo)
    built = {split_image(image)[0]: split_image(image)[1] for image in pushed}
    registries = {repository.rpartition("/")[0] for repository in built}
    problems: list[str] = []
    for obj in objects:
        for container in _containers(obj):
            repository, tag = split_image(str(container.get("image", "")))
            where = f"{obj['kind']}/{obj['metadata']['name']} container {container.get('name')}"
            host = repository.split("/", 1)[0]
            if cluster and host.endswith(UNCONFIGURED_SUFFIX):
                problems.append(
                    f"{where}: image {repository} is under {host}, i.e. no image registry was "
                    f"configured when this repository was created; set {REGISTRY_SETTING} (or "
                    f"the template's {metadata_keys.IMAGE_REGISTRY} annotation) and create the "
                    "service again, or set the registry in its CI workflow and deploy/k8s"
                )
                continue
            if repository in built:
                if built[repository] == COMMIT:
                    container["image"] = f"{repository}:{commit}"
                elif tag != built[repository]:
                    problems.append(
                        f"{where}: image {repository}:{tag}, but CI pushes only the tag "
                        f"{built[repository]}"
                    )
                continue
            own = repository.rsplit("/", 1)[-1].startswith(f"{service}-") or (
                repository.rpartition("/")[0] in registries
            )
            if own:
                pushes = ", ".join(sorted(built)) or "no image"
                problems.append(
                    f"{where}: image {repository} is built by no CI job of this repository "
                    f"(its CI pushes {pushes})"
                )
    return problems
