"""Starting many runs of one playbook at once (a spreadsheet of 400,000 hazards) with the same
rows `lifecycle.start_run` writes for each, in the caller's transaction, fast.

What a run gets, as with start_run: its `run` row pinned to the compiled playbook (one
PlaybookVersion row), its register row (flows/registers.entry_row, then the phase and deadline
sync_entry would give it), and a row for every step that is reached at start: the ready ones
assigned through `rt.org.resolve_role`, with `progress.due_time` and `progress.first_check`; a
step whose `when` is false joins the run's `skipped` list, as progress._skip does (a skip can
make a later step ready in the same pass, exactly as `progress.advance` walks the steps). A
`when` that fails to evaluate is treated as true and leaves an `expression_failed` event, as in
advance.

How it is fast: the playbook is planned once (which steps can be reached at start; due and
first-check times, which are the same for every run started at the same moment; each row's
constant columns); each `when` is compiled once and, when it reads only constant lookups on
`params`/`run` (`params.grade == '重大'`), evaluated once per distinct value looked up; roles
are resolved once per unit; run ids are taken as one block inside the write transaction
(SQLite: after max(id), under the write lock the transaction holds; PostgreSQL: nextval over
generate_series); rows are plain tuples of only the values that vary (a statement per step and
outcome carries the constant columns), encoded by the columns' own SQLAlchemy types so they
are what the ORM stores, written in chunks of 20,000 runs: SQLite executemany with the
constants as SQL literals, PostgreSQL (psycopg) COPY. No ORM object per run. On SQLite the
connection's page cache is raised for the batch (memory only; see _Writer.page_cache).

Where it differs from start_run, on purpose:
- Audit: one `imported` event per run (actor = the importer; detail: import batch id, source
  row, playbook and version, and the steps made ready and skipped) instead of `run_started` plus
  one event per step: the honest minimum for 400,000 runs.
- Notifications: no "new task" inbox note per task (an inbox flood of 400,000 helps nobody);
  instead one summary note per assignee ("【批量导入】N 项新任务"), in the in-app inbox.
- Prefect: no wake per run, so no Prefect flow run per imported hazard (one per run would take
  hours to drain); a run appears in Prefect's history when it first moves (a person completes a
  step, a timer fires) and its segment runs. Deadlines do not depend on Prefect: the sweeper
  reads `next_check_at`. A run that has an automatic step (notify, document, child playbook)
  ready at start does get its wake, since only a segment executes such steps.
- Rows that need what the fast path does not do are started one by one with start_run in the
  same transaction, after the others (so their ids come after the block): a step with
  `for_each` reached at start, a run all of whose steps are skipped at start (it completes at
  once), and every row when a `when` reachable at start reads more than `params`/`run` (e.g.
  `steps`, `units()`, `campaign()`). They get start_run's events and notes, and also the
  `imported` event.

The caller validates the params (flows.params.check_values) and checks rights.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser
from sqlalchemy import JSON, Table, insert, text, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from flows.context import run_view
from flows.expressions import BUILTIN_NAMES, ENV, ExpressionError, compile_expression
from flows.lifecycle import start_run
from flows.progress import AUTOMATIC_ACTIONS, due_time, first_check
from flows.recipients import notification_rows
from flows.registers import REGISTERED, entry_row, known_deadline
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from models import run as rs
from models import task as st
from models.audit import SYSTEM, AuditEvent
from models.hazard import Hazard
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.wake import Wake
from models.writes import insert_ignoring_duplicates, insert_rows

CHUNK = 20_000  # rows per executemany; a chunk of every table is written before the next
FAST_NAMES = frozenset({"params", "run"})
IMPORTED = "imported"


@dataclass(frozen=True)
class NewRun:
    """One run to start: its unit, its validated params, and where it came from."""

    unit_id: str
    params: dict[str, Any]
    row: int | None = None  # the spreadsheet row, kept in the audit trail


@dataclass
class BulkResult:
    run_ids: list[int]  # in the order of the input
    fast: int = 0  # written by the bulk path
    one_by_one: int = 0  # started with start_run (see the module docstring)
    summaries: int = 0  # summary inbox notes written
    wakes: int = 0
    # person -> step title -> [tasks given, earliest due]: what the summary notes say (kept
    # when a caller writes one summary for several calls, see `summarize`).
    tasks: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    first_run: int = 0


# -- `when`, evaluated once per distinct input ---------------------------------------------

def _constant_lookups(source: str) -> tuple[tuple[str, str], ...] | None:
    """The (name, key) lookups an expression reads, when it reads `params`/`run` only through
    constant lookups (`params.grade`, `run['unit']`); None when it uses them otherwise."""
    try:
        parser = Parser(ENV, source, state="variable")
        tree = parser.parse_expression()
    except TemplateSyntaxError:
        return None
    covered: set[int] = set()
    found: list[tuple[str, str]] = []
    for call in tree.find_all(nodes.Call):  # params.get('x'), params.items(): not a lookup
        target = call.node
        if isinstance(target, nodes.Getattr | nodes.Getitem) and \
                isinstance(target.node, nodes.Name) and target.node.name in FAST_NAMES:
            return None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not isinstance(base, nodes.Name) or base.name not in FAST_NAMES:
            continue
        if isinstance(node, nodes.Getattr):
            key = node.attr
            if hasattr(dict, key):  # `params.items` is the dict's method, not a value
                return None
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            key = node.arg.value
        else:
            return None
        covered.add(id(base))
        found.append((base.name, key))
    names = [tree] if isinstance(tree, nodes.Name) else []
    for name in [*names, *tree.find_all(nodes.Name)]:
        if name.name in FAST_NAMES and id(name) not in covered:
            return None
    return tuple(sorted(set(found)))


_MISSING = object()


class _Condition:
    """A step's `when`: the compiled expression, and results memoised by the values it looks
    up (a grade has two values, so 400,000 rows evaluate it twice)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.expr = compile_expression(source)
        self.uses_run = "run" in self.expr.names
        self.lookups = _constant_lookups(source)
        self.memo: dict[tuple[Any, ...], tuple[bool, str | None]] = {}

    def evaluate(self, ctx: dict[str, Any]) -> tuple[bool, str | None]:
        """(truth, error message or None): a failure counts as true, as in progress.advance."""
        key: tuple[Any, ...] | None = None
        if self.lookups is not None:
            key = tuple(ctx[name].get(attr, _MISSING) for name, attr in self.lookups)
            try:
                return self.memo[key]
            except KeyError:
                pass
            except TypeError:  # an unhashable value (a list param): no memo for this row
                key = None
        try:
            result: tuple[bool, str | None] = (bool(self.expr.evaluate(ctx)), None)
        except ExpressionError as exc:
            result = (True, str(exc))
        if key is not None:
            self.memo[key] = result
        return result


# -- the plan: what a run of this playbook gets at start ------------------------------------

@dataclass
class _Candidate:
    spec: StepSpec
    condition: _Condition | None


@dataclass
class _Outcome:
    """What one combination of `when` results gives a run at start."""

    ready: list[StepSpec]
    skipped: list[StepSpec]
    one_by_one: bool  # for_each reached, or every step skipped (the run completes at once)
    automatic: bool  # an automatic step is ready: the run needs a segment (a wake)
    phase: str
    due_at: datetime | None
    detail: dict[str, Any]


@dataclass
class _Plan:
    playbook: Playbook
    candidates: list[_Candidate]
    all_one_by_one: bool  # a reachable `when` reads more than params/run
    due: dict[str, datetime | None] = field(default_factory=dict)
    check: dict[str, datetime | None] = field(default_factory=dict)
    outcomes: dict[tuple[bool, ...], _Outcome] = field(default_factory=dict)


def _plan(rt: Runtime, playbook: Playbook, now: datetime, stub: Run) -> _Plan:
    first_stage = playbook.stages[0] if playbook.stages else None
    skippable: set[str] = set()
    candidates: list[_Candidate] = []
    all_one_by_one = False
    # One pass in playbook order, as progress.advance: a step is reached at start when it has
    # no stage (or the first one) and every need is a step before it that may be skipped.
    for spec in playbook.steps:
        if spec.stage is not None and spec.stage != first_stage:
            continue
        if not all(need in skippable for need in spec.needs):
            continue
        condition = _Condition(spec.when) if spec.when else None
        if condition is not None:
            skippable.add(spec.id)
            if not condition.expr.names <= FAST_NAMES | BUILTIN_NAMES:
                all_one_by_one = True
        candidates.append(_Candidate(spec, condition))
    plan = _Plan(playbook, candidates, all_one_by_one)
    for c in candidates:
        due = due_time(rt, stub, c.spec, ready_at=now)
        plan.due[c.spec.id] = due
        plan.check[c.spec.id] = first_check(rt, c.spec, status=st.READY, ready_at=now,
                                            due_at=due, now=now)
    return plan


def _outcome(plan: _Plan, results: tuple[bool, ...]) -> _Outcome:
    """The steps a run gets at start for the truth values of the `when`s evaluated, in order."""
    found = plan.outcomes.get(results)
    if found is not None:
        return found
    playbook = plan.playbook
    state: dict[str, str] = {}
    ready: list[StepSpec] = []
    skipped: list[StepSpec] = []
    one_by_one = False
    truths = iter(results)
    for c in plan.candidates:
        if not all(state.get(need) == st.SKIPPED for need in c.spec.needs):
            continue
        if c.condition is not None and not next(truths):
            state[c.spec.id] = st.SKIPPED
            skipped.append(c.spec)
            continue
        if c.spec.for_each:
            one_by_one = True
        state[c.spec.id] = st.READY
        ready.append(c.spec)
    if len(skipped) == len(playbook.steps):
        one_by_one = True  # the run completes at start: start_run does that properly
    phase = REGISTERED
    for spec in playbook.steps:  # registers._phase: the first open step with a phase
        if spec.phase and state.get(spec.id) == st.READY:
            phase = spec.phase
            break
    reg = playbook.register_
    due_at = plan.due.get(reg.due_by) if reg and reg.due_by and reg.due_by in state and \
        state[reg.due_by] == st.READY else None
    outcome = _Outcome(
        ready=ready, skipped=skipped, one_by_one=one_by_one,
        automatic=any(s.action in AUTOMATIC_ACTIONS for s in ready), phase=phase,
        due_at=due_at,
        detail={"playbook": playbook.id, "version": playbook.version,
                "ready": [s.id for s in ready], "skipped": [s.id for s in skipped]},
    )
    plan.outcomes[results] = outcome
    return outcome


class _RunStub:
    """What entry_row, due_time and run_view read of a run, without an ORM object."""

    __slots__ = ("id", "params", "unit_id", "started_at", "started_by", "stage",
                 "stage_entered_at", "playbook_id", "title", "status")

    def __init__(self, **values: Any) -> None:
        for key in self.__slots__:
            setattr(self, key, values.get(key))


# -- writing --------------------------------------------------------------------------------

def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _same(value: Any) -> Any:
    return value


def _json_text(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """psycopg's JSON bind value (a Json wrapper, serialised again at every COPY row) as the
    JSON text it stands for, made once: constants and cached values then cost nothing."""
    def encode(value: Any) -> Any:
        wrapped = process(value)
        obj = getattr(wrapped, "obj", _MISSING)
        if obj is _MISSING:
            return wrapped
        return (getattr(wrapped, "dumps", None) or json.dumps)(obj)

    return encode


def _memo(enc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`enc` remembering its results for values that repeat (and for empty containers)."""
    cache: dict[Any, Any] = {}

    def encode(value: Any) -> Any:
        try:
            return cache[value]
        except KeyError:
            found = cache[value] = enc(value)
            return found
        except TypeError:  # a dict or list: only the empty ones are cached
            if value:
                return enc(value)
            key = ("empty", type(value))
            if key not in cache:
                cache[key] = enc(value)
            return cache[key]

    return encode


def _literal(value: Any) -> str:
    """An encoded constant as SQLite SQL text (values from the playbook and the org chart)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


class _Writer:
    """The connection of the caller's transaction, and how values reach it. The driver gets
    values encoded by the columns' own SQLAlchemy bind processors (`enc`), so what is stored
    is exactly what the ORM stores (SQLite: executemany; PostgreSQL with psycopg: COPY); any
    other driver gets a Core insert."""

    def __init__(self, session: Session) -> None:
        self.conn: Connection = session.connection()
        self.dialect = self.conn.dialect
        self.raw = self.dialect.name == "sqlite"
        # PostgreSQL through psycopg 3: COPY, fed the values SQLAlchemy would give the driver.
        self.copy = self.dialect.name == "postgresql" and self.dialect.driver == "psycopg"

    def enc(self, model: Any, column: str) -> Callable[[Any], Any]:
        if not (self.raw or self.copy):
            return _same
        col = _table(model).c[column]
        process = col.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        if process is None:
            return _same
        if self.copy and isinstance(col.type, JSON):
            return _json_text(process)
        return cast(Callable[[Any], Any], process)

    @contextmanager
    def page_cache(self, runs: int) -> Iterator[None]:
        """On SQLite, a page cache of about 1 KiB per run (up to 512 MiB) while the batch is
        written, the connection's own size afterwards. The indexes of a 400,000-run batch do
        not fit SQLite's default 2 MiB, and pages evicted mid-transaction are written to the
        WAL and read back (measured: hazard inserts 14.8 s -> 6.9 s at 400,000). This is
        memory only; durability (synchronous, journal) is untouched."""
        driver = self.conn.connection.driver_connection if self.raw else None
        wanted = min(512 * 1024, runs)  # KiB
        if driver is None or wanted <= 2048:
            yield
            return
        before = driver.execute("PRAGMA cache_size").fetchone()[0]
        driver.execute(f"PRAGMA cache_size=-{wanted}")
        try:
            yield
        finally:
            driver.execute(f"PRAGMA cache_size={int(before)}")

    def run_ids(self, count: int) -> list[int]:
        if count == 0:
            return []
        if self.raw:  # the transaction holds SQLite's write lock (BEGIN IMMEDIATE)
            top = int(self.conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM run")
                      .scalar() or 0)
            return list(range(top + 1, top + count + 1))
        rows = self.conn.execute(
            text("SELECT nextval(pg_get_serial_sequence('run', 'id')) "
                 "FROM generate_series(1, :n)"), {"n": count}
        ).scalars().all()
        return sorted(int(r) for r in rows)


class _Insert:
    """One INSERT: the columns that vary per row are bound (`rows` holds their encoded values),
    every other column is a constant of the statement. On SQLite the constants are written
    into the SQL as literals: binding fewer values per row is what makes a wide row cheap. On
    PostgreSQL (psycopg) the rows go through COPY, which is several times faster there than
    an executemany of INSERTs."""

    def __init__(self, w: _Writer, model: Any, varying: Sequence[str],
                 const: dict[str, Any]) -> None:
        table = _table(model)
        names = [c.name for c in table.columns]
        missing = set(names) - set(varying) - set(const) - {"id"}
        if missing:
            raise ValueError(f"{table.name}: no value for {sorted(missing)}")
        self.w = w
        self.table = table
        self.varying = tuple(varying)
        self.const = {c: w.enc(model, c)(v) for c, v in const.items()}
        self.rows: list[tuple[Any, ...]] = []
        quote = w.dialect.identifier_preparer.quote
        self.copy_sql = (f"COPY {quote(table.name)} "
                         f"({', '.join(quote(c) for c in [*self.varying, *self.const])}) "
                         "FROM STDIN")
        if w.raw:
            columns = [*self.varying, *self.const]
            values = ["?"] * len(self.varying) + [_literal(v) for v in self.const.values()]
            self.sql = (f"INSERT INTO {quote(table.name)} "
                        f"({', '.join(quote(c) for c in columns)}) VALUES ({', '.join(values)})")

    def flush(self) -> None:
        if not self.rows:
            return
        if self.w.raw:
            self.w.conn.exec_driver_sql(self.sql, self.rows)  # type: ignore[arg-type]
        elif self.w.copy:
            tail = tuple(self.const.values())
            driver = self.w.conn.connection.driver_connection
            with driver.cursor() as cur, cur.copy(self.copy_sql) as copy:  # type: ignore[union-attr]
                for row in self.rows:
                    copy.write_row(row + tail)
        else:
            self.w.conn.execute(insert(self.table), [
                {**self.const, **dict(zip(self.varying, row, strict=True))} for row in self.rows])
        self.rows.clear()  # the same list: appends are kept per outcome (_Rows._targets)


STEP_COLUMNS_FIXED = {
    "item_index": 0, "item": None, "assignee_person_id": None, "original_due_at": None,
    "overdue": False, "escalation_level": 0, "last_escalated_at": None, "reminders_sent": 0,
    "ack_missed": False, "acked_at": None, "acked_by": None, "submitted_at": None,
    "submitted_by": None, "verified_by": None, "note": None, "outputs": {}, "evidence": [],
    "reject_reason": None, "prefect_recorded": False,
}
# Register fields entry_row gives that are the same for every run of the batch.
HAZARD_CONST = ("playbook_id", "updated_at")


class _Rows:
    """The statements of a batch, and the encoders and constants every row shares."""

    def __init__(self, rt: Runtime, w: _Writer, plan: _Plan, now: datetime, actor: str,
                 import_id: int | None) -> None:
        pb = plan.playbook
        self.rt, self.w, self.plan, self.now, self.actor = rt, w, plan, now, actor
        self.import_id = import_id
        self.enc_params = w.enc(Run, "params")
        self.enc_assignees = w.enc(StepInstance, "assignees")
        self.no_one = self.enc_assignees([])
        self.enc_detail = w.enc(AuditEvent, "detail")
        self.enc_skipped = w.enc(Run, "skipped")
        self.skipped_json: dict[int, Any] = {}  # id(outcome) -> its encoded `skipped` list
        self.run = _Insert(w, Run, ("id", "title", "unit_id", "params", "skipped"), {
            "playbook_id": pb.id, "playbook_version": pb.version, "playbook_sha": pb.sha256,
            "status": rs.RUNNING, "stage": pb.stages[0] if pb.stages else None,
            "stage_entered_at": now if pb.stages else None, "started_by": actor,
            "started_at": now, "finished_at": None, "parent_step_id": None, "segments": 0,
            "skipped_recorded": 0})
        self.hazard: _Insert | None = None
        # The register's deadline when counted from the start: the same for the batch.
        self.known_due = known_deadline(rt, now, pb)
        self.hazard_get: Any = None  # itemgetter of the varying columns (two or more)
        self.hazard_enc: list[tuple[int, Callable[[Any], Any]]] = []
        self.audit = _Insert(w, AuditEvent, ("run_id", "detail"), {
            "step_id": None, "at": now, "actor": actor, "action": IMPORTED,
            "from_state": None, "to_state": rs.RUNNING})
        self.steps: dict[str, _Insert] = {}
        self.assign: dict[tuple[str, str], tuple[str | None, Any, list[str]]] = {}
        self.details: dict[int, tuple[str, str] | None] = {}
        self.failures: list[dict[str, Any]] = []
        self.wakes: list[dict[str, Any]] = []
        self.counts: dict[tuple[str, str], int] = {}  # (task step id, unit) -> runs
        self.targets: dict[int, list[tuple[Callable[[Any], None], StepSpec]]] = {}

    def step(self, spec: StepSpec) -> _Insert:
        """The statement writing `spec`'s ready rows."""
        found = self.steps.get(spec.id)
        if found is None:
            const: dict[str, Any] = {
                **STEP_COLUMNS_FIXED, "step_key": spec.id, "title": spec.title,
                "action": spec.action, "role": spec.role, "status": st.READY,
                "ready_at": self.now, "due_at": self.plan.due[spec.id],
                "next_check_at": self.plan.check[spec.id], "done_at": None, "version": 1}
            found = _Insert(self.w, StepInstance,
                            ("run_id", "unit_id", "assignee_unit_id", "assignees"), const)
            self.steps[spec.id] = found
        return found

    def assignment(self, role: str | None, unit_id: str) -> tuple[str | None, Any, list[str]]:
        if role is None:
            return None, self.no_one, []
        key = (role, unit_id)
        found = self.assign.get(key)
        if found is None:
            at, holders = self.rt.org.resolve_role(role, unit_id)
            people = [p.id for p in holders]
            found = (at, self.enc_assignees(people), people)
            self.assign[key] = found
        return found

    def _hazard_insert(self, entry: dict[str, Any]) -> _Insert:
        varying = [k for k in entry if k not in HAZARD_CONST]
        const = {c.name: None for c in _table(Hazard).columns if c.name not in varying}
        const |= {"playbook_id": self.plan.playbook.id, "updated_at": self.now,
                  "import_id": self.import_id}
        insert_ = _Insert(self.w, Hazard, varying, const)
        self.hazard_get = itemgetter(*varying)
        self.hazard_enc = []
        for i, column in enumerate(varying):
            enc = self.w.enc(Hazard, column)
            if enc is not _same:  # the found time varies; the deadline and plan repeat
                self.hazard_enc.append((i, enc if column == "found_at" else _memo(enc)))
        return insert_

    def _detail(self, outcome: _Outcome, row: int | None) -> Any:
        """The `imported` event's detail, encoded; on SQLite by splicing the row number into
        the outcome's encoded template (the same text the encoder gives for the whole)."""
        detail = {"import": self.import_id, "row": row, **outcome.detail}
        if not self.w.raw or (row is not None and type(row) is not int):
            return self.enc_detail(detail)
        parts = self.details.get(id(outcome), False)
        if parts is False:
            sentinel = -987654321012345
            whole = self.enc_detail({**detail, "row": sentinel})
            pieces = whole.split(str(sentinel)) if isinstance(whole, str) else []
            parts = (pieces[0], pieces[1]) if len(pieces) == 2 else None
            self.details[id(outcome)] = parts
        if parts is None:
            return self.enc_detail(detail)
        return f"{parts[0]}{'null' if row is None else row}{parts[1]}"

    def add(self, run_id: int, new: NewRun, title: str, outcome: _Outcome,
            failures: list[tuple[str, str]], stub: _RunStub) -> None:
        pb = self.plan.playbook
        unit = new.unit_id
        skipped = self.skipped_json.get(id(outcome))
        if skipped is None:
            skipped = self.skipped_json[id(outcome)] = self.enc_skipped(
                [spec.id for spec in outcome.skipped])
        self.run.rows.append((run_id, title, unit, self.enc_params(new.params), skipped))
        if pb.register_ is not None:
            entry = entry_row(self.rt, cast(Run, stub), pb, self.now)
            entry["status"] = outcome.phase  # what sync_entry makes of the steps at start
            entry["due_at"] = outcome.due_at or self.known_due
            if self.hazard is None:
                self.hazard = self._hazard_insert(entry)
            values = list(self.hazard_get(entry))
            for i, enc in self.hazard_enc:
                values[i] = enc(values[i])
            self.hazard.rows.append(tuple(values))
        for append, spec in self._targets(outcome):
            at, people_json, _people = self.assignment(spec.role, unit)
            append((run_id, unit, at, people_json))
            if spec.action == "task":
                key = (spec.id, unit)
                self.counts[key] = self.counts.get(key, 0) + 1
        self.audit.rows.append((run_id, self._detail(outcome, new.row)))
        for step_id, message in failures:
            self.failures.append({
                "run_id": run_id, "step_id": None, "at": self.now, "actor": SYSTEM,
                "action": "expression_failed", "from_state": None, "to_state": None,
                "detail": {"step": step_id, "field": "when", "error": message}})
        if outcome.automatic:
            self.wakes.append({"run_id": run_id, "reason": "started", "created_at": self.now,
                               "not_before": self.now, "attempts": 0, "last_error": None,
                               "done_at": None})

    def _targets(self, outcome: _Outcome) -> list[tuple[Callable[[Any], None], StepSpec]]:
        """Where an outcome's step rows go: the append of each ready step's statement (the
        steps it passes over have no rows: they are the run's `skipped` list)."""
        found = self.targets.get(id(outcome))
        if found is None:
            found = [(self.step(spec).rows.append, spec) for spec in outcome.ready]
            self.targets[id(outcome)] = found
        return found

    def tasks(self) -> dict[str, dict[str, list[Any]]]:
        """person -> step title -> [tasks given, earliest due], for the summary notes."""
        out: dict[str, dict[str, list[Any]]] = defaultdict(dict)
        for (step_id, unit), count in self.counts.items():
            spec = self.plan.playbook.step(step_id)
            due = self.plan.due[step_id]
            for person in self.assignment(spec.role, unit)[2]:
                entry = out[person].setdefault(spec.title, [0, due])
                entry[0] += count
        return out

    def flush(self, session: Session) -> None:
        self.run.flush()  # first: the others refer to the runs
        if self.hazard is not None:
            self.hazard.flush()
        for insert_ in self.steps.values():
            insert_.flush()
        self.audit.flush()
        insert_rows(session, AuditEvent, self.failures)
        insert_rows(session, Wake, self.wakes)
        self.failures, self.wakes = [], []


class _Decider:
    """Which outcome each row gets. When every reachable `when` reads only constant lookups
    on `params`, a row's outcome depends on those values alone: one dict lookup per row."""

    def __init__(self, rt: Runtime, plan: _Plan, stub: _RunStub, unit_names: dict[str, str]
                 ) -> None:
        self.rt, self.plan, self.stub, self.unit_names = rt, plan, stub, unit_names
        conditions = [c.condition for c in plan.candidates if c.condition is not None]
        self.uses_run = any(c.uses_run for c in conditions)
        keys: set[str] = set()
        self.memo_ok = bool(conditions) and not self.uses_run
        for cond in conditions:
            if cond.lookups is None:
                self.memo_ok = False
            else:
                keys.update(key for name, key in cond.lookups if name == "params")
        self.keys = tuple(sorted(keys))
        self.memo: dict[tuple[Any, ...], tuple[_Outcome, list[tuple[str, str]]]] = {}
        self.none = _outcome(plan, ()) if not conditions else None

    def decide(self, new: NewRun) -> tuple[_Outcome, list[tuple[str, str]]]:
        if self.none is not None:
            return self.none, []
        key: tuple[Any, ...] | None = None
        if self.memo_ok:
            key = tuple(new.params.get(k, _MISSING) for k in self.keys)
            try:
                return self.memo[key]
            except KeyError:
                pass
            except TypeError:  # an unhashable value (a list param)
                key = None
        found = self._walk(new)
        if key is not None:
            self.memo[key] = found
        return found

    def _walk(self, new: NewRun) -> tuple[_Outcome, list[tuple[str, str]]]:
        plan = self.plan
        ctx: dict[str, Any] = {"params": new.params}
        if self.uses_run:
            stub = self.stub
            view = _RunStub(id=None, params=new.params, unit_id=new.unit_id,
                            started_at=stub.started_at, started_by=stub.started_by,
                            stage=stub.stage, playbook_id=stub.playbook_id, status=rs.RUNNING,
                            title=_title(plan.playbook, new, self.unit_names))
            ctx["run"] = run_view(self.rt, cast(Run, view))
        results: list[bool] = []
        failures: list[tuple[str, str]] = []
        state: dict[str, str] = {}
        for c in plan.candidates:
            if not all(state.get(need) == st.SKIPPED for need in c.spec.needs):
                continue
            if c.condition is None:
                state[c.spec.id] = st.READY
                continue
            truth, error = c.condition.evaluate(ctx)
            if error is not None:
                failures.append((c.spec.id, f"steps.{c.spec.id}.when: {error}"))
            results.append(truth)
            state[c.spec.id] = st.READY if truth else st.SKIPPED
        return _outcome(plan, tuple(results)), failures


def bulk_start(
    session: Session, rt: Runtime, *, playbook: Playbook, runs: Sequence[NewRun], actor: str,
    import_id: int | None = None, label: str | None = None, summarize: bool = True,
    cache_runs: int | None = None,
) -> BulkResult:
    """Start a run of `playbook` for every item of `runs`, in the caller's transaction (see the
    module docstring). `label` names the batch in the summary notes (a file name); without
    `summarize` no note is written and the result's `tasks` is for the caller to sum up (a file
    written in several transactions gets one note per person, see write_summaries);
    `cache_runs` sizes SQLite's page cache for a whole file written in chunks."""
    now = rt.clock.now()
    rt.catalog.pin(session, playbook, now)
    stub = _RunStub(started_at=now, stage_entered_at=now if playbook.stages else None,
                    stage=playbook.stages[0] if playbook.stages else None,
                    playbook_id=playbook.id, status=rs.RUNNING, started_by=actor)
    plan = _plan(rt, playbook, now, cast(Run, stub))
    w = _Writer(session)
    with w.page_cache(cache_runs or len(runs)):
        return _bulk(session, rt, w, plan, stub, runs, actor=actor, now=now,
                     import_id=import_id, label=label, summarize=summarize)


def _bulk(session: Session, rt: Runtime, w: _Writer, plan: _Plan, stub: _RunStub,
          runs: Sequence[NewRun], *, actor: str, now: datetime, import_id: int | None,
          label: str | None, summarize: bool) -> BulkResult:
    playbook = plan.playbook
    rows = _Rows(rt, w, plan, now, actor, import_id)
    unit_names = {uid: u.name for uid, u in rt.org.units.items()}
    decider = _Decider(rt, plan, stub, unit_names)

    # Decide each row's outcome first: the fast ones get one block of ids.
    decided: list[tuple[_Outcome, list[tuple[str, str]]] | None] = []
    for new in runs:
        if plan.all_one_by_one:
            decided.append(None)
            continue
        outcome, failures = decider.decide(new)
        decided.append(None if outcome.one_by_one else (outcome, failures))
    fast_count = sum(1 for d in decided if d is not None)
    ids = w.run_ids(fast_count)
    run_ids: list[int] = [0] * len(runs)
    next_id = iter(ids)
    slow: list[int] = []
    pending = 0
    wakes = 0
    for index, new in enumerate(runs):
        found = decided[index]
        if found is None:
            slow.append(index)
            continue
        outcome, failures = found
        run_id = next(next_id)
        run_ids[index] = run_id
        stub.id, stub.params, stub.unit_id = run_id, new.params, new.unit_id
        rows.add(run_id, new, _title(playbook, new, unit_names), outcome, failures, stub)
        wakes += outcome.automatic
        pending += 1
        if pending >= CHUNK:
            rows.flush(session)
            pending = 0
    rows.flush(session)
    result = BulkResult(run_ids=run_ids, fast=fast_count, wakes=wakes)

    for index in slow:
        new = runs[index]
        run = start_run(rt, playbook_id=playbook.id, unit_id=new.unit_id, params=new.params,
                        actor=actor, session=session, check_rights=False)
        run_ids[index] = run.id or 0
        session.add(AuditEvent(run_id=run.id, at=now, actor=actor, action=IMPORTED,
                               to_state=run.status,
                               detail={"import": import_id, "row": new.row,
                                       "playbook": playbook.id, "version": playbook.version}))
        result.one_by_one += 1
    if slow and import_id is not None and playbook.register_ is not None:
        session.flush()
        slow_ids = [run_ids[i] for i in slow]
        for start in range(0, len(slow_ids), 1000):
            session.execute(update(_table(Hazard)).where(
                _table(Hazard).c.run_id.in_(slow_ids[start:start + 1000])
            ).values(import_id=import_id))
    result.tasks = rows.tasks()
    result.first_run = ids[0] if ids else 0
    if summarize:
        result.summaries = write_summaries(session, rt, playbook, result.tasks, now=now,
                                           import_id=import_id, first_run=result.first_run,
                                           label=label)
    return result


def merge_tasks(into: dict[str, dict[str, list[Any]]],
                more: dict[str, dict[str, list[Any]]]) -> None:
    """Add one call's `tasks` to a running total: counts add up, the earliest due stays."""
    for person, by_title in more.items():
        mine = into.setdefault(person, {})
        for title, (count, due) in by_title.items():
            total = mine.setdefault(title, [0, due])
            total[0] += count
            if due is not None and (total[1] is None or due < total[1]):
                total[1] = due


def _title(playbook: Playbook, new: NewRun, unit_names: dict[str, str]) -> str:
    where = new.params.get("location") or unit_names[new.unit_id]
    return f"{playbook.title}·{where}"


def write_summaries(session: Session, rt: Runtime, playbook: Playbook,
               tasks: dict[str, dict[str, list[Any]]], *, now: datetime,
               import_id: int | None, first_run: int, label: str | None) -> int:
    """One inbox note per assignee: how many tasks the batch gave them, and the first due."""
    notes: list[dict[str, Any]] = []
    batch = f"导入批次 #{import_id}" if import_id is not None else "批量启动"
    source = f"（{label}）" if label else ""
    for person, by_title in tasks.items():
        total = sum(count for count, _ in by_title.values())
        parts = "，".join(f"{title} {count} 项" for title, (count, _) in by_title.items())
        dues = [due for _, due in by_title.values() if due is not None]
        due_text = f"；最早期限 {rt.renderer.deadline(min(dues))}" if dues else ""
        notes += notification_rows(
            rt.org, people=[person], kind="assigned",
            title=f"【批量导入】{total} 项新任务",
            body=f"{playbook.title}：{batch}{source}共分派给你 {total} 项（{parts}）{due_text}。"
                 "请在待办中查看。",
            dedupe=f"bulk|{import_id if import_id is not None else f'run{first_run}'}",
            now=now, run_id=None, step_id=None, inbox_only=True,
        )
    insert_ignoring_duplicates(session, Notification, notes)
    return len(notes)

