"""Bulk import of the registers from spreadsheets: hazards (隐患清单, one run each) and risk
points (风险清单). A file is all or nothing: every row is checked first and, when any row is
wrong, nothing of the file is written and every mistake is reported (row, column, message);
otherwise the whole file is written in one transaction.

Hazard columns (the first non-blank row is the header; columns in any order; the English name
in brackets is accepted as a header too, as are a few variants such as 地点 and 等级; other
columns are ignored and reported back):

- 隐患编号 (code), optional: unique in the file and among stored hazards; default YH + run id.
- 单位编号 (unit), required unless 单位 is given: an org unit id (c1, liuhe).
- 单位 (unit_name): an org unit name, resolved uniquely; must agree with 单位编号 if both.
- 隐患来源 (source): 检查发现 / 群众举报 / 执法检查 / 事故调查 (default 检查发现).
- 隐患等级 (grade): 一般 / 重大 (default 一般).
- 隐患类别 (category): free text (消防安全, 用电安全, ...).
- 隐患地点 (location), required: where the hazard is.
- 隐患描述 (description), 涉及企业 (enterprise): free text.
- 发现时间 (found_at): 2026-02-01, 2026-02-01 09:30, 2026/2/1 9:30, 2026年2月1日, ISO 8601
  with an offset, or an Excel date cell (or its serial number); local time
  (CLOSELOOP_TIMEZONE, Asia/Shanghai) unless an offset is written; not in the future;
  default the import time.
- 发现人 (found_by): a name or person id (default the importer).
- 专项行动 (campaign): the run id of a running 3030 campaign (kind: campaign) of the hazard's
  unit or a unit above it.

The allowed values of 隐患来源 and 隐患等级 are the playbook's own enum values when it declares
them so. Each row becomes a run of the playbook (default hazard-3030) for its unit, started
with flows/bulk_start.py; the values go through the playbook's typed params exactly as
`start_run` checks them. The importer needs `manager` or `commander` over every row's unit (or
`admin`): otherwise 403 naming the first row that is not theirs, and nothing is written. The
same file (by SHA-256) is not imported twice unless asked (`allow_repeat`): a double submit of
400,000 rows would otherwise make 400,000 duplicates.

Risk point columns: 风险点编号 (code, required), 单位编号/单位 (unit, required), 风险点名称
(name, required), 风险类别 (category), 位置 (location), 风险等级 (level, required: 重大 / 较大 /
一般 / 低), 管控措施 (controls), 责任人 (responsible). A risk point is keyed by its code: a
code already stored is updated in place (upsert), which needs rights over the unit it belongs
to now as well as the unit in the file.
"""

from __future__ import annotations

import gc
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from flows.bulk_start import BulkResult, NewRun, bulk_start
from flows.campaigns import campaign_problem
from flows.params import check_values
from flows.runtime import Runtime
from flows.spec import Playbook
from flows.tabular import Table, read_table
from models.audit import AuditEvent
from models.db import read_session, session_scope
from models.errors import Conflict, Forbidden, InvalidInput, NotFound
from models.hazard import Hazard, ImportBatch, RiskPoint
from models.run import Run

DEFAULT_PLAYBOOK = "hazard-3030"
MAX_IMPORT_BYTES = 256 * 1024 * 1024  # a district-year of hazards as CSV is ~120 MB
MAX_REPORTED = 100  # errors listed in a 422; the count says how many there were
SOURCES = ("检查发现", "群众举报", "执法检查", "事故调查")
GRADES = ("一般", "重大")
RISK_LEVELS = ("重大", "较大", "一般", "低")
RIGHTS = ("manager", "commander")  # admin holds every right
FUTURE_SLACK = timedelta(minutes=10)  # a PC clock a little ahead of the server's


# -- columns, problems -----------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    key: str  # the register field (and the playbook param of the same name)
    header: str  # the Chinese header people write
    title_en: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    max_len: int | None = None


HAZARD_COLUMNS = (
    Column("code", "隐患编号", "code", ("编号", "hazard_code"), max_len=60),
    Column("unit", "单位编号", "unit", ("unit_id", "单位代码")),
    Column("unit_name", "单位", "unit_name", ("单位名称", "所属单位")),
    Column("source", "隐患来源", "source", ("来源",)),
    Column("grade", "隐患等级", "grade", ("等级",)),
    Column("category", "隐患类别", "category", ("类别",), max_len=60),
    Column("location", "隐患地点", "location", ("地点",), required=True, max_len=300),
    Column("description", "隐患描述", "description", ("描述", "隐患内容")),
    Column("enterprise", "涉及企业", "enterprise", ("企业", "企业名称"), max_len=200),
    Column("found_at", "发现时间", "found_at", ("发现日期",)),
    Column("found_by", "发现人", "found_by", (), max_len=80),
    Column("campaign", "专项行动", "campaign", ("campaign_run_id",)),
)
RISK_COLUMNS = (
    Column("code", "风险点编号", "code", ("编号",), required=True, max_len=60),
    Column("unit", "单位编号", "unit", ("unit_id", "单位代码")),
    Column("unit_name", "单位", "unit_name", ("单位名称", "所属单位")),
    Column("name", "风险点名称", "name", ("名称",), required=True, max_len=200),
    Column("category", "风险类别", "category", ("类别",), max_len=60),
    Column("location", "位置", "location", ("地点",), max_len=300),
    Column("level", "风险等级", "level", ("等级",), required=True),
    Column("controls", "管控措施", "controls", ()),
    Column("responsible", "责任人", "responsible", (), max_len=80),
)
# Columns a register template or an export carries that mean nothing to an import.
IGNORED_HEADERS = frozenset({"序号", "no", "no.", "#"})


@dataclass(frozen=True)
class ImportProblem:
    """One mistake: the spreadsheet row (the header row for a header problem), the column as
    the file names it, and the message in Chinese and English."""

    row: int
    column: str
    field: str
    zh: str
    en: str
    position: int = -1  # the column's place in the file, to list a row's mistakes in order

    @property
    def message(self) -> str:
        where = f"第 {self.row} 行 {self.column}" if self.row else self.column
        where_en = f"row {self.row} {self.column}" if self.row else self.column
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


class _Bad(Exception):
    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


def _shown(value: Any) -> str:
    text = str(value)
    return f"'{text if len(text) <= 40 else text[:37] + '...'}'"


def _norm_header(text: str) -> str:
    cleaned = re.sub(r"[\s\u3000*＊]|[（(]必填[)）]", "", text)
    return cleaned.lower()


@dataclass
class _Header:
    index: dict[str, int]  # column key -> position
    names: dict[str, str]  # column key -> the header as written
    ignored: list[str]


def _map_header(table: Table, columns: Sequence[Column], problems: list[ImportProblem],
                *, unit_required: bool = True) -> _Header:
    lookup: dict[str, Column] = {}
    for col in columns:
        for name in (col.header, col.key, col.title_en, *col.aliases):
            lookup[_norm_header(name)] = col
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
                f"duplicate column (same as column {index[col.key] + 1}, '{names[col.key]}')"))
            continue
        index[col.key] = pos
        names[col.key] = raw
    for col in columns:
        if col.required and col.key not in index:
            problems.append(ImportProblem(
                table.header_row, col.header, col.key, f"缺少必填列“{col.header}”",
                f"missing required column '{col.header}' ({col.key})"))
    if unit_required and "unit" not in index and "unit_name" not in index:
        problems.append(ImportProblem(
            table.header_row, "单位编号", "unit", "缺少必填列“单位编号”（或“单位”）",
            "missing required column '单位编号' (unit) or '单位' (unit_name)"))
    return _Header(index, names, ignored)


def _empty(table: Table, columns: Sequence[Column]) -> ImportInvalid:
    required = "、".join([c.header for c in columns if c.required] + ["单位编号"])
    return ImportInvalid(table.filename, [ImportProblem(
        0, required, "file", f"文件为空：没有表头和数据行（必填列：{required}）",
        f"the file is empty: no header and no rows (required columns: {required})")])


# -- cell values ------------------------------------------------------------------------------

def _text(value: Any, col: Column, limit: int | None = None) -> str | None:
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
        raise _Bad(f"超过 {most} 个字符（{len(text)} 个）",
                   f"longer than {most} characters ({len(text)})")
    return text


def _choice(value: Any, allowed: Sequence[str]) -> str | None:
    text = None if value is None else str(value).strip()
    if not text:
        return None
    if text not in allowed:
        raise _Bad(f"{_shown(text)} 不是有效值（可选：{'、'.join(allowed)}）",
                   f"{_shown(text)} is not a valid value (allowed: {', '.join(allowed)})")
    return text


_DATE_TIME = re.compile(
    r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:[ T]+(\d{1,2})[:：时](\d{1,2})(?:[:：分](\d{1,2})(?:\.\d+)?秒?)?分?)?$"
)


class _Times:
    """发现时间 cells to aware datetimes (local time unless an offset is written)."""

    def __init__(self, tz: ZoneInfo, now: datetime) -> None:
        self.tz = tz
        self.latest = now + FUTURE_SLACK
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
            found = self._serial(value)
        else:
            raise _Bad(f"{_shown(value)} 不是日期或时间", f"{_shown(value)} is not a date or time")
        if found > self.latest:
            raise _Bad(f"{_shown(self._local(found))} 晚于当前时间",
                       f"{_shown(self._local(found))} is in the future")
        return found

    def _local(self, value: datetime) -> str:
        return value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def _text(self, value: str) -> datetime:
        text = value.strip()
        if text.replace(".", "", 1).isdigit():  # an Excel serial number that lost its format
            return self._serial(float(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            match = _DATE_TIME.match(text)
            if match is None:
                raise _Bad(f"{_shown(value)} 不是有效的日期时间（例如 2026-02-01 或 "
                           "2026-02-01 09:30）",
                           f"{_shown(value)} is not a date or date and time (like 2026-02-01 "
                           "or 2026-02-01 09:30)") from None
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
            try:
                parsed = datetime(y, mo, d, h, mi, s)
            except ValueError:
                raise _Bad(f"{_shown(value)} 不是有效的日期", f"{_shown(value)} is not a valid "
                           "date") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=self.tz)

    def _serial(self, number: float) -> datetime:
        from openpyxl.utils.datetime import from_excel

        if not 1 <= number < 2958466:
            raise _Bad(f"{_shown(number)} 不是日期", f"{_shown(number)} is not a date")
        found = from_excel(number)
        if not isinstance(found, datetime):  # pragma: no cover - from_excel gives datetimes
            raise _Bad(f"{_shown(number)} 不是日期", f"{_shown(number)} is not a date")
        return found.replace(tzinfo=self.tz)


def _positive_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Bad(f"{_shown(value)} 不是编号", f"{_shown(value)} is not a run id")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().lstrip("#")
    if not text.isdigit() or int(text) < 1 or int(text) >= 2**63:
        raise _Bad(f"{_shown(value)} 不是专项行动编号（运行编号，正整数）",
                   f"{_shown(value)} is not a campaign run id (a positive whole number)")
    return int(text)


class _Units:
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
            return None, ("unit", f"{_shown(uid)} 不是组织架构中的单位编号",
                          f"unknown unit id {_shown(uid)}")
        if uname is not None:
            ids = self.by_name.get(uname, [])
            if uid is not None:
                if uid not in ids:
                    return None, ("unit_name", f"{_shown(uname)} 与单位编号 {uid}（"
                                  f"{self.units[uid].name}）不一致",
                                  f"{_shown(uname)} does not match unit id {uid} "
                                  f"({self.units[uid].name})")
                return uid, None
            if not ids:
                return None, ("unit_name", f"{_shown(uname)} 不是组织架构中的单位名称",
                              f"no unit is named {_shown(uname)}")
            if len(ids) > 1:
                return None, ("unit_name", f"{_shown(uname)} 对应多个单位（{'、'.join(ids)}），"
                              "请填写单位编号",
                              f"{_shown(uname)} names several units ({', '.join(ids)}): give "
                              "the unit id")
            return ids[0], None
        return uid, None


# The param types whose check_values result is the value itself for what the readers here
# give: text for string params, one of the playbook's own values for enums, ISO text from
# isoformat() for date/datetime, a positive int for int/number.
_CANONICAL = {"code": ("string",), "category": ("string",), "location": ("string",),
              "description": ("string",), "enterprise": ("string",), "found_by": ("string",),
              "source": ("enum",), "grade": ("enum",), "found_at": ("datetime", "date"),
              "campaign": ("int", "number")}


def _params_template(specs: dict[str, Any], index: dict[str, int], found_type: str
                     ) -> dict[str, Any] | None:
    """The params of a row with nothing given (defaults, else None, in the playbook's order),
    when check_values would leave every value read from this file as it is; else None."""
    for key in index:
        if key in ("unit", "unit_name"):
            continue
        if specs[key].type not in _CANONICAL.get(key, ()):
            return None
    template: dict[str, Any] = {}
    for name, spec in specs.items():
        if isinstance(spec.default, list | dict):
            return None  # check_values copies these
        template[name] = spec.default
    return template


def _allowed(playbook: Playbook, name: str, fallback: Sequence[str]) -> Sequence[str]:
    spec = playbook.params.get(name)
    if spec is not None and spec.type == "enum" and spec.values:
        return spec.values
    return fallback


# -- the import ------------------------------------------------------------------------------

@dataclass
class ImportResult:
    import_id: int
    kind: str
    filename: str
    rows: int
    run_ids: list[int] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_repeat(session: Session, kind: str, digest: str, filename: str) -> None:
    earlier = session.exec(
        select(ImportBatch).where(ImportBatch.kind == kind, ImportBatch.sha256 == digest)
        .order_by(ImportBatch.id)  # type: ignore[arg-type]
    ).first()
    if earlier is not None:
        raise Conflict(
            f"{filename}: 同一文件已于 {earlier.imported_at:%Y-%m-%d %H:%M} UTC 由 "
            f"{earlier.imported_by} 导入（批次 #{earlier.id}，{earlier.rows} 行）；确需重复导入请"
            f"加 repeat=true / the same file was imported before (batch {earlier.id}, "
            f"{earlier.rows} rows); pass repeat=true to import it again",
            current=f"import:{earlier.id}")


def _require_rights(rt: Runtime, actor: str, units: list[tuple[int, str]],
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
        raise Forbidden(
            f"第 {row} 行 {unit_header}: 无权导入单位 {unit_id}（{name}）的数据：需要该单位或上级"
            f"单位的 manager 或 commander 权限{more} / row {row}: importing for unit "
            f"'{unit_id}' requires role 'manager' or 'commander' in that unit or above")


def _existing(session: Session, column: Any, values: list[str],
              extra: Any = None) -> dict[str, Any]:
    """Which of `values` are stored in `column` (chunked IN lookups on its unique index)."""
    found: dict[str, Any] = {}
    for start in range(0, len(values), 5000):
        part = values[start:start + 5000]
        cols = (column, extra) if extra is not None else (column,)
        for row in session.execute(select(*cols).where(column.in_(part))).all():
            found[row[0]] = row[1] if extra is not None else True
    return found


def import_hazards(
    rt: Runtime, *, data: bytes, filename: str, actor: str,
    playbook_id: str = DEFAULT_PLAYBOOK, allow_repeat: bool = False,
) -> ImportResult:
    """Check every row of a hazard file, then start one run per row in one transaction.
    Raises ImportInvalid (422, every mistake), Forbidden (403, the first row that is not the
    importer's), Conflict (409, the same file again) or InvalidInput (unknown playbook)."""
    try:
        playbook = rt.catalog.get(playbook_id)
    except NotFound:
        raise InvalidInput("playbook", f"unknown playbook '{playbook_id}' (known: "
                           f"{', '.join(sorted(rt.catalog.current))})") from None
    if playbook.register_ is None:
        raise InvalidInput("playbook", f"playbook '{playbook_id}' keeps no register (台账): "
                           "hazards are imported into a playbook with `register:`")
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput("file", f"{filename}: 文件超过 {MAX_IMPORT_BYTES // 2**20} MB / "
                                   f"larger than {MAX_IMPORT_BYTES // 2**20} MB")
    with paused_gc():
        return _import_hazards(rt, playbook, data=data, filename=filename, actor=actor,
                               allow_repeat=allow_repeat)


def _import_hazards(rt: Runtime, playbook: Playbook, *, data: bytes, filename: str,
                    actor: str, allow_repeat: bool) -> ImportResult:
    table = read_table(data, filename)
    if not table.header:
        raise _empty(table, HAZARD_COLUMNS)
    checked = _check_hazard_rows(rt, playbook, table, actor)
    del table  # the parsed cells (a third of the memory at 400,000 rows) are not needed now
    digest = _sha256(data)
    try:
        with session_scope(rt.db) as session:
            if not allow_repeat:
                _check_repeat(session, "hazards", digest, filename)
            problems = _check_stored(session, rt, checked)
            if problems:
                raise ImportInvalid(filename, problems)
            now = rt.clock.now()
            batch = ImportBatch(kind="hazards", filename=filename[:255], sha256=digest,
                                rows=len(checked.runs), imported_by=actor, imported_at=now)
            session.add(batch)
            session.flush()
            result = bulk_start(session, rt, playbook=playbook, runs=checked.runs, actor=actor,
                                import_id=batch.id, label=filename)
            session.add(AuditEvent(
                at=now, actor=actor, action="hazards_imported",
                detail={"import": batch.id, "file": filename, "sha256": digest,
                        "rows": len(checked.runs), "playbook": playbook.id,
                        "version": playbook.version}))
    except IntegrityError as exc:  # a generated code (YH + id) taken by an earlier import
        raise ImportInvalid(filename, [ImportProblem(
            0, "隐患编号", "code", "与已登记的隐患编号冲突，请为每行填写隐患编号",
            f"a hazard code clashes with a stored one ({exc.orig}); give every row a code")]
        ) from None
    return ImportResult(import_id=batch.id or 0, kind="hazards", filename=filename,
                        rows=len(checked.runs), run_ids=result.run_ids,
                        ignored_columns=checked.ignored, playbook=playbook.id, bulk=result)


@dataclass
class _Checked:
    runs: list[NewRun]
    ignored: list[str]
    header: _Header
    codes: dict[str, int]  # code -> row
    campaigns: dict[int, list[tuple[int, str]]]  # campaign run id -> [(row, unit)]


def _check_hazard_rows(rt: Runtime, playbook: Playbook, table: Table, actor: str) -> _Checked:
    problems: list[ImportProblem] = []
    header = _map_header(table, HAZARD_COLUMNS, problems)
    specs = playbook.params
    cols = {c.key: c for c in HAZARD_COLUMNS}
    # A column with no param of that name in the playbook cannot be kept anywhere.
    for key in header.index:
        if key not in ("unit", "unit_name") and key not in specs:
            problems.append(ImportProblem(
                table.header_row, header.names[key], key,
                f"流程“{playbook.id}”没有参数 {key}，无法导入此列",
                f"playbook '{playbook.id}' has no parameter '{key}' for this column"))
    for name, spec in specs.items():
        if name in cols and cols[name].required:
            continue  # reported above as a missing column
        if spec.required and spec.default is None and name not in header.index:
            problems.append(ImportProblem(
                table.header_row, cols[name].header if name in cols else name, name,
                f"流程“{playbook.id}”要求参数 {name}，文件缺少此列",
                f"playbook '{playbook.id}' requires parameter '{name}'; the file has no such "
                "column"))
    if problems:
        raise ImportInvalid(table.filename, problems)
    if not table.rows:
        raise ImportInvalid(table.filename, [ImportProblem(
            table.header_row + 1, header.names.get("location", "隐患地点"), "file",
            "文件只有表头，没有数据行", "the file has a header but no rows")])

    index = header.index
    names = header.names
    units = _Units(rt)
    times = _Times(rt.tz, rt.clock.now())
    sources = _allowed(playbook, "source", SOURCES)
    grades = _allowed(playbook, "grade", GRADES)
    found_type = specs["found_at"].type if "found_at" in specs else "datetime"
    # The run's title is "<playbook title>·<location>", at most 300 characters.
    location_max = min(300, 300 - len(playbook.title) - 1)
    texts = [(k, index[k], cols[k].max_len or 10**9) for k in
             ("code", "category", "description", "enterprise", "found_by") if k in index]
    i_loc, i_unit, i_name = index["location"], index.get("unit"), index.get("unit_name")
    i_found, i_camp = index.get("found_at"), index.get("campaign")
    choices = [(key, index[key], frozenset(allowed), allowed)
               for key, allowed in (("source", sources), ("grade", grades)) if key in index]
    known_units = units.units
    template = _params_template(specs, index, found_type)
    required = [n for n, spec in specs.items() if spec.required and spec.default is None]
    found_memo: dict[str, str] = {}
    width = len(table.header)
    runs: list[NewRun] = []
    codes: dict[str, int] = {}
    campaigns: dict[int, list[tuple[int, str]]] = {}
    unit_rows: list[tuple[int, str]] = []

    def fail(bad: list[ImportProblem], number: int, key: str, exc: _Bad) -> None:
        bad.append(ImportProblem(number, names.get(key, cols[key].header), key, exc.zh,
                                 exc.en, index.get(key, -1)))

    # One pass, every check per row; the common case (clean text from a CSV) takes the short
    # branches, anything else goes through the full readers.
    for number, cells in table.rows:
        if len(cells) < width:
            cells = cells + [None] * (width - len(cells))
        raw: dict[str, Any] = {}
        bad: list[ImportProblem] = []
        unit_id = cells[i_unit] if i_unit is not None else None
        if i_name is not None or type(unit_id) is not str or unit_id not in known_units:
            unit_id, problem = units.resolve(unit_id, cells[i_name] if i_name is not None
                                             else None)
            if problem is not None:
                key, zh, en = problem
                fail(bad, number, key if key in names else
                     ("unit" if "unit" in names else "unit_name"), _Bad(zh, en))
        value = cells[i_loc]
        if type(value) is str and len(value) <= location_max:
            raw["location"] = value
        else:
            try:
                location = _text(value, cols["location"], location_max)
                if location is None:
                    raise _Bad("必填，不能为空", "required, must not be empty")
                raw["location"] = location
            except _Bad as exc:
                fail(bad, number, "location", exc)
        for key, pos, most in texts:
            value = cells[pos]
            if value is None:
                continue
            if type(value) is str and len(value) <= most:
                raw[key] = value
                continue
            try:
                value = _text(value, cols[key])
            except _Bad as exc:
                fail(bad, number, key, exc)
                continue
            if value is not None:
                raw[key] = value
        for key, at, exact, allowed in choices:
            value = cells[at]
            if value in exact:  # the common case: the value exactly as the playbook spells it
                raw[key] = value
            elif value is not None:
                try:
                    value = _choice(value, allowed)
                    if value is not None:
                        raw[key] = value
                except _Bad as exc:
                    fail(bad, number, key, exc)
        if i_found is not None:
            value = cells[i_found]
            if value is not None:
                iso = found_memo.get(value) if type(value) is str else None
                if iso is None:
                    try:
                        when = times.parse(value)
                        if when is not None:
                            iso = (when.astimezone(rt.tz).date().isoformat()
                                   if found_type == "date" else when.isoformat())
                            if type(value) is str:
                                found_memo[value] = iso
                    except _Bad as exc:
                        fail(bad, number, "found_at", exc)
                if iso is not None:
                    raw["found_at"] = iso
        if i_camp is not None:
            try:
                campaign = _positive_int(cells[i_camp])
                if campaign is not None:
                    raw["campaign"] = campaign
                    if unit_id is not None:
                        campaigns.setdefault(campaign, []).append((number, unit_id))
            except _Bad as exc:
                fail(bad, number, "campaign", exc)
        code = raw.get("code")
        if code is not None:
            first = codes.get(code)
            if first is not None:
                fail(bad, number, "code", _Bad(f"{_shown(code)} 与第 {first} 行重复",
                                               f"{_shown(code)} repeats row {first}"))
            else:
                codes[code] = number
        if bad:
            problems.extend(bad)
            continue
        # The playbook's own typed params, as start_run checks them: the values above are
        # already what check_values would make of them when the types line up (then the
        # defaults are filled in directly, in the playbook's order); otherwise check_values.
        if template is not None and all(name in raw for name in required):
            params = dict(template)
            params.update(raw)
        else:
            params, param_problems = check_values(specs, raw)
            for p in param_problems:
                fail(bad, number, p.name if p.name in cols else "location",
                     _Bad(f"参数 {p.name} 无效：{p.message}", p.message))
            if bad:
                problems.extend(bad)
                continue
        if unit_id is not None:
            runs.append(NewRun(unit_id=unit_id, params=params, row=number))
            unit_rows.append((number, unit_id))
    if problems:
        raise ImportInvalid(table.filename, problems)
    _require_rights(rt, actor, unit_rows, names.get("unit", names.get("unit_name", "单位编号")))
    return _Checked(runs, header.ignored, header, codes, campaigns)


def _check_stored(session: Session, rt: Runtime, checked: _Checked) -> list[ImportProblem]:
    """Checks against the database, inside the write transaction: codes already registered,
    and campaigns that must exist, be running 3030 campaigns, and cover the row's unit."""
    problems: list[ImportProblem] = []
    names = checked.header.names
    code_header = names.get("code", "隐患编号")
    taken = _existing(session, Hazard.code, list(checked.codes))  # type: ignore[arg-type]
    for code in taken:
        problems.append(ImportProblem(
            checked.codes[code], code_header, "code", f"{_shown(code)} 已经登记过",
            f"{_shown(code)} is already registered"))
    camp_header = names.get("campaign", "专项行动")
    for run_id, rows in checked.campaigns.items():
        for row, unit_id in rows:
            why = campaign_problem(session, rt, run_id, unit_id)
            if why is not None:
                problems.append(ImportProblem(row, camp_header, "campaign", *why))
    return problems


# -- risk points (风险清单) -------------------------------------------------------------------

RISK_FIELDS = ("unit_id", "name", "category", "location", "level", "controls", "responsible")


def import_risks(
    rt: Runtime, *, data: bytes, filename: str, actor: str, allow_repeat: bool = False,
) -> ImportResult:
    """Check every row of a risk point file, then upsert them by code in one transaction."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput("file", f"{filename}: larger than {MAX_IMPORT_BYTES // 2**20} MB")
    table = read_table(data, filename)
    if not table.header:
        raise _empty(table, RISK_COLUMNS)
    problems: list[ImportProblem] = []
    header = _map_header(table, RISK_COLUMNS, problems)
    if problems:
        raise ImportInvalid(filename, problems)
    if not table.rows:
        raise ImportInvalid(filename, [ImportProblem(
            table.header_row + 1, header.names["code"], "file", "文件只有表头，没有数据行",
            "the file has a header but no rows")])
    cols = {c.key: c for c in RISK_COLUMNS}
    names = header.names
    units = _Units(rt)
    rows: list[dict[str, Any]] = []
    codes: dict[str, int] = {}
    readers: list[tuple[str, Callable[[Any], Any]]] = [
        (key, (lambda v, c=cols[key]: _text(v, c))) for key in
        ("code", "name", "category", "location", "controls", "responsible")]
    readers.append(("level", lambda v: _choice(v, RISK_LEVELS)))
    for number, cells in table.rows:
        row: dict[str, Any] = {}
        for key, reader in readers:
            pos = header.index.get(key)
            try:
                row[key] = reader(cells[pos] if pos is not None and pos < len(cells) else None)
                if row[key] is None and cols[key].required:
                    raise _Bad("必填，不能为空", "required, must not be empty")
            except _Bad as exc:
                problems.append(ImportProblem(number, names.get(key, cols[key].header), key,
                                              exc.zh, exc.en, header.index.get(key, -1)))
        get = header.index.get
        unit_id, problem = units.resolve(
            cells[get("unit", -1)] if 0 <= get("unit", -1) < len(cells) else None,
            cells[get("unit_name", -1)] if 0 <= get("unit_name", -1) < len(cells) else None)
        if problem is not None:
            key, zh, en = problem
            key = key if key in names else ("unit" if "unit" in names else "unit_name")
            problems.append(ImportProblem(number, names[key], key, zh, en))
        code = row.get("code")
        if code is not None:
            if code in codes:
                problems.append(ImportProblem(
                    number, names["code"], "code", f"{_shown(code)} 与第 {codes[code]} 行重复",
                    f"{_shown(code)} repeats row {codes[code]}"))
            else:
                codes[code] = number
        row["unit_id"] = unit_id
        row["row"] = number
        rows.append(row)
    if problems:
        raise ImportInvalid(filename, problems)
    unit_header = names.get("unit", names.get("unit_name", "单位编号"))
    _require_rights(rt, actor, [(r["row"], r["unit_id"]) for r in rows], unit_header)
    digest = _sha256(data)
    with session_scope(rt.db) as session:
        if not allow_repeat:
            _check_repeat(session, "risks", digest, filename)
        stored = _existing(session, RiskPoint.code, list(codes),  # type: ignore[arg-type]
                           RiskPoint.unit_id)
        # Updating a stored point moves it: rights over where it is now are needed too.
        _require_rights(rt, actor, [(codes[c], u) for c, u in stored.items()], names["code"])
        now = rt.clock.now()
        batch = ImportBatch(kind="risks", filename=filename[:255], sha256=digest,
                            rows=len(rows), imported_by=actor, imported_at=now)
        session.add(batch)
        session.flush()
        values = [{**{k: r.get(k) for k in ("code", *RISK_FIELDS)}, "import_id": batch.id,
                   "updated_at": now} for r in rows]
        table_ = RiskPoint.__table__  # type: ignore[attr-defined]
        dialect = session.get_bind().dialect.name
        make = sqlite_insert if dialect == "sqlite" else pg_insert
        stmt = make(table_)
        stmt = stmt.on_conflict_do_update(
            index_elements=["code"],
            set_={k: stmt.excluded[k] for k in (*RISK_FIELDS, "import_id", "updated_at")})
        for start in range(0, len(values), 5000):
            session.execute(stmt, values[start:start + 5000])
        session.add(AuditEvent(
            at=now, actor=actor, action="risks_imported",
            detail={"import": batch.id, "file": filename, "sha256": digest, "rows": len(rows),
                    "inserted": len(rows) - len(stored), "updated": len(stored)}))
    return ImportResult(import_id=batch.id or 0, kind="risks", filename=filename,
                        rows=len(rows), ignored_columns=header.ignored,
                        inserted=len(rows) - len(stored), updated=len(stored))


def count_stored(rt: Runtime) -> dict[str, int]:
    """Rows of the registers (for tests and the benchmark)."""
    with read_session(rt.db) as session:
        return {
            "runs": int(session.exec(select(func.count()).select_from(Run)).one()),
            "hazards": int(session.exec(select(func.count()).select_from(Hazard)).one()),
            "risks": int(session.exec(select(func.count()).select_from(RiskPoint)).one()),
        }
