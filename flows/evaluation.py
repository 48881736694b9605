"""演练评估 (a drill's evaluation) and 复盘 (the same, of a real event): how each step instance
went against its deadline, a summary, and the evaluator's written assessment.

Read from the rows the run already has (step instances, the outbox, the audit trail): nothing
is stored for it but the assessment, which is an audit event (`evaluation_assessed`), so a
later one is a new event beside the first, never an edit of it.

A task's time is the assignee's: it is finished when handed in (`submitted_at`; a task without
verification: `done_at`), as the run page's 逾期 counts it; a verifier's delay is the
verifier's ladder, not the assignee's lateness. A report (`report:`) is the exception: it is
finished when signed off, since only then does it go out (as 信息报送考核 counts it). The
first report is the step marked `report: 首报` (else the first message the run sent to a
channel, a duty office), in minutes from the start (接报).

A drill ended by its commander (结束演练, flows/drill_end.py) is read as the exercise it was: a
task the end overtook past its deadline was missed (未完成, late to the end); one not yet due
was not owed, and is its own outcome (演练结束时未到期), neither done nor a failure. The
summary says how the run ended, when and by whom (`ended`).

Each row's 单位 (`unit_name`) is the unit of whoever did or held the task (finished it, else
signed for it), as the drill tests that unit's people; the step's own unit where nobody held
it, and always in `step_unit_name`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from flows.access import require_read_run
from flows.drill_end import DRILL_END
from flows.lifecycle import load_run
from flows.runtime import Runtime
from models import task as st
from models.audit import ACTOR_NAMES, AuditEvent
from models.db import read_session, session_scope
from models.drill import marked_document
from models.errors import Forbidden, InvalidInput
from models.outbox import Notification
from models.run import RUNNING, Run
from models.task import StepInstance
from models.writes import add_event

FIRST_REPORT = "首报"  # the `report:` kind (flows/spec.py REPORT_KINDS)
ASSESSED = "evaluation_assessed"
MAX_ASSESSMENT = 4000
LONGEST_SHOWN = 5
# The product's own paper (flows/templates/), not a step's: rendered with the evaluation's own
# context. A bureau may put its own edit at the same name in its playbooks' templates/.
TEMPLATE = "evaluation/drill-evaluation.md.j2"

# How a step instance went, as the report prints it.
ON_TIME, LATE, MISSED, OPEN, NO_DEADLINE, CALLED_OFF, ENDED_NOT_DUE = (
    "on_time", "late", "missed", "open", "no_deadline", "called_off", "ended_not_due")
OUTCOME_ZH = {ON_TIME: "按时", LATE: "超时", MISSED: "未完成", OPEN: "进行中（未到期）",
              NO_DEADLINE: "已完成（无时限）", CALLED_OFF: "已撤销/无需办理",
              ENDED_NOT_DUE: "演练结束时未到期"}
# How a run that is no longer running ended (summary `ended.how`).
ENDED_HOW_ZH = {"drill_end": "结束演练", "response_end": "结束响应", "cancelled": "取消",
                "finished": "各环节完成"}
STOPPED = ("run_completed", "run_cancelled")
# The reasons lifecycle._stop_children records for a child stopped with its parent, as the
# report says them.
_CHILD_REASONS_ZH = {"parent cancelled": "随上级流程取消", "parent ended": "随上级流程结束"}


def may_evaluate(rt: Runtime, person: str, run: Run) -> bool:
    """Commanders and managers of the run's unit (or above), and the admin."""
    return any(rt.org.has_right(person, right, run.unit_id)
               for right in ("commander", "manager")) if run.unit_id in rt.org.units else (
        "admin" in rt.org.person(person).roles)


def _require_evaluator(rt: Runtime, person: str, run: Run) -> None:
    require_read_run(rt.org, person, run)
    if not may_evaluate(rt, person, run):
        unit = rt.org.unit_name(run.unit_id)
        # A real event's is its 复盘: calling it 演练评估 would make a real event read as a drill.
        what = "演练评估" if run.drill_kind is not None else "复盘"
        raise Forbidden(f"{what}由{unit}及上级的指挥长或综合管理人员查看和填写 / the "
                        f"evaluation is for commanders and managers of '{run.unit_id}' or above")


@dataclass(frozen=True)
class _Finished:
    at: datetime | None
    by: str | None


def _finished(step: StepInstance) -> _Finished:
    # A report (`report:`) is finished when it is signed off and goes out, as 信息报送考核
    # counts it (flows/reporting.py): a 系统首报 handed in at minute 50 and signed at 70 is
    # late on both pages, not on time here and 迟报 there.
    if step.report_kind is not None:
        if step.status == st.DONE:
            return _Finished(step.done_at, step.submitted_by or step.acked_by)
        return _Finished(None, None)
    if step.submitted_at is not None:
        return _Finished(step.submitted_at, step.submitted_by)
    if step.status == st.DONE:
        return _Finished(step.done_at, step.verified_by or step.acked_by)
    return _Finished(None, None)


def _minutes(later: datetime, earlier: datetime) -> int:
    return max(0, int((later - earlier).total_seconds() // 60))


def _outcome(step: StepInstance, finished: _Finished, run: Run, now: datetime,
             overtaken: frozenset[int] = frozenset()) -> tuple[str, int | None]:
    """(outcome, minutes late): minutes late of a task finished late, or of one never finished
    counted to the run's end (or now, while it runs and the deadline has passed). `overtaken`:
    the steps a drill's end called off (its event's `called_off_ids`)."""
    if step.status == st.SKIPPED:
        return CALLED_OFF, None
    if step.status == st.CANCELLED and finished.at is None:
        # Called off before its deadline, it was not owed. Called off after it, still not
        # done (the run cancelled with it open: how a gas-leak drill, which has no last stage
        # to end, is ended), it was missed, as 信息报送考核 counts a report
        # (flows/reporting.outcome_of): else a drill's evaluation would show every task the
        # drill failed as 已撤销 and its summary 未完成：0.
        stopped = step.done_at or run.finished_at
        if step.due_at is not None and stopped is not None and stopped > step.due_at:
            return MISSED, _minutes(stopped, step.due_at)
        if step.id in overtaken:
            # The exercise ended before this was owed: not a failure, and not 已撤销 either,
            # which would read as if someone had decided it was not needed.
            return ENDED_NOT_DUE, None
        return CALLED_OFF, None
    if finished.at is not None:
        if step.due_at is None:
            return NO_DEADLINE, None
        if finished.at > step.due_at:
            return LATE, _minutes(finished.at, step.due_at)
        return ON_TIME, 0
    end = run.finished_at if run.status != RUNNING and run.finished_at else now
    if step.due_at is not None and step.due_at < end:
        return MISSED, _minutes(end, step.due_at)
    if run.status != RUNNING:
        return MISSED, None
    return OPEN, None


def _name(rt: Runtime, person: str | None) -> str | None:
    if not person:
        return None
    return ACTOR_NAMES.get(person) or rt.org.person_name(person)


def _first_report(session: Session, run: Run) -> datetime | None:
    """When the 首报 went: the step the playbook marks `report: 首报` (flows/reporting.py), as
    its writer finished it; for a playbook that marks none, the first message the run sent to
    a channel."""
    marked = session.exec(select(StepInstance).where(
        StepInstance.run_id == run.id, StepInstance.report_kind == FIRST_REPORT,
        StepInstance.status == st.DONE)).all()
    written = [at for row in marked if (at := _finished(row).at or row.done_at) is not None]
    if written:
        return min(written)
    return session.exec(select(Notification.created_at).where(
        Notification.run_id == run.id, Notification.recipient_kind == "channel",
        Notification.kind == "notify").order_by(col(Notification.created_at)).limit(1)).first()


def evaluate(rt: Runtime, *, run_id: int, actor: str) -> dict[str, Any]:
    with read_session(rt.db) as session:
        run = load_run(session, run_id)
        _require_evaluator(rt, actor, run)
        steps = session.exec(select(StepInstance).where(StepInstance.run_id == run_id)
                             .order_by(col(StepInstance.id))).all()
        first_report = _first_report(session, run)
        assessed = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == ASSESSED)
            .order_by(col(AuditEvent.id))).all()
        stop = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, col(AuditEvent.action).in_(STOPPED))
            .order_by(col(AuditEvent.id).desc()).limit(1)).first() \
            if run.status != RUNNING else None
    return _view(rt, run, list(steps), first_report, list(assessed), stop)


def _unit_name(rt: Runtime, unit_id: str) -> str:
    unit = rt.org.units.get(unit_id)
    return unit.name if unit else unit_id


def _holder_unit(rt: Runtime, step: StepInstance, finished: _Finished) -> str:
    """The unit of whoever did the task (finished it, else signed for it): a street's task
    done by a community head shows the community. The step's unit where nobody held it, or
    the person has left the org chart."""
    for who in (finished.by, step.acked_by):
        person = rt.org.people.get(who) if who else None
        if person is not None:
            return person.unit_id
    return step.unit_id


def _ended(rt: Runtime, stop: AuditEvent | None) -> dict[str, Any] | None:
    """How the run ended, when and by whom: 结束演练, 结束响应, 取消, or by itself (its last
    step done); None while it runs."""
    if stop is None:
        return None
    detail = stop.detail or {}
    if stop.action == "run_cancelled":
        how = "cancelled"
    elif detail.get(DRILL_END):
        how = "drill_end"
    elif "ended_by" in detail:  # lifecycle.end_response
        how = "response_end"
    else:
        how = "finished"
    said = detail.get("note") or detail.get("reason")
    said = _CHILD_REASONS_ZH.get(said, said) if isinstance(said, str) else None
    return {"how": how, "how_zh": ENDED_HOW_ZH[how], "at": stop.at,
            "at_local": rt.renderer.local(stop.at), "by": stop.actor,
            "by_name": _name(rt, stop.actor), "note": said,
            "called_off": len(detail.get("called_off_ids") or ()) if how == "drill_end"
            else None}


def _view(rt: Runtime, run: Run, steps: list[StepInstance], first_report: datetime | None,
          assessed: list[AuditEvent], stop: AuditEvent | None = None) -> dict[str, Any]:
    now, local = rt.clock.now(), rt.renderer.local
    detail = (stop.detail or {}) if stop is not None else {}
    overtaken = frozenset(detail.get("called_off_ids") or ()) if detail.get(DRILL_END) \
        else frozenset()
    rows: list[dict[str, Any]] = []
    for step in steps:
        finished = _finished(step)
        outcome, late = _outcome(step, finished, run, now, overtaken)
        rows.append({
            "id": step.id, "step": step.step_key, "title": step.title, "action": step.action,
            "unit_name": _unit_name(rt, _holder_unit(rt, step, finished)),
            "step_unit_name": _unit_name(rt, step.unit_id), "status": step.status,
            "status_zh": st.STATUS_ZH.get(step.status, step.status),
            "ready_at": step.ready_at, "ready_at_local": local(step.ready_at),
            "acked_at": step.acked_at, "acked_at_local": local(step.acked_at),
            "finished_at": finished.at, "finished_at_local": local(finished.at),
            "done_at": step.done_at, "done_at_local": local(step.done_at),
            "due_at": step.due_at, "due_at_local": rt.renderer.deadline(step.due_at),
            "taken_minutes": _minutes(finished.at, step.ready_at)
            if finished.at and step.ready_at else None,
            "outcome": outcome, "outcome_zh": OUTCOME_ZH[outcome], "late_minutes": late,
            "escalation_level": step.escalation_level,
            "acked_by_name": _name(rt, step.acked_by),
            "finished_by_name": _name(rt, finished.by),
            "verified_by_name": _name(rt, step.verified_by),
        })
    counted = [r for r in rows if r["outcome"] in (ON_TIME, LATE, MISSED)]
    delays = sorted((r for r in counted if r["late_minutes"]),
                    key=lambda r: -(r["late_minutes"] or 0))[:LONGEST_SHOWN]
    summary = {
        "on_time": sum(r["outcome"] == ON_TIME for r in rows),
        "late": sum(r["outcome"] == LATE for r in rows),
        "missed": sum(r["outcome"] == MISSED for r in rows),
        "open": sum(r["outcome"] == OPEN for r in rows),
        "ended_not_due": sum(r["outcome"] == ENDED_NOT_DUE for r in rows),
        "escalated": sum(r["escalation_level"] > 0 for r in rows),
        "first_report_at_local": local(first_report),
        "first_report_minutes": _minutes(first_report, run.started_at) if first_report else None,
        "longest_delays": [{"id": r["id"], "title": r["title"], "unit_name": r["unit_name"],
                            "late_minutes": r["late_minutes"], "outcome_zh": r["outcome_zh"]}
                           for r in delays],
        "ended": _ended(rt, stop),
    }
    history = [{"id": e.id, "at": e.at, "at_local": local(e.at), "by": e.actor,
                "by_name": _name(rt, e.actor), "assessment": (e.detail or {}).get("assessment", "")}
               for e in assessed]
    unit = rt.org.units.get(run.unit_id)
    view = {
        "run_id": run.id, "title": run.title, "unit_name": unit.name if unit else run.unit_id,
        "drill": {"kind": run.drill_kind, "title": run.drill_title}
        if run.drill_kind is not None else None,
        "heading": "演练评估报告" if run.drill_kind is not None else "复盘报告",
        "status": run.status, "started_at_local": local(run.started_at),
        "finished_at_local": local(run.finished_at), "now_local": local(now),
        "started_by_name": _name(rt, run.started_by),
        "steps": rows, "summary": summary,
        "assessment": history[-1] if history else None, "assessments": history,
    }
    report = rt.renderer.render_product(TEMPLATE, _paper(view))
    view["report"] = marked_document(report) if run.drill_kind is not None else report
    return view


def _paper(view: dict[str, Any]) -> dict[str, Any]:
    """The report's context: the assessment as its lines, each printed as one (what was typed
    opens no section of the report)."""
    latest = view["assessment"]
    lines = [line.strip() for line in (latest["assessment"] if latest else "").splitlines()]
    return view | {"assessment_lines": [line for line in lines if line]}


def assess(rt: Runtime, *, run_id: int, actor: str, assessment: Any) -> dict[str, Any]:
    """Record the evaluator's written assessment (问题与整改建议) as a new audit event."""
    if not isinstance(assessment, str) or not assessment.strip():
        raise InvalidInput("assessment", "请填写评估意见（问题与整改建议） / the assessment is "
                           "empty")
    text = assessment.strip()
    if len(text) > MAX_ASSESSMENT:
        raise InvalidInput("assessment", f"评估意见过长：{len(text)} 个字符，最多 "
                           f"{MAX_ASSESSMENT} 个 / too long: {len(text)} characters, at most "
                           f"{MAX_ASSESSMENT}")
    with session_scope(rt.db) as session:
        run = load_run(session, run_id)
        _require_evaluator(rt, actor, run)
        add_event(session, at=rt.clock.now(), actor=actor, action=ASSESSED, run_id=run_id,
                  detail={"assessment": text})
    return evaluate(rt, run_id=run_id, actor=actor)
