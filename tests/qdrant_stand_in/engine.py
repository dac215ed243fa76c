"""Collections of the stand-in: Qdrant's own engine (qdrant-edge) behind Qdrant's REST models.

Requests arrive as qdrant-client's pydantic models (the same models the client builds
them from, so the wire format is Qdrant's OpenAPI) and are translated into qdrant-edge
calls: one `EdgeShard` per collection, with Qdrant's segments, payload indexes and HNSW.

What the engine does not reproduce: Qdrant runs its optimizer (segment merging, HNSW
building) beside the request handlers. qdrant-edge's `optimize()` holds the Python GIL
until it returns, so here it runs when a collection's writes pause (OPTIMIZE_AFTER_IDLE_S)
and requests wait while a large index is built; the collection status is "yellow" until
then, as on a server that is still indexing.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client.http import models as qm

# Qdrant's defaults where a create request leaves a value out (Qdrant 1.13 config).
DEFAULT_HNSW = qm.HnswConfig(m=16, ef_construct=100, full_scan_threshold=10_000)
OPTIMIZE_AFTER_IDLE_S = 1.0

DISTANCES = {
    qm.Distance.COSINE: qe.Distance.Cosine,
    qm.Distance.DOT: qe.Distance.Dot,
    qm.Distance.EUCLID: qe.Distance.Euclid,
    qm.Distance.MANHATTAN: qe.Distance.Manhattan,
}
SCHEMA_TYPES = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
    "geo": qe.PayloadSchemaType.Geo,
    "text": qe.PayloadSchemaType.Text,
    "datetime": qe.PayloadSchemaType.Datetime,
    "uuid": qe.PayloadSchemaType.Uuid,
}
SCHEMA_NAMES = {v: k for k, v in SCHEMA_TYPES.items()}


class NotFound(Exception):
    """404 in Qdrant's words."""


class BadRequest(Exception):
    """400: a request Qdrant would refuse, or a feature this stand-in does not have."""


@contextmanager
def engine_errors() -> Iterator[None]:
    """qdrant-edge raises plain `Exception`s for bad input (wrong vector size, ...);
    Qdrant answers those with 400 "Wrong input"."""
    try:
        yield
    except (BadRequest, NotFound, TypeError):
        raise
    except Exception as exc:  # noqa: BLE001 - the engine's only exception type
        raise BadRequest(f"Wrong input: {exc}") from exc


def _unsupported(what: str) -> BadRequest:
    return BadRequest(f"{what} is not supported by the Qdrant stand-in (tests/qdrant_stand_in)")


# ---------------------------------------------------------------- request translation


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def point_id(value: qm.ExtendedPointId) -> int | uuid.UUID:
    """Qdrant ids are unsigned integers or UUIDs (any UUID spelling, returned canonical)."""
    if isinstance(value, int):
        if value < 0:
            raise BadRequest(f"point id {value} is negative: use an unsigned integer or a UUID")
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadRequest(f"point id {value!r} is neither an unsigned integer nor a UUID") from None


def wire_id(value: Any) -> int | str:
    return value if isinstance(value, int) else str(value)


def to_filter(spec: qm.Filter | None) -> qe.Filter | None:
    if spec is None:
        return None
    min_should = None
    if spec.min_should is not None:
        min_should = qe.MinShould(
            [to_condition(c) for c in spec.min_should.conditions], spec.min_should.min_count
        )
    return qe.Filter(
        must=[to_condition(c) for c in _as_list(spec.must)] or None,
        should=[to_condition(c) for c in _as_list(spec.should)] or None,
        must_not=[to_condition(c) for c in _as_list(spec.must_not)] or None,
        min_should=min_should,
    )


def to_condition(spec: Any) -> Any:
    if isinstance(spec, qm.Filter):
        return to_filter(spec)
    if isinstance(spec, qm.FieldCondition):
        if spec.geo_bounding_box or spec.geo_radius or spec.geo_polygon or spec.values_count:
            raise _unsupported(f"geo/values_count condition on {spec.key!r}")
        if spec.range is not None:
            if not isinstance(spec.range, qm.Range):
                raise _unsupported("a datetime range")
            r = spec.range
            return qe.FieldCondition(
                spec.key, range=qe.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)
            )
        if spec.match is not None:
            return qe.FieldCondition(spec.key, match=to_match(spec.match))
        if spec.is_empty is not None:
            return qe.FieldCondition(spec.key, is_empty=spec.is_empty)
        if spec.is_null is not None:
            return qe.FieldCondition(spec.key, is_null=spec.is_null)
        raise BadRequest(f"condition on {spec.key!r} has no match, range or check")
    if isinstance(spec, qm.HasIdCondition):
        return qe.HasIdCondition({point_id(i) for i in spec.has_id})
    if isinstance(spec, qm.IsEmptyCondition):
        return qe.IsEmptyCondition(spec.is_empty.key)
    if isinstance(spec, qm.IsNullCondition):
        return qe.IsNullCondition(spec.is_null.key)
    if isinstance(spec, qm.HasVectorCondition):
        return qe.HasVectorCondition(spec.has_vector)
    if isinstance(spec, qm.NestedCondition):
        return qe.NestedCondition(spec.nested.key, to_filter(spec.nested.filter))
    raise _unsupported(type(spec).__name__)


def to_match(spec: Any) -> Any:
    if isinstance(spec, qm.MatchValue):
        return qe.MatchValue(spec.value)
    if isinstance(spec, qm.MatchAny):
        return qe.MatchAny(list(spec.any))
    if isinstance(spec, qm.MatchExcept):
        return qe.MatchExcept(list(spec.except_))
    if isinstance(spec, qm.MatchText):
        return qe.MatchText(spec.text)
    if isinstance(spec, qm.MatchPhrase):
        return qe.MatchPhrase(spec.phrase)
    raise _unsupported(type(spec).__name__)


def to_with_payload(spec: qm.WithPayloadInterface | None, default: bool) -> Any:
    if spec is None:
        return default
    if isinstance(spec, bool | list):
        return spec
    if isinstance(spec, qm.PayloadSelectorInclude):
        return qe.PayloadSelector.Include(spec.include)
    if isinstance(spec, qm.PayloadSelectorExclude):
        return qe.PayloadSelector.Exclude(spec.exclude)
    raise _unsupported(f"with_payload {spec!r}")


def to_with_vector(spec: qm.WithVector | None) -> bool | list[str]:
    return False if spec is None else spec


def to_search_params(spec: qm.SearchParams | None) -> qe.SearchParams | None:
    if spec is None:
        return None
    quantization = None
    if spec.quantization is not None:
        q = spec.quantization
        quantization = qe.QuantizationSearchParams(
            ignore=bool(q.ignore), rescore=q.rescore, oversampling=q.oversampling
        )
    return qe.SearchParams(
        hnsw_ef=spec.hnsw_ef,
        exact=bool(spec.exact),
        quantization=quantization,
        indexed_only=bool(spec.indexed_only),
    )


def _sparse(value: Any) -> qe.SparseVector | None:
    if isinstance(value, qm.SparseVector):
        return qe.SparseVector(list(value.indices), [float(v) for v in value.values])
    if isinstance(value, dict) and set(value) == {"indices", "values"}:
        return qe.SparseVector(list(value["indices"]), [float(v) for v in value["values"]])
    return None


def _named(value: Any, what: str) -> Any:
    """One named vector: dense (a list of numbers) or sparse (indices and values)."""
    sparse = _sparse(value)
    if sparse is not None:
        return sparse
    if isinstance(value, list) and all(isinstance(x, float | int) for x in value):
        return [float(x) for x in value]
    raise _unsupported(f"{what} of this form (multi-vector or inference input)")


def to_vector(value: Any, what: str) -> Any:
    """A dense vector, or {name: dense or sparse vector} for named vectors (the
    collection's unnamed dense vector is named "" there)."""
    if isinstance(value, list) and all(isinstance(x, float | int) for x in value):
        return [float(x) for x in value]
    if isinstance(value, dict) and _sparse(value) is None:
        return {name: _named(v, what) for name, v in value.items()}
    raise _unsupported(f"{what} of this form (sparse without a name, or inference input)")


def nearest_query(query: Any, using: str | None) -> qe.Query:
    vector = query.nearest if isinstance(query, qm.NearestQuery) else query
    if isinstance(query, qm.NearestQuery) and query.mmr is not None:
        raise _unsupported("MMR")
    sparse = _sparse(vector)
    if sparse is not None:
        return qe.Query.Nearest(sparse, using=using or None)
    if not isinstance(vector, list):
        raise _unsupported(f"query {type(query).__name__}")
    return qe.Query.Nearest(to_vector(vector, "query"), using=using or None)


# Qdrant's RRF constant (reciprocal rank fusion: score = sum of 1 / (k + rank)).
RRF_K = 2


def scoring_query(query: Any, using: str | None) -> Any:
    """A nearest-neighbour query, or the fusion of the prefetches' results."""
    if isinstance(query, qm.FusionQuery):
        if query.fusion == qm.Fusion.RRF:
            return qe.Fusion.Rrf(k=RRF_K)
        return qe.Fusion.Dbsf()
    return nearest_query(query, using)


def to_prefetches(spec: Any) -> list[qe.Prefetch] | None:
    if spec is None:
        return None
    prefetches = []
    for item in _as_list(spec):
        if item.query is None or item.lookup_from is not None:
            raise _unsupported("a prefetch without a query, or with lookup_from")
        prefetches.append(
            qe.Prefetch(
                limit=item.limit if item.limit is not None else 10,
                query=scoring_query(item.query, item.using),
                prefetches=to_prefetches(item.prefetch),
                params=to_search_params(item.params),
                filter=to_filter(item.filter),
                score_threshold=item.score_threshold,
            )
        )
    return prefetches


def to_quantization(spec: qm.QuantizationConfig | None) -> Any:
    if spec is None:
        return None
    if isinstance(spec, qm.ScalarQuantization):
        return qe.ScalarQuantizationConfig(
            qe.ScalarType.Int8, quantile=spec.scalar.quantile, always_ram=spec.scalar.always_ram
        )
    raise _unsupported(f"{type(spec).__name__} quantization")


def merged_hnsw(base: qm.HnswConfig, diff: qm.HnswConfigDiff | None) -> qm.HnswConfig:
    if diff is None:
        return base
    return base.model_copy(update=diff.model_dump(exclude_none=True))


def to_hnsw(config: qm.HnswConfig) -> qe.HnswIndexConfig:
    return qe.HnswIndexConfig(
        m=config.m,
        ef_construct=config.ef_construct,
        full_scan_threshold=config.full_scan_threshold,
        max_indexing_threads=config.max_indexing_threads or 0,
        on_disk=config.on_disk,
    )


# ---------------------------------------------------------------- collections


@dataclass
class Collection:
    name: str
    request: qm.CreateCollection
    hnsw: qm.HnswConfig
    shard: qe.EdgeShard
    folder: Path
    # Writes since the last optimizer run, and when the last one happened.
    pending_writes: int = 0
    last_write: float = 0.0
    operation_id: int = 0

    def written(self) -> int:
        self.pending_writes += 1
        self.last_write = time.monotonic()
        self.operation_id += 1
        return self.operation_id

    def info(self) -> dict[str, Any]:
        shard_info = self.shard.info()
        schema = {
            key: {
                "data_type": SCHEMA_NAMES.get(index.data_type, "keyword"),
                "points": index.points,
            }
            for key, index in shard_info.payload_schema.items()
        }
        req = self.request
        vectors = (
            req.vectors.model_dump(mode="json", exclude_none=True)
            if isinstance(req.vectors, qm.VectorParams)
            else {
                k: v.model_dump(mode="json", exclude_none=True)
                for k, v in (req.vectors or {}).items()
            }
        )
        info = qm.CollectionInfo(
            status=qm.CollectionStatus.YELLOW if self.pending_writes else qm.CollectionStatus.GREEN,
            optimizer_status=qm.OptimizersStatusOneOf.OK,
            indexed_vectors_count=shard_info.indexed_vectors_count,
            points_count=shard_info.points_count,
            segments_count=shard_info.segments_count,
            config=qm.CollectionConfig(
                params=qm.CollectionParams(
                    vectors=vectors,
                    sparse_vectors=req.sparse_vectors,
                    shard_number=req.shard_number or 1,
                    replication_factor=req.replication_factor or 1,
                    write_consistency_factor=req.write_consistency_factor or 1,
                    on_disk_payload=req.on_disk_payload
                    if req.on_disk_payload is not None
                    else True,
                ),
                hnsw_config=self.hnsw,
                optimizer_config=qm.OptimizersConfig(
                    deleted_threshold=0.2,
                    vacuum_min_vector_number=1000,
                    default_segment_number=0,
                    flush_interval_sec=5,
                    **(
                        req.optimizers_config.model_dump(exclude_none=True)
                        if req.optimizers_config
                        else {}
                    ),
                ),
                wal_config=qm.WalConfig(wal_capacity_mb=32, wal_segments_ahead=0),
                quantization_config=req.quantization_config,
            ),
            payload_schema=schema,
        )
        return info.model_dump(mode="json", exclude_none=True)


class Store:
    """All collections under one storage folder, and the optimizer thread."""

    def __init__(self, storage: Path) -> None:
        self.storage = storage
        self.collections: dict[str, Collection] = {}
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._optimizer = threading.Thread(target=self._optimize_loop, daemon=True)
        self._optimizer.start()

    def close(self) -> None:
        self._stop.set()
        self._optimizer.join(timeout=5)
        with self.lock:
            for collection in self.collections.values():
                collection.shard.close()
            self.collections.clear()

    def get(self, name: str) -> Collection:
        try:
            return self.collections[name]
        except KeyError:
            raise NotFound(f"Collection `{name}` doesn't exist!") from None

    def create(self, name: str, request: qm.CreateCollection) -> None:
        with self.lock:
            if name in self.collections:
                raise BadRequest(f"Wrong input: Collection `{name}` already exists!")
            sparse = {
                name: qe.EdgeSparseVectorParams(
                    modifier=qe.Modifier.Idf if params.modifier == qm.Modifier.IDF else None
                )
                for name, params in (request.sparse_vectors or {}).items()
            }
            hnsw = merged_hnsw(DEFAULT_HNSW, request.hnsw_config)
            vectors = request.vectors
            if isinstance(vectors, qm.VectorParams):
                edge_vectors: Any = self._vector_params(vectors)
            elif isinstance(vectors, dict) and vectors:
                edge_vectors = {k: self._vector_params(v) for k, v in vectors.items()}
            else:
                raise BadRequest("Wrong input: a collection needs `vectors` (size and distance)")
            optimizers = None
            if request.optimizers_config is not None:
                o = request.optimizers_config
                optimizers = qe.EdgeOptimizersConfig(
                    deleted_threshold=o.deleted_threshold,
                    vacuum_min_vector_number=o.vacuum_min_vector_number,
                    default_segment_number=o.default_segment_number,
                    max_segment_size=o.max_segment_size,
                    indexing_threshold=o.indexing_threshold,
                )
            config = qe.EdgeConfig(
                vectors=edge_vectors,
                sparse_vectors=sparse or None,
                on_disk_payload=request.on_disk_payload,
                hnsw_config=to_hnsw(hnsw),
                quantization_config=to_quantization(request.quantization_config),
                optimizers=optimizers,
            )
            folder = self.storage / f"{name}-{uuid.uuid4().hex[:8]}"
            shard = qe.EdgeShard.create(str(folder), config)
            self.collections[name] = Collection(name, request, hnsw, shard, folder)

    @staticmethod
    def _vector_params(params: qm.VectorParams) -> qe.EdgeVectorParams:
        if params.multivector_config is not None:
            raise _unsupported("multivectors")
        return qe.EdgeVectorParams(
            size=params.size,
            distance=DISTANCES[params.distance],
            on_disk=params.on_disk,
            quantization_config=to_quantization(params.quantization_config),
            hnsw_config=to_hnsw(merged_hnsw(DEFAULT_HNSW, params.hnsw_config))
            if params.hnsw_config
            else None,
        )

    def delete(self, name: str) -> bool:
        with self.lock:
            collection = self.collections.pop(name, None)
        if collection is None:
            return False
        collection.shard.close()
        shutil.rmtree(collection.folder, ignore_errors=True)
        return True

    def create_index(self, name: str, request: qm.CreateFieldIndex) -> int:
        collection = self.get(name)
        schema = request.field_schema
        if schema is None:
            raise BadRequest("Wrong input: field_schema is required")
        type_name = schema if isinstance(schema, str) else getattr(schema, "type", None)
        type_name = getattr(type_name, "value", type_name)
        if type_name not in SCHEMA_TYPES:
            raise _unsupported(f"payload index type {type_name!r}")
        with engine_errors():
            collection.shard.update(
                qe.UpdateOperation.create_field_index(request.field_name, SCHEMA_TYPES[type_name])
            )
        return collection.written()

    # ------------------------------------------------------------ points

    def upsert(self, name: str, request: qm.PointsList | qm.PointsBatch) -> int:
        collection = self.get(name)
        if request.update_filter is not None or request.shard_key is not None:
            raise _unsupported("conditional upsert or shard keys")
        points = list(_points(request))
        with engine_errors():
            collection.shard.update(qe.UpdateOperation.upsert_points(points))
        return collection.written()

    def delete_points(self, name: str, selector: qm.PointIdsList | qm.FilterSelector) -> int:
        collection = self.get(name)
        if isinstance(selector, qm.PointIdsList):
            operation = qe.UpdateOperation.delete_points([point_id(i) for i in selector.points])
        else:
            operation = qe.UpdateOperation.delete_points_by_filter(to_filter(selector.filter))
        with engine_errors():
            collection.shard.update(operation)
        return collection.written()

    def query(self, name: str, request: qm.QueryRequest) -> list[dict[str, Any]]:
        collection = self.get(name)
        if request.lookup_from or request.shard_key:
            raise _unsupported("lookup_from or shard keys")
        if request.query is None:
            raise _unsupported("a query without a vector (scroll-like query)")
        request_ = qe.QueryRequest(
            limit=request.limit if request.limit is not None else 10,
            offset=request.offset,
            query=scoring_query(request.query, request.using),
            prefetches=to_prefetches(request.prefetch),
            filter=to_filter(request.filter),
            score_threshold=request.score_threshold,
            params=to_search_params(request.params),
            with_payload=to_with_payload(request.with_payload, False),
            with_vector=to_with_vector(request.with_vector),
        )
        with engine_errors():
            hits = collection.shard.query(request_)
        return [_scored(hit) for hit in hits]

    def search(self, name: str, request: qm.SearchRequest) -> list[dict[str, Any]]:
        vector, using = request.vector, None
        if isinstance(vector, qm.NamedVector):
            vector, using = vector.vector, vector.name
        return self.query(
            name,
            qm.QueryRequest(
                query=vector,
                using=using,
                filter=request.filter,
                params=request.params,
                limit=request.limit,
                offset=request.offset,
                with_payload=request.with_payload,
                with_vector=request.with_vector,
                score_threshold=request.score_threshold,
            ),
        )

    def scroll(self, name: str, request: qm.ScrollRequest) -> dict[str, Any]:
        collection = self.get(name)
        if request.order_by is not None:
            raise _unsupported("scroll order_by")
        scroll = qe.ScrollRequest(
            offset=point_id(request.offset) if request.offset is not None else None,
            limit=request.limit if request.limit is not None else 10,
            filter=to_filter(request.filter),
            with_payload=to_with_payload(request.with_payload, True),
            with_vector=to_with_vector(request.with_vector),
        )
        with engine_errors():
            records, next_offset = collection.shard.scroll(scroll)
        return {
            "points": [_record(r) for r in records],
            "next_page_offset": wire_id(next_offset) if next_offset is not None else None,
        }

    def count(self, name: str, request: qm.CountRequest) -> int:
        collection = self.get(name)
        exact = True if request.exact is None else request.exact
        count = qe.CountRequest(exact=exact, filter=to_filter(request.filter))
        with engine_errors():
            return collection.shard.count(count)

    def retrieve(
        self, name: str, ids: Iterable[qm.ExtendedPointId], with_payload: Any, with_vector: Any
    ) -> list[dict[str, Any]]:
        collection = self.get(name)
        with engine_errors():
            records = collection.shard.retrieve(
                [point_id(i) for i in ids],
                with_payload=to_with_payload(with_payload, True),
                with_vector=to_with_vector(with_vector),
            )
        return [_record(r) for r in records]

    # ------------------------------------------------------------ optimizer

    def _optimize_loop(self) -> None:
        while not self._stop.wait(0.05):
            for collection in list(self.collections.values()):
                idle = time.monotonic() - collection.last_write
                if collection.pending_writes and idle >= OPTIMIZE_AFTER_IDLE_S:
                    seen = collection.pending_writes
                    collection.shard.optimize()
                    # Writes that landed meanwhile keep the collection "yellow".
                    collection.pending_writes -= seen


def _points(request: qm.PointsList | qm.PointsBatch) -> Iterable[qe.Point]:
    if isinstance(request, qm.PointsList):
        for p in request.points:
            yield qe.Point(point_id(p.id), to_vector(p.vector, "vector"), p.payload)
        return
    batch = request.batch
    vectors = batch.vectors
    if isinstance(vectors, dict):
        rows = [{name: vectors[name][i] for name in vectors} for i in range(len(batch.ids))]
    else:
        rows = list(vectors)
    payloads = batch.payloads or [None] * len(batch.ids)
    if not len(rows) == len(payloads) == len(batch.ids):
        raise BadRequest("Wrong input: batch ids, vectors and payloads differ in length")
    for pid, vector, payload in zip(batch.ids, rows, payloads, strict=True):
        yield qe.Point(point_id(pid), to_vector(vector, "vector"), payload)


def _scored(hit: qe.ScoredPoint) -> dict[str, Any]:
    return {
        "id": wire_id(hit.id),
        "version": hit.version,
        "score": hit.score,
        "payload": hit.payload,
        "vector": hit.vector,
    }


def _record(record: qe.Record) -> dict[str, Any]:
    return {"id": wire_id(record.id), "payload": record.payload, "vector": record.vector}
