"""GET /api/tasks?q=: a field person with hundreds of hazards due the same day finds one by its
number, its enterprise or its location; the text is matched literally, and a search never
widens what the person may see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flows.runtime import Runtime

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def register(client: TestClient, auth: Auth, unit: str, **params: Any) -> int:
    r = client.post("/api/runs", headers=auth("pingshan-street-inspector-1"), json={
        "playbook": "hazard-3030", "unit": unit, "params": {"category": "消防安全", **params}})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def run_ids(client: TestClient, auth: Auth, who: str, **params: Any) -> list[int]:
    r = client.get("/api/tasks", headers=auth(who), params={"mine": "true", **params})
    assert r.status_code == 200, r.text
    return [t["run_id"] for t in r.json()["data"]]


def test_the_inbox_is_searched_by_number_enterprise_and_location(
        client: TestClient, auth: Auth) -> None:
    shop = register(client, auth, "liuhe", location="和平路12号", code="PS-2026-00012",
                    enterprise="深圳市和平百货有限公司")
    plant = register(client, auth, "liuhe", location="工业路8号100%厂房", code="PS-2026-00013",
                     enterprise="东门五金制品厂")
    elsewhere = register(client, auth, "heping", location="和平路99号", code="PS-2026-00099")
    who = "liuhe-safety"
    assert run_ids(client, auth, who) == [shop, plant]
    assert run_ids(client, auth, who, q="PS-2026-00012") == [shop]
    assert run_ids(client, auth, who, q="五金") == [plant]
    assert run_ids(client, auth, who, q="和平路") == [shop]  # heping's is not hers to see
    assert run_ids(client, auth, who, q="100%") == [plant]  # % is a character, not a wildcard
    assert run_ids(client, auth, who, q="%") == [plant]
    assert run_ids(client, auth, who, q="  ") == [shop, plant]  # blank: no search
    assert run_ids(client, auth, "heping-safety", q="和平路") == [elsewhere]
    r = client.get("/api/tasks", headers=auth(who), params={"mine": "true", "q": "x" * 101})
    assert r.status_code == 422 and r.json()["field"] == "q"
