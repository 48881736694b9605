"""Deadlines in days counted as Chinese law counts a period (民法典 第二百零一条、第二百零三条,
`whole_days: true` on a `due`): the start's local day is not counted, the deadline is 24:00
local of the nth day after it, and a last day off on the working-day calendar (weekend or
holiday; a make-up workday is a working day) moves to 24:00 of the next working day. On the
shipped calendar (2024-2026 listed; 2027 falls back to Mon-Fri)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows.durations import (
    add_after_deadline,
    add_due,
    duration_zh,
    parse_duration,
    subtract_duration,
)
from flows.loader import LoadContext, load_playbook_text
from flows.render import deadline_text
from flows.spec import Playbook
from flows.workcal import WorkCalendar
from models.errors import PlaybookInvalid

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar.from_file(ROOT / "playbooks" / "calendar" / "cn-workdays.yaml")


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI).astimezone(UTC)


def end_of(y: int, m: int, d: int) -> datetime:
    """24:00 of that Shanghai day, in UTC."""
    return datetime(y, m, d, tzinfo=SHANGHAI).astimezone(UTC) + timedelta(days=1)


def whole(cal: WorkCalendar, start: datetime, days: str, tz: ZoneInfo = SHANGHAI) -> datetime:
    return add_due(start, parse_duration(days), whole_days=True, calendar=cal, tz=tz)


@pytest.mark.parametrize(("start", "days", "due"), [
    # Monday 2 March: the 2nd is not counted, the 10th day after it is Thursday the 12th,
    # whether registered a minute after midnight or five minutes before the next.
    (local(2026, 3, 2, 0, 5), "10d", end_of(2026, 3, 12)),
    (local(2026, 3, 2, 23, 55), "10d", end_of(2026, 3, 12)),
    # Across a month's end (February has 28 days in 2026): 31 January + 30 days = 2 March.
    (local(2026, 1, 31, 10, 0), "30d", end_of(2026, 3, 2)),
    # A last day on a plain Saturday moves to Monday.
    (local(2026, 3, 4, 15, 0), "10d", end_of(2026, 3, 16)),
    # A make-up workday (调休上班, Saturday 28 February 2026) is a working day: it stays.
    (local(2026, 2, 18, 9, 0), "10d", end_of(2026, 2, 28)),
    # A last day inside 春节 (15-23 February 2026) moves to the first day back, the 24th.
    (local(2026, 1, 20, 9, 0), "30d", end_of(2026, 2, 24)),
    # Inside 国庆 (1-7 October 2026): the 8th.
    (local(2026, 9, 3, 9, 0), "30d", end_of(2026, 10, 8)),
    # Across a year's end: 4 December 2025 + 30 days = 3 January 2026, the last day of 元旦;
    # Sunday the 4th is a make-up workday, so the period ends then.
    (local(2025, 12, 4, 1, 25), "30d", end_of(2026, 1, 4)),
    # Into a year the file lacks (2027): counted Mon-Fri, Sunday 3 January moves to Monday.
    (local(2026, 12, 4, 1, 25), "30d", end_of(2027, 1, 4)),
    # 0 days: the end of the start's own day (moved the same way off a Saturday).
    (local(2026, 3, 5, 10, 0), "0d", end_of(2026, 3, 5)),
    (local(2026, 3, 7, 10, 0), "0d", end_of(2026, 3, 9)),
])
def test_the_start_day_is_not_counted_and_the_period_ends_at_24_00(
    cal: WorkCalendar, start: datetime, days: str, due: datetime
) -> None:
    assert whole(cal, start, days) == due


def test_a_start_at_local_midnight_is_on_the_day_it_opens(cal: WorkCalendar) -> None:
    # 00:00 of Tuesday 3 March is an event on the 3rd: ten days later is Friday the 13th.
    assert whole(cal, local(2026, 3, 3), "10d") == end_of(2026, 3, 13)


def test_days_after_a_deadline_count_from_the_day_it_closes(cal: WorkCalendar) -> None:
    # A deadline of Monday 2 March 24:00 (stored as the 3rd's 00:00) closes the 2nd: ten whole
    # days after it end on the 12th, as from any moment of the 2nd.
    after = add_after_deadline(end_of(2026, 3, 2), parse_duration("10d"), whole_days=True,
                               calendar=cal, tz=SHANGHAI)
    assert after == end_of(2026, 3, 12)


def test_the_local_day_is_the_configured_zones(cal: WorkCalendar) -> None:
    # 20:00 UTC on 2 March is already the 3rd in Shanghai (no daylight saving there): the
    # period starts a day later than in a bureau that keeps UTC.
    start = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    assert whole(cal, start, "10d") == end_of(2026, 3, 13)
    assert whole(cal, start, "10d", tz=ZoneInfo("UTC")) == datetime(2026, 3, 13, tzinfo=UTC)


def test_elapsed_days_are_unchanged_without_the_key(cal: WorkCalendar) -> None:
    start = local(2026, 3, 2, 9, 0)
    assert add_due(start, parse_duration("30d"), calendar=cal, tz=SHANGHAI) == \
        start + timedelta(days=30)


def test_reminders_before_a_whole_day_deadline_fall_on_a_day_s_end(cal: WorkCalendar) -> None:
    due = whole(cal, local(2026, 3, 2, 9, 0), "30d")
    assert due == end_of(2026, 4, 1)
    assert subtract_duration(due, parse_duration("7d"), calendar=cal, tz=SHANGHAI) == \
        end_of(2026, 3, 25)


def test_only_days_and_aware_times_are_counted(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="whole_days counts days"):
        add_due(local(2026, 3, 2), parse_duration("5wd"), whole_days=True, calendar=cal,
                tz=SHANGHAI)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add_whole_days(datetime(2026, 3, 2, 9, 0), 10, tz=SHANGHAI)
    with pytest.raises(ValueError, match="non-negative"):
        cal.add_whole_days(local(2026, 3, 2), -1, tz=SHANGHAI)


def test_printed_as_the_last_day_s_24_00(cal: WorkCalendar) -> None:
    due = whole(cal, local(2026, 12, 4, 1, 25), "30d")
    assert deadline_text(due.astimezone(SHANGHAI)) == "2027-01-04 24:00"


def test_the_rule_says_how_the_days_are_counted() -> None:
    assert duration_zh(parse_duration("30d"), "run", whole_days=True) == \
        "30日（自流程启动次日起算，届满日24时止，遇休息日、节假日顺延）"
    assert duration_zh(parse_duration("10d"), "ready", whole_days=True) == \
        "10日（自任务下达次日起算，届满日24时止，遇休息日、节假日顺延）"
    assert duration_zh(parse_duration("30d"), "run") == "30天（自流程启动起）"


# --- the playbook key, checked at load -------------------------------------------------------

def _load(steps: str) -> Playbook:
    text = f"id: demo\nversion: 1\ntitle: 演示\nsteps:\n{steps}"
    ctx = LoadContext(Path("tests/fixtures/playbooks"), known_roles={"inspector"},
                      known_channels=set(), known_playbooks=set())
    return load_playbook_text(text, filename="demo.yaml", context=ctx)


def _errors(steps: str) -> list[str]:
    with pytest.raises(PlaybookInvalid) as caught:
        _load(steps)
    return [str(e) for e in caught.value.errors]


def test_whole_days_loads_on_a_due_and_a_verifier_s_due() -> None:
    playbook = _load(
        "  - id: fix\n    title: 整改\n    role: inspector\n"
        "    due: {after: 30d, from: run, whole_days: true}\n"
        "    verify: {role: inspector, due: {after: 10d, whole_days: true}}\n")
    step = playbook.step("fix")
    assert step.due is not None and step.due.whole_days and step.due.on_calendar
    assert step.verify is not None and step.verify.due is not None
    assert step.verify.due.whole_days


@pytest.mark.parametrize(("due", "what"), [
    ("{after: 5wd, whole_days: true}", "5wd 不是：工作日已按日历计算"),
    ("{after: 2h, whole_days: true}", "2h 不是：小时、分钟、秒按实际经过时间计算"),
    ("{after: 90m, from: run, whole_days: true}", "90m 不是"),
])
def test_whole_days_on_hours_or_working_days_is_an_error_at_its_place(
    due: str, what: str
) -> None:
    line = f"    due: {due}"
    errors = _errors(f"  - id: fix\n    title: 整改\n    role: inspector\n{line}\n")
    assert len(errors) == 1
    col = line.index("true") + 1  # the value that is wrong
    assert errors[0].startswith(f"demo.yaml:8:{col}: steps[0] (fix).due.whole_days: whole_days "
                                "只用于以日计的期限（如 30d），")
    assert what in errors[0]


def test_whole_days_on_a_verifier_s_working_days_is_an_error_too() -> None:
    errors = _errors("  - id: fix\n    title: 整改\n    role: inspector\n"
                     "    verify:\n      role: inspector\n"
                     "      due: {after: 3wd, whole_days: true}\n")
    assert errors == ["demo.yaml:10:37: steps[0] (fix).verify.due.whole_days: whole_days 只用于以"
                      "日计的"
                      "期限（如 30d），3wd 不是：工作日已按日历计算、于届满日24时截止 / whole_days "
                      "is only for a deadline in days (like 30d), not 3wd"]
