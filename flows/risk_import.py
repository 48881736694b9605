"""Bulk import of the risk register (风险清单) from a spreadsheet: all or nothing, every mistake
named by row and column (the shared checks are flows/import_checks.py).

Columns: 风险点编号 (code, required), 单位编号/单位 (unit, required), 风险点名称 (name, required),
风险类别 (category), 位置 (location), 风险等级 (level, required: 重大 / 较大 / 一般 / 低), 管控措施
(controls), 责任人 (responsible). A risk point is keyed by its code: a code already stored is
updated in place (upsert), which needs rights over the unit it belongs to now as well as the
unit in the file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

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
    existing_values,
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
from models.hazard import ImportBatch, RiskPoint

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
        row["row"] = number
        rows.append(row)
    if problems:
        raise ImportInvalid(filename, problems)
    unit_header = names.get("unit", names.get("unit_name", "单位编号"))
    require_rights(rt, actor, [(r["row"], r["unit_id"]) for r in rows], unit_header)
    digest = sha256_hex(data)
    with session_scope(rt.db) as session:
        if not allow_repeat:
            check_repeat(session, rt, "risks", digest, filename)
        stored = existing_values(session, RiskPoint.code, list(codes),  # type: ignore[arg-type]
                           RiskPoint.unit_id)
        # Updating a stored point moves it: rights over where it is now are needed too.
        require_rights(rt, actor, [(codes[c], u) for c, u in stored.items()], names["code"])
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
