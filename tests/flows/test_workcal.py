"""The Chinese working-day calendar: data file, validation, and the counting rules."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows.workcal import CalendarError, WorkCalendar

ROOT = Path(__file__).resolve().parents[2]
CALENDAR_FILE = ROOT / "playbooks" / "calendar" / "cn-workdays.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar.from_file(CALENDAR_FILE)


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    """A Shanghai wall-clock time as the aware UTC instant the engine passes around."""
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI).astimezone(UTC)


def end_of(y: int, m: int, d: int) -> datetime:
    """The deadline form: local midnight that ends the given Shanghai day, in UTC."""
    return datetime(y, m, d, tzinfo=SHANGHAI).astimezone(UTC) + timedelta(days=1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cal.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> CalendarError:
    with pytest.raises(CalendarError) as info:
        WorkCalendar.from_file(write(tmp_path, text))
    return info.value


# -- the data file -----------------------------------------------------------------------------


def test_load_shipped_file_covers_2024_to_2026(cal: WorkCalendar) -> None:
    assert cal.years == (2024, 2025, 2026)
    assert cal.covers(date(2025, 6, 1))
    assert not cal.covers(date(2027, 1, 4))


def test_is_workday_matches_official_2025_arrangement(cal: WorkCalendar) -> None:
    # 国办发明电〔2024〕12号: the days off and the make-up days, straight from the notice.
    off = [date(2025, 1, 1), *[date(2025, 1, 28) + timedelta(days=i) for i in range(8)]]
    off += [date(2025, 4, 4), date(2025, 5, 5), date(2025, 6, 2), date(2025, 10, 8)]
    on = [date(2025, 1, 26), date(2025, 2, 8), date(2025, 4, 27)]
    on += [date(2025, 9, 28), date(2025, 10, 11)]
    assert [d for d in off if cal.is_workday(d)] == []
    assert [d for d in on if not cal.is_workday(d)] == []


def test_is_workday_counts_each_year_correctly(cal: WorkCalendar) -> None:
    # Totals from the official notices (cross-checked day by day against chinesecalendar
    # 1.11.0); from 2025 there are 13 statutory days off instead of 11, hence 248.
    def count(year: int) -> int:
        day, n = date(year, 1, 1), 0
        while day.year == year:
            n += cal.is_workday(day)
            day += timedelta(days=1)
        return n

    assert (count(2024), count(2025), count(2026)) == (251, 248, 248)


def test_is_workday_weekends_only_ignores_holidays() -> None:
    cal = WorkCalendar.weekends_only()
    assert cal.years == ()
    assert cal.is_workday(date(2025, 10, 1))  # a Wednesday
    assert not cal.is_workday(date(2025, 10, 11))  # a Saturday
    assert not cal.covers(date(2025, 10, 1))


def test_is_workday_rejects_datetime(cal: WorkCalendar) -> None:
    with pytest.raises(TypeError):
        cal.is_workday(datetime(2025, 10, 1, tzinfo=UTC))


# -- adding working days -----------------------------------------------------------------------


def test_add_working_days_skips_weekend(cal: WorkCalendar) -> None:
    # Received Friday 2025-03-14 afternoon: counting starts Saturday, the 1st working day is
    # Monday, the 5th is Friday 03-21; due at its end.
    start = local(2025, 3, 14, 15, 30)
    assert cal.add_working_days(start, 1, tz=SHANGHAI) == end_of(2025, 3, 17)
    assert cal.add_working_days(start, 5, tz=SHANGHAI) == end_of(2025, 3, 21)


def test_add_working_days_returns_utc_midnight_local(cal: WorkCalendar) -> None:
    due = cal.add_working_days(local(2025, 3, 14, 9), 1, tz=SHANGHAI)
    assert due.tzinfo is UTC
    assert due == datetime(2025, 3, 17, 16, 0, tzinfo=UTC)  # Tuesday 00:00 in Shanghai


def test_add_working_days_counts_start_in_local_date(cal: WorkCalendar) -> None:
    # 2025-03-13 20:00 UTC is already Friday 04:00 in Shanghai, so it counts from Saturday.
    start = datetime(2025, 3, 13, 20, 0, tzinfo=UTC)
    assert cal.add_working_days(start, 1, tz=SHANGHAI) == end_of(2025, 3, 17)
    # The same instant counted in UTC is still Thursday: the 1st working day is Friday.
    assert cal.add_working_days(start, 1, tz=ZoneInfo("UTC")) == datetime(2025, 3, 15, tzinfo=UTC)


def test_add_working_days_across_2025_national_day(cal: WorkCalendar) -> None:
    # Oct 1-8 off; Sunday 09-28 and Saturday 10-11 are make-up workdays.
    start = local(2025, 9, 26, 10)  # Friday
    expected = {
        1: end_of(2025, 9, 28),  # the make-up Sunday
        2: end_of(2025, 9, 29),
        3: end_of(2025, 9, 30),
        4: end_of(2025, 10, 9),  # the eight days off are skipped
        5: end_of(2025, 10, 10),
        6: end_of(2025, 10, 11),  # the make-up Saturday
        7: end_of(2025, 10, 13),
    }
    assert {n: cal.add_working_days(start, n, tz=SHANGHAI) for n in expected} == expected


def test_add_working_days_counts_make_up_saturday(cal: WorkCalendar) -> None:
    # Received Friday 10-10: the next day, Saturday 10-11, is a working day (调休).
    due = cal.add_working_days(local(2025, 10, 10, 16), 1, tz=SHANGHAI)
    assert due == end_of(2025, 10, 11)


def test_add_working_days_across_2026_spring_festival(cal: WorkCalendar) -> None:
    # 2026: Saturday 02-14 works, 02-15..02-23 off, Saturday 02-28 works.
    start = local(2026, 2, 12, 11)  # Thursday
    assert cal.add_working_days(start, 1, tz=SHANGHAI) == end_of(2026, 2, 13)
    assert cal.add_working_days(start, 2, tz=SHANGHAI) == end_of(2026, 2, 14)
    assert cal.add_working_days(start, 3, tz=SHANGHAI) == end_of(2026, 2, 24)
    assert cal.add_working_days(start, 6, tz=SHANGHAI) == end_of(2026, 2, 27)
    assert cal.add_working_days(start, 7, tz=SHANGHAI) == end_of(2026, 2, 28)


def test_add_working_days_from_inside_holiday(cal: WorkCalendar) -> None:
    # Reported on the first day of the 2026 Spring Festival: the 1st working day is 02-24.
    due = cal.add_working_days(local(2026, 2, 15, 8), 1, tz=SHANGHAI)
    assert due == end_of(2026, 2, 24)


def test_add_working_days_zero_is_end_of_start_day(cal: WorkCalendar) -> None:
    assert cal.add_working_days(local(2025, 10, 3, 14), 0, tz=SHANGHAI) == end_of(2025, 10, 3)
    # At exactly local midnight the start is on the new day.
    assert cal.add_working_days(local(2025, 3, 14), 0, tz=SHANGHAI) == end_of(2025, 3, 14)


def test_add_working_days_across_year_boundary_of_data(cal: WorkCalendar) -> None:
    # 2026-12-31 is a Thursday; 2027 is not in the file, so it is plain Mon-Fri.
    start = local(2026, 12, 30, 9)
    assert cal.add_working_days(start, 1, tz=SHANGHAI) == end_of(2026, 12, 31)
    assert cal.add_working_days(start, 2, tz=SHANGHAI) == end_of(2027, 1, 1)
    assert cal.add_working_days(start, 3, tz=SHANGHAI) == end_of(2027, 1, 4)


def test_add_working_days_outside_data_falls_back_to_weekends_only(cal: WorkCalendar) -> None:
    plain = WorkCalendar.weekends_only()
    for start in (local(2023, 9, 29, 10), local(2028, 9, 29, 10)):
        for n in (0, 1, 3, 10):
            expected = plain.add_working_days(start, n, tz=SHANGHAI)
            assert cal.add_working_days(start, n, tz=SHANGHAI) == expected
    assert not cal.covers(date(2028, 10, 2))
    assert cal.is_workday(date(2028, 10, 2))  # a Monday; 2028's National Day is not known yet


def test_add_working_days_matches_day_by_day_walk(cal: WorkCalendar) -> None:
    # The arithmetic must agree with the obvious definition for every start in the data.
    day = date(2023, 12, 1)
    while day <= date(2027, 1, 31):
        start = local(day.year, day.month, day.day, 12)
        walk, found = day, 0
        for n in (1, 2, 5, 10, 20):
            while found < n:
                walk += timedelta(days=1)
                found += cal.is_workday(walk)
            got = cal.add_working_days(start, n, tz=SHANGHAI)
            assert got == end_of(walk.year, walk.month, walk.day), (day, n)
        day += timedelta(days=1)


def test_add_working_days_is_fast_for_large_n(cal: WorkCalendar) -> None:
    start = local(2025, 9, 26, 10)
    began = time.perf_counter()
    for _ in range(1000):
        cal.add_working_days(start, 30, tz=SHANGHAI)
    per_call = (time.perf_counter() - began) / 1000
    assert per_call < 0.001  # microseconds in practice; a generous bound for slow CI
    # Six digits is the most a duration can say; it must not walk every day.
    far = cal.add_working_days(start, 999_999, tz=SHANGHAI)
    assert far.year > 5000


def test_add_working_days_rejects_naive_start(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add_working_days(datetime(2025, 3, 14, 9), 1, tz=SHANGHAI)


def test_add_working_days_rejects_negative_n(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        cal.add_working_days(local(2025, 3, 14), -1, tz=SHANGHAI)


# -- subtracting working days (reminders) ------------------------------------------------------


def test_subtract_working_days_from_deadline(cal: WorkCalendar) -> None:
    due = end_of(2025, 3, 21)  # end of Friday
    assert cal.subtract_working_days(due, 1, tz=SHANGHAI) == end_of(2025, 3, 20)
    assert cal.subtract_working_days(due, 2, tz=SHANGHAI) == end_of(2025, 3, 19)
    assert cal.subtract_working_days(due, 5, tz=SHANGHAI) == end_of(2025, 3, 14)


def test_subtract_working_days_skips_weekend_and_holiday(cal: WorkCalendar) -> None:
    # Due end of Monday: 1wd before is the end of Friday, not Sunday.
    assert cal.subtract_working_days(end_of(2025, 3, 17), 1, tz=SHANGHAI) == end_of(2025, 3, 14)
    # Due end of 10-09 (first day back after National Day): 1wd before is the make-up day
    # before the break, 2wd before is the end of Monday 09-29.
    due = end_of(2025, 10, 9)
    assert cal.subtract_working_days(due, 1, tz=SHANGHAI) == end_of(2025, 9, 30)
    assert cal.subtract_working_days(due, 3, tz=SHANGHAI) == end_of(2025, 9, 28)


def test_subtract_working_days_mid_day_end(cal: WorkCalendar) -> None:
    # An end that is not midnight belongs to its own local day.
    end = local(2025, 3, 21, 15)
    assert cal.subtract_working_days(end, 1, tz=SHANGHAI) == end_of(2025, 3, 20)


def test_subtract_working_days_zero_returns_end(cal: WorkCalendar) -> None:
    end = local(2025, 3, 21, 15)
    assert cal.subtract_working_days(end, 0, tz=SHANGHAI) == end


def test_subtract_working_days_inverts_add(cal: WorkCalendar) -> None:
    day = date(2024, 1, 1)
    while day <= date(2026, 12, 31):
        start = local(day.year, day.month, day.day, 10)
        for n in (1, 3, 5, 20):
            due = cal.add_working_days(start, n, tz=SHANGHAI)
            back = cal.subtract_working_days(due, n, tz=SHANGHAI)
            assert back < due
            if cal.is_workday(day):
                assert back == cal.add_working_days(start, 0, tz=SHANGHAI), (day, n)
            # Anything started on the day `back` closes is due at `due` again.
            assert cal.add_working_days(back - timedelta(seconds=1), n, tz=SHANGHAI) == due
        day += timedelta(days=1)


def test_subtract_working_days_rejects_naive_end(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.subtract_working_days(datetime(2025, 3, 21), 1, tz=SHANGHAI)


# -- calendar file errors ----------------------------------------------------------------------

GOOD_HEAD = "years:\n  2025:\n"
# Every listed year needs holidays; tests about workdays put them on line 3.
NEW_YEAR = "    holidays: [{name: 元旦, from: 2025-01-01}]\n"


def test_from_file_rejects_weekday_as_make_up_day(tmp_path: Path) -> None:
    err = load_error(tmp_path, GOOD_HEAD + NEW_YEAR + "    workdays:\n      - 2025-09-29\n")
    assert len(err.errors) == 1
    e = err.errors[0]
    assert (e.line, e.col, e.path) == (5, 9, "years[2025].workdays[0]")
    assert "Monday" in e.message
    assert str(err).startswith(f"{tmp_path / 'cal.yaml'}:5:9: years[2025].workdays[0]: ")


def test_from_file_rejects_impossible_date(tmp_path: Path) -> None:
    text = GOOD_HEAD + "    holidays:\n      - {name: 春节, from: 2025-02-30, to: 2025-03-01}\n"
    err = load_error(tmp_path, text)
    e = err.errors[0]
    assert (e.line, e.col) == (4, 26)
    assert e.path == "years[2025].holidays[0].from"
    assert "2025-02-30" in e.message


def test_from_file_rejects_impossible_quoted_date(tmp_path: Path) -> None:
    err = load_error(tmp_path, GOOD_HEAD + NEW_YEAR + '    workdays:\n      - "2025-13-01"\n')
    assert (err.errors[0].line, err.errors[0].col) == (5, 9)
    assert "not a real date" in err.errors[0].message


def test_from_file_rejects_reversed_range(tmp_path: Path) -> None:
    text = GOOD_HEAD + "    holidays:\n      - {name: 国庆节, from: 2025-10-08, to: 2025-10-01}\n"
    e = load_error(tmp_path, text).errors[0]
    assert (e.line, e.path) == (4, "years[2025].holidays[0].to")
    assert "before" in e.message


def test_from_file_rejects_make_up_day_inside_holiday(tmp_path: Path) -> None:
    text = (
        GOOD_HEAD
        + "    holidays:\n"
        + "      - {name: 国庆节, from: 2025-10-01, to: 2025-10-08}\n"
        + "    workdays:\n"
        + "      - 2025-10-04\n"
    )
    e = load_error(tmp_path, text).errors[0]
    assert (e.line, e.col, e.path) == (6, 9, "years[2025].workdays[0]")
    assert "国庆节" in e.message and "line 4" in e.message


def test_from_file_rejects_date_under_wrong_year(tmp_path: Path) -> None:
    text = GOOD_HEAD + NEW_YEAR + "    workdays:\n      - 2052-09-28\n"
    e = load_error(tmp_path, text).errors[0]
    assert e.line == 5
    assert "year 2025" in e.message


def test_from_file_reports_every_mistake(tmp_path: Path) -> None:
    text = (
        "years:\n"
        "  2025:\n"
        "    holidays:\n"
        "      - {from: 2025-10-01}\n"  # no name
        "    workday:\n"  # typo for workdays
        "      - 2025-09-28\n"
        "  twenty:\n"
    )
    err = load_error(tmp_path, text)
    assert [(e.line, e.path) for e in err.errors] == [
        (4, "years[2025].holidays[0].name"),
        (5, "years[2025].workday"),
        (7, "years.twenty"),
    ]


def test_from_file_rejects_yaml_syntax_error(tmp_path: Path) -> None:
    err = load_error(tmp_path, "years:\n  2025:\n    holidays: [\n")
    assert err.errors[0].line >= 3
    assert isinstance(err, ValueError)


def test_from_file_rejects_missing_years(tmp_path: Path) -> None:
    err = load_error(tmp_path, "holidays: []\n")
    assert (err.errors[0].line, err.errors[0].col) == (1, 1)


def test_from_file_rejects_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="cannot read calendar file"):
        WorkCalendar.from_file(tmp_path / "missing.yaml")


def test_from_file_accepts_one_day_holiday_without_to(tmp_path: Path) -> None:
    text = GOOD_HEAD + "    holidays:\n      - {name: 元旦, from: 2025-01-01}\n"
    cal = WorkCalendar.from_file(write(tmp_path, text))
    assert not cal.is_workday(date(2025, 1, 1))
    assert cal.is_workday(date(2025, 1, 2))


def test_from_file_accepts_new_year_starting_in_december(tmp_path: Path) -> None:
    # 2019's 元旦 ran 2018-12-30..2019-01-01 with Saturday 2018-12-29 as a make-up day.
    text = (
        "years:\n  2019:\n    holidays:\n"
        "      - {name: 元旦, from: 2018-12-30, to: 2019-01-01}\n"
        "    workdays: [2018-12-29]\n"
    )
    cal = WorkCalendar.from_file(write(tmp_path, text))
    assert cal.is_workday(date(2018, 12, 29))
    assert not cal.is_workday(date(2018, 12, 31))
    assert not cal.covers(date(2018, 12, 31))


def test_from_file_rejects_year_without_holidays(tmp_path: Path) -> None:
    # An empty year would claim coverage and silence the "data missing" warning.
    err = load_error(tmp_path, "years:\n  2025:\n    holidays: []\n  2027:\n")
    assert [(e.line, e.path) for e in err.errors] == [(2, "years[2025]"), (4, "years[2027]")]


def test_a_deadline_that_ends_a_day_reads_as_that_days_24_00() -> None:
    from flows.exports import days_left
    from flows.render import Renderer

    tz = ZoneInfo("Asia/Shanghai")
    renderer = Renderer(Path(__file__).parent, tz=tz)
    end_of_9th = datetime(2026, 3, 10, 0, 0, tzinfo=tz).astimezone(UTC)
    assert renderer.deadline(end_of_9th) == "2026-03-09 24:00"
    assert renderer.deadline(end_of_9th, "%m月%d日%H时") == "03月09日24时"
    assert renderer.deadline(end_of_9th, "%Y-%m-%d") == "2026-03-10"  # no time: untouched
    assert renderer.local(end_of_9th) == "2026-03-10 00:00"  # an event at midnight stays
    assert renderer.deadline(end_of_9th + timedelta(minutes=1)) == "2026-03-10 00:01"
    # Due 24:00 on the 9th: on the 9th it is due today, on the 10th one day late.
    assert days_left(end_of_9th, datetime(2026, 3, 9, 23, 0, tzinfo=tz), tz) == 0
    assert days_left(end_of_9th, datetime(2026, 3, 10, 8, 0, tzinfo=tz), tz) == -1
