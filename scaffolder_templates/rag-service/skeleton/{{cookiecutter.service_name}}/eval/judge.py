"""Hallucination judging: an LLM splits the answer into claims and marks each one
supported or not by the retrieved context. Any OpenAI-compatible endpoint can judge."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate

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


def parse_judgement(text: str) -> Judgement:
    match = re.search(r"\{.*\}", text, flags=re.DOTALL)
    if not match:
        return Judgement(0, 0, "judge reply holds no JSON object")
    try:
        claims = json.loads(match.group(0)).get("claims", [])
        unsupported = sum(1 for c in claims if not c.get("supported", False))
    except (json.JSONDecodeError, AttributeError, TypeError) as exc:
        return Judgement(0, 0, f"judge reply is not the expected JSON: {exc}")
    return Judgement(len(claims), unsupported)


def judge(model: BaseChatModel, context: str, answer: str) -> Judgement:
    reply = (JUDGE_PROMPT | model).invoke({"context": context, "answer": answer})
    return parse_judgement(str(reply.content))
