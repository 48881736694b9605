"""Rounds item by item (`follow_up`): a fan-out step asked again, item by item, until each
item's own answer says it is over.

A typhoon's 解除 asks every community who came back (转移人员返回). A community that still has
12 people in the shelter is asked again the next day at 09:00 how many came back since and how
many remain (安置人员返回跟踪), and again the day after, until none remain: "由社区继续管理直至
返回" made a task with a deadline and a ladder, not a sentence in a report. A community whose
people are all home gets no round at all.

Each round is an instance of the step for the item. The first follows the item's `item_needs`
record (the return), each later one the round before it: `previous` is that record, and
`while` decides on it whether another round is owed. A round is written ahead as a scheduled
row (pending, `next_check_at` at the day's `at`), which the sweeper hands out when the time
comes (flows/round_start.py). Unlike `recur`'s rounds, a scheduled follow-up round is part of
the run: the steps that need the follow-up (the 返回销号) and the run's completion wait for it,
so nobody ends the response while people are still away without being told so.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from flows.checks import PREVIOUS_OUTPUT
from flows.context import expression_context
from flows.durations import add_after_deadline
from flows.expressions import ExpressionError, compile_expression, evaluate, render_string
from flows.rehand import current, next_index
from flows.rounds import tell_withdrawn
from flows.step_rows import assignment, instance_row, item_key
from models import task as st
from models.audit import SYSTEM
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates

if TYPE_CHECKING:
    from flows.runtime import Runtime
    from flows.spec import StepSpec
    from models.run import Run

log = logging.getLogger("closeloop.follow_ups")


def record_view(row: StepInstance | None) -> dict[str, Any]:
    """A record as `previous` reads it: empty outputs when there is none."""
    if row is None:
        return {"status": None, "unit": None, "outputs": {}, "round": 0}
    round_no = row.item.get("round", 0) if isinstance(row.item, dict) else 0
    return {"status": row.status, "unit": row.unit_id, "outputs": dict(row.outputs or {}),
            "round": round_no, "done_at": row.done_at}


def previous_record(session: Session, run: Run, spec: StepSpec, step: StepInstance
                    ) -> dict[str, Any]:
    """The record round `step` follows: the item's last round done before it, else the
    item's record of the step's `item_needs` (the community's return)."""
    mine = item_key(step.item)
    rounds = [r for r in _rows(session, run, [spec.id])
              if item_key(r.item) == mine and r.status == st.DONE
              and r.item_index < step.item_index]
    if rounds:
        return record_view(rounds[-1])
    needs = [r for r in _rows(session, run, spec.item_needs) if item_key(r.item) == mine]
    return record_view(needs[-1] if needs else None)


def advance_items(session: Session, rt: Runtime, run: Run, spec: StepSpec, *,
                  now: datetime, ended: bool = False) -> bool:
    """Decide every item whose last record is in and not yet followed: an instance waiting
    for its need (written when the step fanned out) whose need is finished, and a round done
    with nothing after it. Where `while` holds, its next round is written ahead; where it does
    not, a waiting instance is passed over (nothing to follow: everyone came home at the
    return) and a done round is the item's last. `ended`: the run has entered the step's
    `until_stage`, so no round is owed any more (a record handed in late is its item's last).
    True when anything was written."""
    assert spec.follow_up is not None
    needs = {item_key(r.item): r for r in _rows(session, run, spec.item_needs)}
    last: dict[str, StepInstance] = {}
    for row in _rows(session, run, [spec.id]):
        last[item_key(row.item)] = row  # in item_index order: the item's latest
    changed = False
    for key, row in last.items():
        if row.status == st.PENDING and row.next_check_at is None:
            need = needs.get(key)
            # Not in yet; or called off by a downgrade (a staged run's cancelled task), which
            # entering its stage again hands out anew: this item then follows that record.
            if need is not None and (need.status not in st.FINISHED_STATUSES
                                     or need.status == st.CANCELLED):
                continue
            follows = record_view(need)
            # A need not done (passed over) recorded nobody to follow.
            if not ended and need is not None and need.status == st.DONE and _owed(
                    session, rt, run, spec, row, follows):
                slot = next_slot(spec, need.done_at or now, rt=rt)
                for name, value in _round_fields(rt, spec, row.item, row.unit_id, follows,
                                                 number=1, slot=slot).items():
                    setattr(row, name, value)
                row.version += 1
                session.add(row)
            else:
                row.status, row.done_at, row.version = st.SKIPPED, now, row.version + 1
                session.add(row)
                session.flush()
                add_event(session, at=now, actor=SYSTEM, action="follow_up_not_needed",
                          run_id=run.id, step_id=row.id, from_state=st.PENDING,
                          to_state=st.SKIPPED,
                          detail={"step": spec.id, "while": spec.follow_up.while_,
                                  "follows": need.id if need is not None else None}
                          | ({"until_stage": spec.follow_up.until_stage} if ended else {}))
            changed = True
        elif row.status == st.DONE:
            follows = record_view(row)
            # Re-read on every pass until the item's next round is written: a done round
            # whose `while` is false is the item's last, and stays so.
            if ended or not _owed(session, rt, run, spec, row, follows):
                continue
            fresh = instance_row(rt, run, spec, next_index(session, run, spec.id), row.item)
            fresh |= {"version": 1} | _round_fields(
                rt, spec, row.item, fresh["unit_id"], follows, number=follows["round"] + 1,
                slot=next_slot(spec, row.done_at or now, rt=rt))
            insert_ignoring_duplicates(session, StepInstance, [fresh])
            changed = True
    if changed:
        session.flush()
    return changed


def end_at_stage(session: Session, rt: Runtime, run: Run, spec: StepSpec, *, stage_title: str,
                 now: datetime) -> bool:
    """The run has entered the step's `until_stage`: the rounds written ahead or still open
    are withdrawn, their holders told, and each item's last record stands as its count. A
    typhoon's 应转未转 rounds stop at 解除: moving people after the storm has passed protects
    nobody, and the ones never moved stay in the records (the transfer's and the last round's
    `not_moved`, the 防御总结 by community), not in a round nobody should answer any more.
    True when anything changed."""
    rows = [r for r in _rows(session, run, [spec.id])
            if r.status in st.OPEN_STATUSES
            or r.status == st.PENDING and r.next_check_at is not None]
    if not rows:
        return False
    open_ids = [r.id for r in rows if r.status in st.OPEN_STATUSES and r.id is not None]
    for row in rows:
        before = row.status
        # Passed over (skipped), not cancelled: a cancelled instance of a stage's task is one
        # a downgrade called off, which entering the stage again would hand out again.
        row.status, row.next_check_at, row.done_at = st.SKIPPED, None, now
        row.version += 1
        session.add(row)
        session.flush()
        add_event(session, at=now, actor=SYSTEM, action="round_withdrawn", run_id=run.id,
                  step_id=row.id, from_state=before, to_state=st.SKIPPED,
                  detail={"step": spec.id, "until_stage": spec.follow_up.until_stage
                          if spec.follow_up else None, "until_stage_title": stage_title})
    tell_withdrawn(session, rt, run, spec, open_ids, cause=f"已进入“{stage_title}”阶段",
                   now=now)
    return True


def _owed(session: Session, rt: Runtime, run: Run, spec: StepSpec, row: StepInstance,
          follows: dict[str, Any]) -> bool:
    """`while` on the record the next round would follow. One that cannot be evaluated (a
    value of an unexpected type) is logged and taken as true: asking a community once too
    often is better than never asking about people still away."""
    assert spec.follow_up is not None
    context: dict[str, Any] = {"previous": follows}
    # Read on every pass for each item's last round: the whole run's context (every step's
    # records) only when the expression reads more than `previous`.
    if compile_expression(spec.follow_up.while_).names - {"previous"}:
        context = expression_context(session, rt, run, item=row.item) | context
    try:
        return bool(evaluate(spec.follow_up.while_, context))
    except ExpressionError as exc:
        log.warning("follow_up.while of step %s in run %s not evaluated: %s", spec.id, run.id,
                    exc)
        return True


def state_outputs(spec: StepSpec) -> list[str]:
    """The outputs of a follow-up step that are a running state, not an amount: those its
    `while` reads of the record before (`previous.outputs.not_moved`, `remaining`). Whether
    another round is owed is decided on them, so each round restates them (仍未转移 2 人 is
    where the community stands now) and an item's latest round is its figure: summed over
    rounds, 3 then 2 would read 5 people still in danger. Every other number a round hands in
    (moved, returned since the last) is an amount and adds up. Derived from `while` rather
    than marked in the YAML, so a playbook cannot say one thing to the engine and another to
    the summary; `follow_up.state` adds the ones `while` does not read (the reasons the people
    still not moved are not moved: a breakdown of the state, not an amount)."""
    if spec.follow_up is None:
        return []
    read = dict.fromkeys([*PREVIOUS_OUTPUT.findall(spec.follow_up.while_),
                          *spec.follow_up.state])
    return [name for name in read if name in (spec.outputs or {})]


def is_round(row: StepInstance) -> bool:
    """Whether `row` is a round (written ahead or handed out), not an item still waiting for
    its `item_needs` record."""
    return isinstance(row.item, dict) and "round" in row.item


def rounds_again(session: Session, rt: Runtime, run: Run, spec: StepSpec,
                 called: list[tuple[Any, StepInstance]], *, first_index: int,
                 now: datetime) -> list[StepInstance]:
    """Rounds a downgrade called off, owed again as the run enters their stage again
    (flows/rehand.py; `called` pairs each with its item as the step's `for_each` lists it
    now). Each comes back as the round it was: the same number, titled against the record it
    follows, written ahead for its own `at` if that is still to come, else for the next `at`
    after now. Never at once: a round is asked at the day's `at`, and handed out in the
    afternoon it would come due in the night."""
    rows = []
    for offset, (item, inst) in enumerate(called):
        planned = datetime.fromisoformat(inst.item["at"]) if inst.item.get("at") else None
        slot = planned if planned is not None and planned > now else next_at(spec, now, rt=rt)
        fresh = instance_row(rt, run, spec, first_index + offset, item)
        fresh |= {"version": 1, "rehanded_from": inst.id} | _round_fields(
            rt, spec, item, fresh["unit_id"], previous_record(session, run, spec, inst),
            number=inst.item["round"], slot=slot)
        rows.append(fresh)
    insert_ignoring_duplicates(session, StepInstance, rows)
    session.flush()
    return list(session.exec(select(StepInstance).where(
        StepInstance.run_id == run.id, StepInstance.step_key == spec.id,
        StepInstance.item_index >= first_index,  # type: ignore[operator]
        StepInstance.item_index < first_index + len(rows),  # type: ignore[operator]
    ).order_by(StepInstance.item_index)).all())  # type: ignore[arg-type]


def _round_fields(rt: Runtime, spec: StepSpec, item: Any, unit_id: str,
                  follows: dict[str, Any], *, number: int, slot: datetime) -> dict[str, Any]:
    """Round `number` of an item, written ahead for `slot`, titled with its deadline and the
    running count it is answered against, with whom it will go to."""
    base = ({k: v for k, v in item.items() if k not in ("round", "at")}
            if isinstance(item, dict) else {"value": item})
    fields: dict[str, Any] = {
        "item": base | {"round": number, "at": slot.astimezone(UTC).isoformat()},
        "status": st.PENDING, "ready_at": None, "due_at": None, "next_check_at": slot}
    fields["title"] = round_title(rt, spec, fields["item"], follows, slot)
    if spec.role:  # shown on the run page as whose the next round will be
        fields["assignee_unit_id"], fields["assignees"] = assignment(rt, spec.role, unit_id)
    return fields


def next_slot(spec: StepSpec, after: datetime, *, rt: Runtime) -> datetime:
    """When the round after a record handed in at `after` is handed out: `every` after it
    (the people a red signal finds still in a danger zone are asked again within the hour),
    else the `at` time of the local day after it (one round a day at most, however early or
    late the record before it was handed in)."""
    assert spec.follow_up is not None
    if spec.follow_up.every is not None:
        return add_after_deadline(after, spec.follow_up.every, calendar=rt.calendar,
                                  tz=rt.tz).astimezone(UTC)
    at = spec.follow_up.at
    assert at is not None
    day = after.astimezone(rt.tz).date() + timedelta(days=1)
    slot = datetime.combine(day, time(int(at[:2]), int(at[3:])), tzinfo=rt.tz)
    return slot.astimezone(UTC)


def next_at(spec: StepSpec, now: datetime, *, rt: Runtime) -> datetime:
    """The first `at` time of day after `now`: today's if it is still to come. Rounds at an
    interval (`every`) come at once: the people they ask about are in danger now."""
    assert spec.follow_up is not None
    at = spec.follow_up.at
    if at is None:
        return now.astimezone(UTC)
    today = datetime.combine(now.astimezone(rt.tz).date(), time(int(at[:2]), int(at[3:])),
                             tzinfo=rt.tz)
    return (today if today > now else next_slot(spec, now, rt=rt)).astimezone(UTC)


def round_title(rt: Runtime, spec: StepSpec, item: dict[str, Any], follows: dict[str, Any],
                slot: datetime) -> str:
    """安置人员返回跟踪（坪山社区，第2次，03-05 17:00前，上次仍在安置 2 人）: the unit, the
    round, its deadline and (the playbook's `label`) the count it answers against, on the run
    page, the task page, the inbox and every message about it."""
    assert spec.follow_up is not None and spec.due is not None
    parts = [str(item.get("name") or item.get("id") or item.get("value") or ""),
             f"第{item['round']}次"]
    due = add_after_deadline(slot, spec.due.after, calendar=rt.calendar, tz=rt.tz)
    parts.append(f"{rt.renderer.deadline(due, '%m-%d %H:%M')}前")
    if spec.follow_up.label:
        try:
            parts.append(render_string(spec.follow_up.label, {"previous": follows,
                                                              "item": item}).strip())
        except ExpressionError as exc:
            log.warning("follow_up.label of step %s not rendered: %s", spec.id, exc)
    return f"{spec.title}（{'，'.join(p for p in parts if p)}）"


def open_rounds(session: Session, run: Run, spec: StepSpec) -> list[StepInstance]:
    """The rounds still owed (written ahead or open): what ending the response would drop."""
    return [r for r in _rows(session, run, [spec.id])
            if r.status == st.PENDING and r.next_check_at is not None
            or r.status in st.OPEN_STATUSES]


def _rows(session: Session, run: Run, keys: list[str]) -> list[StepInstance]:
    return current(session.exec(select(StepInstance).where(
        StepInstance.run_id == run.id,
        StepInstance.step_key.in_(keys),  # type: ignore[attr-defined]
    ).order_by(StepInstance.item_index)).all())  # type: ignore[arg-type]
