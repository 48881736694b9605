"""Who is told when a run is stopped (cancelled, a response ended, a drill ended: 【演练】演练结束),
and in what words.

Three groups, each told once:

* the holders of its open tasks (a grid worker on the way to a leak that was a false alarm; a
  community still owing an earlier stage's measures), in the in-app inbox, and on their own
  channels too where the run's messages reached them there (a task announced on channels, a
  reminder, a ladder level);
* the verifiers a handed-in task was waiting for (the street inspector sent to confirm the gas
  is off), in the inbox where its 【待核验】 reached them;
* everyone the run's own messages reached (its `notify` steps: the county duty office that took
  the 首报, the member units called to the forward post, the rescue team given its dispatch
  order), on the same channels: an office that was told of a response and never of its
  cancellation keeps treating a false alarm as a live incident.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from flows.recipients import notification_rows
from flows.runtime import Runtime
from models import task as st
from models.audit import ACTOR_NAMES
from models.drill import is_drill
from models.outbox import INBOX_URL, Notification
from models.run import Run
from models.task import StepInstance
from models.writes import insert_ignoring_duplicates


def tell_stopped(session: Session, rt: Runtime, run: Run, actor: str, reason: str | None,
                 now: datetime, *, ended: bool = False, runs: Sequence[int] = (),
                 also: str = "") -> None:
    """Tell those three groups that `run` stopped. `runs` (default: `run` alone) are the runs
    whose tasks and messages count: a drill's end passes the drill and the child runs ending
    with it, so someone holding tasks in both reads one 【演练】演练结束, not one per run.
    `also` ends every message (a drill's end: the people its records still have away)."""
    run_ids = list(runs) or [run.id or 0]
    open_steps = session.exec(select(StepInstance).where(
        col(StepInstance.run_id).in_(run_ids),
        col(StepInstance.status).in_(st.OPEN_STATUSES),
    )).all()
    holders = {p for step in open_steps for p in step.assignees}
    holders |= _verifiers_waiting(session, run_ids,
                                  [s.id for s in open_steps if s.status == st.SUBMITTED])
    told_people, told_channels = _reached_by_messages(session, run_ids)
    # A holder paged on their own channels (gas-leak's `announce: channels`, a reminder, a
    # ladder level) hears it is over on them too: the grid worker woken at 3 a.m. and on the
    # way to a false alarm does not open the inbox.
    paged = holders & _paged(session, run_ids)
    if not (holders or told_people or told_channels):
        return
    who = rt.org.people[actor].name if actor in rt.org.people else ACTOR_NAMES.get(actor, actor)
    why = f"，{'说明' if ended else '原因'}：{reason}" if reason else ""
    kind = "ended" if ended else "cancelled"
    if ended and is_drill(run):
        # 结束演练 (flows/drill_end.py): the participants must know the exercise is over. The
        # 【演练】 mark and the drill line are added where the rows are written (models/drill.py).
        title = "演练结束："
        stopped = f"{run.title} 演练已由{who}宣布结束{why}。"
        for_holders = stopped + "你在此演练中的未完成任务已停止，无需再办理。"
        for_told = stopped + "此前就此演练发出的报告、通知所涉演练已结束，特此告知。" + also
        for_holders += also
    else:
        title, done = ("【响应结束】", "宣布结束响应") if ended else ("【已撤销】", "撤销")
        stopped = f"{run.title} 已由{who}{done}{why}。"
        for_holders = stopped + "你在此流程中的未完成任务已停止，无需再办理。"
        # Neutral about what it was (a leak, a hazard under listed supervision, a campaign).
        for_told = stopped + ("此前就此发出的报告、通知所涉处置已停止，特此告知。" if not ended
                              else "此前就此发出的报告、通知所涉响应已结束，特此告知。")
    known = [p for p in told_people | paged if p in rt.org.people]
    rows = notification_rows(  # holders not reached by a message: the inbox, as their task
        rt.org, people=sorted(holders - set(known)), kind=kind, title=f"{title}{run.title}",
        body=for_holders, dedupe=f"{kind}|{run.id}", now=now, run_id=run.id, step_id=None,
        inbox_only=True)
    rows += notification_rows(  # those a message reached: on the channels it reached them by
        rt.org, people=sorted(p for p in known if p in holders), kind=kind,
        title=f"{title}{run.title}", body=for_holders, dedupe=f"{kind}|{run.id}", now=now,
        run_id=run.id, step_id=None)
    rows += notification_rows(
        rt.org, people=sorted(p for p in known if p not in holders),
        channels=sorted(c for c in told_channels if c in rt.org.channels), kind=kind,
        title=f"{title}{run.title}", body=for_told, dedupe=f"{kind}-told|{run.id}", now=now,
        run_id=run.id, step_id=None)
    insert_ignoring_duplicates(session, Notification, rows)


def _verifiers_waiting(session: Session, run_ids: list[int],
                       step_ids: list[int | None]) -> set[str]:
    """Whoever was asked to verify these handed-in tasks (their 【待核验】 notices)."""
    ids = [i for i in step_ids if i is not None]
    if not ids:
        return set()
    return set(session.exec(select(Notification.recipient).where(
        col(Notification.run_id).in_(run_ids), col(Notification.step_id).in_(ids),
        Notification.kind == "verify", Notification.recipient_kind == "person",
    )).all())


def _paged(session: Session, run_ids: list[int]) -> set[str]:
    """The people any message of the runs reached on their own channels, not only the inbox."""
    return set(session.exec(select(Notification.recipient).where(
        col(Notification.run_id).in_(run_ids), Notification.recipient_kind == "person",
        Notification.url != INBOX_URL,
    ).distinct()).all())


def _reached_by_messages(session: Session, run_ids: list[int]) -> tuple[set[str], set[str]]:
    """The people and named channels the runs' `notify` steps sent to."""
    rows = session.exec(select(Notification.recipient_kind, Notification.recipient).where(
        col(Notification.run_id).in_(run_ids), Notification.kind == "notify",
    ).distinct()).all()
    people = {who for kind, who in rows if kind == "person"}
    channels = {who for kind, who in rows if kind == "channel"}
    return people, channels
