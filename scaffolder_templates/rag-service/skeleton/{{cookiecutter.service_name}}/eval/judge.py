"""Hallucination judging: an LLM splits the answer into claims and marks each one
supported or not by the retrieved context. Any OpenAI-compatible endpoint can judge.

The judge's reply is constrained to JUDGE_SCHEMA where the server can (structured
output), so even a small local model answers with parseable JSON:
``json_schema`` is OpenAI's format (OpenAI, vLLM, llama.cpp's llama-server),
``json_object`` with a schema is llama-cpp-python's server (grammar-constrained),
``none`` relies on the prompt alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from app.settings import Settings

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "claims": {
            "type": "array",
            # Bounded, so a model that repeats itself still ends its JSON in time.
            "maxItems": 8,
            "items": {
                "type": "object",
                "properties": {
                    "claim": {"type": "string", "maxLength": 300},
                    "supported": {"type": "boolean"},
                },
                "required": ["claim", "supported"],
            },
        }
    },
    "required": ["claims"],
}


def response_format(kind: str) -> dict[str, Any] | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "judgement", "schema": JUDGE_SCHEMA}}
    if kind == "json_object":
        return {"type": "json_object", "schema": JUDGE_SCHEMA}
    return None


def make_judge(settings: Settings) -> Runnable:
    """The judge model from settings (the serving LLM when JUDGE_* are empty)."""
    model = ChatOpenAI(
        base_url=settings.judge_base_url or settings.llm_base_url,
        model=settings.judge_model or settings.llm_model,
        api_key=settings.judge_api_key,
        temperature=0,
        max_tokens=settings.judge_max_tokens,
        timeout=settings.llm_timeout_s,
    )
    fmt = response_format(settings.judge_response_format)
    return model.bind(response_format=fmt) if fmt else model


{% raw -%}
JUDGE_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You check answers against context. Split the ANSWER into atomic factual claims "
            "and decide for each whether the CONTEXT supports it. Reply with JSON only: "
            '{{"claims": [{{"claim": "...", "supported": true}}]}}. A refusal such as '
            '"I don\'t know" has no claims.',
        ),
        ("human", "CONTEXT:\n{context}\n\nANSWER:\n{answer}"),
    ]
)
{%- endraw %}


@dataclass
class Judgement:
    claims: int
    unsupported: int
    parse_error: str | None = None
    # What the judge endpoint reported for this call (its usage and model name).
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""


def parse_judgement(text: str) -> Judgement:
    match = re.search(r"\{.*\}", text, flags=re.DOTALL)
    if not match:
        return Judgement(0, 0, "judge reply holds no JSON object")
    try:
        # strict=False: small models copy line breaks from the context into a claim; the
        # JSON is still what the schema asked for.
        claims = json.loads(match.group(0), strict=False).get("claims", [])
        unsupported = sum(1 for c in claims if not c.get("supported", False))
    except (json.JSONDecodeError, AttributeError, TypeError) as exc:
        return Judgement(0, 0, f"judge reply is not the expected JSON: {exc}")
    return Judgement(len(claims), unsupported)


def judge(model: Runnable, context: str, answer: str) -> Judgement:
    reply = (JUDGE_PROMPT | model).invoke({"context": context, "answer": answer})
    verdict = parse_judgement(str(reply.content))
    usage = getattr(reply, "usage_metadata", None) or {}
    verdict.prompt_tokens = int(usage.get("input_tokens", 0))
    verdict.completion_tokens = int(usage.get("output_tokens", 0))
    verdict.model = str((getattr(reply, "response_metadata", None) or {}).get("model_name", ""))
    return verdict
