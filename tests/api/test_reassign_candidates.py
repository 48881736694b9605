"""Whom a task may be handed to (GET /api/tasks/{id}/reassign-candidates), the list behind the
page's 改派: the rule of POST …/reassign asked of everyone it could admit, so each person listed
is one the reassignment then accepts, and nobody it would refuse is offered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flows.runtime import Runtime

Auth = Callable[[str], dict[str, str]]


def receive_task(client: TestClient, auth: Auth) -> dict[str, Any]:
    """quick-escalation in 一社区 (c1): its first task is the street duty officer's."""
    r = client.post("/api/runs", headers=auth("s1-commander"), json={
        "playbook": "quick-escalation", "unit": "c1", "params": {"location": "一社区3号楼"}})
    assert r.status_code == 201, r.text
    return r.json()["steps"][0]  # type: ignore[no-any-return]


def candidates(client: TestClient, auth: Auth, task_id: int, who: str,
               query: str = "") -> Any:
    r = client.get(f"/api/tasks/{task_id}/reassign-candidates{query}", headers=auth(who))
    return r


@pytest.mark.parametrize("who", ["s1-commander", "s1-duty", "d1-commander", "d1-admin"])
def test_everyone_listed_is_accepted_and_everyone_else_refused(
        rt: Runtime, client: TestClient, auth: Auth, who: str) -> None:
    task = receive_task(client, auth)
    r = candidates(client, auth, task["id"], who)
    assert r.status_code == 200, r.text
    listed = [p["id"] for p in r.json()["data"]]
    assert r.json()["count"] == len(listed) and len(set(listed)) == len(listed)
    for person in rt.org.people:  # the list is exactly the reassignment's own rule
        probe = client.post(f"/api/tasks/{task['id']}/reassign", json={"person": person},
                            headers=auth(who))
        assert (probe.status_code == 200) == (person in listed), (person, probe.text)
        if probe.status_code == 200:  # back to the duty officer, who may then hand it on
            assert client.post(f"/api/tasks/{task['id']}/reassign", json={"person": "s1-duty"},
                               headers=auth("d1-admin")).status_code == 200
    if who == "s1-duty":  # an assignee hands it to colleagues only, not to the whole street
        assert "c2-grid" not in listed and "s2-insp" not in listed


def test_the_roles_holders_come_first_and_the_current_holder_is_marked(
        client: TestClient, auth: Auth) -> None:
    task = receive_task(client, auth)
    data = candidates(client, auth, task["id"], "s1-commander").json()["data"]
    assert data[0]["id"] == "s1-duty" and data[0]["holds_role"] is True
    assert data[0]["unit_name"] == "一街道" and data[0]["roles"] == ["值班员"]
    assert not any(p["holds_role"] for p in data[1:])
    assert not any(p["current"] for p in data)
    r = client.post(f"/api/tasks/{task['id']}/reassign", json={"person": "s1-insp1"},
                    headers=auth("s1-commander"))
    assert r.status_code == 200, r.text
    data = candidates(client, auth, task["id"], "s1-commander").json()["data"]
    assert [p["id"] for p in data if p["current"]] == ["s1-insp1"]


def test_a_search_narrows_by_name_post_or_unit_and_limit_pages_it(
        client: TestClient, auth: Auth) -> None:
    task = receive_task(client, auth)
    r = candidates(client, auth, task["id"], "s1-commander", "?q=检查员")
    assert [p["id"] for p in r.json()["data"]] == ["s1-insp1", "s1-insp2"]
    r = candidates(client, auth, task["id"], "s1-commander", "?q=一社区")
    assert {p["id"] for p in r.json()["data"]} == {"c1-grid", "c1-safety"}
    r = candidates(client, auth, task["id"], "s1-commander", "?limit=2")
    assert len(r.json()["data"]) == 2 and r.json()["count"] > 2
    r = candidates(client, auth, task["id"], "s1-commander", "?limit=0")
    assert r.status_code == 422 and r.json()["field"] == "limit"


def test_who_may_not_reassign_is_told_why_and_a_closed_task_is_a_conflict(
        client: TestClient, auth: Auth) -> None:
    task = receive_task(client, auth)
    r = candidates(client, auth, task["id"], "s1-insp1")  # same street, not the duty officer
    assert r.status_code == 403 and "值班员" in r.json()["detail"]
    r = candidates(client, auth, task["id"], "s2-commander")  # another street
    assert r.status_code == 403
    assert client.post(f"/api/tasks/{task['id']}/complete", json={},
                       headers=auth("s1-duty")).status_code == 200
    r = candidates(client, auth, task["id"], "s1-commander")
    assert r.status_code == 409 and r.json()["current"] == "done"
    assert candidates(client, auth, 999_999, "s1-commander").status_code == 404
