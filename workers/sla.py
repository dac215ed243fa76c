"""Celery tasks and beat entries of SLA and cost tracking (work in portal_backend.sla.jobs)."""

from __future__ import annotations

import os
from typing import Any

import httpx
from celery import Celery

from portal_backend.db import make_engine, make_session_factory
from portal_backend.settings import Settings
from portal_backend.sla import jobs
from portal_backend.sla.clock import utcnow

COLLECT = "sla.collect"
COSTS = "sla.costs"
EVALUATE = "sla.evaluate"
DELIVER = "sla.deliver_webhooks"
RETENTION = "sla.retention"

_factories: dict[int, Any] = {}


def _factory(settings: Settings) -> Any:
    # One engine per process: connections must not cross a fork.
    pid = os.getpid()
    if pid not in _factories:
        _factories[pid] = make_session_factory(make_engine(settings.database_url))
    return _factories[pid]


def _client() -> httpx.Client:
    return httpx.Client(timeout=10.0)


def register(app: Celery) -> None:
    settings: Settings = app.conf.ragportal_settings

    @app.task(name=COLLECT, ignore_result=True)
    def collect() -> dict:
        with _client() as client:
            return jobs.collect(settings, _factory(settings), client, utcnow())

    @app.task(name=COSTS, ignore_result=True)
    def account_costs() -> dict:
        with _client() as client:
            return jobs.account_costs(settings, _factory(settings), client, utcnow())

    @app.task(name=EVALUATE, ignore_result=True)
    def evaluate() -> dict:
        return jobs.evaluate_all(settings, _factory(settings), utcnow())

    @app.task(name=DELIVER, ignore_result=True)
    def deliver() -> dict:
        with _client() as client:
            return jobs.deliver(settings, _factory(settings), client, utcnow())

    @app.task(name=RETENTION, ignore_result=True)
    def retention() -> dict:
        return jobs.retention(settings, _factory(settings), utcnow())

    schedule = {
        "sla-collect": (COLLECT, settings.sla_collect_interval_s),
        "sla-costs": (COSTS, settings.sla_evaluate_interval_s),
        "sla-evaluate": (EVALUATE, settings.sla_evaluate_interval_s),
        "sla-deliver-webhooks": (DELIVER, settings.sla_webhook_interval_s),
        "sla-retention": (RETENTION, 3600.0),
    }
    for name, (task, every) in schedule.items():
        app.conf.beat_schedule[name] = {
            "task": task,
            "schedule": every,
            "options": {"expires": every * 2},
        }
