"""The rag:sizing scaffolder action: precheck at submit time, output for the skeleton."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal_backend.scaffolder.actions.base import ActionContext, ActionError, get_action
from portal_backend.scaffolder.actions.rag_sizing import RagSizingAction
from portal_backend.settings import Settings


@pytest.fixture
def action() -> RagSizingAction:
    found = get_action("rag:sizing")
    assert isinstance(found, RagSizingAction)
    return found


def _ctx(tmp_path: Path, log: list[str]) -> ActionContext:
    return ActionContext(
        task_id="t1",
        step_id="sizing",
        workspace=tmp_path,
        settings=Settings(data_dir=tmp_path),
        session_factory=None,  # type: ignore[arg-type]  # sizing touches no database
        user_ref="user:default/tester",
        log=log.append,
    )


def test_precheck_refuses_70b_bf16_on_one_l4_saying_what_fits(
    action: RagSizingAction, tmp_path: Path
) -> None:
    errors = action.precheck(
        {
            "model": "llama-3-70b-instruct",
            "quantization": "bf16",
            "gpu": "L4",
            "max_context": "8192",
            "concurrency": "1",
            "max_gpus": "1",
        },
        Settings(data_dir=tmp_path),
    )
    assert len(errors) == 1
    assert errors[0].path == "parameters.gpu_class"
    assert "needs >= 2 x H200 or 4 x A100-80GB or 4 x H100" in errors[0].message
    assert "on L4 try fp8 with 4 GPUs or awq with 2 GPUs" in errors[0].message


def test_precheck_accepts_what_fits(action: RagSizingAction, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    ok = {"model": "llama-3-8b-instruct", "quantization": "bf16", "gpu": "L4"}
    assert action.precheck(ok, settings) == []


def test_precheck_points_at_the_form_field(action: RagSizingAction, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    errors = action.precheck(
        {"model": "llama-3-8b-instruct", "quantization": "q2", "gpu": "L4", "max_context": "x"},
        settings,
    )
    assert [e.path for e in errors] == ["parameters.max_model_len"]
    errors = action.precheck(
        {"model": "llama-3-8b-instruct", "quantization": "q2", "gpu": "L4"}, settings
    )
    assert [e.path for e in errors] == ["parameters.quantization"]
    assert "bf16, fp8, awq, gptq" in errors[0].message


def test_run_outputs_what_the_skeleton_needs(action: RagSizingAction, tmp_path: Path) -> None:
    log: list[str] = []
    output = action.run(
        _ctx(tmp_path, log),
        {"model": "llama-3-70b-instruct", "quantization": "bf16", "gpu": "H100"},
    )
    assert output == {
        "weights_gb": 141.1,
        "kv_cache_gb": 2.68,
        "gpus": 4,
        "tensor_parallel_size": 4,
        "fits": True,
        "reason": output["reason"],
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.9,
        "kv_cache_dtype": "auto",
        "checkpoint": "meta-llama/Meta-Llama-3-70B-Instruct",
        "vllm_quantization": "",
        "max_loras": 0,
        "max_lora_rank": 16,
        "lora_gb": 0.0,
        "gpu_product_label": "NVIDIA-H100-80GB-HBM3",
    }
    assert "fits on 4 x H100" in output["reason"]
    assert log == [
        f"GPU sizing: {output['reason']}",
        "vLLM serves meta-llama/Meta-Llama-3-70B-Instruct",
    ]


def test_run_fails_the_step_when_nothing_fits(action: RagSizingAction, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="does not fit on 1 x L4"):
        action.run(
            _ctx(tmp_path, []),
            {"model": "llama-3-70b-instruct", "quantization": "bf16", "gpu": "L4", "max_gpus": 1},
        )


def test_custom_model_is_sized_from_its_architecture(
    action: RagSizingAction, tmp_path: Path
) -> None:
    output = action.run(
        _ctx(tmp_path, []),
        {
            "model": "acme/mistral-7b-ft",
            "quantization": "bf16",
            "gpu": "L4",
            "model_spec": {
                "parameters_b": 7.24,
                "layers": 32,
                "kv_heads": 8,
                "head_dim": 128,
                "attention_heads": 32,
                "max_context": 32768,
            },
            "max_context": 4096,
        },
    )
    # 7.24 x 2 = 14.48 GB + 131072 x 4096 = 0.54 GB on one L4.
    assert (output["weights_gb"], output["kv_cache_gb"], output["gpus"]) == (14.48, 0.54, 1)


def test_no_custom_model_renders_as_null(action: RagSizingAction, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    for empty in (None, "", "None"):
        base = {"model": "llama-3-8b-instruct", "quantization": "bf16", "gpu": "L4"}
        assert action.precheck({**base, "model_spec": empty}, settings) == []
    errors = action.precheck({**base, "model_spec": "7b"}, settings)
    assert [e.path for e in errors] == ["parameters.custom_model_spec"]


def test_llama3_context_window_is_enforced(action: RagSizingAction, tmp_path: Path) -> None:
    errors = action.precheck(
        {"model": "llama-3-8b-instruct", "quantization": "bf16", "gpu": "L4", "max_context": 16384},
        Settings(data_dir=tmp_path),
    )
    assert [e.path for e in errors] == ["parameters.max_model_len"]
    assert "256 to 8192" in errors[0].message
