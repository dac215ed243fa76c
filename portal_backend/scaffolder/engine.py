"""Runs a task one step at a time; submits, cancels and retries tasks.

``run_next_step`` is what one queue message does: it finds the task's next step in the
database, claims it, runs the action with a heartbeat, records the outcome and asks for
the next message through ``dispatch``. The queue (Celery) is injected as that callable,
so tests and the dry-run can drive the engine without it.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError, ErrorDetail, InputError, NotFoundError
from portal_backend import metadata_keys
from portal_backend.db import session_scope
from portal_backend.logging import get_logger
from portal_backend.scaffolder import answers, store, version_store, versions, workspace_store
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import (
    ActionContext,
    ActionError,
    FieldError,
    TaskCancelled,
    get_action,
)
from portal_backend.scaffolder.answers import Answers
from portal_backend.scaffolder.expressions import (
    ExpressionError,
    is_truthy,
    parameter_read,
    references_steps,
    render_value,
)
from portal_backend.scaffolder.redaction import Redactor
from portal_backend.scaffolder.sealing import seal, unseal
from portal_backend.scaffolder.templates import (
    Template,
    find_template,
    validate_values,
    with_defaults,
)
from portal_backend.settings import Settings

log = get_logger(__name__)

Dispatch = Callable[[str], None]
CANCELLED = ("cancelled", {"message": "Task cancelled by user"})


def workspace_for(settings: Settings, task_id: str) -> Path:
    return settings.data_dir / "workspaces" / task_id


def portal_context(settings: Settings, annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    """``${{ portal.* }}`` in templates: what a generated service needs to know about the
    portal that created it (where to push usage, where images live, where repositories
    are published). A template's ``rag-portal.io/image-registry`` annotation overrides
    the portal's image registry for that template."""
    registry = (annotations or {}).get(metadata_keys.IMAGE_REGISTRY) or settings.image_registry
    return {
        "url": settings.portal_url_for_services,
        "imageRegistry": str(registry).rstrip("/"),
        "gitHost": settings.scaffolder_default_git_host,
    }


def _annotations(template: Template) -> dict[str, Any]:
    return (template.entity.get("metadata") or {}).get("annotations") or {}


def _user_context(user_ref: str) -> dict[str, Any]:
    return {"ref": user_ref, "entity": {"metadata": {"name": user_ref.rpartition("/")[2]}}}


def _check_steps(template: Template) -> None:
    load_actions()
    details = []
    seen: set[str] = set()
    for i, step in enumerate(template.steps):
        if not step.get("id") or not step.get("action"):
            details.append(ErrorDetail(f"spec.steps[{i}]", "every step needs an id and an action"))
            continue
        if step["id"] in seen:
            details.append(ErrorDetail(f"spec.steps[{i}].id", f"duplicate step id {step['id']}"))
        seen.add(step["id"])
        if get_action(step["action"]) is None:
            details.append(
                ErrorDetail(f"spec.steps[{i}].action", f"unknown action {step['action']!r}")
            )
    if details:
        raise InputError(f"template {template.ref} has invalid steps", details)


def _form_path(path: str, raw_input: Any) -> str:
    """``input.<key>`` of a step becomes ``parameters.<field>`` when that input is one form
    field, so the 400 names what the user typed (e.g. ``parameters.owner``)."""
    key = path.removeprefix("input.")
    if key != path and isinstance(raw_input, dict):
        field = parameter_read(raw_input.get(key))
        if field:
            return f"parameters.{field}"
    return path


@dataclass
class PrecheckReport:
    """What the actions said about some values: problems by form path, conflicts (a name
    already taken: 409 at submit), and what actions with a preview would compute."""

    details: list[ErrorDetail] = field(default_factory=list)
    conflicts: list[ConflictError] = field(default_factory=list)
    previews: dict[str, Any] = field(default_factory=dict)


def precheck_report(
    template: Template,
    values: dict[str, Any],
    settings: Settings,
    user_ref: str,
    *,
    actions: set[str] | None = None,
    with_previews: bool = False,
) -> PrecheckReport:
    """Every step's precheck (or only those of ``actions``) on values rendered from the
    parameters alone, collected instead of raised: the form asks this while the user
    types, so it shows the verdict the submit will give."""
    context = {
        "parameters": values,
        "user": _user_context(user_ref),
        "steps": {},
        "secrets": {},
        "portal": portal_context(settings, _annotations(template)),
    }
    report = PrecheckReport()
    for step in template.steps:
        raw_input = step.get("input") or {}
        action = get_action(step["action"])
        assert action is not None
        if actions is not None and step["action"] not in actions:
            continue
        if references_steps(step.get("if")):
            continue
        if references_steps(raw_input):
            if not action.precheck_partial_input or not isinstance(raw_input, dict):
                continue  # depends on outputs that do not exist yet
            raw_input = {k: v for k, v in raw_input.items() if not references_steps(v)}
        try:
            if "if" in step and not is_truthy(render_value(step["if"], context)):
                continue
            rendered = render_value(raw_input, context)
        except ExpressionError as exc:
            report.details.append(ErrorDetail(f"steps.{step['id']}", str(exc)))
            continue
        try:
            errors: list[FieldError] = action.precheck(rendered, settings)
        except ConflictError as exc:
            report.conflicts.append(exc)
            continue
        report.details += [ErrorDetail(_form_path(e.path, raw_input), e.message) for e in errors]
        preview = action.preview(rendered) if with_previews else None
        if preview is not None:
            report.previews[str(step["id"])] = preview
    return report


def precheck(template: Template, values: dict[str, Any], settings: Settings, user_ref: str) -> None:
    """Ask each action whether its input can work, before anything exists (400 / 409)."""
    report = precheck_report(template, values, settings, user_ref)
    if report.conflicts:
        raise report.conflicts[0]
    if report.details:
        raise InputError("the values cannot be used by this template", report.details)


def submit(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    template_ref: str,
    values: dict[str, Any],
    secrets: dict[str, str] | None,
    user_ref: str,
    dispatch: Dispatch,
) -> str:
    with session_scope(factory) as session:
        template = find_template(settings, session, template_ref)
    return submit_template(
        settings,
        factory,
        template=template,
        values=values,
        secrets=secrets,
        user_ref=user_ref,
        dispatch=dispatch,
    )


def submit_template(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    template: Template,
    values: dict[str, Any],
    secrets: dict[str, str] | None,
    user_ref: str,
    dispatch: Dispatch,
) -> str:
    """Submits a task of ``template`` (one found in the catalog, or one the portal builds
    for an operation such as deploying an existing service)."""
    _check_steps(template)
    # A versioned template's folder must be what its version recorded (recorded now if
    # it is new), so the answers file's version names exactly what was rendered.
    recorded = version_store.record_template(factory, template, with_history=False)
    version = versions.version_of(template.entity)
    if recorded != version:
        raise ConflictError(
            f"the catalog holds version {version} of {template.ref} but its folder "
            f"is at {recorded}: register the template again (POST /api/scaffolder/v2/"
            "templates/<namespace>/template/<name>/versions, or restart the portal)"
        )
    if isinstance(values, dict):
        values = with_defaults(template, values)
    validate_values(template, values)
    if secrets is not None and not (
        isinstance(secrets, dict) and all(isinstance(v, str) for v in secrets.values())
    ):
        raise InputError("secrets must be an object of strings", [ErrorDetail("secrets", "")])
    precheck(template, values, settings, user_ref)
    with session_scope(factory) as session:
        task = store.create_task(
            session,
            template_ref=template.ref,
            # spec.version of a versioned template: what the answers file records.
            spec={**template.snapshot(), "version": version},
            values=values,
            secrets=seal(settings, secrets),
            created_by=user_ref,
        )
        task_id = task.id
    _dispatch(factory, dispatch, task_id)
    return task_id


def _dispatch(factory: sessionmaker[Session], dispatch: Dispatch, task_id: str) -> None:
    store.mark_dispatched(factory, task_id)
    try:
        dispatch(task_id)
    except Exception as exc:  # broker down: the recovery sweep sends it again later
        log.warning("scaffolder.dispatch_failed", task_id=task_id, error=str(exc))


def cancel(factory: sessionmaker[Session], task_id: str) -> str:
    """Ask a task to stop; a task with no step running stops at once."""
    with session_scope(factory) as session:
        task = store.get_task(session, task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        if task.status in store.TERMINAL:
            raise ConflictError(f"task {task_id} is already {task.status}")
        store.request_cancel(session, task_id)
        running = any(s.status == "processing" for s in store.get_steps(session, task_id))
    if not running and store.finish_task(factory, task_id, "cancelled", event=CANCELLED):
        return "cancelled"
    return "cancelling"


def retry(factory: sessionmaker[Session], task_id: str, dispatch: Dispatch) -> str:
    with session_scope(factory) as session:
        task = store.get_task(session, task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        if task.status not in ("failed", "cancelled"):
            raise ConflictError(
                f"task {task_id} is {task.status}; only failed or cancelled tasks can be retried"
            )
        resume_at = store.reopen_for_retry(session, task)
    store.add_event(
        factory,
        task_id,
        "recovered",
        {"message": f"Retrying from step {resume_at}", "stepId": resume_at},
    )
    _dispatch(factory, dispatch, task_id)
    return resume_at or ""


@dataclass
class _Heartbeat:
    """Keeps the step's claim alive and notices a cancel request while the action runs."""

    factory: sessionmaker[Session]
    task_id: str
    step_id: str
    claim: str
    interval_s: float
    cancelled: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> _Heartbeat:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                flag = store.heartbeat(self.factory, self.task_id, self.step_id, self.claim)
            except Exception as exc:  # a database hiccup must not kill the step
                log.warning("scaffolder.heartbeat_failed", error=str(exc))
                continue
            if flag is None:
                self.lost.set()
            elif flag:
                self.cancelled.set()


def _context(
    task: Any, steps: list[Any], secrets: dict[str, str], settings: Settings
) -> dict[str, Any]:
    return {
        "portal": portal_context(settings, task.spec.get("annotations")),
        "parameters": task.values,
        "steps": {
            s.step_id: {"output": s.output or {}} for s in steps if s.status in store.DONE_STEP
        },
        "user": _user_context(task.created_by),
        "secrets": secrets,
    }


def task_answers(spec: dict[str, Any], values: dict[str, Any], secrets: dict[str, str]) -> Answers:
    """The answers file of what a task publishes: its template, version and values, less
    the fields marked secret and any value that holds one of the task's secrets."""
    kept = answers.recordable(spec.get("parameters"), values)
    if secrets:
        redactor = Redactor(secrets)
        kept = {k: v for k, v in kept.items() if redactor.redact_obj(v) == v}
    return Answers(str(spec.get("ref") or ""), spec.get("version"), kept)


def _validate_input(action: Any, data: dict[str, Any]) -> None:
    errors = sorted(Draft7Validator(action.input_schema).iter_errors(data), key=str)
    if errors:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.absolute_path) or 'input'}: {e.message}" for e in errors
        )
        raise ActionError(f"invalid input for {action.id}: {problems}")


def run_next_step(
    settings: Settings,
    factory: sessionmaker[Session],
    task_id: str,
    worker: str,
    dispatch: Dispatch,
) -> str:
    """Run the task's next step (one queue message = one step). Returns what happened."""
    load_actions()
    with session_scope(factory) as session:
        task = store.get_task(session, task_id)
        if task is None or task.status in store.TERMINAL:
            return "nothing"
        steps = store.get_steps(session, task_id)
    secrets = unseal(settings, task.secrets)
    redactor = Redactor(secrets)
    if task.cancel_requested and not any(s.status == "processing" for s in steps):
        store.finish_task(factory, task_id, "cancelled", event=CANCELLED)
        return "cancelled"
    pending = [s for s in steps if s.status not in store.DONE_STEP]
    if not pending:
        return _complete(settings, factory, task, steps, redactor)
    step = pending[0]
    if step.status in ("failed", "cancelled"):
        return "nothing"
    claim = store.claim_step(
        factory, task_id, step.step_id, worker, settings.scaffolder_stale_after_s
    )
    if claim is None:
        return "busy"  # another worker holds it (duplicate message)
    spec = next(s for s in task.spec["steps"] if str(s["id"]) == step.step_id)

    def emit(message: str, status: str | None = None, output: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"message": redactor.redact(message), "stepId": step.step_id}
        if status:
            body["status"] = status
        if output is not None:
            body["output"] = redactor.redact_obj(output)
        store.add_event(factory, task_id, "log", body)

    if step.attempts > 0:
        emit(f"Resuming step {step.name} (attempt {step.attempts + 1})")
    emit(f"Beginning step {step.name}", status="processing")
    context = _context(task, steps, secrets, settings)
    try:
        if "if" in spec and not is_truthy(render_value(spec["if"], context)):
            store.finish_step(factory, task_id, step.step_id, claim, "skipped", output={})
            emit(f"Skipping step {step.name}: its condition is false", status="skipped")
            _dispatch(factory, dispatch, task_id)
            return "skipped"
        action = get_action(step.action)
        if action is None:
            raise ActionError(f"action {step.action!r} is not installed on this worker")
        data = render_value(spec.get("input") or {}, context)
        _validate_input(action, data)
        workspace = workspace_for(settings, task_id)
        restored_after = workspace_store.restore(factory, task_id, workspace)
        if restored_after:
            emit(f"Workspace restored as step {restored_after} left it")
        workspace.mkdir(parents=True, exist_ok=True)
        with _Heartbeat(
            factory, task_id, step.step_id, claim, settings.scaffolder_heartbeat_s
        ) as beat:
            ctx = ActionContext(
                task_id=task_id,
                step_id=step.step_id,
                workspace=workspace,
                settings=settings,
                session_factory=factory,
                user_ref=task.created_by,
                log=lambda message: emit(str(message)),
                secrets=dict(secrets),
                template_dir=Path(task.spec["directory"]) if task.spec.get("directory") else None,
                is_cancelled=beat.cancelled.is_set,
                template_trusted=bool(task.spec.get("trusted")),
                answers=task_answers(task.spec, task.values, secrets),
            )
            output = action.run(ctx, data) or {}
            # Saved before the step counts as completed: the next step may run elsewhere.
            workspace_store.save(
                factory, task_id, step.step_id, workspace, settings.scaffolder_workspace_max_bytes
            )
    except TaskCancelled:
        if store.finish_step(factory, task_id, step.step_id, claim, "cancelled"):
            emit(f"Step {step.name} cancelled", status="cancelled")
            store.finish_task(factory, task_id, "cancelled", event=CANCELLED)
        return "cancelled"
    except Exception as exc:
        message = redactor.redact(str(exc) or type(exc).__name__)
        if not isinstance(exc, ActionError | ExpressionError | workspace_store.WorkspaceTooLarge):
            log.exception("scaffolder.step_crashed", task_id=task_id, step=step.step_id)
        if store.finish_step(factory, task_id, step.step_id, claim, "failed", error=message):
            emit(f"Step {step.name} failed: {message}", status="failed")
            final = {
                "message": f"Run failed at step {step.name}: {message}",
                "status": "failed",
                "stepId": step.step_id,
            }
            store.finish_task(
                factory,
                task_id,
                "failed",
                error=message,
                keep_secrets=True,  # a retry needs them
                event=("completion", final),
            )
        return "failed"
    if not store.finish_step(factory, task_id, step.step_id, claim, "completed", output=output):
        return "lost"  # presumed dead meanwhile; the worker that took over records it
    emit(f"Finished step {step.name}", status="completed", output=output)
    _dispatch(factory, dispatch, task_id)
    return "completed"


def _complete(
    settings: Settings,
    factory: sessionmaker[Session],
    task: Any,
    steps: list[Any],
    redactor: Redactor,
) -> str:
    context = _context(task, steps, {}, settings)
    try:
        output = render_value(task.spec.get("output") or {}, context)
    except ExpressionError as exc:
        output = {"error": str(exc)}
    final = {"message": "Run completed", "status": "completed", "output": output}
    if not store.finish_task(
        factory, task.id, "completed", output=output, event=("completion", final)
    ):
        return "nothing"
    workspace_store.remove_local(workspace_for(settings, task.id))
    workspace_store.forget(factory, [task.id])
    return "completed"


@dataclass
class DryRunSteps:
    """What running a template's steps with ``dry_run`` set left behind."""

    logs: list[dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    results: list[dict[str, Any]]
    context: dict[str, Any]
    failed: str | None = None
    # The input of the step the run stopped before (``stop_before``), rendered.
    stopped_at: dict[str, Any] | None = None


def run_steps_dry(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    template: Template,
    values: dict[str, Any],
    secrets: dict[str, str] | None,
    user_ref: str,
    workspace: Path,
    stop_before: Callable[[dict[str, Any]], bool] | None = None,
) -> DryRunSteps:
    """Run the template's steps in order into ``workspace`` with ``dry_run`` set (no
    repository, catalog or cluster change), until one fails or ``stop_before`` says the
    next one must not run (its rendered input is kept: e.g. a publish step's sourcePath)."""
    redactor = Redactor(secrets or {})
    run = DryRunSteps(
        logs=[],
        outputs={},
        results=[],
        context={
            "parameters": values,
            "user": _user_context(user_ref),
            "steps": {},
            "secrets": secrets or {},
            "portal": portal_context(settings, _annotations(template)),
        },
    )
    context = run.context
    for spec in template.steps:
        step_id = str(spec["id"])

        def emit(message: str, step_id: str = step_id) -> None:
            run.logs.append({"body": {"message": redactor.redact(str(message)), "stepId": step_id}})

        context["steps"] = {k: {"output": v} for k, v in run.outputs.items()}
        try:
            if "if" in spec and not is_truthy(render_value(spec["if"], context)):
                emit(f"Skipping step {spec.get('name', step_id)}: its condition is false")
                run.outputs[step_id] = {}
                run.results.append({"id": step_id, "status": "skipped"})
                continue
            action = get_action(spec["action"])
            assert action is not None
            data = render_value(spec.get("input") or {}, context)
            if stop_before is not None and stop_before(spec):
                run.stopped_at = data
                break
            _validate_input(action, data)
            emit(f"Beginning step {spec.get('name', step_id)}")
            ctx = ActionContext(
                task_id="dry-run",
                step_id=step_id,
                workspace=workspace,
                settings=settings,
                session_factory=factory,
                user_ref=user_ref,
                log=emit,
                secrets=dict(secrets or {}),
                template_dir=template.directory,
                dry_run=True,
                template_trusted=template.trusted,
            )
            run.outputs[step_id] = action.run(ctx, data) or {}
            run.results.append({"id": step_id, "status": "completed"})
        except Exception as exc:
            run.failed = redactor.redact(str(exc))
            emit(f"Step {step_id} failed: {run.failed}")
            run.results.append({"id": step_id, "status": "failed", "error": run.failed})
            break
    context["steps"] = {k: {"output": v} for k, v in run.outputs.items()}
    return run


def dry_run(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    template: Template,
    values: dict[str, Any],
    secrets: dict[str, str] | None,
    user_ref: str,
) -> dict[str, Any]:
    """Run every step in a scratch folder with ``dry_run`` set; nothing outside it changes."""
    load_actions()
    _check_steps(template)
    if isinstance(values, dict):
        values = with_defaults(template, values)
    validate_values(template, values)
    with tempfile.TemporaryDirectory(prefix="ragportal-dry-run-") as scratch:
        workspace = Path(scratch) / "workspace"
        workspace.mkdir()
        run = run_steps_dry(
            settings,
            factory,
            template=template,
            values=values,
            secrets=secrets,
            user_ref=user_ref,
            workspace=workspace,
        )
        files = []
        for path in sorted(p for p in workspace.rglob("*") if p.is_file()):
            files.append(
                {
                    "path": path.relative_to(workspace).as_posix(),
                    "base64Content": base64.b64encode(path.read_bytes()).decode(),
                    "executable": os.access(path, os.X_OK),
                }
            )
    output: dict[str, Any] = {}
    if run.failed is None:
        try:
            output = render_value(template.spec.get("output") or {}, run.context)
        except ExpressionError as exc:
            output = {"error": str(exc)}
    return {
        "log": run.logs,
        "directoryContents": files,
        "output": output,
        "steps": run.results,
        "status": "failed" if run.failed else "completed",
    }


def find(settings: Settings, factory: sessionmaker[Session], ref: str) -> Template:
    with session_scope(factory) as session:
        return find_template(settings, session, ref)


def recovery_sweep(
    settings: Settings, factory: sessionmaker[Session], dispatch: Dispatch
) -> dict[str, int]:
    """Resume tasks whose worker died (silent heartbeat) or whose message was lost."""
    with session_scope(factory) as session:
        dead, idle = store.stalled_tasks(
            session, settings.scaffolder_stale_after_s, settings.scaffolder_requeue_after_s
        )
    resumed = 0
    for task_id, step_id in dead:
        if store.release_dead_step(factory, task_id, step_id, settings.scaffolder_stale_after_s):
            store.add_event(
                factory,
                task_id,
                "recovered",
                {
                    "message": f"Worker running step {step_id} stopped responding; resuming",
                    "stepId": step_id,
                },
            )
            _dispatch(factory, dispatch, task_id)
            resumed += 1
    for task_id in idle:
        _dispatch(factory, dispatch, task_id)
    removed = remove_old_workspaces(settings, factory)
    workspace_store.forget_ended_before(
        factory, time.time() - settings.scaffolder_workspace_retention_s
    )
    return {"resumed": resumed, "requeued": len(idle), "workspacesRemoved": removed}


def remove_old_workspaces(settings: Settings, factory: sessionmaker[Session]) -> int:
    """Workspaces kept for a retry go once their task ended longer ago than the retention
    (or when the task no longer exists and the folder is that old)."""
    root = settings.data_dir / "workspaces"
    if not root.is_dir():
        return 0
    folders = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if not folders:
        return 0
    cutoff = time.time() - settings.scaffolder_workspace_retention_s
    with session_scope(factory) as session:
        ended = store.ended_before(session, list(folders), cutoff)
        known = store.existing_ids(session, list(folders))
    removed = 0
    for name, path in folders.items():
        if name in ended or (name not in known and path.stat().st_mtime < cutoff):
            workspace_store.remove_local(path)
            removed += 1
    return removed
