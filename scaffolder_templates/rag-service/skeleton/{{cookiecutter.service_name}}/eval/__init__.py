"""Offline evaluation: retrieval hit@k and MRR, and the hallucination rate."""
