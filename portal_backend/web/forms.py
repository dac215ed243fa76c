"""Template parameter pages -> schemas the browser form library (json-editor) renders.

Templates carry Backstage's react-jsonschema-form hints (``ui:widget``, ``ui:help``,
``ui:placeholder``, ``ui:field`` ...). json-editor spells the same ideas differently
(``format``, ``options``), so the hints are translated here, once, on the server; the
schema itself (types, enums, patterns, required) is passed through untouched so the
browser validates exactly what the server's jsonschema validation will.
"""

from __future__ import annotations

import copy
from typing import Any

# ui:widget -> json-editor "format"
_WIDGET_FORMATS = {
    "textarea": "textarea",
    "password": "password",
    "radio": "radio",
    "checkboxes": "checkbox",
    "select": "select",
    "email": "email",
    "uri": "url",
    "url": "url",
    "date": "date",
    "range": "range",
    "updown": "number",
    "color": "color",
}


Owners = list[tuple[str, str]]  # (group ref, title) the owner pickers offer


def to_editor_schema(schema: dict[str, Any], owners: Owners | None = None) -> dict[str, Any]:
    """A deep copy of one page's JSON Schema with ``ui:*`` hints turned into json-editor's."""
    page = copy.deepcopy(schema)
    page.pop("title", None)  # the wizard shows the page title itself
    page.pop("description", None)
    converted = _convert(page, owners or [])
    converted.setdefault("type", "object")
    # The wizard titles the page; json-editor would print the form's root name ("p0").
    converted.setdefault("options", {})["compact"] = True
    return converted


def _convert(node: Any, owners: Owners) -> Any:
    if isinstance(node, list):
        return [_convert(item, owners) for item in node]
    if not isinstance(node, dict):
        return node
    hints = {k: node.pop(k) for k in [k for k in node if str(k).startswith("ui:")]}
    for key, value in list(node.items()):
        if key in ("properties", "definitions", "$defs", "dependencies", "patternProperties"):
            if isinstance(value, dict):
                node[key] = {name: _convert(sub, owners) for name, sub in value.items()}
        elif key in ("items", "oneOf", "anyOf", "allOf", "additionalProperties", "not"):
            node[key] = _convert(value, owners)
    options: dict[str, Any] = node.setdefault("options", {})
    if isinstance(node.get("enumNames"), list):
        options["enum_titles"] = [str(v) for v in node["enumNames"]]
    if node.get("type") == "boolean":
        node.setdefault("format", "checkbox")
    _conditional_fields(node)
    widget = hints.get("ui:widget")
    if widget == "hidden":
        options["hidden"] = True
    elif widget in _WIDGET_FORMATS:
        node["format"] = _WIDGET_FORMATS[widget]
        if widget == "checkboxes":
            node.setdefault("uniqueItems", True)
    if "ui:help" in hints:
        options["infoText"] = str(hints["ui:help"])
        if "description" not in node:
            node["description"] = str(hints["ui:help"])
    attributes: dict[str, Any] = {}
    if "ui:placeholder" in hints:
        attributes["placeholder"] = str(hints["ui:placeholder"])
    if hints.get("ui:autofocus"):
        attributes["autofocus"] = "autofocus"
    ui_options = hints.get("ui:options") or {}
    if isinstance(ui_options, dict) and "rows" in ui_options:
        attributes["rows"] = str(ui_options["rows"])
        node.setdefault("format", "textarea")
    if attributes:
        options["inputAttributes"] = attributes
    if hints.get("ui:readonly") or hints.get("ui:disabled"):
        node["readOnly"] = True
    if isinstance(node.get("properties"), dict):
        # json-editor sorts properties; keep the template's order unless ui:order says.
        for position, sub in enumerate(node["properties"].values()):
            if isinstance(sub, dict):
                sub.setdefault("propertyOrder", position + 1)
    order = hints.get("ui:order")
    if isinstance(order, list) and isinstance(node.get("properties"), dict):
        for position, name in enumerate(n for n in order if n in node["properties"]):
            node["properties"][name]["propertyOrder"] = position - len(order)
    field = hints.get("ui:field")
    if field in ("OwnerPicker", "OwnedEntityPicker") and owners and "enum" not in node:
        # Offer the catalog's groups by title; a free-text owner would fail catalog
        # validation later.
        node["enum"] = [ref for ref, _title in owners]
        options["enum_titles"] = [title for _ref, title in owners]
    elif field == "LoraAdapterPicker" and isinstance(ui_options, dict):
        # A list of LoRA entries the catalog can fill: static/js/create.js offers the
        # lora-adapter versions trained on the model field's value (issue 20).
        options["lora_picker"] = {
            key: str(ui_options[key])
            for key in ("modelField", "customModelField")
            if isinstance(ui_options.get(key), str)
        }
    elif field in ("EntityPicker", "RepoUrlPicker", "EntityNamePicker") and "pattern" not in node:
        attributes = options.setdefault("inputAttributes", {})
        attributes.setdefault("placeholder", _PICKER_PLACEHOLDERS[field])
    if not options:
        node.pop("options")
    return node


def _conditional_fields(node: dict[str, Any]) -> None:
    """``if: {properties: {x: {const: v}}}, then: {required: [a]}`` -> show ``a`` only when x=v.

    The validation itself stays in the schema; this only hides fields that do not apply,
    so their (empty) values are not sent.
    """
    condition, then = node.get("if"), node.get("then")
    properties = node.get("properties")
    if not (
        isinstance(condition, dict) and isinstance(then, dict) and isinstance(properties, dict)
    ):
        return
    consts = {
        name: sub["const"]
        for name, sub in (condition.get("properties") or {}).items()
        if isinstance(sub, dict) and "const" in sub
    }
    if len(consts) != 1:
        return
    for name in then.get("required") or []:
        target = properties.get(name)
        if isinstance(target, dict) and name not in consts:
            target.setdefault("options", {})["dependencies"] = dict(consts)
    # json-editor renders an if/then page twice (a hidden copy per branch: duplicate ids,
    # labels bound to the hidden copy). The fields are shown or hidden above; what "then"
    # requires is checked by the server, whose answer the review page shows at the field.
    for key in ("if", "then", "else"):
        node.pop(key, None)


_PICKER_PLACEHOLDERS = {
    "EntityPicker": "kind:namespace/name",
    "RepoUrlPicker": "host?owner=org&repo=name",
    "EntityNamePicker": "lowercase-name",
}
