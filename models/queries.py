"""Keyword-only read queries shared by flows/ and api/: lists with filters and paging that stay
on indexes (an inbox is a range of ix_step_inbox / ix_step_person, not a scan)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, func, or_, true
from sqlmodel import Session, select

from models.audit import AuditEvent
from models.documents import PlaybookVersion
from models.escalation import Escalation
from models.hazard import Hazard
from models.run import Run
from models.task import ACTIONABLE_STATUSES, SUBMITTED, StepInstance


def list_runs(
    session: Session, *, units: Sequence[str] | None, playbook: str | None = None,
    status: str | Sequence[str] | None = None, since: datetime | None = None,
    until: datetime | None = None, drill: bool | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[Run], int]:
    """Runs newest first; `status` is one status or several (any of them); `drill` True
    keeps drills only, False real events only, None both."""
    conds = []
    if drill is not None:
        conds.append(Run.drill_kind.is_not(None) if drill  # type: ignore[union-attr]
                     else Run.drill_kind.is_(None))  # type: ignore[union-attr]
    if units is not None:
        conds.append(Run.unit_id.in_(list(units)))  # type: ignore[attr-defined]
    if playbook:
        conds.append(Run.playbook_id == playbook)
    if isinstance(status, str):
        status = [status]
    if status:
        wanted = list(dict.fromkeys(status))
        conds.append(Run.status == wanted[0] if len(wanted) == 1
                     else Run.status.in_(wanted))  # type: ignore[attr-defined]
    if since:
        conds.append(Run.started_at >= since)
    if until:
        conds.append(Run.started_at < until)
    where = and_(*conds) if conds else true()
    total = session.exec(select(func.count()).select_from(Run).where(where)).one()
    rows = session.exec(
        select(Run).where(where).order_by(Run.id.desc()).offset(offset).limit(limit)  # type: ignore[union-attr]
    ).all()
    return list(rows), int(total)


@dataclass(frozen=True)
class LateWork:
    """A run's tasks past their deadline: how many, and the earliest deadline missed."""

    tasks: int
    earliest_due: datetime


def late_work(session: Session, *, run_ids: Sequence[int], now: datetime
              ) -> dict[int, LateWork]:
    """For each of `run_ids` (a page of runs) with tasks still to be done (ready, acked, sent
    back: the statuses whose clock runs, flows/timers.py) past their deadline, their number
    and the earliest deadline; runs with none are absent. One grouped query for the page on
    ux_step_item, whose first column is run_id: each run's steps are one index range, so the
    cost follows the page's steps, never the table's."""
    wanted = list(dict.fromkeys(run_ids))
    if not wanted:
        return {}
    rows = session.exec(
        select(StepInstance.run_id, func.count(), func.min(StepInstance.due_at))
        .where(StepInstance.run_id.in_(wanted),  # type: ignore[attr-defined]
               StepInstance.action == "task",
               StepInstance.status.in_(ACTIONABLE_STATUSES),  # type: ignore[attr-defined]
               StepInstance.due_at < now)  # type: ignore[operator]
        .group_by(StepInstance.run_id))
    return {run_id: LateWork(int(count), earliest) for run_id, count, earliest in rows}


def list_steps(
    session: Session, *, units: Sequence[str] | None = None,
    mine: Sequence[tuple[str, str]] | None = None, person: str | None = None,
    status: Sequence[str] | None = None,
    overdue: bool | None = None, run_id: int | None = None, limit: int = 50, offset: int = 0,
    verify: tuple[Sequence[str], Sequence[str]] | None = None,
    q: str | None = None,
) -> tuple[list[StepInstance], int]:
    """`mine` = the (role, unit) pairs a person holds: their inbox is the instances whose role
    resolved to one of those units, plus those reassigned to them by name, plus (`verify` =
    units, step keys) the submitted work in those units awaiting a verifier of their role that
    someone else did. Ordered by deadline (none last), then id. `q`: only steps of runs whose
    title (a hazard's location, a typhoon's name) or hazard register row (number, enterprise,
    location, description) contains it."""
    shared: list[Any] = [StepInstance.action == "task"]
    if q:
        # The number on the site's notice (the common search) is one index seek; anything
        # else scans titles and the register (~2 s at 1,200,000 hazards).
        exact = list(session.exec(select(Hazard.run_id).where(Hazard.code == q.strip())))
        shared.append(StepInstance.run_id.in_(  # type: ignore[attr-defined]
            exact or runs_matching(q)))
    if units is not None:
        shared.append(step_in_units(units))
    if overdue is not None:
        shared.append(StepInstance.overdue == overdue)
    if run_id is not None:
        shared.append(StepInstance.run_id == run_id)
    branches: list[Any] | None = None
    verifying: int | None = None
    if mine is not None:
        branches = [StepInstance.assignee_person_id == person] if person else []
        branches += [and_(StepInstance.role == role, StepInstance.assignee_unit_id == unit,
                          StepInstance.assignee_person_id.is_(None))  # type: ignore[union-attr]
                     for role, unit in dict.fromkeys(mine)]
        if verify is not None and verify[0] and verify[1] and person:
            units_v, keys = verify
            # Held units only: a verifier's role resolves where the step is held (`at:`), so
            # the units where the person may verify are matched against unit_id, not where
            # the event is (step_in_units would offer them the work of a unit above theirs).
            branches.append(and_(
                StepInstance.status == SUBMITTED,
                StepInstance.unit_id.in_(list(units_v)),  # type: ignore[attr-defined]
                StepInstance.step_key.in_(list(keys)),  # type: ignore[attr-defined]
                StepInstance.submitted_by != person))
            verifying = len(branches) - 1  # matches only submitted steps: paged for that alone
    statuses = list(dict.fromkeys(status)) if status else None
    where = and_(*shared,
                 *([or_(*branches) if branches else false()] if branches is not None else []),
                 *([StepInstance.status.in_(statuses)] if statuses else []))  # type: ignore[attr-defined]
    total = session.exec(select(func.count()).select_from(StepInstance).where(where)).one()
    if branches is not None and statuses:
        ranges = [(branch, status, i == verifying) for i, branch in enumerate(branches)
                  for status in statuses if i != verifying or status == SUBMITTED]
        ids = _inbox_page(session, shared, ranges, limit=limit, offset=offset)
        found = {r.id: r for r in session.exec(
            select(StepInstance).where(StepInstance.id.in_(ids)))}  # type: ignore[union-attr]
        return [found[i] for i in ids if i in found], int(total)
    rows = session.exec(
        select(StepInstance).where(where)
        .order_by(StepInstance.due_at.is_(None), StepInstance.due_at, StepInstance.id)  # type: ignore[union-attr]
        .offset(offset).limit(limit)
    ).all()
    return list(rows), int(total)


def runs_matching(q: str) -> Any:
    """Ids of the runs a search text names: in the run's title, or in its hazard's number,
    enterprise, location or description (a LIKE, its wildcards taken literally). Computed once
    per query, so a search costs a scan of the titles; the inbox without one does not."""
    by_title = select(Run.id).where(
        Run.title.contains(q, autoescape=True))  # type: ignore[attr-defined]
    by_hazard = select(Hazard.run_id).where(or_(
        Hazard.code.contains(q, autoescape=True),  # type: ignore[attr-defined]
        Hazard.enterprise.contains(q, autoescape=True),  # type: ignore[union-attr]
        Hazard.location.contains(q, autoescape=True),  # type: ignore[attr-defined]
        Hazard.description.contains(q, autoescape=True)))  # type: ignore[union-attr]
    return by_title.union(by_hazard)


def step_in_units(units: Sequence[str]) -> Any:
    """Steps in the scope of `units` (a unit filter, or a person's unit and below): held in one
    of them (unit_id), or held elsewhere by a playbook's `at:` for an event in one of them
    (origin_unit_id: the gas leak's duty-room steps, held at the district, are also liuhe's
    when the leak is in liuhe, so a filter by where the event is finds them, and so does a
    street commander's own-unit-and-below list). Rights stay with unit_id (flows.access).
    The second arm is a range of the sparse ix_step_origin_status (its explicit IS NOT NULL
    is the index's predicate, so both SQLite and PostgreSQL may use it): a unit-wide list
    becomes the union of two index ranges, not a scan."""
    wanted = list(dict.fromkeys(units))
    return or_(StepInstance.unit_id.in_(wanted),  # type: ignore[attr-defined]
               and_(StepInstance.origin_unit_id.is_not(None),  # type: ignore[union-attr]
                    StepInstance.origin_unit_id.in_(wanted)))  # type: ignore[union-attr]


def _inbox_page(session: Session, shared: list[Any], ranges: list[tuple[Any, str, bool]],
                *, limit: int, offset: int) -> list[int]:
    """One inbox page by deadline without sorting the whole inbox: an inspector of a busy
    street holds tens of thousands of open tasks, and one ORDER BY over all of them costs more
    than the page. Each (branch, status) of `ranges` is a range of ix_step_inbox (or
    ix_step_person) that is already in deadline order, so each gives its first offset+limit ids
    at once (the work awaiting the person's verification, a few submitted steps found through
    ix_step_unit_status, is sorted); the few hundred candidates are merged here. Tasks with no
    deadline come after those with one. Work awaiting the person's verification is placed by
    the verifier's own deadline (verify_due_at) where the playbook gives one: that is the
    deadline the person is chased for."""
    want = offset + limit
    dated: list[tuple[Any, int]] = []
    undated: list[int] = []
    for branch, status, verifying in ranges:
        conds = [*shared, branch, StepInstance.status == status]
        due: Any = (func.coalesce(StepInstance.verify_due_at, StepInstance.due_at)
                    if verifying else StepInstance.due_at)
        dated += list(session.exec(
            select(due, StepInstance.id)
            .where(*conds, due.is_not(None))
            .order_by(due, StepInstance.id).limit(want)))
        undated += list(session.exec(
            select(StepInstance.id)
            .where(*conds, due.is_(None))
            .order_by(StepInstance.id).limit(want)))
    ordered = [i for _due, i in sorted(dated)] + sorted(undated)
    return list(dict.fromkeys(ordered))[offset:want]


def playbook_has_runs(session: Session, *, playbook_id: str) -> bool:
    """Whether any run was started from a playbook of this id: every run pins its compiled
    playbook first (flows.catalog.Catalog.pin), so this is one lookup on the small, indexed
    playbook_version table, not a scan of the runs."""
    return session.exec(
        select(PlaybookVersion.sha256).where(PlaybookVersion.playbook_id == playbook_id).limit(1)
    ).first() is not None


def playbooks_with_runs(session: Session) -> list[str]:
    """The ids of every playbook a run was started from (see playbook_has_runs), sorted."""
    return list(session.exec(
        select(PlaybookVersion.playbook_id).distinct().order_by(PlaybookVersion.playbook_id)))


def run_detail(
    session: Session, *, run_id: int
) -> tuple[list[StepInstance], list[Escalation], list[AuditEvent]]:
    steps = session.exec(
        select(StepInstance).where(StepInstance.run_id == run_id).order_by(StepInstance.id)
    ).all()
    escalations = session.exec(
        select(Escalation).where(Escalation.run_id == run_id).order_by(Escalation.id)
    ).all()
    events = session.exec(
        select(AuditEvent).where(AuditEvent.run_id == run_id).order_by(AuditEvent.id)
    ).all()
    return list(steps), list(escalations), list(events)


def rehanded_as(session: Session, *, run_id: int, step_id: int) -> int | None:
    """The instance that answers a called-off one its run entered the stage of again (handed
    out again, or passed over): None while it is still only called off."""
    return session.exec(select(StepInstance.id).where(
        StepInstance.run_id == run_id, StepInstance.rehanded_from == step_id)).first()




def units_with_running_runs(session: Session) -> list[str]:
    """The units that have running runs (one pass over ix_run_unit_status)."""
    return list(session.exec(
        select(Run.unit_id).where(Run.status == "running").distinct()))


def open_task_holders(session: Session) -> list[tuple[str | None, str, str | None, int]]:
    """(assignee unit, role, named person, how many) over the tasks whose assignee must still
    act: the inbox keys of all open work, grouped on ix_step_inbox's own columns."""
    rows = session.exec(
        select(StepInstance.assignee_unit_id, StepInstance.role,
               StepInstance.assignee_person_id, func.count())
        .where(StepInstance.status.in_(ACTIONABLE_STATUSES),  # type: ignore[attr-defined]
               StepInstance.role.is_not(None))  # type: ignore[union-attr]
        .group_by(StepInstance.assignee_unit_id, StepInstance.role,
                  StepInstance.assignee_person_id)
    ).all()
    return [(unit, role or "", person, int(n)) for unit, role, person, n in rows]
