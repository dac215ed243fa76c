"""vLLM's own definitions, read from its source (build/vllm-source/vllm-<version>/, fetched
verbatim from the PyPI sdist by scripts/vendor_vllm_source.py), never retyped here.

vLLM cannot be installed on these machines (CUDA wheels) and could not load a model
without a GPU, so the tests check the generated ``vllm serve`` arguments against what
the pinned vLLM's code declares, parsed with ``ast``:

- the CLI flags: ``add_argument("--x", **<cfg>_kwargs["field"])`` in
  ``engine/arg_utils.py`` plus ``FrontendArgs``' fields in ``entrypoints/openai/cli_args.py``;
  each flag's value kind follows the rule of ``arg_utils._compute_kwargs`` (bool -> a
  switch, Literal -> choices, list -> one or more values, int, float, str) applied to the
  config dataclass field's annotation;
- the quantization methods (``QuantizationMethods``), the config class of each, whether
  it needs a pre-quantized checkpoint (``get_config_filenames`` not empty: the loader
  then raises "Cannot find the config file" for plain weights), its minimum compute
  capability, and which checkpoint ``quant_method`` and bit widths its Marlin kernel
  converts;
- the LoRA limits (``LoRAConfig.__post_init__``) and the ``--lora-modules`` item format
  (``LoRAParserAction``).
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.10.1.1"
# Fetched from PyPI by scripts/setup.d/25-vllm-source.sh; only the manifest is ours.
SOURCE = ROOT / "build" / "vllm-source" / f"vllm-{VERSION}"
MANIFEST = ROOT / "tests" / "fixtures" / f"vllm-{VERSION}.manifest.json"
QUANT = "vllm/model_executor/layers/quantization"
# Modules holding the config dataclasses whose fields become CLI flags.
CONFIG_MODULES = ("vllm/config/__init__.py", "vllm/config/cache.py", "vllm/config/parallel.py")


def manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())


def tampered_files() -> list[str]:
    """Files whose sha256 differs from the one recorded when copied from the sdist."""
    return [
        name
        for name, digest in manifest()["files"].items()
        if hashlib.sha256((SOURCE / name).read_bytes()).hexdigest() != digest
    ]


@cache
def _tree(relative: str) -> ast.Module:
    return ast.parse((SOURCE / relative).read_text(), filename=relative)


def _text(relative: str) -> str:
    return (SOURCE / relative).read_text()


def _class(relative: str, name: str) -> ast.ClassDef:
    for node in ast.walk(_tree(relative)):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise LookupError(f"class {name} not in {relative}")


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise LookupError(f"{cls.name}.{name} not found")


def _returned(function: ast.FunctionDef) -> Any:
    returns = [n for n in ast.walk(function) if isinstance(n, ast.Return) and n.value]
    assert len(returns) == 1, f"{function.name} has {len(returns)} returns"
    return ast.literal_eval(returns[0].value)


# ------------------------------------------------------------------ type annotations
@cache
def _literal_aliases() -> dict[str, tuple[Any, ...]]:
    """Module-level ``Name = Literal[...]`` of every vendored module."""
    out: dict[str, tuple[Any, ...]] = {}
    for relative in manifest()["files"]:
        if not relative.endswith(".py"):
            continue
        for node in _tree(relative).body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and _is_literal(node.value)
            ):
                try:
                    out[node.targets[0].id] = _literal_values(node.value)
                except ValueError:
                    continue  # a Literal of names, not of constants: no flag of ours uses one
    return out


def _is_literal(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Literal"
    )


def _literal_values(node: ast.Subscript) -> tuple[Any, ...]:
    items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    return tuple(ast.literal_eval(item) for item in items)


def _atoms(node: ast.AST) -> list[Any]:
    """The types an annotation allows: "int", "float", "str", "bool", "list", "None", or a
    tuple of Literal values."""
    if isinstance(node, ast.Constant) and node.value is None:
        return ["None"]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _atoms(node.left) + _atoms(node.right)
    if _is_literal(node):
        return [_literal_values(node)]  # type: ignore[arg-type]
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        if name in _literal_aliases():
            return [_literal_aliases()[name]]
        return [name]
    if isinstance(node, ast.Subscript):
        outer = node.value.id if isinstance(node.value, ast.Name) else ast.unparse(node.value)
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer in ("Optional", "Union", "SkipValidation", "Annotated"):
            return [
                a for item in inner[: 1 if outer == "Annotated" else None] for a in _atoms(item)
            ]
        if outer in ("list", "List"):
            return ["list"]
        return [outer]
    return [ast.unparse(node)]


@dataclass(frozen=True)
class Flag:
    """How ``vllm serve`` parses one flag."""

    name: str
    kind: str  # "switch" | "choice" | "list" | "int" | "float" | "str" | "unvendored"
    choices: tuple[Any, ...] = ()

    def accepts(self, values: list[str]) -> bool:
        if self.kind == "unvendored":
            return False
        if self.kind == "switch":
            return values == []
        if self.kind == "list":
            return len(values) >= 1
        if len(values) != 1:
            return False
        value = values[0]
        if self.kind == "choice":
            return value in self.choices
        if self.kind in ("int", "float"):
            try:
                {"int": int, "float": float}[self.kind](value)
            except ValueError:
                return False
        return True


def _kind(atoms: list[Any]) -> Flag:
    # The order of arg_utils._compute_kwargs: bool, Literal, list, int, float, str.
    literals = [a for a in atoms if isinstance(a, tuple)]
    if "bool" in atoms:
        return Flag("", "switch")
    if literals:
        return Flag("", "choice", tuple(v for lit in literals for v in lit))
    for kind in ("list", "int", "float"):
        if kind in atoms:
            return Flag("", kind)
    return Flag("", "str")


def _field_annotation(class_name: str, field: str) -> ast.AST:
    for relative in CONFIG_MODULES + ("vllm/entrypoints/openai/cli_args.py",):
        try:
            cls = _class(relative, class_name)
        except LookupError:
            continue
        for node in cls.body:
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == field
            ):
                return node.annotation
        raise LookupError(f"{class_name}.{field} not found")
    raise LookupError(f"config class {class_name} not vendored")


# ------------------------------------------------------------------ the CLI
@cache
def cli_flags() -> dict[str, Flag]:
    """Every ``vllm serve`` flag with how its value parses."""
    flags: dict[str, Flag] = {}
    # FrontendArgs: one flag per field (cli_args.FrontendArgs.add_cli_args).
    frontend = _class("vllm/entrypoints/openai/cli_args.py", "FrontendArgs")
    for node in frontend.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = "--" + node.target.id.replace("_", "-")
            flags[name] = Flag(name, **_as_kw(_kind(_atoms(node.annotation))))
    # EngineArgs.add_cli_args: add_argument("--x", ..., **<group>_kwargs["field"]) where
    # <group>_kwargs = get_kwargs(<ConfigClass>).
    arg_utils = _tree("vllm/engine/arg_utils.py")
    kwargs_of: dict[str, str] = {}
    for node in ast.walk(arg_utils):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "get_kwargs"
            and isinstance(node.targets[0], ast.Name)
        ):
            kwargs_of[node.targets[0].id] = ast.unparse(node.value.args[0])
    for node in ast.walk(arg_utils):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("--")
        ):
            continue
        name = str(node.args[0].value)
        action = next((k.value for k in node.keywords if k.arg == "action"), None)
        if action is not None and "BooleanOptionalAction" in ast.unparse(action):
            flags[name] = Flag(name, "switch")
            continue
        spread = next((k.value for k in node.keywords if k.arg is None), None)
        if (
            isinstance(spread, ast.Subscript)
            and isinstance(spread.value, ast.Name)
            and spread.value.id in kwargs_of
        ):
            field = ast.literal_eval(spread.slice)
            try:
                annotation = _field_annotation(kwargs_of[spread.value.id], field)
            except LookupError:
                # A config module not vendored: the flag exists, its values are unchecked
                # (Flag.accepts refuses them: vendor the module to use the flag).
                flags[name] = Flag(name, "unvendored")
                continue
            flags[name] = Flag(name, **_as_kw(_kind(_atoms(annotation))))
        else:
            flags[name] = Flag(name, "str")
    return flags


def _as_kw(flag: Flag) -> dict[str, Any]:
    return {"kind": flag.kind, "choices": flag.choices}


def parse_args(args: list[str]) -> dict[str, list[str]]:
    """``--flag value...`` groups; raises ValueError naming a flag vLLM does not have or a
    value it would refuse."""
    flags = cli_flags()
    out: dict[str, list[str]] = {}
    index = 0
    while index < len(args):
        name = args[index]
        if name not in flags:
            raise ValueError(f"{name}: not a flag of vllm serve {VERSION}")
        index += 1
        values = []
        while index < len(args) and not args[index].startswith("--"):
            values.append(args[index])
            index += 1
        if not flags[name].accepts(values):
            flag = flags[name]
            allowed = f" (choices: {', '.join(map(str, flag.choices))})" if flag.choices else ""
            raise ValueError(f"{name} {' '.join(values)!r}: vLLM expects {flag.kind}{allowed}")
        out[name] = values
    return out


# ------------------------------------------------------------------ quantization
def quantization_methods() -> tuple[str, ...]:
    return _literal_aliases()["QuantizationMethods"]


@dataclass(frozen=True)
class QuantizationMethod:
    name: str
    config_class: str
    module: str
    # Files the loader looks for beside the weights; empty: vLLM quantizes at load time.
    config_filenames: tuple[str, ...]
    min_capability: int

    @property
    def needs_prequantized_checkpoint(self) -> bool:
        return bool(self.config_filenames)

    def _cls(self) -> ast.ClassDef:
        return _class(self.module, self.config_class)

    def checkpoint_quant_method(self) -> str | None:
        """The ``quant_method`` a checkpoint must declare for this method to take it
        (``quant_method != "awq": return False`` in its compatibility check)."""
        for node in ast.walk(self._cls()):
            if (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Name)
                and node.left.id == "quant_method"
                and isinstance(node.ops[0], ast.NotEq)
                and isinstance(node.comparators[0], ast.Constant)
            ):
                return str(node.comparators[0].value)
        return None

    def type_map_keys(self) -> tuple[Any, ...]:
        """The weight formats its kernel converts: bits (AWQ) or (bits, symmetric) (GPTQ)."""
        for node in self._cls().body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "TYPE_MAP"
            ):
                return tuple(ast.literal_eval(k) for k in node.value.keys)  # type: ignore[attr-defined]
        return ()


@cache
def quantization_method(name: str) -> QuantizationMethod:
    """The config class of a method (``get_quantization_config``) and what it declares."""
    init = f"{QUANT}/__init__.py"
    function = next(
        n
        for n in ast.walk(_tree(init))
        if isinstance(n, ast.FunctionDef) and n.name == "get_quantization_config"
    )
    table = next(
        n.value
        for n in ast.walk(function)
        if isinstance(n, ast.AnnAssign | ast.Assign)
        and isinstance(n.value, ast.Dict)
        and "method_to_config" in ast.unparse(n)
    )
    classes = {ast.literal_eval(k): v.id for k, v in zip(table.keys, table.values, strict=True)}  # type: ignore[union-attr]
    config_class = classes[name]
    imported = next(
        n
        for n in ast.walk(function)
        if isinstance(n, ast.ImportFrom) and any(a.name == config_class for a in n.names)
    )
    module = str(imported.module)
    if imported.level:  # "from .fp8 import Fp8Config" inside the quantization package
        module = QUANT.replace("/", ".") + "." + module
    relative = module.replace(".", "/") + ".py"
    cls = _class(relative, config_class)
    return QuantizationMethod(
        name=name,
        config_class=config_class,
        module=relative,
        config_filenames=tuple(_returned(_method(cls, "get_config_filenames"))),
        min_capability=int(_returned(_method(cls, "get_min_capability"))),
    )


def loader_requires_config_file() -> bool:
    """Whether the weight loader still refuses a method with config filenames when the
    checkpoint has none (model_loader/weight_utils.get_quant_config)."""
    text = _text("vllm/model_executor/model_loader/weight_utils.py")
    return (
        "if not possible_config_filenames:" in text
        and 'f"Cannot find the config file for {model_config.quantization}")' in text
    )


def marlin_group_sizes() -> tuple[int, ...]:
    for node in _tree(f"{QUANT}/utils/marlin_utils.py").body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "MARLIN_SUPPORTED_GROUP_SIZES"
        ):
            return tuple(ast.literal_eval(node.value))
    raise LookupError("MARLIN_SUPPORTED_GROUP_SIZES")


# ------------------------------------------------------------------ LoRA
def lora_max_ranks() -> tuple[int, ...]:
    post_init = _method(_class("vllm/config/__init__.py", "LoRAConfig"), "__post_init__")
    for node in ast.walk(post_init):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "possible_max_ranks"
        ):
            return tuple(ast.literal_eval(node.value))
    raise LookupError("possible_max_ranks")


def lora_module_is_name_path(item: str) -> bool:
    """LoRAParserAction's own test for the ``name=path`` form of a --lora-modules item."""
    action = _class("vllm/entrypoints/openai/cli_args.py", "LoRAParserAction")
    for node in ast.walk(action):
        if isinstance(node, ast.If) and "split" in ast.unparse(node.body[0]):
            test = ast.Expression(body=node.test)
            return bool(eval(compile(test, "LoRAParserAction", "eval"), {"item": item}))
    raise LookupError("LoRAParserAction's name=path branch")
