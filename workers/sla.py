"""Celery tasks and beat entries of SLA and cost tracking (work in portal_backend.sla.jobs)."""

from __future__ import annotations

import httpx
from celery import Celery

from portal_backend.settings import Settings
from portal_backend.sla import jobs
from portal_backend.sla.clock import utcnow
from workers.sessions import process_session_factory

COLLECT = "sla.collect"
COSTS = "sla.costs"
EVALUATE = "sla.evaluate"
DELIVER = "sla.deliver_webhooks"
RETENTION = "sla.retention"


def _client() -> httpx.Client:
    return httpx.Client(timeout=10.0)


def register(app: Celery) -> None:
    settings: Settings = app.conf.ragportal_settings

    @app.task(name=COLLECT, ignore_result=True)
    def collect() -> dict:
        with _client() as client:
            return jobs.collect(settings, process_session_factory(settings), client, utcnow())

    @app.task(name=COSTS, ignore_result=True)
    def account_costs() -> dict:
        with _client() as client:
            return jobs.account_costs(settings, process_session_factory(settings), client, utcnow())

    @app.task(name=EVALUATE, ignore_result=True)
    def evaluate() -> dict:
        return jobs.evaluate_all(settings, process_session_factory(settings), utcnow())

    @app.task(name=DELIVER, ignore_result=True)
    def deliver() -> dict:
        with _client() as client:
            return jobs.deliver(settings, process_session_factory(settings), client, utcnow())

    @app.task(name=RETENTION, ignore_result=True)
    def retention() -> dict:
        return jobs.retention(settings, process_session_factory(settings), utcnow())

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
