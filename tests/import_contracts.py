"""An import-linter contract type the built-in ones lack: an allow-list of the external
packages a package may import (the standard library is always allowed).

Used by ``[tool.importlinter]`` in pyproject.toml for ``catalog``, which DESIGN.md limits
to the standard library, SQLAlchemy/SQLModel, pydantic and its parsers.
"""

from __future__ import annotations

import sys

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


class AllowedExternalImports(Contract):
    """Configuration: ``source_modules`` (packages) and ``allowed_modules`` (top-level
    names of the external packages they may import). First-party packages other than a
    source's own count as external: list them to allow them."""

    type_name = "allowed_external"

    source_modules = fields.ListField(subfield=fields.StringField())
    allowed_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        allowed = set(self.allowed_modules) | set(sys.stdlib_module_names)
        broken: list[dict[str, object]] = []
        for source in self.source_modules:
            own = str(source).split(".")[0]
            for module in sorted(graph.find_descendants(source) | {source}):
                for imported in sorted(graph.find_modules_directly_imported_by(module)):
                    top = imported.split(".")[0]
                    if top == own or top in allowed:
                        continue
                    details = graph.get_import_details(importer=module, imported=imported)
                    lines = sorted({d["line_number"] for d in details})
                    broken.append({"importer": module, "imported": imported, "lines": lines})
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(sorted(self.allowed_modules))
        output.print_error(f"Only the standard library and {allowed} may be imported:")
        output.new_line()
        for item in check.metadata["broken"]:
            lines = ", ".join(f"l.{n}" for n in item["lines"])
            output.print_error(f"- {item['importer']} -> {item['imported']} ({lines})")
        output.new_line()
