"""How late an open step is, as a run's page and the API say it: by its minutes while it is
less than a day late, then in days as the registers count them.

A gas leak's steps are due in minutes: one a minute late is "逾期 1分钟" on the task page and in
the inbox (their countdown), and must not read "逾期 1 天" on the run page beside it. The
registers' 逾期天数 (flows/exports.late_days) counts started calendar days, the day the
deadline passed being day 1; that count means something once a step is a day or more late, and
then the run page of a hazard says the number its 整改清单 row prints."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flows.exports import late_days

A_DAY = timedelta(days=1)


def minutes_late(due_at: datetime | None, now: datetime) -> int | None:
    """Whole minutes past the deadline, at least 1 once it has passed (as the pages' countdown
    says "逾期 1分钟" from the first second); 0 before it; None without a deadline."""
    if due_at is None:
        return None
    if due_at >= now:
        return 0
    return max(int((now - due_at) // timedelta(minutes=1)), 1)


def step_late_days(due_at: datetime | None, now: datetime, tz: ZoneInfo) -> int | None:
    """逾期天数 of a step: the registers' count (late_days) once it is a full day or more past
    its deadline, 0 until then (its lateness is `minutes_late`); None without a deadline."""
    if due_at is None:
        return None
    if now - due_at < A_DAY:
        return 0
    return late_days(due_at, now, tz)
