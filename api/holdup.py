"""What holds a run up (当前卡点): the answer to a director's "why is this late, and who has it
now?" read off one run, without adding up its timeline. Built from the step views, the timeline
and the escalations GET /api/runs/{id} already loaded: no query of its own."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from api.schemas import (
    EscalationPublic,
    Holdup,
    Person,
    Reassigned,
    StepPublic,
    actor_name,
    person_view,
    spec_of,
)
from flows.holders import whose_move
from flows.runtime import Runtime
from flows.spec import Playbook
from models.audit import AuditEvent
from models.task import OPEN_STATUSES, STATUS_ZH, SUBMITTED

# Why the task is with whoever has it, by its status: said as a manager would say it.
_WAITING_ON = {"ready": "待承办人办理", "acked": "承办人已签收，正在办理",
               "rejected": "复查退回，待承办人重新整改", "submitted": "已提交，待核验/复查"}


def holdups(rt: Runtime, *, steps: list[StepPublic], events: list[AuditEvent],
            escalations: list[EscalationPublic], playbook: Playbook | None) -> list[Holdup]:
    """The open tasks of a run, the latest first among the overdue, then the others by
    deadline. `steps`, `escalations`: the run view's StepPublic and EscalationPublic rows."""
    by_step: dict[int, list[AuditEvent]] = {}
    for e in events:
        if e.step_id is not None:
            by_step.setdefault(e.step_id, []).append(e)
    out: list[Holdup] = []
    for s in steps:
        if s.id is None or s.action != "task" or s.status not in OPEN_STATUSES:
            continue
        history = by_step.get(s.id, [])
        counts = Counter(e.action for e in history)
        fired = [e for e in escalations if e.step_id == s.id and e.title]
        out.append(Holdup(
            task_id=s.id, step=s.step, title=s.title, phase=_phase(playbook, s.step, s.status),
            status=s.status, status_name=STATUS_ZH.get(s.status, s.status),
            waiting_on=_WAITING_ON.get(s.status, ""),
            holders=_holders(rt, playbook, s),
            since=(since := _since(s, history)),
            since_local=rt.renderer.local(since) if since else None,
            due_at=s.due_at, due_at_local=s.due_at_local,
            original_due_at_local=s.original_due_at_local,
            due_rule=s.due_rule, overdue=s.overdue, overdue_days=s.overdue_days,
            overdue_minutes=s.overdue_minutes,
            escalation_level=s.escalation_level,
            last_rung=fired[-1].title if fired else None,
            letters_sent=sum(1 for e in fired if e.number),
            rejections=counts["rejected"],
            last_reject_reason=next((e.detail.get("reason") for e in reversed(history)
                                     if e.action == "rejected"), None),
            extensions_asked=counts["extension_requested"],
            extensions_granted=counts["extension_approved"],
            extensions_refused=counts["extension_refused"],
            reassignments=counts["reassigned"],
            last_reassignment=_last_reassignment(rt, history),
        ))
    # The latest first by the minute: among tasks late by less than a day (no day count yet),
    # the one two hours late comes before the one two minutes late.
    out.sort(key=lambda h: (not h.overdue, -(h.overdue_minutes or 0), h.due_at_local or "~"))
    return out


def _phase(playbook: Playbook | None, key: str, status: str) -> str | None:
    spec = spec_of(playbook, key)
    return spec.phase_while([status]) if spec is not None else None


def _holders(rt: Runtime, playbook: Playbook | None, s: StepPublic) -> list[Person]:
    """The assignees; for work handed in, the people who may verify it (its verifier role
    resolved at the task's unit; not the one who handed it in when the step says `distinct`,
    as completing refuses them only then), whose move it now is."""
    if s.status != SUBMITTED:
        return list(s.assignees)
    return [person_view(rt, p) for p in whose_move(
        rt, spec_of(playbook, s.step), status=s.status, unit_id=s.unit_id,
        submitted_by=s.submitted_by, assignees=[a.id for a in s.assignees])]


def _since(s: StepPublic, history: list[AuditEvent]) -> datetime | None:
    """When the task came to whoever has it: the last time it was sent back or handed in,
    else when it was handed out; for an assignee's move, a 改派 since then moves it on (work
    sent back on the 17th and handed to another person on the 18th has been theirs since
    the 18th, not the 17th). Work handed in is with its verifiers, whoever handed it in."""
    wanted = {"rejected": "rejected", "submitted": "submitted"}.get(s.status)
    since = s.ready_at
    if wanted:
        since = next((e.at for e in reversed(history) if e.action == wanted), since)
    if s.status != SUBMITTED:
        moved = next((e.at for e in reversed(history) if e.action == "reassigned"), None)
        if moved is not None and (since is None or moved > since):
            since = moved
    return since


def _last_reassignment(rt: Runtime, history: list[AuditEvent]) -> Reassigned | None:
    last = next((e for e in reversed(history) if e.action == "reassigned"), None)
    if last is None:
        return None
    to = str(last.detail.get("to") or "")
    return Reassigned(
        by=last.actor, by_name=actor_name(rt, last.actor),
        from_names=[rt.org.person_name(p) for p in last.detail.get("from") or []],
        to=to, to_name=rt.org.person_name(to), at=last.at, at_local=rt.renderer.local(last.at))
