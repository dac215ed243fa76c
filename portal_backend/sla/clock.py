"""Injectable time: domain functions take ``now`` so tests control it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import overload

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
