"""Keyword-only read queries shared by flows/ and api/: lists with filters and paging that stay
on indexes (an inbox is a range of ix_step_inbox / ix_step_person, not a scan)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, false, func, or_, true, tuple_
from sqlmodel import Session, select

from models.audit import AuditEvent
from models.escalation import Escalation
from models.run import Run
from models.task import StepInstance


def list_runs(
    session: Session, *, units: Sequence[str] | None, playbook: str | None = None,
    status: str | None = None, since: datetime | None = None, until: datetime | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[Run], int]:
    conds = []
    if units is not None:
        conds.append(Run.unit_id.in_(list(units)))  # type: ignore[attr-defined]
    if playbook:
        conds.append(Run.playbook_id == playbook)
    if status:
        conds.append(Run.status == status)
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


def list_steps(
    session: Session, *, units: Sequence[str] | None = None,
    mine: Sequence[tuple[str, str]] | None = None, person: str | None = None,
    verify_roles: Sequence[str] | None = None, status: Sequence[str] | None = None,
    overdue: bool | None = None, run_id: int | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[StepInstance], int]:
    """`mine` = the (role, unit) pairs a person holds: their inbox is the instances whose role
    resolved to one of those units, plus those reassigned to them by name."""
    conds = [StepInstance.action == "task"]
    if mine is not None:
        mine_conds = [StepInstance.assignee_person_id == person] if person else []
        if mine:
            mine_conds.append(and_(
                tuple_(StepInstance.role, StepInstance.assignee_unit_id).in_(list(mine)),
                StepInstance.assignee_person_id.is_(None),  # type: ignore[union-attr]
            ))
        conds.append(or_(*mine_conds) if mine_conds else false())
    if units is not None:
        conds.append(StepInstance.unit_id.in_(list(units)))  # type: ignore[attr-defined]
    if status:
        conds.append(StepInstance.status.in_(list(status)))  # type: ignore[attr-defined]
    if overdue is not None:
        conds.append(StepInstance.overdue == overdue)
    if run_id is not None:
        conds.append(StepInstance.run_id == run_id)
    where = and_(*conds)
    total = session.exec(select(func.count()).select_from(StepInstance).where(where)).one()
    rows = session.exec(
        select(StepInstance).where(where)
        .order_by(StepInstance.due_at.is_(None), StepInstance.due_at, StepInstance.id)  # type: ignore[union-attr]
        .offset(offset).limit(limit)
    ).all()
    return list(rows), int(total)


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


