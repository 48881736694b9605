"""The deadline sweeper: one pass reads only the step instances whose `next_check_at` has come
(an index range), fires what their timers owe, and sets each one's next check. Its cost follows
what is due, not what is open. A lease row makes sure only one process sweeps at a time."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from flows import rounds
from flows.access import verifiers
from flows.context import run_view, steps_view
from flows.duty import DutyCut, duty_cut, role_groups, task_group
from flows.extensions import chase_undecided
from flows.message_titles import message_title
from flows.numbering import issue_number, run_numbers
from flows.progress import advance, lock_run, wake
from flows.recipients import (
    notification_rows,
    resolve_targets,
    target_name,
    unreached_roles,
)
from flows.render import RenderFailed
from flows.round_start import hand_out_due_round
from flows.runtime import Runtime
from flows.sent_before import COUNTED_KINDS, SentBefore
from flows.signal_acks import chase_missed
from flows.spec import EscalateSpec, StepSpec
from flows.timers import Firing, TimerState, evaluate
from models import run as rs
from models import task as st
from models.audit import SYSTEM, AuditEvent
from models.db import is_sqlite, session_scope
from models.documents import Document
from models.escalation import Escalation
from models.org import ROLE_NAMES_ZH
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.wake import Lease, Wake
from models.writes import add_event, insert_ignoring_duplicates, insert_rows

log = logging.getLogger("closeloop.sweeper")
LEASE = "sweeper"
# How long a sweeper that stopped mid-sweep keeps the others out. One of this host that died is
# seen dead at once (holder_is_dead); another host's (two servers on one PostgreSQL) is only
# known by its lease running out, and for that long no deadline is kept: five minutes was a
# whole gas-leak rung. A sweep renews its lease between batches of ~2 s at worst, so a
# minute still never runs out under a live one (and the escalation's unique key is the
# last line of defence if it did).
LEASE_TTL = timedelta(minutes=1)
# A lease ending further ahead than this was set by a clock ahead of real time: see
# acquire_lease. Not two ttls of a minute: a host a minute off, or a server of an older
# version (five-minute leases) beside a new one, holds a lease honestly.
SKEWED_BEYOND = timedelta(minutes=10)
# A step whose timers cannot be evaluated (a playbook value no check caught) is looked at
# again after this long, so it neither blocks the sweep nor floods the log every pass.
PARK = timedelta(hours=1)
KIND_TITLES = {"remind": "到期提醒", "ack": "未签收", "escalate": "督办提醒",
               "verify": "核验超时"}


@dataclass
class SweepReport:
    swept: bool = True  # False: another process holds the lease
    examined: int = 0
    fired: int = 0
    overdue: int = 0
    waits_finished: int = 0
    rounds_started: int = 0  # recurring steps' rounds handed out (flows/rounds.py)
    notifications: int = 0
    failed: int = 0  # steps whose timers raised: logged, in their timeline, parked (PARK)
    extensions_chased: int = 0  # requests for more time undecided past their decide_by
    signal_acks_chased: int = 0  # a raised signal's 叫应 unanswered past its due time
    lags: list[float] = field(default_factory=list)  # seconds from scheduled to fired


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True for a holder_id of this host whose process no longer exists. Another host's, or
    a pid that is alive (perhaps reused), is not known dead: its lease runs out instead."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def acquire_lease(session: Session, *, name: str, holder: str, now: datetime,
                  ttl: timedelta) -> bool:
    """Take or renew a named lease; True when `holder` has it until now + ttl. A lease ending
    more than two ttls (and SKEWED_BEYOND) from now was set by a clock ahead of real time (a
    drill's offset clock, before leases kept to real time, or a host whose clock is wrong):
    nobody could renew it in time, so it is taken rather than left to block the sweeper for
    hours."""
    expires = now + ttl
    taken = session.execute(
        update(Lease).where(
            Lease.name == name,
            (Lease.holder == holder) | (Lease.expires_at < now)
            | (Lease.expires_at > now + max(2 * ttl, SKEWED_BEYOND)),
        ).values(holder=holder, expires_at=expires)
    ).rowcount  # type: ignore[attr-defined]
    if not taken:
        # Held by a process of this machine that is gone (killed, crashed): taken at once,
        # not after its ttl, during which no deadline would be kept.
        current = session.get(Lease, name)
        if current is not None and holder_is_dead(current.holder):
            taken = session.execute(
                update(Lease).where(Lease.name == name, Lease.holder == current.holder)
                .values(holder=holder, expires_at=expires)
            ).rowcount  # type: ignore[attr-defined]
    if taken:
        return True
    dialect = session.get_bind().dialect.name
    ins = (sqlite_insert if dialect == "sqlite" else pg_insert)(Lease.__table__)
    # RETURNING, not rowcount: psycopg reports -1 (truthy) for INSERT ... ON CONFLICT DO NOTHING.
    created = session.execute(
        ins.values(name=name, holder=holder, expires_at=expires).on_conflict_do_nothing()
        .returning(Lease.__table__.c.name)  # type: ignore[attr-defined]
    ).first()
    return created is not None


def release_lease(session: Session, *, name: str, holder: str, now: datetime) -> None:
    session.execute(
        update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=now)
    )


# Steps per transaction. On SQLite a batch holds the one write lock: 2,000 overdue steps (a
# district's imported hazards all falling due together) held it for 20-25 s, so a commander's
# start or an inspector's sign-for waited as long or timed out. 200 is about 2 s at worst.
SWEEP_BATCH = 200
# Between two batches on SQLite the sweeper waits this long before taking the write lock again.
# A writer kept waiting (a commander's start, a sign-for) retries only every 100 ms (SQLite's
# busy handler), so it missed a gap of microseconds: in a catch-up of thousands of due steps (a
# restart after a day down, an upgrade) it waited batch after batch and failed after 30 s with
# "database is locked". A pause longer than that retry lets whoever waits go first. Only once
# the sweep has held the lock for a while: an ordinary tick (1,000 due, five batches, ~0.3 s)
# keeps nobody waiting longer than itself and is not slowed fourfold by pauses.
BATCH_GAP_SECONDS = 0.25
GAP_AFTER_SECONDS = 1.0


def sweep_once(rt: Runtime, *, holder: str | None = None,
               batch: int = SWEEP_BATCH) -> SweepReport:
    holder = holder or holder_id()
    report = SweepReport()
    now = rt.clock.now()
    with session_scope(rt.db) as session:
        if not acquire_lease(session, name=LEASE, holder=holder, now=rt.lease_clock.now(),
                             ttl=LEASE_TTL):
            report.swept = False
            return report
    try:
        since_gap = time.monotonic()
        while True:
            waits: list[int] = []
            with session_scope(rt.db) as session:
                done = _sweep_batch(session, rt, now, batch, report, waits)
            _finish_waits(rt, waits, now, report)
            if done:
                break
            if is_sqlite(rt.db) and time.monotonic() - since_gap >= GAP_AFTER_SECONDS:
                time.sleep(BATCH_GAP_SECONDS)
                since_gap = time.monotonic()
            # A long sweep keeps its lease (it once ran out mid-sweep, and a drill's sweep
            # started beside it); a lease lost meanwhile ends this sweep, not a second one.
            with session_scope(rt.db) as session:
                if not acquire_lease(session, name=LEASE, holder=holder,
                                     now=rt.lease_clock.now(), ttl=LEASE_TTL):
                    log.warning("sweeper lease lost mid-sweep; stopping this sweep")
                    return report
        with session_scope(rt.db) as session:
            report.extensions_chased = chase_undecided(session, rt, now)
            # A raised signal's 叫应 unanswered in time: one read whatever is open.
            report.signal_acks_chased = chase_missed(session, rt, now)
    finally:
        with session_scope(rt.db) as session:
            release_lease(session, name=LEASE, holder=holder, now=rt.lease_clock.now())
    return report


def _sweep_batch(
    session: Session, rt: Runtime, now: datetime, batch: int, report: SweepReport,
    waits: list[int],
) -> bool:
    """One batch of due steps, in one transaction; the waits that elapsed are only collected
    (`waits`): finishing one advances its run, which takes the run's lock, and this
    transaction holds its steps' locks (PostgreSQL), while a cancel or a completion takes the
    run's lock first and then its steps'. Each wait is finished after the batch, in a
    transaction of its own that locks the run first (_finish_waits)."""
    query = (
        select(StepInstance, Run)
        .join(Run, Run.id == StepInstance.run_id)
        .where(StepInstance.next_check_at <= now)  # type: ignore[operator]
        .order_by(StepInstance.next_check_at)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=StepInstance)  # type: ignore[arg-type]
    rows = session.exec(query).all()
    report.examined += len(rows)
    escalations: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    letters: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    woken: dict[int, Run] = {}
    # 第N次 of every firing in the batch from one read, not a count per firing.
    sent = SentBefore(session, [step.id or 0 for step, _ in rows])
    for step, run in rows:
        # A step's contributions are kept apart until it is through, so one step whose timers,
        # recipients or message fail (a broken pinned playbook, a unit gone from the org chart)
        # is parked on its own and every other deadline of the batch still fires.
        mine = _Contribution()
        try:
            if _sweep_step(session, rt, step, run, now, mine, sent):
                waits.append(step.id or 0)
                continue
        except Exception as exc:
            _park(step, run, now, exc, events, updates, report)
            continue
        escalations += mine.escalations
        notes += mine.notes
        letters += mine.letters
        events += mine.events
        updates.append(mine.update)
        if mine.escalations:
            woken[run.id or 0] = run
        report.overdue += mine.overdue
        report.fired += len(mine.escalations)
        report.lags += [(now - e["scheduled_at"]).total_seconds() for e in mine.escalations]
    # The unique key on escalation (step, kind, level, scheduled_at) is the last line of defence
    # against a double fire; the lease is the first.
    insert_ignoring_duplicates(session, Escalation, escalations)
    insert_ignoring_duplicates(session, Notification, notes)
    insert_ignoring_duplicates(session, Document, letters)
    insert_rows(session, AuditEvent, events)
    if updates:
        # Timers only: no version bump. The batch holds its steps (FOR UPDATE on PostgreSQL;
        # SQLite's one writer), so nobody's action is overwritten, and a person acting on a
        # task meanwhile waits and then goes through, instead of a 409 "changed by someone
        # else" for what was only the clock.
        # Plain executemany on the table: the ORM's bulk-update path costs ~2x in Python here.
        table = StepInstance.__table__  # type: ignore[attr-defined]
        cols = [k for k in updates[0] if k != "id"]
        stmt = table.update().where(table.c.id == bindparam("b_id")).values(
            {c: bindparam(f"b_{c}") for c in cols})
        session.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in updates])
    if woken:
        session.execute(insert(Wake.__table__), [
            {"run_id": rid, "reason": "timers", "created_at": now, "not_before": now,
             "attempts": 0} for rid in woken
        ])
    report.notifications += len(notes)
    return len(rows) < batch


@dataclass
class _Contribution:
    """What one step adds to a sweep batch's writes."""

    escalations: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)  # Document rows (督办函 ...)
    events: list[dict[str, Any]] = field(default_factory=list)
    update: dict[str, Any] = field(default_factory=dict)
    overdue: int = 0


def _sweep_step(session: Session, rt: Runtime, step: StepInstance, run: Run, now: datetime,
                out: _Contribution, sent: SentBefore) -> bool:
    """Fill `out` with what the step's timers owe now; True when it is a wait that elapsed or
    a recurring step's round whose time has come (either is finished in its own
    transaction, _finish_waits)."""
    spec = rt.catalog.pinned(session, run.playbook_sha).step(step.step_key)
    if rounds.is_scheduled(step.status, step.next_check_at):
        return True
    outcome = evaluate(
        spec,
        TimerState(status=step.status, ready_at=step.ready_at, due_at=step.due_at,
                   acked_at=step.acked_at, reminders_sent=step.reminders_sent,
                   ack_missed=step.ack_missed, overdue=step.overdue,
                   escalation_level=step.escalation_level,
                   last_escalated_at=step.last_escalated_at,
                   verify_due_at=step.verify_due_at, verify_level=step.verify_level,
                   verify_last_at=step.verify_last_at),
        now, calendar=rt.calendar, tz=rt.tz,
    )
    if outcome.wait_finished:
        return True
    if outcome.became_overdue:
        out.overdue += 1
        out.events.append(_event(step, now, "overdue", {"due_at": _iso(step.due_at)}))
    # Everyone to tell first: a failure there (a unit gone from the org chart) comes before
    # any 文号 is taken, so a parked step leaves no gap in the register.
    told = [_recipients(rt, step, spec, firing) for firing in outcome.firings]
    for firing, (people, channels) in zip(outcome.firings, told, strict=True):
        key = firing_key(step, firing)
        if not people and not channels:
            # Nobody holds the level's roles any more (the org chart changed under a pinned
            # run): the ladder moves on, but the timeline says the level reached no one, and
            # no 文号 is taken for a letter served on nobody.
            out.events.append(_event(step, now, "unrouted", {
                "kind": firing.kind, "level": firing.level, "targets": list(firing.targets),
                "target_names": [target_name(r, ROLE_NAMES_ZH) for r in firing.targets]}))
            title, body, number = "", "", None
        else:
            # Some of the level's roles reach nobody (the community has no 社区负责人 any more):
            # the others are told, and the timeline names who was not, as for a notify step.
            missed = unreached_roles(rt.org, firing.targets,
                                     rt.org.held_at(step.unit_id, firing.at))
            if missed:
                out.events.append(_event(step, now, "unrouted_partly", {
                    "kind": firing.kind, "level": firing.level, "targets": missed,
                    "target_names": [target_name(r, ROLE_NAMES_ZH) for r in missed]}))
            title, body, number = _message(rt, run, step, spec, firing, now, session=session,
                                           sent=sent)
            level = _level(spec, firing)
            if level is not None and level.template:
                # Which letter of this level it is, counted from those filed: missed repeats
                # collapse into one firing, so the repeat's slot is no count (第7次 was skipped,
                # and a late first sweep filed the second 约谈 as 第11次).
                filed = sent.letters(step.id or 0, firing.level, level.template)
                out.letters.append(_letter(run, step, firing, level, key=key, body=body,
                                           number=number, served_on=people + channels,
                                           now=now, ordinal=filed + 1))
        out.escalations.append({
            "run_id": run.id, "step_id": step.id, "step_key": step.step_key,
            "kind": firing.kind, "level": firing.level, "repeat": firing.repeat,
            "scheduled_at": firing.scheduled_at, "fired_at": now,
            "recipients": people + channels, "prefect_recorded": False,
        })
        # Reminders and ladder levels wake the one on duty of a rostered role on their own
        # channels; everyone the level reaches keeps the inbox copy.
        cut = _duty_cut(rt, step, firing, people, now)
        out.events += [_event(step, now, "duty_fallback", fb.detail(rt.org))
                       for fb in cut.fallbacks]
        out.notes += notification_rows(
            rt.org, people=people, channels=channels, kind=firing.kind, title=title,
            body=body, now=now, run_id=run.id, step_id=step.id,
            dedupe=key, quiet=cut.quiet,
        )
        out.events.append(_event(step, now, firing.kind, {
            "level": firing.level, "repeat": firing.repeat,
            "scheduled_at": firing.scheduled_at.isoformat(),
            "recipients": people + channels, **({"number": number} if number else {}),
        }))
    out.update = {
        "id": step.id, "overdue": step.overdue or outcome.became_overdue,
        "escalation_level": outcome.escalation_level,
        "last_escalated_at": outcome.last_escalated_at,
        "reminders_sent": outcome.reminders_sent, "ack_missed": outcome.ack_missed,
        "verify_level": outcome.verify_level, "verify_last_at": outcome.verify_last_at,
        "next_check_at": outcome.next_check_at,
    }
    return False


def _park(step: StepInstance, run: Run, now: datetime, exc: Exception,
          events: list[dict[str, Any]], updates: list[dict[str, Any]],
          report: SweepReport) -> None:
    """One step could not be swept: logged, said in its timeline, looked at again after PARK."""
    log.error("sweeping step %s (run %s) failed; parked for %s", step.id, run.id, PARK,
              exc_info=exc)
    report.failed += 1
    events.append(_event(step, now, "timer_failed",
                         {"error": f"{type(exc).__name__}: {exc}"[:500]}))
    updates.append(_unchanged(step) | {"next_check_at": now + PARK})


def _unchanged(step: StepInstance) -> dict[str, Any]:
    """The timer columns of a step as they are (the keys every row of the update carries)."""
    return {
        "id": step.id, "overdue": step.overdue, "escalation_level": step.escalation_level,
        "last_escalated_at": step.last_escalated_at, "reminders_sent": step.reminders_sent,
        "ack_missed": step.ack_missed, "verify_level": step.verify_level,
        "verify_last_at": step.verify_last_at, "next_check_at": step.next_check_at,
    }


def _finish_waits(rt: Runtime, step_ids: list[int], now: datetime, report: SweepReport) -> None:
    """The elapsed waits of a batch, each in its own transaction: the run locked first, then
    the step read as it is now (a cancel may have come in between); one that fails is parked
    like any step whose timers fail."""
    for step_id in step_ids:
        try:
            with session_scope(rt.db) as session:
                if _finish_wait(session, rt, step_id, now, report):
                    report.waits_finished += 1
        except Exception as exc:
            with session_scope(rt.db) as session:
                step = session.get(StepInstance, step_id)
                run = session.get(Run, step.run_id) if step is not None else None
                if step is None or run is None:
                    continue
                failed: list[dict[str, Any]] = []
                _park(step, run, now, exc, failed, [], report)
                insert_rows(session, AuditEvent, failed)
                session.execute(update(StepInstance).where(StepInstance.id == step_id)
                                .values(next_check_at=now + PARK))


def _finish_wait(session: Session, rt: Runtime, step_id: int, now: datetime,
                 report: SweepReport) -> bool:
    step = session.get(StepInstance, step_id)
    if step is not None and step.status == st.PENDING:  # a round due to be handed out
        if hand_out_due_round(session, rt, step_id, now):
            report.rounds_started += 1
        return False
    run = session.get(Run, step.run_id) if step is not None else None
    if step is None or run is None:
        return False
    if lock_run(session, run):  # run before steps (progress.lock_run); then as it is now
        session.refresh(step)
    if run.status != rs.RUNNING or step.status != st.READY or step.next_check_at is None:
        return False  # cancelled (or finished) since the batch read it
    step.status = st.DONE
    step.done_at = now
    step.next_check_at = None
    step.version += 1
    session.add(step)
    add_event(session, at=now, actor=SYSTEM, action="done", run_id=run.id, step_id=step.id,
              from_state=st.READY, to_state=st.DONE, detail={"wait": "elapsed"})
    advance(session, rt, run, rt.catalog.pinned(session, run.playbook_sha), now=now,
            deadline_passed=(step.step_key, step.due_at or now))
    wake(session, run, "wait_done", now=now)
    return True


def _recipients(rt: Runtime, step: StepInstance, spec: StepSpec, firing: Firing,
                ) -> tuple[list[str], list[str]]:
    if not firing.targets:
        return list(step.assignees), []
    # A level `at: district` reaches the roles of the district the step sits under, past a
    # street that holds the same role (a street's own commander is not the bureau's).
    people, channels = resolve_targets(rt.org, firing.targets,
                                       rt.org.held_at(step.unit_id, firing.at))
    if firing.kind == "ack":
        # "Sign for the task now" is first of all for whoever has not signed; the first
        # escalation level hears of it too.
        people = list(dict.fromkeys([*step.assignees, *people]))
    elif firing.kind == "verify" and spec.verify is not None and spec.verify.distinct:
        # A late verdict is chased among those who may give it: the one who handed the work
        # in may not (`distinct`), unless they are all the level reaches (someone must hear).
        people = [p for p in people if p != step.submitted_by] or people
    return people, channels


def _duty_cut(rt: Runtime, step: StepInstance, firing: Firing, people: list[str],
              now: datetime) -> DutyCut:
    """Who of a firing's people (as `_recipients` found them) is off duty: the task's own
    holders where the firing reaches them (no targets, or an `ack` chase), and the holders of
    each role the level names."""
    own = task_group(step.role, step.assignee_unit_id, step.assignee_person_id,
                     [p for p in step.assignees if p in people])
    if firing.targets and firing.kind != "ack":
        own = []
    groups = [*own, *(
        (role, unit, [p for p in holders if p in people]) for role, unit, holders in
        role_groups(rt.org, firing.targets, rt.org.held_at(step.unit_id, firing.at)))]
    # Whom the task is with is told whatever a roster says: the named person of a reassigned
    # task, and the holder who signed for it (an officer whose shift ended is still on it).
    named = [p for p in (step.assignee_person_id, step.acked_by) if p and p in people]
    return duty_cut(rt.org, rt.tz, now, groups, others=named)


def _message(rt: Runtime, run: Run, step: StepInstance, spec: StepSpec, firing: Firing,
             now: datetime, *, session: Session | None = None, sent: SentBefore | None = None,
             ) -> tuple[str, str, str | None]:
    """Title, body and 文号 (when the level numbers its letters) of one firing's message."""
    label = KIND_TITLES.get(firing.kind, firing.kind)
    level = _level(spec, firing)
    level_title = level.title if level is not None else None
    head = f"【{label}·{level_title}】" if level_title else f"【{label}】"
    title = message_title(rt, run, head, step.title, session)
    # A verifier is late against their own deadline, not the assignee's.
    deadline = step.verify_due_at if firing.kind == "verify" else step.due_at
    late = int((now - deadline).total_seconds() // 60) if deadline else 0
    context = {
        "kind": firing.kind, "kind_label": label, "level": firing.level,
        "repeat": firing.repeat, "step": {"id": step.step_key, "title": step.title,
                                          "due_at_local": rt.renderer.deadline(step.due_at),
                                          "assignees": [rt.org.person_name(p)
                                                        for p in step.assignees]},
        "run": {"id": run.id, "title": run.title, "unit": run.unit_id,
                "unit_name": rt.org.unit(run.unit_id).name},
        # Where the event is (a step `at:` holds at the district names the community it is
        # about: the duty leader at 3 a.m. must know where, not that the district holds it).
        "unit_name": rt.org.unit(step.origin_unit_id if step.origin_unit_id in rt.org.units
                                 else step.unit_id).name,
        "minutes_late": max(late, 0),
        "now_local": rt.renderer.local(now), "level_title": level_title,
    }
    if session is not None and firing.kind in COUNTED_KINDS:
        # Which message of this level it is, counted from those sent before it (as letters
        # count those filed): missed repeats collapse into one firing after downtime, so the
        # repeat's slot (第 41 次) overstates what anyone received.
        sent = sent or SentBefore(session, [step.id or 0])
        context["ordinal"] = sent.messages(step.id or 0, firing.kind, firing.level,
                                           firing.scheduled_at) + 1
    if firing.kind == "verify" and spec.verify is not None:
        context["verify"] = {
            "due_at_local": rt.renderer.deadline(step.verify_due_at),
            "submitted_at_local": rt.renderer.local(step.submitted_at),
            "submitted_by": rt.org.person_name(step.submitted_by or ""),
            "verifiers": [p.name for p in verifiers(
                rt.org, spec.verify.role, step.unit_id, distinct=spec.verify.distinct,
                submitted_by=step.submitted_by)],
        }
    template = "alert-message.md.j2"
    if level is not None and level.template and session is not None:
        # A level with its own document (督办函, 约谈通知) sees the run's facts as documents do.
        template = level.template
        context |= {"params": dict(run.params), "steps": steps_view(session, rt, run),
                    "numbers": run_numbers(session, run.id or 0)}
        context["run"] = run_view(rt, run)  # with the street above the unit (提级督办函)
    if level is not None and level.number and session is not None:
        # Each letter of the ladder is numbered: keyed like the escalation row itself, so a
        # firing rendered again keeps its number and the next firing takes the next one.
        context["doc_no"] = issue_number(
            session, rt, prefix=level.number, run_id=run.id or 0, step_key=step.step_key,
            subject=firing_key(step, firing),
            now=now).text
    number = context.get("doc_no")
    # A level's own letter as the run's playbook version pinned it (edited since: unchanged).
    pinned = (rt.catalog.pinned(session, run.playbook_sha).templates
              if level is not None and level.template and session is not None else None)
    try:
        body = rt.renderer.render(template, context, pinned)
    except RenderFailed:
        what = (f"应于 {context['verify']['due_at_local']} 前核验" if "verify" in context
                else f"应于 {context['step']['due_at_local']} 完成")
        body = (f"{run.title}：{step.title}（{context['unit_name']}）{what}，"
                f"{label}第{firing.level}级"
                + (f"（第 {context['ordinal']} 次督办）" if context.get("ordinal", 1) > 1 else "")
                + "。" + (f"文号：{number}" if number else ""))
    return title, body, number


def firing_key(step: StepInstance, firing: Firing) -> str:
    """One firing of one level, as its messages' dedupe key, its letter's subject and its 文号's
    subject all name it: a firing rendered again (a replayed sweep) reuses all three."""
    return f"{firing.kind}|{step.id}|{firing.level}|{firing.scheduled_at.isoformat()}"


def _level(spec: StepSpec, firing: Firing) -> EscalateSpec | None:
    """The ladder level a firing belongs to (escalate: the step's, verify: the verifier's)."""
    return ladder_level(spec, firing.kind, firing.level)


def ladder_level(spec: StepSpec, kind: str, level: int) -> EscalateSpec | None:
    """Level `level` (1-based) of the ladder a firing of `kind` climbs; None for a reminder,
    a missed acknowledgement, or a level the playbook no longer has."""
    ladder = {"escalate": spec.escalate,
              "verify": spec.verify.ladder if spec.verify else []}.get(kind, [])
    return ladder[level - 1] if 0 < level <= len(ladder) else None


def _letter(run: Run, step: StepInstance, firing: Firing, level: EscalateSpec, *, key: str,
            body: str, number: str | None, served_on: list[str], now: datetime, ordinal: int
            ) -> dict[str, Any]:
    """A level with its own template sends a letter (督办函, 约谈通知): filed as a document of
    the run, once per firing (the firing's key, as its escalation row and its 文号), with what
    was sent, to whom and when, so it is listed and read beside the notice and the forms."""
    name = level.title or (level.template or "").split(".", 1)[0]
    again = f"（第{ordinal}次）" if ordinal > 1 else ""
    return {"run_id": run.id, "step_id": step.id, "template": level.template,
            "title": f"{name}{again}：{step.title}"[:300], "number": number, "body": body,
            "created_at": now, "subject": key, "level": firing.level,
            "repeat": firing.repeat, "recipients": served_on}


def _event(step: StepInstance, now: datetime, action: str, detail: dict[str, Any]
           ) -> dict[str, Any]:
    return {"run_id": step.run_id, "step_id": step.id, "at": now, "actor": SYSTEM,
            "action": action, "from_state": None, "to_state": None,
            "detail": {"step": step.step_key, **detail}}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class SweeperThread:
    """Runs sweep_once every interval in a daemon thread (the server's own loop: Prefect's
    temporary server has no scheduler)."""

    def __init__(self, rt: Runtime, *, interval: float) -> None:
        self.rt = rt
        self.interval = interval
        self.holder = holder_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: SweepReport | None = None
        self.errors = 0
        self.failing = False  # the latest pass raised: deadlines are not being kept

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="closeloop-sweeper",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = sweep_once(self.rt, holder=self.holder)
                self.failing = False
            except Exception:  # keep sweeping: one bad pass must not stop every deadline
                self.errors += 1
                self.failing = True
                log.exception("sweep failed")
            self._stop.wait(self.interval)
