"""The contract every scaffolder action implements.

An action is a plain object: the worker calls ``run`` for a step, the API lists its
schemas, and ``precheck`` lets ``POST /tasks`` refuse impossible input before a task
exists. Domain code only: nothing here knows about FastAPI or Celery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError  # noqa: F401  (precheck raises it: 409)
from portal_backend.scaffolder.answers import Answers
from portal_backend.settings import Settings


@dataclass(frozen=True)
class FieldError:
    """One problem with an input, addressed by its JSON path (``parameters.name``)."""

    path: str
    message: str


class ActionError(Exception):
    """A step failed for a reason the user can act on; the message goes to the task log."""


@dataclass
class ActionContext:
    task_id: str
    step_id: str
    workspace: Path
    settings: Settings
    session_factory: sessionmaker[Session]
    user_ref: str
    log: Callable[[str], None]
    secrets: dict[str, str] = field(default_factory=dict)
    # Folder holding the template.yaml, so relative skeleton URLs resolve against it.
    template_dir: Path | None = None
    # True for POST /dry-run: no repository, catalog change or cluster call may happen.
    dry_run: bool = False
    # True once the user asked to cancel the task; long-running actions poll it and stop
    # (raise ``TaskCancelled``) at a safe point.
    is_cancelled: Callable[[], bool] = field(default=lambda: False)
    # True for templates the operator trusts (under templates_dir or an allow-listed root):
    # only their cookiecutter hooks may run.
    template_trusted: bool = False
    # What the task's template and answers were, for the repository's answers file
    # (.rag-portal/answers.yml, written by publish:*); None where nothing is published.
    answers: Answers | None = None


class TaskCancelled(Exception):
    """Raised by an action that noticed ``ctx.is_cancelled()`` and stopped."""


class Action:
    """Base class; subclasses set the class attributes and implement ``run``."""

    id: ClassVar[str]
    description: ClassVar[str] = ""
    input_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    # When True, ``precheck`` also runs for a step whose input mixes parameters with
    # step outputs: it then gets only the keys that do not depend on earlier steps.
    precheck_partial_input: ClassVar[bool] = False
    output_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        """Checks run at submit time on input rendered from the parameters alone."""
        return []

    def preview(self, input: dict[str, Any]) -> dict[str, Any] | None:
        """What the action would compute from this input, shown by the form while the
        user types (e.g. the GPU sizing); None when it has nothing to show."""
        return None


_REGISTRY: dict[str, Action] = {}


def register(action_cls: type[Action]) -> type[Action]:
    """Class decorator: ``@register`` adds one instance of the action to the registry."""
    _REGISTRY[action_cls.id] = action_cls()
    return action_cls


def get_action(action_id: str) -> Action | None:
    return _REGISTRY.get(action_id)


def all_actions() -> dict[str, Action]:
    return dict(_REGISTRY)
