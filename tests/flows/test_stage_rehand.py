"""Entering a stage again after a downgrade called off its tasks (a typhoon 橙色 → 黄色 → 橙色):
the called-off tasks are handed out again as new instances, through the same path as a first
entry (assignees, deadlines from the new entry, timers, `ready` events, holders told), while
the called-off rows and their `called_off` events stay in the timeline; tasks done before the
downgrade stay done, kept ones stay as they are. `needs`, `when` and `for_each` are read as on
a first entry. Real runtime and database; the clock is a ManualClock, moved, never slept on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from factories import (
    SMALL_ORG,
    books_with,
    complete_answered,
    make_runtime,
    run_events,
    run_steps,
)
from sqlmodel import select
from typhoon_demo import COMMANDER, LIUHE_URL, NOTE, PLAYBOOK, typhoon_runtime

from flows import lifecycle, tasks
from flows.context import steps_view
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.escalation import Escalation
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance


@pytest.fixture
def typhoon(tmp_path: Path, clock: ManualClock) -> Runtime:
    """The shipped playbooks on the demo district, where 六和社区's head also has a channel of
    her own (in the shipped chart community heads have only the inbox)."""
    return typhoon_runtime(tmp_path, clock)


def start_at(rt: Runtime, stage: str) -> int:
    """A typhoon run at 坪山街道 moved from 台风消息 straight to `stage`."""
    run = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id="pingshan-street",
                              params={"name": "山竹"}, actor=COMMANDER)
    lifecycle.set_stage(rt, run_id=run.id or 0, stage=stage, actor=COMMANDER)
    return run.id or 0


def rows_of(rt: Runtime, run_id: int, key: str) -> dict[str, list[StepInstance]]:
    """unit -> the step's instances there, oldest first."""
    out: dict[str, list[StepInstance]] = {}
    for row in run_steps(rt, run_id):
        if row.step_key == key:
            out.setdefault(row.unit_id, []).append(row)
    return out


def escalated(rt: Runtime, step_id: int | None) -> list[tuple[str, int, int]]:
    with read_session(rt.db) as session:
        return [(e.kind, e.level, e.repeat) for e in session.exec(
            select(Escalation).where(Escalation.step_id == step_id)
            .order_by(Escalation.id)).all()]  # type: ignore[arg-type]


def test_raised_again_hands_out_the_called_off_tasks_again_and_nothing_else(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = start_at(typhoon, "severe")
    first_entry = clock.now()
    transfer = {unit: rows[0] for unit, rows in rows_of(typhoon, run_id, "transfer").items()}
    community = {u: r[0] for u, r in rows_of(typhoon, run_id, "severe-community").items()}
    complete_answered(typhoon, transfer["heping"])  # 和平社区 moved its people already
    clock.advance(timedelta(minutes=20))
    named = [transfer["liuhe"].id or 0, community["liuhe"].id or 0]
    lifecycle.change_stage(typhoon, run_id=run_id, stage="emergency", actor=COMMANDER,
                           call_off=named, note=NOTE)

    clock.advance(timedelta(hours=3))  # the typhoon turns back and strengthens: 橙色 again
    entered = clock.now()
    moved = lifecycle.change_stage(typhoon, run_id=run_id, stage="severe", actor=COMMANDER)

    assert not moved.back and moved.called_off == [] and len(moved.rehanded) == 2
    transfers = rows_of(typhoon, run_id, "transfer")
    old, new = transfers["liuhe"]
    assert old.id == transfer["liuhe"].id and old.status == "cancelled"
    assert new.id in moved.rehanded and new.rehanded_from == old.id
    assert new.status == "ready" and new.ready_at == entered
    assert new.due_at == entered + timedelta(hours=6)  # from this entry, not the first
    assert new.assignees == ["liuhe-head"] and new.next_check_at is not None
    assert new.title == old.title and new.item == old.item
    again = rows_of(typhoon, run_id, "severe-community")["liuhe"]
    assert [r.status for r in again] == ["cancelled", "ready"]
    assert again[1].due_at == entered + timedelta(hours=2)
    # Done stays done, kept stays as it was: one instance each, nothing handed out twice.
    assert [r.status for r in transfers["heping"]] == ["done"]
    kept = transfers["pingshan-community"]
    assert [(r.status, r.due_at) for r in kept] == \
        [("ready", first_entry + timedelta(hours=6))]
    assert all(len(rows) == 1 for unit, rows in transfers.items() if unit != "liuhe")
    # 台风消息 to 橙红: 11 instances a stage (1 street, 5 communities twice), 5 transfers, 5
    # 应转未转 rounds waiting on them (和平社区's passed over); + 2.
    assert len(run_steps(typhoon, run_id)) == 4 * 11 + 5 + 5 + 2

    # The timeline keeps both: the called-off task's event, then the new one's `ready`
    # naming it, after the stage change, and the count of what went out again.
    offs = run_events(typhoon, run_id, "called_off")
    assert sorted(e.step_id or 0 for e in offs) == sorted(named)
    change = run_events(typhoon, run_id, "stage_changed")[-1]
    readies = [e for e in run_events(typhoon, run_id, "ready") if e.step_id in moved.rehanded]
    assert {e.detail["rehanded_from"] for e in readies} == set(named)
    assert all(e.at == entered and e.id > change.id for e in readies)  # type: ignore[operator]
    summed = run_events(typhoon, run_id, "rehanded")
    assert [e.detail for e in summed] == [{"rehanded": 2, "passed_over": 0, "waiting": 0}]
    assert summed[0].id > max(e.id or 0 for e in readies)  # type: ignore[operator]

    # 贾丽萍 is told in her inbox and on her own channel, as she was told of the call-off.
    with read_session(typhoon.db) as session:
        told = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.step_id == new.id)).all()
    assert {(n.recipient, n.url) for n in told} == {("liuhe-head", "inbox://"),
                                                     ("liuhe-head", LIUHE_URL)}
    assert all(n.title.startswith("【重新下达】") and "重新下达" in n.body for n in told)

    # Past the new deadline of 社区三项措施 (2 h), the new instance is chased once, the
    # called-off one never.
    clock.advance(timedelta(hours=2, minutes=1))
    sweep_once(typhoon)
    sweep_once(typhoon)
    assert [x for x in escalated(typhoon, again[1].id) if x[0] == "escalate"] == \
        [("escalate", 1, 0)]
    assert escalated(typhoon, again[0].id) == []
    # It is worked like any task, and the segment records it (and its escalation) in
    # Prefect's history like any other (here the bare segment, as unit tests run it).
    done = complete_answered(typhoon, again[1])
    assert done.status == "done"
    drain_wakes(typhoon)
    with read_session(typhoon.db) as session:
        recorded = session.get(StepInstance, again[1].id)
        assert recorded is not None and recorded.prefect_recorded
        assert all(e.prefect_recorded for e in session.exec(
            select(Escalation).where(Escalation.step_id == again[1].id)).all())


def test_going_back_and_up_again_with_nothing_called_off_hands_out_nothing(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = start_at(typhoon, "severe")
    before = len(run_steps(typhoon, run_id))
    lifecycle.set_stage(typhoon, run_id=run_id, stage="emergency", actor=COMMANDER)  # kept
    clock.advance(timedelta(hours=1))
    moved = lifecycle.change_stage(typhoon, run_id=run_id, stage="severe", actor=COMMANDER)
    assert moved.rehanded == [] and len(run_steps(typhoon, run_id)) == before
    assert run_events(typhoon, run_id, "rehanded") == []


def test_a_return_handed_out_again_waits_for_its_own_transfer_handed_out_again(
        typhoon: Runtime, clock: ManualClock) -> None:
    """解除 reached, then the typhoon comes back (back to 紧急警报, all called off), then 解除
    again: a community's return, `item_needs: [transfer]`, waits for that community's new
    transfer record, not the called-off one; one whose transfer was done goes out at once."""
    run_id = start_at(typhoon, "recovery")
    complete_answered(typhoon, rows_of(typhoon, run_id, "transfer")["heping"][0], people=3)
    assert rows_of(typhoon, run_id, "return")["heping"][0].status == "ready"
    lifecycle.set_stage(typhoon, run_id=run_id, stage="emergency", actor=COMMANDER,
                        call_off_all=True, note="台风回旋，重新防御")
    clock.advance(timedelta(hours=2))
    moved = lifecycle.change_stage(typhoon, run_id=run_id, stage="recovery", actor=COMMANDER)

    returns = rows_of(typhoon, run_id, "return")
    assert [r.status for r in returns["heping"]] == ["cancelled", "ready"]
    assert [r.status for r in returns["liuhe"]] == ["cancelled", "pending"]
    assert returns["liuhe"][1].id in moved.rehanded  # handed out, waiting for its partner
    assert [r.status for r in rows_of(typhoon, run_id, "transfer")["heping"]] == ["done"]
    # The summary needs every return: not filed while any is owed again.
    assert "summary" not in {r.step_key for r in run_steps(typhoon, run_id)}
    new_transfer = rows_of(typhoon, run_id, "transfer")["liuhe"][1]
    complete_answered(typhoon, new_transfer, people=2)
    released = rows_of(typhoon, run_id, "return")["liuhe"][1]
    assert released.status == "ready" and released.rehanded_from == returns["liuhe"][0].id
    # A template reads each community's current record: the called-off ones are history.
    with read_session(typhoon.db) as session:
        run = session.get(Run, run_id)
        assert run is not None
        view = steps_view(session, typhoon, run)
    items = view["return"]["items"]
    assert len(items) == 5 and {i["status"] for i in items} == {"ready", "pending"}


# A staged playbook whose last stage hands out a step that needs another, one with a `when`
# and a fan-out, both reading the org chart: what a second entry reads afresh (a community
# merged away while the run was lower, the server restarted on the new chart).
FLEX = """\
id: flex
version: 1
title: 阶段再进入演示
kind: typhoon
stages: [calm, alert, storm]
steps:
  - id: close
    title: 停工停课
    role: street_head
    stage: storm
    due: {after: 1h, from: stage}
  - id: check
    title: 核查停工停课
    role: duty_officer
    stage: storm
    needs: [close]
    due: 30m
  - id: evacuate
    title: 转移
    role: street_head
    stage: storm
    when: "units(type='community', within=run.unit) | length > 1"
  - id: seal
    title: 封控
    role: grid_worker
    stage: storm
    for_each: "units(type='community', within=run.unit)"
"""


def flex_runtime(tmp_path: Path, clock: ManualClock, *, org_text: str | None = None
                 ) -> Runtime:
    """The flex playbook on the small org chart (or `org_text`), on the database in
    tmp_path/flex: a second call is the server restarted."""
    rt = make_runtime(tmp_path / "flex", clock=clock, org_text=org_text,
                      playbooks=books_with(tmp_path, {"flex.yaml": FLEX}))
    assert rt.catalog.errors == []
    return rt


def without_c2() -> str:
    """The small org chart with 二社区 merged away."""
    text = SMALL_ORG.read_text(encoding="utf-8")
    start = text.index("          - id: c2")
    end = text.index("      - id: s2")
    return text[:start] + text[end:]


def statuses(rt: Runtime, run_id: int) -> dict[tuple[str, str], list[str]]:
    """(step, title) -> its instances' statuses, oldest first."""
    out: dict[tuple[str, str], list[str]] = {}
    for row in run_steps(rt, run_id):
        out.setdefault((row.step_key, row.title), []).append(row.status)
    return out


def flex_in_storm(tmp_path: Path, clock: ManualClock) -> tuple[Runtime, int]:
    """A flex run at 一街道 in its storm stage, with 停工停课 (close) done."""
    flex = flex_runtime(tmp_path, clock)
    run = lifecycle.start_run(flex, playbook_id="flex", unit_id="s1", params={},
                              actor="s1-commander")
    run_id = run.id or 0
    lifecycle.set_stage(flex, run_id=run_id, stage="storm", actor="s1-commander")
    close = next(r for r in run_steps(flex, run_id) if r.step_key == "close")
    tasks.complete(flex, step_id=close.id or 0, actor="s1-head")
    return flex, run_id


def test_a_second_entry_reads_needs_when_and_for_each_afresh(
        tmp_path: Path, clock: ManualClock) -> None:
    flex, run_id = flex_in_storm(tmp_path, clock)
    assert statuses(flex, run_id)[("seal", "封控（二社区）")] == ["ready"]
    assert statuses(flex, run_id)[("evacuate", "转移")] == ["ready"]
    lifecycle.set_stage(flex, run_id=run_id, stage="alert", actor="s1-commander",
                        call_off_all=True, note="预警降级")

    # 二社区 is merged into 一社区 while the run is lower; the server restarts on the new chart.
    merged = flex_runtime(tmp_path, clock, org_text=without_c2())
    clock.advance(timedelta(hours=1))
    moved = lifecycle.change_stage(merged, run_id=run_id, stage="storm", actor="s1-commander")

    now = statuses(merged, run_id)
    assert now[("close", "停工停课")] == ["done"]  # done stays done
    assert now[("check", "核查停工停课")] == ["cancelled", "ready"]  # its need is done
    assert now[("evacuate", "转移")] == ["cancelled", "skipped"]  # `when` false now
    assert now[("seal", "封控（一社区）")] == ["cancelled", "ready"]
    assert now[("seal", "封控（二社区）")] == ["cancelled", "skipped"]  # no longer listed
    assert len(moved.rehanded) == 2
    assert run_events(merged, run_id, "rehanded")[-1].detail == \
        {"rehanded": 2, "passed_over": 2, "waiting": 0}
    skips = {e.detail["step"]: e.detail for e in run_events(merged, run_id, "skipped")}
    assert set(skips) == {"evacuate", "seal"} and "when" in skips["evacuate"]
    # Passed over, they are owed no more: another round hands out only what it calls off.
    lifecycle.set_stage(merged, run_id=run_id, stage="alert", actor="s1-commander")
    moved = lifecycle.change_stage(merged, run_id=run_id, stage="storm", actor="s1-commander")
    assert moved.rehanded == []


def test_a_task_called_off_twice_is_handed_out_again_twice(
        tmp_path: Path, clock: ManualClock) -> None:
    flex, run_id = flex_in_storm(tmp_path, clock)
    check = next(r for r in run_steps(flex, run_id) if r.step_key == "check")
    lifecycle.set_stage(flex, run_id=run_id, stage="calm", actor="s1-commander",
                        call_off=[check.id or 0], note="预警解除")
    clock.advance(timedelta(minutes=10))
    lifecycle.set_stage(flex, run_id=run_id, stage="storm", actor="s1-commander")
    again = [r for r in run_steps(flex, run_id) if r.step_key == "check"]
    assert [r.status for r in again] == ["cancelled", "ready"]
    assert again[1].due_at == clock.now() + timedelta(minutes=30)  # `due: 30m` from now
    lifecycle.set_stage(flex, run_id=run_id, stage="alert", actor="s1-commander",
                        call_off_all=True, note="预警降级")
    lifecycle.set_stage(flex, run_id=run_id, stage="storm", actor="s1-commander")
    thrice = [r for r in run_steps(flex, run_id) if r.step_key == "check"]
    assert [r.status for r in thrice] == ["cancelled", "cancelled", "ready"]
    assert [r.rehanded_from for r in thrice] == [None, again[0].id, again[1].id]
    assert [r.status for r in run_steps(flex, run_id) if r.step_key == "close"] == ["done"]
