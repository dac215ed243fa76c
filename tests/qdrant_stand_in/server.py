"""Qdrant's REST API (the part qdrant-client and langchain-qdrant use) over the engine.

Every answer has Qdrant's envelope: `{"result": ..., "status": "ok", "time": s}`, errors
`{"status": {"error": "..."}, "time": s}` with Qdrant's status codes (404 missing
collection, 400 malformed or unsupported request, 401 missing API key). Request bodies
are parsed with qdrant-client's own models, so a body the real server would refuse as
malformed is refused here too.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import TypeAdapter, ValidationError
from qdrant_client.http import models as qm

from tests.qdrant_stand_in.engine import BadRequest, NotFound, Store

# The Qdrant server of the deploy bundle (qdrant/qdrant:v1.15.1): what GET / reports.
QDRANT_VERSION = "1.15.1"

_adapters: dict[Any, TypeAdapter[Any]] = {}


class Unauthorized(Exception):
    """401: the server was started with an API key and the request has none or another."""


def _envelope(result: Any, started: float, status_code: int = 200) -> JSONResponse:
    body = {"result": result, "status": "ok", "time": time.perf_counter() - started}
    return JSONResponse(body, status_code=status_code)


def _error(message: str, started: float, status_code: int) -> JSONResponse:
    body = {"status": {"error": message}, "time": time.perf_counter() - started}
    return JSONResponse(body, status_code=status_code)


async def _parse(request: Request, model: Any) -> Any:
    adapter = _adapters.setdefault(model, TypeAdapter(model))
    raw = await request.body()
    try:
        return adapter.validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"Format error in JSON body: {where}: {first['msg']}") from None


def _update_result(operation_id: int, request: Request) -> dict[str, Any]:
    wait = request.query_params.get("wait", "false").lower() == "true"
    # Writes are applied before the answer either way; Qdrant says "acknowledged" when
    # the client did not ask to wait.
    return {"operation_id": operation_id, "status": "completed" if wait else "acknowledged"}


def create_app(storage: Path, api_key: str = "") -> FastAPI:
    store_holder: dict[str, Store] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store_holder["store"] = Store(storage)
        try:
            yield
        finally:
            store_holder.pop("store").close()

    async def authorize(request: Request) -> None:
        request.state.started = time.perf_counter()
        if api_key and request.url.path not in ("/healthz", "/livez", "/readyz"):
            given = request.headers.get("api-key") or request.headers.get(
                "authorization", ""
            ).removeprefix("Bearer ")
            if not secrets.compare_digest(given.encode(), api_key.encode()):
                raise Unauthorized("Must provide an API key or an Authorization bearer token")

    app = FastAPI(
        title="Qdrant stand-in",
        lifespan=lifespan,
        openapi_url=None,
        dependencies=[Depends(authorize)],
    )

    def store() -> Store:
        return store_holder["store"]

    def started(request: Request) -> float:
        return getattr(request.state, "started", time.perf_counter())

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        return _error(str(exc), started(request), 401)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(f"Not found: {exc}", started(request), 404)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return _error(str(exc), started(request), 400)

    def ok(request: Request, result: Any) -> JSONResponse:
        return _envelope(result, request.state.started)

    @app.get("/")
    async def root() -> dict[str, str]:
        return {
            "title": "qdrant - vector search engine (rag-portal stand-in)",
            "version": QDRANT_VERSION,
        }

    @app.get("/healthz")
    @app.get("/livez")
    @app.get("/readyz")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("healthz check passed")

    @app.get("/collections")
    async def list_collections(request: Request) -> JSONResponse:
        names = [{"name": n} for n in sorted(store().collections)]
        return ok(request, {"collections": names})

    @app.get("/collections/{name}/exists")
    async def exists(name: str, request: Request) -> JSONResponse:
        return ok(request, {"exists": name in store().collections})

    @app.get("/collections/{name}")
    async def get_collection(name: str, request: Request) -> JSONResponse:
        return ok(request, store().get(name).info())

    @app.put("/collections/{name}")
    async def create_collection(name: str, request: Request) -> JSONResponse:
        store().create(name, await _parse(request, qm.CreateCollection))
        return ok(request, True)

    @app.delete("/collections/{name}")
    async def delete_collection(name: str, request: Request) -> JSONResponse:
        return ok(request, store().delete(name))

    @app.put("/collections/{name}/index")
    async def create_index(name: str, request: Request) -> JSONResponse:
        operation = store().create_index(name, await _parse(request, qm.CreateFieldIndex))
        return ok(request, _update_result(operation, request))

    @app.put("/collections/{name}/points")
    async def upsert(name: str, request: Request) -> JSONResponse:
        body = await _parse(request, qm.PointInsertOperations)
        return ok(request, _update_result(store().upsert(name, body), request))

    @app.post("/collections/{name}/points/delete")
    async def delete_points(name: str, request: Request) -> JSONResponse:
        body = await _parse(request, qm.PointsSelector)
        return ok(request, _update_result(store().delete_points(name, body), request))

    @app.post("/collections/{name}/points/query")
    async def query(name: str, request: Request) -> JSONResponse:
        body = await _parse(request, qm.QueryRequest)
        return ok(request, {"points": store().query(name, body)})

    @app.post("/collections/{name}/points/search")
    async def search(name: str, request: Request) -> JSONResponse:
        return ok(request, store().search(name, await _parse(request, qm.SearchRequest)))

    @app.post("/collections/{name}/points/scroll")
    async def scroll(name: str, request: Request) -> JSONResponse:
        return ok(request, store().scroll(name, await _parse(request, qm.ScrollRequest)))

    @app.post("/collections/{name}/points/count")
    async def count(name: str, request: Request) -> JSONResponse:
        return ok(request, {"count": store().count(name, await _parse(request, qm.CountRequest))})

    @app.post("/collections/{name}/points")
    async def retrieve(name: str, request: Request) -> JSONResponse:
        body: qm.PointRequest = await _parse(request, qm.PointRequest)
        return ok(request, store().retrieve(name, body.ids, body.with_payload, body.with_vector))

    @app.get("/collections/{name}/points/{point}")
    async def retrieve_one(name: str, point: str, request: Request) -> JSONResponse:
        found = store().retrieve(name, [int(point) if point.isdigit() else point], True, True)
        if not found:
            raise NotFound(f"No point with id {point} found")
        return ok(request, found[0])

    return app
