"""What ``POST /tasks`` would say about a form's values, without creating anything.

The create form asks while the user types (only the GPU sizing action, for its live
panel) and once more on the review page (everything): schema errors, each action's
precheck, conflicts (a name already taken: the submit's 409) and the previews of actions
that compute something worth showing. The same code as the submit, so the form's verdict
and the server's cannot differ.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ErrorDetail, InputError
from portal_backend.scaffolder import engine
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.templates import validate_values, with_defaults
from portal_backend.settings import Settings


def check_values(
    settings: Settings,
    factory: sessionmaker[Session],
    ref: str,
    values: dict[str, Any],
    user_ref: str,
    *,
    actions: set[str] | None = None,
) -> dict[str, Any]:
    """``{ok, errors: [{path, message}], conflicts: [message], previews: {stepId: ...}}``;
    with ``actions``, only the steps of those actions are checked (no schema check)."""
    load_actions()
    template = engine.find(settings, factory, ref)
    values = with_defaults(template, values)
    errors: list[ErrorDetail] = []
    if actions is None:
        try:
            validate_values(template, values)
        except InputError as exc:
            errors += exc.details
    report = engine.precheck_report(
        template, values, settings, user_ref, actions=actions, with_previews=True
    )
    errors += report.details
    return {
        "ok": not errors and not report.conflicts,
        "errors": [{"path": e.path, "message": e.message} for e in errors],
        "conflicts": [c.message for c in report.conflicts],
        "previews": report.previews,
    }
