"""Bulk import of the hazard register (隐患清单) from a spreadsheet, one run per row
(risk points: flows/risk_import.py; what both share: flows/import_checks.py). A file is all or
nothing: every row is checked first and, when any row is wrong, nothing of the file is written
and every mistake is reported (row, column, message); otherwise the whole file is written: in one
transaction, or on SQLite for a file of more than CHUNK_RUNS rows in chunks of that many (each its
own short transaction, so a district-year file does not hold up every other write for half a
minute), the file kept under the data dir until the last chunk, and a crash in between
finished by resume_imports when the server starts again. Runs are written in found-time order
(in_found_order: the register's indexes lead with it), and the answer lists their ids in the
file's order.

Hazard columns (the header is the first of the first 10 non-blank rows naming two known columns,
so a title row above it is skipped (flows/tabular.py); columns in any order; the English name
in brackets is accepted as a header too, as are a few variants such as 地点 and 等级; other
columns are ignored and reported back; a 合计/小计 row is left out and its row number
reported back, flows/total_rows.py):

- 隐患编号 (code), optional: unique in the file and among stored hazards; default YH + run id.
- 单位编号 (unit), required unless 单位 is given: an org unit id (c1, liuhe).
- 单位 (unit_name): an org unit name, resolved uniquely; must agree with 单位编号 if both.
- 隐患来源 (source): 检查发现 / 群众举报 / 执法检查 / 事故调查 (default 检查发现).
- 隐患等级 (grade; also 隐患级别): 一般 / 重大, also written 一般(事故)隐患 / 重大(事故)隐患
  (default 一般).
- 隐患类别 (category; also 隐患类型, 隐患分类): free text (消防安全, 用电安全, ...).
- 隐患地点 (location), required: where the hazard is.
- 隐患描述 (description), 涉及企业 (enterprise): free text.
- 发现时间 (found_at; also 检查时间, 排查时间): 2026-02-01, 2026-02-01 09:30, 2026/2/1 9:30,
  20260201, 2026年2月1日 (also 2026年2月1日9时30分), ISO 8601 with an offset, or an Excel date
  cell (or its serial number); local time
  (CLOSELOOP_TIMEZONE, Asia/Shanghai) unless an offset is written; not in the future nor
  before 2000-01-01 (a bare number is a serial only from then on); default the import time.
- 发现人 (found_by): a name or person id (default the importer).
- 专项行动 (campaign): the run id of a running 3030 campaign (kind: campaign) of the hazard's
  unit or a unit above it.

The allowed values of 隐患来源 and 隐患等级 are the playbook's own enum values when it declares
them so. Each row becomes a run of the playbook (default hazard-3030) for its unit, started
with flows/bulk_start.py; the values go through the playbook's typed params exactly as
`start_run` checks them. The importer needs `manager` or `commander` over every row's unit (or
`admin`): otherwise 403 naming the first row that is not theirs, and nothing is written. A row
whose unit has nobody, in it or above it, holding the role of a step ready at start is refused
(its task would go to no one). The same file (by SHA-256) is not imported twice unless asked
(`allow_repeat`): a double submit of 400,000 rows would otherwise make 400,000 duplicates.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from flows.access import nobody_for
from flows.bulk_plan import Decider, RunStub, make_plan
from flows.bulk_start import BulkResult, NewRun, bulk_start, merge_tasks, write_summaries
from flows.campaigns import campaign_problem
from flows.found_times import BadCell, Times, shown
from flows.import_checks import (
    Column,
    Header,
    ImportInvalid,
    ImportProblem,
    ImportResult,
    Units,
    check_repeat,
    check_size,
    choice_cell,
    existing_values,
    map_header,
    paused_gc,
    positive_int,
    read_upload,
    reading_problems,
    require_rights,
    rows_sha256,
    sha256_hex,
    text_cell,
)
from flows.params import MAX_TEXT, check_values
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from flows.tabular import Table
from models import run as rs
from models.audit import SYSTEM, AuditEvent
from models.db import is_sqlite, read_session, session_scope
from models.errors import Conflict, Forbidden, InvalidInput, NotFound
from models.hazard import CodeClaim, Hazard, ImportBatch, RiskPoint
from models.run import Run

DEFAULT_PLAYBOOK = "hazard-3030"
CHUNK_RUNS = 20_000  # on SQLite a chunk holds the write lock ~1.5 s
log = logging.getLogger("closeloop.import")
SOURCES = ("检查发现", "群众举报", "执法检查", "事故调查")
GRADES = ("一般", "重大")

HAZARD_COLUMNS = (
    Column("code", "隐患编号", "code", ("编号", "hazard_code"), max_len=60),
    Column("unit", "单位编号", "unit", ("unit_id", "单位代码")),
    # 所属社区: how street registers name the community a hazard is in (an org unit's name).
    Column("unit_name", "单位", "unit_name", ("单位名称", "所属单位", "所属社区", "所在社区",
                                              "社区名称")),
    Column("source", "隐患来源", "source", ("来源",)),
    Column("grade", "隐患等级", "grade", ("等级", "隐患级别", "级别")),
    Column("category", "隐患类别", "category", ("类别", "隐患类型", "隐患分类"), max_len=60),
    Column("location", "隐患地点", "location", ("地点",), required=True, max_len=300),
    # Not 隐患名称 nor 隐患部位: registers that have them have 隐患描述 and 隐患地点 beside them.
    Column("description", "隐患描述", "description", ("描述", "隐患内容"), max_len=MAX_TEXT),
    Column("enterprise", "涉及企业", "enterprise", ("企业", "企业名称"), max_len=200),
    Column("found_at", "发现时间", "found_at", ("发现日期", "检查时间", "检查日期", "排查时间",
                                                  "排查日期")),
    Column("found_by", "发现人", "found_by", ("检查人", "检查人员", "排查人", "排查人员"),
           max_len=80),
    Column("campaign", "专项行动", "campaign", ("campaign_run_id",)),
)


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
        if specs[key].min is not None or specs[key].max is not None:
            return None  # bounds only check_values holds a value to
    template: dict[str, Any] = {}
    for name, spec in specs.items():
        if isinstance(spec.default, list | dict):
            return None  # check_values copies these
        template[name] = spec.default
    return template


def _spelled_out(value: Any, exact: frozenset[str]) -> Any:
    """A value as registers often write it in full: 重大隐患 or 重大事故隐患 (the rules' own
    term) for 重大, 一般隐患 or 一般事故隐患 for 一般."""
    text = str(value).strip()
    for suffix in ("事故隐患", "隐患"):
        if text.endswith(suffix) and text[:-len(suffix)] in exact:
            return text[:-len(suffix)]
    return value


def register_playbook(rt: Runtime, playbook_id: str) -> Playbook:
    """The playbook hazards are imported into (and its import template drawn from): one that
    keeps a register; InvalidInput naming `playbook` otherwise."""
    try:
        playbook = rt.catalog.get(playbook_id)
    except NotFound:
        raise rt.catalog.unknown(playbook_id) from None
    if playbook.register_ is None:
        raise InvalidInput("playbook", f"流程 {playbook_id} 不建台账，不能导入隐患 / playbook "
                           f"'{playbook_id}' keeps no register (台账): hazards are imported "
                           "into a playbook with `register:`")
    return playbook


def location_limit() -> int:
    """The longest 隐患地点: the register's column, as registering one hazard allows
    (flows/lifecycle.check_register_fits). The run's title, "<playbook title>·<location>", is
    cut to its own width with "…" (flows/run_titles.title_for), so it sets no limit of its own:
    it once did, and the template said "最多 289 个字符" for the playbook title's length."""
    return Hazard.__table__.c["location"].type.length  # type: ignore[attr-defined,no-any-return]


def allowed_values(playbook: Playbook, name: str, fallback: Sequence[str]) -> Sequence[str]:
    """The values a 隐患来源 or 隐患等级 cell may take: the playbook's own enum values."""
    spec = playbook.params.get(name)
    if spec is not None and spec.type == "enum" and spec.values:
        return spec.values
    return fallback


def import_hazards(
    rt: Runtime, *, data: bytes, filename: str, actor: str,
    playbook_id: str = DEFAULT_PLAYBOOK, allow_repeat: bool = False,
) -> ImportResult:
    """Check every row of a hazard file, then start one run per row (in one transaction, or
    in chunks on SQLite, see the module docstring).
    Raises ImportInvalid (422, every mistake), Forbidden (403, the first row that is not the
    importer's), Conflict (409, the same file again) or InvalidInput (unknown playbook)."""
    playbook = register_playbook(rt, playbook_id)
    check_size(data, filename)
    with paused_gc():
        return _import_hazards(rt, playbook, data=data, filename=filename, actor=actor,
                               allow_repeat=allow_repeat)


def _import_hazards(rt: Runtime, playbook: Playbook, *, data: bytes, filename: str,
                    actor: str, allow_repeat: bool) -> ImportResult:
    table = read_upload(data, filename, HAZARD_COLUMNS)
    checked = _check_hazard_rows(rt, playbook, table, actor)
    skipped = table.totals
    del table  # the parsed cells (a third of the memory at 400,000 rows) are not needed now
    digest = sha256_hex(data)
    # Codes refuse a second import row by row; rows without one only their content can.
    same_rows = (rows_sha256([(new.unit_id, new.params) for new in checked.runs])
                 if len(checked.codes) < len(checked.runs) else None)
    file_positions = in_found_order(checked.runs)
    runs = checked.runs
    # SQLite has one writer: a district-year file in one transaction would hold up every
    # other write (a commander starting a response) for half a minute. Every row is checked
    # before the first is written; then chunks of CHUNK_RUNS, each its own transaction, with
    # the file kept so that a restart finishes what a crash interrupted (resume_imports).
    chunked = is_sqlite(rt.db) and len(runs) > CHUNK_RUNS
    kept = _keep_file(rt, data, digest, filename) if chunked else None
    started = False  # the first transaction (batch row, first chunk) committed
    try:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                batch, written = _write_first(rt, playbook, checked, filename=filename,
                                              digest=digest, same_rows=same_rows,
                                              actor=actor, kept=kept,
                                              chunked=chunked, allow_repeat=allow_repeat)
                break
            except Exception as exc:
                clash = _clash(exc)
                if clash is None:
                    raise
                if clash == "retry" and attempt < WRITE_ATTEMPTS:
                    # Deadlocked with another import of the same codes (PostgreSQL): once it
                    # has committed, the check names the rows it took.
                    continue
                raise _clashed(rt, filename, checked, exc) from None
        started = True
        if chunked:
            _write_rest(rt, playbook, batch.id or 0, runs, written)
    finally:
        if kept is not None and not started:
            _let_go(rt, str(kept))  # nothing was written: nothing to resume
    # The ids were given in found-time order: the answer lists them in the file's order.
    run_ids = [0] * len(runs)
    for position, run_id in zip(file_positions, (i for r in written for i in r.run_ids),
                                strict=True):
        run_ids[position] = run_id
    return ImportResult(import_id=batch.id or 0, kind="hazards", filename=filename,
                        rows=len(runs), run_ids=run_ids, ignored_columns=checked.ignored,
                        skipped_rows=skipped,
                        playbook=playbook.id, bulk=written[0])


FOUND_ORDER = "found_at"  # ImportBatch.write_order of the batches in_found_order wrote


def in_found_order(runs: list[NewRun]) -> list[int]:
    """Put the checked rows in the order their runs are written: by found time (its text, so
    chronological when the file's times share an offset, as local times do), file order among
    equal times. Four of the register's B-trees lead with the found time (the ranking's and
    the lists'); written in that order they grow at one end instead of taking 400,000 inserts
    scattered over their pages (measured on 400,000 rows in random found order: writing the
    register 11.1 -> 6.2 s, the chunks' commits 13.5 -> 6.6 s). A file exported by unit or by
    grade is then as fast as one in found order. Deterministic, so a resumed import
    (resume_imports) sorts the same file into the same order and goes on where it stopped.
    Returns each written row's position in the file."""
    # A row without a found time is found at import time: after every written one. Plain
    # strings compare several times faster than tuples (400,000 rows: ~19 comparisons each).
    keys = [str(found) if (found := new.params.get("found_at")) is not None else "\uffff"
            for new in runs]
    positions = sorted(range(len(runs)), key=keys.__getitem__)  # stable: file order on ties
    runs[:] = [runs[i] for i in positions]
    return positions


def _write_first(rt: Runtime, playbook: Playbook, checked: _Checked, *, filename: str,
                 digest: str, same_rows: str | None, actor: str, kept: Path | None,
                 chunked: bool, allow_repeat: bool) -> tuple[ImportBatch, list[BulkResult]]:
    """The batch row and the whole file (or, chunked, its first chunk and the claim on all
    its codes) in one transaction, after the checks against what is stored."""
    runs = checked.runs
    with session_scope(rt.db) as session:
        if not allow_repeat:
            check_repeat(session, rt, "hazards", digest, filename, same_rows)
        problems = _check_stored(session, rt, checked) + checked.unstaffed
        if problems:
            raise ImportInvalid(filename, problems)
        batch = ImportBatch(kind="hazards", filename=filename[:255], sha256=digest,
                            rows_sha256=same_rows, rows=len(runs), imported_by=actor,
                            imported_at=rt.clock.now(),
                            playbook_sha=playbook.sha256, write_order=FOUND_ORDER,
                            stored_file=str(kept) if kept else None)
        session.add(batch)
        session.flush()
        if chunked:
            _claim_codes(session, batch.id or 0, checked.codes)
        first = runs[:CHUNK_RUNS] if chunked else runs
        written = [bulk_start(session, rt, playbook=playbook, runs=first, actor=actor,
                              import_id=batch.id, label=filename, summarize=False,
                              cache_runs=len(runs))]
        _count_in(batch, written[-1], len(first))
        if not chunked:
            _finish(session, rt, batch, playbook, written)
    return batch, written


# SQLSTATEs of a write that met another writer: a unique key taken meanwhile, and the two that
# PostgreSQL resolves by aborting one of the transactions (worth another attempt).
_UNIQUE = "23505"
_RETRY = ("40P01", "40001")  # deadlock detected, serialization failure
WRITE_ATTEMPTS = 3


def _clash(exc: BaseException) -> str | None:
    """"unique" or "retry" for a write that met another writer's rows, else None. COPY raises
    psycopg's own errors (not wrapped by SQLAlchemy); SQLite says IntegrityError."""
    if isinstance(exc, IntegrityError):
        return "unique"
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None)
    if state == _UNIQUE:
        return "unique"
    return "retry" if state in _RETRY else None


def _clashed(rt: Runtime, filename: str, checked: _Checked, exc: BaseException) -> Exception:
    """What to say when the write met codes registered meanwhile: the rows whose codes are
    now taken (422), else a conflict to try again (409)."""
    with read_session(rt.db) as session:
        problems = _check_stored(session, rt, checked)
    if problems:
        return ImportInvalid(filename, problems)
    if _clash(exc) == "unique":  # no code of the file: a generated one (YH + run id) clashed
        return ImportInvalid(filename, [ImportProblem(
            0, "隐患编号", "code", "与已登记的隐患编号冲突，请为每行填写隐患编号",
            "a generated hazard code clashes with a stored one; give every row a code")])
    return Conflict(f"{filename}: 另一批导入正在登记相同的隐患，请稍后重试 / another import is "
                    "registering the same hazards; try again shortly", current="import")


def _keep_file(rt: Runtime, data: bytes, digest: str, filename: str) -> Path:
    """The uploaded bytes under the data dir until the import has finished (atomic write)."""
    folder = rt.settings.data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest[:16]}-{uuid.uuid4().hex[:8]}{Path(filename).suffix.lower()[:8]}"
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _write_rest(rt: Runtime, playbook: Playbook, batch_id: int, runs: list[NewRun],
                written: list[BulkResult]) -> None:
    """The chunks after `batch.written`, one transaction each; the last also finishes."""
    while True:
        taken: list[str] = []
        try:
            _write_chunk(rt, playbook, batch_id, runs, written, taken)
        except IntegrityError as exc:  # a generated code (YH + id) taken meanwhile
            taken.append(f"({exc.orig})")
            with session_scope(rt.db) as session:
                stopped = session.get(ImportBatch, batch_id)
                assert stopped is not None
                _stop(session, rt, stopped, taken)
        with read_session(rt.db) as session:
            batch = session.get(ImportBatch, batch_id)
            assert batch is not None
        if batch.finished_at is None:
            continue
        _let_go(rt, batch.stored_file)
        if taken:
            raise Conflict(
                f"{batch.filename}: 导入在第 {batch.written} 行后中止：隐患编号 "
                f"{'、'.join(taken[:5])} 已在导入期间被登记 / the import stopped after "
                f"{batch.written} rows: codes registered meanwhile", current=f"import:{batch_id}")
        return


def _write_chunk(rt: Runtime, playbook: Playbook, batch_id: int, runs: list[NewRun],
                 written: list[BulkResult], taken: list[str]) -> None:
    """The next chunk in one transaction, and the finish when it is the last; a code taken
    since the file was checked stops the import instead (its names land in `taken`)."""
    with session_scope(rt.db) as session:
        batch = session.get(ImportBatch, batch_id)
        assert batch is not None
        chunk = runs[batch.written:batch.written + CHUNK_RUNS]
        if chunk:
            taken += sorted(existing_values(
                session, Hazard.code,  # type: ignore[arg-type]
                [r.params["code"] for r in chunk if r.params.get("code")]))
            if taken:  # registered by hand since the file was checked
                _stop(session, rt, batch, taken)
                chunk = []
        if chunk:
            written.append(bulk_start(session, rt, playbook=playbook, runs=chunk,
                                      actor=batch.imported_by, import_id=batch_id,
                                      label=batch.filename, summarize=False,
                                      cache_runs=len(runs)))
            _count_in(batch, written[-1], len(chunk))
        if not taken and batch.written >= len(runs):
            _finish(session, rt, batch, playbook, written)


def _assigned(batch: ImportBatch) -> dict[str, dict[str, list[Any]]]:
    """The batch's running count of tasks given (JSON in the row), with its dues as times."""
    return {person: {title: [count, datetime.fromisoformat(due) if due else None]
                     for title, (count, due) in by_title.items()}
            for person, by_title in (batch.assigned or {}).items()}


def _count_in(batch: ImportBatch, result: BulkResult, rows: int) -> None:
    """A chunk's rows and the tasks it gave, added to the batch in the chunk's transaction."""
    tasks = _assigned(batch)
    merge_tasks(tasks, result.tasks)
    batch.assigned = {person: {title: [count, due.isoformat() if due else None]
                               for title, (count, due) in by_title.items()}
                      for person, by_title in tasks.items()}
    batch.written += rows


def _finish(session: Session, rt: Runtime, batch: ImportBatch, playbook: Playbook,
            written: list[BulkResult]) -> None:
    """One summary note per assignee for the whole file and the import's audit event; the
    caller lets the kept file go once this transaction has committed (_let_go)."""
    now = rt.clock.now()
    tasks = _assigned(batch)
    first_run = min((r.first_run for r in written if r.first_run), default=0)
    summaries = write_summaries(session, rt, playbook, tasks, now=now, import_id=batch.id,
                                first_run=first_run, label=batch.filename)
    if written:
        written[0].summaries = summaries
    session.add(AuditEvent(
        at=now, actor=batch.imported_by, action="hazards_imported",
        detail={"import": batch.id, "file": batch.filename, "sha256": batch.sha256,
                "rows": batch.rows, "playbook": playbook.id, "version": playbook.version}))
    batch.finished_at = now
    session.add(batch)
    _drop_claims(session, batch.id or 0)


def _claim_codes(session: Session, batch_id: int, codes: dict[str, int]) -> None:
    """The file's codes held for this import until its last chunk (CodeClaim), written in the
    transaction that checked them against the register and other imports' claims."""
    if not codes:
        return
    # Only chunked (SQLite) imports claim: the driver's executemany of plain tuples takes a
    # tenth of what the ORM's insert of 400,000 dicts would.
    driver = session.connection().connection.driver_connection
    driver.executemany(  # type: ignore[union-attr]
        f"INSERT INTO {CodeClaim.__tablename__} (code, import_id) VALUES (?, ?)",
        [(code, batch_id) for code in codes])


def _drop_claims(session: Session, batch_id: int) -> None:
    session.execute(delete(CodeClaim).where(CodeClaim.import_id == batch_id))  # type: ignore[arg-type]


def _let_go(rt: Runtime, stored_file: str | None) -> None:
    """The kept upload, once the batch is finished or stopped in a committed transaction (a
    crash before that commit must still find the file to resume from)."""
    if stored_file:
        _kept_file(rt, stored_file).unlink(missing_ok=True)


def _stop(session: Session, rt: Runtime, batch: ImportBatch, codes: list[str]) -> None:
    """An interrupted import that cannot go on: recorded, and not resumed again."""
    now = rt.clock.now()
    session.add(AuditEvent(at=now, actor=SYSTEM, action="hazards_import_stopped",
                           detail={"import": batch.id, "file": batch.filename,
                                   "written": batch.written, "rows": batch.rows,
                                   "codes_taken": codes[:100]}))
    batch.finished_at = now
    session.add(batch)
    _drop_claims(session, batch.id or 0)


def resume_imports(rt: Runtime) -> int:
    """Finish the chunked imports a crash interrupted (called once when the server starts):
    the kept file is read and checked again as its importer, and writing goes on after the
    rows already written. Returns how many were finished."""
    with read_session(rt.db) as session:
        pending = list(session.exec(select(ImportBatch).where(
            ImportBatch.kind == "hazards",
            ImportBatch.finished_at.is_(None),  # type: ignore[union-attr]
            ImportBatch.stored_file.is_not(None),  # type: ignore[union-attr]
        )).all())
    done = 0
    for batch in pending:
        try:
            with read_session(rt.db) as session:
                playbook = rt.catalog.pinned(session, batch.playbook_sha or "")
            data = _kept_file(rt, batch.stored_file or "").read_bytes()
            with paused_gc():
                table = read_upload(data, batch.filename, HAZARD_COLUMNS)
                checked = _check_hazard_rows(rt, playbook, table, batch.imported_by)
                if batch.write_order == FOUND_ORDER:  # None: begun in the file's order
                    in_found_order(checked.runs)
                _write_rest(rt, playbook, batch.id or 0, checked.runs, [])
            done += 1
        except Exception as exc:  # one bad batch must not keep the server from starting
            log.error("import %s (%s) cannot be resumed: %s", batch.id, batch.filename, exc)
            with session_scope(rt.db) as session:
                again = session.get(ImportBatch, batch.id)
                if again is not None and again.finished_at is None:
                    _stop(session, rt, again, [])
            _let_go(rt, batch.stored_file)
    _sweep_unclaimed_files(rt)
    return done


def _kept_file(rt: Runtime, stored_file: str) -> Path:
    """The upload kept for a batch: where it was written, or, when the data dir has moved since
    (restored on a new server, a new path at an upgrade), the same name in this data dir's
    imports/ (where _sweep_unclaimed_files keeps it by name). Without this the rest of the file
    was never imported and the import stopped."""
    path = Path(stored_file)
    moved = rt.settings.data_dir / "imports" / path.name
    return path if path.exists() or not moved.exists() else moved


LEFTOVER_AGE_S = 3600  # an upload being written right now by another process is younger


def _sweep_unclaimed_files(rt: Runtime) -> None:
    """Uploads kept for a chunked import whose first transaction never committed (the process
    was killed before it): no batch names them, nothing will resume from them. Removed once
    they are an hour old (so another server's import in progress keeps its file)."""
    folder = rt.settings.data_dir / "imports"
    if not folder.is_dir():
        return
    with read_session(rt.db) as session:
        named = {Path(f).name for f in session.exec(select(ImportBatch.stored_file).where(
            ImportBatch.finished_at.is_(None),  # type: ignore[union-attr]
            ImportBatch.stored_file.is_not(None))).all() if f}  # type: ignore[union-attr]
    cutoff = time.time() - LEFTOVER_AGE_S
    for path in folder.iterdir():
        try:
            if path.is_file() and path.name not in named and path.stat().st_mtime < cutoff:
                path.unlink()
                log.info("removed %s: an upload no import will resume from", path.name)
        except OSError as exc:  # another process removed it first, or it is not ours to touch
            log.warning("could not remove %s: %s", path, exc)


@dataclass
class _Checked:
    runs: list[NewRun]
    ignored: list[str]
    header: Header
    codes: dict[str, int]  # code -> row
    # campaign run id -> [(row, unit, grade)]
    campaigns: dict[int, list[tuple[int, str, str | None]]]
    unstaffed: list[ImportProblem]  # rows whose unit has nobody for a step ready at start


def _check_hazard_rows(rt: Runtime, playbook: Playbook, table: Table, actor: str) -> _Checked:
    problems: list[ImportProblem] = []
    header = map_header(table, HAZARD_COLUMNS, problems)
    problems += reading_problems(table, header)
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
    units = Units(rt)
    times = Times(rt.tz, rt.clock.now())
    sources = allowed_values(playbook, "source", SOURCES)
    grades = allowed_values(playbook, "grade", GRADES)
    found_type = specs["found_at"].type if "found_at" in specs else "datetime"
    location_max = location_limit()
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
    campaigns: dict[int, list[tuple[int, str, str | None]]] = {}
    grade_default = specs["grade"].default if "grade" in specs else None
    unit_rows: list[tuple[int, str]] = []

    def fail(bad: list[ImportProblem], number: int, key: str, exc: BadCell) -> None:
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
                     ("unit" if "unit" in names else "unit_name"), BadCell(zh, en))
        value = cells[i_loc]
        if type(value) is str and len(value) <= location_max:
            raw["location"] = value
        else:
            try:
                location = text_cell(value, cols["location"], location_max)
                if location is None:
                    raise BadCell("必填，不能为空", "required, must not be empty")
                raw["location"] = location
            except BadCell as exc:
                fail(bad, number, "location", exc)
        for key, pos, most in texts:
            value = cells[pos]
            if value is None:
                continue
            if type(value) is str and len(value) <= most:
                raw[key] = value
                continue
            try:
                value = text_cell(value, cols[key])
            except BadCell as exc:
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
                    value = choice_cell(_spelled_out(value, exact), allowed)
                    if value is not None:
                        raw[key] = value
                except BadCell as exc:
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
                    except BadCell as exc:
                        fail(bad, number, "found_at", exc)
                if iso is not None:
                    raw["found_at"] = iso
        if i_camp is not None:
            try:
                campaign = positive_int(cells[i_camp])
                if campaign is not None:
                    raw["campaign"] = campaign
                    if unit_id is not None:
                        campaigns.setdefault(campaign, []).append(
                            (number, unit_id, raw.get("grade", grade_default)))
            except BadCell as exc:
                fail(bad, number, "campaign", exc)
        code = raw.get("code")
        if code is not None:
            first = codes.get(code)
            if first is not None:
                fail(bad, number, "code", BadCell(f"{shown(code)} 与第 {first} 行重复",
                                               f"{shown(code)} repeats row {first}"))
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
                     BadCell(f"参数 {p.name} 无效：{p.message}", p.message))
            if bad:
                problems.extend(bad)
                continue
        if unit_id is not None:
            runs.append(NewRun(unit_id=unit_id, params=params, row=number))
            unit_rows.append((number, unit_id))
    unit_key = "unit" if "unit" in names else "unit_name"
    unstaffed = _unstaffed(rt, playbook, runs, actor, names[unit_key], unit_key,
                           index[unit_key])
    checked = _Checked(runs, header.ignored, header, codes, campaigns, unstaffed)
    if problems:
        # Every mistake in one answer: the good rows' codes already registered and campaigns
        # that do not fit too, so a clerk does not fix a 40,000-row file in rounds. (Not for a
        # file with rows of units beyond the importer: that is a 403 once the rest is right.)
        try:
            require_rights(rt, actor, unit_rows, names[unit_key])
        except Forbidden:
            raise ImportInvalid(table.filename, problems + unstaffed) from None
        with read_session(rt.db) as session:
            stored = _check_stored(session, rt, checked)
        raise ImportInvalid(table.filename, problems + stored + unstaffed)
    # Rights first: a unit the importer may not import for gets a 403, not word of its staff;
    # the rows of units with nobody to do the work are refused with the checks of stored values.
    require_rights(rt, actor, unit_rows, names[unit_key])
    return checked


def _unstaffed(rt: Runtime, playbook: Playbook, runs: list[NewRun], actor: str,
               column: str, key: str, position: int) -> list[ImportProblem]:
    """Rows whose unit has nobody, in it or above it, holding the role of a step the run makes
    ready at start: its task would be given to no one (assignees []) and never done. The
    steps ready at start are what bulk_start will plan (flows/bulk_plan.py), row by row when
    a `when` reads the row's params; a fan-out step is left out (its tasks go to the units it
    lists), as is every step behind a `when` that reads more than params and run (bulk_start
    leaves those to start_run): then only the steps certain to be ready are checked."""
    now = rt.clock.now()
    stub = RunStub(started_at=now, stage_entered_at=now if playbook.stages else None,
                   stage=playbook.stages[0] if playbook.stages else None,
                   playbook_id=playbook.id, status=rs.RUNNING, started_by=actor)
    plan = make_plan(rt, playbook, now, cast(Run, stub))
    certain = [c.spec for c in plan.candidates if c.condition is None and not c.spec.needs]
    roles = {(c.spec.role, c.spec.at) for c in plan.candidates
             if c.spec.role and not c.spec.for_each}
    holders: dict[tuple[str, str], bool] = {}

    def held(role: str, unit_id: str) -> bool:
        found = holders.get((role, unit_id))
        if found is None:
            found = holders[(role, unit_id)] = bool(rt.org.resolve_role(role, unit_id)[1])
        return found

    # Once per distinct unit: where every role of the playbook's start has a holder, no row
    # of that unit can fail, and its rows need no plan (the common case, one lookup a row).
    staffed: dict[str, bool] = {}
    decider: Decider | None = None
    memo: dict[tuple[int, str], tuple[str, str] | None] = {}  # (id(steps), unit) -> why
    problems: list[ImportProblem] = []
    for new in runs:
        unit_id = new.unit_id
        ok = staffed.get(unit_id)
        if ok is None:
            ok = staffed[unit_id] = all(held(role, rt.org.held_at(unit_id, at))
                                        for role, at in roles)
        if ok:
            continue
        if plan.all_one_by_one:
            steps = certain
        else:
            if decider is None:
                decider = Decider(rt, plan, stub, {u: x.name for u, x in rt.org.units.items()})
            steps = decider.decide(new)[0].ready  # outcomes are kept by the plan: ids hold
        combo = (id(steps), unit_id)
        if combo not in memo:
            memo[combo] = _nobody_for(rt, steps, unit_id, held)
        why = memo[combo]
        if why is not None:
            problems.append(ImportProblem(new.row or 0, column, key, *why, position=position))
    return problems


def _nobody_for(rt: Runtime, steps: Sequence[StepSpec], unit_id: str,
                held: Callable[[str, str], bool]) -> tuple[str, str] | None:
    """(zh, en) for the first of `steps` whose role nobody holds at or above the unit."""
    for spec in steps:
        at = rt.org.held_at(unit_id, spec.at)
        if spec.role is None or spec.for_each or held(spec.role, at):
            continue
        return nobody_for(rt.org, spec.role, spec.title, spec.id, unit_id, at)
    return None


def _check_stored(session: Session, rt: Runtime, checked: _Checked) -> list[ImportProblem]:
    """Checks against the database, inside the write transaction: codes already registered,
    and campaigns that must exist, be running 3030 campaigns, and cover the row's unit."""
    problems: list[ImportProblem] = []
    names = checked.header.names
    code_header = names.get("code", "隐患编号")
    taken = existing_values(session, Hazard.code, list(checked.codes))  # type: ignore[arg-type]
    at = checked.header.index
    for code in taken:
        problems.append(ImportProblem(
            checked.codes[code], code_header, "code", f"{shown(code)} 已经登记过",
            f"{shown(code)} is already registered", at.get("code", -1)))
    claimed = existing_values(session, CodeClaim.code, list(checked.codes),  # type: ignore[arg-type]
                              extra=CodeClaim.import_id)
    for code, batch in claimed.items():
        if code in taken:  # one problem a row: already registered says it
            continue
        problems.append(ImportProblem(
            checked.codes[code], code_header, "code",
            f"{shown(code)} 正由导入批次 #{batch} 登记", f"{shown(code)} is being imported by "
            f"batch #{batch}", at.get("code", -1)))
    camp_header = names.get("campaign", "专项行动")
    for run_id, rows in checked.campaigns.items():
        for row, unit_id, grade in rows:
            why = campaign_problem(session, rt, run_id, unit_id, grade)
            if why is not None:
                problems.append(ImportProblem(row, camp_header, "campaign", *why,
                                              position=at.get("campaign", -1)))
    return problems


def count_stored(rt: Runtime) -> dict[str, int]:
    """Rows of the registers (for tests and the benchmark)."""
    with read_session(rt.db) as session:
        return {
            "runs": int(session.exec(select(func.count()).select_from(Run)).one()),
            "hazards": int(session.exec(select(func.count()).select_from(Hazard)).one()),
            "risks": int(session.exec(select(func.count()).select_from(RiskPoint)).one()),
        }
