"""Catalog list page: URL query parameters <-> catalog filters, facets and sorting.

The URL is the state: every filter, the search term, the sort and the page cursor are
query parameters, so a view can be bookmarked and shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

# URL parameter -> catalog filter key, in the order the facets are shown.
FACETS: dict[str, tuple[str, str]] = {
    "kind": ("kind", "Kind"),
    "type": ("spec.type", "Type"),
    "owner": ("spec.owner", "Owner"),
    "lifecycle": ("spec.lifecycle", "Lifecycle"),
    "tag": ("metadata.tags", "Tags"),
    "deployment": ("status.deployment.state", "Deployment"),
    "slo": ("status.slo.state", "SLO status"),
    "scorecard": ("status.scorecard.level", "Scorecard level"),
}

SORTS: dict[str, tuple[str, str, str]] = {
    "name": ("metadata.name", "asc", "Name (A–Z)"),
    "-name": ("metadata.name", "desc", "Name (Z–A)"),
    "kind": ("kind", "asc", "Kind"),
    "owner": ("spec.owner", "asc", "Owner"),
    "title": ("metadata.title", "asc", "Title"),
}
PAGE_SIZES = (10, 20, 50, 100)


@dataclass
class CatalogView:
    selected: dict[str, list[str]] = field(default_factory=dict)
    q: str = ""
    sort: str = "name"
    limit: int = 20
    cursor: str | None = None

    @classmethod
    def from_query(cls, params: Any) -> CatalogView:
        selected = {
            name: [v for v in params.getlist(name) if v and "," not in v] for name in FACETS
        }
        sort = params.get("sort") or "name"
        try:
            limit = int(params.get("limit") or 20)
        except ValueError:
            limit = 20
        return cls(
            selected={k: v for k, v in selected.items() if v},
            q=(params.get("q") or "").strip(),
            sort=sort if sort in SORTS else "name",
            limit=limit if limit in PAGE_SIZES else 20,
            cursor=params.get("cursor") or None,
        )

    def filter_string(self, without: str | None = None) -> str:
        """One Backstage filter: facets ANDed, several values of one facet ORed."""
        parts = [
            f"{FACETS[name][0]}={value}"
            for name, values in self.selected.items()
            if name != without
            for value in values
        ]
        return ",".join(parts)

    def filters(self, without: str | None = None) -> list[str]:
        text = self.filter_string(without)
        return [text] if text else []

    def params(self, **changes: Any) -> str:
        """This view's query string with some parameters changed (None removes one)."""
        pairs: list[tuple[str, str]] = [
            (name, value) for name, values in self.selected.items() for value in values
        ]
        base = {
            "q": self.q,
            "sort": self.sort if self.sort != "name" else "",
            "limit": str(self.limit) if self.limit != 20 else "",
        }
        for key, value in changes.items():
            base[key] = "" if value is None else str(value)
        pairs += [(k, v) for k, v in base.items() if v]
        return urlencode(pairs)

    def without_value(self, name: str, value: str) -> str:
        pairs = [
            (n, v)
            for n, values in self.selected.items()
            for v in values
            if not (n == name and v == value)
        ]
        pairs += [(k, v) for k, v in (("q", self.q),) if v]
        return urlencode(pairs)

    @property
    def active(self) -> list[tuple[str, str, str]]:
        """(param, label, value) of every applied filter, for the "remove" chips."""
        return [
            (name, FACETS[name][1], value)
            for name, values in self.selected.items()
            for value in values
        ]
