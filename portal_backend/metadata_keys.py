"""The portal's own annotation and label keys (``rag-portal.io/...``): the one place the
portal's code spells them.

The rag-service template writes them (its catalog-info.yaml and Kubernetes manifests);
the SLA/cost domain, provisioning, the scaffolder and the pages read them. Import the
module (``from portal_backend import metadata_keys``) rather than the strings.
"""

from __future__ import annotations

PREFIX = "rag-portal.io/"

# On the service's Component (catalog-info.yaml) and, as a label, on every Kubernetes
# object of the service: the name its deployment, processes and cost are kept under.
SERVICE = PREFIX + "service"

# Component annotations: what the service runs and where it answers.
MODEL = PREFIX + "model"
GPU_CLASS = PREFIX + "gpu-class"  # also on the vLLM workload (sla.resources)
GPUS = PREFIX + "gpus"
REPLICAS = PREFIX + "replicas"
ENDPOINT = PREFIX + "endpoint"
NAMESPACE = PREFIX + "namespace"
CLUSTER = PREFIX + "cluster"

# Component annotations: targets and budget the SLA/cost domain holds the service to.
SLO_P95_LATENCY_MS = PREFIX + "slo-p95-latency-ms"
SLO_SUCCESS_RATE = PREFIX + "slo-success-rate"
MONTHLY_BUDGET_USD = PREFIX + "monthly-budget-usd"

# Template annotation: the registry the generated CI pushes images to.
IMAGE_REGISTRY = PREFIX + "image-registry"

# Component annotations of a generated repository: the template it came from (Backstage's
# own key, spelled here too) and the template version its default branch is on (from its
# .rag-portal/answers.yml).
SOURCE_TEMPLATE = "backstage.io/source-template"
TEMPLATE_VERSION = PREFIX + "template-version"

# Workload annotation: how long provisioning waits for it to become ready.
READY_TIMEOUT_SECONDS = PREFIX + "ready-timeout-seconds"

# ``spec.type`` of a RAG service's Component (not a key, but spelled by the same readers).
RAG_SERVICE_TYPE = "rag-service"
