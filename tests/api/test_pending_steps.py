"""The first answer shows every legal clock: a step not reached yet shows who it will go to and,
when its deadline runs from the alert, that deadline; a step its `when` already rules out for
the run's params shows neither."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flows.runtime import Runtime
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo  # the shipped playbooks and the demo district


def gas_leak(client: TestClient, auth: Auth, grade: str) -> dict[str, Any]:
    r = client.post("/api/runs", json={"playbook": "gas-leak", "unit": "liuhe", "params": {
        "location": "六和社区某小区3栋", "grade": grade}}, headers=auth("wang-qiang"))
    assert r.status_code == 201, r.text
    return {s["step"]: s for s in r.json()["steps"]}


def test_a_major_gas_leak_answers_with_its_report_deadlines_from_the_alert(
    client: TestClient, auth: Auth, clock: ManualClock
) -> None:
    steps = gas_leak(client, auth, "重大")
    verbal, system = steps["verbal"], steps["system-report"]
    assert verbal["status"] == "pending" and system["status"] == "pending"
    assert datetime.fromisoformat(verbal["due_at"]) == clock.now() + timedelta(minutes=30)
    assert datetime.fromisoformat(system["due_at"]) == clock.now() + timedelta(minutes=60)
    assert verbal["due_at_local"] == "2026-03-02 09:30"
    assert verbal["assignees"]  # the duty leader, by name
    # A step whose deadline counts from when it is reached has none yet.
    assert all(s["due_at"] is None for s in steps.values()
               if s["status"] == "pending" and s["step"] not in ("verbal", "system-report")
               and not s["step"].startswith("report"))


def test_a_step_ruled_out_by_the_params_shows_no_people_and_a_possible_one_does(
    client: TestClient, auth: Auth
) -> None:
    r = client.post("/api/runs", json={"playbook": "hazard-3030", "unit": "liuhe", "params": {
        "location": "六和社区和平路1号", "grade": "一般"}}, headers=auth("wang-qiang"))
    assert r.status_code == 201, r.text
    steps = {s["step"]: s for s in r.json()["steps"]}
    # 验收 is for major hazards only (when: params.grade == '重大'): a 一般 one never reaches it.
    assert steps["accept"]["status"] == "pending" and steps["accept"]["assignees"] == []
    # A general gas leak may still become major at the assessment: its clock is shown.
    assert gas_leak(client, auth, "一般")["verbal"]["due_at"] is not None


def test_a_refusal_says_whom_to_call(client: TestClient, auth: Auth, rt: Runtime) -> None:
    steps = gas_leak(client, auth, "重大")
    receive = steps["receive"]
    r = client.post(f"/api/tasks/{receive['id']}/complete", json={"note": "已接报"},
                    headers=auth("liuhe-grid"))
    assert r.status_code == 403
    holders = "、".join(a["name"] for a in receive["assignees"])
    assert "需要值班员（duty_officer）" in r.json()["detail"] and holders in r.json()["detail"]
    r = client.post("/api/runs", json={"playbook": "gas-leak", "unit": "liuhe", "params": {
        "location": "x", "grade": "一般"}}, headers=auth("sun-li"))
    assert r.status_code == 403 and "需要指挥长（commander）" in r.json()["detail"]
