"""Handing out a recurring step's next round (flows/rounds.py says what rounds are).

The sweeper finds a scheduled round when its time comes and hands it out here, in a
transaction of its own that locks the run first (as a wait that elapses). A person may also
ask for the next round at once ("情况发生重大变化时随时续报": the situation changed, report
now): the same hand-out, counted from now, and the regular times go on after it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from flows import rounds
from flows.access import who_may
from flows.lifecycle import load_run, require_running
from flows.locate import not_known
from flows.progress import (
    announce,
    due_time,
    first_check,
    lock_run,
    step_state,
    wake,
)
from flows.rehand import next_index
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from flows.step_rows import assignment, instance_row
from flows.tasks import check_note
from models import run as run_status
from models import task as st
from models.audit import SYSTEM
from models.db import session_scope
from models.errors import Conflict, Forbidden, InvalidInput
from models.run import Run
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates


def hand_out_due_round(session: Session, rt: Runtime, step_id: int, now: datetime) -> bool:
    """Hand out the scheduled round `step_id` whose time has come (the sweeper's call). False
    when there is nothing to do any more: the run ended, the round was withdrawn or handed
    out early meanwhile."""
    step = session.get(StepInstance, step_id)
    run = session.get(Run, step.run_id) if step is not None else None
    if step is None or run is None:
        return False
    if lock_run(session, run):  # run before steps (progress.lock_run); then as it is now
        session.refresh(step)
    if (run.status != run_status.RUNNING or step.next_check_at is None
            or not rounds.is_scheduled(step.status, step.next_check_at)):
        return False
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    spec = playbook.step(step.step_key)
    if spec.follow_up is not None:
        return _hand_out_follow_up(session, rt, run, spec, step, now=now)
    assert spec.recur is not None
    slot, missed = rounds.latest_slot(spec.recur, step.next_check_at, now, rt=rt)
    return _hand_out(session, rt, run, playbook, spec, step, slot=slot, now=now,
                     detail={"missed_rounds": missed} if missed else {})


def _hand_out_follow_up(session: Session, rt: Runtime, run: Run, spec: StepSpec,
                        step: StepInstance, *, now: datetime) -> bool:
    """Hand out a follow-up round whose day has come (flows/follow_ups.py), due counted from
    its time however late the sweep, to whoever holds the role now. The round after it is
    decided when this one is handed in, on what it says."""
    slot = step.next_check_at
    assert slot is not None
    _make_ready(session, rt, run, spec, step, slot=slot, now=now, actor=SYSTEM,
                detail={"follow_up": True})
    wake(session, run, "round", now=now)
    return True


def _make_ready(session: Session, rt: Runtime, run: Run, spec: StepSpec, step: StepInstance,
                *, slot: datetime, now: datetime, actor: str, detail: dict[str, Any]) -> None:
    """Round `step` ready, due counted from `slot` (its time, however late the sweep that saw
    it), held by whoever holds the role now; in the timeline and announced."""
    due_at = due_time(rt, run, spec, ready_at=now, deadline_passed=slot)
    if spec.role:
        step.assignee_unit_id, step.assignees = assignment(rt, spec.role, step.unit_id)
    step.status, step.ready_at, step.due_at = st.READY, now, due_at
    step.next_check_at = first_check(rt, spec, status=st.READY, ready_at=now, due_at=due_at,
                                     now=now)
    step.version += 1
    session.add(step)
    session.flush()
    add_event(session, at=now, actor=actor, action="round", run_id=run.id, step_id=step.id,
              detail={"step": spec.id, "round": (step.item or {}).get("round"),
                      "scheduled_at": slot.isoformat(), **detail})
    announce(session, rt, run, spec, [step], due_at, now=now)


def hand_out_now(session: Session, rt: Runtime, run: Run, spec: StepSpec, step: StepInstance,
                 *, actor: str, note: str, now: datetime) -> StepInstance | None:
    """Hand out `step`, the round of `spec` written ahead, at once, at `actor`'s word (the
    caller has locked the run and checked their right). None when the rounds have ended
    meanwhile (one of `until` finished)."""
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    number = (step.item or {}).get("round", 0)
    step.item = rounds.round_item(spec, number, now, rt=rt)
    step.title = rounds.round_title(spec, step.item)
    detail: dict[str, Any] = {"early": True, "asked_by": actor, "note": note}
    stands_for = rounds.early_stands_for(spec, now, rt=rt)
    if stands_for is not None:  # the next regular round is this one: the one after it is next
        detail["stands_for"] = stands_for.isoformat()
        detail["stands_for_title"] = rounds.slot_label(spec, stands_for, rt=rt)
    if not _hand_out(session, rt, run, playbook, spec, step, slot=now, now=now, detail=detail,
                     actor=actor, next_after=stands_for):
        return None
    return step


def _hand_out(session: Session, rt: Runtime, run: Run, playbook: Playbook, spec: StepSpec,
              step: StepInstance, *, slot: datetime, now: datetime, detail: dict[str, Any],
              actor: str = SYSTEM, next_after: datetime | None = None) -> bool:
    """Make scheduled round `step` ready, due counted from `slot` (its time, however late the
    sweep that saw it); give it its partners; write the round after it (after `next_after`
    when given: the regular slot an early round stands for). Rounds that have ended (one of
    `until` finished) are withdrawn instead."""
    state = step_state(session, run, playbook)
    if rounds.ended_by(spec, state) is not None:
        rounds.end_rounds(session, rt, run, playbook, state, now=now)
        return False
    assert spec.recur is not None
    if isinstance(step.item, dict) and step.item.get("at") != slot.astimezone(UTC).isoformat():
        step.item = rounds.round_item(spec, step.item["round"], slot, rt=rt)  # missed collapsed
        step.title = rounds.round_title(spec, step.item)
    _make_ready(session, rt, run, spec, step, slot=slot, now=now, actor=actor, detail=detail)
    _add_partners(session, rt, run, playbook, spec, step, state)
    number = int((step.item or {}).get("round", 1))
    rounds.schedule(session, rt, run, spec, number=number + 1, after=next_after or slot)
    wake(session, run, "round", now=now)
    return True


def _add_partners(session: Session, rt: Runtime, run: Run, playbook: Playbook, spec: StepSpec,
                  step: StepInstance, state: dict[str, list[str]]) -> None:
    """The round's partners (its sending), pending until the round is done. Only for partner
    steps already under way: one that has not started yet pairs with every round handed out
    when it starts (progress.advance)."""
    rows: list[dict[str, Any]] = []
    for partner in rounds.partners(playbook, spec.id):
        if partner.id not in state:
            continue
        row = instance_row(rt, run, partner, next_index(session, run, partner.id),
                           step.item) | {"status": st.PENDING, "ready_at": None,
                                         "due_at": None, "next_check_at": None, "version": 1}
        if partner.role:
            row["assignee_unit_id"], row["assignees"] = assignment(rt, partner.role,
                                                                   row["unit_id"])
        rows.append(row)
    insert_ignoring_duplicates(session, StepInstance, rows)


def report_now(rt: Runtime, *, run_id: int, step_key: str, actor: str,
               note: str | None) -> StepInstance:
    """The next round of recurring step `step_key` handed out now, at `actor`'s word, with
    `note` saying why (情况发生重大变化: 422 without one). Who may: those who would do the
    round (the duty officer) and the run's commanders. 409 while a round is still open (the
    change goes into that one), and when the rounds have not begun or have ended."""
    check_note("note", note)
    if not (note or "").strip():
        raise InvalidInput("note", "请说明为何提前下达下一轮（如：事态扩大、出现人员伤亡，立即"
                                   "续报） / say why the next round is due now (the situation "
                                   "changed)")
    with session_scope(rt.db) as session:
        run = load_run(session, run_id)
        playbook = rt.catalog.pinned(session, run.playbook_sha)
        if step_key not in playbook.step_ids or playbook.step(step_key).recur is None:
            raise InvalidInput("step", not_known("按轮次重复的步骤", "recurring step", step_key,
                                                 [s.id for s in playbook.recurring]))
        spec = playbook.step(step_key)
        lock_run(session, run)
        require_running(run)
        rows = list(session.exec(select(StepInstance).where(
            StepInstance.run_id == run.id, StepInstance.step_key == spec.id)
            .order_by(StepInstance.item_index)).all())  # type: ignore[arg-type]
        scheduled = next((r for r in rows if rounds.is_scheduled(r.status, r.next_check_at)),
                         None)
        held = rt.org.held_at(run.unit_id, spec.at)
        assert spec.recur is not None
        # The role where the round is held is what the round's own rights read (its row is
        # never handed to a named person before it is out), so no row need be asked.
        if not (spec.role and rt.org.can_act_as(actor, spec.role, held)
                or any(rt.org.can_act_as(actor, role, held) for role in spec.recur.early_by)
                or rt.org.has_right(actor, "commander", run.unit_id)):
            # Everyone who may: the duty officers who would write it, the roles the playbook
            # adds (the duty leader), and the commanders (a 403 naming only the street's
            # commander sends the caller to the wrong person).
            said = ([who_may(rt.org, spec.role, held)] if spec.role else []) + [
                who_may(rt.org, role, held) for role in spec.recur.early_by] + [
                who_may(rt.org, "commander", run.unit_id)]
            raise Forbidden(f"需要{'或'.join(zh for zh, _ in said)}的权限 / requires "
                            + " or ".join(en for _, en in said))
        open_round = next((r for r in rows if r.status in st.OPEN_STATUSES), None)
        if open_round is not None:
            raise Conflict(f"“{open_round.title}”尚未完成，请在其中填报最新情况 / a round is "
                           f"still open (task {open_round.id}): report the change in it",
                           current=open_round.status)
        if scheduled is None:
            raise Conflict(f"“{spec.title}”的轮次尚未开始或已经结束 / the rounds of "
                           f"'{spec.id}' have not begun or have ended")
        handed = hand_out_now(session, rt, run, spec, scheduled, actor=actor, note=note or "",
                              now=rt.clock.now())
        if handed is None:
            raise Conflict(f"“{spec.title}”的轮次已经结束 / the rounds of '{spec.id}' have "
                           "ended")
        return handed
