"""Process-wide runtime limits of the RAG API."""

from __future__ import annotations

from app.settings import Settings


def limit_torch_threads(settings: Settings) -> None:
    """Caps torch's intra-op threads for the in-process embedding of questions.

    A question is a dozen tokens: splitting MiniLM's small matrix products over threads
    saves little on an idle machine, and on a busy one (other pods, concurrent requests
    in the thread pool, a CPU limit below the node's core count, which torch does not
    see) the threads wait for each other and a 15 ms embedding takes hundreds. The
    setting is process-wide, so it is applied once, at startup; ingestion is a separate
    process and keeps torch's default for its batches.
    """
    if settings.embedding_provider != "local" or settings.query_embedding_threads == 0:
        return
    import torch

    torch.set_num_threads(settings.query_embedding_threads)
