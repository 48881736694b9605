"""Moving a run forward inside the caller's transaction: which pending steps become ready,
which are skipped (`when`), fan-out (`for_each`), assignment, due times and timers; and the
run's completion. Pure database work: the API calls it and returns at once; automatic steps
that become ready are left for the next segment (flows/segments.py) to execute in Prefect."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import Session, select

from flows import follow_ups, rounds
from flows.context import expression_context
from flows.durations import add_after_deadline, add_due
from flows.duty import DutyCut, duty_cut, fallback_events, task_group
from flows.expressions import ExpressionError, compile_expression
from flows.message_titles import message_title
from flows.passed_stages import is_passed_over, passed_over_keys
from flows.recipients import notification_rows
from flows.registers import sync_entry
from flows.rehand import called_off_open, next_index, pass_over, reached
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from flows.step_rows import assignment, instance_row, item_key
from flows.timers import TimerState, evaluate
from models import run as run_status
from models import task as st
from models.audit import SYSTEM, AuditEvent
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.writes import (
    add_event,
    add_wake,
    insert_ignoring_duplicates,
    insert_rows,
    lapse_extension_requests,
)

AUTOMATIC_ACTIONS = ("notify", "document", "playbook")
MAX_FAN_OUT = 100_000  # a district has ~1,000 villages and grids; far above any real fan-out


@dataclass
class Advance:
    became_ready: int = 0
    skipped: int = 0
    needs_segment: bool = False
    completed: bool = False
    # Called-off tasks of a stage entered again (flows/rehand.py): the instances handed out
    # in their place (ready, or pending on an item partner), how many were passed over
    # (`when` false now, item no longer listed) and how many still wait for their `needs`.
    rehanded: list[int] = field(default_factory=list)
    passed_over_again: int = 0
    owed_waiting: int = 0


def stage_reached(playbook: Playbook, run: Run, stage: str) -> bool:
    """Whether the run has entered `stage`, or gone past it without passing it over."""
    if run.stage is None or is_passed_over(run, stage):
        return False
    return playbook.stages.index(run.stage) >= playbook.stages.index(stage)


def step_state(session: Session, run: Run, playbook: Playbook) -> dict[str, list[str]]:
    """step key -> statuses of its instances (one grouped read on the run's index), and the
    steps the run passed over without a row (a false `when`, or a stage jumped over). A
    recurring step's next round, written ahead, is left out until it is handed out."""
    query = select(StepInstance.step_key, StepInstance.status, func.count()).where(
        StepInstance.run_id == run.id)
    if playbook.recurring:  # a round written ahead is not part of the run yet (flows/rounds.py)
        # (a follow-up's round written ahead is: flows/follow_ups.py)
        query = query.where(or_(rounds.not_scheduled_clause(), StepInstance.step_key.not_in(
            [spec.id for spec in playbook.recurring])))  # type: ignore[attr-defined]
    rows = session.exec(query.group_by(StepInstance.step_key, StepInstance.status)).all()
    state: dict[str, list[str]] = defaultdict(list)
    for key, status, _count in rows:
        state[key].append(status)
    for key in run.skipped or ():
        state[key].append(st.SKIPPED)
    for key in passed_over_keys(playbook, run):
        if key not in state:  # instances handed out before the stage was passed over stand
            state[key].append(st.SKIPPED)
    return state


def _statuses(session: Session, run: Run, key: str) -> list[str]:
    """The statuses of one step's instances, as step_state has them (after a pass wrote some)."""
    return list(session.exec(select(StepInstance.status).distinct().where(
        StepInstance.run_id == run.id, StepInstance.step_key == key)).all())


def is_finished(statuses: list[str]) -> bool:
    return bool(statuses) and all(s in st.FINISHED_STATUSES for s in statuses)


def advance(
    session: Session, rt: Runtime, run: Run, playbook: Playbook, *, now: datetime,
    deadline_passed: tuple[str, datetime] | None = None,
) -> Advance:
    """Materialise every step whose needs are finished (and whose stage has come). A step
    has no row until then: a run of 30 steps waiting on its first costs one row, not 30.

    `deadline_passed`: this pass was caused by a deadline (the `wait` step of that key, which
    elapsed at that moment and was seen by the sweeper a little later). The steps it makes
    ready count their `due` from when they could have started: the wait's end, or a later
    finish of another of their needs; not from when the sweeper saw it. A wait ending at Monday
    24:00 makes a "2wd" successor due at Wednesday 24:00, as the rules count, though the
    sweeper ran at 00:00:30 Tuesday (a day late otherwise), and sweeper lag or downtime never
    moves a deadline. Ready times and events stay the real moment."""
    result = Advance()
    lock_run(session, run)
    if run.status != run_status.RUNNING:
        return result
    state = step_state(session, run, playbook)
    if playbook.recurring and rounds.end_rounds(session, rt, run, playbook, state, now=now):
        state = step_state(session, run, playbook)
    # Tasks a downgrade called off (flows/rehand.py). Of a stage the run is in again: owed
    # again, and until handed out again unfinished for the steps that need them. Of a stage
    # above it: owed if it comes back, so the run does not complete by itself meanwhile (it
    # ends by the commander's word, or comes back up). Of a stage passed over: not owed, until
    # the run comes back down to it (flows/passed_stages.py).
    owed: dict[str, list[StepInstance]] = {}
    owed_later = False
    for key, rows in called_off_open(session, playbook, run, state).items():
        stage = playbook.step(key).stage
        if is_passed_over(run, stage):
            continue
        if reached(playbook, stage, run.stage):
            owed[key] = rows
            state[key].append(st.PENDING)
        else:
            owed_later = True
    finished: dict[str, datetime] | None = None  # read only for a pass a deadline caused
    for spec in playbook.steps:
        if spec.id in owed:
            if _needs_met(spec, state):
                possible = None
                if deadline_passed is not None:
                    if finished is None:
                        finished = _finish_times(session, run)
                    possible = _could_start(spec, finished, deadline_passed)
                _hand_out_again(session, rt, run, spec, owed[spec.id], state, result,
                                now=now, deadline_passed=possible)
            else:
                result.owed_waiting += len(owed[spec.id])
        if spec.id in state:
            if spec.follow_up is not None:
                ended = _follow_up_ended(playbook, run, spec)
                until = spec.follow_up.until_stage or ""
                withdrawn = ended and follow_ups.end_at_stage(
                    session, rt, run, spec, now=now,
                    stage_title=playbook.stage_title(until) or until)
                if follow_ups.advance_items(session, rt, run, spec, now=now,
                                            ended=ended) or withdrawn:
                    state[spec.id] = _statuses(session, run, spec.id)
                continue
            if spec.item_needs and st.PENDING in state[spec.id]:
                released = release_waiting(session, rt, run, spec, now=now)
                result.became_ready += len(released)
                if released and spec.action in AUTOMATIC_ACTIONS:
                    result.needs_segment = True
            continue
        if not _needs_met(spec, state):
            continue
        if spec.stage is not None and not stage_reached(playbook, run, spec.stage):
            continue
        ctx = expression_context(session, rt, run) if spec.when or spec.for_each else {}
        if spec.when and not _guarded(session, run, spec, now, True,
                                      _truthy, spec, "when", spec.when, ctx):
            _skip(session, run, spec, now=now, why={"when": spec.when})
            state[spec.id] = [st.SKIPPED]
            result.skipped += 1
            continue
        ended = rounds.ended_by(spec, state) if spec.recur is not None else None
        if ended is not None:
            # The event closed before its rounds began (their `until` finished first): a
            # 续报 of a response already ended is not asked for.
            _skip(session, run, spec, now=now, why={"until": ended})
            state[spec.id] = [st.SKIPPED]
            result.skipped += 1
            continue
        items: list[Any] = [None]
        if spec.for_each:
            items = _guarded(session, run, spec, now, [None], _items, spec, ctx)
            if not items:
                _skip(session, run, spec, now=now, why={"for_each": "no items"})
                state[spec.id] = [st.SKIPPED]
                result.skipped += 1
                continue
        possible = None
        if deadline_passed is not None:
            if finished is None:
                finished = _finish_times(session, run)
            possible = _could_start(spec, finished, deadline_passed)
        if spec.item_needs and not spec.for_each:
            # Round by round with a recurring need: one instance per round handed out so far.
            items = rounds.round_items(session, run, spec.item_needs[0])
        waiting = _waiting(session, run, spec, items) if spec.item_needs else set()
        if spec.follow_up is not None:  # every item waits: its first round is decided below
            waiting = set(range(len(items)))
        instances = make_ready(session, rt, run, spec, items, now=now,
                               deadline_passed=possible, waiting=waiting)
        state[spec.id] = [st.READY]
        if spec.follow_up is not None:
            follow_ups.advance_items(session, rt, run, spec, now=now,
                                     ended=_follow_up_ended(playbook, run, spec))
            state[spec.id] = _statuses(session, run, spec.id)
        result.became_ready += len(instances)
        if spec.recur is not None:  # a first round still due at the next time stands for it
            rounds.schedule(session, rt, run, spec, number=2,
                            after=rounds.early_stands_for(spec, now, rt=rt) or now)
        if spec.action in AUTOMATIC_ACTIONS:
            result.needs_segment = True
    if not owed_later and all(is_finished(state.get(spec.id, [])) for spec in playbook.steps):
        run.status = run_status.COMPLETED
        run.finished_at = now
        session.add(run)
        add_event(session, at=now, actor=SYSTEM, action="run_completed", run_id=run.id,
                  from_state=run_status.RUNNING, to_state=run_status.COMPLETED)
        result.completed = True
        result.needs_segment = True
        if run.parent_step_id is not None:
            _finish_parent_step(session, rt, run, now=now)
    if playbook.register_ is not None:
        sync_entry(session, rt, run, playbook, now)
    return result


def _follow_up_ended(playbook: Playbook, run: Run, spec: StepSpec) -> bool:
    """Whether the run has entered the follow-up's `until_stage` (flows/follow_ups.py)."""
    assert spec.follow_up is not None
    until = spec.follow_up.until_stage
    return until is not None and stage_reached(playbook, run, until)


def _needs_met(spec: StepSpec, state: dict[str, list[str]]) -> bool:
    """A need waited for item by item only has to have fanned out (or been passed over); its
    unfinished items hold back their own partners (_waiting), not the whole step."""
    return all(need in state if need in spec.item_needs else is_finished(state.get(need, []))
               for need in spec.needs)


def _hand_out_again(session: Session, rt: Runtime, run: Run, spec: StepSpec,
                    called: list[StepInstance], state: dict[str, list[str]], result: Advance,
                    *, now: datetime, deadline_passed: datetime | None) -> None:
    """The called-off instances of `spec` handed out again as a first entry hands a step out
    (flows/rehand.py says the rule): `when` and `for_each` evaluated now, the items still owed
    written by make_ready after the step's existing instances, the others passed over."""
    state[spec.id].remove(st.PENDING)  # the mark advance left; the new rows say the rest
    first = next_index(session, run, spec.id)
    ctx = expression_context(session, rt, run) if spec.when or spec.for_each else {}
    if spec.when and not _guarded(session, run, spec, now, True,
                                  _truthy, spec, "when", spec.when, ctx):
        pass_over(session, run, spec.id, called, first_index=first, now=now,
                  why={"when": spec.when})
        state[spec.id].append(st.SKIPPED)
        result.passed_over_again += len(called)
        return
    pairs: list[tuple[Any, StepInstance]] = [(inst.item, inst) for inst in called]
    if spec.for_each:
        # None when the expression fails now: the items go out again as they were, so a
        # person sees them (the failure is in the timeline, as on a first entry).
        items = _guarded(session, run, spec, now, None, _items, spec, ctx)
        if items is not None:
            listed = {item_key(item): item for item in items}
            gone = [inst for inst in called if item_key(inst.item) not in listed]
            pass_over(session, run, spec.id, gone, first_index=first, now=now,
                      why={"for_each": "item no longer listed"})
            first += len(gone)
            result.passed_over_again += len(gone)
            if gone:
                state[spec.id].append(st.SKIPPED)
            pairs = [(listed[item_key(inst.item)], inst) for inst in called
                     if item_key(inst.item) in listed]
    if spec.follow_up is not None:  # a round comes back as a round, at its time of day
        again = [(item, inst) for item, inst in pairs if follow_ups.is_round(inst)]
        if again:
            written = follow_ups.rounds_again(session, rt, run, spec, again, first_index=first,
                                              now=now)
            first += len(again)
            result.rehanded += [r.id for r in written if r.id is not None]
            state[spec.id].append(st.PENDING)
            pairs = [(item, inst) for item, inst in pairs if not follow_ups.is_round(inst)]
    if not pairs:
        return
    items = [item for item, _ in pairs]
    waiting = _waiting(session, run, spec, items) if spec.item_needs else set()
    instances = make_ready(session, rt, run, spec, items, now=now,
                           deadline_passed=deadline_passed, waiting=waiting,
                           replacing=[inst for _, inst in pairs], first_index=first)
    result.became_ready += len(instances)
    result.rehanded += sorted(
        session.exec(select(StepInstance.id).where(
            StepInstance.run_id == run.id, StepInstance.step_key == spec.id,
            StepInstance.item_index >= first)).all())  # type: ignore[arg-type]
    state[spec.id] += [st.READY] * len(instances) + [st.PENDING] * len(waiting)


def _finish_times(session: Session, run: Run) -> dict[str, datetime]:
    """When each finished step of the run finished (its last instance); a wait at its due
    time, when it ended, not when a sweep saw it."""
    rows = session.exec(
        select(StepInstance.step_key, StepInstance.action, StepInstance.done_at,
               StepInstance.due_at)
        .where(StepInstance.run_id == run.id, StepInstance.done_at.is_not(None))  # type: ignore[union-attr]
    ).all()
    out: dict[str, datetime] = {}
    for key, action, done, due in rows:
        at = min(due, done) if action == "wait" and due is not None else done
        if at is not None and (key not in out or at > out[key]):
            out[key] = at
    return out


def _could_start(spec: StepSpec, finished: dict[str, datetime],
                 deadline_passed: tuple[str, datetime]) -> datetime:
    """The moment a step made ready by an elapsed wait could have started: the latest finish
    among its needs, the wait counted at its deadline (not when the sweeper saw it). A need
    passed over (skipped) has no finish of its own and adds nothing."""
    wait_key, ended = deadline_passed
    times = [ended if need == wait_key else finished.get(need) for need in spec.needs]
    return max([t for t in times if t is not None], default=ended)


def lock_run(session: Session, run: Run) -> bool:
    """Moving a run is one transaction at a time; True when a lock was taken (and `run`
    re-read). On PostgreSQL (READ COMMITTED) two people finishing parallel branches at once
    would each miss the other's step (the join never becomes ready) and each write its own
    `skipped` list, and a cancel racing an approval would miss the steps the approval made
    ready; the run's row lock makes the second wait, then read what the first committed.
    Whoever changes steps and then advances takes it first (tasks, cancel, a finished wait):
    run before steps, always, so two of them never wait on each other. SQLite's single writer
    already does all this."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    session.flush()  # what this transaction changed on the run so far survives the re-read
    session.refresh(run, with_for_update=True)
    return True


def _finish_parent_step(session: Session, rt: Runtime, child: Run, *, now: datetime) -> None:
    """A child run (action: playbook) finishing completes the step that started it."""
    step = session.get(StepInstance, child.parent_step_id)
    if step is None or step.status != st.READY:
        return
    _set_status(session, step, st.DONE, now=now)
    step.outputs = {"child_run": child.id, "child_status": child.status}
    add_event(session, at=now, actor=SYSTEM, action="done", run_id=step.run_id,
              step_id=step.id, from_state=st.READY, to_state=st.DONE,
              detail={"child_run": child.id})
    parent = session.get(Run, step.run_id)
    if parent is not None:
        advance(session, rt, parent, rt.catalog.pinned(session, parent.playbook_sha), now=now)
        wake(session, parent, "child_finished", now=now)


def _skip(session: Session, run: Run, spec: StepSpec, *, now: datetime,
          why: dict[str, Any]) -> None:
    """A skipped step gets no row: it joins the run's `skipped` list, which `needs` read as
    finished, and the timeline gets its event."""
    run.skipped = [*(run.skipped or []), spec.id]  # a new list: the JSON column sees the change
    session.add(run)
    add_event(session, at=now, actor=SYSTEM, action="skipped", run_id=run.id,
              from_state=st.PENDING, to_state=st.SKIPPED, detail={"step": spec.id, **why})


def _guarded(session: Session, run: Run, spec: StepSpec, now: datetime, fallback: Any,
             compute: Any, *args: Any) -> Any:
    """Evaluate a playbook expression at run time. If it fails (bad data in a param, a unit
    that left the org chart) the step goes ahead as if it had no condition, so a person sees
    it, and the failure is written to the timeline instead of wedging the run."""
    try:
        return compute(*args)
    except StepExpressionFailed as exc:
        add_event(session, at=now, actor=SYSTEM, action="expression_failed", run_id=run.id,
                  detail={"step": spec.id, "field": exc.field, "error": str(exc)})
        return fallback


def _truthy(spec: StepSpec, field: str, expr: str, ctx: dict[str, Any]) -> bool:
    try:
        return bool(compile_expression(expr).evaluate(ctx))
    except ExpressionError as exc:
        # A playbook expression that fails at run time must not wedge the run silently: the
        # step is treated as false and the failure lands in the timeline.
        raise StepExpressionFailed(spec.id, field, str(exc)) from exc


class StepExpressionFailed(Exception):
    def __init__(self, step: str, field: str, message: str) -> None:
        super().__init__(f"steps.{step}.{field}: {message}")
        self.step = step
        self.field = field


def _items(spec: StepSpec, ctx: dict[str, Any]) -> list[Any]:
    try:
        value = compile_expression(spec.for_each or "").evaluate(ctx)
    except ExpressionError as exc:
        raise StepExpressionFailed(spec.id, "for_each", str(exc)) from exc
    if value is None:
        return []
    if isinstance(value, dict | str) or not hasattr(value, "__iter__"):
        raise StepExpressionFailed(spec.id, "for_each", "must give a list")
    # A runaway expression (range(10**9)) must not write a billion rows: cap the fan-out.
    items = list(itertools.islice(value, MAX_FAN_OUT + 1))
    if len(items) > MAX_FAN_OUT:
        raise StepExpressionFailed(spec.id, "for_each", f"more than {MAX_FAN_OUT} items")
    return items


def due_time(
    rt: Runtime, run: Run, spec: StepSpec, *, ready_at: datetime,
    deadline_passed: datetime | None = None,
) -> datetime | None:
    """The step's deadline. Counted from `ready`, a step made ready by a passed deadline
    counts from that deadline (see advance), with a deadline's reading of midnight: 24:00
    closes its day, so working days start the next one (durations.add_after_deadline)."""
    if spec.due is None:
        return None
    whole = spec.due.whole_days
    if spec.due.from_ == "ready" and deadline_passed is not None:
        return add_after_deadline(min(deadline_passed, ready_at), spec.due.after,
                                  whole_days=whole, calendar=rt.calendar, tz=rt.tz)
    start = {"ready": ready_at, "run": run.started_at, "stage": run.stage_entered_at}[
        spec.due.from_
    ] or ready_at
    return add_due(start, spec.due.after, whole_days=whole, calendar=rt.calendar, tz=rt.tz)


def verify_due_time(rt: Runtime, run: Run, spec: StepSpec, *, submitted_at: datetime
                    ) -> datetime | None:
    """The verifier's deadline for work handed in at `submitted_at` (verify.due)."""
    if spec.verify is None or spec.verify.due is None:
        return None
    due = spec.verify.due
    start = run.started_at if due.from_ == "run" else submitted_at
    return add_due(start or submitted_at, due.after, whole_days=due.whole_days,
                   calendar=rt.calendar, tz=rt.tz)


def first_check(
    rt: Runtime, spec: StepSpec, *, status: str, ready_at: datetime, due_at: datetime | None,
    now: datetime, verify_due_at: datetime | None = None,
) -> datetime | None:
    outcome = evaluate(
        spec,
        TimerState(status=status, ready_at=ready_at, due_at=due_at, acked_at=None,
                   reminders_sent=0, ack_missed=False, overdue=False, escalation_level=0,
                   last_escalated_at=None, verify_due_at=verify_due_at),
        now, calendar=rt.calendar, tz=rt.tz,
    )
    # Something already owed (a due time in the past, a 0m escalation): the next sweep fires it.
    if outcome.firings or outcome.became_overdue or outcome.wait_finished:
        return now
    return outcome.next_check_at


def make_ready(
    session: Session, rt: Runtime, run: Run, spec: StepSpec, items: list[Any],
    *, now: datetime, deadline_passed: datetime | None = None, waiting: set[int] | None = None,
    replacing: list[StepInstance] | None = None, first_index: int = 0,
) -> list[StepInstance]:
    """Write the ready instances of a step (one per item; a stage change to 2,000 villages is
    one insert), assigned, with due time and first timer, plus their events and inbox notes.
    The items in `waiting` (indexes; `item_needs` whose partner has not finished) are written
    pending instead, with the people they will go to but no deadline, timer or note, until
    `release_waiting` makes them ready. Returns the ready instances.

    `replacing`: the called-off instances these items hand out again (flows/rehand.py), one
    per item; the new rows name them and go after the step's rows from `first_index`."""
    due_at = due_time(rt, run, spec, ready_at=now, deadline_passed=deadline_passed)
    check = first_check(rt, spec, status=st.READY, ready_at=now, due_at=due_at, now=now)
    rows = []
    for index, item in enumerate(items):
        row = instance_row(rt, run, spec, first_index + index, item)
        if replacing is not None:
            row["rehanded_from"] = replacing[index].id
        if spec.role:
            row["assignee_unit_id"], row["assignees"] = assignment(rt, spec.role, row["unit_id"])
        if waiting and index in waiting:
            row |= {"status": st.PENDING, "ready_at": None, "due_at": None,
                    "next_check_at": None, "version": 1}
        else:
            row |= {"status": st.READY, "ready_at": now, "due_at": due_at,
                    "next_check_at": check, "version": 1}
        rows.append(row)
    insert_ignoring_duplicates(session, StepInstance, rows)
    instances = [inst for inst in session.exec(
        select(StepInstance)
        .where(StepInstance.run_id == run.id, StepInstance.step_key == spec.id,
               StepInstance.item_index >= first_index)  # type: ignore[operator]
        .order_by(StepInstance.item_index)  # type: ignore[arg-type]
    ).all() if inst.status != st.PENDING]
    announce(session, rt, run, spec, instances, due_at, now=now)
    return instances


def release_waiting(session: Session, rt: Runtime, run: Run, spec: StepSpec, *,
                    now: datetime) -> list[StepInstance]:
    """Make ready the pending instances of an `item_needs` step whose partners have
    finished: assigned afresh (the org chart may have changed while they waited), due and
    timed from now (or from the run or stage, as `due` says), announced like make_ready's."""
    pending = list(session.exec(
        select(StepInstance)
        .where(StepInstance.run_id == run.id, StepInstance.step_key == spec.id,
               StepInstance.status == st.PENDING)
        .order_by(StepInstance.item_index)  # type: ignore[arg-type]
    ).all())
    unfinished = _unfinished_partners(session, run, spec)
    released = [inst for inst in pending if item_key(inst.item) not in unfinished]
    if not released:
        return []
    due_at = due_time(rt, run, spec, ready_at=now)
    check = first_check(rt, spec, status=st.READY, ready_at=now, due_at=due_at, now=now)
    for inst in released:
        if spec.role:
            inst.assignee_unit_id, inst.assignees = assignment(rt, spec.role, inst.unit_id)
        inst.status, inst.ready_at, inst.due_at, inst.next_check_at = st.READY, now, due_at, check
        inst.version += 1
        session.add(inst)
    session.flush()
    announce(session, rt, run, spec, released, due_at, now=now)
    return released


def _unfinished_partners(session: Session, run: Run, spec: StepSpec) -> set[str]:
    """The items (item_key) with an instance of one of `spec.item_needs` not yet finished. A
    need passed over whole has no instances, so it holds nothing back; nor does an item the
    need never had (the org chart grew since it fanned out)."""
    rows = session.exec(
        select(StepInstance.item, StepInstance.status)
        .where(StepInstance.run_id == run.id,
               StepInstance.step_key.in_(spec.item_needs))  # type: ignore[attr-defined]
    ).all()
    return {item_key(item) for item, status in rows if status not in st.FINISHED_STATUSES}


def _waiting(session: Session, run: Run, spec: StepSpec, items: list[Any]) -> set[int]:
    unfinished = _unfinished_partners(session, run, spec)
    return {i for i, item in enumerate(items) if item_key(item) in unfinished}


def announce(session: Session, rt: Runtime, run: Run, spec: StepSpec,
              instances: list[StepInstance], due_at: datetime | None, *, now: datetime) -> None:
    """The timeline's `ready` event of each instance and its assignees' inbox notes."""
    events: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for inst in instances:
        detail: dict[str, Any] = {"step": spec.id, "assignees": inst.assignees,
                                  "due_at": due_at.isoformat() if due_at else None}
        if inst.rehanded_from is not None:
            detail["rehanded_from"] = inst.rehanded_from
        events.append({
            "run_id": run.id, "step_id": inst.id, "at": now, "actor": SYSTEM,
            "action": "ready", "from_state": st.PENDING, "to_state": st.READY,
            "detail": detail,
        })
        if spec.action == "task" and inst.assignees:
            due_text = rt.renderer.deadline(due_at) if due_at else "无时限"
            again = inst.rehanded_from is not None
            inbox_only = not again and spec.announce != "channels"
            # On their own channels only the one on duty is woken (a rostered role, e.g.
            # the district's three duty officers); every holder keeps the inbox copy.
            cut = DutyCut() if inbox_only else duty_cut(
                rt.org, rt.tz, now, task_group(inst.role, inst.assignee_unit_id,
                                               inst.assignee_person_id, inst.assignees))
            events += fallback_events(rt.org, cut, run_id=run.id, step_id=inst.id, now=now)
            notes += notification_rows(
                rt.org, people=inst.assignees, kind="assigned",
                title=message_title(rt, run, "【重新下达】" if again else "【新任务】", inst.title,
                                    session),
                body=(f"{run.title}：{inst.title}，此前随预警降级撤销，现再次进入该阶段，重新下达，"
                      f"请于 {due_text} 前完成。" if again
                      else f"{run.title}：{inst.title}，请于 {due_text} 前完成。"),
                dedupe=f"assigned|{inst.id}|{inst.version}", now=now, run_id=run.id,
                step_id=inst.id,
                # Told on their own channels that it was called off (flows/call_off.py), its
                # holders hear on the same channels that it is owed again, not only in an
                # inbox they may not open while on the way to a shelter. A first hand-out goes
                # where the step says (`announce`): a gas leak's duty officer is woken on their
                # phone; a hazard's grid worker finds it in the inbox.
                inbox_only=inbox_only, quiet=cut.quiet,
            )
    insert_rows(session, AuditEvent, events)
    insert_ignoring_duplicates(session, Notification, notes)


def _set_status(session: Session, inst: StepInstance, status: str, *, now: datetime) -> None:
    inst.status = status
    inst.next_check_at = None
    if status in st.FINISHED_STATUSES:
        inst.done_at = now
    inst.version += 1
    session.add(inst)


def cancel_open_steps(session: Session, run_id: int, *, now: datetime) -> int:
    lapse_extension_requests(session, run_id=run_id, now=now)
    result = session.execute(
        update(StepInstance)
        .where(
            StepInstance.run_id == run_id,
            StepInstance.status.in_([st.PENDING, *st.OPEN_STATUSES]),  # type: ignore[attr-defined]
        )
        .values(status=st.CANCELLED, next_check_at=None, done_at=now,
                version=StepInstance.version + 1)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def wake(session: Session, run: Run, reason: str, *, now: datetime) -> None:
    add_wake(session, run_id=run.id or 0, reason=reason, now=now)
