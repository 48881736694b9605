"""flows/lateness.py: a step's lateness by the minute under a day, then in the registers' days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flows.exports import late_days
from flows.lateness import minutes_late, step_late_days

SH = ZoneInfo("Asia/Shanghai")
DUE = datetime(2026, 3, 2, 1, 3, tzinfo=UTC)  # 09:03 in Shanghai


@pytest.mark.parametrize(("after", "minutes", "days"), [
    (timedelta(minutes=-3), 0, 0),
    (timedelta(0), 0, 0),
    (timedelta(seconds=1), 1, 0),  # the countdown says 逾期 1分钟 from the first second
    (timedelta(minutes=1), 1, 0),  # the registers would say 1 day here
    (timedelta(hours=14, minutes=57), 897, 0),  # past local midnight: still under a day
    (timedelta(days=1) - timedelta(seconds=1), 1439, 0),
    (timedelta(days=1), 1440, 1),
    (timedelta(days=12, hours=12), 18000, 12),  # 3-02 09:03 to 3-14 21:03: the 3rd to the 14th
])
def test_under_a_day_by_the_minute_then_the_registers_days(
    after: timedelta, minutes: int, days: int
) -> None:
    now = DUE + after
    assert minutes_late(DUE, now) == minutes
    assert step_late_days(DUE, now, SH) == days
    if days:
        assert days == late_days(DUE, now, SH)


def test_no_deadline_no_figure() -> None:
    now = DUE
    assert minutes_late(None, now) is None and step_late_days(None, now, SH) is None
