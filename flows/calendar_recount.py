"""Once a year is added to the working-day calendar file, the open deadlines that were Mon-Fri
estimates of it are counted again with its holidays (flows/calendar_gaps.py says which are
estimates until then). Run once per content of the file, at the server's start."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, time
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, col, select

from flows.progress import due_time, first_check
from flows.recipients import notification_rows
from flows.registers import sync_entry
from flows.runtime import Runtime
from models import run as run_status
from models import task as st
from models.audit import SYSTEM
from models.db import session_scope
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates


def recount_estimates(rt: Runtime, *, batch: int = 500) -> int:
    """Once a year is added to the calendar file, deadlines counted Mon-Fri into it are counted
    again with its holidays (a 5wd from 28 December moves past 元旦). Returns how many moved.

    Only a deadline that was an estimate moves: an open task's, not yet passed (a passed one
    has had its reminders and escalations on the old reading; it stays, and an extension is
    the way to move it), never one chosen by an extension, and only when the stored time is
    exactly what the count gave without the year, so a deadline set any other way (from a
    passed deadline, by an older playbook) is left alone. Each move is an event in the run's
    timeline, and the task's holders are told."""
    now = rt.clock.now()
    # Steps counted in working days, by key, in the playbooks as they are (a key that counted
    # in working days only in an older version is not read again).
    keys = sorted({spec.id for playbook in rt.catalog.current.values()
                   for spec in playbook.steps
                   if spec.due is not None and spec.due.after.is_working_days})
    if not rt.calendar.years or not keys:
        return 0
    # A year is added when it is about to matter, so it is the last the file lists; the
    # deadlines that were estimates of it fall inside it. (Two years added at once: the
    # earlier one's are not read again.)
    last = max(rt.calendar.years)
    since = max(now, datetime(last, 1, 1, tzinfo=rt.tz))
    until = datetime(last + 1, 1, 1, tzinfo=rt.tz)
    moved = 0
    last_id = 0
    while True:
        with session_scope(rt.db) as session:
            rows = session.exec(
                select(StepInstance).where(
                    col(StepInstance.status).in_((st.READY, st.ACKED, st.REJECTED)),
                    col(StepInstance.step_key).in_(keys),
                    col(StepInstance.original_due_at).is_(None),
                    col(StepInstance.due_at) > since, col(StepInstance.due_at) <= until,
                    col(StepInstance.id) > last_id,
                ).order_by(col(StepInstance.id)).limit(batch)
            ).all()
            if not rows:
                return moved
            last_id = rows[-1].id or last_id
            for step in rows:
                moved += _recount(session, rt, step, now)


def _recount(session: Session, rt: Runtime, step: StepInstance, now: datetime) -> int:
    due = step.due_at
    if due is None or step.ready_at is None or due.astimezone(rt.tz).time() != time(0):
        return 0
    run = session.get(Run, step.run_id)
    if run is None or run.status != run_status.RUNNING:
        return 0
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    try:
        spec = playbook.step(step.step_key) if playbook else None
    except KeyError:
        return 0
    if spec is None or spec.due is None or not spec.due.after.is_working_days:
        return 0
    counted = due_time(rt, run, spec, ready_at=step.ready_at)
    if counted is None or counted == due or counted <= now:
        return 0
    # The year added since: counted without it (and later ones), the count gives exactly what
    # is stored. The latest such year, since without an earlier one the same may hold.
    span = range(step.ready_at.astimezone(rt.tz).year, due.astimezone(rt.tz).year + 1)
    added = next((year for year in reversed(span)
                  if due_time(replace(rt, calendar=rt.calendar.before(year)), run, spec,
                              ready_at=step.ready_at) == due), None)
    if added is None:
        return 0  # not a Mon-Fri estimate of this count: set some other way, left alone
    check = first_check(rt, spec, status=step.status, ready_at=step.ready_at, due_at=counted,
                        now=now)
    result = session.execute(
        update(StepInstance)
        .where(col(StepInstance.id) == step.id, col(StepInstance.version) == step.version)
        .values(version=step.version + 1, due_at=counted, overdue=False, escalation_level=0,
                last_escalated_at=None, reminders_sent=0, next_check_at=check)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return 0  # moved by someone meanwhile: it is read again at the next start
    years = "、".join(f"{y}年" for y in span if y >= added and y in rt.calendar.years)
    reason = f"{years}节假日安排已录入工作日历，期限按工作日重新计算"
    add_event(session, at=now, actor=SYSTEM, action="deadline_recounted", run_id=run.id,
              step_id=step.id, detail={"from": due.isoformat(), "to": counted.isoformat(),
                                       "reason": reason})
    insert_ignoring_duplicates(session, Notification, notification_rows(
        rt.org, people=list(step.assignees), kind="extended",
        title=f"【期限调整】{step.title}",
        body=f"{run.title}：{step.title} 的期限由 {rt.renderer.deadline(due)} 调整为 "
             f"{rt.renderer.deadline(counted)}。原因：{reason}",
        dedupe=f"recounted|{step.id}|{counted.isoformat()}", now=now, run_id=run.id,
        step_id=step.id, inbox_only=True,
    ))
    if playbook is not None:
        session.flush()
        sync_entry(session, rt, run, playbook, now)
    return 1


# The calendar file last recounted against, in the data dir: an ordinary restart reads no rows.
COUNTED_MARK = "calendar-counted.sha256"


def recount_if_changed(rt: Runtime) -> int:
    """recount_estimates, once per content of the calendar file (a server restarted with the
    same file has nothing new to count)."""
    source = Path(rt.calendar.source) if rt.calendar.source else None
    if source is None or not source.is_file():
        return 0
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    mark = rt.settings.data_dir / COUNTED_MARK
    if mark.is_file() and mark.read_text(encoding="ascii").strip() == digest:
        return 0
    moved = recount_estimates(rt)
    mark.write_text(digest + "\n", encoding="ascii")
    return moved
