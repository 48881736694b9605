"""Why a task's deadline is what it is, when it is counted from the run's start (the alert):
the 半小时口头报告 is due 30 minutes after the alert, not after the judgement it waits on, so a
重大 leak judged 40 minutes in hands it out already 10 minutes late, and 信息报送考核 counts it
漏报 at once (flows/reporting.py). The task page says so: 时限自接报（11:02）起算，应于11:32前
报送; and, handed out late, 已超时10分钟才派发, with the step it waited on when that is known
(the last of its needs to finish, followed back through automatic steps, like the document of
the verbal report's points, to the person's task that held it up).

Only deadlines counted from the run: one counted from the hand-out (`from: ready`, the default)
cannot be late at it, and one counted from a stage is handed out as the stage is entered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from models.run import Run
from models.task import StepInstance

# Steps the engine does by itself the moment their needs finish: never what held a task up.
_AUTOMATIC = ("notify", "document")


@dataclass(frozen=True)
class HeldUp:
    key: str
    title: str
    done_at: datetime


@dataclass(frozen=True)
class DeadlineBasis:
    counted_from: str  # run
    since: datetime  # the run's start (the alert), UTC
    deadline: datetime  # as the rule counts it (before any extension), UTC
    text: str  # 时限自接报（11:02）起算，应于11:32前报送
    late_at_hand_out_minutes: int | None  # handed out after `deadline`: by how many minutes
    held_up_by: HeldUp | None
    late_text: str | None  # 已超时10分钟才派发（等待“初步研判…”，11:42完成）


def deadline_basis(session: Session, rt: Runtime, run: Run, playbook: Playbook,
                   spec: StepSpec, step: StepInstance) -> DeadlineBasis | None:
    """The basis of `step`'s deadline, or None unless it counts from the run's start."""
    if spec.due is None or spec.due.from_ != "run" or step.ready_at is None:
        return None
    counted = step.original_due_at or step.due_at
    if counted is None:
        return None
    since = run.started_at
    fmt = "%H:%M" if _same_day(rt, since, counted) else "%m-%d %H:%M"
    origin = "接报" if playbook.kind == "response" else "流程启动"
    verb = "报送" if spec.report else "完成"
    # Whole days (民法典 §201) leave the day of the start out: counted from the next day.
    starts = "次日起算" if spec.due.whole_days else "起算"
    text = (f"时限自{origin}（{rt.renderer.local(since, fmt)}）{starts}，"
            f"应于{rt.renderer.deadline(counted, fmt)}前{verb}")
    late = step.ready_at - counted
    if late.total_seconds() <= 0:
        return DeadlineBasis("run", since, counted, text, None, None, None)
    minutes = max(1, int(late.total_seconds() // 60))
    held = held_up_by(session, run, playbook, spec)
    late_text = f"已超时{minutes}分钟才派发"
    if held is not None:
        # Times of one day read bare; once the text gives dates, this one gives its own too.
        held_fmt = fmt if _same_day(rt, held.done_at, since) else "%m-%d %H:%M"
        late_text += f"（等待“{held.title}”，{rt.renderer.local(held.done_at, held_fmt)}完成）"
    return DeadlineBasis("run", since, counted, text, minutes, held, late_text)


def _same_day(rt: Runtime, a: datetime, b: datetime) -> bool:
    return a.astimezone(rt.tz).date() == b.astimezone(rt.tz).date()


def held_up_by(session: Session, run: Run, playbook: Playbook, spec: StepSpec) -> HeldUp | None:
    """The person's task whose finish let `spec` be handed out: the last of its needs to
    finish, followed back through automatic steps; None when none of them finished (all
    passed over)."""
    rows = session.exec(
        select(StepInstance.step_key, StepInstance.done_at, StepInstance.title)
        .where(StepInstance.run_id == run.id, col(StepInstance.done_at).is_not(None))).all()
    last: dict[str, tuple[datetime, str]] = {}
    for key, done_at, title in rows:
        if key not in last or done_at > last[key][0]:
            last[key] = (done_at, title)
    seen: set[str] = set()
    current = spec
    while current.id not in seen:
        seen.add(current.id)
        finished = [(last[n][0], n) for n in current.needs if n in last]
        if not finished:
            return None
        done_at, key = max(finished)
        step = playbook.step(key)
        if step.action not in _AUTOMATIC:
            return HeldUp(key=key, title=last[key][1], done_at=done_at)
        current = step
    return None
