"""The Secrets a bundle's workloads reference, made from the portal's secret store.

A generated bundle never holds secret values: its pods reference Secrets by name and
key, and provisioning creates them from the store (a Hugging Face token an admin set,
a Qdrant key made once per service, the service's own usage-ingest token). Both targets
use this: the cluster gets the Secret objects; the local runtime reads their values into
the processes' environment.
"""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from portal_backend import metadata_keys
from portal_backend.db import session_scope
from portal_backend.provisioning.plan import referenced_secrets
from portal_backend.provisioning.secrets import GLOBAL, SecretStore

# Well-known secret keys: which portal secret a referenced key stands for.
HF_TOKEN, QDRANT_KEY, INGEST_TOKEN = "hf-token", "qdrant-api-key", "ingest-token"


class MissingSecretError(Exception):
    """A referenced secret has no value in the store; the message says how to set it."""


def secret_objects(
    session_factory: sessionmaker[Session],
    settings: Any,
    service: str,
    service_ref: str,
    objects: list[dict[str, Any]],
    log: Callable[[str], None] = lambda _m: None,
    *,
    optional: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Secret objects for every Secret the workloads of ``objects`` reference and the
    bundle does not define itself. A value of an ``optional`` kind (e.g. ``HF_TOKEN``
    where models come from packages) that the store lacks is left empty."""
    defined = {o["metadata"]["name"] for o in objects if o.get("kind") == "Secret"}
    wanted = {n: k for n, k in referenced_secrets(objects).items() if n not in defined}
    if not wanted:
        return []
    out = []
    notes = []
    with session_scope(session_factory) as session:
        store = SecretStore(session, settings)
        for name, keys in sorted(wanted.items()):
            data = {}
            for key in sorted(keys or {_default_key(name)}):
                try:
                    data[key] = _secret_value(session, store, service, service_ref, name, key)
                except MissingSecretError:
                    if _secret_kind(f"{name.removeprefix(service)} {key}") not in optional:
                        raise
                    data[key] = ""
                    notes.append(f"Secret/{name}: key {key} left empty (not in the store)")
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": {
                        "name": name,
                        "namespace": service,
                        "labels": {
                            metadata_keys.SERVICE: service,
                            "app.kubernetes.io/managed-by": "rag-portal",
                        },
                    },
                    "stringData": data,
                }
            )
            # Names only: values never reach the log.
            notes.append(f"Secret/{name}: keys {', '.join(sorted(data))} from the secret store")
    # Logged once the store's transaction is committed: the task log writes to the
    # same database, and SQLite allows one writer at a time.
    for note in notes:
        log(note)
    return out


def _secret_value(
    session: Session,
    store: SecretStore,
    service: str,
    service_ref: str,
    name: str,
    key: str,
) -> str:
    # The service's own name must not decide (a service called "hf-bot").
    short = name.removeprefix(service).strip("-")
    kind = _secret_kind(f"{short} {key}")
    if kind == HF_TOKEN:
        value = store.get(service, HF_TOKEN) or store.get(GLOBAL, HF_TOKEN)
        if value is None:
            raise MissingSecretError(
                f"Secret {name} key {key} needs a Hugging Face token and the secret store "
                f"has none: PUT /api/rag/secrets/{HF_TOKEN} (admin) first"
            )
        return value
    if kind == QDRANT_KEY:
        value = store.get(service, QDRANT_KEY)
        if value is None:
            value = pysecrets.token_urlsafe(32)
            store.set(service, QDRANT_KEY, value)
        return value
    if kind == INGEST_TOKEN:
        value = store.get(service, INGEST_TOKEN)
        if value is None:
            from portal_backend.auth.service import create_token

            value = create_token(
                session,
                name=f"{service} usage ingest",
                scope="write",
                subject=service_ref,
                purpose="ingest",
                service_ref=service_ref,
                created_by="rag-portal provisioner",
            ).token
            store.set(service, INGEST_TOKEN, value)
        return value
    value = store.get(service, key) or store.get(GLOBAL, key)
    if value is None:
        raise MissingSecretError(
            f"Secret {name} key {key} is referenced by the bundle but the secret store has "
            f"no value named {key!r}: PUT /api/rag/secrets/{key} (admin) first"
        )
    return value


def _secret_kind(text: str) -> str | None:
    lowered = text.lower()
    if (
        "hf" in lowered.replace("-", " ").split()
        or "hugging" in lowered
        or "hf_" in lowered
        or "hf-" in lowered
    ):
        return HF_TOKEN
    if "qdrant" in lowered:
        return QDRANT_KEY
    if "ingest" in lowered or "usage" in lowered or "portal" in lowered:
        return INGEST_TOKEN
    return None


def _default_key(secret_name: str) -> str:
    return {HF_TOKEN: "HF_TOKEN", QDRANT_KEY: "QDRANT_API_KEY", INGEST_TOKEN: "INGEST_TOKEN"}.get(
        _secret_kind(secret_name) or "", secret_name
    )
