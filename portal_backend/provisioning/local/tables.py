"""The local runtime's processes: one row per (service, role), the supervisor's worklist.

Everything the supervisor needs to find, judge and restart a process lives here and in
the service's folder under the data dir (logs, exit files), never in a worker's memory:
any worker, or the portal after a restart, can pick a process up where another left it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel


class RuntimeProcess(SQLModel, table=True):
    __tablename__ = "runtime_processes"

    service: str = Field(primary_key=True, max_length=63)
    # "llm" (llama.cpp's OpenAI-compatible server), "ingestion" (runs once), "api".
    role: str = Field(primary_key=True, max_length=16)
    # starting -> running; exited (waiting for its restart), failed (gave up or refused
    # to start), stopped (on purpose), completed (a run-once process that succeeded).
    state: str = Field(max_length=16)
    pid: int | None = None
    # The process's start time (seconds since the epoch, from the kernel): a pid the
    # kernel reused for another process does not match it.
    started_ts: float | None = None
    port: int | None = None
    command: list[str] = Field(default_factory=list, sa_column=Column(sa.JSON()))
    log_path: str | None = None
    exit_code: int | None = None
    restarts: int = 0
    next_start_at: datetime | None = None
    message: str | None = None
    started_at: datetime | None = None
    updated_at: datetime

    def summary(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "state": self.state,
            "pid": self.pid,
            "port": self.port,
            "restarts": self.restarts,
            "exitCode": self.exit_code,
            "message": self.message,
        }
