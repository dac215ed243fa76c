"""Celery workers: scaffolder steps, provisioning, collectors."""
