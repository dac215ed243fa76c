"""Request models of the RAG services API, shared by its HTTP routes and the MCP
server's tools."""

from __future__ import annotations

from pydantic import BaseModel, Field

from portal_backend.provisioning.plan import SERVICE_NAME
from portal_backend.rag.ask import MAX_QUESTION_CHARS


class AskBody(BaseModel):
    """``POST /api/rag/services/{namespace}/{name}/ask``."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    adapter: str | None = Field(
        default=None, max_length=100, description="a LoRA adapter the service serves"
    )


class ServiceName(BaseModel):
    """A RAG service, as ``{namespace}/{name}`` of ``/api/rag/services/...``."""

    namespace: str = Field(default="default", min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=63, pattern=SERVICE_NAME.pattern)
