"""叫应 of a raised signal through the API the run page calls: the run lists who was called at
the latest raise and who answered (local times); POST /api/runs/{id}/signal-acks/{ack_id}/ack
answers as the person called (a second tap the same 200), 403 for anyone else, 404 for an ack
of another run, 409 for one a newer raise superseded or of a run that ended. Real app, real
database, ManualClock."""

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

COMMANDER, HEAD = "maluan-commander", "jiangling-head"


@pytest.fixture
def app(demo: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(demo, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        yield client


def auth(rt: Runtime, person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(person, rt.settings.signing_secret())}"}


def started(demo: Runtime, app: TestClient, signal: str) -> int:
    run_id = lifecycle.start_run(demo, playbook_id="typhoon-633", unit_id="maluan",
                                 params={"name": "山竹", "signal": "黄色"},
                                 actor=COMMANDER).id or 0
    moved = app.post(f"/api/runs/{run_id}/stage", headers=auth(demo, COMMANDER),
                     json={"stage": "severe", "params": {"signal": signal}})
    assert moved.status_code == 200, moved.text
    return run_id


def answer(app: TestClient, rt: Runtime, run_id: int, ack_id: int, person: str) -> object:
    return app.post(f"/api/runs/{run_id}/signal-acks/{ack_id}/ack", headers=auth(rt, person))


def test_the_person_called_answers_and_the_run_lists_who_has_not(
        demo: Runtime, clock: ManualClock, app: TestClient) -> None:
    run_id = started(demo, app, "橙色")
    read = app.get(f"/api/runs/{run_id}", headers=auth(demo, COMMANDER)).json()
    listed = {a["person"]: a for a in read["signal_answers"]}
    mine = listed[HEAD]
    due = demo.renderer.local(clock.now() + timedelta(minutes=15))
    assert (mine["value"], mine["unit_name"], mine["due_at_local"], mine["acked_at"]) == (
        "橙色", "江岭社区", due, None)
    assert "maluan-head" in listed and len(listed) > 3

    assert answer(app, demo, run_id, mine["id"], "pinghuan-head").status_code == 403
    clock.advance(timedelta(minutes=3))
    first = answer(app, demo, run_id, mine["id"], HEAD)
    assert first.status_code == 200, first.text
    rows = first.json()["signal_answers"]
    [done] = [a for a in rows if a["person"] == HEAD]
    assert (done["acked_at_local"], done["late"]) == (demo.renderer.local(clock.now()), False)
    assert rows[-1]["person"] == HEAD  # the unanswered first: who to ring
    clock.advance(timedelta(minutes=1))
    again = answer(app, demo, run_id, mine["id"], HEAD)
    assert again.status_code == 200
    assert [a for a in again.json()["signal_answers"] if a["person"] == HEAD] == [done]
    timeline = [e["action_name"] for e in again.json()["timeline"]
                if e["action"] == "signal_acked"]
    assert timeline == ["叫应已回复"]


def test_a_superseded_or_ended_raise_is_a_conflict_and_another_runs_ack_unknown(
        demo: Runtime, clock: ManualClock, app: TestClient) -> None:
    run_id = started(demo, app, "橙色")
    me = auth(demo, COMMANDER)
    old = {a["person"]: a for a in app.get(f"/api/runs/{run_id}", headers=me)
           .json()["signal_answers"]}[HEAD]
    raised = app.post(f"/api/runs/{run_id}/params", headers=me, json={"params": {"signal": "红色"}})
    new = {a["person"]: a for a in raised.json()["signal_answers"]}[HEAD]
    assert (new["value"], new["id"] != old["id"]) == ("红色", True)
    stale = answer(app, demo, run_id, old["id"], HEAD)
    assert stale.status_code == 409 and "最新" in stale.json()["detail"]
    other = started(demo, app, "红色")
    assert answer(app, demo, other, new["id"], HEAD).status_code == 404
    assert app.post(f"/api/runs/{run_id}/cancel", headers=me, json={}).status_code == 200
    assert answer(app, demo, run_id, new["id"], HEAD).status_code == 409
