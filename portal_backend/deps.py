"""App-wide objects that HTTP adapters (routers, web pages) get from the request."""

from __future__ import annotations

from fastapi import Request

from portal_backend.scaffolder.engine import Dispatch


def scaffolder_dispatch(request: Request) -> Dispatch:
    """Sends a scaffolder task's next step to the queue (built on first use: the Celery
    app needs the broker settings only when a task is submitted)."""
    state = request.app.state
    if getattr(state, "scaffolder_dispatch", None) is None:
        from workers.dispatch import make_dispatcher

        state.scaffolder_dispatch = make_dispatcher(state.settings)
    return state.scaffolder_dispatch
