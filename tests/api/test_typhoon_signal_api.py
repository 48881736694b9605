"""The typhoon warning signal through the API the run page calls: POST /api/runs/{id}/params
alone and `params` with POST /api/runs/{id}/stage; the run (and the runs list) carries the
current signal and, read alone, its history with local times and who recorded each; a wrong
value is a 422 naming the field with nothing changed, an ended run a 409, anyone but the run's
commanders a 403. Real app, real database, ManualClock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.auth import make_token
from api.main import create_app
from flows import lifecycle
from flows.runtime import Runtime
from models.clock import ManualClock

COMMANDER = "maluan-commander"


@pytest.fixture
def app(demo: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(demo, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        yield client


def auth(rt: Runtime, person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(person, rt.settings.signing_secret())}"}


def test_the_signal_is_changed_read_back_and_listed(demo: Runtime, clock: ManualClock,
                                                    app: TestClient) -> None:
    run_id = lifecycle.start_run(demo, playbook_id="typhoon-633", unit_id="maluan",
                                 params={"name": "山竹", "signal": "黄色"},
                                 actor=COMMANDER).id or 0
    me = auth(demo, COMMANDER)
    clock.advance(timedelta(hours=1))
    moved = app.post(f"/api/runs/{run_id}/stage", headers=me,
                     json={"stage": "橙色/红色预警", "params": {"signal": "橙色"}})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["stage"], moved.json()["params"]["signal"]) == ("severe", "橙色")
    clock.advance(timedelta(hours=2))
    raised = app.post(f"/api/runs/{run_id}/params", headers=me,
                      json={"params": {"signal": "红色"}, "note": "气象台发布红色预警"})
    assert raised.status_code == 200, raised.text
    body = raised.json()
    assert body["changeable_params"] == [{
        "name": "signal", "title": "台风预警信号", "value": "红色",
        "values": ["蓝色", "黄色", "橙色", "红色"]}]
    history = [(h["value"], h["previous"], h["direction"], h["at_local"], h["by_name"],
                h["stage_title"]) for h in body["param_history"]]
    local, who = demo.renderer.local, demo.org.people[COMMANDER].name
    assert history == [
        ("黄色", None, "start", local(clock.now() - timedelta(hours=3)), who, "台风消息"),
        ("橙色", "黄色", "raised", local(clock.now() - timedelta(hours=2)), who, "橙色/红色预警"),
        ("红色", "橙色", "raised", local(clock.now()), who, "橙色/红色预警"),
    ]
    read = app.get(f"/api/runs/{run_id}", headers=me).json()
    assert read["param_history"] == body["param_history"]
    assert read["params"]["signal"] == "红色"
    [event] = [e for e in read["timeline"] if e["action"] == "param_changed"
               and e["detail"]["value_to"] == "红色"]
    assert (event["action_name"], event["detail"]["note"]) == ("变更参数", "气象台发布红色预警")
    # The runs list carries the current signal, without reading each run.
    listed = app.get("/api/runs", headers=me, params={"playbook": "typhoon-633"}).json()
    [row] = [r for r in listed["data"] if r["id"] == run_id]
    assert row["changeable_params"][0]["value"] == "红色"
    assert row["param_history"] is None


def test_wrong_changes_are_refused_by_name_and_change_nothing(demo: Runtime,
                                                              app: TestClient) -> None:
    run_id = lifecycle.start_run(demo, playbook_id="typhoon-633", unit_id="maluan",
                                 params={"name": "山竹", "signal": "黄色"},
                                 actor=COMMANDER).id or 0
    me = auth(demo, COMMANDER)
    for url, json in ((f"/api/runs/{run_id}/params", {"params": {"signal": "紫色"}}),
                      (f"/api/runs/{run_id}/stage",
                       {"stage": "severe", "params": {"signal": "紫色"}})):
        refused = app.post(url, headers=me, json=json)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "params.signal"
        assert "紫色" in refused.json()["detail"] and "红色" in refused.json()["detail"]
    refused = app.post(f"/api/runs/{run_id}/params", headers=me, json={"params": {}})
    assert (refused.status_code, refused.json()["field"]) == (422, "params")
    run = app.get(f"/api/runs/{run_id}", headers=me).json()
    assert (run["stage"], run["params"]["signal"]) == ("message", "黄色")
    assert not [e for e in run["timeline"] if e["action"] in ("param_changed", "stage_changed")]

    head = app.post(f"/api/runs/{run_id}/params", headers=auth(demo, "maluan-community-head"),
                    json={"params": {"signal": "红色"}})
    assert head.status_code == 403
    same = app.post(f"/api/runs/{run_id}/params", headers=me, json={"params": {"signal": "黄色"}})
    assert same.status_code == 409 and "已是黄色" in same.json()["detail"]
    assert app.post(f"/api/runs/{run_id}/cancel", headers=me, json={}).status_code == 200
    ended = app.post(f"/api/runs/{run_id}/params", headers=me,
                     json={"params": {"signal": "红色"}})
    assert ended.status_code == 409
