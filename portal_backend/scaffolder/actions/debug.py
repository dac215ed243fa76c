"""debug:log and debug:wait, as in Backstage."""

from __future__ import annotations

import os
import time
from typing import Any

from portal_backend.scaffolder.actions.base import Action, ActionContext, TaskCancelled, register


@register
class DebugLog(Action):
    id = "debug:log"
    description = "Writes a message into the task log; listWorkspace lists the workspace files."
    input_schema = {
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "listWorkspace": {"type": "boolean"},
            "extra": {},
        },
    }

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        if "message" in input:
            ctx.log(str(input["message"]))
        if input.get("listWorkspace"):
            for root, _dirs, files in os.walk(ctx.workspace):
                for name in sorted(files):
                    ctx.log(os.path.relpath(os.path.join(root, name), ctx.workspace))
        return {}


@register
class DebugWait(Action):
    id = "debug:wait"
    description = "Waits the given time (stops early when the task is cancelled)."
    input_schema = {
        "type": "object",
        "properties": {
            "minutes": {"type": "number", "minimum": 0},
            "seconds": {"type": "number", "minimum": 0},
            "milliseconds": {"type": "number", "minimum": 0},
        },
    }

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        total = (
            float(input.get("minutes", 0)) * 60
            + float(input.get("seconds", 0))
            + float(input.get("milliseconds", 0)) / 1000
        )
        if total > 600:
            raise ValueError("debug:wait waits at most 10 minutes")
        ctx.log(f"Waiting {total:g} s")
        deadline = time.monotonic() + total
        while time.monotonic() < deadline:
            if ctx.is_cancelled():
                raise TaskCancelled()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return {}
