"""Kubernetes provisioning: render a generated service's bundle, apply it, watch it."""
