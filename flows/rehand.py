"""Handing out again the tasks a downgrade called off, when the run enters their stage again
(a typhoon's warning lowered 橙色 → 黄色, then raised again 黄色 → 橙色).

Going back, the commander called off some of the higher stages' open tasks (flows/call_off.py):
停工停课, 危险区人员转移 no longer applied. Entering that stage again, they apply again, and a
commander at 3 a.m. expects the stage's measures to be owed by someone, with a deadline and an
escalation ladder, exactly as on its first entry. The rule, per instance (per unit, for a
fan-out) of a task of a stage the run is in again, or has jumped over on the way:

- called off by the downgrade: handed out again, as a new instance (`rehanded_from` names the
  called-off one, which stays `cancelled` with its `called_off` event: the timeline keeps
  both), through the same path as a first entry (progress.make_ready): assignees resolved
  again, due counted again (a `from: stage` deadline from this entry), its timers, its `ready`
  event, its holders told, and Prefect records it when it finishes like any other step;
  A follow-up round (flows/follow_ups.py, a typhoon's 安置人员返回跟踪) comes back as the
  round it was, numbered and titled against the record it follows, written ahead for the day's
  `at` (its own if still to come), not handed out at once;
- done before the downgrade: stays done. The measure was taken (the community moved its people
  and recorded it); handing it out again would ask for the same record twice;
- kept open at the downgrade (the commander's choice then): stays as it is, still counting
  down from its first deadline. Nothing is duplicated.

As on a first entry, the step's `needs` must be finished first (a called-off step waiting on
another one handed out again waits for it: `needs` read a step handed out again as unfinished
until its new instance is), its `when` is evaluated again, now (false: not handed out again;
the called-off instance is answered by a `skipped` one), and a `for_each` is evaluated again:
each called-off item it still lists is handed out again (to the item as it reads now), an item
it no longer lists is answered by a `skipped` instance. Items it lists that were never handed
out are not added: the step fanned out on its first entry, and only a called-off item is owed
again. A step whose `when` was false on the first entry stays passed over: nothing of it was
called off.

A cancelled instance in a running run is always a called-off one (a run's other cancellations
end the run), so "owed again" needs no event lookup: cancelled, of a stage reached, and not yet
answered by an instance naming it in `rehanded_from`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from flows.spec import Playbook
from models import task as st
from models.audit import SYSTEM
from models.run import Run
from models.task import StepInstance
from models.writes import add_event, insert_rows


def reached(playbook: Playbook, stage: str | None, run_stage: str | None) -> bool:
    """Whether a step of `stage` belongs to a run now in `run_stage` (entered or passed)."""
    if stage is None or run_stage is None:
        return False
    return playbook.stages.index(run_stage) >= playbook.stages.index(stage)


def called_off_open(session: Session, playbook: Playbook, run: Run,
                    state: dict[str, list[str]]) -> dict[str, list[StepInstance]]:
    """step key -> its called-off instances (item order) not yet answered by a second entry:
    owed again now for a stage the run has reached (`reached`), owed on re-entry for one above
    it. Reads rows only for steps that have a cancelled instance: a run nobody downgraded pays
    one pass over `state`."""
    keys = [key for key, statuses in state.items() if st.CANCELLED in statuses
            and _staged_task(playbook, key)]
    if not keys:
        return {}
    rows = session.exec(select(StepInstance).where(
        StepInstance.run_id == run.id, col(StepInstance.step_key).in_(keys),
    ).order_by(col(StepInstance.item_index))).all()
    answered = {r.rehanded_from for r in rows if r.rehanded_from is not None}
    owed: dict[str, list[StepInstance]] = defaultdict(list)
    for row in rows:
        if row.status == st.CANCELLED and row.id not in answered:
            owed[row.step_key].append(row)
    return dict(owed)


def _staged_task(playbook: Playbook, key: str) -> bool:
    try:
        spec = playbook.step(key)
    except KeyError:  # a key the pinned playbook no longer has: nothing to hand out
        return False
    return spec.action == "task" and spec.stage is not None


def current(rows: Iterable[StepInstance]) -> list[StepInstance]:
    """`rows` without the called-off instances that were handed out again (or passed over on
    a second entry): what a report, a check or a count reads as each item's record. The
    called-off rows stay in the run's list and timeline as history."""
    rows = list(rows)
    answered = {r.rehanded_from for r in rows if r.rehanded_from is not None}
    return [r for r in rows if r.id not in answered] if answered else rows


def next_index(session: Session, run: Run, key: str) -> int:
    """Where a step's instances handed out again go: after every instance it has. The item's
    position stays readable from `item`; (run, step, item_index) stays unique, so the
    called-off row is kept as it was."""
    top = session.exec(select(func.max(StepInstance.item_index)).where(
        StepInstance.run_id == run.id, StepInstance.step_key == key)).one()
    return int(top if top is not None else -1) + 1


def pass_over(session: Session, run: Run, key: str, called: list[StepInstance], *,
              first_index: int, now: datetime, why: dict[str, Any]) -> None:
    """Called-off instances not handed out again (the step's `when` is false now, or its
    `for_each` no longer lists the item): each is answered by a `skipped` instance naming it,
    so it is owed no more and `needs` read it finished, and the timeline says why, once for
    the step, as a first entry's skip does."""
    if not called:
        return
    insert_rows(session, StepInstance, [{
        "run_id": run.id, "step_key": key, "item_index": first_index + i, "item": inst.item,
        "title": inst.title, "action": inst.action, "role": inst.role, "unit_id": inst.unit_id,
        "origin_unit_id": inst.origin_unit_id, "assignee_unit_id": None,
        "assignee_person_id": None, "assignees": [], "status": st.SKIPPED, "ready_at": None,
        "due_at": None, "original_due_at": None, "next_check_at": None, "done_at": now,
        "outputs": {}, "evidence": [], "evidence_labels": {}, "overdue": False,
        "escalation_level": 0, "reminders_sent": 0, "ack_missed": False, "verify_level": 0,
        "prefect_recorded": False, "version": 1, "rehanded_from": inst.id,
    } for i, inst in enumerate(called)])
    add_event(session, at=now, actor=SYSTEM, action="skipped", run_id=run.id,
              from_state=st.CANCELLED, to_state=st.SKIPPED,
              detail={"step": key, **why, "not_rehanded": [inst.id for inst in called]})
