"""Calling off the open tasks of the stages a staged run goes back from (a typhoon's warning
downgraded: 降级、调整响应).

The tasks handed out for a higher stage are its measures (停工停课, 危险区人员转移): once the
warning is lowered they no longer apply, yet left open they count down and chase their holders
up the ladder for work nobody should do now. Going back, the commander names which of them are
called off (or all of them), with a note saying why; the rest stay open, as before, by choice.
A called-off task is the existing `cancelled` step status (已撤销: finished for `needs`, never
done), so every list, count and filter already reads it as "stopped, not done"; its timers
stop, its pending requests for more time lapse, the timeline gets a `called_off` event per
task, and its holders are told in the inbox and on their own channels."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from flows.duty import fallback_events, holders_cut
from flows.recipients import notification_rows
from flows.runtime import Runtime
from flows.spec import Playbook
from models import task as st
from models.audit import ACTOR_NAMES, AuditEvent
from models.errors import Conflict, InvalidInput
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.writes import (
    insert_ignoring_duplicates,
    insert_rows,
    lapse_extension_requests,
)

# What may be called off: a task reached but not finished. Pending rows too (a community's
# return waiting for its own transfer): kept, they would come alive later in a stage the run
# has left. Automatic steps (notify, document) are not: they finish by themselves.
CALLABLE = (st.PENDING, *st.OPEN_STATUSES)


def stages_above(playbook: Playbook, stage: str) -> list[str]:
    """Every stage after `stage`: going back to it leaves them all, including those a run
    left before and whose tasks were kept then (warning → severe → warning → message)."""
    return playbook.stages[playbook.stages.index(stage) + 1:]


def open_tasks_above(session: Session, playbook: Playbook, run: Run, stage: str
                     ) -> list[StepInstance]:
    """The run's tasks of the stages above `stage` that nobody has finished, in id order."""
    above = set(stages_above(playbook, stage))
    keys = [spec.id for spec in playbook.steps if spec.stage in above and spec.action == "task"]
    if not keys:
        return []
    return list(session.exec(select(StepInstance).where(
        StepInstance.run_id == run.id,
        col(StepInstance.step_key).in_(keys),
        col(StepInstance.status).in_(CALLABLE),
    ).order_by(col(StepInstance.id))).all())


def pick(session: Session, playbook: Playbook, run: Run, stage: str, *,
         named: Iterable[int], take_all: bool) -> tuple[list[StepInstance], list[StepInstance]]:
    """(called off, kept open) among the open tasks above `stage`. `named` must each be one
    of the run's tasks of those stages (422 on call_off otherwise); one finished meanwhile
    (done while the commander was deciding) is a 409: it stays as it is, nothing changes, and
    the commander decides again on what is open now."""
    open_now = open_tasks_above(session, playbook, run, stage)
    if take_all:
        return open_now, []
    wanted = list(dict.fromkeys(named))
    by_id = {inst.id: inst for inst in open_now}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        _refuse_missing(session, playbook, run, stage, missing)
    chosen = set(wanted)
    return ([inst for inst in open_now if inst.id in chosen],
            [inst for inst in open_now if inst.id not in chosen])


def _refuse_missing(session: Session, playbook: Playbook, run: Run, stage: str,
                    missing: list[int]) -> None:
    above = set(stages_above(playbook, stage))
    keys = {spec.id for spec in playbook.steps if spec.stage in above and spec.action == "task"}
    rows = {inst.id: inst for inst in session.exec(select(StepInstance).where(
        StepInstance.run_id == run.id, col(StepInstance.id).in_(missing))).all()}
    for step_id in missing:
        inst = rows.get(step_id)
        if inst is None or inst.step_key not in keys:
            here = playbook.stage_title(stage) or stage
            raise InvalidInput("call_off", f"任务 {step_id} 不是本流程“{here}”以上各阶段的任务，"
                               f"不能随退回撤销 / task {step_id} is not a task of this run's "
                               f"stages above '{stage}'")
        said = st.STATUS_ZH.get(inst.status, inst.status)
        raise Conflict(f"任务“{inst.title}”已{said}，不能撤销；请刷新后重新选择 / task "
                       f"{step_id} is already {inst.status}: refresh and choose again",
                       current=inst.status)


def call_off(session: Session, rt: Runtime, run: Run, instances: list[StepInstance], *,
             actor: str, note: str, stage: str, stage_title: str, now: datetime) -> None:
    """Stop `instances`: status cancelled, no timer, finished now; their pending extension
    requests lapse; one `called_off` event each; their holders told."""
    events: list[dict[str, Any]] = []
    for inst in instances:
        events.append({
            "run_id": run.id, "step_id": inst.id, "at": now, "actor": actor,
            "action": "called_off", "from_state": inst.status, "to_state": st.CANCELLED,
            "detail": {"step": inst.step_key, "note": note, "stage": stage},
        })
        inst.status = st.CANCELLED
        inst.next_check_at = None
        inst.done_at = now
        inst.version += 1
        session.add(inst)
        lapse_extension_requests(session, run_id=run.id or 0, now=now, step_id=inst.id)
    session.flush()
    insert_rows(session, AuditEvent, events)
    _tell(session, rt, run, instances, actor=actor, note=note, stage_title=stage_title, now=now)


def _tell(session: Session, rt: Runtime, run: Run, instances: list[StepInstance], *,
          actor: str, note: str, stage_title: str, now: datetime) -> None:
    """Each holder hears once which of their tasks are called off, why and by whom: in the
    inbox and on their own channels, since a community head may be on the way to a shelter
    the downgrade no longer needs."""
    mine: dict[str, list[StepInstance]] = defaultdict(list)
    for inst in instances:
        for person in inst.assignees:
            mine[person].append(inst)
    if not mine:
        return
    who = rt.org.people[actor].name if actor in rt.org.people else ACTOR_NAMES.get(actor, actor)
    # A rostered role's holders hear it on their channels as they heard of the task: the one
    # on duty, and whoever signed for it; the others find it in the inbox (flows/duty.py).
    loud: set[str] = set()
    fallbacks: list[dict[str, Any]] = []
    for inst in instances:
        cut = holders_cut(rt.org, rt.tz, now, inst)
        loud.update(p for p in inst.assignees if p not in cut.quiet)
        fallbacks += fallback_events(rt.org, cut, run_id=run.id, step_id=inst.id, now=now)
    insert_rows(session, AuditEvent, fallbacks)
    rows: list[dict[str, Any]] = []
    for person, tasks in sorted(mine.items()):
        first = tasks[0]
        title = (f"【任务撤销】{first.title}" if len(tasks) == 1
                 else f"【任务撤销】{run.title}：{len(tasks)} 项任务")
        listed = "\n".join(f"- {t.title}" for t in tasks)
        body = (f"{run.title}：{who}已将响应调整为“{stage_title}”，你的以下任务已撤销，"
                f"无需再办理：\n{listed}\n说明：{note}")
        rows += notification_rows(
            rt.org, people=[person], kind="called_off", title=title, body=body,
            # A task is called off once per version: the key of its first task names this one.
            dedupe=f"called_off|{first.id}|{first.version}", now=now, run_id=run.id,
            step_id=first.id if len(tasks) == 1 else None,
            quiet=() if person in loud else (person,))
    insert_ignoring_duplicates(session, Notification, rows)
