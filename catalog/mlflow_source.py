"""``mlflow`` locations: an MLflow model registry read as catalog entities.

The target is a tracking server's address, optionally with a name filter and a default
owner: ``http(s)://host[:port][/prefix][?name=<pattern>][&owner=<ref>]`` (``*`` in the
pattern matches any characters). The registry is read over MLflow's REST API
(``/api/2.0/mlflow/...``: registered models, their versions, and the runs that produced
adapter versions), with the same address checks as ``url`` locations (every connection
goes to a checked address, see ``catalog.url_fetch``); the portal needs no ``mlflow``
package.

Only registered models tagged ``ragportal.type`` (``llm-model`` or ``lora-adapter``) are
read (the versions of other models are not even listed); every READY version of one
becomes a Resource of that ``spec.type`` (docs/models.md has the entity shape and the
tags, ``TAG_PREFIX`` + field, read from the version first and then from its registered
model). The whole registry is read before anything is written, so an unreachable server,
an error answer, or a version that cannot be mapped fails the registration or refresh
and changes nothing.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import httpx

from catalog.errors import ErrorDetail, InputError, PayloadTooLargeError

if TYPE_CHECKING:
    from catalog.locations import LocationPolicy

MLFLOW = "mlflow"
TAG_PREFIX = "ragportal."
ANNOTATION_PREFIX = "rag-portal.io/mlflow-"
TYPES = ("llm-model", "lora-adapter")
PAGE_SIZE = 1000  # the most registered-models/search answers per page
# The whole read (every page and run) may take this many times the per-request timeout.
DEADLINE_FACTOR = 6
TARGET_PARAMS = ("name", "owner")
# PEFT's LoraConfig names, as mlflow.log_params(lora_config.to_dict()) records them.
RUN_PARAMS = {
    "rank": ("r", "lora_r"),
    "alpha": ("lora_alpha",),
    "target_modules": ("target_modules",),
}


@dataclass(frozen=True)
class MlflowTarget:
    base: str  # scheme://host[:port][/prefix], no trailing slash
    name_pattern: str | None
    owner: str | None

    def search_filter(self) -> str | None:
        if self.name_pattern is None:
            return None
        return f"name LIKE {_quoted(self.name_pattern.replace('*', '%'))}"


def parse_target(target: str) -> MlflowTarget:
    parts = urlsplit(target.strip())
    if parts.fragment:
        raise InputError(
            f"mlflow location {target!r} has a fragment; use ?name=<pattern>",
            [ErrorDetail("target", "no #fragment")],
        )
    if parts.username is not None or parts.password is not None:
        raise InputError(
            f"mlflow location {urlunsplit(parts._replace(netloc=parts.hostname or ''))!r} "
            "carries credentials; a location's target is shown to every catalog reader",
            [ErrorDetail("target", "no user:password@ in the target")],
        )
    params = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(params) - set(TARGET_PARAMS))
    if unknown:
        raise InputError(
            f"mlflow location {target!r}: unknown parameter {unknown[0]!r}; "
            f"the target takes {' and '.join(TARGET_PARAMS)}",
            [ErrorDetail("target", f"unknown parameter {unknown[0]!r}")],
        )
    values: dict[str, str | None] = {}
    for key in TARGET_PARAMS:
        given = params.get(key, [])
        if len(given) > 1 or (given and not given[0].strip()):
            raise InputError(
                f"mlflow location {target!r}: give {key} once, not empty",
                [ErrorDetail("target", f"{key} once")],
            )
        values[key] = given[0].strip() if given else None
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return MlflowTarget(base, values["name"], values["owner"])


def _quoted(value: str) -> str:
    """A string literal of MLflow's search filter syntax."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise InputError(
        f"{value!r} holds both quote characters; MLflow's search filter cannot name it",
        [ErrorDetail("target", "quotes in a name")],
    )


def slug(name: str) -> str:
    """A registered model's name as an entity name part: ``HR Adapter`` -> ``hr-adapter``."""
    text = re.sub(r"[^a-z0-9_.-]+", "-", name.lower())
    return re.sub(r"([-_.])[-_.]+", r"\1", text).strip("-_.")


def entity_name(model: str, version: str) -> str:
    return f"{slug(model)}-v{version}"


class _Api:
    """GETs of one tracking server's REST API, capped in bytes and in time."""

    def __init__(
        self, client: httpx.Client, base: str, policy: LocationPolicy, budget: int
    ) -> None:
        self.client = client
        self.base = base
        self.max_bytes = policy.max_bytes
        self.budget = budget
        self.read = 0
        self.deadline = time.monotonic() + DEADLINE_FACTOR * policy.timeout_s
        self.timeout_s = policy.timeout_s
        # Redirects are not followed, so the header reaches this origin only.
        self.origin = origin = urlunsplit(urlsplit(base)[:2] + ("", "", ""))
        credential = policy.mlflow_auth.get(origin)
        self.headers = {"Accept": "application/json"}
        if credential:
            self.headers["Authorization"] = credential

    def get(self, path: str, params: dict[str, Any]) -> tuple[int, Any]:
        """(status, decoded JSON) of ``GET <base>/api/2.0/mlflow/<path>``; a transport
        error, a redirect or an answer that is not JSON raises InputError."""
        url = f"{self.base}/api/2.0/mlflow/{path}"
        if time.monotonic() > self.deadline:
            raise InputError(
                f"reading the MLflow registry at {self.base} took longer than "
                f"{DEADLINE_FACTOR * self.timeout_s:g}s; narrow the location with ?name=",
                [ErrorDetail("target", "registry read timed out")],
            )
        try:
            with self.client.stream("GET", url, params=params, headers=self.headers) as response:
                body = self._body(response, url)
        except httpx.HTTPError as exc:
            raise InputError(
                f"could not reach the MLflow tracking server at {self.base}: "
                f"{type(exc).__name__}: {exc}",
                [ErrorDetail("target", "MLflow server unreachable")],
            ) from exc
        if response.is_redirect:
            raise InputError(
                f"MLflow at {self.base} redirected GET {path} to "
                f"{response.headers.get('location', '?')}; register the address it answers at",
                [ErrorDetail("target", f"HTTP {response.status_code} redirect")],
            )
        try:
            decoded = json.loads(body) if body.strip() else {}
        except ValueError:
            decoded = None
        if response.status_code >= 400:
            raise self._failure(path, response.status_code, decoded, body)
        if not isinstance(decoded, dict):
            raise InputError(
                f"{url} did not answer with a JSON object (HTTP {response.status_code}); "
                "is the target an MLflow tracking server?",
                [ErrorDetail("target", "not an MLflow answer")],
            )
        return response.status_code, decoded

    def _body(self, response: httpx.Response, url: str) -> str:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            self.read += len(chunk)
            if size > self.max_bytes:
                raise PayloadTooLargeError(
                    f"{url} answered more than the limit of {self.max_bytes} bytes"
                )
            if self.read > self.budget:
                raise PayloadTooLargeError(
                    f"the MLflow registry at {self.base} answered more than {self.budget} "
                    "bytes in all; narrow the location with ?name="
                )
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def _failure(self, path: str, status: int, decoded: Any, body: str) -> InputError:
        if isinstance(decoded, dict) and ("error_code" in decoded or "message" in decoded):
            said = f"{decoded.get('error_code', 'error')}: {str(decoded.get('message', ''))[:500]}"
        else:
            said = " ".join(body.split())[:200] or "(empty body)"
        hint = {
            401: f"; RAGPORTAL_MLFLOW_CREDENTIALS holds the credentials for {self.origin}",
            403: f"; RAGPORTAL_MLFLOW_CREDENTIALS holds the credentials for {self.origin}",
            404: "; is the target an MLflow tracking server?",
        }.get(status, "")
        return InputError(
            f"MLflow at {self.base} answered HTTP {status} to GET {path}: {said}{hint}",
            [ErrorDetail("target", f"MLflow answered HTTP {status}")],
        )

    def pages(self, path: str, params: dict[str, Any], key: str) -> list[dict[str, Any]]:
        """Every item of a paged search (``next_page_token``)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query = {**params, **({"page_token": token} if token else {})}
            _, answer = self.get(path, query)
            found = answer.get(key) or []
            if not isinstance(found, list):
                raise InputError(
                    f"MLflow at {self.base}: {path} answered {key} that is not a list",
                    [ErrorDetail("target", "not an MLflow answer")],
                )
            items.extend(item for item in found if isinstance(item, dict))
            token = answer.get("next_page_token") or None
            if token is None:
                return items


def _tags(item: dict[str, Any]) -> dict[str, str]:
    """MLflow's ``[{key, value}]`` as a dict."""
    tags = item.get("tags") or []
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t.get("key")): str(t.get("value", "")) for t in tags if isinstance(t, dict)}


class _Version:
    """One model version, with its tags over its registered model's."""

    def __init__(self, model: dict[str, Any], version: dict[str, Any]) -> None:
        self.model = str(model["name"])
        self.version = str(version.get("version", ""))
        self.raw = version
        self.model_raw = model
        self.tags = {**_tags(model), **_tags(version)}
        self.run_params: dict[str, str] = {}

    @property
    def where(self) -> str:
        return f"MLflow model {self.model!r} version {self.version}"

    def tag(self, field: str) -> str | None:
        value = self.tags.get(TAG_PREFIX + field)
        if value is None or not value.strip():
            return None
        return value.strip()

    def setting(self, field: str) -> tuple[str, str] | None:
        """(value, where it was found) from a tag, or else from the run's params."""
        value = self.tag(field)
        if value is not None:
            return value, f"tag {TAG_PREFIX}{field}"
        for param in RUN_PARAMS.get(field, ()):
            if self.run_params.get(param, "").strip():
                return self.run_params[param].strip(), f"run param {param}"
        return None

    def problem(self, message: str) -> InputError:
        return InputError(f"{self.where}: {message}", [ErrorDetail("target", message)])


def _integer(version: _Version, field: str) -> int | None:
    found = version.setting(field)
    if found is None:
        return None
    value, source = found
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise version.problem(f"{source} is {value!r}, not an integer")
    return int(number)


def _number(version: _Version, field: str) -> int | float | None:
    found = version.setting(field)
    if found is None:
        return None
    value, source = found
    try:
        number = float(value)
    except ValueError:
        raise version.problem(f"{source} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise version.problem(f"{source} is {value!r}, not a finite number")
    return int(number) if number.is_integer() else number


def _names(version: _Version, field: str) -> list[str] | None:
    """A list of names: JSON or Python list/set syntax (as a run param records PEFT's
    set), or comma-separated."""
    found = version.setting(field)
    if found is None:
        return None
    value, source = found
    if value[:1] in "[({":
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise version.problem(f"{source} {value!r} is not a list of names") from None
        if not isinstance(parsed, list | tuple | set) or not all(
            isinstance(p, str) for p in parsed
        ):
            raise version.problem(f"{source} {value!r} is not a list of names")
        names = list(parsed) if isinstance(parsed, list | tuple) else sorted(parsed)
    else:
        names = [part.strip() for part in value.split(",")]
    return [name for name in names if name]


def _model_ref(value: str) -> str:
    """An adapter's base model: ``models:/<name>/<version>`` (a version in an MLflow
    registry) becomes the entity this location type makes of it; refs pass as written."""
    if value.startswith("models:/"):
        name, _, number = value[len("models:/") :].rstrip("/").rpartition("/")
        if name and number.isdigit():
            return f"resource:default/{entity_name(name, number)}"
    return value


def _eval_scores(version: _Version, run: dict[str, Any] | None) -> dict[str, int | float]:
    """The run's metrics (latest values); ``ragportal.eval_metrics`` (comma-separated)
    picks which."""
    if run is None:
        return {}
    metrics = (run.get("data") or {}).get("metrics") or []
    wanted = version.tag("eval_metrics")
    keep = {m.strip() for m in wanted.split(",") if m.strip()} if wanted else None
    scores: dict[str, int | float] = {}
    for metric in metrics:
        if not isinstance(metric, dict):
            continue
        key, value = metric.get("key"), metric.get("value")
        if not isinstance(key, str) or (keep is not None and key not in keep):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            scores[key] = value
    return dict(sorted(scores.items()))


def _entity(
    target: MlflowTarget,
    version: _Version,
    kind: str,
    previous: str | None,
    run: dict[str, Any] | None,
) -> dict[str, Any]:
    family = version.tag("family") or slug(version.model)
    name = f"{family}-v{version.version}"
    if not family or len(name) > 63:
        raise version.problem(
            f"entity name {name!r} is empty or longer than 63 characters; "
            f"set a shorter {TAG_PREFIX}family tag"
        )
    owner = version.tag("owner") or target.owner
    if owner is None:
        raise version.problem(
            f"no owner: tag the registered model or the version {TAG_PREFIX}owner "
            "(e.g. group:default/ml-platform), or give ?owner= in the location's target"
        )
    raw = version.raw
    annotations = {
        f"{ANNOTATION_PREFIX}model": version.model,
        f"{ANNOTATION_PREFIX}version": version.version,
    }
    for key, value in (
        ("run-id", raw.get("run_id")),
        ("storage", raw.get("source")),
        ("stage", raw.get("current_stage") if raw.get("current_stage") != "None" else None),
        ("aliases", ",".join(str(a) for a in raw.get("aliases") or []) or None),
    ):
        if value:
            annotations[ANNOTATION_PREFIX + key] = str(value)
    metadata: dict[str, Any] = {
        "name": name,
        "title": f"{version.model} v{version.version}",
        "annotations": annotations,
        "links": [
            {
                "url": f"{target.base}/#/models/{quote(version.model, safe='')}"
                f"/versions/{version.version}",
                "title": "MLflow model version",
            }
        ],
    }
    description = raw.get("description") or version.model_raw.get("description")
    if description:
        metadata["description"] = str(description)
    spec: dict[str, Any] = {
        "type": kind,
        "owner": owner,
        "family": family,
        "version": version.version,
    }
    if previous is not None:
        spec["previousVersion"] = f"resource:default/{family}-v{previous}"
    spec["source"] = version.tag("source") or f"models:/{version.model}/{version.version}"
    if version.tag("format"):
        spec["format"] = version.tag("format")
    if kind == "llm-model":
        parameters = version.tag("parameters")
        if parameters is not None:
            spec["parameters"] = int(parameters) if parameters.isdigit() else parameters
        if version.tag("quantization"):
            spec["quantization"] = version.tag("quantization")
        return {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Resource",
            "metadata": metadata,
            "spec": spec,
        }
    base_model = version.tag("base_model")
    if base_model is None:
        raise version.problem(
            f"an adapter needs its base model: tag {TAG_PREFIX}base_model "
            "(an entity ref, or models:/<name>/<version> of this registry)"
        )
    spec["baseModel"] = _model_ref(base_model)
    rank = _integer(version, "rank")
    if rank is None:
        raise version.problem(
            f"an adapter needs its rank: tag {TAG_PREFIX}rank, or log the run param r"
        )
    spec["rank"] = rank
    alpha = _number(version, "alpha")
    if alpha is not None:
        spec["alpha"] = alpha
    modules = _names(version, "target_modules")
    if modules is not None:
        spec["targetModules"] = modules
    if version.tag("dataset"):
        spec["dataset"] = version.tag("dataset")
    scores = _eval_scores(version, run)
    if scores:
        spec["evalScores"] = scores
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Resource",
        "metadata": metadata,
        "spec": spec,
    }


def _run(api: _Api, version: _Version, runs: dict[str, dict[str, Any] | None]) -> Any:
    """The run that produced a version (None: no run, or the run is gone)."""
    run_id = version.raw.get("run_id")
    if not run_id:
        return None
    if run_id not in runs:
        try:
            _, answer = api.get("runs/get", {"run_id": run_id})
        except InputError as exc:
            # A version outlives its run when the run was deleted: no scores, no params.
            if "RESOURCE_DOES_NOT_EXIST" not in exc.message:
                raise
            runs[run_id] = None
        else:
            run = answer.get("run")
            runs[run_id] = run if isinstance(run, dict) else None
    return runs[run_id]


def _version_sort_key(item: dict[str, Any]) -> tuple[int, str]:
    number = str(item.get("version", ""))
    return (int(number) if number.isdigit() else -1, number)


def read_registry(
    client: httpx.Client, target: str, policy: LocationPolicy, budget: int
) -> tuple[list[dict[str, Any]], int]:
    """The entities of the registry at ``target`` and the bytes its answers held.

    ``client``: an httpx client whose connections are checked (``pinned_client``);
    ``policy``: the ``LocationPolicy`` (per-answer size, timeout); ``budget``: the most
    bytes all answers together may hold.
    """
    parsed = parse_target(target)
    api = _Api(client, parsed.base, policy, budget)
    params: dict[str, Any] = {"max_results": PAGE_SIZE}
    search = parsed.search_filter()
    if search:
        params["filter"] = search
    models = api.pages("registered-models/search", params, "registered_models")
    entities: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any] | None] = {}
    for model in sorted(models, key=lambda m: str(m.get("name", ""))):
        if not isinstance(model.get("name"), str):
            continue
        # The registered model is a model or an adapter; its versions follow it.
        kind = (_tags(model).get(TAG_PREFIX + "type") or "").strip().lower()
        if not kind:
            continue  # not a model the portal catalogs: its versions are not read
        if kind not in TYPES:
            raise InputError(
                f"MLflow model {model['name']!r}: tag {TAG_PREFIX}type is {kind!r}; "
                f"use one of {', '.join(TYPES)}",
                [ErrorDetail("target", f"{TAG_PREFIX}type {kind!r}")],
            )
        versions = api.pages(
            "model-versions/search",
            {"filter": f"name = {_quoted(model['name'])}", "max_results": PAGE_SIZE},
            "model_versions",
        )
        previous: str | None = None
        for raw in sorted(versions, key=_version_sort_key):
            if raw.get("name") != model["name"] or raw.get("status", "READY") != "READY":
                continue  # being registered, or failed to
            version = _Version(model, raw)
            run = None
            if kind == "lora-adapter":
                run = _run(api, version, runs)
                if run is not None:
                    version.run_params = {
                        str(p.get("key")): str(p.get("value", ""))
                        for p in (run.get("data") or {}).get("params") or []
                        if isinstance(p, dict)
                    }
            entities.append(_entity(parsed, version, kind, previous, run))
            previous = version.version
    return entities, api.read
