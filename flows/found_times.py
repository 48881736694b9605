"""When a hazard was found (发现时间), read the way a bureau writes it: in a cell of an imported
register (text in many forms, a real spreadsheet date, an Excel serial that lost its format)
or in a run's `found_at` param. A time without an offset is the bureau's local time; a time in
the future (beyond a PC clock's slack) or before any register existed is refused. 24:00 is the
end of the day written, the next day's 00:00: the way the product prints a deadline that ends
a day (flows/render.py deadline_text, the register exports), so an exported time reads back as
the instant it was."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.errors import clipped

FUTURE_SLACK = timedelta(minutes=10)  # a PC clock a little ahead of the server's
# No register predates this: a 发现时间 before it is a typo (1000-01-01), a placeholder
# (0001-01-01, which also overflows when stored as UTC) or a number read as an Excel serial
# (1 -> 1900-01-01), not when a hazard was found.
EARLIEST_FOUND = date(2000, 1, 1)


# How a 发现时间 may be written, as the import template's 填写说明 lists them (each is read by
# Times.parse; tests/flows/test_import_template.py holds them to it). An Excel date cell is
# read too.
WRITTEN_FORMS = ("2026-02-01", "2026-02-01 09:30", "2026/2/1 9:30", "2026.2.1", "20260201",
                 "2026年2月1日", "2026年2月1日9时30分", "2026-02-01T09:30:00+08:00")


class BadCell(Exception):
    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


def shown(value: Any) -> str:
    return f"'{clipped(str(value))}'"


# The time may follow 日 with no space (2026年3月5日9时30分, as registers write it in words).
_DATE_TIME = re.compile(
    r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:(?:[ T]+|(?<=日))(\d{1,2})[:：时](\d{1,2})(?:[:：分](\d{1,2})(?:\.\d+)?秒?)?分?)?$"
)
# A date written as eight digits, 20260305 (a common register form, text or number): never an
# Excel serial, whose dates end at 2958465 (9999-12-31).
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


# A day's 24:00 (seconds and fraction zero if written), in any of the forms above.
_END_OF_DAY = re.compile(
    r"^\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}日?[ T]+(?P<hour>24)[:：时]0{1,2}"
    r"(?:[:：分]0{1,2}(?:\.0+)?秒?)?分?(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)


class Times:
    """发现时间 cells to aware datetimes (local time unless an offset is written)."""

    def __init__(self, tz: ZoneInfo, now: datetime) -> None:
        self.tz = tz
        self.latest = now + FUTURE_SLACK
        self.earliest = datetime.combine(EARLIEST_FOUND, time(), tz)
        self.earliest_serial = float(
            (EARLIEST_FOUND - date(1899, 12, 30)).days)  # Excel's day 0 (1900 date system)
        self.memo: dict[str, datetime] = {}

    def parse(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            found = self.memo.get(value)
            if found is None:
                found = self._text(value)
                self.memo[value] = found
        elif isinstance(value, datetime):
            found = value if value.tzinfo else value.replace(tzinfo=self.tz)
        elif isinstance(value, date):
            found = datetime.combine(value, time(), self.tz)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            compact = _COMPACT_DATE.match(str(int(value))) if float(value).is_integer() \
                and 10_000_000 <= value <= 99_999_999 else None
            found = self._compact(compact, value) if compact else self._serial(value)
        else:
            raise BadCell(f"{shown(value)} 不是日期或时间", f"{shown(value)} is not a date or time")
        # The years first: converting 0001-01-01 or 9999-12-31 to another offset overflows.
        if found.year < EARLIEST_FOUND.year or (
                found.year <= EARLIEST_FOUND.year + 1 and found < self.earliest):
            written = found.replace(tzinfo=None).isoformat(sep=" ", timespec="minutes")
            raise BadCell(f"{shown(written)} 早于 {EARLIEST_FOUND.isoformat()}，不是合理的发现时间",
                          f"{shown(written)} is before {EARLIEST_FOUND.isoformat()}: not a "
                          "plausible time of finding")
        if found.year > self.latest.year + 1 or found > self.latest:
            written = (found.replace(tzinfo=None).isoformat(sep=" ", timespec="minutes")
                       if found.year > self.latest.year + 1 else self._local(found))
            raise BadCell(f"{shown(written)} 晚于当前时间", f"{shown(written)} is in the future")
        return found

    def _local(self, value: datetime) -> str:
        return value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def _text(self, value: str) -> datetime:
        text = value.strip()
        end_of_day = _END_OF_DAY.match(text)
        if end_of_day:
            # That day's 00:00 and one day on (on the wall clock: the next day's 00:00).
            start, end = end_of_day.span("hour")
            try:
                return self._text(f"{text[:start]}00{text[end:]}") + timedelta(days=1)
            except (BadCell, OverflowError):
                raise BadCell(f"{shown(value)} 不是有效的日期", f"{shown(value)} is not a valid "
                              "date") from None
        compact = _COMPACT_DATE.match(text)
        if compact is not None:
            return self._compact(compact, value)
        if text.replace(".", "", 1).isdigit():  # an Excel serial number that lost its format
            return self._serial(float(text), text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            match = _DATE_TIME.match(text)
            if match is None:
                raise BadCell(f"{shown(value)} 不是有效的日期时间（例如 2026-02-01 或 "
                           "2026-02-01 09:30）",
                           f"{shown(value)} is not a date or date and time (like 2026-02-01 "
                           "or 2026-02-01 09:30)") from None
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
            try:
                parsed = datetime(y, mo, d, h, mi, s)
            except ValueError:
                raise BadCell(f"{shown(value)} 不是有效的日期", f"{shown(value)} is not a valid "
                           "date") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=self.tz)

    def _compact(self, match: re.Match[str], written: Any) -> datetime:
        year, month, day = (int(g) for g in match.groups())
        try:
            return datetime(year, month, day, tzinfo=self.tz)
        except ValueError:
            raise BadCell(f"{shown(written)} 不是有效的日期", f"{shown(written)} is not a valid "
                          "date") from None

    def _serial(self, number: float, written: Any = None) -> datetime:
        from openpyxl.utils.datetime import from_excel

        written = number if written is None else written
        # A number below EARLIEST_FOUND's serial (1 would be 1900-01-01) is a mistake in the
        # column, not a date that lost its format.
        if not self.earliest_serial <= number < 2958466:
            raise BadCell(f"{shown(written)} 不是日期（例如 2026-02-01 或 2026-02-01 09:30）",
                          f"{shown(written)} is not a date (like 2026-02-01 or 2026-02-01 "
                          "09:30)")
        found = from_excel(number)
        if not isinstance(found, datetime):  # pragma: no cover - from_excel gives datetimes
            raise BadCell(f"{shown(number)} 不是日期", f"{shown(number)} is not a date")
        return found.replace(tzinfo=self.tz)
