"""叫应 of a raised warning signal (a `changeable` param with `ack:`, typhoon-633's `signal`).

A raise told to the holders of the stage's open tasks (flows/param_changes.py) asks each of
them to answer 收到 within `ack`: one `signal_ack` row per person, written in the change's
transaction. Only that person answers it (403 for anyone else), a second tap answers as the
first, and a row a newer raise has superseded, or one of a run that has ended, is a 409: the
answer owed is to the newer raise. The sweeper chases an unanswered row once, at its due time,
to the first `escalate` level of the task the person held when told, at that task's unit:
the playbook already says there who chases that person (a community head's 叫应 goes to the
street head and commander, a street head's to the district's duty leader and duty room), so
no second chain is written for the signal, and a bureau that changes one changes both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlmodel import Session, col, select

from flows.durations import Duration, add_duration
from flows.recipients import notification_rows, resolve_targets
from flows.runtime import Runtime
from models import run as rs
from models.audit import SYSTEM, AuditEvent
from models.db import session_scope
from models.errors import Conflict, Forbidden, NotFound
from models.outbox import Notification
from models.run import Run
from models.signal_ack import SignalAck
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates, insert_rows

SIGNAL_ACKED = "signal_acked"
SIGNAL_ACK_MISSED = "signal_ack_missed"
MISSED_KIND = "signal_ack"  # the chase's notification kind


def ask_to_answer(session: Session, rt: Runtime, run: Run, *, param: str, value: Any,
                  ack: Duration, seq: int, held: Mapping[str, Sequence[StepInstance]],
                  now: datetime) -> datetime:
    """One row per person told of a raise (`held`: each person's open tasks of the stage, in
    id order), due `ack` after now; every older raise of the param still unanswered is
    superseded (settled, never chased: the newer raise asks again). Returns the due time."""
    due = add_duration(now, ack, calendar=rt.calendar, tz=rt.tz)
    session.execute(
        update(SignalAck).where(
            col(SignalAck.run_id) == run.id, col(SignalAck.param) == param,
            col(SignalAck.acked_at).is_(None), col(SignalAck.superseded_at).is_(None),
        # A row chased already keeps when it was settled.
        ).values(superseded_at=now, settled_at=func.coalesce(SignalAck.settled_at, now)))
    insert_ignoring_duplicates(session, SignalAck, [
        {"run_id": run.id, "change_seq": seq, "param": param, "value": str(value),
         "person_id": person, "step_id": tasks[0].id, "told_at": now, "due_at": due,
         "acked_at": None, "superseded_at": None, "escalated_at": None, "escalated_to": None,
         "settled_at": None}
        for person, tasks in sorted(held.items())])
    return due


def acknowledge(rt: Runtime, *, run_id: int, ack_id: int, actor: str) -> SignalAck:
    """The person told answers 收到. Idempotent: a second tap returns the row as answered the
    first time. 404 for a row not of this run, 403 for anyone but the person told, 409 on a
    run no longer running or a raise a newer one superseded (answer that one)."""
    with session_scope(rt.db) as session:
        row = session.get(SignalAck, ack_id)
        if row is None or row.run_id != run_id:
            raise NotFound("signal_ack", ack_id)
        if row.person_id != actor:
            raise Forbidden("只有被叫应的本人才能回复收到 / only the person called can answer")
        if row.acked_at is not None:
            return row
        run = session.get(Run, run_id)
        if run is None or run.status != rs.RUNNING:
            status = run.status if run else "gone"
            raise Conflict(f"流程已{rs.STATUS_ZH.get(status, status)}，无需叫应 / run is "
                           f"{status}", current=status)
        if row.superseded_at is not None:
            raise Conflict(f"预警信号已再次升级，{row.value}的叫应已由最新一次代替，请回复最新"
                           f"的叫应 / a newer raise superseded this one: answer that",
                           current="superseded")
        now = rt.clock.now()
        late = now > row.due_at
        row.acked_at = now
        row.settled_at = row.settled_at or now
        session.add(row)
        add_event(session, at=now, actor=actor, action=SIGNAL_ACKED, run_id=run_id,
                  step_id=row.step_id, detail={"param": row.param, "value": row.value,
                                               "ack_id": row.id, "due_at": row.due_at.isoformat(),
                                               "late": late})
        return row


@dataclass(frozen=True)
class MissedChase:
    """What the sweeper's one statement set writes for the missed 叫应 of a tick."""

    settled: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    events: list[dict[str, Any]]


def chase_missed(session: Session, rt: Runtime, now: datetime) -> int:
    """Every unanswered 叫应 past its due time, chased once: one read of the due rows with
    their task and run, one insert of messages, one of events, one update. A row of a run
    that has ended is settled without a message. Returns how many were chased."""
    rows = session.exec(
        select(SignalAck, StepInstance, Run)
        .join(StepInstance, col(StepInstance.id) == SignalAck.step_id)
        .join(Run, col(Run.id) == SignalAck.run_id)
        .where(col(SignalAck.settled_at).is_(None), col(SignalAck.due_at) <= now)
        .order_by(col(SignalAck.due_at), col(SignalAck.id))
    ).all()
    if not rows:
        return 0
    chase = _chase(session, rt, rows, now)
    insert_ignoring_duplicates(session, Notification, chase.notes)
    insert_rows(session, AuditEvent, chase.events)
    table = SignalAck.__table__  # type: ignore[attr-defined]
    session.execute(
        table.update().where(table.c.id == bindparam("b_id"), table.c.settled_at.is_(None))
        .values(escalated_at=bindparam("b_escalated_at"),
                escalated_to=bindparam("b_escalated_to"), settled_at=bindparam("b_settled_at")),
        chase.settled)
    return sum(1 for s in chase.settled if s["b_escalated_at"] is not None)


def _chase(session: Session, rt: Runtime, rows: Sequence[Any], now: datetime) -> MissedChase:
    settled: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for ack, step, run in rows:
        if run.status != rs.RUNNING:
            settled.append({"b_id": ack.id, "b_escalated_at": None, "b_escalated_to": None,
                            "b_settled_at": now})
            continue
        playbook = rt.catalog.pinned(session, run.playbook_sha)
        spec = playbook.step(step.step_key) if step.step_key in playbook.step_ids else None
        targets = list(spec.escalate[0].notify) if spec is not None and spec.escalate else []
        people, channels = resolve_targets(rt.org, targets, step.unit_id)
        people = [p for p in people if p != ack.person_id]
        who = rt.org.person_name(ack.person_id)
        unit = rt.org.units.get(step.unit_id)
        label = playbook.params[ack.param].title if ack.param in playbook.params else ack.param
        title = f"【叫应未回复】{run.title}：{who}未回复{label}{ack.value}"
        body = (f"{run.title}：{rt.renderer.local(ack.told_at)} {label}升为{ack.value}，已叫应"
                f"{unit.name if unit else step.unit_id}{who}，应于 {rt.renderer.local(ack.due_at)}"
                f" 前回复“收到”，至今未回复。请立即电话联系本人，确认已收到预警并落实：\n"
                f"- {step.title}")
        notes += notification_rows(rt.org, people=people, channels=channels, kind=MISSED_KIND,
                                   title=title[:300], body=body,
                                   dedupe=f"{MISSED_KIND}|{ack.id}", now=now, run_id=run.id,
                                   step_id=step.id)
        reached = people + channels
        events.append({"run_id": run.id, "step_id": step.id, "at": now, "actor": SYSTEM,
                       "action": SIGNAL_ACK_MISSED, "from_state": None, "to_state": None,
                       "detail": {"param": ack.param, "value": ack.value, "ack_id": ack.id,
                                  "person": ack.person_id, "due_at": ack.due_at.isoformat(),
                                  "recipients": reached}})
        settled.append({"b_id": ack.id, "b_escalated_at": now, "b_escalated_to": reached,
                        "b_settled_at": now})
    return MissedChase(settled=settled, notes=notes, events=events)


def latest_answers(session: Session, rt: Runtime, run_id: int) -> list[dict[str, Any]]:
    """Who was called at the run's latest raise and whether each has answered, with local
    times, the unanswered first (who to ring): what the run page's signal box lists. [] for a
    run with no raise asking an answer."""
    latest = (select(func.max(SignalAck.change_seq)).where(col(SignalAck.run_id) == run_id)
              .scalar_subquery())
    rows = session.exec(select(SignalAck, StepInstance)
                        .join(StepInstance, col(StepInstance.id) == SignalAck.step_id)
                        .where(col(SignalAck.run_id) == run_id,
                               col(SignalAck.change_seq) == latest)).all()
    local = rt.renderer.local
    out = [{"id": a.id, "param": a.param, "value": a.value, "person": a.person_id,
            "person_name": rt.org.person_name(a.person_id),
            "unit_name": rt.org.unit_name(step.unit_id), "task": step.title,
            "told_at": a.told_at, "told_at_local": local(a.told_at),
            "due_at": a.due_at, "due_at_local": local(a.due_at),
            "acked_at": a.acked_at, "acked_at_local": local(a.acked_at) if a.acked_at else None,
            "late": a.acked_at is not None and a.acked_at > a.due_at,
            "escalated_at": a.escalated_at,
            "escalated_to_names": [rt.org.person_name(p) for p in a.escalated_to or ()]}
           for a, step in rows]
    return sorted(out, key=lambda r: (r["acked_at"] is not None, r["unit_name"], r["person"]))
