"""GET /api/campaigns/{run_id}/progress: live counts of a 3030 campaign's hazards, read with
the run's read rights (TestClient on a real SQLite runtime with the shipped campaign playbook
next to the engine's test playbooks)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import campaign_books
from fastapi.testclient import TestClient

from flows.runtime import Runtime
from models.clock import ManualClock

Json = dict[str, Any]
Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    return make_rt(playbooks=campaign_books(tmp_path))


def start(client: TestClient, auth: Auth, playbook: str, unit: str, params: Json) -> Json:
    r = client.post("/api/runs", json={"playbook": playbook, "unit": unit, "params": params},
                    headers=auth("s1-commander"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def step(run: Json, key: str) -> Json:
    return next(s for s in run["steps"] if s["step"] == key)


def test_progress_is_live(client: TestClient, auth: Auth, clock: ManualClock) -> None:
    campaign = start(client, auth, "campaign-3030", "s1", {"target": 2})
    cid = campaign["id"]
    hazards = [start(client, auth, "register-demo", "c1",
                     {"location": f"仓库{i}", "campaign": cid}) for i in range(3)]
    url = f"/api/campaigns/{cid}/progress"
    body = client.get(url, headers=auth("s1-head")).json()
    assert {k: body[k] for k in ("found", "rectifying", "overdue", "closed", "target",
                                 "met", "remaining", "grade")} == {
        "found": 3, "rectifying": 3, "overdue": 0, "closed": 0, "target": 2, "met": False,
        "remaining": 2, "grade": "重大"}
    assert body["window_end"] == step(campaign, "window")["due_at"]
    assert body["unit_name"] == "一街道" and body["window_end_local"]
    assert body["window_days_left"] == 30  # 剩余天数, counted as the 整改清单 counts them

    first = hazards[0]
    r = client.post(f"/api/tasks/{step(first, 'rectify')['id']}/complete", json={},
                    headers=auth("c1-grid"))
    assert r.status_code == 200, r.text
    run = client.get(f"/api/runs/{first['id']}", headers=auth("d1-admin")).json()
    r = client.post(f"/api/tasks/{step(run, 'close')['id']}/complete", json={},
                    headers=auth("s1-insp1"))
    assert r.status_code == 200, r.text
    clock.advance(timedelta(days=11))
    body = client.get(url, headers=auth("d1-manager")).json()
    assert (body["found"], body["rectifying"], body["overdue"], body["closed"]) == (3, 2, 2, 1)
    assert body["remaining"] == 1
    assert body["window_days_left"] == 19
    clock.advance(timedelta(days=20))
    body = client.get(url, headers=auth("d1-manager")).json()
    assert body["window_days_left"] == 0  # the window has ended


def test_read_rights_and_errors(client: TestClient, auth: Auth) -> None:
    cid = start(client, auth, "campaign-3030", "s1", {})["id"]
    url = f"/api/campaigns/{cid}/progress"
    assert client.get(url).status_code == 401
    r = client.get(url, headers=auth("s2-insp"))  # another street
    assert r.status_code == 403
    assert client.get(url, headers=auth("c1-grid")).status_code == 200  # below the street
    assert client.get("/api/campaigns/999999/progress",
                      headers=auth("d1-admin")).status_code == 404
    hazard = start(client, auth, "register-demo", "c1", {"location": "x"})
    r = client.get(f"/api/campaigns/{hazard['id']}/progress", headers=auth("d1-admin"))
    assert r.status_code == 404 and "campaign" in r.json()["detail"]
    r = client.get("/api/campaigns/abc/progress", headers=auth("d1-admin"))
    assert r.status_code == 422 and r.json()["field"] == "run_id"
    r = client.post("/api/runs", json={"playbook": "campaign-3030", "unit": "s1",
                                       "params": {"target": "thirty"}},
                    headers=auth("s1-commander"))
    assert r.status_code == 422 and r.json()["field"] == "params.target"


@pytest.mark.parametrize("target", [-5, 0, 10001, 99999999999999999999999, "1" * 5000, 2.5])
def test_campaign_with_an_impossible_target_is_422(client: TestClient, auth: Auth,
                                                    target: Any) -> None:
    r = client.post("/api/runs", json={"playbook": "campaign-3030", "unit": "s1",
                                       "params": {"target": target}},
                    headers=auth("s1-commander"))
    assert r.status_code == 422, r.text[:300]
    assert r.json()["field"] == "params.target"
    listed = client.get("/api/runs", params={"playbook": "campaign-3030"},
                        headers=auth("s1-commander")).json()
    assert listed["count"] == 0


def test_a_number_too_long_to_parse_is_4xx_not_500(client: TestClient, auth: Auth) -> None:
    body = (b'{"playbook": "campaign-3030", "unit": "s1", "params": {"target": '
            + b"9" * 5000 + b"}}")
    r = client.post("/api/runs", content=body,
                    headers=auth("s1-commander") | {"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text[:300]
