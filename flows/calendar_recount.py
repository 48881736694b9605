"""Once a year is added to the working-day calendar file, the open deadlines that were Mon-Fri
estimates of it are counted again with its holidays (flows/calendar_gaps.py says which are
estimates until then). Run once per content of the file, at the server's start."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from flows.access import verifiers
from flows.message_titles import message_title
from flows.progress import due_time, first_check, verify_due_time
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
    again with its holidays (a 5wd from 28 December moves past 元旦). Returns how many steps
    had a deadline moved.

    Both deadlines a step may carry: its own (`due_at`, of a task open or handed in, since it
    holds again if the work is sent back) and the verifier's (`verify_due_at`, of work awaiting
    review). Only a deadline that was an estimate moves: not yet passed (a passed one has had
    its reminders and escalations on the old reading; an extension is the way to move it),
    never one chosen by an extension, and only when the stored time is exactly what the count
    gave without the year, so a deadline set any other way (from a passed deadline, by an older
    playbook) is left alone. Each move is an event in the run's timeline, and whoever works to
    that deadline is told."""
    now = rt.clock.now()
    # Steps counted on the calendar (working days, or whole days whose last day off moves),
    # by key, in the playbooks as they are (a key that counted so only in an older version is
    # not read again).
    keys = sorted({spec.id for playbook in rt.catalog.current.values()
                   for spec in playbook.steps
                   if (spec.due is not None and spec.due.on_calendar)
                   or (spec.verify is not None and spec.verify.due is not None
                       and spec.verify.due.on_calendar)})
    if not rt.calendar.years or not keys:
        return 0
    # A year is added when it is about to matter, so it is the last the file lists; the
    # deadlines that were estimates of it fall inside it. (Two years added at once: the
    # earlier one's are not read again.)
    last = max(rt.calendar.years)
    since = max(now, datetime(last, 1, 1, tzinfo=rt.tz))
    until = datetime(last + 1, 1, 1, tzinfo=rt.tz)

    def inside(column: Any) -> Any:
        return (column > since) & (column <= until)

    moved = 0
    last_id = 0
    while True:
        with session_scope(rt.db) as session:
            rows = session.exec(
                select(StepInstance).where(
                    col(StepInstance.status).in_((st.READY, st.ACKED, st.REJECTED,
                                                  st.SUBMITTED)),
                    col(StepInstance.step_key).in_(keys),
                    inside(col(StepInstance.due_at)) | inside(col(StepInstance.verify_due_at)),
                    col(StepInstance.id) > last_id,
                ).order_by(col(StepInstance.id)).limit(batch)
            ).all()
            if not rows:
                return moved
            last_id = rows[-1].id or last_id
            for step in rows:
                moved += _recount(session, rt, step, now)


@dataclass
class _Moved:
    old: datetime
    new: datetime
    years: str  # the years added since it was counted, as the reason names them


def _recounted(rt: Runtime, count: Callable[[Runtime], datetime | None], stored: datetime,
               start: datetime, now: datetime) -> _Moved | None:
    """The deadline `count` gives now, when `stored` was its Mon-Fri estimate."""
    if stored <= now or stored.astimezone(rt.tz).time() != time(0):
        return None  # passed, or not a working-day count (those end at local midnight)
    counted = count(rt)
    if counted is None or counted == stored or counted <= now:
        return None
    # The year added since: counted without it (and later ones), the count gives exactly what
    # is stored. The latest such year, since without an earlier one the same may hold.
    span = range(start.astimezone(rt.tz).year, stored.astimezone(rt.tz).year + 1)
    added = next((year for year in reversed(span)
                  if count(replace(rt, calendar=rt.calendar.before(year))) == stored), None)
    if added is None:
        return None  # not a Mon-Fri estimate of this count: set some other way, left alone
    years = "、".join(f"{y}年" for y in span if y >= added and y in rt.calendar.years)
    return _Moved(stored, counted, years)


def _recount(session: Session, rt: Runtime, step: StepInstance, now: datetime) -> int:
    run = session.get(Run, step.run_id)
    if run is None or run.status != run_status.RUNNING or step.ready_at is None:
        return 0
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    try:
        spec = playbook.step(step.step_key) if playbook else None
    except KeyError:
        return 0
    if spec is None:
        return 0
    ready_at = step.ready_at
    due = verify = None
    if (step.due_at is not None and step.original_due_at is None and spec.due is not None
            and spec.due.on_calendar):
        due = _recounted(rt, lambda r: due_time(r, run, spec, ready_at=ready_at),
                         step.due_at, ready_at, now)
    submitted_at = step.submitted_at
    if (step.status == st.SUBMITTED and step.verify_due_at is not None
            and submitted_at is not None and spec.verify is not None
            and spec.verify.due is not None and spec.verify.due.on_calendar):
        verify = _recounted(
            rt, lambda r: verify_due_time(r, run, spec, submitted_at=submitted_at),
            step.verify_due_at, submitted_at, now)
    if due is None and verify is None:
        return 0
    values: dict[str, Any] = {}
    new_due = due.new if due else step.due_at
    if due is not None:
        values["due_at"] = due.new
        if step.status != st.SUBMITTED:  # the assignee's ladder runs: it starts again
            values |= {"overdue": False, "escalation_level": 0, "last_escalated_at": None,
                       "reminders_sent": 0,
                       "next_check_at": first_check(rt, spec, status=step.status,
                                                    ready_at=ready_at, due_at=new_due,
                                                    now=now)}
    if verify is not None:
        values |= {"verify_due_at": verify.new, "verify_level": 0, "verify_last_at": None,
                   "next_check_at": first_check(rt, spec, status=st.SUBMITTED,
                                                ready_at=ready_at, due_at=new_due, now=now,
                                                verify_due_at=verify.new)}
    result = session.execute(
        update(StepInstance)
        .where(col(StepInstance.id) == step.id, col(StepInstance.version) == step.version)
        .values(version=step.version + 1, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return 0  # moved by someone meanwhile: it is read again at the next start
    if due is not None:
        _tell(session, rt, run, step, due, "due", list(step.assignees), now,
              whole_days=spec.due is not None and spec.due.whole_days)
    if verify is not None and spec.verify is not None:
        rule = spec.verify
        people = [p.id for p in verifiers(rt.org, rule.role, step.unit_id,
                                          distinct=rule.distinct, submitted_by=step.submitted_by)]
        _tell(session, rt, run, step, verify, "verify", people, now,
              whole_days=rule.due is not None and rule.due.whole_days)
    if playbook is not None:
        session.flush()
        sync_entry(session, rt, run, playbook, now)
    return 1


def _tell(session: Session, rt: Runtime, run: Run, step: StepInstance, moved: _Moved,
          which: str, people: list[str], now: datetime, *, whole_days: bool = False) -> None:
    what = f"{step.title} 的核验期限" if which == "verify" else f"{step.title} 的期限"
    # Whole days count every day; only their last day, off or not, came from the estimate.
    how = "届满日遇休息日、节假日顺延，重新确定" if whole_days else "期限按工作日重新计算"
    reason = f"{moved.years}节假日安排已录入工作日历，{how}"
    add_event(session, at=now, actor=SYSTEM, action="deadline_recounted", run_id=run.id,
              step_id=step.id, detail={"deadline": which, "from": moved.old.isoformat(),
                                       "to": moved.new.isoformat(), "reason": reason})
    insert_ignoring_duplicates(session, Notification, notification_rows(
        rt.org, people=people, kind="extended",
        title=message_title(rt, run, "【期限调整】", step.title, session),
        body=f"{run.title}：{what}由 {rt.renderer.deadline(moved.old)} 调整为 "
             f"{rt.renderer.deadline(moved.new)}。原因：{reason}",
        dedupe=f"recounted|{step.id}|{which}|{moved.new.isoformat()}", now=now,
        run_id=run.id, step_id=step.id, inbox_only=True,
    ))


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
