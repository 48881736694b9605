"""Rounds of a recurring step (`recur`): a report owed again and again while the event lasts.

A major gas leak is reported again every day at 08:00 and 17:00 until the final report
(DOMAIN.md: Henan's rule). The first round is the step's ordinary instance, made ready when
its needs are finished. Each later round is one more instance of the step, written ahead as
a *scheduled* row: pending, with `next_check_at` at the time it is due to be handed out.
The sweeper hands it out then (flows/round_start.py), and writes the round after it. A
scheduled row is not yet part of the run: `needs` and the run's completion do not wait for
it (progress.step_state leaves it out), so the steps after a report are not held up by the
next day's.

A step waiting for a recurring step item by item (`item_needs`, no `for_each`: the sending
of each report) follows it round by round: each round handed out gets its partner, pending
until that round is done. The rounds end when one of `until` has finished: no round after
it, and the rounds (and partners) still open are withdrawn; the final report says the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, update
from sqlmodel import Session, select

from flows.durations import add_after_deadline, add_duration
from flows.duty import fallback_events, holders_cut
from flows.recipients import notification_rows
from flows.rehand import next_index
from flows.step_rows import assignment, instance_row
from models import task as st
from models.audit import SYSTEM, AuditEvent
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates, insert_rows

if TYPE_CHECKING:
    from flows.runtime import Runtime
    from flows.spec import Playbook, RecurSpec, StepSpec

# After downtime, missed rounds collapse into one (SPEC §4's catch-up rule): this many
# slots are walked at most to find the latest one passed.
MAX_CATCH_UP = 10_000


def is_scheduled(status: str, next_check_at: datetime | None) -> bool:
    """A round written ahead: pending, with the time it is to be handed out. (A pending
    instance waiting for an item partner has no timer.)"""
    return status == st.PENDING and next_check_at is not None


def scheduled_clause() -> Any:
    """SQL: the row is a scheduled round."""
    return and_(StepInstance.status == st.PENDING,
                StepInstance.next_check_at.is_not(None))  # type: ignore[union-attr]


def not_scheduled_clause() -> Any:
    return or_(StepInstance.status != st.PENDING,
               StepInstance.next_check_at.is_(None))  # type: ignore[union-attr]


def next_slot(recur: RecurSpec, after: datetime, *, rt: Runtime) -> datetime:
    """When the round after one handed out (or due) at `after` is due: the next of the day's
    `at` times strictly after it (local time), or `every` after it."""
    if recur.every is not None:
        return add_duration(after, recur.every, calendar=rt.calendar, tz=rt.tz)
    local = after.astimezone(rt.tz)
    times = sorted(time(int(t[:2]), int(t[3:])) for t in recur.at)
    for days in range(3):  # a later time today, else the first one tomorrow
        day = local.date() + timedelta(days=days)
        for at in times:
            slot = datetime.combine(day, at, tzinfo=rt.tz)
            if slot > local:
                return slot.astimezone(UTC)
    raise AssertionError("recur.at has at least one time")  # step_rules guarantees it


def latest_slot(recur: RecurSpec, slot: datetime, now: datetime, *, rt: Runtime
                ) -> tuple[datetime, int]:
    """The latest slot at or before `now`, walking on from `slot` (itself passed), and how
    many passed slots it stands for beyond the first (missed while the server was down)."""
    missed = 0
    for _ in range(MAX_CATCH_UP):
        following = next_slot(recur, slot, rt=rt)
        if following > now:
            break
        slot, missed = following, missed + 1
    return slot, missed


def early_stands_for(spec: StepSpec, now: datetime, *, rt: Runtime) -> datetime | None:
    """The regular slot a round handed out off the times at `now` (the first, when the step
    becomes ready, or one asked for early) stands for, if any: the next of the day's times
    when that round is still due then (handed out at 15:59, due 16:59: it is the 17:00
    report, and 16:00's round would make the duty room write the same report twice a minute
    apart). None with `every` (the cadence counts from that round) or far from the next slot
    (handed out at 14:00, due 15:00: 16:00's round still comes)."""
    recur = spec.recur
    if recur is None or recur.every is not None or spec.due is None:
        return None
    following = next_slot(recur, now, rt=rt)
    due = add_after_deadline(now, spec.due.after,
                             whole_days=spec.due.whole_days, calendar=rt.calendar, tz=rt.tz)
    return following if due > following else None


def round_item(spec: StepSpec, number: int, slot: datetime, *, rt: Runtime) -> dict[str, Any]:
    """The item of round `number` (2, 3, ...) handed out at `slot`: which round, the slot as
    stored (UTC), and as people read it: by its deadline where the step has one (第2次，
    12-04 08:00前: the 08:00 report is handed out at 07:00, due an hour later), else by the
    slot. Its partners carry the same item."""
    return {"round": number, "at": slot.astimezone(UTC).isoformat(),
            "title": f"第{number}次，{slot_label(spec, slot, rt=rt)}"}


def slot_label(spec: StepSpec, slot: datetime, *, rt: Runtime) -> str:
    """A slot as people read it: by the deadline of its round where the step has one (12-04
    08:00前: handed out at 07:00, due an hour later), else by the slot (12-04 07:00)."""
    if spec.due is not None:  # counted from the round's hand-out (step_rules: from ready)
        due = add_after_deadline(slot, spec.due.after,
                             whole_days=spec.due.whole_days, calendar=rt.calendar, tz=rt.tz)
        return f"{rt.renderer.deadline(due, '%m-%d %H:%M')}前"
    return rt.renderer.local(slot, "%m-%d %H:%M")


def round_title(spec: StepSpec, item: dict[str, Any]) -> str:
    """As instance_row titles a round: 续报事件处置进展（第2次 12-03 17:00）."""
    return f"{spec.title}（{item['title']}）"


def schedule(session: Session, rt: Runtime, run: Run, spec: StepSpec, *, number: int,
             after: datetime) -> None:
    """Write round `number` of `spec` ahead, due at the slot after `after`."""
    assert spec.recur is not None
    slot = next_slot(spec.recur, after, rt=rt)
    item = round_item(spec, number, slot, rt=rt)
    row = instance_row(rt, run, spec, next_index(session, run, spec.id), item) | {
        "status": st.PENDING, "ready_at": None, "due_at": None, "next_check_at": slot,
        "version": 1}
    if spec.role:  # shown on the run page as whose the next round will be
        row["assignee_unit_id"], row["assignees"] = assignment(rt, spec.role, row["unit_id"])
    insert_ignoring_duplicates(session, StepInstance, [row])


def partners(playbook: Playbook, key: str) -> list[StepSpec]:
    """The steps that follow recurring step `key` round by round."""
    return [spec for spec in playbook.steps
            if key in spec.item_needs and spec.for_each is None]


def paired_rounds(spec: StepSpec, item: Any) -> dict[str, Any] | None:
    """For an instance of a step following recurring needs round by round (its `item` is the
    round's: None for the first), each such need -> that round's item; None for any other
    step. What its document is rendered from (flows/context.steps_view's `round_of`)."""
    if not spec.item_needs or spec.for_each is not None:
        return None
    return {need: item for need in spec.item_needs}


def round_items(session: Session, run: Run, key: str) -> list[Any]:
    """The items of the rounds of `key` handed out so far (None for the first), in order:
    what a partner made after them pairs with."""
    return list(session.exec(
        select(StepInstance.item)
        .where(StepInstance.run_id == run.id, StepInstance.step_key == key,
               not_scheduled_clause())
        .order_by(StepInstance.item_index)))  # type: ignore[arg-type]


def ended_by(spec: StepSpec, state: dict[str, list[str]]) -> str | None:
    """The first of `spec.recur.until` that has finished, if any."""
    assert spec.recur is not None
    for key in spec.recur.until:
        statuses = state.get(key, [])
        if statuses and all(s in st.FINISHED_STATUSES for s in statuses):
            return key
    return None


def end_rounds(session: Session, rt: Runtime, run: Run, playbook: Playbook,
               state: dict[str, list[str]], *, now: datetime) -> bool:
    """Withdraw the scheduled and open rounds of every recurring step one of whose `until`
    has finished, and their partners still waiting for them; whoever holds an open round is
    told it is withdrawn. True when anything changed."""
    changed = False
    for spec in playbook.recurring:
        if spec.id not in state:
            continue
        until = ended_by(spec, state)
        if until is None:
            continue
        keys = [spec.id]
        waiting = [p.id for p in partners(playbook, spec.id)]
        rows = session.exec(
            select(StepInstance.id, StepInstance.step_key, StepInstance.status)
            .where(StepInstance.run_id == run.id,
                   or_(and_(StepInstance.step_key.in_(keys),  # type: ignore[attr-defined]
                            StepInstance.status.in_(  # type: ignore[attr-defined]
                                [st.PENDING, *st.OPEN_STATUSES])),
                       and_(StepInstance.step_key.in_(waiting),  # type: ignore[attr-defined]
                            StepInstance.status == st.PENDING)))
            .order_by(StepInstance.id)).all()  # type: ignore[arg-type]
        if not rows:
            continue
        session.execute(
            update(StepInstance)
            .where(StepInstance.id.in_([r[0] for r in rows]))  # type: ignore[union-attr]
            .values(status=st.CANCELLED, next_check_at=None, done_at=now,
                    version=StepInstance.version + 1))
        for step_id, key, status in rows:
            add_event(session, at=now, actor=SYSTEM, action="round_withdrawn", run_id=run.id,
                      step_id=step_id, from_state=status, to_state=st.CANCELLED,
                      detail={"step": key, "until": until,
                              "until_title": playbook.step(until).title})
        tell_withdrawn(session, rt, run, spec, [r[0] for r in rows if r[2] in st.OPEN_STATUSES],
                       cause=f"“{playbook.step(until).title}”已完成", now=now)
        changed = True
    return changed


def tell_withdrawn(session: Session, rt: Runtime, run: Run, spec: StepSpec, step_ids: list[int],
                   *, cause: str, now: datetime) -> None:
    """The holders of rounds withdrawn while open hear it where they were told of the round (a
    duty officer half-way through the 17:00 report need not finish it), with `cause` (“续报”
    已完成, 已进入解除与灾后恢复阶段): a task that just vanishes from the inbox reads as lost."""
    if not step_ids:
        return
    notes: list[dict[str, Any]] = []
    for row in session.exec(select(StepInstance).where(
            StepInstance.id.in_(step_ids))).all():  # type: ignore[union-attr]
        # On their channels as they heard of the round: a rostered duty room's one on duty and
        # whoever signed for it; the others in the inbox (flows/duty.py, as call_off does).
        cut = holders_cut(rt.org, rt.tz, now, row)
        insert_rows(session, AuditEvent,
                    fallback_events(rt.org, cut, run_id=run.id, step_id=row.id, now=now))
        notes += notification_rows(
            rt.org, people=row.assignees, kind="round_withdrawn",
            title=f"【轮次结束】{row.title}",
            body=f"{run.title}：{cause}，{row.title}已撤回，无需再办理。",
            dedupe=f"round_withdrawn|{row.id}", now=now, run_id=run.id, step_id=row.id,
            inbox_only=spec.announce != "channels", quiet=cut.quiet)
    insert_ignoring_duplicates(session, Notification, notes)
