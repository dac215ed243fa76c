"""Regression tests for what the schemathesis run found (issue 22): each was a 500."""

from __future__ import annotations

import httpx
import pytest

from portal_backend.openapi import MAX_INT
from tests.conftest import LiveServer

TOO_BIG = "628083554504259129216860160"  # beyond any database integer


def _refused_as_input(response: httpx.Response, backend: str) -> None:
    assert response.status_code in (400, 422), (backend, response.status_code, response.text)
    assert response.json()["error"]["name"] == "InputError"


@pytest.mark.parametrize(
    "path",
    [
        f"/api/scaffolder/v2/tasks?offset={TOO_BIG}",
        f"/api/auth/audit?before={TOO_BIG}",
        f"/api/auth/audit?before={MAX_INT + 1}",
        f"/api/catalog/entities?offset={TOO_BIG}",
        f"/api/catalog/entities?limit={TOO_BIG}",
        f"/api/catalog/entities/by-query?offset={TOO_BIG}",
        f"/api/catalog/entities/by-query?limit={TOO_BIG}",
    ],
)
def test_integers_beyond_the_database_are_bad_input(
    contract_portal: LiveServer, backend: str, path: str
) -> None:
    """An offset or id past what the database holds: SQLite raised OverflowError binding
    it, PostgreSQL 'integer out of range'."""
    with contract_portal.client() as client:
        _refused_as_input(client.get(path), backend)
        assert client.get("/api/scaffolder/v2/tasks?offset=0").status_code == 200


def test_body_offset_beyond_the_database_is_bad_input(
    contract_portal: LiveServer, backend: str
) -> None:
    with contract_portal.client() as client:
        answer = client.post("/api/catalog/entities/by-query", json={"offset": int(TOO_BIG)})
        _refused_as_input(answer, backend)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/scaffolder/v2/tasks?createdBy=a%00b", None),
        ("POST", "/api/scaffolder/v2/upgrades", {"entityRef": "component:default/a\u0000b"}),
        ("GET", "/api/catalog/entities/by-name/component/default/a%00b", None),
    ],
)
def test_nul_characters_are_bad_input(
    contract_portal: LiveServer, backend: str, method: str, path: str, body: object
) -> None:
    """PostgreSQL text cannot hold NUL: psycopg's DataError was a 500; now a 400 naming
    the reason (SQLite stores NUL and answers as for any other unknown name)."""
    with contract_portal.client() as client:
        answer = client.request(method, path, json=body)
        assert answer.status_code < 500, answer.text
        if backend == "postgresql":
            _refused_as_input(answer, backend)
            assert "NUL" in answer.json()["error"]["message"]
        # The portal goes on answering on the same database.
        assert client.get("/api/scaffolder/v2/tasks").status_code == 200


def test_a_refused_streamed_query_is_an_answer_not_a_cut_stream(
    contract_portal: LiveServer, backend: str
) -> None:
    """GET /entities without a limit streams its array; PostgreSQL refused the NUL in the
    filter after the 200 had gone out, and the answer ended mid-body (the client saw a
    broken chunked encoding). The first batch is now read before the answer starts."""
    with contract_portal.client() as client:
        answer = client.get("/api/catalog/entities", params={"filter": "\x00"})
        if backend == "postgresql":
            _refused_as_input(answer, backend)
        else:
            assert answer.status_code in (200, 400), answer.text
        streamed = client.get("/api/catalog/entities", params={"filter": "kind=template"})
        assert streamed.status_code == 200
        assert isinstance(streamed.json(), list)
