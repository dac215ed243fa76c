"""SLA and cost tracking: usage rollups, Prometheus/OpenCost collection, SLOs, budgets, alerts.

Plain functions and classes over a SQLAlchemy session with an injectable clock; the HTTP
router and the Celery tasks are thin wrappers around them.
"""
