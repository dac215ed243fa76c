"""A Kubernetes API emulator on 127.0.0.1 for provisioning tests and the benchmark."""

from tests.k8s_emulator.server import EmulatedCluster, Fault, running_cluster

__all__ = ["EmulatedCluster", "Fault", "running_cluster"]
