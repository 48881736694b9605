"""Fixtures every API test module shares: a TestClient on the module's `rt` (each module may
override `rt` with the playbooks it needs) that fails any response of 500 or above, and
bearer-token headers for a person of the runtime's org chart, and the walked overdue
hazard of tests/hazard_walk.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from hazard_walk import Walked, twelve_days_overdue

from api.auth import make_token
from api.main import create_app
from flows.runtime import Runtime
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]


def no_server_error(response: httpx.Response) -> None:
    """A 5xx is never an answer the API may give; fail the test where it happened."""
    response.read()
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: "
        f"{response.text[:500]}"
    )


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    app = create_app(rt, background=False, prefect=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.event_hooks["response"].append(no_server_error)
        yield c


@pytest.fixture
def auth(rt: Runtime) -> Auth:
    secret = rt.settings.signing_secret()
    return lambda person: {"Authorization": f"Bearer {make_token(person, secret)}"}


# Every kind of route that takes a row id, as (method, URL with {id}, the field a 422 names,
# JSON body): the id bound (api/deps.py MAX_ROW, what both databases hold) is checked on each,
# on SQLite (test_http_guard_views.py) and PostgreSQL (test_api_postgres.py). A path answers
# 404 for the largest id; a list filtered by it answers 200 with nothing in it.
ID_ROUTES: list[tuple[str, str, str, dict[str, object] | None]] = [
    ("GET", "/api/runs/{id}", "run_id", None),
    ("POST", "/api/runs/{id}/cancel", "run_id", None),
    ("POST", "/api/runs/{id}/stage", "run_id", {"stage": "warning"}),
    ("GET", "/api/runs/{id}/notifications", "run_id", None),
    ("GET", "/api/runs/{id}/documents", "run_id", None),
    ("GET", "/api/runs/{id}/evaluation", "run_id", None),
    ("POST", "/api/runs/{id}/evaluation", "run_id", {"assessment": "好"}),
    ("GET", "/api/runs/1/documents/{id}", "document_id", None),
    ("POST", "/api/notifications/{id}/resend", "notification_id", None),
    ("GET", "/api/tasks/{id}", "task_id", None),
    ("POST", "/api/tasks/{id}/ack", "task_id", None),
    ("GET", "/api/tasks/{id}/reassign-candidates", "task_id", None),
    ("GET", "/api/campaigns/{id}/progress", "run_id", None),
    ("GET", "/api/hazards/{id}", "run_id", None),
    ("GET", "/api/extension-requests/{id}", "request_id", None),
    ("POST", "/api/extension-requests/{id}/decide", "request_id", {"approve": True}),
    ("GET", "/api/tasks?run={id}", "run", None),
    ("GET", "/api/hazards?campaign={id}", "campaign", None),
    ("GET", "/api/extension-requests?task={id}", "task", None),
    ("GET", "/api/runs?offset={id}", "offset", None),
    ("GET", "/api/tasks?offset={id}", "offset", None),
    ("GET", "/api/inbox?offset={id}", "offset", None),
]


@pytest.fixture
def id_routes() -> list[tuple[str, str, str, dict[str, object] | None]]:
    return ID_ROUTES


@pytest.fixture
def walked(client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> Walked:
    """The overdue 重大 hazard of tests/hazard_walk.py, walked on the module's `rt` (the demo
    district, for the modules that use it)."""
    return twelve_days_overdue(client, auth, rt, clock)
