"""Register files as bureaus send them that flows/tabular.py used to misread: a hidden sheet
first in the workbook, a title row above the header, tab- and semicolon-separated text, a
correctly quoted multi-line cell, zero-width characters and a second BOM, a column with data
but no header, and a CSV exported by flows/exports.py (its apostrophe guard) read back. Every
file is built here with csv, openpyxl and str.encode."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from factories import ENGINE_PLAYBOOKS
from openpyxl import Workbook
from sqlmodel import select

from flows import exports
from flows.hazard_import import HAZARD_COLUMNS, import_hazards
from flows.import_checks import (
    ImportInvalid,
    ImportProblem,
    known_header,
    map_header,
    read_upload,
    reading_problems,
)
from flows.risk_import import RISK_COLUMNS
from flows.runtime import Runtime
from flows.tabular import RowUnreadable, Table, TableUnreadable, read_table
from models.db import read_session
from models.hazard import Hazard

IMPORT_DEMO = ENGINE_PLAYBOOKS.parent / "imports" / "import-demo.yaml"
HEADER = ["隐患编号", "单位编号", "隐患等级", "隐患地点", "隐患描述", "发现人"]
KNOWN = known_header(HAZARD_COLUMNS)


@pytest.fixture
def make_rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Callable[..., Runtime]:
    """conftest's make_rt (and so its `rt`), with import-demo among the playbooks."""
    folder = tmp_path / "playbooks"
    shutil.copytree(ENGINE_PLAYBOOKS, folder)
    shutil.copy(IMPORT_DEMO, folder)

    def factory(**kwargs: Any) -> Runtime:
        kwargs.setdefault("playbooks", folder)
        return make_rt(**kwargs)

    return factory


def hazards(rt: Runtime) -> list[Hazard]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Hazard).order_by(Hazard.run_id)).all())  # type: ignore[arg-type]


def imported(rt: Runtime, data: bytes, name: str) -> list[tuple[Any, ...]]:
    import_hazards(rt, data=data, filename=name, actor="d1-admin", playbook_id="import-demo")
    return [(h.code, h.unit_id, h.grade, h.location) for h in hazards(rt)]


def refused(rt: Runtime, data: bytes, name: str) -> list[str]:
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=data, filename=name, actor="d1-admin",
                       playbook_id="import-demo")
    assert hazards(rt) == []
    return [p.message for p in exc.value.problems]


def checked(data: bytes, name: str) -> tuple[Table, list[ImportProblem], list[str]]:
    """The file as the importers read it: the table, the header and reading problems, and
    the ignored columns."""
    table = read_upload(data, name, HAZARD_COLUMNS)
    problems: list[ImportProblem] = []
    header = map_header(table, HAZARD_COLUMNS, problems)
    return table, problems + reading_problems(table, header), header.ignored


def csv_bytes(rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding)


def book_bytes(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def workbook(*sheets: tuple[str, list[list[Any]], str], active: int = 0) -> bytes:
    """Sheets (title, rows, state) in this order, `active` the one Excel opens on."""
    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for title, rows, state in sheets:
        ws = book.create_sheet(title)
        for cells in rows:
            ws.append(cells)
        ws.sheet_state = state
    book.active = active
    return book_bytes(book)


# -- XLSX: which sheet -------------------------------------------------------------------------

DICTIONARY = [["单位编号", "隐患地点", "隐患等级"], ["c2", "字典示例", "重大"]]
REGISTER = [HEADER, ["ZW-1", "c1", "一般", "一社区1号楼", "", ""],
            ["ZW-2", "c1", "重大", "一社区2号楼", "", ""]]


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_a_hidden_sheet_first_in_the_workbook_is_not_read(rt: Runtime, state: str) -> None:
    data = workbook(("字典", DICTIONARY, state), ("隐患清单", REGISTER, "visible"), active=1)
    table = read_table(data, "清单.xlsx")
    assert (table.sheet, table.header, [n for n, _ in table.rows]) == ("隐患清单", HEADER, [2, 3])
    assert imported(rt, data, "清单.xlsx") == [("ZW-1", "c1", "一般", "一社区1号楼"),
                                              ("ZW-2", "c1", "重大", "一社区2号楼")]


def test_of_several_visible_sheets_the_one_with_the_register_header_is_read() -> None:
    notes = [["填表说明"], ["1. 隐患等级填写：一般 / 重大"], ["2. 单位编号见组织架构"]]
    # Excel opens on 说明; the register is the second sheet.
    data = workbook(("说明", notes, "visible"), ("隐患清单", REGISTER, "visible"))
    assert read_table(data, "清单.xlsx", KNOWN).sheet == "隐患清单"
    # Two sheets that both look like registers (a visible 字典, a sheet per street): reading
    # one would drop the other's rows unseen, whichever is open.
    for active in (0, 1):
        data = workbook(("字典", DICTIONARY, "visible"), ("隐患清单", REGISTER, "visible"),
                        active=active)
        with pytest.raises(TableUnreadable, match="工作簿中有多个清单工作表（“字典”、“隐患清单”）"):
            read_table(data, "清单.xlsx", KNOWN)
    data = workbook(("11月", REGISTER, "visible"), ("12月", REGISTER, "visible"),
                    ("统计", [["合计", "2"]], "visible"), active=2)
    with pytest.raises(TableUnreadable, match="“11月”、“12月”"):
        read_table(data, "清单.xlsx", KNOWN)
    # An empty template beside the list with data is no register.
    template = [HEADER + ["整改责任人"]]
    data = workbook(("导入模板", template, "visible"), ("隐患清单", REGISTER, "visible"))
    assert read_table(data, "清单.xlsx", KNOWN).sheet == "隐患清单"
    # ... and with nothing known, the active sheet, unless it is empty.
    other = [["甲", "乙"], ["1", "2"]]
    data = workbook(("一", other, "visible"), ("二", other, "visible"), active=1)
    assert read_table(data, "清单.xlsx", KNOWN).sheet == "二"
    data = workbook(("一", other, "visible"), ("二", [], "visible"), active=1)
    assert read_table(data, "清单.xlsx", KNOWN).sheet == "一"


def test_a_header_problem_names_the_sheet_read(rt: Runtime) -> None:
    rows = [["隐患编号", "单位编号", "地址"], ["ZW-1", "c1", "一社区"]]
    data = workbook(("字典", DICTIONARY, "hidden"), ("隐患清单", rows, "visible"), active=1)
    [message] = refused(rt, data, "清单.xlsx")
    assert message.startswith("工作表“隐患清单”第 1 行 隐患地点: 缺少必填列“隐患地点”")
    assert "/ sheet '隐患清单' row 1 隐患地点 (location): missing required column" in message


def test_a_workbook_with_no_visible_sheet_with_data_is_an_empty_file(rt: Runtime) -> None:
    data = workbook(("字典", DICTIONARY, "hidden"), ("隐患清单", [], "visible"), active=1)
    [message] = refused(rt, data, "清单.xlsx")
    assert "文件为空" in message and "the file is empty" in message


# -- a title row above the header --------------------------------------------------------------

TITLE = "坪山区2026年11月隐患排查清单"


def test_a_title_row_above_the_csv_header_is_skipped(rt: Runtime) -> None:
    rows = [[TITLE] + [""] * 5, HEADER, ["ZW-1", "c1", "一般", "一社区1号楼", "", ""],
            ["ZW-2", "c1", "特大", "一社区2号楼", "", ""]]
    table, problems, _ = checked(csv_bytes(rows), "清单.csv")
    assert (table.header_row, table.header, [n for n, _ in table.rows]) == (2, HEADER, [3, 4])
    assert problems == []
    # Row numbers reported are the file's own.
    [message] = refused(rt, csv_bytes(rows), "清单.csv")
    assert message.startswith("第 4 行 隐患等级: '特大' 不是有效值")
    rows[3][2] = "重大"
    assert [h[0] for h in imported(rt, csv_bytes(rows), "清单.csv")] == ["ZW-1", "ZW-2"]


def test_a_merged_title_row_above_the_xlsx_header_is_skipped(rt: Runtime) -> None:
    book = Workbook()
    ws = book.active
    assert ws is not None
    for cells in ([TITLE], ["填报单位：坪山区应急管理局", None, None, "日期：2026-11-30"], HEADER,
                  ["ZW-1", "c1", "一般", "一社区1号楼"], ["ZW-2", "c1", "重大", "一社区2号楼"]):
        ws.append(cells)
    ws.merge_cells("A1:F1")
    ws.merge_cells("A2:C2")
    data = book_bytes(book)
    table, problems, _ = checked(data, "清单.xlsx")
    assert (table.header_row, [n for n, _ in table.rows], problems) == (3, [4, 5], [])
    assert [h[0] for h in imported(rt, data, "清单.xlsx")] == ["ZW-1", "ZW-2"]


def test_the_header_is_searched_in_the_first_ten_non_blank_rows_only() -> None:
    notes = [[f"说明 {i}"] for i in range(10)]
    table, problems, _ = checked(csv_bytes([*notes, HEADER, ["ZW-1", "c1", "", "甲", "", ""]]),
                                 "清单.csv")
    assert table.header_row == 1
    assert [p.column for p in problems][:2] == ["隐患地点", "单位编号"]
    # The first row with two known names, even below one with one; with none such, the first.
    table, _, _ = checked(csv_bytes([["单位"], ["单位编号", "隐患地点"], ["c1", "甲"]]), "x.csv")
    assert table.header_row == 2
    table, _, _ = checked(csv_bytes([["隐患地点"], ["甲"]]), "x.csv")
    assert (table.header_row, table.rows) == (1, [(2, ["甲"])])


# -- delimiters --------------------------------------------------------------------------------

@pytest.mark.parametrize(("delimiter", "encoding"), [
    ("\t", "utf-8"), ("\t", "gbk"), (";", "utf-8-sig"), (";", "gbk")])
def test_tab_and_semicolon_separated_files(delimiter: str, encoding: str) -> None:
    rows = [HEADER, ["ZW-1", "c1", "一般", "一社区1号楼", "通道堵塞, 灭火器过期", "张三"],
            ["ZW-2", "c1", "重大", "二社区", "a;b\tc", ""]]
    table, problems, _ = checked(csv_bytes(rows, delimiter=delimiter, encoding=encoding),
                                 "清单.txt")
    assert (table.delimiter, table.header, problems) == (delimiter, HEADER, [])
    assert [cells for _, cells in table.rows] == [
        ["ZW-1", "c1", "一般", "一社区1号楼", "通道堵塞, 灭火器过期", "张三"],
        ["ZW-2", "c1", "重大", "二社区", "a;b\tc", None]]
    # Below a title too; and without known columns, the most frequent in the first line.
    titled = csv_bytes([[TITLE], *rows], delimiter=delimiter, encoding=encoding)
    assert checked(titled, "清单.txt")[0].header_row == 2
    assert read_table(csv_bytes(rows, delimiter=delimiter), "x.csv").header == HEADER


def test_a_comma_file_with_semicolons_and_tabs_in_its_cells_stays_comma_separated() -> None:
    rows = [["单位编号", "隐患地点", "隐患描述"], ["c1", "甲;乙;丙", "a\tb\tc\td"]]
    table, problems, _ = checked(csv_bytes(rows), "x.csv")
    assert table.delimiter == "," and problems == []
    assert table.rows == [(2, ["c1", "甲;乙;丙", "a\tb\tc\td"])]
    risks = read_upload(csv_bytes([["风险点编号", "单位编号", "风险点名称", "风险等级"],
                                   ["FX-1", "c1", "加油站", "低"]], delimiter=";"), "r.csv",
                        RISK_COLUMNS)
    assert risks.delimiter == ";" and risks.rows == [(2, ["FX-1", "c1", "加油站", "低"])]


# -- a quoted multi-line cell --------------------------------------------------------------------

DESCRIPTION = "检查发现以下问题：\n1,灭火器过期; 2,通道堵塞; 3,电线老化"


def test_a_correctly_quoted_multi_line_cell_is_read(rt: Runtime) -> None:
    header = ["隐患编号", "单位编号", "隐患地点", "隐患描述"]
    rows = [header, ["ZW-1", "c1", "一社区1号楼", DESCRIPTION],
            ["ZW-2", "c1", "一社区2号楼", "x\r\n2,3,4,5\r\n6,7,8,9"], ["ZW-3", "c1", "乙", ""]]
    table = read_table(csv_bytes(rows), "清单.csv")
    assert [n for n, _ in table.rows] == [2, 3, 4] and table.problems == []
    assert table.rows[0][1][3] == DESCRIPTION
    assert [h[0] for h in imported(rt, csv_bytes(rows), "清单.csv")] == ["ZW-1", "ZW-2", "ZW-3"]
    with read_session(rt.db) as session:
        assert session.exec(select(Hazard.description).where(  # type: ignore[call-overload]
            Hazard.code == "ZW-1")).one() == DESCRIPTION


# -- invisible characters ----------------------------------------------------------------------

def test_a_double_bom_and_zero_width_characters_are_removed(rt: Runtime) -> None:
    text = "\r\n".join([",".join(HEADER), "ZW-1\u200b,c1,重大\u200b,一社区\u2060,,\ufeff张三",
                        "\u200cZW-2,c1\u200d,一般,二社区,,", ""])
    data = b"\xef\xbb\xbf" + text.encode("utf-8-sig")  # EF BB BF EF BB BF
    table, problems, _ = checked(data, "清单.csv")
    assert table.header == HEADER and problems == []
    assert [cells for _, cells in table.rows] == [
        ["ZW-1", "c1", "重大", "一社区", None, "张三"],
        ["ZW-2", "c1", "一般", "二社区", None, None]]
    assert imported(rt, data, "清单.csv") == [("ZW-1", "c1", "重大", "一社区"),
                                             ("ZW-2", "c1", "一般", "二社区")]


def test_zero_width_characters_in_xlsx_cells_are_removed() -> None:
    data = workbook(("隐患清单", [["\ufeff隐患编号", "单位编号\u200b", "隐患地点"],
                                   ["ZW-1\u200b", "c1", "\u200b"]], "visible"))
    table, problems, _ = checked(data, "清单.xlsx")
    assert table.header == ["隐患编号", "单位编号", "隐患地点"]
    assert table.rows == [(2, ["ZW-1", "c1", None])] and problems == []


# -- a column with data but no header ----------------------------------------------------------

def test_data_under_a_blank_header_is_named(rt: Runtime) -> None:
    rows = [["单位编号", "", "隐患地点"], ["c1", "", "甲"], ["c1", "漏填表头的列", "乙"]]
    [message] = refused(rt, csv_bytes(rows), "清单.csv")
    assert message.startswith("第 1 行 第 2 列: 第 2 列（B 列）表头为空，但第 3 行起有数据")
    assert "column 2 (B) has no header but has data from row 3" in message
    # A header cell merged over two columns leaves the second blank: the same.
    book = Workbook()
    ws = book.active
    assert ws is not None
    for cells in (["单位编号", "隐患地点", None, "隐患等级"], ["c1", "一社区", "1号楼", "一般"]):
        ws.append(cells)
    ws.merge_cells("B1:C1")
    [message] = refused(rt, book_bytes(book), "清单.xlsx")
    assert message.startswith("工作表“Sheet”第 1 行 第 3 列: 第 3 列（C 列）表头为空")
    # A blank column with nothing in it is nothing.
    rows[2][1] = ""
    assert imported(rt, csv_bytes(rows), "清单.csv") == [
        ("YH00000001", "c1", "一般", "甲"), ("YH00000002", "c1", "一般", "乙")]


def test_notes_right_of_the_table_are_listed_among_the_ignored_columns() -> None:
    data = workbook(("隐患清单", [["单位编号", "隐患地点", "备注"],
                                   ["c1", "甲", None, None, "请于月底前报送"]], "visible"))
    table, problems, ignored = checked(data, "清单.xlsx")
    assert problems == [] and ignored == ["备注", "第 5 列"]
    # A CSV header with a trailing comma: the same.
    table, problems, ignored = checked(b"\xe5\x8d\x95\xe4\xbd\x8d\xe7\xbc\x96\xe5\x8f\xb7,"
                                       + "隐患地点,\r\nc1,甲,x\r\n".encode(), "x.csv")
    assert problems == [] and ignored == ["第 3 列"]


# -- the export's formula guard ----------------------------------------------------------------

def test_an_exported_csv_reads_back_as_it_was_written() -> None:
    values = ["=CODE1", "-3层", "+86 755", "@张三", "\t缩进", "'引号开头", "'", "it's", "''=x",
              "'=已有撇号"]
    export = exports.Table("隐患清单", [exports.Column(h) for h in ("隐患编号", "隐患地点")],
                           [[f"Z{i}", v] for i, v in enumerate(values)])
    data = b"".join(exports.csv_chunks(export))
    assert "'=CODE1" in data.decode("utf-8-sig")  # the guard is there ...
    table = read_table(data, "export.csv")
    # ... and gone: one apostrophe, before = + - @ tab CR only.
    assert [cells[1] for _, cells in table.rows] == [
        "=CODE1", "-3层", "+86 755", "@张三", "缩进", "'引号开头", "'", "it's", "''=x",
        "'=已有撇号"]
    # An apostrophe an XLSX cell holds is its text.
    data = workbook(("隐患清单", [["隐患编号", "隐患地点"], ["'=CODE1", "'-3层"]], "visible"))
    assert read_table(data, "x.xlsx").rows == [(2, ["'=CODE1", "'-3层"])]


def test_a_quote_opened_by_mistake_and_closed_rows_later_is_refused_not_swallowed() -> None:
    data = ("隐患编号,单位编号,隐患地点,隐患描述\n"
            'SW1,liuhe,"六和路12号,疏散通道堵塞\n'
            "SW2,liuhe,和平路3号,电动车充电\n"
            'SW3,liuhe,东门路8号,DN50阀门2"\n'
            "SW4,liuhe,江岭美食街,气瓶\n").encode()
    with pytest.raises(RowUnreadable) as caught:
        read_table(data, "清单.csv")
    assert caught.value.problem.row == 2


def test_a_row_number_column_left_without_a_header_is_ignored_not_refused() -> None:
    data = ("," + ",".join(HEADER) + "\n"
            "1,ZW-1,c1,一般,一社区1号楼,,\n2,ZW-2,c1,重大,一社区2号楼,,\n").encode()
    table = read_table(data, "清单.csv", KNOWN)
    assert table.problems == [] and table.unheaded == [0]


def test_the_header_is_the_row_naming_the_most_columns_not_the_first_naming_two(
        rt: Runtime) -> None:
    # A filling note above the header names two columns; the header below names all six.
    note = ["隐患编号", "单位编号", "两列必填，其余选填", "", "", ""]
    rows = [note, HEADER, ["ZW-1", "c1", "一般", "一社区1号楼", "", ""]]
    table, problems, _ = checked(csv_bytes(rows), "清单.csv")
    assert (table.header_row, table.header, problems) == (2, HEADER, [])
    assert [h[0] for h in imported(rt, csv_bytes(rows), "清单.csv")] == ["ZW-1"]
