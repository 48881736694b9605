"""Bulk import of the risk register (风险清单) from a spreadsheet: all or nothing, every mistake
named by row and column (the shared checks are flows/import_checks.py).

Columns: 风险点编号 (code, required), 单位编号/单位 (unit, required), 风险点名称 (name, required),
风险类别 (category), 位置 (location), 风险等级 (level, required: 重大 / 较大 / 一般 / 低), 管控措施
(controls), 责任人 (responsible). A risk point is keyed by its code: a code already stored is
updated in place (upsert), which needs rights over the unit it belongs to now as well as the
unit in the file. An update changes only the fields the file has columns for: a file of codes
and levels alone does not blank the stored 类别, 位置, 管控措施 and 责任人.

责任人 is stored as a person id when it names one: a person's id as is, or a name that exactly
one person of the org chart bears within the row's branch of the tree (the row's unit, the
units below it and the units above it), else in the whole chart. The register's export
writes the person's name, so an exported file imports back to the same ids. A name borne by
no one, or by several there (or, outside the branch, by several in the chart), stays free
text, as written.

The write is three statements, each in code order, so two imports holding the same codes lock
them in the same order: the new codes are inserted (a code another import is inserting at that
moment waits for it, then counts as stored); the stored ones are locked and read, and the
rights over where each is now checked on what is really there (a point another import moved
meanwhile is not overwritten unchecked); then they are updated. So the answer's inserted and
updated counts are exact with imports running at once (reading first and writing after once
counted a code another import stored in between as new). A transaction PostgreSQL still aborts
as a deadlock or a serialization failure is run again from the start (rights, repeat check
and all) up to ATTEMPTS times, then answered with Conflict (409). A unique violation (a code
stored meanwhile past the upsert) is a Conflict naming the code, never a 500.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from flows.found_times import BadCell, shown
from flows.import_checks import (
    Column,
    ImportInvalid,
    ImportProblem,
    ImportResult,
    Units,
    check_repeat,
    check_size,
    choice_cell,
    map_header,
    read_upload,
    reading_problems,
    require_rights,
    sha256_hex,
    text_cell,
)
from flows.runtime import Runtime
from models.audit import AuditEvent
from models.db import session_scope
from models.errors import Conflict, clipped
from models.hazard import ImportBatch, RiskPoint
from models.org import OrgChart

RISK_LEVELS = ("重大", "较大", "一般", "低")


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


# -- risk points (风险清单) -------------------------------------------------------------------

RISK_FIELDS = ("unit_id", "name", "category", "location", "level", "controls", "responsible")
UPSERT_CHUNK = 5000
# Whole transactions tried before a deadlock or serialization failure becomes a 409, and the
# pause before a retry (seconds, times the attempt, jittered so the two do not meet again).
ATTEMPTS = 5
RETRY_PAUSE = 0.05
# SQLSTATEs after which running the transaction again may succeed: deadlock_detected and
# serialization_failure (PostgreSQL aborts one of the transactions involved).
RETRYABLE = {"40P01", "40001"}
UNIQUE_VIOLATION = "23505"


class People:
    """责任人 text to a person id (see the module docstring), names indexed once per import."""

    def __init__(self, org: OrgChart) -> None:
        self.org = org
        self.by_name: dict[str, list[str]] = {}
        for person in org.people.values():
            self.by_name.setdefault(person.name, []).append(person.id)

    def resolve(self, text: str | None, unit_id: str | None) -> str | None:
        if text is None or unit_id is None or text in self.org.people:
            return text
        org = self.org
        named = self.by_name.get(text, [])
        found = [pid for pid in named
                 if org.is_within(org.people[pid].unit_id, unit_id)
                 or org.is_within(unit_id, org.people[pid].unit_id)]
        if not found and len(named) == 1:
            # One person in the whole district bears the name (a department's officer made
            # responsible for a community's risk point, as the export wrote it): that one.
            found = named
        return found[0] if len(found) == 1 else text


def _sqlstate(exc: DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)  # psycopg; SQLite's driver has none
    return state if isinstance(state, str) else None


def _unique_violation(exc: IntegrityError) -> bool:
    state = _sqlstate(exc)
    return state == UNIQUE_VIOLATION if state else "UNIQUE" in str(exc.orig).upper()


def _conflicting_code(exc: IntegrityError) -> str | None:
    """The code a unique violation names (PostgreSQL: "Key (code)=(FX-1) already exists")."""
    diag = getattr(exc.orig, "diag", None)
    detail = getattr(diag, "message_detail", None) or str(exc.orig)
    found = re.search(r"\(code\)=\((.*)\)", detail)
    return found[1] if found else None


def _insert_new(session: Session, values: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the points whose code is not stored, in code order; the codes inserted. One that
    another import is inserting right now waits for it to end, then is not inserted here."""
    table_ = RiskPoint.__table__  # type: ignore[attr-defined]
    stmt = _dialect_insert(session)(table_).on_conflict_do_nothing(index_elements=["code"])
    stmt = stmt.returning(table_.c.code)
    ordered = sorted(values, key=lambda v: str(v["code"]))
    inserted: set[str] = set()
    for start in range(0, len(ordered), UPSERT_CHUNK):
        inserted.update(session.execute(stmt, ordered[start:start + UPSERT_CHUNK]).scalars())
    return inserted


def _lock_stored(session: Session, codes: Sequence[str]) -> dict[str, str]:
    """The stored points among `codes`, locked (FOR UPDATE on PostgreSQL; SQLite's one writer
    holds them already) in code order, each with the unit it belongs to now."""
    table_ = RiskPoint.__table__  # type: ignore[attr-defined]
    ordered = sorted(codes)
    found: dict[str, str] = {}
    for start in range(0, len(ordered), UPSERT_CHUNK):
        part = ordered[start:start + UPSERT_CHUNK]
        rows = session.execute(select(table_.c.code, table_.c.unit_id)
                               .where(table_.c.code.in_(part)).order_by(table_.c.code)
                               .with_for_update())
        found.update({code: unit for code, unit in rows})
    return found


def _dialect_insert(session: Session) -> Callable[..., Any]:
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert


def _upsert(session: Session, values: Sequence[dict[str, Any]],
            fields: Sequence[str] = RISK_FIELDS) -> None:
    """Update the stored risk points by code (inserting any deleted meanwhile), in code order:
    two imports holding the same codes then take their row locks in the same order, and
    neither waits on the other in a circle (PostgreSQL would abort one as a deadlock)."""
    table_ = RiskPoint.__table__  # type: ignore[attr-defined]
    stmt = _dialect_insert(session)(table_)
    stmt = stmt.on_conflict_do_update(
        index_elements=["code"],
        set_={k: stmt.excluded[k] for k in (*fields, "import_id", "updated_at")})
    ordered = sorted(values, key=lambda v: str(v["code"]))
    for start in range(0, len(ordered), UPSERT_CHUNK):
        session.execute(stmt, ordered[start:start + UPSERT_CHUNK])


def import_risks(
    rt: Runtime, *, data: bytes, filename: str, actor: str, allow_repeat: bool = False,
) -> ImportResult:
    """Check every row of a risk point file, then upsert them by code in one transaction."""
    check_size(data, filename)
    table = read_upload(data, filename, RISK_COLUMNS)
    problems: list[ImportProblem] = []
    header = map_header(table, RISK_COLUMNS, problems)
    problems += reading_problems(table, header)
    if problems:
        raise ImportInvalid(filename, problems)
    if not table.rows:
        raise ImportInvalid(filename, [ImportProblem(
            table.header_row + 1, header.names["code"], "file", "文件只有表头，没有数据行",
            "the file has a header but no rows")])
    cols = {c.key: c for c in RISK_COLUMNS}
    names = header.names
    units = Units(rt)
    people = People(rt.org)
    rows: list[dict[str, Any]] = []
    codes: dict[str, int] = {}
    readers: list[tuple[str, Callable[[Any], Any]]] = [
        (key, (lambda v, c=cols[key]: text_cell(v, c))) for key in
        ("code", "name", "category", "location", "controls", "responsible")]
    readers.append(("level", lambda v: choice_cell(v, RISK_LEVELS)))
    for number, cells in table.rows:
        row: dict[str, Any] = {}
        for key, reader in readers:
            pos = header.index.get(key)
            try:
                row[key] = reader(cells[pos] if pos is not None and pos < len(cells) else None)
                if row[key] is None and cols[key].required:
                    raise BadCell("必填，不能为空", "required, must not be empty")
            except BadCell as exc:
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
                    number, names["code"], "code", f"{shown(code)} 与第 {codes[code]} 行重复",
                    f"{shown(code)} repeats row {codes[code]}"))
            else:
                codes[code] = number
        row["unit_id"] = unit_id
        row["responsible"] = people.resolve(row.get("responsible"), unit_id)
        row["row"] = number
        rows.append(row)
    if problems:
        raise ImportInvalid(filename, problems)
    unit_header = names.get("unit", names.get("unit_name", "单位编号"))
    require_rights(rt, actor, [(r["row"], r["unit_id"]) for r in rows], unit_header)
    digest = sha256_hex(data)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            batch_id, stored = _write(rt, rows, codes, names["code"], digest=digest,
                                      filename=filename, actor=actor,
                                      allow_repeat=allow_repeat, given=_given_fields(names))
            break
        except IntegrityError as exc:
            if not _unique_violation(exc):
                raise
            code = _conflicting_code(exc)
            what = f"风险点编号 {shown(code)}" if code else "风险点编号"
            what_en = f"risk point code {shown(code)}" if code else "a risk point code"
            raise Conflict(f"{clipped(filename, 80)}: {what} 已被同时进行的另一次导入登记，"
                           f"本次未写入任何数据，请重新导入 / {what_en} was stored by another "
                           "import meanwhile; nothing was written, import the file again",
                           current=f"code:{code}" if code else None) from None
        except DBAPIError as exc:
            if _sqlstate(exc) not in RETRYABLE:
                raise
            if attempt == ATTEMPTS:
                raise Conflict(f"{clipped(filename, 80)}: 与同时进行的其他导入冲突（已重试 "
                               f"{ATTEMPTS} 次），本次未写入任何数据，请稍后重新导入 / the "
                               "import kept colliding with other imports running at the same "
                               f"time ({ATTEMPTS} tries); nothing was written, import the "
                               "file again later") from None
            time.sleep(RETRY_PAUSE * attempt * (1 + random.random()))
    return ImportResult(import_id=batch_id, kind="risks", filename=filename,
                        rows=len(rows), ignored_columns=header.ignored,
                        skipped_rows=table.totals, inserted=len(rows) - stored, updated=stored)


def _given_fields(names: dict[str, str]) -> tuple[str, ...]:
    """The register fields the file has columns for (the unit always: it is required)."""
    return tuple(f for f in RISK_FIELDS if f == "unit_id" or f in names)


def _write(rt: Runtime, rows: list[dict[str, Any]], codes: dict[str, int], code_header: str,
           *, digest: str, filename: str, actor: str, allow_repeat: bool,
           given: Sequence[str] = RISK_FIELDS) -> tuple[int, int]:
    """The import's one transaction: (the batch's id, how many codes were stored already)."""
    with session_scope(rt.db) as session:
        if not allow_repeat:
            check_repeat(session, rt, "risks", digest, filename)
        now = rt.clock.now()
        batch = ImportBatch(kind="risks", filename=filename[:255], sha256=digest,
                            rows=len(rows), imported_by=actor, imported_at=now)
        session.add(batch)
        session.flush()
        values = [{**{k: r.get(k) for k in ("code", *RISK_FIELDS)},
                   "import_id": batch.id, "updated_at": now} for r in rows]
        inserted = _insert_new(session, values)
        rest = [v for v in values if v["code"] not in inserted]
        stored = _lock_stored(session, [v["code"] for v in rest])
        # Updating a stored point moves it: rights over where it is now are needed too, read
        # under the lock (a Forbidden here rolls back the points inserted above).
        require_rights(rt, actor, [(codes[c], u) for c, u in stored.items()], code_header)
        _upsert(session, rest, given)
        session.add(AuditEvent(
            at=now, actor=actor, action="risks_imported",
            detail={"import": batch.id, "file": filename, "sha256": digest, "rows": len(rows),
                    "inserted": len(inserted), "updated": len(rest)}))
    return batch.id or 0, len(rest)
