"""Requests for more time (延期申请): the assignee of an open task whose step declares
`extension: {role: R}` asks for a later deadline with a reason; a holder of R in the task's
unit or above approves or refuses it, never the requester. Approval moves the deadline as
tasks.extend does (race-safe on the row's version; the first deadline stays in
original_due_at; the escalation ladder restarts; the register entry follows), and the request
keeps both deadlines (old_due_at, new_due_at). Each move is an audit event and an inbox note.

One pending request per task: making a request bumps the task's version, so two requests at
once give one success and one Conflict."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, true, update
from sqlmodel import Session, select

from flows.access import is_admin, require_act, require_read_run, who_may
from flows.durations import add_duration, subtract_duration
from flows.lifecycle import load_run, require_running
from flows.message_titles import message_title
from flows.progress import first_check, lock_run
from flows.recipients import notification_rows
from flows.registers import sync_entry
from flows.runtime import Runtime
from flows.spec import StepSpec
from flows.tasks import MAX_EXTENSION, check_note, task_conflict, transition
from models import task as st
from models.audit import SYSTEM
from models.db import read_session, session_scope
from models.errors import Conflict, ExtensionPastDeadline, Forbidden, InvalidInput, NotFound
from models.hazard import REQUEST_LAPSED, REQUEST_PENDING, ExtensionRequest
from models.outbox import Notification
from models.queries import step_in_units
from models.run import Run
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates, lapse_extension_requests

log = logging.getLogger("closeloop.extensions")

PENDING = REQUEST_PENDING
APPROVED = "approved"
REFUSED = "refused"
LAPSED = REQUEST_LAPSED
REQUEST_STATUSES = (PENDING, APPROVED, REFUSED, LAPSED)


@dataclass
class RequestView:
    """A request with what a reader needs around it: its task, and who may decide it."""

    request: ExtensionRequest
    step: StepInstance
    decider_role: str | None
    can_decide: bool


def _spec(session: Session, rt: Runtime, run: Run, step: StepInstance) -> StepSpec:
    return rt.catalog.pinned(session, run.playbook_sha).step(step.step_key)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _text(field: str, value: str | None, *, required: bool, what: str) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(field, what)
    check_note(field, text)
    return text or None


DECIDED_ZH = {APPROVED: "已同意延期", REFUSED: "已不同意延期", LAPSED: "已失效（任务已结束）"}



def request_extension(
    rt: Runtime, *, step_id: int, actor: str, due_at: datetime, reason: str
) -> ExtensionRequest:
    """The assignee asks for a later deadline; the decider role is notified."""
    with session_scope(rt.db) as session:
        step = session.get(StepInstance, step_id)
        if step is None:
            raise NotFound("task", step_id)
        run = load_run(session, step.run_id)
        if lock_run(session, run):  # the run before its steps, as every task action does
            session.refresh(step)
        require_act(rt.org, actor, step)
        spec = _spec(session, rt, run, step)
        if spec.extension is None:
            raise Conflict("该任务不接受延期申请 / this step takes no requests for more time",
                           current=step.status)
        require_running(run)
        if step.status not in st.OPEN_STATUSES:  # a closed task first, whatever the date
            raise task_conflict(step, "延期")
        now = rt.clock.now()
        if step.due_at is not None and now >= step.due_at:
            # Asked before the deadline, on every playbook (DOMAIN: listed supervision): granted
            # after it, a request would wipe the overdue mark, the ladder's 督办函 and the
            # ranking's overdue count of work already late. One asked in time may still be
            # decided after it: the supervising unit has its own days to decide.
            raise ExtensionPastDeadline(step.status or "", rt.renderer.deadline(step.due_at))
        clean = _text("reason", reason, required=True,
                      what="延期需说明原因 / a reason is required") or ""
        if due_at.tzinfo is None:  # a time as the user's wall clock shows it
            due_at = due_at.replace(tzinfo=rt.tz)
        if due_at <= now:
            raise InvalidInput("due_at", "新期限须晚于现在 / must be in the future")
        if step.due_at is not None and due_at <= step.due_at:
            current = rt.renderer.deadline(step.due_at)
            raise InvalidInput("due_at", f"新期限须晚于当前期限（{current}）/ must be later than "
                               f"the current deadline ({current})")
        if due_at > now + MAX_EXTENSION:
            raise InvalidInput("due_at", "新期限须在 10 年以内 / must be within 10 years")
        rule = spec.extension
        if rule.ask_before is not None and step.due_at is not None:
            latest = subtract_duration(step.due_at, rule.ask_before, calendar=rt.calendar,
                                       tz=rt.tz)
            if now > latest:
                raise Forbidden(
                    f"延期须在期限前至少 {rule.ask_before} 提出（最迟 "
                    f"{rt.renderer.deadline(latest)}）/ a request for more time must come at "
                    f"least {rule.ask_before} before the deadline (by "
                    f"{rt.renderer.deadline(latest)})")
        decide_by = (add_duration(now, rule.decide_within, calendar=rt.calendar, tz=rt.tz)
                     if rule.decide_within is not None else None)
        pending = session.exec(
            select(ExtensionRequest.id).where(ExtensionRequest.step_id == step_id,
                                              ExtensionRequest.status == PENDING)
        ).first()
        if pending is not None:
            raise Conflict(f"该任务已有待审批的延期申请 / request {pending} for this task is "
                           "still pending", current=PENDING)
        # The version bump is what makes "one pending request" hold under a race.
        old_due = step.due_at
        transition(session, step, allowed=st.OPEN_STATUSES, values={})
        req = ExtensionRequest(step_id=step_id, run_id=run.id or 0, requested_by=actor,
                               requested_at=now, reason=clean, old_due_at=old_due,
                               new_due_at=due_at, status=PENDING, decide_by=decide_by)
        session.add(req)
        session.flush()
        add_event(session, at=now, actor=actor, action="extension_requested", run_id=run.id,
                  step_id=step_id, detail={"request": req.id, "from": _iso(old_due),
                                           "to": due_at.isoformat(), "reason": clean,
                                           "decider_role": rule.role,
                                           "decide_by": _iso(decide_by)})
        _, holders = rt.org.resolve_role(spec.extension.role, step.unit_id)
        deciders = [p.id for p in holders if p.id != actor]
        insert_ignoring_duplicates(session, Notification, notification_rows(
            rt.org, people=deciders, kind="extension_requested",
            title=message_title(rt, run, "【延期申请】", step.title, session),
            body=(f"{run.title}：{step.title} 申请将期限由 {rt.renderer.deadline(old_due) or '无'}"
                  f" 延至 {rt.renderer.deadline(due_at)}，理由：{clean}。请"
                  + (f"于 {rt.renderer.deadline(decide_by)} 前" if decide_by else "")
                  + "审批。"),
            dedupe=f"extension_requested|{req.id}", now=now, run_id=run.id, step_id=step_id,
            inbox_only=True,
        ))
        return req


def decide_extension(
    rt: Runtime, *, request_id: int, actor: str, approve: bool, note: str | None = None
) -> ExtensionRequest:
    """Approve (the deadline moves) or refuse (it stays) a pending request."""
    with session_scope(rt.db) as session:
        req = session.get(ExtensionRequest, request_id)
        if req is None:
            raise NotFound("extension request", request_id)
        step = session.get(StepInstance, req.step_id)
        if step is None:  # pragma: no cover - steps are never deleted
            raise NotFound("task", req.step_id)
        run = load_run(session, step.run_id)
        # The run first, then the task and the request as they are now: a completion (which
        # lapses the task's pending requests) racing this decision on PostgreSQL otherwise
        # locks the task while this locks the request, and each waits for the other (a
        # deadlock, answered as "database unreachable" instead of one success and one 409).
        if lock_run(session, run):
            session.refresh(step)
            session.refresh(req)
        spec = _spec(session, rt, run, step)
        role = spec.extension.role if spec.extension else None
        if actor == req.requested_by:
            raise Forbidden("不能审批自己的延期申请 / you cannot decide your own request for "
                            "more time")
        if role is None or not rt.org.can_act_as(actor, role, step.unit_id):
            zh, en = who_may(rt.org, role or "", step.unit_id)
            raise Forbidden(f"审批延期需要{zh} / deciding requires {en}")
        if req.status != PENDING:  # before the note: nothing to decide is the first answer
            raise Conflict(f"该申请{DECIDED_ZH.get(req.status, req.status)} / request is already "
                           f"{req.status}", current=req.status)
        clean = _text("note", note, required=not approve,
                      what="不同意延期需说明理由 / a refusal needs a note")
        now = rt.clock.now()
        old_due = step.due_at
        if approve:
            require_running(run)
            if step.status not in st.OPEN_STATUSES:
                raise task_conflict(step, "延期")
            if req.new_due_at <= now:
                raise Conflict("申请的期限已过，请不同意本申请并重新申请 / the requested deadline "
                               "has already passed; refuse this request and ask for a new one",
                               current=PENDING)
            if old_due is not None and req.new_due_at <= old_due:
                raise Conflict("任务期限已不早于申请的期限 / the task's deadline is already at or "
                               "after the requested one", current=PENDING)
        _settle(session, req, status=APPROVED if approve else REFUSED, actor=actor, now=now,
                note=clean, old_due=old_due if approve else req.old_due_at)
        if approve:
            # Work awaiting verification keeps the verifier's ladder (flows/tasks.extend).
            check = (step.next_check_at if step.status == st.SUBMITTED else
                     first_check(rt, spec, status=step.status, ready_at=step.ready_at or now,
                                 due_at=req.new_due_at, now=now))
            transition(session, step, allowed=st.OPEN_STATUSES, values={
                "due_at": req.new_due_at, "original_due_at": step.original_due_at or old_due,
                "overdue": False, "escalation_level": 0, "last_escalated_at": None,
                "reminders_sent": 0, "next_check_at": check,
            })
            session.flush()
            sync_entry(session, rt, run, rt.catalog.pinned(session, run.playbook_sha), now)
        action = "extension_approved" if approve else "extension_refused"
        add_event(session, at=now, actor=actor, action=action, run_id=run.id,
                  step_id=step.id, detail={"request": req.id, "from": _iso(old_due),
                                           "to": req.new_due_at.isoformat(),
                                           "requested_by": req.requested_by, "note": clean})
        # The same words as the timeline (api/event_names.py) and the task page: 不同意延期.
        verdict = "同意延期" if approve else "不同意延期"
        due_text = rt.renderer.deadline(req.new_due_at if approve else old_due) or "无"
        insert_ignoring_duplicates(session, Notification, notification_rows(
            rt.org, people=[req.requested_by], kind=action,
            title=message_title(rt, run, f"【{verdict}】", step.title, session),
            body=(f"{run.title}：{step.title} 的延期申请，{verdict}，期限为 {due_text}"
                  + (f"，意见：{clean}。" if clean else "。")),
            dedupe=f"extension_decided|{req.id}", now=now, run_id=run.id, step_id=step.id,
            inbox_only=True,
        ))
        session.refresh(req)
        return req


def _settle(session: Session, req: ExtensionRequest, *, status: str, actor: str,
            now: datetime, note: str | None, old_due: datetime | None) -> None:
    """Decide the request only if it is still pending: deciding twice gives one Conflict."""
    result = session.execute(
        update(ExtensionRequest)
        .where(ExtensionRequest.id == req.id, ExtensionRequest.status == PENDING)
        .values(status=status, decided_by=actor, decided_at=now, note=note, old_due_at=old_due)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("该申请已被他人审批，请刷新 / request was decided by someone else; reload "
                       "it", current=None)
    session.expire(req)


def _view(rt: Runtime, session: Session, person: str, req: ExtensionRequest,
          step: StepInstance, run: Run) -> RequestView:
    spec = _spec(session, rt, run, step)
    role = spec.extension.role if spec.extension else None
    can = (req.status == PENDING and role is not None and person != req.requested_by
           and rt.org.can_act_as(person, role, step.unit_id))
    return RequestView(req, step, role, can)


def read_request(rt: Runtime, *, request_id: int, person: str) -> RequestView:
    with read_session(rt.db) as session:
        req = session.get(ExtensionRequest, request_id)
        if req is None:
            raise NotFound("extension request", request_id)
        step = session.get(StepInstance, req.step_id)
        run = session.get(Run, req.run_id)
        if step is None or run is None:  # pragma: no cover - never deleted
            raise NotFound("extension request", request_id)
        view = _view(rt, session, person, req, step, run)
        if not (view.can_decide or req.requested_by == person
                or req.decided_by == person):
            require_read_run(rt.org, person, run)
        return view


def list_requests(
    rt: Runtime, *, person: str, status: str | None = None, mine: bool = False,
    task_id: int | None = None, limit: int = 50, offset: int = 0, unit: str | None = None,
) -> tuple[list[RequestView], int]:
    """Requests the person may see, newest first. mine=True: only those they may decide (on
    tasks of their unit or below, whose step's decider role they hold, not their own).
    `unit`: on tasks of that unit and below (or of events there, as GET /api/tasks narrows)."""
    if unit is not None and unit not in rt.org.units:
        raise InvalidInput("unit", f"没有单位 {unit} / unknown unit '{unit}'")
    if status is not None and status not in REQUEST_STATUSES:
        raise InvalidInput("status", f"不认识的状态 {status}，可选 {', '.join(REQUEST_STATUSES)} "
                           f"/ unknown status '{status}' (known: {', '.join(REQUEST_STATUSES)})")
    org = rt.org
    who = org.person(person)
    conds: list[Any] = []
    if status:
        conds.append(ExtensionRequest.status == status)
    if task_id is not None:
        conds.append(ExtensionRequest.step_id == task_id)
    if unit is not None:
        conds.append(step_in_units(org.descendants(unit)))
    units = org.descendants(who.unit_id)
    if mine:
        # Decidable only below a unit where the person holds a role; the decider role of each
        # request is in its playbook, so that last test is made on the rows.
        conds += [StepInstance.unit_id.in_(units),  # type: ignore[attr-defined]
                  ExtensionRequest.requested_by != person]
    elif not is_admin(org, person):
        # What one's unit and below may read, as GET /api/tasks lists it: a step `at:` holds
        # above the event's unit (origin_unit_id) included.
        conds.append(or_(step_in_units(units), ExtensionRequest.requested_by == person))
    where = and_(*conds) if conds else true()
    base = (select(ExtensionRequest, StepInstance, Run)
            .join(StepInstance, StepInstance.id == ExtensionRequest.step_id)
            .join(Run, Run.id == ExtensionRequest.run_id)
            .where(where)
            .order_by(ExtensionRequest.id.desc()))  # type: ignore[union-attr]
    with read_session(rt.db) as session:
        if not mine:
            total = session.exec(
                select(func.count()).select_from(ExtensionRequest)
                .join(StepInstance, StepInstance.id == ExtensionRequest.step_id).where(where)
            ).one()
            rows = session.exec(base.offset(offset).limit(limit)).all()
            return [_view(rt, session, person, r, s, run) for r, s, run in rows], int(total)
        if not who.roles:
            return [], 0
        views = [v for v in (_view(rt, session, person, r, s, run)
                             for r, s, run in session.exec(base).all())
                 if v.decider_role is not None and v.decider_role in who.roles
                 and org.can_act_as(person, v.decider_role, v.step.unit_id)]
        return views[offset:offset + limit], len(views)


def _deciders_and_above(session: Session, rt: Runtime, run: Run, step: StepInstance
                        ) -> list[str]:
    """Who hears of an undecided request: the deciders and the same role one unit up."""
    spec = _spec(session, rt, run, step)
    role = spec.extension.role if spec.extension else None
    people: list[str] = []
    if role:
        found_at, holders = rt.org.resolve_role(role, step.unit_id)
        people = [p.id for p in holders]
        parent = rt.org.unit(found_at).parent_id if found_at else None
        if parent is not None:
            people += [p.id for p in rt.org.resolve_role(role, parent)[1]]
    return list(dict.fromkeys(people))


def chase_undecided(session: Session, rt: Runtime, now: datetime) -> int:
    """Requests still pending past their `decide_by`: chased once, with an inbox note to the
    deciders and to the holders of the same role one unit up, and an audit event. Called by
    the sweeper; its cost follows the requests that are due, not those that are open."""
    due = session.exec(
        select(ExtensionRequest).where(
            ExtensionRequest.status == PENDING,
            ExtensionRequest.decide_by <= now,  # type: ignore[operator]
            ExtensionRequest.chased_at.is_(None),  # type: ignore[union-attr]
        ).limit(500)
    ).all()
    for req in due:
        step = session.get(StepInstance, req.step_id)
        run = session.get(Run, req.run_id)
        if step is None or run is None:
            continue
        if step.status not in st.OPEN_STATUSES or run.status != "running":
            # Ended another way than the ones that lapse their requests at once.
            lapse_extension_requests(session, run_id=run.id or 0, step_id=step.id, now=now)
            continue
        try:
            people = _deciders_and_above(session, rt, run, step)
        except Exception as exc:  # one request (its unit gone from the org chart) must not
            # stop the chase of every other, nor every sweep after it: said once, not retried
            log.error("chasing extension request %s failed", req.id, exc_info=exc)
            req.chased_at = now
            session.add(req)
            add_event(session, at=now, actor=SYSTEM, action="extension_chase_failed",
                      run_id=run.id, step_id=step.id,
                      detail={"request": req.id, "error": f"{type(exc).__name__}: {exc}"[:500]})
            continue
        people = [p for p in people if p != req.requested_by]
        req.chased_at = now
        session.add(req)
        add_event(session, at=now, actor=SYSTEM, action="extension_decision_overdue",
                  run_id=run.id, step_id=step.id,
                  detail={"request": req.id, "decide_by": _iso(req.decide_by), "to": people})
        insert_ignoring_duplicates(session, Notification, notification_rows(
            rt.org, people=people, kind="extension_overdue",
            title=message_title(rt, run, "【延期审批超时】", step.title, session),
            body=(f"{run.title}：{step.title} 的延期申请（{rt.org.person_name(req.requested_by)}，"
                  f"理由：{req.reason}）"
                  f"应于 {rt.renderer.deadline(req.decide_by)} 前审批，至今未审批，请立即处理。"),
            dedupe=f"extension_overdue|{req.id}", now=now, run_id=run.id, step_id=step.id,
            inbox_only=True,
        ))
    return len(due)
