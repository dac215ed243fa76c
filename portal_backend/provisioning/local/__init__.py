"""The local runtime: a provisioning target that runs generated RAG services as
supervised processes on the portal's machine (no cluster needed)."""
