"""``${{ ... }}`` expressions in template steps, evaluated in a sandboxed Jinja2.

Only the template author writes expressions; user values arrive as data in the context
and are never parsed as templates, so ``{{ ''.__class__ }}`` or ``${{ ... }}`` typed
into a form field stays a plain string. The sandbox additionally refuses attribute
access to internals even for expressions the template itself contains.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from jinja2 import ChainableUndefined, TemplateError, Undefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

_WHOLE_EXPRESSION = re.compile(r"^\s*\$\{\{(.*)\}\}\s*$", re.DOTALL)


class ExpressionError(ValueError):
    """A template expression could not be evaluated (message names the expression)."""


def parse_repo_url(value: str) -> dict[str, Any]:
    """``host?owner=o&repo=r`` -> ``{host, owner, repo, organization?, workspace?, project?}``."""
    if not isinstance(value, str) or "?" not in value:
        raise ExpressionError(f"repoUrl {value!r} is not of the form host?owner=o&repo=r")
    host, _, query = value.partition("?")
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if not host or not params.get("repo"):
        raise ExpressionError(f"repoUrl {value!r} needs a host and a repo parameter")
    return {"host": host, **params}


def parse_entity_ref(
    value: str,
    defaultKind: str | None = None,
    defaultNamespace: str = "default",  # noqa: N803
) -> dict[str, str]:
    """``kind:namespace/name`` (kind and namespace optional) -> ``{kind, namespace, name}``."""
    if isinstance(value, dict):
        defaultKind = value.get("defaultKind", defaultKind)  # noqa: N806
    if not isinstance(value, str) or not value:
        raise ExpressionError(f"entity ref {value!r} is not a string")
    kind, sep, rest = value.partition(":")
    if not sep:
        kind, rest = defaultKind or "", value
    namespace, sep, name = rest.partition("/")
    if not sep:
        namespace, name = defaultNamespace, rest
    if not name:
        raise ExpressionError(f"entity ref {value!r} has no name")
    return {"kind": kind.lower(), "namespace": namespace, "name": name}


def pick(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value.get(key)
    return None


def project_slug(value: str) -> str:
    """``github.com?owner=o&repo=r`` -> ``o/r`` (as Backstage's projectSlug)."""
    parsed = parse_repo_url(value)
    return f"{parsed.get('owner') or parsed.get('organization', '')}/{parsed['repo']}"


def _make_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        variable_start_string="${{",
        variable_end_string="}}",
        # Statements and comments are not part of the expression language.
        block_start_string="${%__never__",
        block_end_string="__never__%}",
        comment_start_string="${#__never__",
        comment_end_string="__never__#}",
        # Optional parameters left empty render as nothing, as in Backstage.
        undefined=ChainableUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters.update(
        parseRepoUrl=parse_repo_url,
        parseEntityRef=parse_entity_ref,
        pick=pick,
        projectSlug=project_slug,
    )
    return env


_ENV = _make_environment()


def references_steps(value: Any) -> bool:
    """True when any expression inside ``value`` reads ``steps``."""
    if isinstance(value, str):
        if "${{" not in value:
            return False
        try:
            return "steps" in meta.find_undeclared_variables(_ENV.parse(value))
        except TemplateError:
            return False  # reported when the step is rendered
    if isinstance(value, dict):
        return any(references_steps(v) for v in value.values())
    if isinstance(value, list):
        return any(references_steps(v) for v in value)
    return False


def parameter_read(value: Any) -> str | None:
    """The one form parameter a step input reads (``${{ parameters.owner }}`` -> ``owner``),
    so a problem found with that input can point at the form field; None when the input
    reads no parameter or several."""
    if not isinstance(value, str) or "${{" not in value:
        return None
    try:
        tree = _ENV.parse(value)
    except TemplateError:
        return None
    read = {
        node.attr
        for node in tree.find_all(nodes.Getattr)
        if isinstance(node.node, nodes.Name) and node.node.name == "parameters"
    }
    return read.pop() if len(read) == 1 else None


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside ``value``; a string that is one whole expression keeps
    the expression's type (a list stays a list, a number stays a number)."""
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    if not isinstance(value, str) or "${{" not in value:
        return value
    try:
        whole = _WHOLE_EXPRESSION.match(value)
        if whole and "${{" not in whole.group(1):
            result = _ENV.compile_expression(whole.group(1), undefined_to_none=False)(**context)
            if isinstance(result, Undefined):
                return None
            return result
        return _ENV.from_string(value).render(**context)
    except ExpressionError:
        raise
    except (TemplateError, TypeError, ValueError, KeyError) as exc:
        raise ExpressionError(f"cannot evaluate {value!r}: {exc}") from exc


def is_truthy(value: Any) -> bool:
    """``if:`` semantics: false, empty, none and the strings 'false'/'0' skip the step."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)
