"""Submit-time refusal through the scaffolder engine with the shipped rag-service template:
the form's impossible combination never becomes a task, and the message says what fits.
(The database is there for the other steps' prechecks, e.g. catalog:register.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import InputError
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.engine import precheck
from portal_backend.scaffolder.templates import Template, load_template_file, with_defaults
from portal_backend.settings import Settings

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "scaffolder_templates" / "rag-service"
BASE = {"name": "hr-assistant", "owner": "group:default/people-team"}


@pytest.fixture
def template() -> Template:
    load_actions()
    entity = load_template_file(TEMPLATE_DIR / "template.yaml")
    return Template("template:default/rag-service", entity, TEMPLATE_DIR, trusted=True)


def test_defaults_pass_the_sizing_precheck(template: Template, settings: Settings) -> None:
    precheck(template, with_defaults(template, BASE), settings, "user:default/a")


def test_70b_bf16_on_l4_with_many_long_requests_is_refused(
    template: Template, settings: Settings
) -> None:
    values = with_defaults(
        template,
        {
            **BASE,
            "model": "llama-3-70b-instruct",
            "quantization": "bf16",
            "gpu_class": "L4",
            "concurrency": 8,
        },
    )
    with pytest.raises(InputError) as info:
        precheck(template, values, settings, "user:default/a")
    (detail,) = [d for d in info.value.details if d.path == "parameters.gpu_class"]
    # 141.10 GB of weights + 8 x 2.68 GB of KV cache = 162.57 GB > 8 x 20.10 GB of L4.
    assert "needed 162.57 GB" in detail.message
    assert "does not fit on 8 x L4" in detail.message
    assert "needs >= 2 x H200 or 4 x A100-80GB or 4 x H100 or 8 x A100-40GB" in detail.message
    assert "on L4 try fp8 with 8 GPUs or awq with 4 GPUs" in detail.message


def test_llama3_context_beyond_8192_is_refused_on_its_field(
    template: Template, settings: Settings
) -> None:
    values = with_defaults(template, {**BASE, "max_model_len": 32768})
    with pytest.raises(InputError) as info:
        precheck(template, values, settings, "user:default/a")
    assert [d.path for d in info.value.details] == ["parameters.max_model_len"]


def test_70b_bf16_on_one_l4_is_refused_with_what_would_fit(
    template: Template, settings: Settings
) -> None:
    """The issue's example: the form caps GPUs per replica at one, and 70B bf16 cannot fit."""
    values = with_defaults(
        template,
        {
            **BASE,
            "model": "llama-3-70b-instruct",
            "quantization": "bf16",
            "gpu_class": "L4",
            "max_gpus": 1,
        },
    )
    with pytest.raises(InputError) as info:
        precheck(template, values, settings, "user:default/a")
    messages = {d.path: d.message for d in info.value.details}
    assert "does not fit on 1 x L4" in messages["parameters.gpu_class"], messages
    assert "needs >=" in messages["parameters.gpu_class"]
