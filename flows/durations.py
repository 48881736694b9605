"""Durations as playbooks write them: 30s | 5m | 2h | 30d | 5wd (working days).

Working days count on the Chinese calendar (flows/workcal.py): weekends off, statutory
holidays off, make-up workdays (调休) on. Everything else is plain elapsed time, except a
deadline of days a playbook marks `whole_days: true` (add_due): counted as Chinese law counts
a period of days (民法典 §201/§203), the start's day not counted, ending at 24:00 of the last
day, a last day off moved to the next working day's end (WorkCalendar.add_whole_days).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from models.errors import clipped

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from flows.workcal import WorkCalendar

Unit = Literal["s", "m", "h", "d", "wd"]
_SECONDS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d{1,6})\s*(s|m|h|d|wd)\s*$", re.ASCII)


class DurationError(ValueError):
    """Not a duration we understand; the message says what is expected, `中文 / English`."""


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: Unit

    @property
    def is_working_days(self) -> bool:
        return self.unit == "wd"

    def seconds(self) -> int:
        """Elapsed seconds; working days have no fixed length, so asking is a programming error."""
        if self.unit == "wd":
            raise TypeError("working days have no fixed number of seconds; use add_duration")
        return self.amount * _SECONDS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


_UNIT_ZH: dict[str, str] = {"s": "秒", "m": "分钟", "h": "小时", "d": "天", "wd": "个工作日"}
_FROM_ZH: dict[str, str] = {
    "ready": "自任务下达起", "run": "自流程启动起", "stage": "自进入本阶段起"}


def duration_zh(duration: Duration, start: str | None = None, *,
                whole_days: bool = False) -> str:
    """A duration as a deadline rule reads on paper: "3个工作日（自任务下达起）", "30天". A
    manager asked whether a deadline counted weekends and holidays reads it here instead of
    counting the calendar back from the date; whole days say how the law counts them: "30日
    （自流程启动次日起算，届满日24时止，遇休息日、节假日顺延）"."""
    if whole_days:
        begins = _FROM_ZH[start].removesuffix("起") if start in _FROM_ZH else ""
        begins += "次日起算，"
        return f"{duration.amount}日（{begins}届满日24时止，遇休息日、节假日顺延）"
    text = f"{duration.amount}{_UNIT_ZH[duration.unit]}"
    if start is not None and start in _FROM_ZH:
        text += f"（{_FROM_ZH[start]}）"
    return text


def parse_duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    got = clipped(repr(value), 60)  # echoed twice: a long value must not make a long message
    if isinstance(value, int) and not isinstance(value, bool):
        raise DurationError(f"时长须带单位（s、m、h、d 或 wd）；收到 {got} / a duration "
                            f"needs a unit (s, m, h, d or wd); got {got}")
    match = _PATTERN.match(value) if isinstance(value, str) else None
    if not match:
        raise DurationError(f"应为时长，如 30s、5m、2h、30d 或 5wd（工作日）；收到 {got} / "
                            f"expected a duration like 30s, 5m, 2h, 30d or 5wd; got {got}")
    return Duration(int(match[1]), match[2])  # type: ignore[arg-type]


def add_duration(
    start: datetime, duration: Duration, *, calendar: WorkCalendar, tz: ZoneInfo
) -> datetime:
    """`start` plus `duration`; working days end at midnight (local) of the last working day."""
    if duration.is_working_days:
        return calendar.add_working_days(start, duration.amount, tz=tz)
    return start + timedelta(seconds=duration.seconds())


def add_due(
    start: datetime, duration: Duration, *, whole_days: bool = False,
    calendar: WorkCalendar, tz: ZoneInfo,
) -> datetime:
    """A step's deadline `duration` after `start`: add_duration, or with `whole_days` (a
    `due` so marked, always in days) 24:00 of the last day as the law counts it."""
    if whole_days:
        if duration.unit != "d":
            raise ValueError(f"whole_days counts days, not {duration}")
        return calendar.add_whole_days(start, duration.amount, tz=tz)
    return add_duration(start, duration, calendar=calendar, tz=tz)


def add_after_deadline(
    deadline: datetime, duration: Duration, *, whole_days: bool = False,
    calendar: WorkCalendar, tz: ZoneInfo,
) -> datetime:
    """`duration` after a deadline (an escalation level's `after`). A deadline at local
    midnight is 24:00 of the day it closes, so working days after it count from the next day:
    "2wd" after Monday 24:00 is Wednesday 24:00, not Thursday's (add_duration alone reads a
    midnight start as the new day's, which is right for an event, a day late for a deadline).
    Whole days the same: 10 days after Monday 24:00 end on the Thursday of the week after."""
    if duration.is_working_days or whole_days:
        local = deadline.astimezone(tz)
        if local.hour == local.minute == local.second == local.microsecond == 0:
            deadline -= timedelta(microseconds=1)
    return add_due(deadline, duration, whole_days=whole_days, calendar=calendar, tz=tz)


def subtract_duration(
    end: datetime, duration: Duration, *, calendar: WorkCalendar, tz: ZoneInfo
) -> datetime:
    """`end` minus `duration` (for reminders `before` a due time)."""
    if duration.is_working_days:
        return calendar.subtract_working_days(end, duration.amount, tz=tz)
    return end - timedelta(seconds=duration.seconds())
