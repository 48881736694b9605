"""Deadlines counted without a year's holiday arrangement, and years a bureau should add
(flows/calendar_recount.py counts them again once the year is added).

The working-day calendar (playbooks/calendar/cn-workdays.yaml) lists the years the State
Council has published. A `5wd` deadline that runs into a year it does not list is counted Mon-Fri
alone: 元旦 or 春节 not off, a make-up Saturday not on. That is a fair estimate, but an inspector
must not read it as the legal deadline, and the operator must be told to add the year before
it matters (the arrangement comes out around November).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flows.durations import Duration
from flows.runtime import Runtime

# How far ahead the operator is warned: past the longest working-day deadline the shipped
# playbooks set (10wd, about two weeks), and early enough to add a year published in November.
LOOKAHEAD = timedelta(days=60)


def years_to_add(rt: Runtime, now: datetime) -> list[int]:
    """Years between today and LOOKAHEAD from now that the calendar file does not list."""
    today = now.astimezone(rt.tz).date()
    return rt.calendar.missing_years(today, (now + LOOKAHEAD).astimezone(rt.tz).date())


def estimated_note(rt: Runtime, duration: Duration | None, start: datetime | None,
                   due: datetime | None, *, whole_days: bool = False) -> str | None:
    """Why a working-day deadline is an estimate (the years it crossed that the calendar file
    lacks), or None when it is not one: not in working days, or every year it spans listed.
    A deadline of whole days (`whole_days`) counts every day; only whether its last day is
    off reads the calendar, so only the year of its last day can make it an estimate."""
    if duration is None or due is None or not (duration.is_working_days or whole_days):
        return None
    # A deadline at local midnight closes the day before it.
    last = (due - timedelta(microseconds=1)).astimezone(rt.tz).date()
    first = last if whole_days else (start or due).astimezone(rt.tz).date()
    missing = rt.calendar.missing_years(min(first, last), last)
    if not missing:
        return None
    years = "、".join(f"{y}年" for y in missing)
    if whole_days:
        return (f"{years}节假日安排未录入工作日历，届满日是否为节假日按周一至周五推算，"
                "以正式安排为准")
    return f"{years}节假日安排未录入工作日历，此期限按周一至周五推算，以正式安排为准"
