"""Requests and answers checked against an OpenAPI 3.0 description (GitHub's, from npm
``@octokit/openapi``): the operation (method + templated path) must exist, a JSON body
must validate against the operation's request schema and use only properties it
defines, and every answer the fake gives must validate against the response schema."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_URI = "urn:openapi-spec"


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema's ``type: [..., "null"]``."""
    if isinstance(node, dict):
        node = {k: _nullable_to_json_schema(v) for k, v in node.items()}
        if node.pop("nullable", False):
            if isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            elif "enum" in node:
                node["enum"] = [*node["enum"], None]
            elif "$ref" in node or "allOf" in node or "oneOf" in node or "anyOf" in node:
                node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable_to_json_schema(v) for v in node]
    return node


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class Operation:
    method: str
    template: str
    operation_id: str
    raw: dict[str, Any]


class OpenApiSpec:
    def __init__(self, path: Path) -> None:
        self.document = _nullable_to_json_schema(json.loads(path.read_text()))
        self.registry = Registry().with_resource(
            SPEC_URI, Resource.from_contents(self.document, default_specification=DRAFT4)
        )
        self.operations: list[tuple[re.Pattern[str], Operation]] = []
        for template, item in self.document["paths"].items():
            pattern = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$")
            for method, op in item.items():
                if method in ("get", "post", "put", "patch", "delete", "head"):
                    self.operations.append(
                        (pattern, Operation(method.upper(), template, op["operationId"], op))
                    )

    def find(self, method: str, path: str) -> Operation | None:
        # Literal paths first (/user/repos before /users/{username} ...).
        matches = [
            op for pattern, op in self.operations if op.method == method and pattern.match(path)
        ]
        matches.sort(key=lambda op: op.template.count("{"))
        return matches[0] if matches else None

    def _validator(self, *pointer: str) -> Draft4Validator:
        ref = f"{SPEC_URI}#/{_pointer(*pointer)}"
        return Draft4Validator({"$ref": ref}, registry=self.registry)

    def request_problems(self, op: Operation, body: Any) -> list[str]:
        request = op.raw.get("requestBody")
        if request is None:
            return [] if body is None else [f"{op.operation_id} takes no body"]
        if body is None:
            return [f"{op.operation_id} needs a body"] if request.get("required") else []
        base = (
            "paths",
            op.template,
            op.method.lower(),
            "requestBody",
            "content",
            "application/json",
            "schema",
        )
        problems = [e.message for e in self._validator(*base).iter_errors(body)]
        schema = request["content"]["application/json"]["schema"]
        known = set(schema.get("properties") or {})
        if isinstance(body, dict) and known:
            problems += [
                f"property {k!r} is not in {op.operation_id}" for k in body if k not in known
            ]
        return problems

    def response_problems(self, op: Operation, status: int, body: Any) -> list[str]:
        response = op.raw["responses"].get(str(status))
        if response is None:
            return [f"{op.operation_id} never answers {status}"]
        if "$ref" in response:
            name = response["$ref"].rsplit("/", 1)[-1]
            response = self.document["components"]["responses"][name]
            base: tuple[str, ...] = ("components", "responses", name)
        else:
            base = ("paths", op.template, op.method.lower(), "responses", str(status))
        if "content" not in response:
            return []
        validator = self._validator(*base, "content", "application/json", "schema")
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]

    def example(self, op: Operation, status: int) -> Any:
        """The example GitHub documents for this answer (a full, realistic object)."""
        content = op.raw["responses"][str(status)]["content"]["application/json"]
        first = next(iter(content["examples"].values()))
        ref = first["$ref"].rsplit("/", 1)[-1]
        return copy.deepcopy(self.document["components"]["examples"][ref]["value"])
