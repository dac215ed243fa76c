"""rag-portal: a Backstage-style portal backend for private RAG assistants."""

__version__ = "0.1.0"
