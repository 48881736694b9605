"""`item_needs`: a fan-out step waiting for another fan-out item by item. Each community's
second step is handed out when that community's first is finished, not every community's;
what waits is a pending row (whom it will go to, no deadline, no timer, no note); a step that
needs the paired step whole waits for every item; a need passed over whole holds nothing back;
cancelling the run calls the waiting items off; an automatic step waiting item by item runs in
a segment once released. Real runtime on SQLite, the clock moved, never slept on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from factories import books_with, run_steps
from factories import run_row as get_run
from sqlmodel import select

from flows import lifecycle, tasks
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.errors import Conflict, InvalidInput
from models.outbox import Notification
from models.task import StepInstance

VILLAGES = "units(type='community', within=run.unit)"
PAIRS = f"""\
id: pairs
version: 1
title: 转移与返回
params:
  move: {{type: bool, default: true}}
steps:
  - id: move
    title: 转移
    role: grid_worker
    when: "params.move"
    for_each: "{VILLAGES}"
    due: 2h
  - id: back
    title: 返回
    role: grid_worker
    needs: [move]
    item_needs: [move]
    for_each: "{VILLAGES}"
    due: {{after: 1d, from: run}}
  - id: tell
    title: 返回后通报
    action: notify
    to: [street_head]
    template: back.txt.j2
    needs: [back]
    item_needs: [back]
    for_each: "{VILLAGES}"
  - id: report
    title: 汇总上报
    role: street_head
    needs: [back]
"""


@pytest.fixture
def pairs(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    rt = make_rt(playbooks=books_with(tmp_path, {
        "pairs.yaml": PAIRS, "templates/back.txt.j2": "{{ item.name }}人员已返回。\n"}))
    assert rt.catalog.errors == []
    return rt


def start(rt: Runtime, **params: object) -> int:
    return lifecycle.start_run(rt, playbook_id="pairs", unit_id="s1", params=params,
                               actor="s1-commander").id or 0


def keyed(rt: Runtime, run_id: int) -> dict[str, dict[str, StepInstance]]:
    out: dict[str, dict[str, StepInstance]] = {}
    for row in run_steps(rt, run_id):
        out.setdefault(row.step_key, {})[row.unit_id] = row
    return out


def notes(rt: Runtime, step_id: int | None) -> list[str]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification.title)
                                 .where(Notification.step_id == step_id)).all())


def test_each_item_is_handed_out_when_its_own_partner_finishes(
        pairs: Runtime, clock: ManualClock) -> None:
    run_id = start(pairs)
    steps = keyed(pairs, run_id)
    assert {unit: r.status for unit, r in steps["back"].items()} == {
        "c1": "pending", "c2": "pending"}
    for row in steps["back"].values():
        assert row.due_at is None and row.next_check_at is None and row.ready_at is None
        assert notes(pairs, row.id) == []
    assert steps["back"]["c1"].assignees == ["c1-grid"]  # whom it will go to, shown ahead
    with pytest.raises(Conflict, match="任务未开始"):
        tasks.complete(pairs, step_id=steps["back"]["c1"].id or 0, actor="c1-grid")

    clock.advance(timedelta(minutes=30))
    tasks.complete(pairs, step_id=steps["move"]["c1"].id or 0, actor="c1-grid")
    steps = keyed(pairs, run_id)
    c1, c2 = steps["back"]["c1"], steps["back"]["c2"]
    assert (c1.status, c2.status) == ("ready", "pending")
    assert c1.ready_at == clock.now()
    assert c1.due_at == get_run(pairs, run_id).started_at + timedelta(days=1)  # from: run
    assert c1.next_check_at is not None
    assert notes(pairs, c1.id) == ["【新任务】返回（一社区）·一街道"]
    assert "report" not in steps  # it needs `back` whole

    # c1 finishes its return before c2 has moved anyone; its notify runs in a segment.
    tasks.complete(pairs, step_id=c1.id or 0, actor="c1-grid")
    drain_wakes(pairs)
    steps = keyed(pairs, run_id)
    assert {unit: r.status for unit, r in steps["tell"].items()} == {
        "c1": "done", "c2": "pending"}
    assert "report" not in steps

    tasks.complete(pairs, step_id=steps["move"]["c2"].id or 0, actor="c2-grid")
    tasks.complete(pairs, step_id=keyed(pairs, run_id)["back"]["c2"].id or 0, actor="c2-grid")
    drain_wakes(pairs)
    steps = keyed(pairs, run_id)
    assert [r.status for r in steps["tell"].values()] == ["done", "done"]
    assert steps["report"]["s1"].status == "ready"
    # Released once each: one `ready` event per instance in the timeline.
    with read_session(pairs.db) as session:
        ready = session.exec(select(AuditEvent.step_id).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "ready")).all()
    assert len(ready) == len(set(ready))


def test_a_need_passed_over_whole_holds_no_item_back(pairs: Runtime) -> None:
    run_id = start(pairs, move=False)
    steps = keyed(pairs, run_id)
    assert [r.status for r in steps["move"].values()] == ["skipped"]  # no rows: run.skipped
    assert [r.status for r in steps["back"].values()] == ["ready", "ready"]


def test_cancelling_the_run_calls_the_waiting_items_off(pairs: Runtime) -> None:
    run_id = start(pairs)
    lifecycle.cancel_run(pairs, run_id=run_id, actor="s1-commander")
    steps = keyed(pairs, run_id)
    assert [r.status for r in steps["back"].values()] == ["cancelled", "cancelled"]
    assert get_run(pairs, run_id).status == "cancelled"


# --- checks over the outputs together, with the item's record of its need -----------------------

COUNTED = f"""\
id: counted
version: 1
title: 转移与返回（人数）
params:
  move: {{type: bool, default: true}}
steps:
  - id: move
    title: 转移
    role: grid_worker
    when: "params.move"
    for_each: "{VILLAGES}"
    outputs:
      moved: {{type: int, min: 0, required: true, title: 转移人数}}
  - id: back
    title: 返回
    role: grid_worker
    needs: [move]
    item_needs: [move]
    for_each: "{VILLAGES}"
    outputs:
      home: {{type: int, min: 0, required: true, title: 已返回}}
      away: {{type: int, min: 0, required: true, title: 仍在安置}}
    checks:
      - expr: >-
          'moved' not in paired.move.outputs
          or outputs.home + outputs.away == paired.move.outputs.moved
        output: home
        message: >-
          {{{{ item.name }}}}：{{{{ outputs.home }}}} + {{{{ outputs.away }}}}
          应为 {{{{ paired.move.outputs.moved }}}}
"""


@pytest.fixture
def counted(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    rt = make_rt(playbooks=books_with(tmp_path, {"counted.yaml": COUNTED}))
    assert rt.catalog.errors == []
    return rt


def test_a_check_reads_the_items_own_record_of_its_need(counted: Runtime) -> None:
    run_id = lifecycle.start_run(counted, playbook_id="counted", unit_id="s1", params={},
                                 actor="s1-commander").id or 0
    moves = keyed(counted, run_id)["move"]
    for n, (_unit, row) in enumerate(sorted(moves.items())):
        tasks.complete(counted, step_id=row.id or 0, actor=row.assignees[0],
                       outputs={"moved": 10 + n})
    backs = sorted(keyed(counted, run_id)["back"].items())
    (_, first), (_, second) = backs
    with pytest.raises(InvalidInput) as caught:
        tasks.complete(counted, step_id=first.id or 0, actor=first.assignees[0],
                       outputs={"home": 11, "away": 0})  # the second community's figure
    assert caught.value.field == "outputs.home"
    assert caught.value.message.endswith("：11 + 0 应为 10")
    assert keyed(counted, run_id)["back"][first.unit_id].status == "ready"  # nothing written
    tasks.complete(counted, step_id=first.id or 0, actor=first.assignees[0],
                   outputs={"home": 7, "away": 3})
    tasks.complete(counted, step_id=second.id or 0, actor=second.assignees[0],
                   outputs={"home": 11, "away": 0})


def test_a_check_on_a_need_passed_over_holds_nothing_back(counted: Runtime) -> None:
    run_id = lifecycle.start_run(counted, playbook_id="counted", unit_id="s1",
                                 params={"move": False}, actor="s1-commander").id or 0
    for row in keyed(counted, run_id)["back"].values():
        done = tasks.complete(counted, step_id=row.id or 0, actor=row.assignees[0],
                              outputs={"home": 0, "away": 0})
        assert done.status == "done"


def test_checks_are_checked_where_they_are_written() -> None:
    from flows.loader import LoadContext, load_playbook_text
    from models.errors import PlaybookInvalid

    bad = COUNTED.replace("== paired.move.outputs.moved", "== paired.mvoe.outputs.moved")
    bad = bad.replace("output: home", "output: hme")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(bad, filename="counted.yaml",
                           context=LoadContext(Path("."), known_roles=None))
    found = {(e.path, e.message.split(" / ")[0]) for e in caught.value.errors}
    assert ("steps[1].checks[0].expr",
            "没有按项等待的步骤（item_needs） mvoe（可选：move）") in found
    assert ("steps[1].checks[0].output", "没有填报项 hme（可选：home、away）") in found
