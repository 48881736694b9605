"""A deadline that ends a day (stored as the next day's 00:00 local) in the register exports
(flows/exports.py): the CSV and the XLSX write it as that day's 24:00, the way the API's
`due_at_local`, the documents and the messages print it (flows/render.py deadline_text), never
as the next day's 00:00, one day later than the rule; a found time at midnight is not a
deadline and keeps its 00:00. What is printed reads back through the register import to the
same instant (flows/tabular.py, flows/found_times.py), and a whole exported register imports
back with the same found times. The shipped playbooks on the demo district."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from factories import seed_hazards
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlmodel import select

from api.auth import make_token
from api.main import create_app
from flows import exports
from flows.found_times import BadCell, Times
from flows.hazard_import import import_hazards
from flows.runtime import Runtime
from flows.tabular import read_table
from models.db import read_session
from models.hazard import Hazard
from models.run import Run

SH = ZoneInfo("Asia/Shanghai")
MANAGER = "sun-li"  # 孙丽, the bureau's manager: exports the district's registers
HAZARD_EXPORT = "/api/hazards/export"
RECTIFICATION_EXPORT = "/api/registers/rectification/export"


def L(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


# Today is 2026-03-02 09:00 (tests/conftest.py START).
ENDS_A_DAY = {  # found at midnight, due at the end of 28 February, first due at 19 February's
    "code": "YH-END-OF-DAY", "found_at": L(2, 1), "due_at": L(3, 1),
    "original_due_at": L(2, 20), "location": "六和社区和平路18号"}
IN_THE_DAY = {  # a deadline within a day (30 days from a start at 09:30)
    "code": "YH-IN-THE-DAY", "found_at": L(3, 1, 9, 30), "due_at": L(3, 31, 9, 30),
    "location": "六和社区和平路20号"}

HALF_PAST = {  # due half an hour after ENDS_A_DAY's deadline
    "code": "YH-HALF-PAST", "found_at": L(2, 15, 10), "due_at": L(3, 1, 0, 30),
    "location": "六和社区和平路22号"}
SEEDED = (ENDS_A_DAY, IN_THE_DAY, HALF_PAST)


@pytest.fixture
def client(demo: Runtime) -> Iterator[TestClient]:
    seed_hazards(demo, [{"unit": "liuhe", "street": "pingshan-street", **h}
                        for h in SEEDED], playbook_id="hazard-3030")
    app = create_app(demo, background=False, prefect=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def download(client: TestClient, rt: Runtime, path: str, fmt: str) -> bytes:
    headers = {"Authorization": f"Bearer {make_token(MANAGER, rt.settings.signing_secret())}"}
    r = client.get(path, params={"format": fmt, "sort": "found_at"}, headers=headers)
    assert r.status_code == 200, r.text
    return r.content


def shown(cell: Any) -> Any:
    """An XLSX cell as a spreadsheet shows it: a date cell through its number format (the two
    the exports write), anything else as it is."""
    if not isinstance(cell.value, datetime):
        return cell.value
    if cell.number_format == exports.XLSX_DAY_END_FORMAT:
        return cell.value.strftime("%Y-%m-%d") + " 24:00"
    assert cell.number_format == exports.XLSX_TIME_FORMAT, cell.number_format
    return cell.value.strftime("%Y-%m-%d %H:%M")


def by_code(fmt: str, data: bytes) -> dict[str, dict[str, Any]]:
    """Each row of an export as {header: cell}, by 隐患编号; XLSX cells as a reader sees them."""
    if fmt == "csv":
        rows: list[list[Any]] = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    else:
        ws = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
        rows = [[shown(c) for c in r] for r in ws.iter_rows()]
    header = rows[0]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}


def api_due_at_local(client: TestClient, rt: Runtime, code: str) -> str:
    headers = {"Authorization": f"Bearer {make_token(MANAGER, rt.settings.signing_secret())}"}
    listed = client.get("/api/hazards", headers=headers).json()["data"]
    return next(h["due_at_local"] for h in listed if h["code"] == code)  # type: ignore[no-any-return]


# --- what the reader sees ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_a_deadline_that_ends_a_day_is_written_as_that_days_24_00(
    client: TestClient, demo: Runtime, fmt: str
) -> None:
    rows = by_code(fmt, download(client, demo, HAZARD_EXPORT, fmt))
    ends, within = rows["YH-END-OF-DAY"], rows["YH-IN-THE-DAY"]
    assert (ends["整改期限"], ends["原整改期限"]) == ("2026-02-28 24:00", "2026-02-19 24:00")
    # Never extended: no original deadline (blank), not the deadline again.
    assert within["整改期限"] == "2026-03-31 09:30" and within["原整改期限"] in ("", None)
    # As the API (and every document and message) prints the same deadline.
    assert ends["整改期限"] == api_due_at_local(client, demo, "YH-END-OF-DAY")
    assert within["整改期限"] == api_due_at_local(client, demo, "YH-IN-THE-DAY")
    assert ends["是否逾期"] == "是"
    # A found time at midnight starts that day: it is not a deadline, nothing moves.
    found = ends["发现时间"]
    assert found == "2026-02-01 00:00"


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_the_rectification_list_counts_overdue_days_from_the_day_it_prints(
    client: TestClient, demo: Runtime, fmt: str
) -> None:
    rows = by_code(fmt, download(client, demo, RECTIFICATION_EXPORT, fmt))
    ends = rows["YH-END-OF-DAY"]
    # Due at the end of 28 February; today is 2 March: 2 days late, counted from the day shown.
    assert ends["整改期限"] == "2026-02-28 24:00"
    assert [str(ends[k]) for k in ("剩余天数", "逾期天数", "是否逾期")] == ["0", "2", "是"]
    assert rows["YH-IN-THE-DAY"]["整改期限"] == "2026-03-31 09:30"


def test_xlsx_deadline_columns_are_date_cells_in_every_row(client: TestClient,
                                                         demo: Runtime) -> None:
    """Like 发现时间, the deadlines are date cells a manager sorts, filters by day and counts
    days on: one that ends a day holds that day's last second, shown as its 24:00, so it files
    under its own day and sorts before the next day's 00:30."""
    ws = openpyxl.load_workbook(io.BytesIO(download(client, demo, HAZARD_EXPORT,
                                                    "xlsx"))).worksheets[0]
    header = [c.value for c in ws[1]]
    cells = {row[0].value: row for row in ws.iter_rows(min_row=2)}
    for row in cells.values():
        assert row[header.index("整改期限")].is_date and row[header.index("发现时间")].is_date
        original = row[header.index("原整改期限")]  # blank unless extended
        assert original.value is None or original.is_date
    ends = cells["YH-END-OF-DAY"][header.index("整改期限")]
    assert ends.value == datetime(2026, 2, 28, 23, 59, 59)
    assert ends.number_format == 'yyyy-mm-dd "24:00"'
    within = cells["YH-IN-THE-DAY"][header.index("整改期限")]
    assert (within.value, within.number_format) == (datetime(2026, 3, 31, 9, 30),
                                                    "yyyy-mm-dd hh:mm")
    # Sorted as the cells' values, the deadlines come in time order (2026-02-28 24:00 before
    # 2026-03-01 00:30, as the instants).
    values = {code: row[header.index("整改期限")].value for code, row in cells.items()}
    assert sorted(values, key=values.__getitem__) == [
        h["code"] for h in sorted(SEEDED, key=lambda h: h["due_at"])]


def test_a_deadline_at_the_first_instant_datetime_holds_still_exports() -> None:
    first = datetime(1, 1, 1, tzinfo=UTC)  # 24:00 of a day before year 1 has no date
    assert exports.deadline(first, ZoneInfo("UTC")).text.endswith(  # type: ignore[union-attr]
        "1-01-01 00:00")
    assert exports.deadline(datetime(1, 1, 2, tzinfo=UTC),  # type: ignore[union-attr]
                            ZoneInfo("UTC")).text.endswith("1-01-01 24:00")
    assert exports.deadline(None, SH) is None


# --- reading it back --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_every_exported_time_reads_back_to_the_same_instant(
    client: TestClient, demo: Runtime, fmt: str
) -> None:
    data = download(client, demo, HAZARD_EXPORT, fmt)
    table = read_table(data, f"隐患清单.{fmt}")
    # The import's reader of times; "now" late enough that no deadline here is in its future.
    times = Times(demo.tz, datetime(2027, 1, 1, tzinfo=UTC))
    cells = {row[0]: dict(zip(table.header, row, strict=False)) for _n, row in table.rows}
    for stored in SEEDED:
        row = cells[stored["code"]]
        assert times.parse(row["发现时间"]) == stored["found_at"]
        assert times.parse(row["整改期限"]) == stored["due_at"]
        original = stored.get("original_due_at")
        if original is None:  # never extended: left blank
            assert row["原整改期限"] in ("", None)
        else:
            assert times.parse(row["原整改期限"]) == original
    # An XLSX deadline that ends a day (its last second in a cell shown as its 24:00) is read
    # as the cell shows it, the text the CSV holds: not 23:59:59, a second before the rule.
    ends = cells["YH-END-OF-DAY"]
    assert (ends["整改期限"], ends["原整改期限"]) == ("2026-02-28 24:00", "2026-02-19 24:00")


@pytest.mark.parametrize("text", ["2026-02-28 24:00", "2026-02-28T24:00:00+08:00",
                                  "2026/2/28 24:00", "2026年2月28日 24时00分",
                                  "2026-02-28 24:00:00"])
def test_24_00_is_read_as_the_next_days_midnight(text: str) -> None:
    assert Times(SH, L(3, 2)).parse(text) == L(3, 1)


@pytest.mark.parametrize("text", ["2026-02-28 24:30", "2026-02-30 24:00", "2026-02-28 25:00"])
def test_24_00_is_the_only_hour_past_23(text: str) -> None:
    with pytest.raises(BadCell) as refused:
        Times(SH, L(3, 2)).parse(text)
    assert refused.value.zh == f"'{text}' 不是有效的日期"


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_an_exported_register_imports_back_with_the_same_found_times(
    client: TestClient, demo: Runtime, fmt: str
) -> None:
    data = download(client, demo, HAZARD_EXPORT, fmt)
    with demo.db.begin() as conn:
        conn.execute(delete(Hazard))
        conn.execute(delete(Run))
    result = import_hazards(demo, data=data, filename=f"隐患清单.{fmt}", actor=MANAGER)
    assert result.rows == len(SEEDED)
    assert {"整改期限", "原整改期限"} <= set(result.ignored_columns)  # a new run sets its own
    with read_session(demo.db) as session:
        found = {h.code: h.found_at for h in session.exec(select(Hazard)).all()}
    assert found == {h["code"]: h["found_at"] for h in SEEDED}
