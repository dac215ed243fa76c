"""The stand-in answers qdrant-client (REST) as a Qdrant server does.

qdrant-client parses every answer with its pydantic models of Qdrant's OpenAPI, so a
wrong shape fails here; the values are checked against what was written.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.qdrant_stand_in import running_qdrant

DIM = 32
API_KEY = "stand-in-key"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_qdrant(api_key=API_KEY) as url:
        yield url


@pytest.fixture
def client(url: str) -> Iterator[QdrantClient]:
    with warnings.catch_warnings():  # "Api key is used with an insecure connection"
        warnings.simplefilter("ignore", UserWarning)
        qdrant = QdrantClient(url=url, api_key=API_KEY, check_compatibility=False)
    yield qdrant
    qdrant.close()


def _error(exc: pytest.ExceptionInfo[UnexpectedResponse]) -> str:
    """Qdrant's error text: {"status": {"error": "..."}}."""
    return json.loads(exc.value.content)["status"]["error"]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _collection(client: QdrantClient, **extra) -> str:
    name = f"c-{uuid.uuid4().hex[:8]}"
    client.create_collection(
        name, vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.COSINE), **extra
    )
    return name


def _wait_green(client: QdrantClient, name: str, seconds: float = 60) -> qm.CollectionInfo:
    deadline = time.monotonic() + seconds
    while True:
        info = client.get_collection(name)
        if info.status == qm.CollectionStatus.GREEN or time.monotonic() > deadline:
            return info
        time.sleep(0.1)


def test_collection_lifecycle_and_config(client: QdrantClient):
    name = _collection(
        client,
        hnsw_config=qm.HnswConfigDiff(m=8, ef_construct=64),
        on_disk_payload=True,
        quantization_config=qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, always_ram=True)
        ),
    )
    assert client.collection_exists(name) and not client.collection_exists("nope")
    assert name in {c.name for c in client.get_collections().collections}
    info = client.get_collection(name)
    assert info.config.params.vectors == qm.VectorParams(size=DIM, distance=qm.Distance.COSINE)
    assert (info.config.hnsw_config.m, info.config.hnsw_config.ef_construct) == (8, 64)
    assert isinstance(info.config.quantization_config, qm.ScalarQuantization)
    assert info.points_count == 0
    with pytest.raises(UnexpectedResponse) as taken:
        _collection_named(client, name)
    assert taken.value.status_code == 400 and "already exists" in _error(taken)
    assert client.delete_collection(name)
    assert not client.collection_exists(name)
    with pytest.raises(UnexpectedResponse) as missing:
        client.get_collection(name)
    assert missing.value.status_code == 404 and "doesn't exist" in _error(missing)


def _collection_named(client: QdrantClient, name: str) -> None:
    client.create_collection(
        name, vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.COSINE)
    )


def test_points_written_filtered_scrolled_and_deleted(client: QdrantClient):
    rng = np.random.default_rng(1)
    name = _collection(client)
    client.create_payload_index(name, "metadata.source", qm.PayloadSchemaType.KEYWORD)
    vectors = _unit(rng, 30)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"chunk-{i}")) for i in range(30)]
    payloads = [
        {"page_content": f"text {i}", "metadata": {"source": f"doc-{i % 3}.md", "chunk_index": i}}
        for i in range(30)
    ]
    result = client.upsert(
        name,
        points=[
            qm.PointStruct(id=ids[i], vector=vectors[i].tolist(), payload=payloads[i])
            for i in range(20)
        ],
    )
    assert result.status == qm.UpdateStatus.COMPLETED
    client.upsert(
        name, points=qm.Batch(ids=ids[20:], vectors=vectors[20:].tolist(), payloads=payloads[20:])
    )
    assert client.count(name).count == 30
    info = client.get_collection(name)
    assert info.points_count == 30 and info.payload_schema["metadata.source"].data_type == "keyword"

    # Nearest neighbour: a stored vector finds itself first, with cosine 1.
    hits = client.query_points(name, query=vectors[7].tolist(), limit=3, with_payload=True).points
    assert hits[0].id == ids[7] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].payload == payloads[7] and len(hits) == 3
    by_source = qm.Filter(
        must=[qm.FieldCondition(key="metadata.source", match=qm.MatchValue(value="doc-1.md"))]
    )
    filtered = client.query_points(
        name, query=vectors[7].tolist(), query_filter=by_source, limit=50, with_payload=False
    )
    assert {p.id for p in filtered.points} == {ids[i] for i in range(30) if i % 3 == 1}
    assert filtered.points[0].payload is None
    above = client.query_points(name, query=vectors[7].tolist(), limit=50, score_threshold=0.99)
    assert [p.id for p in above.points] == [ids[7]]

    # Scroll in pages with a payload selection, as ingestion reads what is indexed.
    seen, offset = {}, None
    while True:
        page, offset = client.scroll(
            name, limit=7, offset=offset, with_payload=["metadata.source"], with_vectors=False
        )
        seen.update({p.id: p.payload for p in page})
        if offset is None:
            break
    assert set(seen) == set(ids)
    assert seen[ids[4]] == {"metadata": {"source": "doc-1.md"}}

    client.delete(name, points_selector=qm.PointIdsList(points=ids[:2]))
    client.delete(name, points_selector=qm.FilterSelector(filter=by_source))
    remaining = {p.id for p in client.scroll(name, limit=100)[0]}
    assert remaining == {ids[i] for i in range(2, 30) if i % 3 != 1}
    assert client.count(name, count_filter=by_source).count == 0
    got = client.retrieve(name, ids=[ids[3], ids[4]], with_vectors=True)
    assert [p.id for p in got] == [ids[3]]
    assert np.allclose(got[0].vector, vectors[3], atol=1e-5)


def test_large_collection_is_indexed_with_hnsw(client: QdrantClient):
    """Past the indexing threshold the optimizer builds HNSW; search stays accurate."""
    rng = np.random.default_rng(2)
    name = _collection(client, optimizers_config=qm.OptimizersConfigDiff(indexing_threshold=64))
    vectors = _unit(rng, 3000)
    for start in range(0, 3000, 1000):
        client.upsert(
            name,
            points=qm.Batch(
                ids=list(range(start, start + 1000)),
                vectors=vectors[start : start + 1000].tolist(),
            ),
        )
    info = _wait_green(client, name)
    assert info.status == qm.CollectionStatus.GREEN
    assert info.points_count == 3000 and info.indexed_vectors_count == 3000
    queries = _unit(rng, 20)
    overlap = 0
    for q in queries:
        approx = client.query_points(name, query=q.tolist(), limit=5).points
        exact = client.query_points(
            name, query=q.tolist(), limit=5, search_params=qm.SearchParams(exact=True)
        ).points
        truth = np.argsort(-(vectors @ q))[:5]
        assert [p.id for p in exact] == truth.tolist()
        overlap += len({p.id for p in approx} & set(truth.tolist()))
    assert overlap / (5 * len(queries)) >= 0.9


def test_bad_requests_are_refused_like_qdrant(client: QdrantClient, url: str):
    name = _collection(client)
    with pytest.raises(UnexpectedResponse) as wrong_size:
        client.upsert(name, points=[qm.PointStruct(id=1, vector=[0.1] * (DIM + 1))])
    assert wrong_size.value.status_code == 400
    with pytest.raises(UnexpectedResponse) as bad_id:
        client.http.points_api.upsert_points(
            name,
            point_insert_operations=qm.PointsList(
                points=[qm.PointStruct(id="not-a-uuid", vector=[0.1] * DIM)]
            ),
        )
    assert bad_id.value.status_code == 400 and "UUID" in _error(bad_id)
    anonymous = QdrantClient(url=url, check_compatibility=False)
    with pytest.raises(UnexpectedResponse) as no_key:
        anonymous.get_collections()
    assert no_key.value.status_code == 401
    anonymous.close()


def test_sparse_vectors_with_idf_and_rrf_fusion_match_qdrant(client: QdrantClient):
    """Hybrid search as the RAG service runs it (a dense and a BM25 sparse prefetch fused
    by RRF, the dense vector returned): the same ids, order and scores as qdrant-client's
    local mode, Qdrant's reference implementation in Python."""
    rng = np.random.default_rng(5)
    vectors = _unit(rng, 40)
    config = {
        "vectors_config": qm.VectorParams(size=DIM, distance=qm.Distance.COSINE),
        "sparse_vectors_config": {"lexical": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
    }
    points = [
        qm.PointStruct(
            id=i,
            vector={
                "": vectors[i].tolist(),
                # Distinct weights: no ties, so the order is the scoring's, not a tie-break's.
                "lexical": qm.SparseVector(
                    indices=[i % 7, 100 + i % 3], values=[1.0 + i / 100, 0.5 + i / 1000]
                ),
            },
            payload={"n": i},
        )
        for i in range(40)
    ]
    reference = QdrantClient(location=":memory:")
    name = f"c-{uuid.uuid4().hex[:8]}"
    answers = []
    for qdrant in (client, reference):
        qdrant.create_collection(name, **config)
        qdrant.upsert(name, points=points)
        info = qdrant.get_collection(name)
        assert info.config.params.sparse_vectors["lexical"].modifier == qm.Modifier.IDF
        answers.append(
            qdrant.query_points(
                name,
                prefetch=[
                    qm.Prefetch(query=vectors[3].tolist(), limit=10),
                    qm.Prefetch(
                        query=qm.SparseVector(indices=[5, 101], values=[1.0, 1.0]),
                        using="lexical",
                        limit=10,
                    ),
                ],
                query=qm.FusionQuery(fusion=qm.Fusion.RRF),
                limit=20,  # every candidate: RRF ties may fall either way at a cut
                with_payload=True,
                with_vectors=[""],
            ).points
        )
    reference.close()
    served, expected = answers
    assert {p.id: p.score for p in served} == pytest.approx({p.id: p.score for p in expected})
    assert [p.score for p in served] == sorted((p.score for p in served), reverse=True)
    returned = served[0].vector
    dense = returned[""] if isinstance(returned, dict) else returned
    assert dense == pytest.approx(vectors[served[0].id].tolist(), abs=1e-6)
    lexical_only = client.query_points(
        name, query=qm.SparseVector(indices=[5], values=[1.0]), using="lexical", limit=10
    ).points
    assert {p.id for p in lexical_only} == {i for i in range(40) if i % 7 == 5}
