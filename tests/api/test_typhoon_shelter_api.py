"""The typhoon's shelter follow-up through the API the pages call: the run (the run page's
list) shows the community's next round written ahead, when it comes and the count it is
answered against; the task (the task page, on the head's phone) the same in its title; a
round that does not add up is a 422 naming the box, in Chinese; and 结束响应 is a 409 naming
the community while its people are away. Real app, real database, ManualClock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from factories import complete_answered, run_steps
from fastapi.testclient import TestClient

from api.auth import make_token
from api.main import create_app
from flows import lifecycle
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock

COMMANDER = "maluan-commander"
MOVED = {"maluan-community": 12, "jiangling": 4, "pinghuan": 4}


@pytest.fixture
def app(demo: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(demo, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        yield client


def auth(rt: Runtime, person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(person, rt.settings.signing_secret())}"}


def test_the_running_count_is_on_the_run_and_the_task_and_ending_early_is_refused(
        demo: Runtime, clock: ManualClock, app: TestClient) -> None:
    run_id = lifecycle.start_run(demo, playbook_id="typhoon-633", unit_id="maluan",
                                 params={"name": "海葵（2311）"}, actor=COMMANDER).id or 0
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor=COMMANDER)
    for row in [r for r in run_steps(demo, run_id) if r.step_key == "transfer"]:
        complete_answered(demo, row, people=MOVED[row.unit_id], from_where="低洼地段",
                          mover="网格员", shelter="社区服务中心", management="专人值守")
    lifecycle.set_stage(demo, run_id=run_id, stage="recovery", actor=COMMANDER)
    for row in run_steps(demo, run_id):
        if row.step_key == "return":
            left = 8 if row.unit_id == "maluan-community" else 0
            complete_answered(demo, row, returned=MOVED[row.unit_id] - left, remaining=left)
        elif row.step_key.startswith("recovery-"):
            complete_answered(demo, row)
    drain_wakes(demo)

    run = app.get(f"/api/runs/{run_id}", headers=auth(demo, COMMANDER)).json()
    [ahead] = [s for s in run["steps"]
               if s["step"] == "shelter-followup" and s["status"] == "pending"]
    assert ahead["title"] == ("【解除与灾后恢复】安置人员返回跟踪（马峦社区，第1次，03-03 17:00前，"
                              "上次仍在安置 8 人）")
    assert ahead["scheduled_at_local"] == "2026-03-03 09:00"
    assert [p["id"] for p in ahead["assignees"]] == ["maluan-community-head"]

    ended = app.post(f"/api/runs/{run_id}/complete", headers=auth(demo, COMMANDER), json={})
    assert ended.status_code == 409
    assert "马峦社区，第1次" in ended.json()["detail"]

    clock.set(datetime(2026, 3, 3, 1, 0, 30, tzinfo=UTC))  # 09:00 in Beijing
    sweep_once(demo)
    head = auth(demo, "maluan-community-head")
    task = app.get(f"/api/tasks/{ahead['id']}", headers=head).json()
    assert task["status"] == "ready" and task["due_at_local"] == "2026-03-03 17:00"
    assert task["title"].endswith("上次仍在安置 8 人）")

    bad = app.post(f"/api/tasks/{ahead['id']}/complete", headers=head,
                   json={"outputs": {"returned": 2, "remaining": 5}, "note": "已核实"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "outputs.returned"
    assert bad.json()["detail"].startswith(
        "outputs.returned: 本次返回 2 人、移交 0 人与仍在安置 5 人之和应等于上次填报的仍在安置 "
        "8 人")
    good = app.post(f"/api/tasks/{ahead['id']}/complete", headers=head,
                    json={"outputs": {"returned": 3, "remaining": 5}, "note": "已核实"})
    assert good.status_code == 200, good.text
    run = app.get(f"/api/runs/{run_id}", headers=auth(demo, COMMANDER)).json()
    [ahead] = [s for s in run["steps"]
               if s["step"] == "shelter-followup" and s["status"] == "pending"]
    assert ahead["title"].endswith("（马峦社区，第2次，03-04 17:00前，上次仍在安置 5 人）")
