"""Going back a stage (a typhoon's warning downgraded: 降级、调整响应) on the shipped 台风633
playbook and the demo district: the commander calls off the named open tasks of the higher
stages, or all of them, with a note; called-off tasks stop their timers and escalation, are
`cancelled` (not done) with a `called_off` event each, and their holders are told in the inbox
and on their own channels; tasks already done stay done, and the rest stay open by choice.
Real runtime and database; the clock is a ManualClock, moved, never slept on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import (
    complete_answered,
    run_events,
    run_steps,
)
from factories import run_row as get_run
from sqlmodel import select
from typhoon_demo import COMMANDER, LIUHE_URL, NOTE, PLAYBOOK, typhoon_runtime

from flows import lifecycle
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.errors import Conflict, InvalidInput
from models.escalation import Escalation
from models.outbox import Notification
from models.task import StepInstance


@pytest.fixture
def typhoon(tmp_path: Path, clock: ManualClock) -> Runtime:
    """The shipped playbooks on the demo district, where 六和社区's head also has a channel of
    her own (in the shipped chart community heads have only the inbox)."""
    return typhoon_runtime(tmp_path, clock)


def start_severe(rt: Runtime) -> int:
    """A run at 坪山街道 moved to 台风警报, then to 橙色/红色预警 (紧急警报 handed out on the
    way)."""
    run = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id="pingshan-street",
                              params={"name": "山竹"}, actor=COMMANDER)
    lifecycle.set_stage(rt, run_id=run.id or 0, stage="warning", actor=COMMANDER)
    lifecycle.set_stage(rt, run_id=run.id or 0, stage="severe", actor=COMMANDER)
    return run.id or 0


def by_key(rt: Runtime, run_id: int) -> dict[str, dict[str, StepInstance]]:
    """step key -> unit -> instance."""
    out: dict[str, dict[str, StepInstance]] = {}
    for row in run_steps(rt, run_id):
        out.setdefault(row.step_key, {})[row.unit_id] = row
    return out


def notes(rt: Runtime, run_id: int, kind: str) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == kind)
            .order_by(Notification.id)).all())  # type: ignore[arg-type]


def status_of(rt: Runtime, step_id: int | None) -> str:
    with read_session(rt.db) as session:
        row = session.get(StepInstance, step_id)
        assert row is not None
        return row.status


def test_going_back_calls_off_the_named_tasks_and_keeps_the_rest(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = start_severe(typhoon)
    steps = by_key(typhoon, run_id)
    complete_answered(typhoon, steps["transfer"]["heping"])  # 和平社区 moved its people already
    clock.advance(timedelta(minutes=20))
    named = [steps["transfer"]["liuhe"].id or 0, steps["severe-community"]["liuhe"].id or 0]

    moved = lifecycle.change_stage(typhoon, run_id=run_id, stage="emergency", actor=COMMANDER,
                                   call_off=named, note=NOTE)

    assert moved.back and sorted(moved.called_off) == sorted(named)
    after = by_key(typhoon, run_id)
    for row in (after["transfer"]["liuhe"], after["severe-community"]["liuhe"]):
        assert row.status == "cancelled" and row.next_check_at is None
        assert row.done_at == clock.now() and not row.submitted_by
    assert after["transfer"]["heping"].status == "done"  # done stays done
    # Everything else of 橙色/红色预警 is open still, and said to be kept.
    kept = [r for key in ("severe-street", "severe-community", "severe-public", "transfer")
            for r in after[key].values() if r.status not in ("cancelled", "done")]
    assert len(kept) == 1 + 4 + 5 + 3
    assert {r.status for r in kept} == {"ready"} and all(r.next_check_at for r in kept)
    # And the 应转未转 rounds of the four communities whose transfer is not in (和平社区 moved
    # everyone: passed over), waiting on it, 六和社区's on the transfer handed out again.
    waiting = [r for r in after["transfer-followup"].values() if r.status == "pending"]
    assert len(waiting) == 4 and after["transfer-followup"]["heping"].status == "skipped"
    assert sorted(moved.kept_open) == sorted(r.id for r in kept + waiting)
    # The stages below stay as they were: 紧急警报 and 台风警报 tasks are untouched.
    assert {r.status for r in after["emergency-community"].values()} == {"ready"}
    assert get_run(typhoon, run_id).stage == "emergency"

    # The timeline: the stage change counts what was called off and kept, with the note; one
    # `called_off` event per task, from its status then.
    change = run_events(typhoon, run_id, "stage_changed")[-1]
    assert (change.from_state, change.to_state) == ("severe", "emergency")
    assert change.detail == {"called_off": 2, "kept_open": 13 + 4, "note": NOTE}
    offs = run_events(typhoon, run_id, "called_off")
    assert sorted(e.step_id or 0 for e in offs) == sorted(named)
    assert {(e.actor, e.from_state, e.to_state, e.detail["note"]) for e in offs} == \
        {(COMMANDER, "ready", "cancelled", NOTE)}

    # 贾丽萍 (六和社区) is told once, for both tasks, in her inbox and on her own channel.
    told = notes(typhoon, run_id, "called_off")
    assert {(n.recipient, n.url) for n in told} == {("liuhe-head", "inbox://"),
                                                     ("liuhe-head", LIUHE_URL)}
    assert all(n.title.startswith("【任务撤销】") for n in told)
    body = told[0].body
    assert NOTE in body and "紧急警报（蓝色/黄色预警）" in body
    assert "【橙色/红色预警】危险区人员转移（六和社区）" in body
    assert "【橙色/红色预警】社区落实三项防御措施（六和社区）" in body
    assert typhoon.org.people[COMMANDER].name in body


def test_called_off_tasks_are_no_longer_chased_and_kept_ones_are(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = start_severe(typhoon)
    steps = by_key(typhoon, run_id)
    off = steps["severe-community"]["liuhe"]
    kept = steps["severe-community"]["heping"]
    lifecycle.set_stage(typhoon, run_id=run_id, stage="emergency", actor=COMMANDER,
                        call_off=[off.id or 0], note=NOTE)
    clock.advance(timedelta(hours=12))  # past every 橙红 deadline and its repeats
    sweep_once(typhoon)
    with read_session(typhoon.db) as session:
        chased = set(session.exec(select(Escalation.step_id).where(
            Escalation.run_id == run_id)).all())
    assert kept.id in chased and off.id not in chased
    assert status_of(typhoon, off.id) == "cancelled"


def test_call_off_all_takes_every_open_task_of_every_stage_above(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = start_severe(typhoon)
    steps = by_key(typhoon, run_id)
    complete_answered(typhoon, steps["warning-street"]["pingshan-street"])
    complete_answered(typhoon, steps["severe-public"]["dongmen"])
    lifecycle.set_stage(typhoon, run_id=run_id, stage="emergency", actor=COMMANDER)  # kept
    assert run_events(typhoon, run_id, "stage_changed")[-1].detail == \
        {"called_off": 0, "kept_open": 15 + 5}  # + each community's 应转未转 rounds, waiting
    # Down to 台风消息: 台风警报's, 紧急警报's and the 橙红 tasks kept before all go.
    moved = lifecycle.change_stage(typhoon, run_id=run_id, stage="message", actor=COMMANDER,
                                   call_off_all=True, note="台风转向，预警降级")
    after = by_key(typhoon, run_id)
    above = [r for key, rows in after.items() if not key.startswith("message-")
             for r in rows.values()]
    assert {r.status for r in above} == {"cancelled", "done"}
    assert {r.id for r in above if r.status == "done"} == \
        {steps["warning-street"]["pingshan-street"].id, steps["severe-public"]["dongmen"].id}
    assert sorted(moved.called_off) == sorted(r.id for r in above if r.status == "cancelled")
    assert moved.kept_open == []
    assert {r.status for rows in after.values() for r in rows.values()
            if r.step_key.startswith("message-")} == {"ready"}
    # Every holder told once: the street head, five community heads, five grid workers.
    told = {n.recipient for n in notes(typhoon, run_id, "called_off")}
    assert len(told) == 11 and "pingshan-street-head" in told


def test_calling_off_is_refused_without_a_note_going_forward_or_for_other_tasks(
        typhoon: Runtime) -> None:
    run_id = start_severe(typhoon)
    steps = by_key(typhoon, run_id)
    severe = steps["severe-community"]["liuhe"].id or 0
    go: dict[str, Any] = {"rt": typhoon, "run_id": run_id, "actor": COMMANDER}
    with pytest.raises(InvalidInput) as no_note:
        lifecycle.set_stage(**go, stage="emergency", call_off=[severe], note="  ")
    assert no_note.value.field == "note"
    with pytest.raises(InvalidInput) as forward:
        lifecycle.set_stage(**go, stage="landfall", call_off_all=True, note=NOTE)
    assert forward.value.field == "call_off"
    # A task of the stage being entered (or below) is not the downgrade's to call off.
    lower = steps["emergency-community"]["liuhe"].id or 0
    with pytest.raises(InvalidInput) as other:
        lifecycle.set_stage(**go, stage="emergency", call_off=[lower], note=NOTE)
    assert other.value.field == "call_off" and str(lower) in str(other.value)
    # One finished while the commander decided: a conflict; nothing changes.
    complete_answered(typhoon, steps["severe-community"]["liuhe"])
    with pytest.raises(Conflict):
        lifecycle.set_stage(**go, stage="emergency", call_off=[severe], note=NOTE)
    assert get_run(typhoon, run_id).stage == "severe"
    assert status_of(typhoon, severe) == "done"
    assert run_events(typhoon, run_id, "called_off") == []
