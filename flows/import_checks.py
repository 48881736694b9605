"""What every spreadsheet import shares (flows/hazard_import.py, flows/risk_import.py):
columns and how headers map onto them, the problems reported (row, column, message, in
Chinese and English), readers of cell values (text, choices, times, units, positive whole
numbers), and the checks around a file: its size, the same file twice, the importer's rights
over every row's unit, values already stored. Nothing here writes."""

from __future__ import annotations

import gc
import hashlib
import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import bindparam, func, literal_column
from sqlmodel import Session, select

from flows.access import who_may
from flows.bulk_start import BulkResult
from flows.found_times import BadCell, shown
from flows.runtime import Runtime
from flows.tabular import ZERO_WIDTH, Known, ReadProblem, RowUnreadable, Table, read_table
from flows.total_rows import drop_total_rows
from models.base import MAX_ID
from models.errors import Conflict, Forbidden, InvalidInput
from models.hazard import ImportBatch

MAX_IMPORT_BYTES = 256 * 1024 * 1024  # a district-year of hazards as CSV is ~120 MB
MAX_REPORTED = 100  # errors listed in a 422; the count says how many there were
RIGHTS = ("manager", "commander")  # admin holds every right


# -- columns, problems -----------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    key: str  # the register field (and the playbook param of the same name)
    header: str  # the Chinese header people write
    title_en: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    max_len: int | None = None



# Columns a register template or an export carries that mean nothing to an import.
IGNORED_HEADERS = frozenset({"序号", "no", "no.", "#"})


@dataclass(frozen=True)
class ImportProblem:
    """One mistake: the spreadsheet row (the header row for a header problem), the column as
    the file names it, and the message in Chinese and English; a header problem in an XLSX
    file names the worksheet read too (the workbook may have others)."""

    row: int
    column: str
    field: str
    zh: str
    en: str
    position: int = -1  # the column's place in the file, to list a row's mistakes in order
    sheet: str | None = None

    @property
    def message(self) -> str:
        where = f"第 {self.row} 行 {self.column}" if self.row else self.column
        where_en = f"row {self.row} {self.column}" if self.row else self.column
        if self.sheet is not None:
            where = f"工作表“{self.sheet}”{where}"
            where_en = f"sheet '{self.sheet}' {where_en}"
        return f"{where}: {self.zh} / {where_en} ({self.field}): {self.en}"

    def as_dict(self, filename: str) -> dict[str, Any]:
        return {"file": filename, "row": self.row, "column": self.column,
                "field": self.field, "message": self.message}


class ImportInvalid(InvalidInput):
    """A file with mistakes; nothing of it was written. `problems` in row order."""

    def __init__(self, filename: str, problems: list[ImportProblem]) -> None:
        self.filename = filename
        self.problems = sorted(problems, key=lambda p: (p.row, p.position))
        first = self.problems[0]
        super().__init__(first.column or "file",
                         f"{filename}: {first.message}"
                         + (f"（共 {len(problems)} 处错误 / {len(problems)} errors）"
                            if len(problems) > 1 else ""))

    def payload(self, limit: int = MAX_REPORTED) -> dict[str, Any]:
        count = len(self.problems)
        return {
            "error": "invalid_input", "field": self.field, "file": self.filename,
            "detail": f"{self.filename}: {count} 处错误，未导入任何数据 / {count} error"
                      f"{'s' if count != 1 else ''}, nothing was imported",
            "error_count": count,
            "errors": [p.as_dict(self.filename) for p in self.problems[:limit]],
        }


def _norm_header(text: str) -> str:
    cleaned = re.sub(r"[\s\u3000*＊]|[（(]必填[)）]", "", ZERO_WIDTH.sub("", text))
    return cleaned.lower()


@dataclass
class Header:
    index: dict[str, int]  # column key -> position
    names: dict[str, str]  # column key -> the header as written
    ignored: list[str]


def _lookup(columns: Sequence[Column]) -> dict[str, Column]:
    """Every name a column answers to, normalised, to the column."""
    lookup: dict[str, Column] = {}
    for col in columns:
        for name in (col.header, col.key, col.title_en, *col.aliases):
            lookup[_norm_header(name)] = col
    return lookup


def known_header(columns: Sequence[Column]) -> Known:
    """Whether a header cell names one of `columns` (how flows/tabular.py finds the header
    row, the delimiter and the sheet)."""
    lookup = _lookup(columns)
    return lambda text: _norm_header(text) in lookup


def map_header(table: Table, columns: Sequence[Column], problems: list[ImportProblem],
                *, unit_required: bool = True) -> Header:
    """The columns found in the header; a duplicate or a missing required column is added
    to `problems`. A column with data but no header right of the named ones is listed among
    the ignored as "第 N 列" (one left of them is a reading problem, flows/tabular.py)."""
    lookup = _lookup(columns)
    sheet = table.sheet
    index: dict[str, int] = {}
    names: dict[str, str] = {}
    ignored: list[str] = []
    for pos, raw in enumerate(table.header):
        norm = _norm_header(raw)
        if not norm:
            continue
        col = lookup.get(norm)
        if col is None:
            if norm not in IGNORED_HEADERS:
                ignored.append(raw)
            continue
        if col.key in index:
            problems.append(ImportProblem(
                table.header_row, raw, col.key,
                f"列重复（与第 {index[col.key] + 1} 列“{names[col.key]}”相同）",
                f"duplicate column (same as column {index[col.key] + 1}, '{names[col.key]}')",
                sheet=sheet))
            continue
        index[col.key] = pos
        names[col.key] = raw
    ignored += [table.column(pos) for pos in table.unheaded]
    # A clerk whose header says 所属社区 or 检查人员 is told which names are read and which of
    # the file's own were not, so the one to rename is plain.
    unread = "、".join(f"“{name}”" for name in ignored[:12]) or "无"
    seen_zh = f"；文件中未识别的列：{unread}"
    seen_en = f"; columns of the file not recognised: {', '.join(ignored[:12]) or 'none'}"
    by_key = {col.key: col for col in columns}
    for col in columns:
        if col.required and col.key not in index:
            problems.append(ImportProblem(
                table.header_row, col.header, col.key,
                f"缺少必填列“{col.header}”（表头可写作：{_names(col)}）{seen_zh}",
                f"missing required column '{col.header}' ({col.key}); accepted headers: "
                f"{_names(col, ', ')}{seen_en}", sheet=sheet))
    if unit_required and "unit" not in index and "unit_name" not in index:
        accepted = "、".join(_names(by_key[k]) for k in ("unit", "unit_name") if k in by_key)
        problems.append(ImportProblem(
            table.header_row, "单位编号", "unit",
            f"缺少必填列“单位编号”（或“单位”；表头可写作：{accepted}）{seen_zh}",
            f"missing required column '单位编号' (unit) or '单位' (unit_name); accepted "
            f"headers: {accepted.replace('、', ', ')}{seen_en}", sheet=sheet))
    return Header(index, names, ignored)


def header_names(col: Column) -> list[str]:
    """The header names a column is read under, its own first, then Chinese, then English."""
    names = list(dict.fromkeys((col.header, *col.aliases, col.title_en)))
    return sorted(names, key=str.isascii)  # stable: Chinese names, then English


def _names(col: Column, sep: str = "、") -> str:
    return sep.join(header_names(col))


def read_upload(data: bytes, filename: str, columns: Sequence[Column]) -> Table:
    """The uploaded file's table, its 合计/小计 rows left out (listed in `table.totals`);
    ImportInvalid naming the row and column where it cannot be read, or for a file with
    nothing in it."""
    try:
        table = read_table(data, filename, known_header(columns))
    except RowUnreadable as exc:
        raise unreadable(exc, columns) from None
    if not table.header:
        raise empty_file(table, columns)
    table.totals = drop_total_rows(table)
    return table


def empty_file(table: Table, columns: Sequence[Column]) -> ImportInvalid:
    required = "、".join([c.header for c in columns if c.required] + ["单位编号"])
    return ImportInvalid(table.filename, [ImportProblem(
        0, required, "file", f"文件为空：没有表头和数据行（必填列：{required}）",
        f"the file is empty: no header and no rows (required columns: {required})")])


def unreadable(exc: RowUnreadable, columns: Sequence[Column]) -> ImportInvalid:
    """A file that cannot be read past a row (flows/tabular.py), as an ImportInvalid naming
    that row and column like any other mistake."""
    col = _lookup(columns).get(_norm_header(exc.problem.column))
    return ImportInvalid(exc.filename, [_problem(exc.problem, col.key if col else "file")])


def reading_problems(table: Table, header: Header) -> list[ImportProblem]:
    """The mistakes found while reading (a row with more cells than the header, merged cells,
    a formula with no saved value, a control character, data under a blank header), named
    like the others."""
    keys = {pos: key for key, pos in header.index.items()}
    return [_problem(p, keys.get(p.position, "file"),
                     table.sheet if p.row == table.header_row else None)
            for p in table.problems]


def _problem(problem: ReadProblem, key: str, sheet: str | None = None) -> ImportProblem:
    return ImportProblem(problem.row, problem.column, key, problem.zh, problem.en,
                         problem.position, sheet)


# -- cell values ------------------------------------------------------------------------------

def text_cell(value: Any, col: Column, limit: int | None = None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "是" if value else "否"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, datetime | date | time):
        text = value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    else:
        text = str(value)
    text = text.strip()
    if not text:
        return None
    most = limit if limit is not None else col.max_len
    if most is not None and len(text) > most:
        raise BadCell(f"超过 {most} 个字符（{len(text)} 个）",
                   f"longer than {most} characters ({len(text)})")
    return text


def choice_cell(value: Any, allowed: Sequence[str]) -> str | None:
    text = None if value is None else str(value).strip()
    if not text:
        return None
    if text not in allowed:
        raise BadCell(f"{shown(text)} 不是有效值（可选：{'、'.join(allowed)}）",
                   f"{shown(text)} is not a valid value (allowed: {', '.join(allowed)})")
    return text


def positive_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadCell(f"{shown(value)} 不是编号", f"{shown(value)} is not a run id")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().lstrip("#")
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise BadCell(f"{shown(value)} 不是专项行动编号（运行编号，正整数）",
                   f"{shown(value)} is not a campaign run id (a positive whole number)")
    return int(text)


class Units:
    """单位编号 / 单位 to a unit id: ids as in the org chart, names resolved uniquely."""

    def __init__(self, rt: Runtime) -> None:
        self.units = rt.org.units
        self.by_name: dict[str, list[str]] = {}
        for unit in rt.org.units.values():
            self.by_name.setdefault(unit.name, []).append(unit.id)
            if unit.name_en:
                self.by_name.setdefault(unit.name_en, []).append(unit.id)

    def resolve(self, unit_id: Any, name: Any) -> tuple[str | None, tuple[str, str, str] | None]:
        """(unit id, None) or (None, (column key, zh, en)) for the first problem."""
        uid = None if unit_id is None else str(unit_id).strip() or None
        uname = None if name is None else str(name).strip() or None
        if uid is None and uname is None:
            return None, ("unit", "必填，不能为空（单位编号或单位）",
                          "required: give the unit id (单位编号) or name (单位)")
        if uid is not None and uid not in self.units:
            return None, ("unit", f"{shown(uid)} 不是组织架构中的单位编号",
                          f"unknown unit id {shown(uid)}")
        if uname is not None:
            ids = self.by_name.get(uname, [])
            if uid is not None:
                if uid not in ids:
                    return None, ("unit_name", f"{shown(uname)} 与单位编号 {uid}（"
                                  f"{self.units[uid].name}）不一致",
                                  f"{shown(uname)} does not match unit id {uid} "
                                  f"({self.units[uid].name})")
                return uid, None
            if not ids:
                return None, ("unit_name", f"{shown(uname)} 不是组织架构中的单位名称",
                              f"no unit is named {shown(uname)}")
            if len(ids) > 1:
                return None, ("unit_name", f"{shown(uname)} 对应多个单位（{'、'.join(ids)}），"
                              "请填写单位编号",
                              f"{shown(uname)} names several units ({', '.join(ids)}): give "
                              "the unit id")
            return ids[0], None
        return uid, None


# -- the import ------------------------------------------------------------------------------

@dataclass
class ImportResult:
    import_id: int
    kind: str
    filename: str
    rows: int
    run_ids: list[int] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    skipped_rows: list[int] = field(default_factory=list)  # 合计/小计 rows, not imported
    inserted: int = 0
    updated: int = 0
    playbook: str | None = None
    bulk: BulkResult | None = None


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off while a big file is parsed, checked and written.
    Those phases allocate millions of small objects that live to the end (rows, params), and
    every full collection walks all of them again: measured at 400,000 rows, parsing 2.0 s ->
    1.2 s and checking 4.4 s -> 2.9 s without it. Reference counting still frees everything
    acyclic; cycles wait until the collector is back. Counted across threads, so concurrent
    imports turn it back on only when the last one ends, and only if it was on before."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def check_size(data: bytes, filename: str) -> None:
    """The one limit on an uploaded register file (the API reads at most one byte more)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput("file", f"{filename}: 文件超过 {MAX_IMPORT_BYTES // 2**20} MB / "
                                   f"larger than {MAX_IMPORT_BYTES // 2**20} MB")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows_sha256(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The digest of checked rows, (unit, values) in file order: the same hazards read from
    another encoding or format give the same digest."""
    text = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_repeat(session: Session, rt: Runtime, kind: str, digest: str, filename: str,
                 rows_digest: str | None = None) -> None:
    """409 for a file imported before: the same bytes, or (`rows_digest`) the same rows saved
    again in another encoding or format."""
    same = ImportBatch.sha256 == digest
    if rows_digest is not None:
        same = same | (ImportBatch.rows_sha256 == rows_digest)  # type: ignore[assignment,operator]
    earlier = session.exec(
        select(ImportBatch).where(ImportBatch.kind == kind, same)
        .order_by(ImportBatch.id)  # type: ignore[arg-type]
    ).first()
    if earlier is None:
        return
    when = rt.renderer.local(earlier.imported_at)
    who = rt.org.person_name(earlier.imported_by)
    if earlier.sha256 == digest:
        raise Conflict(
            f"{filename}: 同一文件已于 {when} 由 {who} 导入（批次 #{earlier.id}，"
            f"{earlier.rows} 行）；确需重复导入请加 repeat=true / the same file was imported "
            f"before by {earlier.imported_by} (batch {earlier.id}, {earlier.rows} rows); pass "
            "repeat=true to import it again",
            current=f"import:{earlier.id}")
    raise Conflict(
        f"{filename}: 内容与 {when} 由 {who} 导入的 {earlier.filename}（批次 #{earlier.id}，"
        f"{earlier.rows} 行）逐行相同，只是另存为了其他编码或格式；确需重复导入请加 repeat=true / "
        f"the same rows were imported before from {earlier.filename} by {earlier.imported_by} "
        f"(batch {earlier.id}); pass repeat=true to import them again",
        current=f"import:{earlier.id}")


def require_rights(rt: Runtime, actor: str, units: list[tuple[int, str]],
                    unit_header: str) -> None:
    """Every row's unit must be within the importer's manager/commander units (or admin)."""
    allowed: dict[str, bool] = {}
    denied: list[tuple[int, str]] = []
    for row, unit_id in units:
        ok = allowed.get(unit_id)
        if ok is None:
            ok = any(rt.org.has_right(actor, right, unit_id) for right in RIGHTS)
            allowed[unit_id] = ok
        if not ok:
            denied.append((row, unit_id))
    if denied:
        row, unit_id = denied[0]
        name = rt.org.unit(unit_id).name
        more = (f"（另有 {len(denied) - 1} 行同样无权 / and {len(denied) - 1} more rows）"
                if len(denied) > 1 else "")
        (zh_m, en_m), (zh_c, en_c) = (who_may(rt.org, r, unit_id) for r in RIGHTS)
        raise Forbidden(
            f"第 {row} 行 {unit_header}: 无权导入单位 {unit_id}（{name}）的数据：需要{zh_m}"
            f"或{zh_c}的权限{more} / row {row}: importing for unit '{unit_id}' requires {en_m} "
            f"or {en_c}")


def existing_values(session: Session, column: Any, values: list[str],
              extra: Any = None) -> dict[str, Any]:
    """Which of `values` are stored in `column` (lookups on its unique index)."""
    cols = (column, extra) if extra is not None else (column,)
    if session.get_bind().dialect.name == "sqlite":
        # The values as one JSON array, bound once: SQLAlchemy's expanding IN spends µs a
        # value building its parameters (about 3 s, profiled, of a 400,000-row import, which
        # asks this three times per code); json_each nothing worth measuring.
        listed = select(literal_column("value")).select_from(func.json_each(
            bindparam("values", json.dumps(values, ensure_ascii=False))))
        statements = [select(*cols).where(column.in_(listed))]
    else:
        statements = [select(*cols).where(column.in_(values[start:start + 5000]))
                      for start in range(0, len(values), 5000)]
    found: dict[str, Any] = {}
    for statement in statements:
        for row in session.execute(statement).all():
            found[row[0]] = row[1] if extra is not None else True
    return found
    for start in range(0, len(values), 5000):
        part = values[start:start + 5000]
        for row in session.execute(select(*cols).where(column.in_(part))).all():
            found[row[0]] = row[1] if extra is not None else True
    return found
