"""Safe, bounded YAML loading for catalog documents.

``yaml.safe_load`` already refuses arbitrary objects; on top of that we refuse
aliases outright (an alias "billion laughs" bomb expands to gigabytes from a few
hundred bytes, and catalog files have no need for them) and cap the text size.
"""

from __future__ import annotations

from typing import Any

import yaml

from catalog.errors import ErrorDetail, InputError, PayloadTooLargeError


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                None,
                None,
                "YAML aliases (*name) are not allowed in catalog files",
                event.start_mark,
            )
        return super().compose_node(parent, index)


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _load_all(text: str) -> list[Any]:
    if _FAST_LOADER is None:
        return list(yaml.load_all(text, Loader=_NoAliasLoader))  # noqa: S506
    # libyaml is ~10x faster than the pure-Python loader. Without an anchor (&name)
    # no alias can resolve, so the alias scan only runs when the text has an '&'.
    if "&" in text:
        for event in yaml.parse(text, Loader=_FAST_LOADER):
            if isinstance(event, yaml.AliasEvent):
                raise yaml.MarkedYAMLError(
                    None,
                    None,
                    "YAML aliases (*name) are not allowed in catalog files",
                    event.start_mark,
                )
    return list(yaml.load_all(text, Loader=_FAST_LOADER))  # noqa: S506


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
    except yaml.YAMLError as exc:
        raise InputError(
            f"{source} is not valid YAML: {exc}",
            [ErrorDetail(source, str(exc))],
        ) from exc
    return [doc for doc in documents if doc is not None]
