"""The 续报 of a major gas leak (playbooks/gas-leak.yaml, demo district 坪山区): the first once
the response level is set, then every day due at 08:00 and 17:00 (handed out an hour before)
until the response is closed. Each round is a new task in the duty room's inbox, sent to the
county duty office by its own follow-up-send with that round's facts; the close withdraws
the round written ahead, and the 终报 ends the run. Segments run bare (drain_wakes); the
clock is a ManualClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gas_leak_walk import rounds, start, steps, verifier_for, work_round
from sqlmodel import select

from flows import tasks
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.outbox import Notification
from models.task import StepInstance


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def to_county(rt: Runtime, step: StepInstance) -> str:
    with read_session(rt.db) as session:
        return session.exec(select(Notification.body).where(
            Notification.step_id == step.id,
            Notification.recipient == "county_duty_office")).one()


def test_a_major_leak_is_reported_again_at_eight_and_five_until_it_is_closed(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, "重大")  # Monday 09:00
    for _ in range(30):  # everything but the close, a minute apart
        drain_wakes(demo)
        if not work_round(demo, run_id, "重大", skip=("close",)):
            break
        clock.advance(timedelta(minutes=1))
    drain_wakes(demo)
    first, scheduled = rounds(demo, run_id)
    assert first.status == "done"
    assert [s.status for s in rounds(demo, run_id, "follow-up-send")] == ["done"]
    assert scheduled.status == "pending" and scheduled.next_check_at == shanghai(2, 16)
    assert scheduled.title == "续报事件处置进展（第2次，03-02 17:00前）"
    assert steps(demo, run_id)["close"].status == "ready"  # the 终报 does not wait for 17:00

    clock.set(shanghai(2, 16, 0))
    assert sweep_once(demo).rounds_started == 1
    second = rounds(demo, run_id)[1]
    assert (second.status, second.due_at, second.assignees) == (
        "ready", shanghai(2, 17), first.assignees)
    with read_session(demo.db) as session:
        told = session.exec(select(Notification.title).where(
            Notification.step_id == second.id, Notification.kind == "assigned")).all()
    assert set(told) == {"【新任务】续报事件处置进展（第2次，03-02 17:00前）"}

    clock.advance(timedelta(minutes=20))
    tasks.complete(demo, step_id=second.id or 0, actor=second.assignees[0],
                   outputs={"progress": "泄漏点已更换立管接口，恢复供气，疏散群众已返回",
                            "next_steps": "继续监测周边可燃气体浓度"})
    drain_wakes(demo)
    sends = rounds(demo, run_id, "follow-up-send")
    assert [s.status for s in sends] == ["done", "done"]
    body = to_county(demo, sends[1])
    assert "突发事件续报" in body and "泄漏点已更换立管接口，恢复供气，疏散群众已返回" in body
    assert "泄漏点已更换立管接口" not in to_county(demo, sends[0])

    # The close (verified by the duty leader) withdraws Tuesday 08:00's round; the 终报 ends it.
    close = steps(demo, run_id)["close"]
    tasks.complete(demo, step_id=close.id or 0, actor=close.assignees[0],
                   outputs={"summary": "处置完毕"}, note="处置终结")
    close = steps(demo, run_id)["close"]
    tasks.verify(demo, step_id=close.id or 0, actor=verifier_for(demo, close), approve=True,
                 note="同意终报")
    drain_wakes(demo)
    assert [r.status for r in rounds(demo, run_id)] == ["done", "done", "cancelled"]
    assert steps(demo, run_id)["close-send"].status == "done"
    clock.set(shanghai(3, 7, 1))
    assert sweep_once(demo).rounds_started == 0
