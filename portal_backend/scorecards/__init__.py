"""RAG readiness scorecards: checks defined in YAML (a fact, an operator, a threshold, a
level), computed on a schedule from the portal's own data (evaluations, SLOs, spend,
template versions, the catalog, alerts), kept with history, and the level each service
reaches written to its entity (``status.scorecard``) so the catalog can filter on it.

- ``definitions.py``: the YAML format, its validation, where the active set comes from
- ``facts.py``: what a check can measure about a service
- ``evaluate.py``: one service against the checks (state and why per check, its level)
- ``service.py``: runs over every service, history, the team and fleet views
- ``tables.py``: the admin-set definitions and the snapshots
"""
