"""Render a kustomize bundle (base + overlays) into plain objects, in Python.

The portal runs where ``kubectl`` may not be installed, so this implements the part of
kustomize that generated bundles use: ``resources`` (files and nested kustomizations),
``namespace``, ``labels``/``commonLabels``, ``commonAnnotations``, ``images``,
``replicas``, strategic-merge and JSON 6902 ``patches`` (and legacy
``patchesStrategicMerge``), and ``configMapGenerator``/``secretGenerator`` without hash
suffixes. Anything else is refused by name rather than silently ignored. The tests check
the output against ``kubectl kustomize`` where it is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "namespace",
    "labels",
    "commonLabels",
    "commonAnnotations",
    "images",
    "replicas",
    "patches",
    "patchesStrategicMerge",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
}
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
}
# Where kustomize puts commonLabels besides metadata.labels (selectors and pod templates).
_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class BundleError(Exception):
    """The bundle cannot be rendered; ``path`` names the file at fault."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = str(path), message


def find_kustomization(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise BundleError(path, f"invalid YAML: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise BundleError(path, "every document must be a Kubernetes object with kind/metadata")
    return docs


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """Objects of the kustomization in ``directory``, in the order kustomize lists them."""
    directory = directory.resolve()
    kfile = find_kustomization(directory)
    if kfile is None:
        raise BundleError(directory, "no kustomization.yaml here")
    try:
        spec = yaml.safe_load(kfile.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BundleError(kfile, f"invalid YAML: {exc}") from exc
    unknown = sorted(set(spec) - SUPPORTED_FIELDS)
    if unknown:
        raise BundleError(kfile, f"unsupported kustomize fields: {', '.join(unknown)}")

    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(render_kustomization(target))
        elif target.is_file():
            objects.extend(_load_yaml_docs(target))
        else:
            raise BundleError(kfile, f"resource {entry!r} does not exist")
    objects.extend(_generated(directory, kfile, spec))

    for patch in spec.get("patchesStrategicMerge") or []:
        for doc in _patch_docs(directory, kfile, patch):
            _apply_strategic(objects, doc, None, kfile)
    for patch in spec.get("patches") or []:
        _apply_patch_entry(directory, kfile, objects, patch)

    namespace = spec.get("namespace")
    labels, selector_labels = _labels(spec)
    annotations = spec.get("commonAnnotations") or {}
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if namespace and obj.get("kind") not in CLUSTER_SCOPED_KINDS:
            meta["namespace"] = namespace
        if labels:
            meta.setdefault("labels", {}).update(labels)
        if selector_labels:
            _add_selector_labels(obj, selector_labels)
        if annotations:
            meta.setdefault("annotations", {}).update(annotations)
            template = _pod_template(obj)
            if template is not None:
                template.setdefault("metadata", {}).setdefault("annotations", {}).update(
                    annotations
                )
    for image in spec.get("images") or []:
        for obj in objects:
            _set_image(obj, image)
    for rep in spec.get("replicas") or []:
        for obj in objects:
            if obj["metadata"].get("name") == rep["name"] and "spec" in obj:
                obj["spec"]["replicas"] = int(rep["count"])
    return objects


def _labels(spec: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    labels: dict[str, str] = {}
    selector: dict[str, str] = {}
    common = {k: str(v) for k, v in (spec.get("commonLabels") or {}).items()}
    labels.update(common)
    selector.update(common)
    for entry in spec.get("labels") or []:
        pairs = {k: str(v) for k, v in (entry.get("pairs") or {}).items()}
        labels.update(pairs)
        if entry.get("includeSelectors"):
            selector.update(pairs)
        elif entry.get("includeTemplates"):
            raise BundleError("kustomization", "labels.includeTemplates is not supported")
    return labels, selector


def _pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") or {}
    template: dict[str, Any] | None = None
    if obj.get("kind") in _TEMPLATE_KINDS:
        template = spec.setdefault("template", {})
    elif obj.get("kind") == "CronJob":
        job_spec = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
        template = job_spec.setdefault("template", {})
    return template


def _add_selector_labels(obj: dict[str, Any], labels: dict[str, str]) -> None:
    kind, spec = obj.get("kind"), obj.get("spec")
    if spec is None:
        return
    template = _pod_template(obj)
    if template is not None:
        template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}:
        spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(labels)
    elif kind == "Service":
        spec.setdefault("selector", {}).update(labels)
    elif kind == "PodDisruptionBudget":
        spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(labels)


def _set_image(obj: dict[str, Any], image: dict[str, Any]) -> None:
    template = _pod_template(obj)
    if template is None:
        return
    pod_spec = template.get("spec") or {}
    for container in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        current = container.get("image", "")
        name = current.split("@")[0]
        tag_sep = name.rfind(":")
        if tag_sep > name.rfind("/"):
            name = name[:tag_sep]
        if name != image["name"]:
            continue
        new = image.get("newName", name)
        if image.get("digest"):
            new += "@" + image["digest"]
        elif image.get("newTag"):
            new += ":" + str(image["newTag"])
        elif ":" in current[len(name) :]:
            new += current[len(name) :]
        container["image"] = new


def _generated(directory: Path, kfile: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in spec.get(key) or []:
            options = {**(spec.get("generatorOptions") or {}), **(gen.get("options") or {})}
            if not options.get("disableNameSuffixHash"):
                raise BundleError(
                    kfile,
                    f"{key} {gen.get('name')!r}: name suffix hashes are not supported; set "
                    "options.disableNameSuffixHash: true",
                )
            data: dict[str, str] = {}
            for literal in gen.get("literals") or []:
                k, _, v = literal.partition("=")
                data[k] = v
            for file_entry in gen.get("files") or []:
                k, _, rel = file_entry.partition("=") if "=" in file_entry else ("", "", file_entry)
                source = directory / rel
                data[k or source.name] = source.read_text()
            obj: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": gen["name"]},
            }
            if kind == "Secret":
                obj["type"] = gen.get("type", "Opaque")
                obj["stringData"] = data
            else:
                obj["data"] = data
            if options.get("labels"):
                obj["metadata"]["labels"] = dict(options["labels"])
            out.append(obj)
    return out


def _patch_docs(directory: Path, kfile: Path, entry: Any) -> list[dict[str, Any]]:
    if isinstance(entry, str) and "\n" not in entry and (directory / entry).is_file():
        return _load_yaml_docs(directory / entry)
    if isinstance(entry, str):
        return [d for d in yaml.safe_load_all(entry) if d]
    raise BundleError(kfile, f"cannot read patch {entry!r}")


def _matches(obj: dict[str, Any], target: dict[str, Any] | None) -> bool:
    if not target:
        return True
    meta = obj.get("metadata") or {}
    if target.get("kind") and obj.get("kind") != target["kind"]:
        return False
    if target.get("name") and meta.get("name") != target["name"]:
        return False
    if target.get("namespace") and meta.get("namespace") != target["namespace"]:
        return False
    selector = target.get("labelSelector")
    if selector:
        labels = meta.get("labels") or {}
        for req in selector.split(","):
            k, _, v = req.partition("=")
            if labels.get(k.strip()) != v.strip():
                return False
    return True


def _apply_patch_entry(
    directory: Path, kfile: Path, objects: list[dict[str, Any]], entry: dict[str, Any]
) -> None:
    target = entry.get("target")
    if "path" in entry:
        raw = (directory / entry["path"]).read_text()
    elif "patch" in entry:
        raw = entry["patch"]
    else:
        raise BundleError(kfile, "a patch needs path or patch")
    parsed = yaml.safe_load(raw)
    if isinstance(parsed, list):  # JSON 6902
        if not target:
            raise BundleError(kfile, "a JSON 6902 patch needs a target")
        hits = [i for i, o in enumerate(objects) if _matches(o, target)]
        if not hits:
            raise BundleError(kfile, f"patch target {target} matches no resource")
        for i in hits:
            try:
                objects[i] = jsonpatch.apply_patch(objects[i], parsed)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise BundleError(kfile, f"patch on {target}: {exc}") from exc
        return
    for doc in [d for d in yaml.safe_load_all(raw) if d]:
        _apply_strategic(objects, doc, target, kfile)


def _apply_strategic(
    objects: list[dict[str, Any]], patch: dict[str, Any], target: dict[str, Any] | None, kfile: Path
) -> None:
    if target is None:
        target = {"kind": patch.get("kind"), "name": (patch.get("metadata") or {}).get("name")}
    hits = [o for o in objects if _matches(o, target)]
    if not hits:
        raise BundleError(kfile, f"patch target {target} matches no resource")
    for obj in hits:
        body = copy.deepcopy(patch)
        if target.get("name") is None or "name" not in target:
            body.get("metadata", {}).pop("name", None)
        merged = strategic_merge(obj, body)
        obj.clear()
        obj.update(merged)


def strategic_merge(live: Any, patch: Any) -> Any:
    """Strategic merge as far as bundles need it: lists of named items merge by name."""
    if isinstance(live, dict) and isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        out = copy.deepcopy(live)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if (
        isinstance(live, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in live + patch)
    ):
        items = copy.deepcopy(live)
        index = {item["name"]: i for i, item in enumerate(items)}
        for item in patch:
            if item.get("$patch") == "delete":
                items = [o for o in items if o["name"] != item["name"]]
                index = {o["name"]: i for i, o in enumerate(items)}
            elif item["name"] in index:
                items[index[item["name"]]] = strategic_merge(items[index[item["name"]]], item)
            else:
                items.append(copy.deepcopy(item))
                index[item["name"]] = len(items) - 1
        return items
    return copy.deepcopy(patch)


def select_kustomization(k8s_dir: Path, environment: str | None) -> Path:
    """The directory to render: ``overlays/<environment>`` when it exists, else the base."""
    k8s_dir = k8s_dir.resolve()
    if environment:
        overlay = k8s_dir / "overlays" / environment
        if find_kustomization(overlay):
            return overlay
        raise BundleError(
            k8s_dir,
            f"no overlay {environment!r}; available: "
            + ", ".join(sorted(p.name for p in (k8s_dir / "overlays").glob("*") if p.is_dir())),
        )
    for candidate in (k8s_dir, k8s_dir / "base"):
        if find_kustomization(candidate):
            return candidate
    raise BundleError(k8s_dir, "no kustomization.yaml at the bundle root or in base/")


def render_bundle(k8s_dir: Path, environment: str | None = None) -> list[dict[str, Any]]:
    return render_kustomization(select_kustomization(k8s_dir, environment))
