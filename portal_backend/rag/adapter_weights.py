"""LoRA adapter weights read from safetensors files, and the per-layer change between two
versions, without loading a model.

A LoRA layer is two matrices: ``lora_A`` (r x in) and ``lora_B`` (out x r); the change it
makes to the base weight is ``dW = s * B @ A`` with ``s = alpha / r`` (``alpha / sqrt(r)``
with rsLoRA). The change between two versions of a layer is ``dW_to - dW_from``; its
Frobenius norm is computed from the (r_from + r_to)-square Gram matrices of
``[s_to*B_to, -s_from*B_from]`` and ``[A_to; A_from]`` (``||U V||^2 = sum((U'U) * (V V'))``),
so a 4096 x 4096 layer never becomes a 4096 x 4096 matrix, and two ranks compare.

Every problem with a file (missing, not safetensors, truncated, a dtype numpy cannot
hold) is a ``WeightsError`` naming the file: the HTTP layer answers 422, never 500.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from catalog.errors import ErrorDetail, NotAllowedError, UnprocessableError
from catalog.locations import LocationPolicy, check_file

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
# Safetensors' own header limit (100 MB); a LoRA adapter's weights are far below this.
MAX_HEADER_BYTES = 100_000_000
_LORA_KEY = re.compile(
    r"^(?P<module>.+?)\.lora_(?:embedding_)?(?P<part>A|B)(?:\.(?P<adapter>[^.]+))?(?:\.weight)?$"
)
_PREFIXES = ("base_model.model.",)

Matrix = NDArray[np.float64]


class WeightsError(UnprocessableError):
    """A weights file that cannot be read as a LoRA adapter's safetensors."""


@dataclass(frozen=True)
class WeightsLocation:
    """Where a version's weights are, or why they are not readable here."""

    weights: Path | None
    config: Path | None
    reason: str | None = None


@dataclass
class AdapterWeights:
    path: Path
    # module -> {"A": matrix, "B": matrix}
    lora: dict[str, dict[str, Matrix]] = field(default_factory=dict)
    # other tensors (modules_to_save, ...): name -> array
    other: dict[str, Matrix] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)


def locate(source: str | None, *, policy: LocationPolicy) -> WeightsLocation:
    """The safetensors file of an adapter version whose ``spec.source`` is a local path or
    a ``file:`` URL (a directory holding adapter_model.safetensors, or the file itself).
    Other sources (Hugging Face ids, ``models:/`` MLflow URIs, s3://) are not read here.

    The path comes from a catalog entity, which a remote catalog file or an MLflow server
    may have written: it is read only under the policy's allowed file roots (the check
    ``file`` locations get, ``catalog.locations.check_file``), and nothing about a path
    outside them is looked at, not even whether it exists."""
    if not source:
        return WeightsLocation(None, None, "the version has no spec.source")
    if source.startswith("file:"):
        path = Path(unquote(urlparse(source).path))
    elif source.startswith("/") or source.startswith("./") or source.startswith("~"):
        path = Path(source).expanduser()
    else:
        return WeightsLocation(
            None,
            None,
            f"spec.source {source!r} is not a local path or file: URL; only those are read "
            "for a weight diff",
        )
    refused = _outside_roots(path, policy)
    if refused:
        return WeightsLocation(None, None, refused)
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        config = path / CONFIG_FILE
        if not weights.is_file():
            found = sorted(p.name for p in path.glob("*.safetensors"))
            if len(found) != 1:
                readable = config.is_file() and not _outside_roots(config, policy)
                return WeightsLocation(
                    None,
                    config if readable else None,
                    f"{path} holds no {WEIGHTS_FILE}"
                    + (f" (and {len(found)} other .safetensors files)" if found else ""),
                )
            weights = path / found[0]
        return _checked(weights, config if config.is_file() else None, policy)
    if path.suffix == ".safetensors":
        config = path.parent / CONFIG_FILE
        if not path.exists():
            raise WeightsError(
                f"{path}: no such file", [ErrorDetail("spec.source", f"{path} does not exist")]
            )
        return _checked(path, config if config.is_file() else None, policy)
    if not path.exists():
        return WeightsLocation(None, None, f"{path} does not exist on the portal's machine")
    return WeightsLocation(None, None, f"{path} is neither a directory nor a .safetensors file")


def _outside_roots(path: Path, policy: LocationPolicy) -> str | None:
    """Why ``path`` (after links) may not be read, or None when it is under the roots."""
    try:
        check_file(str(path.absolute()), policy)
    except ValueError:  # a NUL byte (a file: URL's %00): no file has that name
        return f"{str(path)!r} is not a valid path on the portal's machine"
    except NotAllowedError:
        return (
            f"{path} is outside the portal's allowed file roots (RAGPORTAL_ALLOWED_FILE_ROOTS), "
            "so no weights were read from it"
        )
    return None


def _checked(weights: Path, config: Path | None, policy: LocationPolicy) -> WeightsLocation:
    """The files found under an allowed folder, each checked again: a link among them may
    lead out of the roots."""
    for file in (weights, config):
        refused = _outside_roots(file, policy) if file is not None else None
        if refused:
            return WeightsLocation(None, None, refused)
    return WeightsLocation(weights, config)


def read_config(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(
            f"{path}: not a readable adapter_config.json ({exc})",
            [ErrorDetail(str(path), "not a JSON object")],
        ) from exc
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: adapter_config.json is not a JSON object")
    return data


def _bad(path: Path, why: str) -> WeightsError:
    return WeightsError(
        f"{path} is not a readable safetensors file: {why}",
        [ErrorDetail(str(path), why)],
    )


def _header(path: Path) -> tuple[int, dict[str, Any]]:
    """The header (tensor name -> dtype, shape, data_offsets) and where the data starts;
    checked against the file's size, so a truncated file is refused before any read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise _bad(path, f"{size} bytes, shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise _bad(
                    path, f"header of {length} bytes does not fit in the file's {size} bytes"
                )
            raw = handle.read(length)
    except OSError as exc:
        raise _bad(path, str(exc)) from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, f"header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")
    data_size = size - 8 - length
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
        ):
            raise _bad(path, f"tensor {name!r} has no data_offsets")
        if offsets[1] > data_size:
            raise _bad(
                path,
                f"truncated: tensor {name!r} ends at byte {offsets[1]} of the data, which "
                f"has {data_size} bytes",
            )
    return 8 + length, header


def _bf16(path: Path, start: int, info: Mapping[str, Any]) -> Matrix:
    begin, end = info["data_offsets"]
    with path.open("rb") as handle:
        handle.seek(start + begin)
        raw = handle.read(end - begin)
    halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return halves.view(np.float32).astype(np.float64).reshape(info["shape"])


def read_weights(path: Path) -> AdapterWeights:
    """Every tensor of an adapter's safetensors file, as float64 matrices (read with the
    ``safetensors`` library; bfloat16, which numpy lacks, decoded from its bytes)."""
    from safetensors import safe_open

    start, header = _header(path)
    out = AdapterWeights(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            names = list(handle.keys())
            for name in names:
                info = header.get(name) or {}
                dtype = str(info.get("dtype", ""))
                tensor = (
                    _bf16(path, start, info)
                    if dtype == "BF16"
                    else np.asarray(handle.get_tensor(name), dtype=np.float64)
                )
                out.shapes[name] = list(tensor.shape)
                out.dtypes[name] = dtype
                if not np.all(np.isfinite(tensor)):
                    raise _bad(path, f"tensor {name!r} holds NaN or infinite values")
                match = _LORA_KEY.match(name)
                if match and tensor.ndim == 2:
                    module = match["module"]
                    for prefix in _PREFIXES:
                        module = module.removeprefix(prefix)
                    out.lora.setdefault(module, {})[match["part"]] = tensor
                else:
                    out.other[name] = tensor
    except WeightsError:
        raise
    except Exception as exc:  # safetensors' SafetensorError, numpy's dtype errors
        raise _bad(path, f"{type(exc).__name__}: {exc}") from exc
    for module, parts in out.lora.items():
        if set(parts) != {"A", "B"}:
            raise _bad(path, f"layer {module!r} has lora_{''.join(parts)} but not both A and B")
        if parts["A"].shape[0] != parts["B"].shape[1]:
            raise _bad(
                path,
                f"layer {module!r}: lora_A {list(parts['A'].shape)} and lora_B "
                f"{list(parts['B'].shape)} disagree on the rank",
            )
    return out


def scaling(config: Mapping[str, Any] | None, module: str, rank: int, alpha: float | None) -> float:
    """peft's scaling of a layer: alpha / r (alpha / sqrt(r) with use_rslora), alpha from
    the config's alpha_pattern, its lora_alpha, else the entity's spec.alpha; 1 when none."""
    if config:
        pattern = config.get("alpha_pattern") or {}
        hit = next((v for k, v in pattern.items() if module.endswith(k)), None)
        value = hit if hit is not None else config.get("lora_alpha")
        if isinstance(value, int | float):
            alpha = float(value)
    if alpha is None or rank <= 0:
        return 1.0
    root = bool(config and config.get("use_rslora"))
    return alpha / (math.sqrt(rank) if root else rank)


def _gram_norm(us: list[Matrix], vs: list[Matrix]) -> float:
    """||sum_i U_i V_i||_F with U_i (out x r_i), V_i (r_i x in), via r x r Gram matrices."""
    u = np.concatenate(us, axis=1)
    v = np.concatenate(vs, axis=0)
    value = float(np.sum((u.T @ u) * (v @ v.T)))
    return math.sqrt(max(value, 0.0))


def _side(parts: Mapping[str, Matrix], scale: float) -> dict[str, Any]:
    a, b = parts["A"], parts["B"]
    return {
        "rank": int(a.shape[0]),
        "lora_A": list(a.shape),
        "lora_B": list(b.shape),
        "scaling": round(scale, 6),
        "delta_norm": _gram_norm([scale * b], [a]),
    }


def layer_diff(
    old: AdapterWeights,
    new: AdapterWeights,
    *,
    old_config: Mapping[str, Any] | None = None,
    new_config: Mapping[str, Any] | None = None,
    old_alpha: float | None = None,
    new_alpha: float | None = None,
) -> dict[str, Any]:
    """Per layer: ranks, shapes, the norm of each version's change to the base weight and
    the norm of the change between them (``change_norm``, ``relative_change`` = change /
    the old version's norm).

    The products are small (r x r); BLAS threads only contend for them, and on a busy
    machine made a rank-64 adapter's diff 20x slower, so they run on one thread."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _layer_diff(
            old,
            new,
            old_config=old_config,
            new_config=new_config,
            old_alpha=old_alpha,
            new_alpha=new_alpha,
        )


def _layer_diff(
    old: AdapterWeights,
    new: AdapterWeights,
    *,
    old_config: Mapping[str, Any] | None = None,
    new_config: Mapping[str, Any] | None = None,
    old_alpha: float | None = None,
    new_alpha: float | None = None,
) -> dict[str, Any]:
    """Per layer: ranks, shapes, the norm of each version's change to the base weight and
    the norm of the change between them (``change_norm``, ``relative_change`` = change /
    the old version's norm)."""
    layers: list[dict[str, Any]] = []
    for module in sorted(set(old.lora) | set(new.lora)):
        row: dict[str, Any] = {"module": module}
        before, after = old.lora.get(module), new.lora.get(module)
        if before is not None:
            s_old = scaling(old_config, module, int(before["A"].shape[0]), old_alpha)
            row["from"] = _side(before, s_old)
        if after is not None:
            s_new = scaling(new_config, module, int(after["A"].shape[0]), new_alpha)
            row["to"] = _side(after, s_new)
        if before is None or after is None:
            row["status"] = "added" if before is None else "removed"
            row["change_norm"] = (row.get("to") or row.get("from") or {}).get("delta_norm")
        elif (before["A"].shape[1], before["B"].shape[0]) != (
            after["A"].shape[1],
            after["B"].shape[0],
        ):
            row["status"] = "incomparable"
            row["change_norm"] = None
            row["note"] = (
                f"the base weight's shape differs: {before['B'].shape[0]}x"
                f"{before['A'].shape[1]} vs {after['B'].shape[0]}x{after['A'].shape[1]}"
            )
        else:
            change = _gram_norm(
                [s_new * after["B"], -s_old * before["B"]], [after["A"], before["A"]]
            )
            row["change_norm"] = change
            base = row["from"]["delta_norm"]
            row["relative_change"] = (change / base) if base > 0 else None
            row["status"] = "unchanged" if change <= 1e-12 * max(base, 1.0) else "changed"
        layers.append(row)
    others: list[dict[str, Any]] = []
    for name in sorted(set(old.other) | set(new.other)):
        x, y = old.other.get(name), new.other.get(name)
        item: dict[str, Any] = {
            "tensor": name,
            "from_shape": list(x.shape) if x is not None else None,
            "to_shape": list(y.shape) if y is not None else None,
        }
        if x is not None and y is not None and x.shape == y.shape:
            item["change_norm"] = float(np.linalg.norm((y - x).ravel()))
        others.append(item)
    changes = [r["change_norm"] for r in layers if isinstance(r.get("change_norm"), float)]
    top = max(
        (r for r in layers if isinstance(r.get("change_norm"), float)),
        key=lambda r: r["change_norm"],
        default=None,
    )
    return {
        "layers": layers,
        "other_tensors": others,
        "summary": {
            "layers": len(layers),
            "changed": sum(1 for r in layers if r["status"] == "changed"),
            "unchanged": sum(1 for r in layers if r["status"] == "unchanged"),
            "added": sum(1 for r in layers if r["status"] == "added"),
            "removed": sum(1 for r in layers if r["status"] == "removed"),
            "incomparable": sum(1 for r in layers if r["status"] == "incomparable"),
            "total_change_norm": math.sqrt(sum(c * c for c in changes)),
            "largest_change": top["module"] if top else None,
        },
    }
