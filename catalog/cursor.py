"""Opaque cursors: base64url JSON carrying the query and the keyset position.

A later page only needs the cursor (as in Backstage), and the position is the
(sort values..., uid) of the last item seen, so pages stay stable while rows are written.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from catalog.errors import ErrorDetail, InputError

# What decoding a cursor that this server did not issue can raise.
DECODE_ERRORS = (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError)


def pack(data: Any) -> str:
    """``data`` as compact base64url JSON, without padding."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unpack(text: str) -> Any:
    """What ``pack`` packed; one of ``DECODE_ERRORS`` for anything else."""
    return json.loads(base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode()))


@dataclass
class Cursor:
    filters: list[str] = field(default_factory=list)
    # A single order (cursors issued before several order fields existed) ...
    order_field: str | None = None
    order: str = "asc"
    # ... or several: [[field, "asc"|"desc"], ...]; takes precedence when set.
    order_by: list[list[str]] | None = None
    term: str | None = None
    term_fields: list[str] = field(default_factory=list)
    # (one sort value per order field, uid) of the item this page starts after (next)
    # or before (prev).
    position: list[str] | None = None
    direction: str = "next"
    total: int | None = None
    # A predicate query (POST by-query). Only present when set: catalog-client sends
    # cursors whose JSON has a "query" key to the POST endpoint.
    query: Any = None

    def sort_spec(self) -> list[tuple[str, str]]:
        """The effective [(field, direction), ...], never empty."""
        if self.order_by:
            return [(field, order) for field, order in self.order_by]
        return [(self.order_field or "metadata.name", self.order)]

    def encode(self) -> str:
        data = asdict(self)
        for optional in ("query", "order_by"):
            if data[optional] is None:
                del data[optional]
        return pack(data)

    @classmethod
    def decode(cls, text: str, *, param: str = "cursor") -> Cursor:
        try:
            data: Any = unpack(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            cursor = cls(**data)
            if cursor.direction not in ("next", "prev") or cursor.order not in ("asc", "desc"):
                raise ValueError("bad direction or order")
            if cursor.order_by is not None and (
                not isinstance(cursor.order_by, list)
                or not cursor.order_by
                or not all(
                    isinstance(pair, list)
                    and len(pair) == 2
                    and isinstance(pair[0], str)
                    and pair[1] in ("asc", "desc")
                    for pair in cursor.order_by
                )
            ):
                raise ValueError("bad order_by")
            if cursor.position is not None and (
                not isinstance(cursor.position, list)
                or len(cursor.position) != len(cursor.sort_spec()) + 1
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
