"""Register exports (台账导出): the three registers, the monthly ranking and the reporting
figures (信息报送考核) as CSV or XLSX with
Chinese headers, streamed so a district's whole register never sits in memory.

CSV is UTF-8 with a byte-order mark, the one encoding Excel (as used in the bureaus) opens
with Chinese intact; XLSX is written by openpyxl in write-only mode (rows go to a temporary
file as they come, then the file is streamed out), with real date cells (deadlines aside, see
below) and a frozen header.
A sheet holds at most 1,048,575 rows; a longer register continues on 隐患清单(2), ...

Cells from people (locations, descriptions) that begin like a formula (=, +, -, @) are written
as text, so opening an export never runs a formula someone typed into a report (CSV: a leading
apostrophe, the usual defence; XLSX: the cell is typed as a string).

An export never fails on what a cell holds. XLSX cannot hold control characters (XML 1.0
forbids them; openpyxl raises mid-file) nor lone surrogates, nor more than 32,767 characters in
a cell: such characters are replaced with U+FFFD and a longer text is cut, ending with
"…（已截断）" so the reader sees it was. CSV keeps every character as stored.

`export_chunks` makes the first chunk before it returns: the query has run (and an XLSX file is
whole) before the route answers 200, so a failure is an error response, never a 200 cut short.

Times are the bureau's local time (CLOSELOOP_TIMEZONE), to the minute. A deadline (整改期限,
原整改期限) is written as every deadline the product prints is (flows/render.py deadline_text):
one that ends a day, stored as the next day's 00:00, reads as that day's 24:00
("2026-03-31 24:00"), never as a day later than the rule; the CSV writes that text, which the
import reads back to the same instant (flows/found_times.py). In XLSX a deadline is a date
cell like 发现时间 (a manager sorts, filters by day and counts days on it): one within a day
holds its time; one that ends a day holds that day's last second, 23:59:59, shown through the
cell's format as "2026-03-31 24:00" (a date cell cannot hold 24:00, and the next day's 00:00
would file it under a day later than the rule), so it sorts before the next day's 00:00 and
filters under its own day; read back (flows/tabular.py), such a cell is the text it shows, the
CSV's, so both formats return the same instant. 原整改期限 is blank unless an
approved extension moved the deadline (the API's `original_due_at` is then none too), so a
manager sees at a glance which hazards were extended.

The rectification list (整改清单) counts calendar days in local time: 剩余天数 is the days from
today to the deadline's day (0 once that day has come; blank for a hazard closed, cancelled
or without a deadline), 是否逾期 is the API's `overdue` (not closed nor cancelled, and past the
deadline to the second), and 逾期天数 is 0 unless it is overdue, else the days since the
deadline's day and at least 1: a deadline passed earlier today is 1 day overdue (a started
day), not 0 next to 是否逾期 是. The hazard list (隐患清单) carries the same 逾期天数 beside its
是否逾期 (0 for a hazard closed, cancelled or not yet late).
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from flows.holders import Holding
from flows.ranking import RankingRow
from flows.registers import street_of
from flows.render import deadline_text
from flows.reporting import Report, ReportingRow, ordered_kinds
from flows.runtime import Runtime
from models.hazard import Hazard, RiskPoint
from models.register_queries import is_open_row

FORMATS = ("csv", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
BOM = "\ufeff"
XLSX_MAX_ROWS = 1_048_575  # Excel's 1,048,576 rows less the header
CSV_BATCH = 500  # rows per yielded chunk
FILE_CHUNK = 256 * 1024
TIME_FORMAT = "%Y-%m-%d %H:%M"
XLSX_TIME_FORMAT = "yyyy-mm-dd hh:mm"
# A deadline that ends a day: its day's last second, shown as the notices write it.
XLSX_DAY_END_FORMAT = 'yyyy-mm-dd "24:00"'
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
YES, NO = "是", "否"
XLSX_MAX_CELL = 32_767  # Excel's limit on the characters of one cell
TRUNCATED = "…（已截断）"
# What XLSX cannot store: openpyxl's own list of control characters, and lone surrogates
# (they reach the file as character references no reader accepts).
XLSX_ILLEGAL = re.compile(f"{ILLEGAL_CHARACTERS_RE.pattern}|[\ud800-\udfff]")
REPLACEMENT = "\ufffd"



@dataclass(frozen=True)
class Deadline:
    """A deadline's cell: `at`, the bureau's wall clock (naive) to the minute, and `text`, as
    every deadline prints (that day's 24:00 for one that ends a day)."""

    at: datetime
    text: str

    @property
    def ends_a_day(self) -> bool:
        return self.text.endswith("24:00")


Cell = str | int | float | Decimal | datetime | date | Deadline | None


@dataclass(frozen=True)
class Column:
    header: str
    width: int = 14  # XLSX column width, in characters


@dataclass(frozen=True)
class Table:
    """One export: a sheet title (also the file name's stem), its columns and its rows (an
    iterator, consumed once while the file is written)."""

    title: str
    columns: Sequence[Column]
    rows: Iterable[Sequence[Cell]]
    # XLSX only: tables written after this one, each on its own sheet (信息报送考核's 明细);
    # a CSV file holds one table, so a route offers those on their own (`detail=true`).
    more: Sequence[Table] = ()


# -- writers ---------------------------------------------------------------------------------

def _csv_text(value: Cell) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, Deadline):
        return value.text
    if isinstance(value, datetime):
        return value.strftime(TIME_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_START):
        # The import takes one apostrophe off such a start (flows/tabular.py): a stored value
        # that begins with apostrophes already ('=…) gets one more, so it comes back as it was.
        return "'" + value
    return value


def csv_chunks(table: Table) -> Iterator[bytes]:
    """The table as UTF-8 CSV with a BOM, a few hundred rows per chunk."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    buf.write(BOM)
    writer.writerow([c.header for c in table.columns])
    pending = 0
    for row in table.rows:
        writer.writerow([_csv_text(v) for v in row])
        pending += 1
        if pending >= CSV_BATCH:
            yield _utf8(buf.getvalue())
            buf.seek(0)
            buf.truncate()
            pending = 0
    yield _utf8(buf.getvalue())


def _utf8(text: str) -> bytes:
    # A lone surrogate has no UTF-8 form; it becomes "?" rather than end the file mid-row.
    return text.encode("utf-8", errors="replace")


def _new_sheet(wb: Workbook, table: Table, n: int) -> Any:
    ws = wb.create_sheet(table.title if n == 1 else f"{table.title}({n})")
    for i, col in enumerate(table.columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width
    ws.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for col in table.columns:
        cell = WriteOnlyCell(ws, value=col.header)
        cell.font = bold
        header.append(cell)
    ws.append(header)
    return ws


def xlsx_text(value: str) -> str:
    """Text as an XLSX cell can hold it: characters XLSX cannot store replaced with U+FFFD,
    at most XLSX_MAX_CELL characters, a cut text ending with TRUNCATED."""
    text = XLSX_ILLEGAL.sub(REPLACEMENT, value)
    if len(text) > XLSX_MAX_CELL:
        text = text[:XLSX_MAX_CELL - len(TRUNCATED)] + TRUNCATED
    return text


def _xlsx_cell(ws: Any, value: Cell) -> Any:
    if isinstance(value, Deadline):
        if value.ends_a_day:
            cell = WriteOnlyCell(ws, value=value.at - timedelta(seconds=1))
            cell.number_format = XLSX_DAY_END_FORMAT
            return cell
        value = value.at
    if isinstance(value, datetime):
        cell = WriteOnlyCell(ws, value=value.replace(tzinfo=None))
        cell.number_format = XLSX_TIME_FORMAT
        return cell
    if isinstance(value, str):
        # Cleaned first: "\x01=..." must not become a formula once the \x01 is gone.
        value = xlsx_text(value)
    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(ws, value=value)
        cell.data_type = "s"  # openpyxl would otherwise store it as a formula
        return cell
    return value


def write_xlsx(table: Table, out: Any, *, max_rows: int = XLSX_MAX_ROWS) -> int:
    """Write the table (and those in its `more`, a sheet each after it) as an XLSX workbook to
    the binary file `out`; returns the row count of all."""
    wb = Workbook(write_only=True)
    count = 0
    try:
        for each in (table, *table.more):
            sheets = 1
            in_sheet = 0
            ws = _new_sheet(wb, each, sheets)
            for row in each.rows:
                if in_sheet >= max_rows:
                    sheets += 1
                    ws = _new_sheet(wb, each, sheets)
                    in_sheet = 0
                ws.append([_xlsx_cell(ws, v) for v in row])
                in_sheet += 1
                count += 1
    except BaseException:
        _discard(wb)
        raise
    wb.save(out)
    return count


def _discard(wb: Workbook) -> None:
    """Close and delete the sheets' temporary files of a workbook that will not be saved:
    openpyxl (write-only) keeps them until the process exits, and a sheet left open later
    writes to a closed file when collected."""
    for ws in wb.worksheets:
        writer = getattr(ws, "_writer", None)  # openpyxl's, set once a row is appended
        if writer is None:
            continue
        with suppress(Exception):
            ws.close()
        with suppress(OSError, ValueError):
            writer.cleanup()


def xlsx_chunks(table: Table) -> Iterator[bytes]:
    """The workbook is built in a temporary file (openpyxl's write-only mode keeps rows out of
    memory), then streamed out; the file is gone when the response ends."""
    with tempfile.TemporaryFile() as tmp:
        write_xlsx(table, tmp)
        tmp.seek(0)
        while chunk := tmp.read(FILE_CHUNK):
            yield chunk


def export_chunks(fmt: str, table: Table) -> Iterator[bytes]:
    """The export's bytes, the first chunk already made (see the module's docstring): call
    it before answering, so an error in the query or the rows raises here, not mid-body."""
    if fmt == "csv":
        chunks = csv_chunks(table)
    elif fmt == "xlsx":
        chunks = xlsx_chunks(table)
    else:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    first = next(chunks)  # both writers yield at least once (the header, or the whole file)
    return chain((first,), chunks)


# -- register cells ----------------------------------------------------------------------------

# The five in-place elements (五落实) of a rectification plan, read from the plan step's
# outputs (Hazard.plan) under the first key present of each list.
FIVE_ELEMENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("measures", "措施", ("measures", "措施", "整改措施")),
    ("funds", "资金", ("funds", "资金", "整改资金")),
    ("deadline", "时限", ("deadline", "时限", "整改时限")),
    ("responsible", "责任", ("responsible", "责任", "责任人")),
    ("contingency", "预案", ("contingency", "预案", "应急预案")),
)


def plan_elements(plan: dict[str, Any] | None) -> dict[str, str | None]:
    """措施/资金/时限/责任/预案 of a plan, as text (None where the plan has not said). A number
    (资金, 万元) is a plain decimal to 6 places (one 分): no exponent (1e-05, 1e+308) and no
    float noise (0.1 + 0.2 is 0.3)."""
    plan = plan or {}
    out: dict[str, str | None] = {}
    for key, _label, aliases in FIVE_ELEMENTS:
        value = next((plan[a] for a in aliases if plan.get(a) not in (None, "")), None)
        if isinstance(value, float):
            text = f"{value:.6f}".rstrip("0").rstrip(".")
            out[key] = "0" if text in ("", "-0") else text
        else:
            out[key] = None if value is None else str(value)
    return out


def funds_cell(plan: dict[str, Any] | None, text: str | None) -> Decimal | str | None:
    """资金 as the export's cell: a number the plan recorded as a number is a number (Decimal of
    plan_elements' text, exact and without an exponent), so a spreadsheet sums the column; a
    plan that wrote it in words (2万元) keeps its text."""
    plan = plan or {}
    _, _, aliases = FIVE_ELEMENTS[1]
    raw = next((plan[a] for a in aliases if plan.get(a) not in (None, "")), None)
    if text is None or isinstance(raw, bool) or not isinstance(raw, int | float):
        return text
    return Decimal(text)


def _in_zone(value: datetime, tz: ZoneInfo) -> datetime:
    """`value` in `tz`; as stored (UTC) when that would leave datetime's range (a time within
    hours of year 1 or 9999 that an older row may hold), so such a row still exports."""
    try:
        return value.astimezone(tz)
    except OverflowError:
        return value


def local(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    """Naive local time to the minute (what a spreadsheet cell shows)."""
    if value is None:
        return None
    return _in_zone(value, tz).replace(tzinfo=None, second=0, microsecond=0)


def deadline(value: datetime | None, tz: ZoneInfo) -> Deadline | None:
    """A deadline's cell: its text as the API's `due_at_local` and the documents write it
    (the end of a day is that day's 24:00) and its time (see the module docstring)."""
    if value is None:
        return None
    at = _in_zone(value, tz)
    naive = at.replace(tzinfo=None, second=0, microsecond=0)
    try:
        return Deadline(naive, deadline_text(at, TIME_FORMAT))
    except OverflowError:  # 24:00 of the day before datetime's first day: as stored
        return Deadline(naive, at.strftime(TIME_FORMAT))


def hazard_days_left(h: Hazard, now: datetime, tz: ZoneInfo) -> int | None:
    """Days left on an open hazard's deadline; none once it is closed (销号) or cancelled
    (已撤销): neither goes on counting down (models.register_queries.is_open_row)."""
    return days_left(h.due_at, now, tz) if is_open_row(h) else None


def overdue_days(h: Hazard, now: datetime, tz: ZoneInfo) -> int | None:
    """逾期天数 of the rectification list: 0 unless the hazard is overdue (`is_overdue`, the
    API's `overdue`), else the calendar days past its deadline's day (-days_left), and at
    least 1: the day the deadline passed is a started day overdue. None when the hazard has
    no days left (closed, cancelled, or without a deadline)."""
    if not is_open_row(h):
        return None
    return late_days(h.due_at, now, tz)


def late_days(due_at: datetime | None, now: datetime, tz: ZoneInfo) -> int | None:
    """逾期天数 of any deadline: 0 before it passes, then the calendar days past its last day,
    at least 1 (the day it passed is a started day overdue); None without a deadline. The
    registers' rule; a run's steps take it from a day late on (flows/lateness.py), so the run
    page of a hazard and its 整改清单 row say the same number of days."""
    left = days_left(due_at, now, tz)
    if left is None or due_at is None:
        return None
    return max(-left, 1) if due_at < now else 0


def days_left(due_at: datetime | None, now: datetime, tz: ZoneInfo) -> int | None:
    """Calendar days from today to the deadline's day, in local time: 0 = due today,
    negative = that many days overdue."""
    if due_at is None:
        return None
    # A deadline at local midnight ends the day before (24:00): that day is its last.
    due = _in_zone(due_at, tz)
    try:
        last_day = (due - timedelta(microseconds=1)).date()
    except OverflowError:  # datetime.min itself: nothing earlier to end on
        last_day = due.date()
    return (last_day - now.astimezone(tz).date()).days


def is_overdue(h: Hazard, now: datetime) -> bool:
    return is_open_row(h) and h.due_at is not None and h.due_at < now


class Names:
    """Unit, street and person names from the org chart, memoised per export."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._streets: dict[str, str | None] = {}

    def unit(self, unit_id: str | None) -> str | None:
        return None if unit_id is None else self.rt.org.unit_name(unit_id)

    def person(self, person_id: str | None) -> str | None:
        return None if person_id is None else self.rt.org.person_name(person_id)

    def street_of(self, unit_id: str) -> str | None:
        if unit_id not in self._streets:
            self._streets[unit_id] = (street_of(self.rt, unit_id)
                                      if unit_id in self.rt.org.units else None)
        return self._streets[unit_id]


HAZARD_COLUMNS = (
    Column("隐患编号", 16), Column("单位", 14), Column("街道", 12), Column("来源", 10),
    Column("等级", 8), Column("类别", 12), Column("地点", 30), Column("描述", 40),
    Column("涉及企业", 20), Column("发现时间", 17), Column("发现人", 10),
    Column("整改期限", 17), Column("原整改期限", 17), Column("状态", 10),
    Column("是否逾期", 9), Column("逾期天数", 9), Column("销号时间", 17),
)


def hazard_rows(rt: Runtime, hazards: Iterable[Hazard], now: datetime) -> Iterator[list[Cell]]:
    names = Names(rt)
    tz = rt.tz
    for h in hazards:
        yield [
            h.code, names.unit(h.unit_id), names.unit(h.street_id), h.source, h.grade,
            h.category, h.location, h.description, h.enterprise, local(h.found_at, tz),
            names.person(h.found_by), deadline(h.due_at, tz),
            # Blank unless an extension moved the deadline: the reader sees which were extended.
            deadline(h.original_due_at, tz), h.status,
            # How late, by the 整改清单's rule, so the list sorts by it without arithmetic.
            YES if is_overdue(h, now) else NO, overdue_days(h, now, tz) or 0,
            local(h.closed_at, tz),
        ]


RECTIFICATION_COLUMNS = (
    Column("隐患编号", 16), Column("单位", 14), Column("街道", 12), Column("等级", 8),
    Column("地点", 30), Column("描述", 40), Column("整改措施", 30), Column("整改资金", 12),
    Column("整改时限", 14), Column("整改责任人", 12), Column("应急预案", 24),
    Column("整改期限", 17), Column("剩余天数", 9), Column("逾期天数", 9), Column("是否逾期", 9),
    Column("状态", 10), Column("当前环节", 14), Column("当前办理人", 16), Column("督办级别", 20),
)
# Hazards whose holders are looked up at once (flows/holders.py: two queries per lookup).
HOLDERS_CHUNK = 500


def rectification_rows(rt: Runtime, hazards: Iterable[Hazard], now: datetime,
                       holders: Callable[[list[int]], Mapping[int, Holding]] | None = None,
                       ) -> Iterator[list[Cell]]:
    """The 整改清单's rows; `holders` (run ids -> who has each now) fills 当前环节,
    当前办理人 and 督办级别, looked up for HOLDERS_CHUNK hazards at a time as the export streams."""
    names = Names(rt)
    tz = rt.tz
    chunk: list[Hazard] = []
    for h in hazards:
        chunk.append(h)
        if len(chunk) >= HOLDERS_CHUNK:
            yield from _rectification_chunk(names, chunk, now, tz, holders)
            chunk = []
    yield from _rectification_chunk(names, chunk, now, tz, holders)


def _rectification_chunk(names: Names, hazards: list[Hazard], now: datetime, tz: ZoneInfo,
                         holders: Callable[[list[int]], Mapping[int, Holding]] | None,
                         ) -> Iterator[list[Cell]]:
    held = holders([h.run_id for h in hazards]) if holders and hazards else {}
    for h in hazards:
        plan = plan_elements(h.plan)
        left = hazard_days_left(h, now, tz)
        late = overdue_days(h, now, tz)
        now_with = held.get(h.run_id)
        yield [
            h.code, names.unit(h.unit_id), names.unit(h.street_id), h.grade, h.location,
            h.description, plan["measures"], funds_cell(h.plan, plan["funds"]), plan["deadline"],
            plan["responsible"], plan["contingency"], deadline(h.due_at, tz),
            None if left is None else max(left, 0), 0 if late is None else late,
            YES if is_overdue(h, now) else NO, h.status,
            now_with.step if now_with else None,
            "、".join(now_with.names) if now_with else None,
            now_with.escalation if now_with else None,
        ]


RISK_COLUMNS = (
    Column("风险点编号", 16), Column("单位", 14), Column("街道", 12), Column("名称", 24),
    Column("类别", 12), Column("地点", 30), Column("风险等级", 9), Column("管控措施", 40),
    Column("责任人", 10), Column("更新时间", 17),
)


def risk_rows(rt: Runtime, risks: Iterable[RiskPoint]) -> Iterator[list[Cell]]:
    names = Names(rt)
    for r in risks:
        yield [
            r.code, names.unit(r.unit_id), names.unit(names.street_of(r.unit_id)), r.name,
            r.category, r.location, r.level, r.controls, names.person(r.responsible),
            local(r.updated_at, rt.tz),
        ]


# 月份 and 口径 on every row (last, so the figures keep their places): a file passed on or
# pasted into a report still says which month it is and whether these are the published
# (通报) figures or a live recount, not only its file name.
RANKING_COLUMNS = (
    Column("排名", 6), Column("单位", 14), Column("发现隐患数", 11), Column("当月销号数", 11),
    Column("当月发现且销号数", 16), Column("销号率(%)", 10), Column("月末逾期未销号数", 16),
    Column("平均销号天数", 12), Column("按期销号数", 11), Column("按期销号率(%)", 13),
    Column("月份", 9), Column("口径", 30),
)


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


def ranking_rows(rows: Iterable[RankingRow], month: str = "", basis: str = ""
                 ) -> Iterator[list[Cell]]:
    """`basis`: 已通报（when, by whom） for a published month's figures, else a live count."""
    for r in rows:
        yield [r.rank, r.unit_name, r.found, r.closed, r.closed_of_found,
               _percent(r.closure_rate), r.overdue, r.mean_days_to_close, r.on_time,
               _percent(r.on_time_rate), month, basis]


# 信息报送考核 (flows/reporting.py): a unit's row for all its reports (报告类别 全部), then one
# per kind it had due, so Excel's filter on 报告类别 gives one kind across units. 月份 and 口径
# on every row, as the ranking's.
REPORTING_COLUMNS = (
    Column("排名", 6), Column("单位", 14), Column("报告类别", 10), Column("应报数", 8),
    Column("按时报送数", 11), Column("迟报数", 8), Column("平均迟报(分钟)", 14),
    Column("最长迟报(分钟)", 14), Column("漏报数", 8), Column("按时报送率(%)", 13),
    Column("待核实", 8), Column("月份", 9), Column("口径", 30),
)
ALL_KINDS = "全部"


def reporting_rows(rows: Iterable[ReportingRow], month: str = "", basis: str = "",
                   total: ReportingRow | None = None) -> Iterator[list[Cell]]:
    """Each unit's rows, then (given `total`) the 合计 rows the page ends with: the total
    also counts the reports of units above the level (a run at the district), which no unit's
    row holds, so without it the file's figures would not add up to the page's."""
    for r in rows:
        yield from _reporting_unit_rows(r, r.rank, r.unit_name, month, basis)
    if total is not None:
        yield from _reporting_unit_rows(total, None, f"合计（{total.unit_name}）", month, basis)


def _reporting_unit_rows(r: ReportingRow, rank: int | None, name: str, month: str,
                         basis: str) -> Iterator[list[Cell]]:
    """A unit's (or the total's) rows; 待核实 is the unit's, on its 全部 row only."""
    for kind, f in [(ALL_KINDS, r.all), *ordered_kinds(r)]:
        yield [rank, name, kind, f.due, f.on_time, f.late, f.mean_late_minutes,
               f.max_late_minutes, f.missed, _percent(f.on_time_rate),
               r.unsure if kind == ALL_KINDS else None, month, basis]


# 信息报送考核's 明细: each late or missed report (and each 待核实, never counted), as the page
# lists them, with its run and task, so a manager hands on the "why" with the figures.
REPORTING_DETAIL_TITLE = "明细"
REPORTING_DETAIL_COLUMNS = (
    Column("情况", 8), Column("报告类别", 10), Column("报告", 22), Column("事件所在单位", 14),
    Column("计入单位", 14), Column("报送时限", 17), Column("完成/撤销时间", 17),
    Column("迟报(分钟)", 11), Column("任务状态", 10), Column("是否派发", 9),
    Column("说明", 36), Column("事件", 36), Column("事件编号", 9), Column("任务编号", 9),
    Column("月份", 9),
)
NOT_HANDED_OUT_ZH = "未派发"


def _detail_note(r: Report) -> str:
    if r.depends_on is not None:
        return f"是否应报取决于“{r.depends_on}”，该步骤未完成，待核实"
    if not r.handed_out:
        waiting = f"，等待“{r.held_up_by}”" if r.held_up_by else ""
        return f"时限自接报起算，已过时限仍未派发{waiting}"
    return ""


def reporting_detail_rows(rt: Runtime, reports: Iterable[Report], month: str = "",
                          status_zh: Mapping[str, str] | None = None) -> Iterator[list[Cell]]:
    """One row per report: the late and missed ones, then the 待核实 (pass them in that
    order); times in the bureau's zone, the deadline as deadlines print (24:00)."""
    names = status_zh or {}
    for r in reports:
        yield [r.outcome, r.kind, r.title, rt.org.unit_name(r.unit_id),
               rt.org.unit_name(r.owner_id) if r.owner_id else "（层级以上，仅计入合计）",
               deadline(r.due_at, rt.tz), local(r.done_at, rt.tz),
               None if r.late_seconds is None else round(r.late_seconds / 60, 1),
               names.get(r.status, r.status) if r.handed_out else NOT_HANDED_OUT_ZH,
               YES if r.handed_out else NO, _detail_note(r), r.run_title, r.run_id,
               r.step_id, month]
