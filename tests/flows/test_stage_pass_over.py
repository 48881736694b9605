"""Passing stages over on a jump forward (flows/passed_stages.py), on the shipped 台风633
playbook and demo district: the typhoon turned away after communities moved people at
橙色/红色预警. Ending there is refused (their returns are 解除's work), so the commander enters
解除 and passes 台风登陆 over, with a note: no community gets landing measures for a storm that
never landed, the returns go out, and the response ends once 解除's work is in. If the storm
turns back, going back down to 台风登陆 makes its measures owed again. Real runtime and
database; the clock is a ManualClock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import complete_answered, run_steps
from factories import run_row as get_run
from sqlmodel import select

from flows import lifecycle
from flows.context import steps_view
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.errors import InvalidInput
from models.task import StepInstance

COMMANDER = "maluan-commander"  # 马峦街道: three communities
PARAMS = {"name": "山竹（1822）", "landfall": "2026-03-03T14:00:00+08:00", "signal": "橙色",
          "areas": ["马峦社区山边危房"]}
LANDFALL = ("landfall-street", "landfall-community", "landfall-public")


def start(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="typhoon-633", unit_id="maluan", params=PARAMS,
                              actor=COMMANDER)
    return run.id or 0


def keyed(rt: Runtime, run_id: int) -> dict[str, list[StepInstance]]:
    out: dict[str, list[StepInstance]] = {}
    for row in run_steps(rt, run_id):
        out.setdefault(row.step_key, []).append(row)
    return out


def stage_events(rt: Runtime, run_id: int) -> list[AuditEvent]:
    with read_session(rt.db) as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "stage_changed")
            .order_by(AuditEvent.id)).all())  # type: ignore[arg-type]


def moved_people(rt: Runtime, clock: ManualClock) -> tuple[int, StepInstance]:
    """A run at 橙色/红色预警 whose first community recorded moving 120 people."""
    run_id = start(rt)
    lifecycle.set_stage(rt, run_id=run_id, stage="severe", actor=COMMANDER)
    clock.advance(timedelta(minutes=30))
    transfer = keyed(rt, run_id)["transfer"][0]
    complete_answered(rt, transfer, people=120)
    return run_id, transfer


def test_a_typhoon_that_turned_away_enters_recovery_without_the_landing_measures(
        demo: Runtime, clock: ManualClock) -> None:
    run_id, transfer = moved_people(demo, clock)
    for other in keyed(demo, run_id)["transfer"][1:]:  # the others record theirs (none moved)
        complete_answered(demo, other, people=0)
    moved = lifecycle.change_stage(demo, run_id=run_id, stage="recovery", actor=COMMANDER,
                                   pass_over=["台风登陆"], note="台风转向，未登陆")
    assert moved.passed_over == ["landfall"]
    run = get_run(demo, run_id)
    assert (run.stage, run.passed_over_stages) == ("recovery", ["landfall"])
    steps = keyed(demo, run_id)
    assert not any(key in steps for key in LANDFALL)
    # The community that moved people gets its return, paired with its own record.
    returns = {r.unit_id: r.status for r in steps["return"]}
    assert returns[transfer.unit_id] == "ready"
    last = stage_events(demo, run_id)[-1]
    assert (last.from_state, last.to_state) == ("severe", "recovery")
    assert last.detail == {"passed_over": ["landfall"], "note": "台风转向，未登陆"}
    # Templates and `when`s read the passed-over steps as passed over, like a false `when`.
    with read_session(demo.db) as session:
        view = steps_view(session, demo, run)
    assert view["landfall-street"]["status"] == "skipped"

    # 解除's work in, the commander ends the response: nothing of 台风登陆 is owed.
    for row in keyed(demo, run_id)["return"]:
        complete_answered(demo, row, returned=120 if row.unit_id == transfer.unit_id else 0,
                          remaining=0)
    for key in ("recovery-street", "recovery-community", "recovery-public"):
        for row in keyed(demo, run_id)[key]:
            complete_answered(demo, row)
    drain_wakes(demo)
    assert [r.status for r in keyed(demo, run_id)["summary"]] == ["done"]
    lifecycle.end_response(demo, run_id=run_id, actor=COMMANDER, note="台风已远离")
    assert get_run(demo, run_id).status == "completed"
    assert not any(key in keyed(demo, run_id) for key in LANDFALL)


def test_the_storm_turning_back_makes_the_passed_over_stage_owed_again(
        demo: Runtime, clock: ManualClock) -> None:
    run_id, _ = moved_people(demo, clock)
    lifecycle.change_stage(demo, run_id=run_id, stage="recovery", actor=COMMANDER,
                           pass_over=["landfall"], note="台风转向，未登陆")
    clock.advance(timedelta(hours=3))
    back = lifecycle.change_stage(demo, run_id=run_id, stage="landfall", actor=COMMANDER)
    assert back.owed_again == ["landfall"]
    run = get_run(demo, run_id)
    assert (run.stage, run.passed_over_stages) == ("landfall", [])
    steps = keyed(demo, run_id)
    communities = [u.id for u in demo.org.units_where(type="community", within="maluan")]
    assert [r.unit_id for r in steps["landfall-community"]] == communities
    assert {r.status for key in LANDFALL for r in steps[key]} == {"ready"}
    assert all(r.ready_at == clock.now() for key in LANDFALL for r in steps[key])
    assert stage_events(demo, run_id)[-1].detail["owed_again"] == ["landfall"]


def test_going_back_below_a_passed_over_stage_owes_it_on_the_way_up_again(
        demo: Runtime, clock: ManualClock) -> None:
    run_id, _ = moved_people(demo, clock)
    lifecycle.change_stage(demo, run_id=run_id, stage="recovery", actor=COMMANDER,
                           pass_over=["landfall"], note="台风转向，未登陆")
    lifecycle.change_stage(demo, run_id=run_id, stage="severe", actor=COMMANDER)
    assert get_run(demo, run_id).passed_over_stages == []
    assert not any(key in keyed(demo, run_id) for key in LANDFALL)
    lifecycle.change_stage(demo, run_id=run_id, stage="landfall", actor=COMMANDER)
    assert all(key in keyed(demo, run_id) for key in LANDFALL)


@pytest.mark.parametrize(("to", "named", "note", "field", "said"), [
    ("recovery", ["landfall"], None, "note", "跳过阶段须写明说明"),
    ("recovery", ["landfall"], "  ", "note", "跳过阶段须写明说明"),
    ("recovery", ["severe"], "台风转向", "pass_over", "只能跳过本次切换越过的阶段（台风登陆）"),
    ("recovery", ["recovery"], "台风转向", "pass_over", "只能跳过本次切换越过的阶段"),
    ("recovery", ["地震"], "台风转向", "stage", "没有阶段 地震"),
    ("landfall", ["landfall"], "台风转向", "pass_over", "不越过任何阶段"),
    ("warning", ["emergency"], "预警降级", "pass_over", "只有向前越级切换时才能跳过中间阶段"),
])
def test_a_pass_over_that_does_not_fit_the_move_is_refused_and_changes_nothing(
        demo: Runtime, clock: ManualClock, to: str, named: list[str], note: str | None,
        field: str, said: str) -> None:
    run_id, _ = moved_people(demo, clock)
    before = {(r.id, r.status) for r in run_steps(demo, run_id)}
    events = len(stage_events(demo, run_id))
    with pytest.raises(InvalidInput) as refused:
        lifecycle.change_stage(demo, run_id=run_id, stage=to, actor=COMMANDER,
                               pass_over=named, note=note)
    assert refused.value.field == field
    assert said in refused.value.message
    run = get_run(demo, run_id)
    assert (run.stage, run.passed_over_stages) == ("severe", [])
    assert {(r.id, r.status) for r in run_steps(demo, run_id)} == before
    assert len(stage_events(demo, run_id)) == events
