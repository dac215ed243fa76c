"""Task secrets at rest: encrypted with the portal's secret-store key while a task lives.

The key is the one the portal's secret store uses (``provisioning_secret_key``, or the
key file generated in the data folder), so there is one key to manage.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import InvalidToken

from portal_backend.provisioning.secrets import _fernet
from portal_backend.settings import Settings

SEALED = "sealed"


def seal(settings: Settings, secrets: dict[str, str] | None) -> dict[str, Any] | None:
    if not secrets:
        return None
    token = _fernet(settings).encrypt(json.dumps(secrets).encode()).decode()
    return {SEALED: token}


def unseal(settings: Settings, stored: dict[str, Any] | None) -> dict[str, str]:
    if not stored:
        return {}
    if SEALED not in stored:
        return dict(stored)
    try:
        secrets: dict[str, str] = json.loads(_fernet(settings).decrypt(stored[SEALED].encode()))
        return secrets
    except InvalidToken as exc:
        raise ValueError("task secrets cannot be decrypted: the secret-store key changed") from exc
