"""Reading spreadsheets people upload: CSV and XLSX into a header and rows, each row with the
number a spreadsheet program shows for it (1-based; the header is usually row 1), so every
error can say "第 17 行".

CSV: UTF-8 with or without a BOM; GB18030 (a superset of GBK) when the bytes are not UTF-8,
because Excel on a Chinese Windows saves "CSV (逗号分隔)" in the ANSI code page, GBK; UTF-16
with a BOM (Excel's "Unicode 文本"). The delimiter is ',', tab (Excel's "文本文件(制表符分隔)",
and UTF-16 text) or ';' (a European Excel's CSV): the one that splits a header line among the
first non-blank lines into the most known column names (`known`, below), else the one most
frequent in the first non-blank line; on a tie ',' (tab for UTF-16). A row number counts
records, so a cell with a line break inside quotes stays one row, as in Excel. A quote left
open (it would swallow the rest of the file into one cell) and a cell over MAX_CELL_CHARS stop
the reading (RowUnreadable, naming the row): a record over several lines is taken for a quote
opened by mistake only when it is not well formed (a closing quote followed by more than a
delimiter or a line end) and its cell holds what plainly are further rows or the record has
more cells than the header; a correctly quoted multi-line cell is never refused. A row with
more non-empty cells than the header (an unquoted comma shifts every cell after it) is left
out and reported in `Table.problems`. A text cell starting with apostrophes followed by one
of = + - @ tab CR loses one apostrophe: it is the guard flows/exports.py writes against
formulas (before a value's own apostrophes too), so an exported file imports back as it was
(any other apostrophe is text).

XLSX: read with openpyxl's read-only parser (values only, formulas as their last cached
value): strings come stripped, numbers as int/float, dates and times as
`datetime`/`date`/`time` (what Excel date cells are), except a date cell whose format shows
its day's 24:00 (a deadline that ends a day, as flows/exports.py writes it: the day's last
second under `yyyy-mm-dd "24:00"`), which comes back as the text it shows, "2026-02-28 24:00",
as the CSV export writes it and the time readers take it (the next day's 00:00), not as
23:59:59, a second short. The sheet read is a visible one (hidden
and very hidden sheets, such as a 字典 of allowed values, are not read): of several, the one
that is a register (a header of known column names with a row under it: not a notes sheet
nor an empty template); a workbook with several registers (one sheet per street, this month's
beside last month's, a visible 字典) is refused naming them, as reading one would drop the
others' rows unseen; with no register, the active sheet (its problems are reported);
`Table.sheet` names it. Legacy .xls is not read: save
as .xlsx. A file is taken for XLSX (or .xls) by its first bytes whatever its name says.
Merged cells in the data area and formulas with no saved value are reported in
`Table.problems` and their rows left out: both read as empty cells, not as what the sheet
shows (a merged title above the header is not data).

Every format: the zero-width characters U+200B, U+200C, U+200D, U+2060 and U+FEFF (a second
byte order mark) are removed from every cell, header or not: invisible, they would make a
code or a grade that looks right not match. A text cell with a control character (C0 but tab
and line breaks, and DEL) is reported in `Table.problems`; the XLSX export cannot write one
back.

The header: given `known` (whether a cell is the name of a column the caller reads), the row
naming the most of them (the first such; at least two) among the first HEADER_SEARCH_ROWS
non-blank rows, so that a title row above it (坪山区2026年11月隐患排查清单, merged or not) is
skipped; otherwise, and without
`known`, the first row that is not blank. Rows above the header are not read; rows entirely
blank are dropped; row numbers are the file's own either way. A column whose header is blank
but that has data: left of the last named column (a header cell forgotten, or merged over two
columns) it is reported in `Table.problems` at the header row, as its data would be lost,
unless it holds only whole numbers (a 序号 column left unnamed); those and the ones right of
the last named column (notes beside the table) are listed in `Table.unheaded`. Cells come
back as Python values, `None` for empty; callers validate them.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models.errors import InvalidInput

CSV_SUFFIXES = (".csv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
ZIP_MAGIC = b"PK\x03\x04"  # XLSX is a zip archive
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls (and .doc): an OLE2 compound file
# The csv module's own default limit: a hazard description is a few thousand characters at
# most, so a cell this long is a broken file (or a quote left open), not a register entry.
MAX_CELL_CHARS = 131_072
# C0 controls and DEL (tab and line breaks are text), and the bidi overrides that can make a
# location read backwards in a register.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
# Invisible, and not whitespace to str.strip(): removed from every cell (U+FEFF: a second BOM).
ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
# flows/exports.py puts an apostrophe before a cell starting with one of these (FORMULA_START).
GUARDED = frozenset("=+-@\t\r")
_GUARD = re.compile("'[=+\\-@\t\r]")
DELIMITERS = (",", "\t", ";")
HEADER_SEARCH_ROWS = 10  # non-blank rows searched for the header (titles above it)
HEADER_MIN_KNOWN = 2  # known column names that make a row the header
# The body of a quoted CSV field after its opening quote, up to its closing quote: doubled
# quotes are quotes in the text (the unrolled form does not backtrack on a huge field).
# A number format that prints a literal 24:00 and no time of its own (flows/exports.py
# XLSX_DAY_END_FORMAT, or as a spreadsheet program saves it again, escaped or quoted).
_DAY_END_LITERAL = re.compile(r'"24:00"|\\2\\4\\:\\0\\0')
_QUOTED_OR_ESCAPED = re.compile(r'"[^"]*"|\\.')
_QUOTED_BODY = re.compile(r'[^"]*(?:""[^"]*)*')


class TableUnreadable(InvalidInput):
    """The upload is not a CSV or XLSX file we can read; `field` is "file"."""

    def __init__(self, filename: str, message: str) -> None:
        super().__init__("file", f"{filename}: {message}")
        self.filename = filename


@dataclass(frozen=True)
class ReadProblem:
    """A mistake found while reading: the row, the column (the header as written, else
    "第 N 列") and its position (-1: the row as a whole), the message in Chinese and English."""

    row: int
    column: str
    position: int
    zh: str
    en: str


class RowUnreadable(TableUnreadable):
    """The file cannot be read past a row (a quote never closed, a cell too long)."""

    def __init__(self, filename: str, problem: ReadProblem) -> None:
        super().__init__(filename, f"第 {problem.row} 行 {problem.column}：{problem.zh} / row "
                                   f"{problem.row} {problem.column}: {problem.en}")
        self.problem = problem


@dataclass
class Table:
    """A sheet: `header` cells as text, and `(row number, cells)` per non-blank row below it;
    rows with a problem that makes their cells unreliable are in `problems`, not in `rows`;
    `unheaded`: the positions right of the last named column that have data."""

    filename: str
    header: list[str]
    header_row: int
    rows: list[tuple[int, list[Any]]] = field(default_factory=list)
    encoding: str | None = None  # CSV only: the encoding that decoded the file
    problems: list[ReadProblem] = field(default_factory=list)
    sheet: str | None = None  # XLSX only: the title of the worksheet read
    delimiter: str | None = None  # CSV only
    unheaded: list[int] = field(default_factory=list)  # data right of the last named column
    totals: list[int] = field(default_factory=list)  # 合计/小计 rows left out (flows/total_rows.py)

    def column(self, position: int) -> str:
        """The header of a column as written, or "第 N 列" for one without a header."""
        name = self.header[position] if 0 <= position < len(self.header) else ""
        return name or f"第 {position + 1} 列"


Known = Callable[[str], bool]  # whether a header cell names a column the caller reads


def read_table(data: bytes, filename: str, known: Known | None = None) -> Table:
    """A CSV or XLSX upload: by its first bytes when they say zip (XLSX) or OLE (.xls), since
    a file renamed by hand keeps its format; else by its name. `known` finds the header below
    a title, the delimiter and the sheet (see the module docstring)."""
    name = (filename or "").lower()
    if data.startswith(ZIP_MAGIC):
        return read_xlsx(data, filename, known)
    if data.startswith(OLE_MAGIC) or name.endswith(".xls"):
        raise TableUnreadable(filename, "这是旧版 Excel（.xls）文件，不支持导入：请在 Excel 中"
                                        "另存为 .xlsx 或 CSV / this is a legacy Excel (.xls) "
                                        "file, which is not supported: save it as .xlsx or CSV")
    if name.endswith(XLSX_SUFFIXES):
        return read_xlsx(data, filename, known)  # not a zip: says so
    return read_csv(data, filename, known)


# -- the header --------------------------------------------------------------------------------

def _known_count(cells: Iterable[Any], known: Known) -> int:
    return sum(1 for c in cells if isinstance(c, str) and c and known(c))


def _find_header(rows: Iterable[tuple[int, list[Any]]],
                 known: Known | None) -> tuple[int, int | None]:
    """(the most known names in a row, the number of the row naming the most of them, the
    first such, when that is at least HEADER_MIN_KNOWN, else None) over the first
    HEADER_SEARCH_ROWS non-blank rows; cells stripped, None for empty. The most, not the first
    with enough: a note above the header naming two columns (隐患编号 | 发现时间 | 必填) or a
    group row over it is not the header."""
    if known is None:
        return 0, None
    best, found, seen = 0, None, 0
    for number, cells in rows:
        if not any(c is not None for c in cells):
            continue
        count = _known_count(cells, known)
        if count > best:
            best = count
            found = number if count >= HEADER_MIN_KNOWN else None
        seen += 1
        if seen >= HEADER_SEARCH_ROWS:
            break
    return best, found


def _check_headerless(table: Table, rows_may_be_longer: bool) -> None:
    """Columns with data and a blank header: a problem left of the last named column, listed
    in `table.unheaded` right of it (see the module docstring)."""
    from openpyxl.utils.cell import get_column_letter

    header = table.header
    named = [i for i, h in enumerate(header) if h]
    last = named[-1] if named else -1
    inside = [i for i in range(last) if not header[i]]
    if not inside and not rows_may_be_longer and last + 1 >= len(header):
        return  # every column named, and no row longer than the header
    first: dict[int, int] = {}  # position -> the first row with data there
    counting = set(inside)  # blank-headed columns holding only whole numbers so far (序号)
    for number, cells in table.rows:
        for pos in inside:
            if pos < len(cells) and cells[pos] is not None:
                if pos not in first:
                    first[pos] = number
                if pos in counting and not _whole_number(cells[pos]):
                    counting.discard(pos)
        if len(cells) > last + 1:
            for pos in range(last + 1, len(cells)):
                if cells[pos] is not None and pos not in first:
                    first[pos] = number
    for pos in sorted(first):
        if pos > last or pos in counting:  # notes beside the table; a 序号 left unnamed
            table.unheaded.append(pos)
            continue
        letter = get_column_letter(pos + 1)
        table.problems.append(ReadProblem(
            table.header_row, table.column(pos), pos,
            f"第 {pos + 1} 列（{letter} 列）表头为空，但第 {first[pos]} 行起有数据：请填写表头，"
            "或删除此列（表头单元格合并时也会这样）",
            f"column {pos + 1} ({letter}) has no header but has data from row {first[pos]}: "
            "give it a header or delete the column (a header cell merged over two columns "
            "does this too)"))


def _whole_number(value: Any) -> bool:
    """1, 2.0 or "3": what a row-number (序号) column holds."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and value.strip().isdigit()


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


def _fields(text: str, start: int, delimiter: str) -> Iterator[tuple[int, int, bool]]:
    """(start, end, still open) of each field of the record that begins at `start`, as the csv
    module reads it (not strict): a quote opens a quoted field only as a field's first
    character; in it a doubled quote is a quote; after its closing quote the field goes on,
    unquoted, to the next delimiter. A field whose quote never closes runs to the end."""
    ends = re.compile(f"[{re.escape(delimiter)}\r\n]")
    size = len(text)
    pos = start
    while True:
        begin = pos
        if text.startswith('"', pos):
            match = _QUOTED_BODY.match(text, pos + 1)
            assert match is not None  # the pattern matches the empty string
            if match.end() >= size:
                yield begin, size, True
                return
            pos = match.end() + 1
        found = ends.search(text, pos)
        stop = found.start() if found else size
        yield begin, stop, False
        if found is None or text[stop] != delimiter:
            return
        pos = stop + 1


_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+$")


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` with their ends, split as io.StringIO(newline="") splits them,
    lazily (only the first few are read)."""
    return (m.group() for m in _LINE.finditer(text))


def _sniff(text: str, known: Known | None, default: str) -> tuple[str, int | None]:
    """(the delimiter, the header's record number or None for the first non-blank record):
    see the module docstring."""
    first = next((line for line in _lines(text) if line.strip()), "")
    frequent = {d: first.count(d) for d in DELIMITERS}
    order = sorted(DELIMITERS, key=lambda d: d != default)  # the default first on a tie
    found: dict[str, tuple[int, int | None]] = {}
    for delimiter in DELIMITERS if known is not None else ():
        reader = csv.reader(_lines(text), delimiter=delimiter)
        records: list[tuple[int, list[Any]]] = []
        try:
            for number, record in enumerate(reader, start=1):
                cells = [c.strip() or None for c in record]
                records.append((number, cells))
                if sum(1 for _, r in records if any(r)) >= HEADER_SEARCH_ROWS:
                    break
        except csv.Error:  # a quote left open in the first rows: read_csv names it
            pass
        found[delimiter] = _find_header(records, known)
    if found and max(hits for hits, _ in found.values()) > 0:
        best = max(order, key=lambda d: (found[d][0], frequent[d]))
        return best, found[best][1]
    return max(order, key=lambda d: frequent[d]), None


def _swallows_rows(cell: str, delimiter: str, width: int) -> bool:
    """A quoted cell whose line breaks are followed by what is plainly further rows: a line
    with as many delimiters as a whole row has (at least 3, so that a sentence with a comma
    or two in a multi-line cell of a narrow file is not mistaken for one)."""
    least = max(width - 1, 3)
    return any(line.count(delimiter) >= least for line in cell.splitlines()[1:])


def _well_formed(raw: str, delimiter: str) -> bool:
    """Whether a record's text reads without a quote out of place (csv's strict mode: a
    closing quote followed by anything but a delimiter or a line end, or never closed)."""
    try:
        for _ in csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error:
        return False
    return True


def _unguard(cell: str) -> str:
    """The cell without the apostrophe flows/exports.py put before a formula-like start."""
    if cell.startswith("'"):
        rest = cell.lstrip("'")
        if rest and rest[0] in GUARDED:  # '=x was =x, ''=x was '=x (exports._csv_text)
            return cell[1:]
    return cell


def read_csv(data: bytes, filename: str, known: Known | None = None) -> Table:
    text, encoding = decode_text(data, filename)
    if "\x00" in text:
        raise TableUnreadable(filename, "文件含有空字符，不是文本 CSV / the file has NUL bytes, "
                                        "it is not a text CSV")
    if ZERO_WIDTH.search(text) is not None:  # one pass; nothing of the CSV syntax is removed
        text = ZERO_WIDTH.sub("", text)
    delimiter, header_at = _sniff(text, known, "\t" if encoding == "utf-16" else ",")
    first_row = header_at or 0
    guarded = _GUARD.search(text) is not None
    buffer = io.StringIO(text, newline="")
    reader = csv.reader(buffer, delimiter=delimiter)
    table: Table | None = None
    width = 0
    number = 0
    begin = last = 0  # where the record being read (the last read) begins in `text`
    lines = 0  # physical lines read before it (csv reads no line ahead)
    # One scan of the whole text; the cells are searched only when it finds something.
    controls = CONTROL_CHARS.search(text) is not None
    pending: list[tuple[int, int, str]] = []  # (row, position, character)
    try:
        for number, record in enumerate(reader, start=1):
            if table is not None and reader.line_num - lines > 1:
                _check_line_breaks(filename, table, record, number, delimiter,
                                   text[begin:buffer.tell()])
            lines = reader.line_num
            last, begin = begin, buffer.tell()
            if number < first_row:
                continue  # a title above the header
            if controls:  # before stripping: str.strip() takes \x1c-\x1f for spaces
                pending += [(number, pos, bad.group()) for pos, cell in enumerate(record)
                            if (bad := CONTROL_CHARS.search(cell)) is not None]
            # Strip, and treat an empty cell as missing; most cells are short text.
            cells: list[Any] = ([_unguard(c).strip() or None for c in record] if guarded
                                else [c.strip() or None for c in record])
            if not any(cells):
                continue
            if table is None:
                table = Table(filename, [c or "" for c in cells], number, encoding=encoding,
                              delimiter=delimiter)
                width = len(cells)
                continue
            if len(cells) > width:
                if any(cells[width:]):
                    table.problems.append(_too_many_cells(table, number, cells))
                    continue
                del cells[width:]  # empty cells after the last column, as Excel leaves them
            table.rows.append((number, cells))
    except csv.Error:
        raise _unreadable_record(filename, table, text, begin, number + 1, delimiter) from None
    # A quote still open at the end: the record it opened in swallowed the rest of the file.
    if number:
        for pos, (_, _, still_open) in enumerate(_fields(text, last, delimiter)):
            if still_open:  # (the header itself, when it is that record: no names then)
                named = table if table is not None and table.header_row < number else None
                raise _open_quote(filename, named, number, pos)
    if table is None:
        return Table(filename, [], 0, encoding=encoding, delimiter=delimiter)
    table.problems += [_control_char(table, row, pos, char) for row, pos, char in pending]
    _check_headerless(table, rows_may_be_longer=False)
    table.problems.sort(key=lambda p: (p.row, p.position))
    return table


def _check_line_breaks(filename: str, table: Table, record: list[str], number: int,
                       delimiter: str, raw: str) -> None:
    """A record over several lines has a quoted cell with a line break, as a quote opened by
    mistake and closed by a quote some rows later gives: then its closing quote is followed by
    more of the cell (the quote that closed it opened a later cell), and its cell holds what
    plainly are further rows, or the cells after it are more than the header has (the closing
    quote came mid-row). A well-formed record (`raw`, its text) as wide as the header is a
    correctly quoted cell, whatever its lines hold; one that is short of cells may be a quote
    opened by mistake and closed at the end of a later row (it swallowed the rows between)."""
    width = len(table.header)
    if len(record) == width and _well_formed(raw, delimiter):
        return
    extra = len(record) > width and any(c.strip() for c in record[width:])
    for pos, cell in enumerate(record):
        if ("\n" in cell or "\r" in cell) and (
                extra or _swallows_rows(cell, delimiter, width)):
            raise _open_quote(filename, table, number, pos)


def _too_many_cells(table: Table, number: int, cells: list[Any]) -> ReadProblem:
    width = len(table.header)
    found = max(i for i, c in enumerate(cells) if c is not None) + 1
    return ReadProblem(
        number, table.column(width), width,
        f"有 {found} 个单元格，表头只有 {width} 列：多出的单元格会让各列错位（含英文逗号的内容请加"
        "英文双引号）",
        f"{found} cells where the header has {width} columns: the extra cells would shift "
        "the columns (put a value with a comma in double quotes)")


def _unreadable_record(filename: str, table: Table | None, text: str, begin: int,
                       number: int, delimiter: str) -> RowUnreadable:
    """Why csv gave up on the record at `begin`. Read without `strict` and with NUL refused,
    the only error it raises is a field over its limit: find that field, which may be a quote
    left open (it runs to the end, or over what are plainly further rows)."""
    limit = csv.field_size_limit()
    width = len(table.header) if table is not None else 0
    for pos, (start, end, still_open) in enumerate(_fields(text, begin, delimiter)):
        if still_open or (end - start > limit and table is not None
                          and not _closed_cleanly(text, start, end)
                          and _swallows_rows(text[start:end], delimiter, width)):
            return _open_quote(filename, table, number, pos)
        if end - start > limit:
            column = table.column(pos) if table is not None else f"第 {pos + 1} 列"
            size = end - start - (2 if text.startswith('"', start) else 0)
            return RowUnreadable(filename, ReadProblem(
                number, column, pos, f"单元格超过 {limit} 字符上限（{size} 个字符）",
                f"a cell is longer than the {limit}-character limit ({size})"))
    return RowUnreadable(filename, ReadProblem(  # pragma: no cover - see the docstring
        number, "", -1, "CSV 格式错误", "malformed CSV"))


def _closed_cleanly(text: str, start: int, end: int) -> bool:
    """Whether the field text[start:end] is quoted and ends at its closing quote."""
    if not text.startswith('"', start):
        return False
    match = _QUOTED_BODY.match(text, start + 1)
    return match is not None and match.end() + 1 == end


def _open_quote(filename: str, table: Table | None, number: int, pos: int) -> RowUnreadable:
    column = table.column(pos) if table is not None else f"第 {pos + 1} 列"
    return RowUnreadable(filename, ReadProblem(
        number, column, pos,
        "引号未闭合：此单元格的双引号没有配对的右引号，把后面各行都并进了这一格",
        "unterminated quote: the cell's double quote has no closing quote, so the rows "
        "after it run into this cell"))


def _control_char(table: Table, number: int, pos: int, char: str) -> ReadProblem:
    code = f"\\x{ord(char):02x}"
    return ReadProblem(
        number, table.column(pos), pos,
        f"含有不可见控制字符（{code}），请删除后再导入",
        f"contains an invisible control character ({code}); remove it")


# -- XLSX --------------------------------------------------------------------------------------

def _sheet_parser() -> type:
    """openpyxl's read-only worksheet parser, also noting what reading values only hides: a
    formula with no saved value (it reads as an empty cell) and the merged ranges (every cell
    of a range but its first reads as empty; read-only sheets do not expose them). One pass
    over the sheet XML, as iter_rows makes: the merged ranges come after the rows, so reading
    them from the zip apart would be a second pass over a sheet of 400,000 rows. It leans on
    openpyxl internals (worksheet._reader, a read-only sheet's _get_source and
    _shared_strings; openpyxl is not pinned): tests/flows/test_tabular_reading.py fails if
    an upgrade moves them."""
    from openpyxl.worksheet._reader import FORMULA_TAG, WorkSheetParser

    class SheetParser(WorkSheetParser):  # type: ignore[misc]
        uncomputed: list[tuple[int, int]]

        def parse_row(self, row: Any) -> tuple[int, list[dict[str, Any]]]:
            number, cells = super().parse_row(row)
            for element, cell in zip(row, cells, strict=False):
                # A formula saved by a program that does not compute (a script, openpyxl)
                # has an empty <v>; a text formula whose result is "" says t="str".
                if cell["value"] is None and element.get("t") != "str" and \
                        element.find(FORMULA_TAG) is not None:
                    self.uncomputed.append((cell["row"], cell["column"]))
            return number, cells

    return SheetParser


@dataclass
class _Sheet:
    rows: list[tuple[int, list[Any]]]
    merged: list[str]  # ranges such as "B2:B3"
    uncomputed: list[tuple[int, int]]  # (row, column), 1-based
    title: str | None = None


def _choose_sheet(book: Any, known: Known | None, filename: str) -> Any:
    """The visible worksheet to read (see the module docstring), None when there is none."""
    visible = [ws for ws in book.worksheets
               if getattr(ws, "sheet_state", "visible") == "visible"]
    if len(visible) <= 1:
        return visible[0] if visible else None
    active = book.active

    def look(ws: Any) -> tuple[int, bool]:
        """(known names in its header when it is a register, a header of known names with a
        row below it, else 0; whether it has any non-blank row)"""
        rows = ws.iter_rows(values_only=True)
        try:  # the first rows only: closing the generator closes the sheet's XML
            head = []
            for number, values in enumerate(rows, start=1):
                cells = [_xlsx_cell(v) for v in values]
                if any(c is not None for c in cells):
                    head.append((number, cells))
                    if len(head) > HEADER_SEARCH_ROWS:  # one past, for a row under the header
                        break
        finally:
            rows.close()
        best, found = _find_header(head, known)
        register = found is not None and any(n > found for n, _ in head)
        return (best if register else 0), bool(head)

    seen = {id(ws): look(ws) for ws in visible}
    registers = [ws for ws in visible if seen[id(ws)][0]]
    if len(registers) == 1:
        return registers[0]
    if registers:  # several: reading one would drop the others' rows unseen
        names = "、".join(f"“{ws.title}”" for ws in registers)
        raise TableUnreadable(filename, f"工作簿中有多个清单工作表（{names}），一次只导入一个：请"
                                        "只保留要导入的工作表（或分别另存为文件）/ the workbook "
                                        f"has several register sheets ({names}); one is "
                                        "imported at a time: keep only the one to import (or "
                                        "save each as a file of its own)")
    with_rows = [ws for ws in visible if seen[id(ws)][1]]  # no register: say what is wrong
    if any(ws is active for ws in with_rows):
        return active
    return with_rows[0] if with_rows else visible[0]


def _read_sheet(data: bytes, filename: str, known: Known | None = None) -> _Sheet:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise TableUnreadable(filename, f"不是有效的 .xlsx 文件（{type(exc).__name__}） / not a "
                                        f"readable .xlsx file ({exc})") from None
    sheet = _Sheet([], [], [])
    try:
        chosen = _choose_sheet(book, known, filename)
        if chosen is not None:
            sheet.title = chosen.title
            _parse_sheet(book, chosen, sheet)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, SyntaxError) as exc:
        # SyntaxError: XML that does not parse (ElementTree's and lxml's errors derive from it)
        raise TableUnreadable(filename, f"读取工作表出错：{exc} / cannot read the sheet: "
                                        f"{exc}") from None
    finally:
        book.close()
    return sheet


def _parse_sheet(book: Any, ws: Any, sheet: _Sheet) -> None:
    """The rows of a read-only worksheet, as its iter_rows would give them (each as long as
    its last cell), into `sheet`, with what _sheet_parser notes besides."""
    source = ws._get_source()
    try:
        parser = _sheet_parser()(
            source, ws._shared_strings, data_only=True, epoch=book.epoch,
            date_formats=book._date_formats, timedelta_formats=book._timedelta_formats)
        parser.uncomputed = sheet.uncomputed
        day_end = _day_end_styles(book)
        for number, cells in parser.parse():
            values: list[Any] = [None] * (cells[-1]["column"] if cells else 0)
            for cell in cells:
                value = cell["value"]
                if cell["style_id"] in day_end and isinstance(value, datetime):
                    value = f"{value:%Y-%m-%d} 24:00"
                values[cell["column"] - 1] = value
            sheet.rows.append((number, values))
        if parser.merged_cells is not None:  # read once the rows are: it follows them
            sheet.merged = [str(m.ref) for m in parser.merged_cells.mergeCell]
    finally:
        source.close()


def _day_end_styles(book: Any) -> frozenset[int]:
    """The cell styles (their ids, as cells name them) whose number format shows a date and
    24:00: the exports' format for a deadline that ends a day."""
    from openpyxl.styles.numbers import BUILTIN_FORMATS, BUILTIN_FORMATS_MAX_SIZE

    def code(num_fmt_id: int) -> str:
        if num_fmt_id < BUILTIN_FORMATS_MAX_SIZE:
            return str(BUILTIN_FORMATS.get(num_fmt_id, "General"))
        return str(book._number_formats[num_fmt_id - BUILTIN_FORMATS_MAX_SIZE])

    found = set()
    for style_id, style in enumerate(book._cell_styles):
        fmt = code(style.numFmtId)
        own = _QUOTED_OR_ESCAPED.sub("", fmt).lower()  # what it prints of the value itself
        if _DAY_END_LITERAL.search(fmt) and "d" in own and "h" not in own and "s" not in own:
            found.add(style_id)
    return frozenset(found)


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, str):
        if ZERO_WIDTH.search(value) is not None:
            value = ZERO_WIDTH.sub("", value)
        return value.strip() or None
    return value


def read_xlsx(data: bytes, filename: str, known: Known | None = None) -> Table:
    from openpyxl.utils.cell import get_column_letter, range_boundaries

    sheet = _read_sheet(data, filename, known)
    _, header_at = _find_header(((n, [_xlsx_cell(v) for v in values])
                                 for n, values in sheet.rows), known)
    first_row = header_at or 0
    table: Table | None = None
    controls: list[tuple[int, int, str]] = []
    for number, values in sheet.rows:
        if number < first_row:
            continue  # a title above the header
        for pos, value in enumerate(values):
            if isinstance(value, str) and (bad := CONTROL_CHARS.search(value)) is not None:
                controls.append((number, pos, bad.group()))
        cells = [_xlsx_cell(v) for v in values]
        if not any(c is not None for c in cells):
            continue
        if table is None:
            table = Table(filename, ["" if c is None else str(c).strip() for c in cells], number,
                          sheet=sheet.title)
            continue
        table.rows.append((number, cells))
    if table is None:
        return Table(filename, [], 0, sheet=sheet.title)
    width = len(table.header)
    left_out: set[int] = set()
    for ref in sheet.merged:
        first_col, first_row, _, last_row = range_boundaries(ref)
        if last_row <= table.header_row or first_col > width:
            continue  # in or above the header row, or notes right of the table
        row = max(first_row, table.header_row + 1)
        table.problems.append(ReadProblem(
            row, table.column(first_col - 1), first_col - 1,
            f"合并单元格 {ref}：合并后只有第一格有值，请取消合并单元格后再导入",
            f"merged cells {ref}: only the first cell of a merged range has a value; unmerge "
            "them before importing"))
        left_out.update(range(row, last_row + 1))
    for number, column in sheet.uncomputed:
        if number <= table.header_row or column > width:
            continue
        ref = f"{get_column_letter(column)}{number}"
        table.problems.append(ReadProblem(
            number, table.column(column - 1), column - 1,
            f"{ref} 的公式没有计算结果，请在 Excel 中打开并保存后再导入",
            f"formula without a saved value in {ref}: open and save the file in Excel, then "
            "import it again"))
        left_out.add(number)
    if left_out:
        table.rows = [(n, cells) for n, cells in table.rows if n not in left_out]
    table.problems += [_control_char(table, row, pos, char) for row, pos, char in controls
                       if row >= table.header_row]
    _check_headerless(table, rows_may_be_longer=True)
    table.problems.sort(key=lambda p: (p.row, p.position))
    return table
