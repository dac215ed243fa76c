"""Safe, bounded YAML loading for catalog documents.

Parsing uses yaml-rs (a Rust YAML 1.2 parser): about 8x faster than PyYAML's libyaml
loader, whose object construction runs in Python and was most of an import's time.
Its semantics are the YAML 1.2 core schema, as in Backstage's own loader (the ``yaml``
npm package): ``yes``/``on`` are strings, dates stay strings (JSON has no date type),
duplicate keys are an error. It builds plain dicts, lists and scalars only; tags that
would construct objects (``!!python/...``) are refused.

On top of that we refuse aliases outright (an alias "billion laughs" bomb expands to
gigabytes from a few hundred bytes, and catalog files have no need for them) and cap
the text size.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import yaml
import yaml_rs

from catalog.errors import ErrorDetail, InputError, PayloadTooLargeError

# Any use of an alias exceeds these limits: the parser stops before expanding it.
_NO_ALIASES = yaml_rs.AliasLimits(
    max_total_replayed_events=0, max_replay_stack_depth=0, max_alias_expansions_per_anchor=0
)
# yaml-rs returns a bare document for a one-document stream and a list otherwise, so
# a single document that is a list would look like a stream of documents. A trailing
# document start always adds one (empty) document, which makes the answer a list.
_END = "\n---\n"
# A tag (``!!python/object``, ``!foo``) starts a token: it follows whitespace, a flow
# indicator or the start of the text. Only texts with such a '!' get the tag check.
_TAG_HINT = re.compile(r"(?<![^\s\[{,])!")
_CORE_TAGS = {
    None,
    "!",
    *(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")),
}


def _refuse_tags(text: str) -> None:
    """Tags beyond the YAML 1.2 core schema are refused, as PyYAML's safe loader did.

    yaml-rs would ignore an unknown tag and keep the plain value; a catalog file that
    asks for ``!!python/object`` or ``!!binary`` is a mistake (or an attack) worth a 400.
    """
    try:
        events = list(yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError:
        return  # yaml-rs reports syntax errors; without a parse there is no tag to judge
    for event in events:
        tag = getattr(event, "tag", None)
        if tag not in _CORE_TAGS:
            mark = event.start_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise yaml_rs.YAMLDecodeError(
                f"tag {tag!r}{where} is not allowed in catalog files (only plain YAML 1.2 values)"
            )


def _load_all(text: str) -> list[Any]:
    # The plain substring test first: the look-behind pattern costs ~3 ms per 500
    # entities of YAML, and most catalog files hold no '!' at all.
    if "!" in text and _TAG_HINT.search(text):
        _refuse_tags(text)
    documents = yaml_rs.loads(
        text + _END,
        parse_datetime=False,
        alias_limits=_NO_ALIASES,
        duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error,
    )
    if documents is None:  # only comments or document markers
        return []
    if not isinstance(documents, list):  # defensive: the added document was merged away
        return [documents]
    return documents[:-1]


def load_documents(text: str, *, source: str, max_bytes: int) -> list[Any]:
    """Every non-empty document in ``text``; 413 when too large, 400 when not YAML."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"{source} is {size} bytes; the limit is {max_bytes} bytes "
            "(split it into several locations)"
        )
    try:
        documents = _load_all(text)
    except yaml_rs.YAMLDecodeError as exc:
        message = str(exc)
        if "alias" in message:
            message = f"YAML aliases (*name) are not allowed in catalog files ({message})"
        raise InputError(
            f"{source} is not valid YAML: {message}",
            [ErrorDetail(source, message)],
        ) from exc
    documents = [doc for doc in documents if doc is not None]
    _check_json(documents, source)
    return documents


def _check_json(documents: list[Any], source: str) -> None:
    """400 unless every document is plain JSON data (entities are stored as JSON).

    YAML can express sets (``!!set``) and mappings or sequences as keys; those would
    otherwise fail only when the entity is stored. One orjson pass (C) checks it.
    """
    try:
        orjson.dumps(documents, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        for index, document in enumerate(documents):
            try:
                orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
            except TypeError as exc:
                where = f"documents[{index}]"
                message = (
                    f"not JSON-compatible ({exc}): use mappings with scalar keys, lists, "
                    "strings, numbers (64-bit at most), booleans and null"
                )
                raise InputError(
                    f"{source}: {where} is {message}", [ErrorDetail(where, message)]
                ) from exc
        raise
