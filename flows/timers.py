"""What a step instance's timers owe at a given moment: reminders, the acknowledgement
deadline, the overdue mark, escalation levels and their repeats. Pure: no database, no clock.

Catch-up rule (SPEC §4): after downtime every missed level fires once, late; missed repeats of a
level collapse into one firing, and a level that fires in this pass does not also repeat in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from flows.durations import add_after_deadline, add_duration, subtract_duration

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from flows.spec import EscalateSpec, StepSpec
    from flows.workcal import WorkCalendar

# A submitted step waits for its verifier: the assignee's ladder pauses (a unit that handed in
# its work on time is not sent a 督办函 because the re-inspection is late); a rejection
# restarts it. While it waits, the verifier has a ladder of their own (`verify.due` and
# `verify.escalate`), kept in its own columns so the assignee's resumes where it stood.
TIMED_STATUSES = ("ready", "acked", "rejected")
SUBMITTED = "submitted"


@dataclass(frozen=True)
class TimerState:
    status: str
    ready_at: datetime | None
    due_at: datetime | None
    acked_at: datetime | None
    reminders_sent: int
    ack_missed: bool
    overdue: bool
    escalation_level: int
    last_escalated_at: datetime | None  # the *scheduled* time of the last escalation fired
    verify_due_at: datetime | None = None  # the verifier's deadline (submitted steps)
    verify_level: int = 0
    verify_last_at: datetime | None = None


@dataclass(frozen=True)
class Firing:
    kind: str  # remind | ack | escalate
    level: int  # 1-based level (escalate), reminder number (remind), 0 (ack)
    repeat: int  # 0 = the level itself, k = its k-th repeat
    scheduled_at: datetime
    targets: tuple[str, ...]  # roles or channels; empty = the assignees
    # Unit type where the roles resolve (the level's `at`); None: where the step is held.
    at: str | None = None


@dataclass
class TimerOutcome:
    firings: list[Firing] = field(default_factory=list)
    became_overdue: bool = False
    wait_finished: bool = False
    reminders_sent: int = 0
    ack_missed: bool = False
    escalation_level: int = 0
    last_escalated_at: datetime | None = None
    verify_level: int = 0
    verify_last_at: datetime | None = None
    next_check_at: datetime | None = None


def evaluate(
    spec: StepSpec,
    state: TimerState,
    now: datetime,
    *,
    calendar: WorkCalendar,
    tz: ZoneInfo,
) -> TimerOutcome:
    out = TimerOutcome(
        reminders_sent=state.reminders_sent,
        ack_missed=state.ack_missed,
        escalation_level=state.escalation_level,
        last_escalated_at=state.last_escalated_at,
        verify_level=state.verify_level,
        verify_last_at=state.verify_last_at,
    )
    if state.status == SUBMITTED:
        if spec.verify is not None and state.verify_due_at is not None:
            ladder = _ladder(spec.verify.ladder, "verify", state.verify_due_at,
                             state.verify_level, state.verify_last_at, now,
                             calendar=calendar, tz=tz)
            out.firings = ladder.firings
            out.verify_level, out.verify_last_at = ladder.level, ladder.last
            out.next_check_at = min(ladder.upcoming, default=None)
        return out
    if state.status not in TIMED_STATUSES:
        return out
    upcoming: list[datetime] = []
    due = state.due_at

    if spec.action == "wait":
        if due is not None and due <= now:
            out.wait_finished = True
        elif due is not None:
            upcoming.append(due)
        out.next_check_at = min(upcoming, default=None)
        return out

    # Reminders go out before the due time; once it has passed they are pointless, and after
    # downtime only the latest missed one is sent.
    if due is not None and spec.remind:
        times = sorted(
            (subtract_duration(due, r.before, calendar=calendar, tz=tz), i + 1, r.to)
            for i, r in enumerate(spec.remind)
        )
        passed = [t for t in times if t[0] <= now]
        if len(passed) > state.reminders_sent and now < due:
            at, number, to = passed[-1]
            out.firings.append(Firing("remind", number, 0, at, tuple(to)))
        out.reminders_sent = max(state.reminders_sent, len(passed))
        upcoming += [t[0] for t in times[out.reminders_sent:] if t[0] < due]

    if spec.ack is not None and state.ready_at is not None and state.acked_at is None:
        if state.status == "ready" and not state.ack_missed:
            deadline = add_duration(state.ready_at, spec.ack, calendar=calendar, tz=tz)
            if deadline <= now:
                first = spec.escalate[0] if spec.escalate else None
                out.firings.append(Firing("ack", 0, 0, deadline,
                                          tuple(first.notify) if first else (),
                                          first.at if first else None))
                out.ack_missed = True
            else:
                upcoming.append(deadline)

    if due is not None:
        if due <= now:
            out.became_overdue = not state.overdue
        else:
            upcoming.append(due)
        ladder = _ladder(spec.escalate, "escalate", due, state.escalation_level,
                         state.last_escalated_at, now, calendar=calendar, tz=tz)
        out.firings += ladder.firings
        out.escalation_level, out.last_escalated_at = ladder.level, ladder.last
        upcoming += ladder.upcoming
    out.next_check_at = min(upcoming, default=None)
    return out


@dataclass
class Ladder:
    firings: list[Firing]
    level: int  # highest level fired
    last: datetime | None  # scheduled time of the last firing
    upcoming: list[datetime]  # when the ladder next owes something


def _ladder(
    levels: list[EscalateSpec], kind: str, due: datetime, level: int,
    last_at: datetime | None, now: datetime, *, calendar: WorkCalendar, tz: ZoneInfo,
) -> Ladder:
    """Escalation levels counted from `due`: every level owed fires once (late after
    downtime), then the repeats of every level reached that has `repeat`, missed repeats of a
    level collapsing into one. A level repeats until the step is done (SPEC §2), also once a
    later level has begun: hazard-3030's weekly 约谈 goes on beside the monthly 通报批评.

    `last_at` is the scheduled time of the latest firing so far, of any level: a repeat point
    at or before it has fired (or was collapsed into a later one), one after it is owed."""
    out = Ladder(firings=[], level=level, last=last_at, upcoming=[])
    level_times = [add_after_deadline(due, lv.after, calendar=calendar, tz=tz) for lv in levels]
    fired_now: set[int] = set()
    latest = last_at
    for number, at in enumerate(level_times, start=1):
        if number > level and at <= now:
            lv = levels[number - 1]
            out.firings.append(Firing(kind, number, 0, at, tuple(lv.notify), lv.at))
            out.level = number
            latest = at if latest is None else max(latest, at)
            fired_now.add(number)
    if out.level < len(level_times):
        out.upcoming.append(level_times[out.level])
    for number in range(1, out.level + 1):
        repeat = levels[number - 1].repeat
        if repeat is None:
            continue
        start = level_times[number - 1]
        step = _repeat_delta(repeat)
        k_now = int((now - start) / step) if now >= start else 0
        done = last_at if last_at is not None and last_at >= start else start
        k_last = int((done - start) / step)
        if k_now > k_last:
            point = start + k_now * step
            # A level that first fired in this very sweep (after downtime) does not also send
            # its missed repeat: one message says it.
            if number not in fired_now:
                lv = levels[number - 1]
                out.firings.append(Firing(kind, number, k_now, point, tuple(lv.notify), lv.at))
            latest = point if latest is None else max(latest, point)
        out.upcoming.append(start + (max(k_now, k_last) + 1) * step)
    out.firings.sort(key=lambda f: f.scheduled_at)
    out.last = latest
    return out


def _repeat_delta(duration: object) -> timedelta:
    from flows.durations import Duration

    assert isinstance(duration, Duration)
    if duration.is_working_days:
        # A repeat counted in working days is approximated by whole days; the sweeper still only
        # fires on due points, so a weekend merely delays the nudge.
        return timedelta(days=duration.amount)
    return timedelta(seconds=duration.seconds())
