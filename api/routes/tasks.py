"""Tasks (human step instances): the inbox, and what people do to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import col, select

from api.deps import MAX_ROW, CurrentPerson, Offset, RowId, RuntimeDep
from api.schemas import (
    Completion,
    DeadlineBasisPublic,
    Extension,
    HeldUpPublic,
    ReassignCandidate,
    ReassignCandidates,
    Reassignment,
    StepPublic,
    StepsPublic,
    Verification,
    drill_view,
    person_view,
    role_name,
    spec_of,
    step_view,
)
from flows import tasks
from flows.access import can_read_step, can_read_unit, listing_units, unit_and_below
from flows.deadline_basis import DeadlineBasis, deadline_basis
from flows.output_checks import earlier_records, paired_records
from flows.runtime import Runtime
from models.db import read_session
from models.errors import Forbidden, InvalidInput, NotFound
from models.queries import list_steps, rehanded_as
from models.run import Run
from models.task import CANCELLED, OPEN_STATUSES, STEP_STATUSES, StepInstance

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


@router.get("", response_model=StepsPublic)
def list_(
    rt: RuntimeDep, person: CurrentPerson,
    mine: bool = False, status: str | None = None, overdue: bool | None = None,
    unit: str | None = None, run: Annotated[int | None, Query(ge=1, le=MAX_ROW)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Offset = 0,
    q: Annotated[str | None, Query(max_length=100, description=(
        "Only tasks whose run's title (a hazard's location, a typhoon's name) or hazard "
        "(隐患编号, enterprise, description) contains this text"))] = None,
) -> StepsPublic:
    """Tasks the caller may see; `mine=true` is their inbox (open tasks unless `status` says
    otherwise), with the work others submitted that awaits their verification. `status` may
    be a comma list or `open` (ready, acked, submitted, rejected).
    `unit` narrows any list, the inbox too, to that unit and the units below it; `run` lists
    the tasks of a run the caller may read, all of them (as GET /api/runs/{id} shows them).
    A step a playbook holds above its event (`at: district`) is in the unit that holds it and
    in the event's unit (the run's or fan-out item's), for `unit` and for the caller's own
    unit and below alike."""
    statuses: list[str] | None = None
    if status:
        statuses = []
        for s in status.split(","):
            if s == "open":
                statuses += list(OPEN_STATUSES)
            elif s in STEP_STATUSES:
                statuses.append(s)
            else:
                known = ", ".join(["open", *STEP_STATUSES])
                raise InvalidInput("status", f"不认识的状态 {s[:40]}，可选：{known} / unknown "
                                   f"status '{s[:40]}' (known: {known})")
    if mine and statuses is None:
        statuses = list(OPEN_STATUSES)  # an inbox is what is still to do
    units: list[str] | None
    if mine:
        # An inbox is already only the caller's own tasks, wherever they are (a task handed to
        # them may be in a unit above theirs): `unit` narrows it, nothing else does.
        units = unit_and_below(rt.org, unit) if unit else None
    else:
        # The work of one's own unit and below (models.queries.step_in_units: a step held
        # above by `at:` for an event in one of these units is theirs to see as well).
        units = listing_units(rt.org, person, unit, above=False)
    with read_session(rt.db) as session:
        if run is not None and not mine and units is not None:
            found = session.get(Run, run)
            if found is not None and can_read_unit(rt.org, person, found.unit_id):
                units = unit_and_below(rt.org, unit) if unit else None
        rows, total = list_steps(
            session, units=units,
            mine=rt.org.person_role_units(person) if mine else None, person=person,
            verify=tasks.verifiable(rt, person) if mine else None,
            status=statuses, overdue=overdue, run_id=run, limit=limit, offset=offset,
            q=q.strip() if q and q.strip() else None,
        )
        # One look-up by primary key for the page's runs (at most `limit`), so an inbox card
        # names its hazard or event without the page fetching every run.
        ids = {r.run_id for r in rows}
        runs = {i: (title, sha, drill_view(kind, drill_title))
                for i, title, sha, kind, drill_title in session.exec(
            select(Run.id, Run.title, Run.playbook_sha, Run.drill_kind, Run.drill_title)
            .where(col(Run.id).in_(ids))).all()
        } if ids else {}
    # Each step as its run's pinned playbook has it (compiled once, then from memory): a card
    # must say when the sign-for (叫应) is due, 30 minutes in a typhoon, not only the work's
    # deadline hours away.
    data = []
    for r in rows:
        title, sha, drill = runs.get(r.run_id, (None, None, None))
        spec = spec_of(rt.catalog.pinned(rt.db, sha), r.step_key) if sha else None
        data.append(step_view(rt, r, run_title=title, spec=spec, drill=drill))
    return StepsPublic(data=data, count=total, limit=limit, offset=offset)


@router.get("/{task_id}", response_model=StepPublic)
def read(task_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> StepPublic:
    """A task; readable by who may act on it, by its unit and the units above, and by whoever
    may read its run."""
    with read_session(rt.db) as session:
        step = session.get(StepInstance, task_id)
        if step is None:
            raise NotFound("task", task_id)
        run = session.get(Run, step.run_id)
    if not can_read_step(rt.org, person, step, run_unit_id=run.unit_id if run else None):
        raise Forbidden("无权查看该任务 / task belongs to another unit")
    return _shown(rt, step, run)


@router.post("/{task_id}/ack", response_model=StepPublic)
def ack(task_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> StepPublic:
    """Acknowledge (签收/叫应) a task."""
    return _answer(rt, tasks.ack(rt, step_id=task_id, actor=person))


@router.post("/{task_id}/complete", response_model=StepPublic)
def complete(task_id: RowId, body: Completion, rt: RuntimeDep,
             person: CurrentPerson) -> StepPublic:
    """Complete a task (with evidence where required); goes to verification if required."""
    return _answer(rt, tasks.complete(rt, step_id=task_id, actor=person, note=body.note,
                                        outputs=body.outputs, evidence=body.evidence,
                                        evidence_labels=body.evidence_labels))


@router.post("/{task_id}/verify", response_model=StepPublic)
def verify(task_id: RowId, body: Verification, rt: RuntimeDep,
           person: CurrentPerson) -> StepPublic:
    """Approve or reject a submitted task (a second person where the playbook says so)."""
    return _answer(rt, tasks.verify(rt, step_id=task_id, actor=person, approve=body.approve,
                                      note=body.note, submitted_at=body.submitted_at))


@router.post("/{task_id}/extend", response_model=StepPublic)
def extend(task_id: RowId, body: Extension, rt: RuntimeDep, person: CurrentPerson) -> StepPublic:
    """Move a task's deadline (the original is kept); the escalation ladder restarts."""
    return _answer(rt, tasks.extend(rt, step_id=task_id, actor=person, due_at=body.due_at,
                                      reason=body.reason))


@router.get("/{task_id}/reassign-candidates", response_model=ReassignCandidates)
def reassign_candidates(
    task_id: RowId, rt: RuntimeDep, person: CurrentPerson,
    q: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReassignCandidates:
    """Whom the caller may hand this open task to (the rule of POST …/reassign): those who
    hold its role for its unit first, then its unit's people, then the rest; `q` matches a
    name, post or unit name. 403 for a caller who may not reassign it at all."""
    step, people = tasks.reassign_candidates(rt, step_id=task_id, actor=person)
    pool = step.role is not None and step.unit_id in rt.org.units
    wanted = (q or "").strip()
    found = [p for p in people if not wanted or any(
        wanted in text for text in (p.name, p.title or "", rt.org.unit_name(p.unit_id), p.id))]
    return ReassignCandidates(count=len(found), data=[
        ReassignCandidate(
            **person_view(rt, p.id).model_dump(), roles=[role_name(r) or r for r in p.roles],
            holds_role=pool and rt.org.can_act_as(p.id, step.role or "", step.unit_id),
            current=step.assignee_person_id == p.id)
        for p in found[:limit]])


@router.post("/{task_id}/reassign", response_model=StepPublic)
def reassign(task_id: RowId, body: Reassignment, rt: RuntimeDep,
             person: CurrentPerson) -> StepPublic:
    """Hand a task to a named person: a colleague of its unit (or a holder of its role); a
    commander also to people of their own unit and below; never to one who cannot see the run."""
    return _answer(rt, tasks.reassign(rt, step_id=task_id, actor=person, person=body.person))


def _answer(rt: Runtime, step: StepInstance) -> StepPublic:
    """What an action answers: the task as GET /api/tasks/{id} shows it (its run's title, when
    its sign-for is due), so the phone redraws from the answer without a second request."""
    with read_session(rt.db) as session:
        run = session.get(Run, step.run_id)
    return _shown(rt, step, run)


def _shown(rt: Runtime, step: StepInstance, run: Run | None) -> StepPublic:
    """The task as its page reads it: its run's title, its playbook step (when the sign-for
    is due), the task that replaced it if called off, and the records it pairs with."""
    spec = spec_of(rt.catalog.pinned(rt.db, run.playbook_sha), step.step_key) if run else None
    view = step_view(rt, step, run_title=run.title if run else None, spec=spec,
                     drill=drill_view(run.drill_kind, run.drill_title) if run else None)
    called_off = step.status == CANCELLED  # handed out again since: as which task
    pairs = run is not None and spec is not None and bool(spec.item_needs)
    needs = run is not None and spec is not None and bool(spec.needs)
    from_run = spec is not None and spec.due is not None and spec.due.from_ == "run"
    if called_off or pairs or needs or from_run:
        with read_session(rt.db) as session:
            if called_off:
                view.rehanded_as = rehanded_as(session, run_id=step.run_id, step_id=step.id or 0)
            if pairs:
                view.paired = paired_records(session, rt, run, step, spec)  # type: ignore[arg-type]
            if needs:
                view.earlier = earlier_records(session, rt, run, spec)  # type: ignore[arg-type]
            if from_run and run is not None and spec is not None:
                basis = deadline_basis(session, rt, run,
                                       rt.catalog.pinned(session, run.playbook_sha), spec, step)
                view.deadline_basis = basis_view(rt, basis) if basis is not None else None
    return view


def basis_view(rt: Runtime, b: DeadlineBasis) -> DeadlineBasisPublic:
    held = b.held_up_by
    return DeadlineBasisPublic(
        counted_from=b.counted_from, since=b.since, since_local=rt.renderer.local(b.since),
        deadline=b.deadline, deadline_local=rt.renderer.deadline(b.deadline), text=b.text,
        late_at_hand_out_minutes=b.late_at_hand_out_minutes,
        held_up_by=HeldUpPublic(step=held.key, title=held.title, done_at=held.done_at,
                                done_at_local=rt.renderer.local(held.done_at))
        if held is not None else None,
        late_text=b.late_text)
