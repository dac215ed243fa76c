"""Chat model: the vLLM endpoint, falling back to the CPU (llama.cpp) endpoint.

A LoRA adapter is another model name on the same vLLM endpoint (``--lora-modules
name=source``); it has no fallback, because the CPU server does not have the adapter
and an answer without it would be a different model's answer under the adapter's name.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from app.settings import Settings


def _chat_openai(base_url: str, model: str, api_key: str, settings: Settings, retries: int):
    return ChatOpenAI(
        base_url=base_url,
        model=model,
        api_key=api_key,
        timeout=settings.llm_timeout_s,
        max_retries=retries,
        # The answer-length cap goes out as `max_tokens`, which vLLM and llama.cpp's
        # server both honour. ChatOpenAI's own max_tokens is sent as
        # `max_completion_tokens`, which llama.cpp's server ignores: it then writes until
        # its context is full, minutes on a CPU.
        extra_body={"max_tokens": settings.max_tokens},
        temperature=settings.temperature,
        # Ask OpenAI-compatible servers (vLLM, llama.cpp) for token usage when streaming.
        stream_usage=True,
    )


def make_llm(settings: Settings, adapter: str | None = None) -> BaseChatModel | Runnable:
    """The chat model for the base model, or for one of ``settings.lora_adapters``."""
    if adapter is not None:
        return _chat_openai(
            settings.llm_base_url, adapter, settings.llm_api_key, settings, retries=2
        )
    has_fallback = bool(settings.fallback_llm_base_url)
    # With a fallback configured, fail over at once instead of retrying a sick GPU pod.
    primary = _chat_openai(
        settings.llm_base_url,
        settings.llm_model,
        settings.llm_api_key,
        settings,
        retries=0 if has_fallback else 2,
    )
    if not has_fallback:
        return primary
    fallback = _chat_openai(
        settings.fallback_llm_base_url,
        settings.fallback_llm_model,
        settings.fallback_llm_api_key,
        settings,
        retries=1,
    )
    return primary.with_fallbacks([fallback])


def probe_urls(settings: Settings) -> list[str]:
    """The endpoints /readyz checks (GET <base>/models answers on vLLM and llama.cpp)."""
    urls = [settings.llm_base_url]
    if settings.fallback_llm_base_url:
        urls.append(settings.fallback_llm_base_url)
    return [u.rstrip("/") + "/models" for u in urls]
