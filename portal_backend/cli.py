"""The `ragportal` command line (typer)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from portal_backend.db import make_engine, make_session_factory, session_scope, upgrade_database
from portal_backend.logging import configure_logging
from portal_backend.settings import Settings, get_settings

if TYPE_CHECKING:
    import subprocess

    from sqlalchemy.orm import Session, sessionmaker

app = typer.Typer(
    help="rag-portal: the developer portal for private RAG assistants.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
catalog_app = typer.Typer(help="Software catalog: import locations.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


def fail(message: str) -> typer.Exit:
    """Print a clear error and return the exit to raise (exit code 2, like usage errors)."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


@app.command()
def serve(
    host: str = typer.Option(
        None, help="Interface to bind (default from RAGPORTAL_HOST, 127.0.0.1)."
    ),
    port: int = typer.Option(None, help="Port (default from RAGPORTAL_PORT, 7007)."),
) -> None:
    """Apply migrations and start the portal (API + UI)."""
    import os

    import uvicorn

    from portal_backend.app import create_app

    settings = _settings()
    upgrade_database(settings)
    host, port = host or settings.host, port or settings.port
    if "RAGPORTAL_BASE_URL" not in os.environ:
        # Links, and the address services on the local runtime push usage to, follow the
        # port actually served (the embedded worker reads it from the environment).
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        settings.base_url = f"http://{reachable}:{port}"
        os.environ["RAGPORTAL_BASE_URL"] = settings.base_url
    # Without REDIS_URL the portal runs its own worker (filesystem queue), so this one
    # command is enough; it stops with the server.
    embedded = None if settings.redis_url else _start_embedded_worker()
    if embedded is not None:
        # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; turning that into
        # SystemExit lets the `finally` below stop the worker too.
        import signal

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _exit_on_signal)
    try:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_config=None,  # structlog owns logging
            proxy_headers=True,
        )
    finally:
        if embedded is not None:
            from portal_backend.processes import stop_process_group

            stop_process_group(embedded)  # the worker and its pool children


def _start_embedded_worker() -> subprocess.Popen[bytes]:
    import subprocess
    import sys

    # Two processes: a long step (the first build of the local runtime's environment, a
    # service starting) must not hold up the others or the runtime's supervisor.
    command = [sys.executable, "-m", "portal_backend.cli", "worker", "--beat", "--concurrency", "2"]
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """Linux: the embedded worker gets SIGTERM if `serve` dies without cleaning up."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


@app.command()
def worker(
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="Worker processes."),
    beat: bool = typer.Option(
        False, "--beat", help="Also run the periodic scheduler (beat: recovery sweep, ...)."
    ),
    pool: str = typer.Option("prefork", "--pool", help="prefork, solo or threads."),
) -> None:
    """Run a Celery worker for the portal's queue (scaffolder steps, provisioning, collectors)."""
    from portal_backend.task_queue import installed_task_queue

    settings = _settings()
    upgrade_database(settings)
    installed_task_queue(settings).run_worker(concurrency=concurrency, beat=beat, pool=pool)


@app.command()
def beat() -> None:
    """Run the periodic scheduler alone (recovery sweep, collectors); run exactly one."""
    from portal_backend.task_queue import installed_task_queue

    installed_task_queue(_settings()).run_beat()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = _settings()
    upgrade_database(settings, revision)
    console.print(f"database at {revision}")


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="A name you will recognise the token by."),
    scope: str = typer.Option("read", "--scope", help="read, write or admin."),
    subject: str = typer.Option(
        "user:default/admin", "--subject", help="User entity ref the token acts as."
    ),
    group: str | None = typer.Option(
        None, "--group", help="Owning group ref: writes are limited to what it owns."
    ),
    expires_in_days: int | None = typer.Option(None, "--expires-in-days", min=1),
    as_user: bool = typer.Option(
        False,
        "--as-user",
        help="Issued to the --subject user: carries that user's rights (groups from the "
        "catalog, looked up at each use), within --scope.",
    ),
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from catalog.errors import PortalError
    from portal_backend.auth.service import create_token

    settings = _settings()
    upgrade_database(settings)
    factory = make_session_factory(make_engine(settings.database_url))
    try:
        with session_scope(factory) as session:
            created = create_token(
                session,
                name=name,
                scope=scope,
                subject=subject,
                owner_group=group,
                created_by="cli",
                expires_in_days=expires_in_days,
                acts_as_user=as_user,
            )
            token_id = created.record.id
    except PortalError as exc:
        raise fail(exc.message) from exc
    err_console.print(f"created token {token_id} ({scope}); store it now, it is not shown again:")
    typer.echo(created.token)


@token_app.command("list")
def token_list() -> None:
    """List active tokens (never their values)."""
    from rich.table import Table

    from portal_backend.auth.service import list_tokens

    settings = _settings()
    factory = make_session_factory(make_engine(settings.database_url))
    table = Table("id", "name", "prefix", "scope", "purpose", "subject", "group")
    with session_scope(factory) as session:
        for t in list_tokens(session):
            table.add_row(
                t.id, t.name, t.token_prefix, t.scope, t.purpose, t.subject, t.owner_group or ""
            )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke a token by id."""
    from catalog.errors import PortalError
    from portal_backend.auth.service import revoke_token

    settings = _settings()
    factory = make_session_factory(make_engine(settings.database_url))
    try:
        with session_scope(factory) as session:
            revoke_token(session, token_id)
    except PortalError as exc:
        raise fail(exc.message) from exc
    console.print(f"revoked {token_id}")


@catalog_app.command("import")
def catalog_import(
    target: str = typer.Argument(..., help="A catalog-info.yaml path or an http(s) URL."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate only, write nothing."),
    mlflow: bool = typer.Option(
        False,
        "--mlflow",
        help="TARGET is an MLflow tracking server: import its model registry "
        "(http(s)://host:port[?name=<pattern>&owner=<ref>]; docs/catalog.md).",
    ),
) -> None:
    """Register PATH_OR_URL as a catalog location (or refresh it if already registered)."""

    from catalog.errors import PortalError
    from catalog.service import CatalogService
    from portal_backend.catalog_policy import location_policy

    settings = _settings()
    upgrade_database(settings)
    is_url = target.startswith(("http://", "https://")) or "://" in target
    location_type = "mlflow" if mlflow else "url" if is_url else "file"
    if location_type == "file":
        target = str(Path(target).expanduser().resolve())
    # The CLI runs on the server with its owner's rights: any local file may be imported.
    policy = location_policy(settings, restrict_files=False)
    factory = make_session_factory(make_engine(settings.database_url))
    try:
        with session_scope(factory) as session:
            service = CatalogService(session, policy=policy)
            existing = service.find_location(location_type, target)
            if existing is not None and not dry_run:
                result = service.refresh_location(existing["id"])
                refs, verb = result["entities"], "refreshed"
                if result["orphaned"]:
                    err_console.print(f"orphaned: {', '.join(result['orphaned'])}")
            else:
                added = service.add_location(
                    location_type, target, dry_run=dry_run, managed_by="cli"
                )
                refs = [
                    f"{e['kind'].lower()}:{e['metadata']['namespace']}/{e['metadata']['name']}"
                    for e in added["entities"]
                ]
                verb = "validated (dry run)" if dry_run else "imported"
    except PortalError as exc:
        for detail in exc.details:
            err_console.print(f"  {detail.path}: {detail.message}")
        raise fail(exc.message) from exc
    console.print(f"{verb} {len(refs)} entities from {location_type}:{target}")
    for ref in refs:
        console.print(f"  {ref}")


secrets_app = typer.Typer(
    help="The provisioner's secret store (e.g. hf-token); values are never printed.",
    no_args_is_help=True,
)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("set")
def secrets_set(
    name: str = typer.Argument(..., help="Secret name, e.g. hf-token."),
    value: str = typer.Option(
        ...,
        "--value",
        prompt=True,
        hide_input=True,
        envvar="RAGPORTAL_SECRET_VALUE",
        help="The value (prompted without echo when omitted).",
    ),
) -> None:
    """Store a platform-wide secret that provisioning creates in clusters."""
    from portal_backend.provisioning.secrets import GLOBAL, SecretStore

    if not value:
        raise fail("the value must not be empty")
    settings = _settings()
    upgrade_database(settings)
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        SecretStore(session, settings).set(GLOBAL, name, value)
    console.print(f"stored secret {name}")


@secrets_app.command("list")
def secrets_list() -> None:
    """Names of the platform-wide secrets."""
    from portal_backend.provisioning.secrets import GLOBAL, SecretStore

    settings = _settings()
    upgrade_database(settings)
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        for name in sorted(SecretStore(session, settings).names(GLOBAL)):
            console.print(name)


runtime_app = typer.Typer(
    help="The local runtime: generated services as processes on this machine.",
    no_args_is_help=True,
)
app.add_typer(runtime_app, name="runtime")


@runtime_app.command("build-env")
def runtime_build_env(
    repo: Path | None = typer.Option(
        None,
        "--repo",
        help="A generated repository whose pyproject.toml lists the requirements "
        "(default: the rag-service template rendered with its defaults).",
    ),
    link: Path | None = typer.Option(
        None, "--link", help="Also make this path a symlink to the environment."
    ),
) -> None:
    """Build (or find) the shared environment the local runtime runs services in."""
    import tempfile

    from portal_backend.provisioning.local.environment import (
        EnvironmentBuildError,
        ensure_environment,
        spec_for,
    )

    settings = _settings()
    with tempfile.TemporaryDirectory(prefix="ragportal-env-") as scratch:
        if repo is None:
            from cookiecutter.main import cookiecutter

            skeleton = settings.templates_dir / "rag-service" / "skeleton"
            repo = Path(cookiecutter(str(skeleton), no_input=True, output_dir=scratch))
        try:
            path = ensure_environment(spec_for(repo, settings), settings, err_console.print)
        except EnvironmentBuildError as exc:
            raise fail(str(exc)) from exc
    if link is not None:
        if link.is_symlink() or link.exists():
            if not link.is_symlink():
                raise fail(f"{link} exists and is not a symlink: remove it first")
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path, target_is_directory=True)
    typer.echo(str(path))


services_app = typer.Typer(help="Deployed RAG services.", no_args_is_help=True)
app.add_typer(services_app, name="services")


def _factory(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.database_url))


@services_app.command("list")
def services_list() -> None:
    """Every deployed (or planned) service: where it runs, its state and endpoint."""
    from rich.table import Table
    from sqlalchemy import select

    from portal_backend.provisioning import records
    from portal_backend.provisioning.models import ProvisionedService

    settings = _settings()
    table = Table("service", "target", "state", "endpoint", "message")
    with session_scope(_factory(settings)) as session:
        for row in session.scalars(select(ProvisionedService).order_by(ProvisionedService.service)):
            table.add_row(
                row.service,
                records.target_of(row) + (f" ({row.cluster})" if row.cluster else ""),
                row.state,
                row.endpoint or "",
                (row.last_error or "").splitlines()[0][:80] if row.last_error else "",
            )
    console.print(table)


@services_app.command("ask")
def services_ask(
    name: str = typer.Argument(..., help="The service's name."),
    question: str = typer.Argument(..., help="The question, in quotes."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole answer as JSON."),
) -> None:
    """Ask a running service a question through its /query (counted in its SLA)."""
    import json

    from catalog.errors import PortalError
    from portal_backend.rag.ask import ask

    settings = _settings()
    try:
        answer = ask(_factory(settings), name, question)
    except PortalError as exc:
        for detail in exc.details:
            err_console.print(f"  {detail.path}: {detail.message}")
        raise fail(exc.message) from exc
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    console.print(answer.get("answer", ""))
    for number, citation in enumerate(answer.get("citations") or [], start=1):
        console.print(f"[dim][{number}] {citation.get('source', '')}[/]")
    usage = answer.get("usage") or {}
    cost = answer.get("costUsd")
    console.print(
        f"[dim]{answer.get('latency_ms', 0):.0f} ms · {usage.get('total_tokens', 0)} tokens"
        + (f" · ${cost:.6f}" if cost is not None else "")
        + f" · {answer.get('model', '')}[/]"
    )


@services_app.command("stop")
def services_stop(name: str = typer.Argument(..., help="The service's name.")) -> None:
    """Stop a service on the local runtime, keeping its data (deploy starts it again)."""
    from portal_backend.provisioning.local.runtime import LocalRuntime, LocalRuntimeError

    settings = _settings()
    try:
        result = LocalRuntime(settings, _factory(settings)).stop(name)
    except LocalRuntimeError as exc:
        raise fail(str(exc)) from exc
    console.print(f"stopped {name}: {', '.join(result['stoppedProcesses']) or 'nothing ran'}")


@services_app.command("deploy")
def services_deploy(
    name: str = typer.Argument(..., help="The service's name."),
    target: str = typer.Option("auto", "--target", help="auto, local, plan or kubernetes."),
    cluster: str | None = typer.Option(None, "--cluster", help="A configured cluster."),
    environment: str = typer.Option("prod", "--environment", help="Overlay / environment."),
) -> None:
    """Deploy a service again from its published repository, here, printing the log."""
    from catalog.errors import PortalError
    from portal_backend.provisioning import records, targets
    from portal_backend.provisioning.local.runtime import (
        LocalRequest,
        LocalRuntime,
        LocalRuntimeError,
    )
    from portal_backend.provisioning.service import ProvisioningError
    from portal_backend.rag import operations

    settings = _settings()
    upgrade_database(settings)
    factory = _factory(settings)
    try:
        chosen = targets.choose(settings, environment=environment, target=target, cluster=cluster)
        if chosen.kind != records.LOCAL:
            raise fail(
                f"the command line deploys to the local runtime; for {chosen.describe()} use "
                "POST /api/rag/services/<namespace>/<name>/deploy (a task with a live log)"
            )
        with session_scope(factory) as session:
            entity = operations.entity_of(session, f"component:default/{name}")
            url = operations.repo_contents_url(session, name, entity)
        outcome = LocalRuntime(settings, factory, log=console.print).provision(
            LocalRequest(name, url, environment, f"component:default/{name}")
        )
    except PortalError as exc:
        raise fail(exc.message) from exc
    except (ProvisioningError, LocalRuntimeError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(outcome["endpoint"])


@services_app.command("upgrade")
def services_upgrade(
    name: str = typer.Argument(..., help="The service's name (component:default/NAME)."),
    to_version: str | None = typer.Option(None, "--to", help="Target version (default: latest)."),
    from_version: str | None = typer.Option(
        None,
        "--from",
        help="The version it was generated from, for a repository without "
        ".rag-portal/answers.yml (adoption).",
    ),
    values: list[str] = typer.Option(
        [], "--set", help="An answer for the new version: key=value (value read as YAML)."
    ),
) -> None:
    """Upgrade the service's repository to a newer version of its template: merges the
    template's changes into the branch rag-portal/upgrade-<version>, here, printing the
    log and each file (merged, added, deleted, conflicted)."""
    import yaml

    from catalog.errors import PortalError
    from portal_backend.scaffolder import engine, store, upgrades

    answers: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise fail(f"--set {item!r}: write key=value")
        answers[key] = yaml.safe_load(raw) if raw else ""
    settings = _settings()
    upgrade_database(settings)
    factory = _factory(settings)
    pending: list[str] = []
    try:
        answer = upgrades.submit_upgrade(
            settings,
            factory,
            entity_ref=f"component:default/{name}",
            user_ref="user:default/cli",
            dispatch=pending.append,
            to_version=to_version,
            from_version=from_version,
            values=answers or None,
        )
    except PortalError as exc:
        for detail in exc.details:
            err_console.print(f"  {detail.path}: {detail.message}")
        raise fail(exc.message) from exc
    if answer["id"] is None:
        console.print(f"{name} is already on {answer['toVersion']}: nothing to do")
        return
    while pending:  # the task's steps, run here (as a worker would)
        engine.run_next_step(settings, factory, pending.pop(0), "cli", pending.append)
    with session_scope(factory) as session:
        task = store.get_task(session, answer["id"])
        for event in store.list_events(session, answer["id"], None):
            console.print(f"[dim]{event.body.get('message', '')}[/]")
        step = store.get_steps(session, answer["id"])[0]
        status, error, output = task.status if task else "failed", task and task.error, step.output
    if status != "completed":
        raise fail(f"upgrade failed: {error}")
    console.print((output or {}).get("summary", ""))


@app.command("mcp")
def mcp_stdio(
    token: str = typer.Option(
        None,
        "--token",
        envvar="RAGPORTAL_TOKEN",
        help="The portal token whose rights the tools run with (or RAGPORTAL_TOKEN).",
        show_default=False,
    ),
) -> None:
    """Serve the portal's MCP tools over stdin/stdout (docs/mcp.md)."""
    from catalog.errors import PortalError
    from portal_backend.mcp import stdio

    settings = _settings()
    try:
        stdio.serve(settings, token)  # refuses a missing or bad token before serving
    except PortalError as exc:
        raise fail(exc.message) from exc


def main() -> None:
    app()


if __name__ == "__main__":
    main()
