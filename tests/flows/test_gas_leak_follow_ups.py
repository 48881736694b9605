"""The 续报 of a major gas leak (playbooks/gas-leak.yaml, demo district 坪山区): the first once
the response level is set, then every day due at 08:00 and 17:00 (handed out an hour before)
until the response is closed. Each round is a new task in the duty room's inbox, sent to the
county duty office by its own follow-up-send with that round's facts; the close withdraws
the round written ahead, and the 终报 ends the run. Segments run bare (drain_wakes); the
clock is a ManualClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gas_leak_walk import rounds, steps, verifier_for, walk_up_to_the_close
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
    run_id = walk_up_to_the_close(demo, clock)  # Monday 09:00, the close left open
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
    assert set(told) == {
        "【新任务】续报事件处置进展（第2次，03-02 17:00前）·六和社区幸福里小区3栋1单元"}

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


def report_round(demo: Runtime, row: StepInstance, who: str, **outputs: str) -> None:
    tasks.complete(demo, step_id=row.id or 0, actor=who, outputs=outputs)


def test_each_follow_up_sent_carries_its_own_rounds_facts_and_writer(
        demo: Runtime, clock: ManualClock) -> None:
    """Two rounds done before their sending runs (Prefect slow, the server restarting): each
    续报 still says what was written in its own round, signed by whoever wrote it, and a
    round that leaves 下一步工作 empty does not repeat the previous round's."""
    run_id = walk_up_to_the_close(demo, clock)
    clock.set(shanghai(2, 16, 0))
    sweep_once(demo)
    report_round(demo, rounds(demo, run_id)[1], "pingshan-duty-2",  # 吴静
                 progress="16时：泄漏点已封堵，警戒区缩小", next_steps="夜间安排专人值守")
    drain_wakes(demo)
    clock.set(shanghai(3, 7, 0))
    sweep_once(demo)
    clock.advance(timedelta(minutes=30))
    third = rounds(demo, run_id)[2]
    report_round(demo, third, "pingshan-duty-3", progress="7时：现场已恢复供气")  # 郑涛
    fourth_clock = shanghai(3, 16, 0)
    clock.set(fourth_clock)
    sweep_once(demo)
    report_round(demo, rounds(demo, run_id)[3], "pingshan-duty-2",
                 progress="16时：居民全部返回")
    drain_wakes(demo)  # the last two sendings render together

    sends = rounds(demo, run_id, "follow-up-send")
    assert [s.status for s in sends] == ["done", "done", "done", "done"]
    second, third, fourth = (to_county(demo, s) for s in sends[1:])
    assert "16时：泄漏点已封堵" in second and "报告人：吴静" in second
    assert "7时：现场已恢复供气" in third and "16时：居民全部返回" not in third
    assert "报告人：郑涛" in third
    # Round 3 said no next steps: not round 2's, nor the system report's of the first hour.
    assert "## 四、下一步工作\n继续做好现场处置和善后工作，及时续报" in third
    assert "16时：居民全部返回" in fourth and "报告人：吴静" in fourth
