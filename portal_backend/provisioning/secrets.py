"""The portal's secret store: values encrypted at rest (Fernet), never logged.

Scope ``global`` holds platform-wide values (the Hugging Face token); a service's own
scope holds what the portal generated for it (Qdrant API key, usage-ingest token).
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal_backend.provisioning.models import PortalSecret
from portal_backend.settings import Settings

GLOBAL = "global"


def _fernet(settings: Settings) -> Fernet:
    key = settings.provisioning_secret_key
    if not key:
        # Embedded default: a key generated once in the data folder, readable by us only.
        settings.ensure_dirs()
        path = settings.data_dir / "secret-store.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(Fernet.generate_key().decode())
        key = path.read_text().strip()
    # Any passphrase works: derive the 32-byte Fernet key from it.
    digest = hashlib.sha256(key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretStore:
    def __init__(self, session: Session, settings: Settings) -> None:
        self.session = session
        self.fernet = _fernet(settings)

    def _row(self, scope: str, name: str) -> PortalSecret | None:
        return self.session.scalars(
            select(PortalSecret).where(PortalSecret.scope == scope, PortalSecret.name == name)
        ).first()

    def set(self, scope: str, name: str, value: str) -> None:
        ciphertext = self.fernet.encrypt(value.encode()).decode()
        row = self._row(scope, name)
        now = datetime.now(UTC)
        if row is None:
            row = PortalSecret(
                id=str(uuid.uuid4()), scope=scope, name=name, ciphertext=ciphertext, updated_at=now
            )
            self.session.add(row)
        else:
            row.ciphertext, row.updated_at = ciphertext, now
        self.session.flush()

    def get(self, scope: str, name: str) -> str | None:
        row = self._row(scope, name)
        if row is None:
            return None
        try:
            return self.fernet.decrypt(row.ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise RuntimeError(
                f"secret {scope}/{name} cannot be decrypted: provisioning_secret_key changed"
            ) from exc

    def names(self, scope: str) -> list[str]:
        return list(
            self.session.scalars(select(PortalSecret.name).where(PortalSecret.scope == scope))
        )

    def delete_scope(self, scope: str) -> int:
        rows = list(self.session.scalars(select(PortalSecret).where(PortalSecret.scope == scope)))
        for row in rows:
            self.session.delete(row)
        self.session.flush()
        return len(rows)
