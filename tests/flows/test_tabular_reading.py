"""flows/tabular.py on the files that went wrong (a tester's list): a quote left open, a row
with more cells than the header, control characters, a cell over the size limit, merged cells,
formulas with no saved value, and an XLSX or .xls file under a .csv name. Every file is built
here, byte for byte, with csv and openpyxl."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from flows.tabular import ReadProblem, RowUnreadable, TableUnreadable, read_table

HEADER = ["隐患编号", "单位编号", "隐患来源", "隐患等级", "隐患类别", "隐患地点", "隐患描述",
          "涉及企业", "发现时间", "发现人"]


def row(i: int, location: str = "") -> list[str]:
    return [f"HZ-{i}", "c1", "检查发现", "一般", "消防安全", location or f"一社区{i}号楼",
            "消防通道堵塞", "", "2026-02-01 09:30", "张三"]


def csv_text(rows: list[list[str]]) -> str:
    """What Excel writes: quoted where a cell needs it, CRLF line ends."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([HEADER, *rows])
    return out.getvalue()


def lines(*body: str) -> bytes:
    return "\r\n".join([",".join(HEADER), *body, ""]).encode("utf-8")


def unreadable(data: bytes, name: str = "清单.csv") -> ReadProblem:
    with pytest.raises(RowUnreadable) as exc:
        read_table(data, name)
    return exc.value.problem


# -- a quote left open -------------------------------------------------------------------------

def test_a_quote_open_at_the_end_names_the_row_it_opened_in() -> None:
    opened = ",".join(row(2)).replace("一社区2号楼", '"六和社区A栋')  # row 2: no closing quote
    data = lines(opened, ",".join(row(3)), ",".join(row(4)))
    problem = unreadable(data)
    assert (problem.row, problem.column, problem.position) == (2, "隐患地点", 5)
    assert problem.zh.startswith("引号未闭合") and problem.en.startswith("unterminated quote")
    with pytest.raises(RowUnreadable, match=r"第 2 行 隐患地点：引号未闭合.* / row 2 "):
        read_table(data, "清单.csv")
    # On the last row too, and in the header, whose cells have no column names yet.
    assert unreadable(lines(",".join(row(2)), ",".join(row(3))[:-2] + '"张')).row == 3
    header_open = unreadable('单位编号,"隐患地点\r\nc1,一社区\r\n'.encode())
    assert (header_open.row, header_open.column) == (1, "第 2 列")


def test_a_quote_closed_by_a_later_row_is_still_open_where_it_began() -> None:
    # Row 2's stray quote is closed by the quote that opens row 5's location: csv reads rows
    # 2-5 as one record whose cell holds rows 3 and 4 whole.
    opened = ",".join(row(2)).replace("一社区2号楼", '"六和社区A栋')
    quoted = ",".join(row(5)).replace("一社区5号楼", '"五社区,5号楼"')
    problem = unreadable(lines(",".join(row(1)), opened, ",".join(row(3)), ",".join(row(4)),
                               quoted, ",".join(row(6))))
    assert (problem.row, problem.column) == (3, "隐患地点")
    # Closed in the very next row: the record has more cells than the header.
    next_row = ",".join(row(3)).replace("一社区3号楼", '"三社区,3号楼"')
    assert unreadable(lines(opened, next_row, ",".join(row(4)))).row == 2


def test_a_stray_quote_in_a_big_file_is_not_a_cell_too_long() -> None:
    # 5,000 rows swallowed are more than csv's field limit: still the quote, at its row.
    opened = ",".join(row(2)).replace("一社区2号楼", '"六和社区A栋')
    problem = unreadable(lines(opened, *[",".join(row(i)) for i in range(3, 5003)]))
    assert (problem.row, problem.column) == (2, "隐患地点")
    assert problem.zh.startswith("引号未闭合")


def test_quoted_cells_with_line_breaks_and_commas_still_read() -> None:
    cells = row(2, "一社区\n1号楼, 东侧, 二层, 楼梯间")  # three commas: not a whole row
    cells[6] = '灭火器过期,\r\n消防通道堵塞, "占用"'
    table = read_table(csv_text([cells, row(3)]).encode("utf-8-sig"), "清单.csv")
    assert [n for n, _ in table.rows] == [2, 3] and table.problems == []
    assert table.rows[0][1][5:7] == ["一社区\n1号楼, 东侧, 二层, 楼梯间",
                                     '灭火器过期,\r\n消防通道堵塞, "占用"']


# -- more cells than the header ----------------------------------------------------------------

def test_a_row_with_more_cells_than_the_header_is_left_out_and_named() -> None:
    shifted = ",".join(row(3, "六和社区和平路12号,3栋"))  # an unquoted comma: 11 cells
    table = read_table(lines(",".join(row(2)), shifted, ",".join(row(4)) + ",,"), "清单.csv")
    assert [n for n, _ in table.rows] == [2, 4]  # row 4's trailing empty cells are tolerated
    assert table.rows[1][1] == row(4)[:7] + [None] + row(4)[8:]
    [problem] = table.problems
    assert (problem.row, problem.column, problem.position) == (3, "第 11 列", 10)
    assert "有 11 个单元格，表头只有 10 列" in problem.zh
    assert "11 cells where the header has 10 columns" in problem.en


# -- control characters ------------------------------------------------------------------------

def test_control_characters_in_any_cell_are_named() -> None:
    cells = row(2)
    cells[5] = "一社区\x01号楼"
    cells[6] = "描述\x1b[0m"
    edge = row(3)
    edge[9] = "张三\x1f"  # str.strip() would have taken it for a space
    table = read_table(csv_text([cells, edge, row(4, "三社区\t4号楼\x7f")]).encode(), "x.csv")
    assert [(p.row, p.column, p.zh) for p in table.problems] == [
        (2, "隐患地点", "含有不可见控制字符（\\x01），请删除后再导入"),
        (2, "隐患描述", "含有不可见控制字符（\\x1b），请删除后再导入"),
        (3, "发现人", "含有不可见控制字符（\\x1f），请删除后再导入"),
        (4, "隐患地点", "含有不可见控制字符（\\x7f），请删除后再导入")]
    # Tabs and line breaks are text; GBK files are searched the same way.
    clean = read_table(csv_text([row(2, "一社区\t1号楼\r\n东侧")]).encode("gbk"), "x.csv")
    assert clean.problems == [] and clean.encoding == "gb18030"


# -- a cell over the limit ---------------------------------------------------------------------

@pytest.mark.parametrize("quoted", [False, True])
def test_a_cell_over_the_size_limit_names_its_row(quoted: bool) -> None:
    long = "很长" * 100_000
    cells = row(3)
    cells[6] = f'"{long}"' if quoted else long
    problem = unreadable(lines(",".join(row(2)), ",".join(cells)))
    assert (problem.row, problem.column) == (3, "隐患描述")
    assert problem.zh == "单元格超过 131072 字符上限（200000 个字符）"
    assert problem.en == "a cell is longer than the 131072-character limit (200000)"


# -- XLSX --------------------------------------------------------------------------------------

def xlsx_bytes(rows: list[list[Any]], edit: Callable[[Any], None] | None = None) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for cells in rows:
        sheet.append(cells)
    if edit is not None:
        edit(sheet)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_sheet_xml(data: bytes, change: Callable[[str], str]) -> bytes:
    """The same workbook with its sheet XML changed (what Excel writes that openpyxl does not:
    a formula's saved value)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = change(body.decode("utf-8")).encode("utf-8")
            dst.writestr(item, body)
    return out.getvalue()


SHORT = ["隐患编号", "单位编号", "隐患地点", "发现时间"]


def test_merged_cells_in_the_data_area_are_named_and_their_rows_left_out() -> None:
    def merge(sheet: Any) -> None:
        sheet.merge_cells("B2:B3")  # 单位编号 looks filled in on both rows in Excel
        sheet.merge_cells("A4:A5")  # 隐患编号: row 5 would have got a generated code
        sheet.merge_cells("F2:G3")  # right of the table: not read
        sheet["E1"] = "备注"
        sheet.merge_cells("E1:F1")  # in the header row: not data

    data = xlsx_bytes([SHORT, ["HZ-1", "c1", "甲", None], ["HZ-2", None, "乙", None],
                       ["HZ-3", "c1", "丙", None], [None, "c2", "丁", None],
                       ["HZ-6", "c2", "戊", None]], merge)
    table = read_table(data, "清单.xlsx")
    assert [n for n, _ in table.rows] == [6]
    assert [(p.row, p.column) for p in table.problems] == [(2, "单位编号"), (4, "隐患编号")]
    assert table.problems[0].zh == ("合并单元格 B2:B3：合并后只有第一格有值，"
                                    "请取消合并单元格后再导入")
    assert "merged cells B2:B3" in table.problems[0].en


def test_a_formula_without_a_saved_value_is_named() -> None:
    data = xlsx_bytes([SHORT, ["HZ-1", "c1", '="六和"&"社区"', datetime(2026, 2, 1)],
                       ["HZ-2", "c1", "乙", "=NOW()"], ["HZ-3", "c2", "丙", None]])
    table = read_table(data, "清单.xlsx")
    assert [n for n, _ in table.rows] == [4]
    assert [(p.row, p.column, p.zh) for p in table.problems] == [
        (2, "隐患地点", "C2 的公式没有计算结果，请在 Excel 中打开并保存后再导入"),
        (3, "发现时间", "D3 的公式没有计算结果，请在 Excel 中打开并保存后再导入")]
    assert table.problems[0].en.startswith("formula without a saved value in C2")
    # As Excel saves them: a text result, and a text result that is empty, are values.
    saved = with_sheet_xml(data, lambda xml: xml.replace(
        '<c r="C2"><f>"六和"&amp;"社区"</f><v /></c>',
        '<c r="C2" t="str"><f>"六和"&amp;"社区"</f><v>六和社区</v></c>').replace(
        '<c r="D3"><f>NOW()</f><v /></c>', '<c r="D3" t="str"><f>""</f><v></v></c>'))
    table = read_table(saved, "清单.xlsx")
    assert table.problems == []
    assert [cells[:4] for _, cells in table.rows] == [
        ["HZ-1", "c1", "六和社区", datetime(2026, 2, 1)], ["HZ-2", "c1", "乙", None],
        ["HZ-3", "c2", "丙"]]


def test_control_characters_in_an_xlsx_cell_are_named() -> None:
    table = read_table(xlsx_bytes([SHORT, ["HZ-1", "c1", "甲\x7f乙", None]]), "清单.xlsx")
    assert [(p.row, p.column) for p in table.problems] == [(2, "隐患地点")]


def test_the_first_bytes_say_what_a_file_is_whatever_its_name() -> None:
    data = xlsx_bytes([SHORT, ["HZ-1", "c1", "甲", datetime(2026, 2, 1)]])
    for name in ("清单.csv", "清单", "清单.txt"):
        table = read_table(data, name)
        assert table.header == SHORT and table.rows == [
            (2, ["HZ-1", "c1", "甲", datetime(2026, 2, 1)])]
    old_excel = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512
    with pytest.raises(TableUnreadable, match=r"旧版 Excel（\.xls）文件.*legacy Excel"):
        read_table(old_excel, "清单.csv")
    with pytest.raises(TableUnreadable, match=r"不是有效的 \.xlsx"):
        read_table(b"PK\x03\x04 a zip cut short", "清单.csv")


def test_a_date_cell_shown_as_its_days_24_00_reads_as_it_shows() -> None:
    """The exports write a deadline that ends a day as the day's last second under a format
    that shows 24:00 (flows/exports.py); read back, the cell is that text, as the CSV holds
    it, whether the format is as written or escaped the way a spreadsheet program saves it
    again. A date cell with a time of its own, or none, stays a date."""
    from openpyxl import Workbook

    book = Workbook()
    ws = book.active
    ws.append(["隐患编号", "整改期限"])
    last_second = datetime(2026, 2, 28, 23, 59, 59)
    formats = {"A": 'yyyy-mm-dd "24:00"', "B": 'yyyy\\-mm\\-dd\\ "24:00"',
               "C": "yyyy\\-mm\\-dd\\ \\2\\4\\:\\0\\0", "D": "yyyy-mm-dd hh:mm",
               "E": "yyyy-mm-dd", "F": '"24:00" hh:mm'}
    for code, fmt in formats.items():
        ws.append([code, last_second])
        ws.cell(ws.max_row, 2).number_format = fmt
    out = io.BytesIO()
    book.save(out)
    table = read_table(out.getvalue(), "隐患清单.xlsx")
    read = {cells[0]: cells[1] for _, cells in table.rows}
    assert read == {"A": "2026-02-28 24:00", "B": "2026-02-28 24:00", "C": "2026-02-28 24:00",
                    "D": last_second, "E": last_second, "F": last_second}
