"""LoRA adapter versions in the catalog: the diff between two versions, and whether an
adapter fits a service (docs/models.md).

Versions are Resources of ``spec.type: lora-adapter`` (``catalog.model_specs``), one
entity per version, chained by ``spec.previousVersion``. A diff compares their specs
(rank, alpha, target modules, base model, dataset, eval scores), their
adapter_config.json when the weights are local, and their weights layer by layer
(``adapter_weights``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from catalog.errors import ConflictError, ErrorDetail, InputError, NotFoundError
from catalog.locations import LocationPolicy
from catalog.model_specs import ADAPTER_TYPE, MODEL_TYPE, family_of
from catalog.refs import RefError, parse_ref, ref_of
from catalog.service import CatalogService
from portal_backend.catalog_policy import location_policy
from portal_backend.rag import adapter_weights, checkpoints
from portal_backend.settings import Settings

ADAPTER_FILTER = f"kind=resource,spec.type={ADAPTER_TYPE}"
MODEL_FILTER = f"kind=resource,spec.type={MODEL_TYPE}"
SPEC_FIELDS = (
    "version",
    "source",
    "format",
    "baseModel",
    "rank",
    "alpha",
    "targetModules",
    "dataset",
    "previousVersion",
)


def _natural(version: str) -> list[tuple[int, Any]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", version) if p]


def _version(entity: Mapping[str, Any]) -> str:
    return str((entity.get("spec") or {}).get("version", ""))


def _ref(value: str, namespace: str = "default") -> str | None:
    try:
        return str(parse_ref(value, default_kind="resource", default_namespace=namespace))
    except RefError:
        return None


def order_versions(entities: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first: along the previousVersion chain where it links them, else by version
    (natural order: v2 < v10)."""
    items = sorted(entities, key=lambda e: (_natural(_version(e)), ref_of(e)))
    by_ref = {ref_of(e): e for e in items}
    depth: dict[str, int] = {}

    def chain(ref: str, seen: frozenset[str] = frozenset()) -> int:
        if ref in depth:
            return depth[ref]
        entity = by_ref[ref]
        previous = (entity.get("spec") or {}).get("previousVersion")
        namespace = (entity.get("metadata") or {}).get("namespace") or "default"
        prev_ref = _ref(previous, namespace) if isinstance(previous, str) else None
        if prev_ref in by_ref and prev_ref not in seen and prev_ref != ref:
            depth[ref] = chain(prev_ref, seen | {ref}) + 1
        else:
            depth[ref] = 0
        return depth[ref]

    for ref in by_ref:
        chain(ref)
    position = {ref_of(e): i for i, e in enumerate(items)}
    return sorted(items, key=lambda e: (depth[ref_of(e)], position[ref_of(e)]))


@dataclass
class AdapterLine:
    """The versions of one adapter (oldest first) and the one a request named."""

    family: str
    versions: list[dict[str, Any]]
    named: dict[str, Any] | None

    def pick(self, value: str | None, *, what: str) -> dict[str, Any]:
        if not value:
            raise InputError(f"{what} is required")
        wanted = value.lower()
        wanted_ref = _ref(value) if ":" in value or "/" in value else None
        for entity in self.versions:
            name = str(entity["metadata"]["name"]).lower()
            version = _version(entity).lower()
            if wanted in (version, f"v{version}", name) or wanted_ref == ref_of(entity):
                return entity
        known = ", ".join(_version(e) for e in self.versions)
        raise NotFoundError(
            f"adapter {self.family} has no version {value!r} (its versions: {known})",
            [ErrorDetail(what, f"one of {known}")],
        )

    def previous_of(self, entity: dict[str, Any]) -> dict[str, Any] | None:
        previous = (entity.get("spec") or {}).get("previousVersion")
        namespace = entity["metadata"].get("namespace") or "default"
        prev_ref = _ref(previous, namespace) if isinstance(previous, str) else None
        for candidate in self.versions:
            if prev_ref and ref_of(candidate) == prev_ref:
                return candidate
        index = self.versions.index(entity)
        return self.versions[index - 1] if index > 0 else None


def adapter_line(catalog: CatalogService, ref: str) -> AdapterLine:
    """The versions of the adapter ``ref`` names: a family (``hr-adapter``), a version's
    name (``hr-adapter-v3``) or its entity ref (``resource:default/hr-adapter-v3``)."""
    adapters = list(catalog.iter_entities(filters=[ADAPTER_FILTER]))
    wanted = ref.lower()
    wanted_ref = _ref(ref) if ":" in ref or "/" in ref else None
    named = next(
        (
            e
            for e in adapters
            if ref_of(e) == wanted_ref or str(e["metadata"]["name"]).lower() == wanted
        ),
        None,
    )
    family = family_of(named) if named is not None else wanted
    versions = [e for e in adapters if family_of(e) == family]
    if named is not None:
        namespace = named["metadata"].get("namespace") or "default"
        versions = [
            e for e in versions if (e["metadata"].get("namespace") or "default") == namespace
        ]
    if not versions:
        raise NotFoundError(
            f"no lora-adapter named {ref!r} in the catalog (neither a version's name or ref "
            "nor an adapter family)"
        )
    return AdapterLine(family, order_versions(versions), named)


def _norm(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sorted(value)
    return value


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Fields whose values differ: [{field, from, to}] (lists of names also list what was
    added and removed; numbers their delta)."""
    rows: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if _norm(before) == _norm(after):
            continue
        row: dict[str, Any] = {"field": key, "from": before, "to": after}
        if isinstance(before, list) and isinstance(after, list):
            row["added"] = sorted({json.dumps(v) for v in after} - {json.dumps(v) for v in before})
            row["removed"] = sorted(
                {json.dumps(v) for v in before} - {json.dumps(v) for v in after}
            )
            row["added"] = [json.loads(v) for v in row["added"]]
            row["removed"] = [json.loads(v) for v in row["removed"]]
        if (
            isinstance(before, int | float)
            and isinstance(after, int | float)
            and not isinstance(before, bool)
            and not isinstance(after, bool)
        ):
            row["delta"] = after - before
        rows.append(row)
    return rows


def _spec_view(entity: Mapping[str, Any]) -> dict[str, Any]:
    spec = entity.get("spec") or {}
    view = {k: spec[k] for k in SPEC_FIELDS if k in spec}
    for metric, value in (spec.get("evalScores") or {}).items():
        view[f"evalScores.{metric}"] = value
    return view


def _version_summary(entity: Mapping[str, Any]) -> dict[str, Any]:
    spec = entity.get("spec") or {}
    return {
        "ref": ref_of(dict(entity)),
        "name": entity["metadata"]["name"],
        "version": spec.get("version"),
        "source": spec.get("source"),
        "rank": spec.get("rank"),
        "baseModel": spec.get("baseModel"),
    }


def _alpha(entity: Mapping[str, Any]) -> float | None:
    value = (entity.get("spec") or {}).get("alpha")
    return float(value) if isinstance(value, int | float) else None


# Where an MLflow location (catalog.mlflow_source) says a version's files are stored.
MLFLOW_STORAGE = "rag-portal.io/mlflow-storage"


def _weights_location(
    entity: Mapping[str, Any], policy: LocationPolicy
) -> adapter_weights.WeightsLocation:
    """The version's weights: its spec.source when that is local, else the storage an
    MLflow registry recorded for it when that is a local path or file: URL (a tracking
    server with a local artifact store). Either is read only under the allowed file roots
    (``adapter_weights.locate``): a remote catalog file or tracking server chose it."""
    place = adapter_weights.locate((entity.get("spec") or {}).get("source"), policy=policy)
    storage = ((entity.get("metadata") or {}).get("annotations") or {}).get(MLFLOW_STORAGE)
    if place.weights is None and isinstance(storage, str) and storage:
        stored = adapter_weights.locate(storage, policy=policy)
        if stored.weights is not None:
            return stored
        return adapter_weights.WeightsLocation(
            None,
            place.config or stored.config,
            f"{place.reason}; its MLflow storage: {stored.reason}",
        )
    return place


def diff_versions(
    old: dict[str, Any], new: dict[str, Any], *, policy: LocationPolicy
) -> dict[str, Any]:
    """The diff of two adapter versions: spec, adapter_config.json, and weights per layer
    when both versions' weights are local safetensors files under the policy's allowed
    file roots (else why not)."""
    result: dict[str, Any] = {
        "from": _version_summary(old),
        "to": _version_summary(new),
        "config": config_diff(_spec_view(old), _spec_view(new)),
    }
    places = [_weights_location(e, policy) for e in (old, new)]
    configs = [adapter_weights.read_config(p.config) for p in places]
    if configs[0] is not None and configs[1] is not None:
        result["adapter_config"] = config_diff(configs[0], configs[1])
    missing = [
        f"{label}: {p.reason}" for label, p in zip(("from", "to"), places, strict=True) if p.reason
    ]
    if missing:
        result["weights"] = {"available": False, "reason": "; ".join(missing)}
        return result
    old_path, new_path = places[0].weights, places[1].weights
    assert old_path is not None and new_path is not None
    before = adapter_weights.read_weights(old_path)
    after = adapter_weights.read_weights(new_path)
    result["weights"] = {
        "available": True,
        "from_file": str(old_path),
        "to_file": str(new_path),
        **adapter_weights.layer_diff(
            before,
            after,
            old_config=configs[0],
            new_config=configs[1],
            old_alpha=_alpha(old),
            new_alpha=_alpha(new),
        ),
    }
    return result


def adapter_diff(
    session: Session,
    settings: Settings,
    ref: str,
    from_version: str | None,
    to_version: str | None,
) -> dict[str, Any]:
    """``GET /api/rag/adapters/{ref}/diff``: ``to`` defaults to the version ``ref`` names
    (else the newest), ``from`` to the version before ``to``. Weights are read only under
    the settings' allowed file roots (RAGPORTAL_ALLOWED_FILE_ROOTS)."""
    line = adapter_line(CatalogService(session), ref)
    if to_version:
        new = line.pick(to_version, what="to")
    else:
        new = line.named if line.named is not None else line.versions[-1]
    if from_version:
        old = line.pick(from_version, what="from")
    else:
        previous = line.previous_of(new)
        if previous is None:
            raise InputError(
                f"{ref_of(new)} is the first version of adapter {line.family}; name one to "
                "compare with (from=)",
                [ErrorDetail("from", "required: there is no previous version")],
            )
        old = previous
    result = diff_versions(old, new, policy=location_policy(settings))
    result["adapter"] = line.family
    result["versions"] = [_version(e) for e in line.versions]
    return result


def adapters_for_model(session: Session, model: str) -> list[dict[str, Any]]:
    """The adapter versions trained on ``model``: an llm-model version (its ref or name),
    else a model family (every version of it), a checkpoint (a version's source) or the
    rag-service form's model key (``llama-3-8b-instruct``: the versions whose source is
    one of its checkpoints); oldest first. What the form's LoRA picker offers."""
    catalog = CatalogService(session)
    wanted = model.lower()
    models = list(catalog.iter_entities(filters=[MODEL_FILTER]))
    exact = _ref(model) if ":" in model or "/" in model else None
    chosen = {ref_of(e) for e in models if ref_of(e) == exact or e["metadata"]["name"] == wanted}
    if not chosen:
        # A checkpoint, or the form's model key (llama-3-8b-instruct): the versions whose
        # source is one of that model's checkpoints (any quantization) or its family.
        names = {wanted} | {
            c.hf_id.lower() for (key, _q), c in checkpoints.CHECKPOINTS.items() if key == wanted
        }
        chosen = {ref_of(e) for e in models if names & model_ids(e)}
    rows = [
        e
        for e in catalog.iter_entities(filters=[ADAPTER_FILTER])
        if _ref(
            str((e.get("spec") or {}).get("baseModel", "")),
            e["metadata"].get("namespace") or "default",
        )
        in chosen
    ]
    return order_versions(rows)


# -- does an adapter fit a service? ---------------------------------------------------------


@dataclass(frozen=True)
class ServingSlots:
    """What a service's vLLM was started with (its repository's serving/vllm-args.json):
    the checkpoint, the name it serves it as, and the LoRA slots it was sized for."""

    service: str
    model: str
    served_name: str
    max_lora_rank: int  # 0: sized without LoRA
    max_loras: int
    model_ref: str | None = None  # the llm-model version the Component dependsOn, if any

    @classmethod
    def from_vllm_args(
        cls, service: str, args: list[str], model_ref: str | None = None
    ) -> ServingSlots:
        def value(flag: str) -> str | None:
            return args[args.index(flag) + 1] if flag in args[:-1] else None

        lora = "--enable-lora" in args
        return cls(
            service=service,
            model=value("--model") or "",
            served_name=value("--served-model-name") or "",
            max_lora_rank=int(value("--max-lora-rank") or 0) if lora else 0,
            max_loras=int(value("--max-loras") or 0) if lora else 0,
            model_ref=model_ref,
        )

    @classmethod
    def from_repository(
        cls, service: str, root: Path, model_ref: str | None = None
    ) -> ServingSlots:
        path = root / "serving" / "vllm-args.json"
        try:
            args = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{service}: cannot read serving/vllm-args.json ({exc})") from exc
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise InputError(f"{service}: serving/vllm-args.json is not a list of strings")
        return cls.from_vllm_args(service, args, model_ref)


def model_ids(model: Mapping[str, Any]) -> set[str]:
    """The names an llm-model version goes by: its ref, name, family and source."""
    spec = model.get("spec") or {}
    ids = {ref_of(dict(model)), str(model["metadata"]["name"]).lower(), family_of(dict(model))}
    if isinstance(spec.get("source"), str):
        ids.add(spec["source"].lower())
    return ids


def fit_problems(
    slots: ServingSlots, adapter: Mapping[str, Any], base_model: Mapping[str, Any] | None
) -> list[ErrorDetail]:
    """Why ``adapter`` cannot be served by the service (empty: it can). Each problem names
    the adapter version and the service, and both sides of the mismatch."""
    spec = adapter.get("spec") or {}
    me = ref_of(dict(adapter))
    problems: list[ErrorDetail] = []
    base = str(spec.get("baseModel", ""))
    namespace = (adapter.get("metadata") or {}).get("namespace") or "default"
    base_ref = _ref(base, namespace) or base
    if slots.model_ref is not None:
        matches = base_ref == slots.model_ref
    elif base_model is not None:
        matches = bool(model_ids(base_model) & {slots.model.lower(), slots.served_name.lower()})
    else:
        matches = False
    if not matches:
        base_source = (base_model or {}).get("spec", {}).get("source") if base_model else None
        problems.append(
            ErrorDetail(
                "spec.baseModel",
                f"adapter {me} is trained on {base_ref}"
                + (f" ({base_source})" if base_source else "")
                + f", but service {slots.service} serves "
                + (slots.model_ref + " (" if slots.model_ref else "")
                + (slots.model or slots.served_name)
                + (")" if slots.model_ref else ""),
            )
        )
    rank = spec.get("rank")
    if isinstance(rank, int) and rank > slots.max_lora_rank:
        sized = (
            f"was sized for LoRA rank at most {slots.max_lora_rank} (--max-lora-rank)"
            if slots.max_lora_rank
            else "was sized without LoRA slots (no --enable-lora)"
        )
        problems.append(
            ErrorDetail(
                "spec.rank",
                f"adapter {me} has rank {rank}, but service {slots.service} {sized}",
            )
        )
    return problems


def check_fits(
    session: Session, slots: ServingSlots, adapter_ref: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The adapter version and its base model, or ConflictError naming both sides of each
    mismatch: raised before anything about the service changes."""
    catalog = CatalogService(session)
    wanted = _ref(adapter_ref)
    adapter = catalog.get_by_ref(wanted) if wanted else None
    if adapter is None or (adapter.get("spec") or {}).get("type") != ADAPTER_TYPE:
        raise NotFoundError(f"{adapter_ref} is not a lora-adapter version in the catalog")
    namespace = adapter["metadata"].get("namespace") or "default"
    base_ref = _ref(str(adapter["spec"].get("baseModel", "")), namespace)
    base = catalog.get_by_ref(base_ref) if base_ref else None
    problems = fit_problems(slots, adapter, base)
    if problems:
        raise ConflictError(
            f"{ref_of(adapter)} cannot be served by {slots.service}, nothing was changed: "
            + "; ".join(p.message for p in problems),
            problems,
        )
    return adapter, base


def served_model_ref(session: Session, service_entity: Mapping[str, Any]) -> str | None:
    """The llm-model version a service's Component dependsOn (None when it names none)."""
    spec = service_entity.get("spec") or {}
    namespace = (service_entity.get("metadata") or {}).get("namespace") or "default"
    refs = [_ref(str(r), namespace) for r in spec.get("dependsOn") or []]
    found = CatalogService(session).get_by_refs([r for r in refs if r])
    models = [e for e in found if e and (e.get("spec") or {}).get("type") == MODEL_TYPE]
    return ref_of(models[0]) if models else None


def service_slots(session: Session, settings: Settings, entity_ref: str) -> ServingSlots:
    """The serving slots of the service whose Component is ``entity_ref``, read from its
    published repository's serving/vllm-args.json."""
    from portal_backend.provisioning.repo_checkout import CheckoutError, read_text
    from portal_backend.rag.operations import entity_of, repo_contents_url, service_name

    ref = str(parse_ref(entity_ref, default_kind="component"))
    entity = entity_of(session, ref)
    service = service_name(entity)
    url = repo_contents_url(session, service, entity)
    try:
        text = read_text(f"{url.rstrip('/')}/serving/vllm-args.json", settings)
        args = json.loads(text)
    except (CheckoutError, ValueError) as exc:
        raise ConflictError(f"cannot read serving/vllm-args.json of {service}: {exc}") from exc
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConflictError(f"{service}: serving/vllm-args.json is not a list of strings")
    return ServingSlots.from_vllm_args(service, args, served_model_ref(session, entity))


# -- the versions a new service serves (the create form) ------------------------------------


@dataclass
class ServedVersions:
    """The catalog's llm-model and lora-adapter versions a service created with some form
    values serves (its Component's ``dependsOn``), and why a picked version cannot be
    served (paths are form fields: ``lora_adapters.0.version``)."""

    refs: list[str]
    problems: list[ErrorDetail]
    notes: list[str]


def _checkpoint_ids(model: str, quantization: str, custom_model_id: str | None) -> list[str]:
    """The checkpoint the service serves first, then (for the form's own models) the
    unquantized checkpoint a pre-quantized one was made from: an adapter trained on it fits."""
    ids: list[str] = []
    try:
        ids.append(checkpoints.checkpoint_for(model, quantization, custom_model_id or None).hf_id)
    except KeyError:
        pass
    if not custom_model_id and (model, "bf16") in checkpoints.CHECKPOINTS:
        ids.append(checkpoints.CHECKPOINTS[(model, "bf16")].hf_id)
    return list(dict.fromkeys(ids))


def served_versions_for_form(
    session: Session,
    *,
    service: str,
    model: str,
    quantization: str,
    custom_model_id: str | None,
    lora_adapters: list[dict[str, Any]],
) -> ServedVersions:
    """What ``rag:catalog-versions`` computes from the rag-service form: the llm-model
    version whose source is the checkpoint served (the newest when several are), and for
    each LoRA entry the version picked from the catalog (``version``) or else the adapter
    version whose source the entry serves. A picked version must be a lora-adapter whose
    source is the entry's, trained on the service's model and of a rank its LoRA slots
    hold (``fit_problems``: both sides named)."""
    catalog = CatalogService(session)
    checkpoint_ids = _checkpoint_ids(model, quantization, custom_model_id)
    served = checkpoint_ids[0] if checkpoint_ids else (custom_model_id or model)
    ids = list(dict.fromkeys(i.lower() for i in checkpoint_ids))
    models = list(catalog.iter_entities(filters=[MODEL_FILTER]))
    model_ref: str | None = None
    for wanted in ids:  # the served checkpoint first, then the one it was quantized from
        same = [e for e in models if str(e["spec"].get("source", "")).lower() == wanted]
        if same:
            model_ref = ref_of(order_versions(same)[-1])
            break
    refs = [model_ref] if model_ref else []
    notes = [f"serves {model_ref} ({served})"] if model_ref else []
    problems: list[ErrorDetail] = []
    items = [a for a in lora_adapters if isinstance(a, dict)]
    ranks = [a.get("rank") for a in items]
    slots = ServingSlots(
        service=service,
        model=served,
        served_name=model,
        max_lora_rank=max((r for r in ranks if isinstance(r, int)), default=16),
        max_loras=len(items),
        model_ref=model_ref,
    )
    adapters_by_source: dict[str, list[dict[str, Any]]] = {}
    for adapter in catalog.iter_entities(filters=[ADAPTER_FILTER]) if items else ():
        stored = (adapter.get("spec") or {}).get("source")
        if isinstance(stored, str):
            adapters_by_source.setdefault(stored, []).append(adapter)
    for index, item in enumerate(items):
        source = str(item.get("source") or "")
        picked = str(item.get("version") or "").strip()
        field = f"lora_adapters.{index}"
        entity: dict[str, Any] | None
        if picked:
            wanted_ref = _ref(picked)
            entity = catalog.get_by_ref(wanted_ref) if wanted_ref else None
            if entity is None or (entity.get("spec") or {}).get("type") != ADAPTER_TYPE:
                problems.append(
                    ErrorDetail(f"{field}.version", f"{picked} is not a lora-adapter version")
                )
                continue
            if str(entity["spec"].get("source", "")) != source:
                problems.append(
                    ErrorDetail(
                        f"{field}.source",
                        f"{ref_of(entity)} is stored at {entity['spec'].get('source')}, but "
                        f"this entry serves {source}",
                    )
                )
                continue
        else:
            found = adapters_by_source.get(source) or []
            if not found:
                continue
            entity = order_versions(found)[-1]
        namespace = entity["metadata"].get("namespace") or "default"
        base_ref = _ref(str(entity["spec"].get("baseModel", "")), namespace)
        base = catalog.get_by_ref(base_ref) if base_ref else None
        misfits = fit_problems(slots, entity, base)
        if base is None and model_ref is None:
            # Neither its base model nor the service's model is in the catalog: nothing
            # says they differ (the rank still must fit).
            misfits = [p for p in misfits if p.path != "spec.baseModel"]
        for problem in misfits:
            at = "rank" if problem.path == "spec.rank" else ("version" if picked else "source")
            problems.append(ErrorDetail(f"{field}.{at}", problem.message))
        if not misfits and ref_of(entity) not in refs:
            refs.append(ref_of(entity))
            notes.append(f"serves {ref_of(entity)} as {item.get('name')}")
    return ServedVersions(refs, problems, notes)
