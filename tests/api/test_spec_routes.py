"""SPEC.md §5 "HTTP API", pinned by name: every route it lists is served with its method and
described at /docs, and every status it lists is a value the list filters take. A route or a
status renamed would break the bureaus' own scripts; adding is free, renaming is not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

Auth = Callable[[str], dict[str, str]]

# (method, path) exactly as SPEC.md §5 writes them.
SPEC_ROUTES = [
    ("get", "/api/playbooks"),
    ("get", "/api/playbooks/{playbook_id}"),
    ("post", "/api/playbooks/validate"),
    ("post", "/api/runs"),
    ("get", "/api/runs"),
    ("get", "/api/runs/{run_id}"),
    ("post", "/api/runs/{run_id}/cancel"),
    ("post", "/api/runs/{run_id}/stage"),
    ("get", "/api/tasks"),
    ("post", "/api/tasks/{task_id}/ack"),
    ("post", "/api/tasks/{task_id}/complete"),
    ("post", "/api/tasks/{task_id}/verify"),
    ("post", "/api/tasks/{task_id}/extend"),
    ("post", "/api/tasks/{task_id}/reassign"),
    ("post", "/api/evidence"),
    ("get", "/healthz"),
]

# Query parameters SPEC.md §5 names for the two lists ("paginated": limit and offset).
SPEC_FILTERS = {
    "/api/runs": {"playbook", "status", "unit", "since", "until", "limit", "offset"},
    "/api/tasks": {"mine", "status", "overdue", "unit", "run", "limit", "offset"},
}

RUN_STATUSES = ["running", "completed", "cancelled", "failed"]
STEP_STATUSES = ["pending", "ready", "acked", "submitted", "done", "rejected", "skipped",
                 "cancelled"]


def test_every_spec_route_is_served_and_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    missing = [(m, p) for m, p in SPEC_ROUTES if m not in paths.get(p, {})]
    assert missing == []
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("path", sorted(SPEC_FILTERS))
def test_every_spec_filter_is_a_query_parameter(client: TestClient, path: str) -> None:
    operation = client.get("/openapi.json").json()["paths"][path]["get"]
    named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    assert SPEC_FILTERS[path] <= named


@pytest.mark.parametrize("status", RUN_STATUSES)
def test_every_spec_run_status_filters_the_run_list(
        client: TestClient, auth: Auth, status: str) -> None:
    r = client.get("/api/runs", params={"status": status}, headers=auth("d1-manager"))
    assert r.status_code == 200, r.text
    assert {"count", "limit", "offset", "data"} <= set(r.json())


@pytest.mark.parametrize("status", STEP_STATUSES)
def test_every_spec_step_status_filters_the_task_list(
        client: TestClient, auth: Auth, status: str) -> None:
    r = client.get("/api/tasks", params={"status": status}, headers=auth("d1-manager"))
    assert r.status_code == 200, r.text
    assert {"count", "limit", "offset", "data"} <= set(r.json())


def test_an_unknown_status_is_422_naming_the_field(client: TestClient, auth: Auth) -> None:
    for path in SPEC_FILTERS:
        r = client.get(path, params={"status": "lost"}, headers=auth("d1-manager"))
        assert r.status_code == 422 and r.json()["field"] == "status"
