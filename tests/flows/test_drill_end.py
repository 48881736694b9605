"""结束演练 in the engine (flows/drill_end.py): a drill's child runs end with it the same way
(completed, by the same commander, never 已取消 as a real parent's children are); a drill of the
staged 台风633 ends at any stage, with or without a note, where the real response keeps its
rules (a note to end early; refused once people were moved); and end_run sends a real run to
end_response unchanged. Real runtime and database (SQLite, and PostgreSQL for the row locks);
time moved with a ManualClock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import complete_answered, run_events, run_row, run_steps
from sqlmodel import select

from flows import lifecycle, tasks
from flows.drill_end import end_run
from flows.drills import Drill
from flows.evaluation import evaluate
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.errors import Conflict, Forbidden, InvalidInput
from models.outbox import Notification

TYPHOON = {"name": "山竹（1822）", "landfall": "2026-03-03T14:00:00+08:00", "signal": "橙色",
           "areas": ["马峦社区山边危房"]}
STREET = "maluan-commander"  # 马峦街道's commander


def with_child(rt: Runtime, clock: ManualClock, drill: Drill | None) -> tuple[int, int]:
    """The engine fixture `branching` at the point where it has started quick-escalation as a
    child run (its `child` step waiting on it)."""
    run = lifecycle.start_run(rt, playbook_id="branching", unit_id="c1", params={},
                              actor="s1-commander", drill=drill)
    rid = run.id or 0
    for key in ("start", "after-major"):
        [step] = [s for s in run_steps(rt, rid) if s.step_key == key]
        tasks.complete(rt, step_id=step.id or 0, actor="s1-duty")
    clock.advance(timedelta(minutes=61))
    sweep_once(rt)
    drain_wakes(rt)
    [step] = [s for s in run_steps(rt, rid) if s.step_key == "child"]
    return rid, int(step.outputs["child_run"])


def test_a_drills_child_runs_end_with_it_the_same_way(rt: Runtime, clock: ManualClock) -> None:
    parent, child = with_child(rt, clock, Drill(kind="实战演练"))
    assert run_row(rt, child).status == "running"
    open_in_child = [s.id for s in run_steps(rt, child) if s.status in ("ready", "acked")]
    assert open_in_child
    end_run(rt, run_id=parent, actor="s1-commander", note="演练结束")
    assert (run_row(rt, parent).status, run_row(rt, child).status) == ("completed", "completed")
    [ended] = run_events(rt, child, "run_completed")
    assert ended.actor == "s1-commander"
    assert (ended.detail["drill_end"], ended.detail["parent_run"], ended.detail["note"]) == (
        True, parent, "演练结束")
    assert ended.detail["called_off_ids"] == open_in_child
    assert run_events(rt, child, "run_cancelled") == []
    summary = evaluate(rt, run_id=child, actor="s1-commander")["summary"]
    assert (summary["ended"]["how_zh"], summary["ended"]["by_name"]) == ("结束演练", "一街道指挥长")


def test_a_person_holding_tasks_in_a_drill_and_its_child_is_told_once(
        rt: Runtime, clock: ManualClock) -> None:
    """The child is the same drill: 一社区网格员, holding 社区签到 in the drill and 现场核查 in the
    run it started, reads one 【演练】演练结束, the drill's, not one per run."""
    parent, child = with_child(rt, clock, Drill(kind="实战演练"))
    lifecycle.set_stage(rt, run_id=parent, stage="warning", actor="s1-commander")
    receive = [s for s in run_steps(rt, child) if s.step_key == "receive"][0]
    tasks.complete(rt, step_id=receive.id or 0, actor="s1-duty")
    drain_wakes(rt)
    holding = {run_id: {s.title for s in run_steps(rt, run_id)
                        if "c1-grid" in s.assignees and s.status in ("ready", "acked")}
               for run_id in (parent, child)}
    assert all(holding.values()), holding
    end_run(rt, run_id=parent, actor="s1-commander")
    with read_session(rt.db) as session:
        told = session.exec(select(Notification.recipient, Notification.run_id).where(
            Notification.kind == "ended")).all()
    assert [run_id for who, run_id in told if who == "c1-grid"] == [parent]
    assert sorted(who for who, _ in told) == sorted(set(who for who, _ in told))


def test_a_drill_and_its_child_end_together_on_postgresql(pg_rt: Runtime, clock: ManualClock
                                                         ) -> None:
    """On PostgreSQL the end takes the run's row lock, then each child's (flows/progress.py
    lock_run), parent before child as every other writer does."""
    parent, child = with_child(pg_rt, clock, Drill(kind="桌面推演"))
    end_run(pg_rt, run_id=parent, actor="s1-commander")
    assert (run_row(pg_rt, parent).status, run_row(pg_rt, child).status) == (
        "completed", "completed")
    assert [e.detail["parent_run"] for e in run_events(pg_rt, child, "run_completed")] == [
        parent]


def test_a_real_parent_ending_still_cancels_its_children(rt: Runtime, clock: ManualClock
                                                         ) -> None:
    """Unchanged for a real run: cancelled, its children are cancelled with it."""
    parent, child = with_child(rt, clock, None)
    lifecycle.cancel_run(rt, run_id=parent, actor="s1-commander", reason="误报")
    assert run_row(rt, child).status == "cancelled"


def test_end_run_refuses_a_real_unstaged_run_as_before(rt: Runtime) -> None:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一号楼"},
                              actor="s1-commander")
    with pytest.raises(InvalidInput) as refused:
        end_run(rt, run_id=run.id or 0, actor="s1-commander")
    assert refused.value.field == "run"
    assert run_row(rt, run.id or 0).status == "running"


def at_severe_with_people_moved(rt: Runtime, clock: ManualClock, drill: Drill | None) -> int:
    """A 633 response at 橙色/红色预警 whose first community recorded moving 120 people."""
    run = lifecycle.start_run(rt, playbook_id="typhoon-633", unit_id="maluan", params=TYPHOON,
                              actor=STREET, drill=drill)
    lifecycle.set_stage(rt, run_id=run.id or 0, stage="severe", actor=STREET)
    clock.advance(timedelta(minutes=30))
    transfer = [s for s in run_steps(rt, run.id or 0) if s.step_key == "transfer"][0]
    complete_answered(rt, transfer, people=120)
    return run.id or 0


def test_a_real_typhoon_response_keeps_its_rules_to_end(demo: Runtime, clock: ManualClock
                                                        ) -> None:
    real = at_severe_with_people_moved(demo, clock, None)
    with pytest.raises(InvalidInput) as no_note:
        end_run(demo, run_id=real, actor=STREET)
    assert no_note.value.field == "note"
    with pytest.raises(Conflict):  # people in shelters: their return is 解除's work
        end_run(demo, run_id=real, actor=STREET, note="台风转向")
    assert run_row(demo, real).status == "running"


def test_a_typhoon_drill_ends_at_any_stage(demo: Runtime, clock: ManualClock) -> None:
    drill = at_severe_with_people_moved(demo, clock, Drill(kind="桌面推演", title="台风防御推演"))
    with pytest.raises(Forbidden):  # a commander of another street
        end_run(demo, run_id=drill, actor="biling-commander")
    assert run_row(demo, drill).status == "running"
    end_run(demo, run_id=drill, actor=STREET)
    assert run_row(demo, drill).status == "completed"
    assert [s for s in run_steps(demo, drill) if s.status in ("ready", "acked", "pending")] == []
    [ended] = run_events(demo, drill, "run_completed")
    assert ended.detail["drill_end"] is True and ended.detail["stage"] == "severe"
    assert ended.detail["note"] is None and ended.detail["unanswered"]


def test_the_evaluation_says_how_a_real_response_and_a_cancelled_child_ended(
        demo: Runtime, rt: Runtime, clock: ManualClock) -> None:
    run = lifecycle.start_run(demo, playbook_id="typhoon-633", unit_id="maluan",
                              params=TYPHOON, actor=STREET)
    end_run(demo, run_id=run.id or 0, actor=STREET, note="台风转向，预警解除")
    ended = evaluate(demo, run_id=run.id or 0, actor=STREET)["summary"]["ended"]
    assert (ended["how"], ended["how_zh"], ended["by_name"], ended["note"]) == (
        "response_end", "结束响应", "郝家豪", "台风转向，预警解除")
    assert ended["by"] == STREET and ended["called_off"] is None
    steps = evaluate(demo, run_id=run.id or 0, actor=STREET)["steps"]
    assert "ended_not_due" not in {s["outcome"] for s in steps}  # a real end: 已撤销 as before

    parent, child = with_child(rt, clock, None)
    lifecycle.cancel_run(rt, run_id=parent, actor="s1-commander", reason="误报")
    ended = evaluate(rt, run_id=child, actor="s1-commander")["summary"]["ended"]
    assert (ended["how"], ended["how_zh"], ended["by"], ended["note"]) == (
        "cancelled", "取消", "system", "随上级流程取消")
