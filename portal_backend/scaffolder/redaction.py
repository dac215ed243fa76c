"""Keeps secret values out of anything written down (events, logs, errors)."""

from __future__ import annotations

from typing import Any

MASK = "***"


class Redactor:
    def __init__(self, secrets: dict[str, Any]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._values = sorted(
            {str(v) for v in secrets.values() if v is not None and len(str(v)) >= 3},
            key=len,
            reverse=True,
        )

    def redact(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return text

    def redact_obj(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_obj(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_obj(v) for v in value]
        return value
