"""The Kubernetes emulator fixtures of tests/provisioning, for the roll test."""

from tests.provisioning.conftest import cluster, k8s_settings  # noqa: F401
