"""Storing one pushed usage batch: parse, authorise, check the services exist, store.

One object per portal process (built by ``create_app``), shared by the regular route
and the ASGI fast path: it keeps the short-lived cache of services known to exist.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ErrorDetail, InputError
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.settings import Settings
from portal_backend.sla import ingest, services
from portal_backend.sla.clock import utcnow
from portal_backend.sla.tables import SlaService

KNOWN_TTL_S = 60.0
MAX_ATTEMPTS = 4


class UsagePush:
    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.factory = factory
        # service ref -> monotonic time until which it is known to exist
        self._known: dict[str, float] = {}

    def push(self, body: bytes, principal: Principal) -> dict[str, Any]:
        """Parse, authorise and store one usage batch (runs in a worker thread); the
        same batch id twice changes nothing."""
        batch = ingest.parse_batch(body)
        service_map = ingest.batch_services(batch)
        refs = set(service_map.values())
        ingest.authorize_push(
            refs,
            token_service=principal.service_ref if principal.purpose == "ingest" else None,
            is_admin=principal.is_admin,
        )
        settings = self.settings
        for attempt in range(MAX_ATTEMPTS):
            try:
                with session_scope(self.factory) as session:
                    self._ensure_known(sorted(refs), session)
                    result = ingest.ingest_batch(
                        session,
                        batch,
                        now=utcnow(),
                        service_map=service_map,
                        token_id=principal.token_id,
                        raw_retention_hours=settings.sla_raw_retention_hours,
                        max_age=timedelta(days=settings.sla_minute_rollup_retention_days),
                        synchronous_commit=settings.sla_ingest_synchronous_commit,
                    )
                break
            except OperationalError:
                # A deadlock victim or a busy SQLite file: the transaction rolled back
                # whole (batch id included), so running it again is safe.
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        return {
            "batchId": result.batch_id,
            "accepted": result.accepted,
            "duplicate": result.duplicate,
            "services": result.services,
        }

    def _ensure_known(self, refs: list[str], session: Session) -> None:
        """Every service exists (tracked or in the catalog); positive answers cached 60 s."""
        now = time.monotonic()
        for ref in refs:
            if self._known.get(ref, 0) > now:
                continue
            if (
                session.get(SlaService, ref) is None
                and services.sync_one(session, ref, utcnow()) is None
            ):
                raise InputError(
                    f"records name {ref}, which is not in the catalog; register the service first",
                    [ErrorDetail("records.service", f"unknown service {ref}")],
                )
            self._known[ref] = now + KNOWN_TTL_S
