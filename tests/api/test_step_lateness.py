"""How late a step is, in GET /api/runs/{id}: a gas leak's receipt (due 3 minutes after the
alert) a minute late is 1 minute late and 0 days (the page says "逾期 1分钟", as the task page
and the inbox do, never "逾期 1 天"), in its step row and in 当前卡点 alike; a full day late it
counts days as the registers do (flows/lateness.py). The demo district, through the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock

COMMANDER = "wang-qiang"


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def receipt(client: TestClient, auth, run_id: int) -> tuple[dict[str, Any], dict[str, Any]]:  # noqa: ANN001
    """The receipt's step row and its 当前卡点 entry."""
    run = client.get(f"/api/runs/{run_id}", headers=auth(COMMANDER)).json()
    step = next(s for s in run["steps"] if s["step"] == "receive")
    held = next(x for x in run["holdup"] if x["step"] == "receive")
    return step, held


def test_a_step_a_minute_late_is_a_minute_late_not_a_day(
    client: TestClient, auth, rt: Runtime, clock: ManualClock  # noqa: ANN001
) -> None:
    r = client.post("/api/runs", headers=auth(COMMANDER), json={
        "playbook": "gas-leak", "unit": "liuhe",
        "params": {"location": "六和社区深汕路88号", "grade": "一般"}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    step, held = receipt(client, auth, run_id)
    assert (step["overdue_minutes"], step["overdue_days"]) == (0, 0)  # 3 minutes left

    clock.advance(timedelta(minutes=4))  # due at 09:03, read at 09:04
    sweep_once(rt)
    step, held = receipt(client, auth, run_id)
    assert step["overdue"] is True
    assert (step["overdue_minutes"], step["overdue_days"]) == (1, 0)
    assert (held["overdue_minutes"], held["overdue_days"]) == (1, 0)
    assert held["due_at"] == step["due_at"]  # for the page's countdown

    # A minute short of a day: still said by the minute; a full day: in days, as registers do.
    clock.advance(timedelta(hours=23, minutes=58))
    step, held = receipt(client, auth, run_id)
    assert (step["overdue_minutes"], step["overdue_days"]) == (1439, 0)
    clock.advance(timedelta(minutes=1))
    step, held = receipt(client, auth, run_id)
    assert (step["overdue_minutes"], step["overdue_days"]) == (1440, 1)
    assert (held["overdue_minutes"], held["overdue_days"]) == (1440, 1)

    # Done, it is late no longer: neither figure.
    r = client.post(f"/api/tasks/{step['id']}/complete", headers=auth("pingshan-duty-1"),
                    json={"outputs": {"scene": "一层厨房管道破损"}})
    assert r.status_code == 200, r.text
    run = client.get(f"/api/runs/{run_id}", headers=auth(COMMANDER)).json()
    done = next(s for s in run["steps"] if s["step"] == "receive")
    assert (done["overdue_minutes"], done["overdue_days"]) == (None, None)
