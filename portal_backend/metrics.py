"""The portal's own Prometheus metrics (module level: one registry per process)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "ragportal_http_requests_total",
    "HTTP requests served by the portal",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "ragportal_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _route_template(request: Request) -> str:
    # The route's path template keeps label cardinality bounded (no entity names).
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


async def metrics_middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    start = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = _route_template(request)
        HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - start)
