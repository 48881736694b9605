"""The Chinese working-day calendar behind `5wd` durations.

A day is a working day if it is a make-up workday (调休上班), else not if it is inside a statutory
holiday (法定节假日放假), else if it is Monday to Friday. The arrangement changes every year, so it
lives in a bureau-editable file (playbooks/calendar/cn-workdays.yaml); years missing from the file
fall back to plain Mon-Fri, and `covers()` lets callers warn that they did.

Counting rules (a product decision; they follow the administrative reading of "X个工作日内"):

- Instants going in and out are timezone-aware and returned in UTC; days are counted as local
  dates in the bureau's zone `tz` (the product default is Asia/Shanghai).
- `add_working_days(start, n)`: counting starts on the day AFTER start's local date, and the
  deadline is the END of the nth working day, i.e. the local midnight that starts the next
  calendar day. A matter received on Friday with 1wd is due at the end of Monday, whatever time
  on Friday it arrived. n == 0 is the end of start's own local day.
- `subtract_working_days(end, n)` (reminders "before: 2wd"): the mirror image. The day of `end` is
  the local day it falls in, where an instant exactly at local midnight belongs to the day it
  closes (deadlines are such midnights). Counting goes back from the day BEFORE that day, and the
  result is the END of the nth working day found. With a deadline at the end of Friday, 1wd
  before is the end of Thursday and 2wd before is the end of Wednesday; with a deadline at the
  end of Monday, 1wd before is the end of Friday. n == 0 returns `end` unchanged.
- So the two agree: for any start whose local day is a working day,
  subtract(add(start, n), n) == add(start, 0); and for any deadline at the end of a working day,
  anything started on the day subtract(end, n) closes is due exactly at `end` with n working days.

Counting is arithmetic, not a walk over days: the number of working days up to a date is the
number of Mon-Fri days (closed form) plus a correction from the file (+1 per make-up workday,
-1 per holiday on a weekday), looked up with bisect. Finding the nth working day is a binary
search on that count, so 30wd and 30000wd cost the same few microseconds.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from models.errors import SourceError, SourceInvalid
from models.yamlpos import PathKey, Positions, YamlSyntaxError, format_path, load_with_positions

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# New Year arrangements can start in late December of the year before (2019's 元旦 began on
# 2018-12-30 with 2018-12-29 as a make-up day), so a year's entries may spill over by a month.
_SPILL = timedelta(days=31)
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MAX_ORDINAL = date.max.toordinal() - 1  # the last day whose end is still a date


class CalendarError(SourceInvalid, ValueError):
    """The calendar file is wrong; `errors` lists every mistake with file:line:col and key path.

    A ValueError so plain callers can catch it as bad input, and a SourceInvalid so it reports
    like every other YAML source closeloop loads.
    """


@dataclass(frozen=True)
class Holiday:
    name: str
    start: date  # first day off
    end: date  # last day off (inclusive)


def _weekdays_through(ordinal: int) -> int:
    """How many Mon-Fri days lie in ordinals 1..ordinal (ordinal 1, 0001-01-01, is a Monday)."""
    weeks, rest = divmod(ordinal, 7)
    return 5 * weeks + min(rest, 5)


class WorkCalendar:
    """Which local dates are working days; see the module docstring for the counting rules."""

    def __init__(
        self,
        holidays: tuple[Holiday, ...] = (),
        workdays: frozenset[date] = frozenset(),
        years: tuple[int, ...] = (),
        source: str | None = None,
    ) -> None:
        self.holidays = holidays
        self.years = tuple(sorted(set(years)))
        self.source = source
        self._years = frozenset(self.years)
        self._workdays = frozenset(workdays)
        self._days_off = frozenset(
            h.start + timedelta(days=i) for h in holidays for i in range((h.end - h.start).days + 1)
        )
        # Correction to the Mon-Fri count: +1 on a make-up weekend day, -1 on a holiday that
        # would otherwise be a working day. Holidays on weekends change nothing.
        deltas: dict[int, int] = {}
        for day in self._workdays:
            if day.weekday() >= 5:
                deltas[day.toordinal()] = 1
        for day in self._days_off:
            if day.weekday() < 5 and day not in self._workdays:
                deltas[day.toordinal()] = -1
        self._delta_ordinals = sorted(deltas)
        # _delta_sums[i] is the total correction of the first i entries, so the correction in
        # force on an ordinal o is _delta_sums[bisect_right(_delta_ordinals, o)].
        self._delta_sums = [0]
        for o in self._delta_ordinals:
            self._delta_sums.append(self._delta_sums[-1] + deltas[o])

    @property
    def workdays(self) -> frozenset[date]:
        """The make-up working days (调休上班) the file lists."""
        return self._workdays

    def __repr__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"<WorkCalendar years={list(self.years)}{where}>"

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def weekends_only(cls) -> WorkCalendar:
        """Mon-Fri working days, no holidays (tests, and the fallback when no file is present)."""
        return cls()

    @classmethod
    def from_file(cls, path: Path) -> WorkCalendar:
        """Load and check a calendar file; raises CalendarError listing every mistake.

        An unreadable file is a CalendarError too (at 1:1), like the other YAML sources.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CalendarError(
                [SourceError(str(path), 1, 1, "", f"cannot read calendar file: {exc}")]
            ) from exc
        return cls.from_text(text, filename=str(path))

    @classmethod
    def from_text(cls, text: str, *, filename: str) -> WorkCalendar:
        """Like from_file, for text already in hand; `filename` is what errors name."""
        try:
            data, positions = load_with_positions(text, filename)
        except YamlSyntaxError as exc:
            raise CalendarError(
                [SourceError(filename, exc.line, exc.col, exc.path, exc.message)]
            ) from exc
        except ValueError as exc:
            # PyYAML raises a bare ValueError for things like 2025-02-30 (a timestamp that
            # matches the pattern but is not a date), which yamlpos does not position yet.
            raise CalendarError([_locate_bad_date(text, filename, exc)]) from exc
        return _Parser(filename, positions).parse(data)

    # -- queries ----------------------------------------------------------------------------

    def is_workday(self, day: date) -> bool:
        """Make-up workdays are on, holidays are off, every other day is on if Mon-Fri."""
        if isinstance(day, datetime):
            # A datetime is a date subclass; its .date() would silently ignore the time zone.
            raise TypeError("is_workday takes a local date, not a datetime")
        if day in self._workdays:
            return True
        if day in self._days_off:
            return False
        return day.weekday() < 5

    def covers(self, day: date) -> bool:
        """Whether the file has that day's year; if not, the day was judged on Mon-Fri alone."""
        return day.year in self._years

    def before(self, year: int) -> WorkCalendar:
        """This calendar as it was before `year` was added to it: that year and later counted
        Mon-Fri (what a deadline reaching them was counted with then)."""
        return WorkCalendar(
            holidays=tuple(h for h in self.holidays if h.end.year < year),
            workdays=frozenset(d for d in self._workdays if d.year < year),
            years=tuple(y for y in self.years if y < year), source=self.source)

    def missing_years(self, first: date, last: date) -> list[int]:
        """The years from first's to last's that the file does not list: working days in them
        are counted Mon-Fri alone, without that year's holidays and make-up days."""
        return [y for y in range(first.year, last.year + 1) if y not in self._years]

    def holiday_name(self, day: date) -> str | None:
        """The holiday the day belongs to (for display), or None."""
        for h in self.holidays:
            if h.start <= day <= h.end:
                return h.name
        return None

    def add_working_days(self, start: datetime, n: int, *, tz: ZoneInfo) -> datetime:
        """End of the nth working day after start's local date, in UTC (n == 0: end of that day).

        Counting starts the day after start (a matter received on a Friday with 1wd is due at
        the end of the next working day, normally Monday 24:00 local = Tuesday 00:00).
        """
        _check_args(start, n, "start")
        day = start.astimezone(tz).date().toordinal()
        if n == 0:
            return _end_of(day, tz)
        target = self._count_through(day) + n
        # Bracket the answer, then binary-search it. 7 days hold 5 weekdays; the margin covers
        # holidays, and the doubling covers whatever a bureau writes into the file.
        hi = min(_MAX_ORDINAL, day + 2 * n + 16)
        while hi < _MAX_ORDINAL and self._count_through(hi) < target:
            hi = min(_MAX_ORDINAL, day + 2 * (hi - day))
        if self._count_through(hi) < target:
            raise ValueError(f"{n} working days after {start.isoformat()} is past year 9999")
        return _end_of(self._first_reaching(target, day + 1, hi), tz)

    def add_whole_days(self, start: datetime, n: int, *, tz: ZoneInfo) -> datetime:
        """A period of n days as Chinese law counts it (民法典 第二百零一条、第二百零三条), in UTC:
        start's local date is not counted, the period ends at 24:00 of the nth day after it,
        and a last day that is a rest day moves to the end of the first working day after it.

        "法定休假日" in §203 is read as every day off on this calendar, weekends included, a
        make-up workday (调休上班) not: the reading of the 民通意见（试行）第198条 that §203
        carries on ("期间的最后一天是星期日或者其他法定休假日，而星期日或者其他法定休假日有变通的，
        以实际休假日的次日为期间的最后一天"; 星期六、星期日 are 周休息日 by 国务院《关于职工工作
        时间的规定》第七条). A 30-day rectification that would end on 国庆's 10月3日 ends on 10月8日
        24:00, the day the office that accepts it opens again. n == 0: the end of start's day
        (moved the same way)."""
        _check_args(start, n, "start", unit="days")
        last = start.astimezone(tz).date().toordinal() + n
        # A run of days off is at most a holiday plus the weekends around it; a file listing a
        # month off still ends, and a year's worth is surely a mistake, not a period.
        for _ in range(366):
            if last > _MAX_ORDINAL:
                raise ValueError(f"{n} days after {start.isoformat()} is past year 9999")
            if self.is_workday(date.fromordinal(last)):
                return _end_of(last, tz)
            last += 1
        raise ValueError(f"no working day within a year of {date.fromordinal(last - 366)}")

    def subtract_working_days(self, end: datetime, n: int, *, tz: ZoneInfo) -> datetime:
        """End of the nth working day before the local day `end` closes, in UTC (n == 0: `end`).

        An `end` at exactly local midnight belongs to the day it closes, so for a deadline at
        the end of Friday, 1wd before is the end of Thursday; see the module docstring.
        """
        _check_args(end, n, "end")
        if n == 0:
            return end.astimezone(UTC)
        local = end.astimezone(tz)
        day = local.date().toordinal()
        if local.time() == time(0):
            day -= 1  # midnight closes the previous day
        # Working days strictly before `day` number _count_through(day - 1); we want the one
        # that is n from the last of them.
        target = self._count_through(day - 1) - n + 1
        if target < 1:
            raise ValueError(f"{n} working days before {end.isoformat()} is before year 1")
        lo = max(1, day - 2 * n - 16)
        while lo > 1 and self._count_through(lo - 1) >= target:
            lo = max(1, day - 2 * (day - lo))
        return _end_of(self._first_reaching(target, lo, day - 1), tz)

    # -- counting ---------------------------------------------------------------------------

    def _count_through(self, ordinal: int) -> int:
        """Working days in ordinals 1..ordinal: it grows by one exactly on each working day."""
        correction = self._delta_sums[bisect_right(self._delta_ordinals, ordinal)]
        return _weekdays_through(ordinal) + correction

    def _first_reaching(self, target: int, lo: int, hi: int) -> int:
        """Smallest ordinal in [lo, hi] whose count reaches target (that day is a working day).

        Caller guarantees the count reaches target by hi and has not reached it before lo.
        """
        while lo < hi:
            mid = (lo + hi) // 2
            if self._count_through(mid) >= target:
                hi = mid
            else:
                lo = mid + 1
        return lo


def _check_args(moment: datetime, n: int, name: str, *, unit: str = "working days") -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive datetime could be UTC or local; guessing would shift deadlines by 8 hours.
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{unit} must be a non-negative integer, got {n!r}")


def _end_of(ordinal: int, tz: ZoneInfo) -> datetime:
    """The local midnight that ends the given day, as UTC."""
    next_day = date.fromordinal(ordinal) + timedelta(days=1)
    return datetime.combine(next_day, time(0), tzinfo=tz).astimezone(UTC)


# -- loading --------------------------------------------------------------------------------


class _Parser:
    """Turns the loaded YAML into a WorkCalendar, collecting every mistake before raising."""

    def __init__(self, filename: str, positions: Positions) -> None:
        self.filename = filename
        self.positions = positions
        self.errors: list[SourceError] = []

    def error(self, path: PathKey, message: str, *, at_key: bool = False) -> None:
        mark = self.positions.of_key(path) if at_key else self.positions.of(path)
        self.errors.append(
            SourceError(self.filename, mark.line, mark.col, format_path(path), message)
        )

    def parse(self, data: Any) -> WorkCalendar:
        holidays: list[tuple[Holiday, PathKey]] = []
        workdays: list[tuple[date, PathKey]] = []
        years: list[int] = []
        if not isinstance(data, dict) or "years" not in data:
            self.error((), "expected a mapping with a 'years' key")
        else:
            for key in data:
                if key != "years":
                    self.error((key,), f"unknown key '{key}' (known: years)", at_key=True)
            self.parse_years(data["years"], holidays, workdays, years)
        self.check_overlaps(holidays, workdays)
        if self.errors:
            raise CalendarError(self.errors)
        return WorkCalendar(
            holidays=tuple(h for h, _ in holidays),
            workdays=frozenset(d for d, _ in workdays),
            years=tuple(years),
            source=self.filename,
        )

    def parse_years(
        self,
        node: Any,
        holidays: list[tuple[Holiday, PathKey]],
        workdays: list[tuple[date, PathKey]],
        years: list[int],
    ) -> None:
        if not isinstance(node, dict):
            self.error(("years",), "expected a mapping of year -> {holidays, workdays}")
            return
        for key, body in node.items():
            path: PathKey = ("years", key)
            year = _as_year(key)
            if year is None:
                self.error(path, f"'{key}' is not a year (expected e.g. 2025)", at_key=True)
                continue
            if year in years:
                self.error(path, f"year {year} is listed twice", at_key=True)
                continue
            years.append(year)
            # A listed year claims coverage (no "data missing" warning), so it must carry the
            # arrangement: every year has statutory holidays.
            if not isinstance(body, dict):
                self.error(path, "expected a mapping with 'holidays' and 'workdays'")
                continue
            if not body.get("holidays"):
                self.error(path, f"year {year} needs a 'holidays' list", at_key=True)
            for sub in body:
                if sub not in ("holidays", "workdays"):
                    self.error(
                        (*path, sub),
                        f"unknown key '{sub}' (known: holidays, workdays)",
                        at_key=True,
                    )
            self.parse_holidays(year, body.get("holidays"), (*path, "holidays"), holidays)
            self.parse_workdays(year, body.get("workdays"), (*path, "workdays"), workdays)

    def parse_holidays(
        self, year: int, node: Any, path: PathKey, out: list[tuple[Holiday, PathKey]]
    ) -> None:
        if node is None:
            return
        if not isinstance(node, list):
            self.error(path, "expected a list of {name, from, to}")
            return
        for i, item in enumerate(node):
            item_path = (*path, i)
            if not isinstance(item, dict):
                self.error(item_path, "expected {name: ..., from: YYYY-MM-DD, to: YYYY-MM-DD}")
                continue
            for key in item:
                if key not in ("name", "from", "to"):
                    self.error(
                        (*item_path, key),
                        f"unknown key '{key}' (known: name, from, to)",
                        at_key=True,
                    )
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                self.error((*item_path, "name"), "a holiday needs a name, e.g. 春节")
                name = ""
            if "from" not in item:
                self.error(item_path, "a holiday needs 'from' (its first day off)")
                continue
            first = self.date_at(item["from"], (*item_path, "from"))
            # `to` may be left out for a one-day holiday.
            last = self.date_at(item["to"], (*item_path, "to")) if "to" in item else first
            if first is None or last is None:
                continue
            if first > last:
                self.error((*item_path, "to"), f"'to' {last} is before 'from' {first}")
                continue
            if not self.in_year(year, first, (*item_path, "from")) or not self.in_year(
                year, last, (*item_path, "to")
            ):
                continue
            out.append((Holiday(name.strip(), first, last), item_path))

    def parse_workdays(
        self, year: int, node: Any, path: PathKey, out: list[tuple[date, PathKey]]
    ) -> None:
        if node is None:
            return
        if not isinstance(node, list):
            self.error(path, "expected a list of dates (weekend days that are working days)")
            return
        seen = {d for d, _ in out}
        for i, item in enumerate(node):
            item_path = (*path, i)
            day = self.date_at(item, item_path)
            if day is None or not self.in_year(year, day, item_path):
                continue
            if day.weekday() < 5:
                # Only a weekend day can be a make-up workday; a weekday listed here is almost
                # certainly a typo for a neighbouring date.
                self.error(
                    item_path,
                    f"{day} is a {_WEEKDAY_NAMES[day.weekday()]}; make-up workdays (调休) "
                    "are Saturdays or Sundays",
                )
                continue
            if day in seen:
                self.error(item_path, f"{day} is listed twice")
                continue
            seen.add(day)
            out.append((day, item_path))

    def check_overlaps(
        self, holidays: list[tuple[Holiday, PathKey]], workdays: list[tuple[date, PathKey]]
    ) -> None:
        for day, path in workdays:
            for h, h_path in holidays:
                if h.start <= day <= h.end:
                    mark = self.positions.of(h_path)
                    self.error(
                        path,
                        f"{day} is a make-up workday but falls inside holiday {h.name} "
                        f"({h.start}..{h.end}, line {mark.line})",
                    )

    def date_at(self, value: Any, path: PathKey) -> date | None:
        # A quoted "2025-10-01" is as clear as a bare one, so accept both.
        if isinstance(value, str) and _ISO_DATE.match(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                self.error(path, f"'{value}' is not a real date")
                return None
        if isinstance(value, datetime) or not isinstance(value, date):
            self.error(path, f"expected a date like 2025-10-01, got {value!r}")
            return None
        return value

    def in_year(self, year: int, day: date, path: PathKey) -> bool:
        if date(year, 1, 1) - _SPILL <= day <= date(year, 12, 31) + _SPILL:
            return True
        self.error(path, f"{day} is listed under year {year}")
        return False


def _as_year(key: Any) -> int | None:
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key.strip())
    if isinstance(key, int) and not isinstance(key, bool) and 1900 <= key <= 9998:
        return key
    return None


def _locate_bad_date(text: str, filename: str, exc: ValueError) -> SourceError:
    """Find the first timestamp scalar PyYAML could not turn into a date, for its position."""
    loader = yaml.SafeLoader("")
    found: list[SourceError] = []

    def walk(node: yaml.Node, path: PathKey) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key: str | int = key_node.value
                if key_node.tag == "tag:yaml.org,2002:int":
                    key = int(key_node.value)
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))
        elif node.tag == "tag:yaml.org,2002:timestamp":
            try:
                loader.construct_yaml_timestamp(node)
            except ValueError as bad:
                mark = node.start_mark
                found.append(
                    SourceError(
                        filename,
                        mark.line + 1,
                        mark.column + 1,
                        format_path(path),
                        f"'{node.value}' is not a real date ({bad})",
                    )
                )

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    finally:
        loader.dispose()
    if found:
        return min(found, key=lambda e: (e.line, e.col))
    return SourceError(filename, 1, 1, "", f"invalid value: {exc}")
