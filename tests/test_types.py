"""The type check holds: mypy, configured in pyproject.toml ([tool.mypy]), passes.

Strict on the domain packages and what they stand on (settings, db, metadata_keys);
mypy's default checks on the HTTP layer and the workers. A `# type: ignore` names the
error it silences (mypy refuses a bare one, and an unused one) and says why.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]

# mypy's --strict, flag by flag (pyproject.toml lists them: `strict` in an override
# would turn them on everywhere).
STRICT_FLAGS = (
    "disallow_any_generics",
    "disallow_subclassing_any",
    "disallow_untyped_calls",
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "check_untyped_defs",
    "disallow_untyped_decorators",
    "warn_return_any",
    "no_implicit_reexport",
    "strict_equality",
    "extra_checks",
)
STORAGE = ("portal_backend.settings", "portal_backend.db", "portal_backend.metadata_keys")


def test_mypy_finds_no_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _strict_modules() -> set[str]:
    strict: set[str] = set()
    for override in CONFIG["mypy"]["overrides"]:
        if all(override.get(flag) is True for flag in STRICT_FLAGS):
            strict.update(override["module"])
    return strict


def _domain_packages() -> list[str]:
    """The domain layer of the import contracts: the packages DESIGN.md names."""
    layers = next(c["layers"] for c in CONFIG["importlinter"]["contracts"] if c["type"] == "layers")
    domain = next(layer for layer in layers if "catalog" in layer.split(" : "))
    return [name.strip() for name in domain.split(" : ")]


def test_every_domain_package_is_checked_strictly() -> None:
    strict = _strict_modules()
    wanted = {f"{package}.*" for package in _domain_packages()} | {
        "portal_backend.git_hosts.*",
        *STORAGE,
    }
    assert wanted <= strict, f"not strict: {sorted(wanted - strict)}"
    assert CONFIG["mypy"]["warn_unused_ignores"] is True
    assert "ignore-without-code" in CONFIG["mypy"]["enable_error_code"]


# `# type: ignore[code]`, with the reason in a comment after it or on the line above.
_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")


def _explained(found: re.Match[str], line_above: str) -> bool:
    reason = found["rest"].strip().startswith("#") or line_above.strip().startswith("#")
    return bool(found["codes"]) and reason


def test_every_type_ignore_in_product_code_says_why() -> None:
    unexplained = []
    for package in CONFIG["mypy"]["files"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            for number, line in enumerate(lines, start=1):
                found = _IGNORE.search(line)
                above = lines[number - 2] if number > 1 else ""
                if found and not _explained(found, above):
                    unexplained.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not unexplained, "a type: ignore needs [code] and a # reason:\n" + "\n".join(unexplained)
