"""SLA tables. Time buckets are integer epoch seconds (UTC): cheap to compare and index."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel


class UsageRollup(SQLModel, table=True):
    """Usage of one service in one minute ("1m"), hour ("1h") or day ("1d"), from one source.

    The source is part of the key so that the Prometheus collector and pushed batches
    never overwrite each other; reads merge every source.
    """

    __tablename__ = "sla_usage_rollups"

    service_ref: str = Field(primary_key=True, max_length=255)
    resolution: str = Field(primary_key=True, max_length=4)  # "1m" | "1h" | "1d"
    bucket_ts: int = Field(sa_column=Column(BigInteger, primary_key=True))
    source: str = Field(primary_key=True, max_length=32)  # "push" | "prometheus"
    requests: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    successes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    errors: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    timeouts: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refused: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    latency_sum_ms: float = 0.0
    # Sparse log-bucket histograms (see histogram.py): uint16 indexes then uint32 counts.
    latency_hist: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    ttft_hist: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    prompt_tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    completion_tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))

    __table_args__ = (Index("ix_sla_usage_rollups_res_ts", "resolution", "bucket_ts"),)


class IngestBatch(SQLModel, table=True):
    """Batch ids already applied, so a retried push changes nothing."""

    __tablename__ = "sla_ingest_batches"

    batch_id: str = Field(primary_key=True, max_length=128)
    token_id: str | None = Field(default=None, max_length=36)
    records: int
    received_at: datetime = Field(index=True)


class UsageRecord(SQLModel, table=True):
    """Raw pushed records, kept only for ``sla_raw_retention_hours`` (0 = not kept)."""

    __tablename__ = "sla_usage_records"

    id: int | None = Field(default=None, primary_key=True)
    service_ref: str = Field(max_length=255)
    ts: float = Field(index=True)
    latency_ms: float
    ttft_ms: float | None = None
    prompt_tokens: int
    completion_tokens: int
    outcome: str = Field(max_length=16)
    model: str | None = Field(default=None, max_length=200)
    adapter: str | None = Field(default=None, max_length=200)
    batch_id: str = Field(max_length=128)


class AdapterUsage(SQLModel, table=True):
    """Usage of one LoRA adapter of a service in one hour, from pushed records that name
    it (requests without an adapter are the base model: the service's rollups minus
    these). Written only for such records, so services without adapters pay nothing."""

    __tablename__ = "sla_adapter_usage"

    service_ref: str = Field(primary_key=True, max_length=255)
    adapter: str = Field(primary_key=True, max_length=200)
    bucket_ts: int = Field(sa_column=Column(BigInteger, primary_key=True))
    requests: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    errors: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    latency_sum_ms: float = 0.0
    prompt_tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    completion_tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))

    __table_args__ = (Index("ix_sla_adapter_usage_ts", "bucket_ts"),)


class SlaService(SQLModel, table=True):
    """What the SLA domain needs to know about a service, synced from its catalog entity."""

    __tablename__ = "sla_services"

    service_ref: str = Field(primary_key=True, max_length=255)
    owner: str | None = Field(default=None, max_length=255, index=True)
    namespace: str | None = Field(default=None, max_length=255)
    cluster: str | None = Field(default=None, max_length=255)
    slo_p95_latency_ms: float | None = None
    slo_success_rate: float | None = None  # percent
    monthly_budget_usd: float | None = None
    gpu_class: str | None = Field(default=None, max_length=64)
    gpus: float | None = None
    replicas: float | None = None
    deployment_state: str | None = Field(default=None, max_length=32)
    synced_at: datetime


class CollectorCursor(SQLModel, table=True):
    """How far the Prometheus collector has read a service, and each series' last value."""

    __tablename__ = "sla_collector_cursors"

    service_ref: str = Field(primary_key=True, max_length=255)
    cursor_ts: float
    last_values: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )


class CostAccrual(SQLModel, table=True):
    """Spend of a service in one hour ("1h") or day ("1d"), from the provisioned-resources
    model or OpenCost. Day rows are kept in step with hour rows so fleet summaries read
    30 rows per service instead of 720."""

    __tablename__ = "sla_cost_buckets"

    service_ref: str = Field(primary_key=True, max_length=255)
    period: str = Field(primary_key=True, max_length=4)
    bucket_ts: int = Field(sa_column=Column(BigInteger, primary_key=True))
    usd: float = 0.0
    gpu_hours: float = 0.0
    source: str = Field(default="provisioned", max_length=32)

    __table_args__ = (Index("ix_sla_cost_buckets_period_ts", "period", "bucket_ts"),)


class CostCursor(SQLModel, table=True):
    """Up to when the provisioned-resources cost of a service has been accrued."""

    __tablename__ = "sla_cost_cursors"

    service_ref: str = Field(primary_key=True, max_length=255)
    accrued_until: float


class PriceItem(SQLModel, table=True):
    """One line of the price table: ``gpu:<class>`` per GPU-hour, or a named resource."""

    __tablename__ = "sla_prices"

    item: str = Field(primary_key=True, max_length=100)
    usd: float
    updated_at: datetime
    updated_by: str | None = Field(default=None, max_length=255)


class Budget(SQLModel, table=True):
    """An admin-set monthly budget for a service (overrides its annotation)."""

    __tablename__ = "sla_budgets"

    ref: str = Field(primary_key=True, max_length=255)
    monthly_usd: float
    updated_at: datetime
    updated_by: str | None = Field(default=None, max_length=255)


class GroupBudget(SQLModel, table=True):
    """An admin-set monthly budget for an owner group: a ceiling on the summed spend of
    the services it owns (``spec.owner``), alerted like a service budget."""

    __tablename__ = "sla_group_budgets"

    group_ref: str = Field(primary_key=True, max_length=255)
    monthly_usd: float
    updated_at: datetime
    updated_by: str | None = Field(default=None, max_length=255)


class Evaluation(SQLModel, table=True):
    """One evaluation run of a service (hit@k, hallucination rate, ...), a time series."""

    __tablename__ = "sla_evaluations"

    id: int | None = Field(default=None, primary_key=True)
    service_ref: str = Field(max_length=255, index=True)
    created_at: datetime = Field(index=True)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dataset: str | None = Field(default=None, max_length=255)
    submitted_by: str | None = Field(default=None, max_length=255)


class Alert(SQLModel, table=True):
    """An alert instance: fires once (state firing) and resolves when its condition clears."""

    __tablename__ = "sla_alerts"

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=255, index=True)
    alertname: str = Field(max_length=100)
    service_ref: str | None = Field(default=None, max_length=255, index=True)
    # The service's owner group, or the group of a group-budget alert (service_ref None).
    group_ref: str | None = Field(default=None, max_length=255, index=True)
    severity: str = Field(max_length=16)
    state: str = Field(max_length=16, index=True)  # firing | resolved
    labels: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    annotations: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    starts_at: datetime
    ends_at: datetime | None = None


class Notification(SQLModel, table=True):
    """One webhook delivery of one alert transition, retried with backoff until delivered."""

    __tablename__ = "sla_notifications"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(index=True)
    status: str = Field(max_length=16)  # firing | resolved (the transition notified)
    url: str = Field(max_length=2000)
    format: str = Field(max_length=16)  # alertmanager | slack
    state: str = Field(max_length=16, index=True)  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime
    delivered_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)
