"""Entity envelope and per-kind validation, following Backstage's rules.

Every problem is reported (not just the first), each naming the field it concerns,
so a person can fix a whole document in one go.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from catalog import model_specs
from catalog.errors import ErrorDetail, InputError
from catalog.refs import RefError, parse_ref, ref_of

NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?)?$")
KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
TAG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

CORE_API_VERSIONS = ("backstage.io/v1alpha1", "backstage.io/v1beta1")
TEMPLATE_API_VERSIONS = ("scaffolder.backstage.io/v1beta3",)

# kind (lowercase) -> (display name, accepted apiVersions, required string fields,
# optional string fields, required list-of-string fields, optional list-of-string fields)
KINDS: dict[str, dict[str, Any]] = {
    "component": {
        "name": "Component",
        "required": ["type", "lifecycle", "owner"],
        "strings": ["system", "subcomponentOf"],
        "lists": ["providesApis", "consumesApis", "dependsOn", "dependencyOf"],
    },
    "api": {
        "name": "API",
        "required": ["type", "lifecycle", "owner", "definition"],
        "strings": ["system"],
        "lists": [],
    },
    "resource": {
        "name": "Resource",
        "required": ["type", "owner"],
        "strings": ["system"],
        "lists": ["dependsOn", "dependencyOf"],
    },
    "system": {"name": "System", "required": ["owner"], "strings": ["domain", "type"], "lists": []},
    "domain": {
        "name": "Domain",
        "required": ["owner"],
        "strings": ["subdomainOf", "type"],
        "lists": [],
    },
    "group": {
        "name": "Group",
        "required": ["type"],
        "required_lists": ["children"],
        "strings": ["parent"],
        "lists": ["members"],
    },
    "user": {"name": "User", "required": [], "required_lists": ["memberOf"], "lists": []},
    "location": {
        "name": "Location",
        "required": [],
        "strings": ["type", "target"],
        "lists": ["targets"],
    },
    "template": {
        "name": "Template",
        "required": ["type"],
        "strings": ["owner", "lifecycle"],
        "lists": [],
        "api_versions": TEMPLATE_API_VERSIONS,
    },
}


def kind_key(kind: Any) -> str:
    return kind.lower() if isinstance(kind, str) else ""


def _check_key(path: str, key: Any, problems: list[ErrorDetail]) -> None:
    if not isinstance(key, str) or not key:
        problems.append(ErrorDetail(path, "keys must be non-empty strings"))
        return
    prefix, sep, name = key.rpartition("/")
    if sep and (len(prefix) > 253 or not DNS_SUBDOMAIN_RE.match(prefix)):
        problems.append(
            ErrorDetail(f"{path}.{key}", "key prefix must be a DNS subdomain, e.g. 'example.com/'")
        )
    if not name or len(name) > 63 or not KEY_NAME_RE.match(name):
        problems.append(
            ErrorDetail(
                f"{path}.{key}",
                "key name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending "
                "with a letter or digit",
            )
        )


def _string_map(
    metadata: dict[str, Any], field: str, problems: list[ErrorDetail], *, label_values: bool
) -> None:
    value = metadata.get(field)
    if value is None:
        return
    path = f"metadata.{field}"
    if not isinstance(value, dict):
        problems.append(ErrorDetail(path, "must be an object of string keys to string values"))
        return
    for key, item in value.items():
        _check_key(path, key, problems)
        if not isinstance(item, str):
            problems.append(ErrorDetail(f"{path}.{key}", "value must be a string (quote it)"))
        elif label_values and (len(item) > 63 or not LABEL_VALUE_RE.match(item)):
            problems.append(
                ErrorDetail(
                    f"{path}.{key}",
                    "label value must be at most 63 characters of [A-Za-z0-9-_.], starting "
                    "and ending with a letter or digit",
                )
            )


def _metadata(metadata: Any, problems: list[ErrorDetail]) -> None:
    if not isinstance(metadata, dict):
        problems.append(ErrorDetail("metadata", "metadata is required and must be an object"))
        return
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        problems.append(ErrorDetail("metadata.name", "metadata.name is required"))
    elif len(name) > 63 or not NAME_RE.match(name):
        problems.append(
            ErrorDetail(
                "metadata.name",
                f"invalid name {name!r}: 1-63 characters of [A-Za-z0-9-_.], starting and "
                "ending with a letter or digit",
            )
        )
    namespace = metadata.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not NAMESPACE_RE.match(namespace)
    ):
        problems.append(
            ErrorDetail(
                "metadata.namespace",
                f"invalid namespace {namespace!r}: a DNS label (lowercase letters, digits and "
                "'-', at most 63 characters)",
            )
        )
    for field in ("title", "description", "uid", "etag"):
        if metadata.get(field) is not None and not isinstance(metadata[field], str):
            problems.append(ErrorDetail(f"metadata.{field}", "must be a string"))
    _string_map(metadata, "labels", problems, label_values=True)
    _string_map(metadata, "annotations", problems, label_values=False)
    tags = metadata.get("tags")
    if tags is not None:
        if not isinstance(tags, list):
            problems.append(ErrorDetail("metadata.tags", "must be a list of strings"))
        else:
            for index, tag in enumerate(tags):
                if not isinstance(tag, str) or len(tag) > 63 or not TAG_RE.match(tag):
                    problems.append(
                        ErrorDetail(
                            f"metadata.tags[{index}]",
                            f"invalid tag {tag!r}: lowercase [a-z0-9] words joined by '-', "
                            "at most 63 characters",
                        )
                    )
    links = metadata.get("links")
    if links is not None:
        if not isinstance(links, list):
            problems.append(ErrorDetail("metadata.links", "must be a list of {url, title}"))
        else:
            for index, link in enumerate(links):
                if not isinstance(link, dict) or not isinstance(link.get("url"), str):
                    problems.append(
                        ErrorDetail(f"metadata.links[{index}].url", "each link needs a url")
                    )


def _spec(kind: str, spec: Any, namespace: str, problems: list[ErrorDetail]) -> None:
    rules = KINDS[kind]
    needs_spec = bool(rules.get("required") or rules.get("required_lists"))
    if spec is None and not needs_spec:
        return
    if not isinstance(spec, dict):
        problems.append(ErrorDetail("spec", f"spec is required for kind {rules['name']}"))
        return
    for field in rules.get("required", []):
        value = spec.get(field)
        if field == "definition" and isinstance(value, str | dict) and value:
            continue
        if not isinstance(value, str) or not value:
            problems.append(
                ErrorDetail(f"spec.{field}", f"spec.{field} is required for kind {rules['name']}")
            )
    for field in rules.get("strings", []):
        if spec.get(field) is not None and not isinstance(spec[field], str):
            problems.append(ErrorDetail(f"spec.{field}", "must be a string"))
    for field in rules.get("required_lists", []):
        if field not in spec:
            problems.append(
                ErrorDetail(f"spec.{field}", f"spec.{field} is required for kind {rules['name']}")
            )
    for field in [*rules.get("required_lists", []), *rules.get("lists", [])]:
        value = spec.get(field)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(ErrorDetail(f"spec.{field}", "must be a list of strings"))
    # Model and adapter versions (Resources of spec.type llm-model / lora-adapter).
    if kind == "resource" and isinstance(spec.get("type"), str):
        model_specs.check(spec["type"].lower(), spec, problems)
    # References must parse (dependsOn needs an explicit kind, as in Backstage).
    from catalog.relations import reference_fields

    for field, default_kind in reference_fields(kind, spec.get("type")):
        value = spec.get(field)
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            if not isinstance(item, str):
                continue
            suffix = f"[{index}]" if isinstance(value, list) else ""
            try:
                ref = parse_ref(item, default_kind=default_kind, default_namespace=namespace)
            except RefError as exc:
                problems.append(ErrorDetail(f"spec.{field}{suffix}", str(exc)))
                continue
            if not (
                KIND_RE.match(ref.kind)
                and NAMESPACE_RE.match(ref.namespace)
                and len(ref.name) <= 63
                and NAME_RE.match(ref.name)
            ):
                problems.append(
                    ErrorDetail(
                        f"spec.{field}{suffix}",
                        f"{item!r} is not a valid entity reference: kind:namespace/name with "
                        "a DNS-label namespace and a valid entity name",
                    )
                )


def validate_entity(entity: Any) -> list[ErrorDetail]:
    """Every problem with ``entity``; an empty list means it is valid."""
    if not isinstance(entity, dict):
        return [ErrorDetail("", "an entity must be an object (mapping)")]
    problems: list[ErrorDetail] = []
    api_version = entity.get("apiVersion")
    kind = entity.get("kind")
    if not isinstance(kind, str) or not kind:
        problems.append(ErrorDetail("kind", "kind is required"))
    elif kind_key(kind) not in KINDS:
        known = ", ".join(k["name"] for k in KINDS.values())
        problems.append(ErrorDetail("kind", f"unknown kind {kind!r}; known kinds: {known}"))
    if not isinstance(api_version, str) or not api_version:
        problems.append(ErrorDetail("apiVersion", "apiVersion is required"))
    elif kind_key(kind) in KINDS:
        accepted = KINDS[kind_key(kind)].get("api_versions", CORE_API_VERSIONS)
        if api_version not in accepted:
            problems.append(
                ErrorDetail(
                    "apiVersion",
                    f"apiVersion {api_version!r} is not valid for kind {kind}; "
                    f"use one of {', '.join(accepted)}",
                )
            )
    metadata = entity.get("metadata")
    _metadata(metadata, problems)
    if kind_key(kind) in KINDS:
        namespace = "default"
        if isinstance(metadata, dict) and isinstance(metadata.get("namespace"), str):
            namespace = metadata["namespace"]
        _spec(kind_key(kind), entity.get("spec"), namespace, problems)
    for field in ("relations", "status"):
        if field == "relations" and entity.get(field) is not None:
            if not isinstance(entity[field], list):
                problems.append(ErrorDetail(field, "must be a list"))
        if field == "status" and entity.get(field) is not None:
            if not isinstance(entity[field], dict):
                problems.append(ErrorDetail(field, "must be an object"))
    return problems


def validate_batch(entities: Sequence[Any], prefix: str, source: str | None = None) -> None:
    """All or nothing: InputError (listing the valid and the invalid ones) when any entity
    of the batch is invalid or two share a ref; ``prefix`` names the list in paths
    (``entities``, ``documents``), ``source`` the location they were read from."""
    problems: list[ErrorDetail] = []
    seen: dict[str, int] = {}
    valid: list[str] = []
    for index, entity in enumerate(entities):
        where = f"{prefix}[{index}]"
        found = validate_entity(entity)
        problems += [
            ErrorDetail(f"{where}.{d.path}" if d.path else where, d.message) for d in found
        ]
        if found:
            continue
        ref = ref_of(entity)
        if ref in seen:
            problems.append(
                ErrorDetail(
                    f"{where}.metadata.name",
                    f"{ref} appears twice (also at {prefix}[{seen[ref]}]); "
                    "names are unique per kind and namespace, ignoring case",
                )
            )
        else:
            valid.append(f"{where} ({ref})")
        seen[ref] = index
    if not problems:
        return
    bad = len({p.path.split("]")[0] for p in problems})
    what = "documents" if source else "entities"
    raise InputError(
        (f"{source}: " if source else "")
        + f"{bad} of {len(entities)} {what} are invalid, so nothing was written. Valid: "
        + (", ".join(valid[:20]) or "none")
        + (" ..." if len(valid) > 20 else "")
        + ". Invalid: "
        + "; ".join(f"{p.path}: {p.message}" for p in problems[:10]),
        problems,
    )
