"""Durations as playbooks write them, and adding them to instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows.durations import (
    Duration,
    DurationError,
    add_after_deadline,
    add_duration,
    parse_duration,
    subtract_duration,
)
from flows.workcal import WorkCalendar

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar.from_file(ROOT / "playbooks" / "calendar" / "cn-workdays.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", Duration(30, "s")),
        ("5m", Duration(5, "m")),
        ("2h", Duration(2, "h")),
        ("30d", Duration(30, "d")),
        ("5wd", Duration(5, "wd")),
        ("0m", Duration(0, "m")),  # escalate `after: 0m` is in the spec
        (" 3 d ", Duration(3, "d")),  # stray spaces are harmless, so they are allowed
        ("999999s", Duration(999_999, "s")),
    ],
)
def test_parse_duration_accepts_valid(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "value",
    ["5", 5, "5x", "-1m", "1.5h", True, None, "", "m", "5 w d", "5W", "1000000s", 1.5, ["5m"]],
)
def test_parse_duration_rejects_invalid(value: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(value)


def test_parse_duration_rejects_bare_number_asking_for_unit() -> None:
    with pytest.raises(DurationError, match="needs a unit"):
        parse_duration(5)


def test_parse_duration_returns_duration_unchanged() -> None:
    d = Duration(5, "wd")
    assert parse_duration(d) is d


def test_duration_str_round_trips() -> None:
    for text in ("30s", "5m", "2h", "30d", "5wd"):
        assert str(parse_duration(text)) == text


def test_duration_seconds_refuses_working_days() -> None:
    assert parse_duration("2h").seconds() == 7200
    with pytest.raises(TypeError):
        parse_duration("5wd").seconds()


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("30d", timedelta(days=30)),
    ],
)
def test_add_duration_plain_units_are_elapsed_time(
    cal: WorkCalendar, text: str, delta: timedelta
) -> None:
    # 2025-10-01 is a holiday: plain units do not care.
    start = datetime(2025, 10, 1, 3, 0, tzinfo=UTC)
    assert add_duration(start, parse_duration(text), calendar=cal, tz=SHANGHAI) == start + delta
    assert subtract_duration(start, parse_duration(text), calendar=cal, tz=SHANGHAI) == (
        start - delta
    )


def test_add_duration_working_days_use_calendar(cal: WorkCalendar) -> None:
    start = datetime(2025, 9, 30, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai
    due = add_duration(start, parse_duration("1wd"), calendar=cal, tz=SHANGHAI)
    # Oct 1-8 off: the first working day is Thursday 10-09, due at its end (local midnight).
    assert due == datetime(2025, 10, 10, tzinfo=SHANGHAI).astimezone(UTC)
    weekends_only = add_duration(
        start, parse_duration("1wd"), calendar=WorkCalendar.weekends_only(), tz=SHANGHAI
    )
    assert weekends_only == datetime(2025, 10, 2, tzinfo=SHANGHAI).astimezone(UTC)


def test_subtract_duration_working_days_use_calendar(cal: WorkCalendar) -> None:
    due = datetime(2025, 10, 10, tzinfo=SHANGHAI).astimezone(UTC)  # end of Thursday 10-09
    remind = subtract_duration(due, parse_duration("1wd"), calendar=cal, tz=SHANGHAI)
    assert remind == datetime(2025, 10, 1, tzinfo=SHANGHAI).astimezone(UTC)  # end of 09-30


def test_working_days_after_a_deadline_at_24_00_count_from_the_next_day(
        cal: WorkCalendar) -> None:
    sh = ZoneInfo("Asia/Shanghai")
    # Due Monday 2026-12-07 24:00 (Tuesday 00:00): 2wd after is the end of Wednesday 12-09.
    due = datetime(2026, 12, 8, tzinfo=sh)
    after = add_after_deadline(due, parse_duration("2wd"), calendar=cal, tz=sh)
    assert after == datetime(2026, 12, 10, tzinfo=sh)
    # A deadline inside a day counts from the next day, as before.
    mid = datetime(2026, 12, 7, 18, tzinfo=sh)
    assert add_after_deadline(mid, parse_duration("2wd"), calendar=cal, tz=sh) == \
        datetime(2026, 12, 10, tzinfo=sh)
    # Calendar durations are plain additions.
    assert add_after_deadline(due, parse_duration("3d"), calendar=cal, tz=sh) == \
        due + timedelta(days=3)
