"""GET /api/tasks/{id} `deadline_basis` (flows/deadline_basis.py): a report due from the alert
says so (时限自接报（09:00）起算，应于09:05前报送); the 半小时口头报告 of a 重大 leak judged 40
minutes in is handed out 10 minutes past its deadline, and says so, naming the judgement that
held it up (not the automatic document between them); a deadline counted from the hand-out has
none; a hand-out across midnight gives the dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gas_leak_walk import finish, start, steps

from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock

Auth = Any
COMMANDER = "wang-qiang"


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def read(client: TestClient, auth: Auth, task_id: int | None) -> dict[str, Any]:
    r = client.get(f"/api/tasks/{task_id}", headers=auth(COMMANDER))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_verbal_report_handed_out_late_says_so_and_what_held_it_up(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    run_id = start(rt, "重大")  # 09:00
    clock.advance(timedelta(minutes=1))
    finish(rt, run_id, "receive")
    drain_wakes(rt)
    first = read(client, auth, steps(rt, run_id)["report.write"].id)["deadline_basis"]
    assert first["text"] == "时限自接报（09:00）起算，应于09:05前报送"
    assert first["late_at_hand_out_minutes"] is None and first["late_text"] is None
    assert first["since_local"] == "2026-03-02 09:00"
    assert first["deadline_local"] == "2026-03-02 09:05"

    clock.set(datetime(2026, 3, 2, 1, 40, 30, tzinfo=UTC))  # judged at 09:40:30
    finish(rt, run_id, "assess", "重大")
    drain_wakes(rt)
    verbal = read(client, auth, steps(rt, run_id)["verbal"].id)
    basis = verbal["deadline_basis"]
    assert basis["text"] == "时限自接报（09:00）起算，应于09:30前报送"
    assert basis["late_at_hand_out_minutes"] == 10
    assert basis["held_up_by"]["step"] == "assess"
    assert basis["held_up_by"]["title"] == "初步研判事件等级和影响范围"
    assert basis["late_text"] == "已超时10分钟才派发（等待“初步研判事件等级和影响范围”，09:40完成）"
    assert verbal["due_at_local"] == "2026-03-02 09:30" and verbal["overdue_minutes"] >= 10

    # A deadline counted from the hand-out (the grid worker's 15 minutes) has no such basis.
    assert read(client, auth, steps(rt, run_id)["verify"].id)["deadline_basis"] is None


def test_a_hand_out_on_another_day_gives_the_dates(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    clock.set(datetime(2026, 3, 2, 15, 50, tzinfo=UTC))  # 23:50
    run_id = start(rt, "重大")
    clock.advance(timedelta(minutes=1))
    finish(rt, run_id, "receive")
    clock.set(datetime(2026, 3, 2, 16, 45, tzinfo=UTC))  # judged 00:45 the next day
    finish(rt, run_id, "assess", "重大")
    drain_wakes(rt)
    basis = read(client, auth, steps(rt, run_id)["verbal"].id)["deadline_basis"]
    assert basis["text"] == "时限自接报（03-02 23:50）起算，应于03-03 00:20前报送"
    assert basis["late_text"] == ("已超时25分钟才派发（等待“初步研判事件等级和影响范围”，"
                                  "03-03 00:45完成）")
