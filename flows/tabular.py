"""Reading spreadsheets people upload: CSV and XLSX into a header and rows, each row with the
number a spreadsheet program shows for it (1-based; the header is usually row 1), so every
error can say "第 17 行".

CSV: UTF-8 with or without a BOM; GB18030 (a superset of GBK) when the bytes are not UTF-8,
because Excel on a Chinese Windows saves "CSV (逗号分隔)" in the ANSI code page, GBK; UTF-16
with a BOM (Excel's "Unicode 文本") as tab-separated text. A row number counts records, so a
cell with a line break inside quotes stays one row, as in Excel.

XLSX: the first worksheet, read with openpyxl in read-only mode (values only, formulas as their
last cached value): strings come stripped, numbers as int/float, dates and times as
`datetime`/`date`/`time` (what Excel date cells are). Legacy .xls is not read: save as .xlsx.

The header is the first row that is not blank; rows entirely blank are dropped (their numbers
are kept by the rows after them). Cells come back as Python values, `None` for empty; callers
validate them.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from models.errors import InvalidInput

CSV_SUFFIXES = (".csv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")


class TableUnreadable(InvalidInput):
    """The upload is not a CSV or XLSX file we can read; `field` is "file"."""

    def __init__(self, filename: str, message: str) -> None:
        super().__init__("file", f"{filename}: {message}")
        self.filename = filename


@dataclass
class Table:
    """A sheet: `header` cells as text, and `(row number, cells)` per non-blank row."""

    filename: str
    header: list[str]
    header_row: int
    rows: list[tuple[int, list[Any]]] = field(default_factory=list)
    encoding: str | None = None  # CSV only: the encoding that decoded the file


def read_table(data: bytes, filename: str) -> Table:
    """A CSV or XLSX upload by its name (and, for a misnamed file, by its first bytes)."""
    name = (filename or "").lower()
    is_zip = data[:4] == b"PK\x03\x04"
    if name.endswith(XLSX_SUFFIXES) or (is_zip and not name.endswith(CSV_SUFFIXES)):
        return read_xlsx(data, filename)
    if name.endswith(".xls") or data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise TableUnreadable(filename, "不支持旧版 Excel（.xls）文件，请另存为 .xlsx 或 CSV / "
                                        "legacy .xls is not supported: save as .xlsx or CSV")
    if name.endswith(CSV_SUFFIXES) or not is_zip:
        return read_csv(data, filename)
    raise TableUnreadable(filename, "只接受 .csv 或 .xlsx 文件 / only .csv and .xlsx files")


# -- CSV ---------------------------------------------------------------------------------------

def decode_text(data: bytes, filename: str) -> tuple[str, str]:
    """(text, encoding): UTF-8 (BOM optional), UTF-16 with a BOM, else GB18030."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise TableUnreadable(
            filename, f"无法识别文件编码（支持 UTF-8、GBK/GB18030），第 {exc.start} 字节起"
                      f"无法解码 / "
                      f"cannot decode the file as UTF-8 or GBK/GB18030 (byte {exc.start})"
        ) from None


def read_csv(data: bytes, filename: str) -> Table:
    text, encoding = decode_text(data, filename)
    if "\x00" in text:
        raise TableUnreadable(filename, "文件含有空字符，不是文本 CSV / the file has NUL bytes, "
                                        "it is not a text CSV")
    delimiter = "\t" if encoding == "utf-16" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    table: Table | None = None
    number = 0
    try:
        for number, record in enumerate(reader, start=1):
            # Strip, and treat an empty cell as missing; most cells are short text.
            cells: list[Any] = [c.strip() or None for c in record]
            if not any(cells):
                continue
            if table is None:
                table = Table(filename, [c or "" for c in cells], number, encoding=encoding)
                continue
            table.rows.append((number, cells))
    except csv.Error as exc:
        raise TableUnreadable(filename, f"第 {number + 1} 行 CSV 格式错误：{exc} / row "
                                        f"{number + 1}: malformed CSV ({exc})") from None
    if table is None:
        return Table(filename, [], 0, encoding=encoding)
    return table


# -- XLSX --------------------------------------------------------------------------------------

def _xlsx_rows(data: bytes, filename: str) -> Iterator[tuple[int, tuple[Any, ...]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise TableUnreadable(filename, f"不是有效的 .xlsx 文件（{type(exc).__name__}） / not a "
                                        f"readable .xlsx file ({exc})") from None
    try:
        if not book.worksheets:
            return
        sheet = book.worksheets[0]
        try:
            yield from enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
            raise TableUnreadable(filename, f"读取工作表出错：{exc} / cannot read the sheet: "
                                            f"{exc}") from None
    finally:
        book.close()


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def read_xlsx(data: bytes, filename: str) -> Table:
    table: Table | None = None
    for number, values in _xlsx_rows(data, filename):
        cells = [_xlsx_cell(v) for v in values]
        if not any(c is not None for c in cells):
            continue
        if table is None:
            table = Table(filename, ["" if c is None else str(c).strip() for c in cells], number)
            continue
        table.rows.append((number, cells))
    return table or Table(filename, [], 0)
