"""What a cell may hold in an export (flows/exports.py), written to real files and read back
with openpyxl and the csv module: characters XLSX cannot store, Excel's 32,767-character
cell limit, times near the ends of datetime's range, and an export that fails before its
first byte rather than after."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from flows import exports
from flows.ranking import RankingRow
from models.errors import InvalidInput

SH = ZoneInfo("Asia/Shanghai")
COLUMNS = (exports.Column("名称"), exports.Column("说明"))


def xlsx_rows(table: exports.Table, tmp_path: Path) -> list[tuple[Any, ...]]:
    out = tmp_path / "out.xlsx"
    with out.open("wb") as f:
        exports.write_xlsx(table, f)
    wb = openpyxl.load_workbook(out)
    return [r for ws in wb.worksheets for r in ws.iter_rows(values_only=True)]


@pytest.mark.parametrize("char", [chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32))])
def test_every_control_character_xlsx_refuses_is_replaced(char: str, tmp_path: Path) -> None:
    table = exports.Table("t", COLUMNS, [[f"前{char}后", char]])
    assert xlsx_rows(table, tmp_path)[1] == ("前\ufffd后", "\ufffd")


def test_tab_and_newlines_are_kept_in_xlsx(tmp_path: Path) -> None:
    table = exports.Table("t", COLUMNS, [["一\t二", "三\n四"]])
    assert xlsx_rows(table, tmp_path)[1] == ("一\t二", "三\n四")


def test_a_lone_surrogate_neither_corrupts_the_xlsx_nor_stops_the_csv(tmp_path: Path) -> None:
    assert xlsx_rows(exports.Table("t", COLUMNS, [["甲\ud800乙", None]]), tmp_path)[1] == (
        "甲\ufffd乙", None)
    body = b"".join(exports.csv_chunks(exports.Table("t", COLUMNS, [["甲\ud800乙", "丙"]])))
    assert list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))[1] == ["甲?乙", "丙"]


@pytest.mark.parametrize("length,cut", [(32_767, False), (32_768, True), (100_000, True)])
def test_a_cell_is_capped_at_excels_limit_and_the_cut_is_marked(length: int, cut: bool,
                                                                tmp_path: Path) -> None:
    text = "".join(chr(0x4E00 + i % 500) for i in range(length))
    got = xlsx_rows(exports.Table("t", COLUMNS, [[text, "短"]]), tmp_path)[1]
    assert len(got[0]) == min(length, exports.XLSX_MAX_CELL) and got[1] == "短"
    if cut:
        assert got[0].endswith("…（已截断）")
        assert got[0][:-len("…（已截断）")] == text[:exports.XLSX_MAX_CELL - len("…（已截断）")]
    else:
        assert got[0] == text


def test_ranking_xlsx_cleans_unit_names(tmp_path: Path) -> None:
    row = RankingRow(unit_id="s1", unit_name="一街道\x1b", found=1, rank=1)
    table = exports.Table("综合评价月排名2026-03", exports.RANKING_COLUMNS,
                          exports.ranking_rows([row]))
    assert xlsx_rows(table, tmp_path)[1][:3] == (1, "一街道\ufffd", 1)


def test_times_at_the_ends_of_datetimes_range_still_export() -> None:
    # Shanghai is ahead of UTC: the last hours of year 9999 have no local time there.
    late = datetime(9999, 12, 31, 20, tzinfo=UTC)
    assert exports.local(late, SH) == datetime(9999, 12, 31, 20)
    assert exports.days_left(late, datetime(2026, 3, 2, tzinfo=UTC), SH) is not None
    early = datetime(1, 1, 1, tzinfo=UTC)
    assert exports.local(early, ZoneInfo("America/New_York")) == datetime(1, 1, 1)
    assert exports.days_left(early, datetime(2026, 3, 2, tzinfo=UTC), SH) is not None


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_an_export_fails_before_its_first_byte_not_after(fmt: str) -> None:
    """The route calls export_chunks before answering: a query refused (or failing) there
    is an error response, not a 200 with a body cut short."""
    def rows() -> Iterator[list[Any]]:
        raise InvalidInput("found_since", "时间超出范围 / out of range")
        yield []  # a generator, as the register readers are

    with pytest.raises(InvalidInput):
        exports.export_chunks(fmt, exports.Table("t", COLUMNS, rows()))


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_an_export_of_no_rows_still_has_its_header(fmt: str) -> None:
    body = b"".join(exports.export_chunks(fmt, exports.Table("t", COLUMNS, iter(()))))
    if fmt == "csv":
        assert body.decode("utf-8-sig") == "名称,说明\r\n"
    else:
        wb = openpyxl.load_workbook(io.BytesIO(body))
        assert [r for r in wb.worksheets[0].iter_rows(values_only=True)] == [("名称", "说明")]
