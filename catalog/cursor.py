"""Opaque cursors: base64url JSON carrying the query and the keyset position.

A later page only needs the cursor (as in Backstage), and the position is the
(sort value, uid) of the last item seen, so pages stay stable while rows are written.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from catalog.errors import ErrorDetail, InputError


@dataclass
class Cursor:
    filters: list[str] = field(default_factory=list)
    order_field: str | None = None
    order: str = "asc"
    term: str | None = None
    term_fields: list[str] = field(default_factory=list)
    # (sort value, uid) of the item this page starts after (next) or before (prev).
    position: list[str] | None = None
    direction: str = "next"
    total: int | None = None
    # A predicate query (POST by-query). Only present when set: catalog-client sends
    # cursors whose JSON has a "query" key to the POST endpoint.
    query: Any = None

    def encode(self) -> str:
        data = asdict(self)
        if data["query"] is None:
            del data["query"]
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, *, param: str = "cursor") -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            data: Any = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if not isinstance(data, dict):
                raise ValueError("not an object")
            cursor = cls(**data)
            if cursor.direction not in ("next", "prev") or cursor.order not in ("asc", "desc"):
                raise ValueError("bad direction or order")
            if cursor.position is not None and (
                not isinstance(cursor.position, list)
                or len(cursor.position) != 2
                or not all(isinstance(p, str) for p in cursor.position)
            ):
                raise ValueError("bad position")
            if not isinstance(cursor.filters, list) or not all(
                isinstance(f, str) for f in cursor.filters
            ):
                raise ValueError("bad filters")
            return cursor
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise InputError(
                f"Malformed {param}: pass back the nextCursor/prevCursor value unchanged",
                [ErrorDetail(param, "not a cursor issued by this catalog")],
            ) from exc
