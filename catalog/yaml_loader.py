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


def load_documents(text: str, *, source: str, max_bytes: int) -> list[Any]:
    """Every non-empty document in ``text``; 413 when too large, 400 when not YAML."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"{source} is {size} bytes; the limit is {max_bytes} bytes "
            "(split it into several locations)"
        )
    try:
        documents = list(yaml.load_all(text, Loader=_NoAliasLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        raise InputError(
            f"{source} is not valid YAML: {exc}",
            [ErrorDetail(source, str(exc))],
        ) from exc
    return [doc for doc in documents if doc is not None]
