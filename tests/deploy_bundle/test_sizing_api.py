"""GET /api/rag/sizing over real HTTP: read scope, arithmetic, 422 naming the field."""

from __future__ import annotations


def test_sizing_answers_with_the_arithmetic(live_server, make_token) -> None:  # type: ignore[no-untyped-def]
    with live_server.client(token=make_token("read")) as client:
        response = client.get(
            "/api/rag/sizing",
            params={"model": "llama-3-70b-instruct", "quantization": "bf16", "gpu": "H100"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("weights_gb", "kv_cache_gb", "gpus", "tensor_parallel_size")} == {
        "weights_gb": 141.1,
        "kv_cache_gb": 2.68,
        "gpus": 4,
        "tensor_parallel_size": 4,
    }
    assert body["fits"] is True
    assert "327680 B/token" in body["reason"]


def test_sizing_refusal_is_a_200_with_fits_false(live_server, make_token) -> None:  # type: ignore[no-untyped-def]
    with live_server.client(token=make_token("read")) as client:
        response = client.get(
            "/api/rag/sizing",
            params={
                "model": "llama-3-70b-instruct",
                "quantization": "bf16",
                "gpu": "L4",
                "max_gpus": 1,
            },
        )
    body = response.json()
    assert response.status_code == 200 and body["fits"] is False
    assert "awq with 2 GPUs" in body["reason"]


def test_unknown_gpu_is_a_422_naming_the_field(live_server, make_token) -> None:  # type: ignore[no-untyped-def]
    with live_server.client(token=make_token("read")) as client:
        response = client.get(
            "/api/rag/sizing",
            params={"model": "llama-3-8b-instruct", "quantization": "bf16", "gpu": "T4"},
        )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"] == [
        {
            "path": "gpu",
            "message": "unknown GPU class 'T4'; allowed: "
            "L4, A10G, A100-40GB, A100-80GB, H100, H200",
        }
    ]


def test_unknown_model_and_quantization_are_422(live_server, make_token) -> None:  # type: ignore[no-untyped-def]
    with live_server.client(token=make_token("read")) as client:
        response = client.get(
            "/api/rag/sizing",
            params={"model": "mistral-7b", "quantization": "int2", "gpu": "L4"},
        )
    assert response.status_code == 422
    paths = [d["path"] for d in response.json()["error"]["details"]]
    assert paths == ["model", "quantization"]


def test_non_numeric_context_is_a_422(live_server, make_token) -> None:  # type: ignore[no-untyped-def]
    with live_server.client(token=make_token("read")) as client:
        response = client.get(
            "/api/rag/sizing",
            params={
                "model": "llama-3-8b-instruct",
                "quantization": "bf16",
                "gpu": "L4",
                "max_context": "lots",
            },
        )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["path"] == "query.max_context"


def test_sizing_needs_a_token(anon_client) -> None:  # type: ignore[no-untyped-def]
    response = anon_client.get(
        "/api/rag/sizing",
        params={"model": "llama-3-8b-instruct", "quantization": "bf16", "gpu": "L4"},
    )
    assert response.status_code == 401


def test_lora_adapters_are_sized_and_a_bad_rank_is_a_422(live_server, make_token) -> None:  # type: ignore[no-untyped-def]
    base = {"model": "llama-3-8b-instruct", "quantization": "awq", "gpu": "L4"}
    with live_server.client(token=make_token("read")) as client:
        sized = client.get("/api/rag/sizing", params={**base, "lora_rank": [16, 64]})
        bad = client.get("/api/rag/sizing", params={**base, "lora_rank": [12]})
    body = sized.json()
    assert (body["max_loras"], body["max_lora_rank"], body["lora_gb"]) == (2, 64, 0.74)
    assert "LoRA 2 slots x rank 64 = 0.74 GB on each GPU" in body["reason"]
    assert body["checkpoint"] == "casperhansen/llama-3-8b-instruct-awq"
    assert body["vllm_quantization"] == "awq_marlin"
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["path"] == "lora_adapters.0.rank"
