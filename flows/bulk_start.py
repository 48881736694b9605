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

How it is fast: the playbook is planned once (flows/bulk_plan.py: which steps can be reached
at start; due and first-check times, which are the same for every run started at the same
moment); each `when` is compiled once and, when it reads only constant lookups on
`params`/`run` (`params.grade == '重大'`), evaluated once per distinct value looked up; roles
are resolved once per unit; run ids are taken as one block inside the write transaction
(SQLite: after max(id), under the write lock the transaction holds; PostgreSQL: nextval over
generate_series); rows are plain tuples of only the values that vary (a statement per step and
outcome carries the constant columns), encoded by the columns' own SQLAlchemy types so they
are what the ORM stores, written in chunks of 20,000 runs (flows/bulk_insert.py: SQLite
executemany with the constants as SQL literals, PostgreSQL (psycopg) COPY). No ORM object per
run. On SQLite the
connection's page cache is raised for the batch (memory only; see RowWriter.page_cache).

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

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import update
from sqlmodel import Session

from flows.bulk_insert import BulkInsert, RowWriter, memoised, table_of, unchanged
from flows.bulk_plan import Decider, NewRun, Outcome, Plan, RunStub, make_plan, run_title
from flows.lifecycle import start_run
from flows.recipients import notification_rows
from flows.registers import codes_in_the_way, entry_row, known_deadline
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
IMPORTED = "imported"

__all__ = ["BulkResult", "NewRun", "bulk_start", "merge_tasks", "write_summaries"]


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


STEP_COLUMNS_FIXED = {
    "item_index": 0, "item": None, "assignee_person_id": None, "original_due_at": None,
    "overdue": False, "escalation_level": 0, "last_escalated_at": None, "reminders_sent": 0,
    "ack_missed": False, "acked_at": None, "acked_by": None, "submitted_at": None,
    "submitted_by": None, "verify_due_at": None, "verify_level": 0, "verify_last_at": None,
    "verified_by": None, "note": None, "outputs": {}, "evidence": [], "evidence_labels": {},
    "reject_reason": None, "prefect_recorded": False, "rehanded_from": None,
}
# Register fields entry_row gives that are the same for every run of the batch.
HAZARD_CONST = ("playbook_id", "updated_at")


class _Rows:
    """The statements of a batch, and the encoders and constants every row shares."""

    def __init__(self, rt: Runtime, w: RowWriter, plan: Plan, now: datetime, actor: str,
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
        self.taken: set[str] = set()  # codes the numbering of this batch's ids must step around
        self.run = BulkInsert(w, Run, ("id", "title", "unit_id", "params", "skipped"), {
            "playbook_id": pb.id, "playbook_version": pb.version, "playbook_sha": pb.sha256,
            "status": rs.RUNNING, "stage": pb.stages[0] if pb.stages else None,
            "stage_entered_at": now if pb.stages else None, "started_by": actor,
            "started_at": now, "finished_at": None, "parent_step_id": None, "segments": 0,
            "skipped_recorded": 0, "passed_over_stages": [],
            # An imported hazard is real: an import is never a drill (flows/drills.py).
            "drill_kind": None, "drill_title": None})
        self.hazard: BulkInsert | None = None
        # The register's deadline when counted from the start: the same for the batch.
        self.known_due = known_deadline(rt, now, pb)
        self.hazard_get: Any = None  # itemgetter of the varying columns (two or more)
        self.hazard_enc: list[tuple[int, Callable[[Any], Any]]] = []
        self.audit = BulkInsert(w, AuditEvent, ("run_id", "detail"), {
            "step_id": None, "at": now, "actor": actor, "action": IMPORTED,
            "from_state": None, "to_state": rs.RUNNING})
        self.steps: dict[str, BulkInsert] = {}
        self.assign: dict[tuple[str, str], tuple[str | None, Any, list[str]]] = {}
        self.details: dict[int, tuple[str, str] | None] = {}
        self.failures: list[dict[str, Any]] = []
        self.wakes: list[dict[str, Any]] = []
        self.counts: dict[tuple[str, str], int] = {}  # (task step id, unit) -> runs
        self.targets: dict[int, list[tuple[Callable[[Any], None], StepSpec]]] = {}

    def step(self, spec: StepSpec) -> BulkInsert:
        """The statement writing `spec`'s ready rows."""
        found = self.steps.get(spec.id)
        if found is None:
            const: dict[str, Any] = {
                **STEP_COLUMNS_FIXED, "step_key": spec.id, "title": spec.title,
                "action": spec.action, "role": spec.role, "status": st.READY,
                "ready_at": self.now, "due_at": self.plan.due[spec.id],
                "next_check_at": self.plan.check[spec.id], "done_at": None, "version": 1,
                "report_kind": spec.report}
            varying: tuple[str, ...] = ("run_id", "unit_id", "assignee_unit_id", "assignees")
            if spec.at is None:  # held where the run is: no other unit to remember
                const["origin_unit_id"] = None
            else:  # where the event is, when `at` holds the step above it (as progress._row)
                varying += ("origin_unit_id",)
            found = BulkInsert(self.w, StepInstance, varying, const)
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

    def _hazard_insert(self, entry: dict[str, Any]) -> BulkInsert:
        varying = [k for k in entry if k not in HAZARD_CONST]
        const = {c.name: None for c in table_of(Hazard).columns if c.name not in varying}
        const |= {"playbook_id": self.plan.playbook.id, "updated_at": self.now,
                  "import_id": self.import_id}
        insert_ = BulkInsert(self.w, Hazard, varying, const)
        self.hazard_get = itemgetter(*varying)
        self.hazard_enc = []
        for i, column in enumerate(varying):
            enc = self.w.enc(Hazard, column)
            if enc is not unchanged:  # the found time varies; the deadline and plan repeat
                self.hazard_enc.append((i, enc if column == "found_at" else memoised(enc)))
        return insert_

    def _detail(self, outcome: Outcome, row: int | None) -> Any:
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

    def add(self, run_id: int, new: NewRun, title: str, outcome: Outcome,
            failures: list[tuple[str, str]], stub: RunStub) -> None:
        pb = self.plan.playbook
        unit = new.unit_id
        skipped = self.skipped_json.get(id(outcome))
        if skipped is None:
            skipped = self.skipped_json[id(outcome)] = self.enc_skipped(
                [spec.id for spec in outcome.skipped])
        self.run.rows.append((run_id, title, unit, self.enc_params(new.params), skipped))
        if pb.register_ is not None:
            entry = entry_row(self.rt, cast(Run, stub), pb, self.now, self.taken)
            entry["status"] = outcome.phase  # what sync_entry makes of the steps at start
            entry["due_at"] = outcome.due_at or self.known_due
            if self.hazard is None:
                self.hazard = self._hazard_insert(entry)
            values = list(self.hazard_get(entry))
            for i, enc in self.hazard_enc:
                values[i] = enc(values[i])
            self.hazard.rows.append(tuple(values))
        for append, spec in self._targets(outcome):
            held = unit if spec.at is None else self.rt.org.held_at(unit, spec.at)
            at, people_json, _people = self.assignment(spec.role, held)
            if spec.at is None:
                append((run_id, held, at, people_json))
            else:
                append((run_id, held, at, people_json, unit if held != unit else None))
            if spec.action == "task":
                key = (spec.id, held)
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

    def _targets(self, outcome: Outcome) -> list[tuple[Callable[[Any], None], StepSpec]]:
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
    stub = RunStub(started_at=now, stage_entered_at=now if playbook.stages else None,
                    stage=playbook.stages[0] if playbook.stages else None,
                    playbook_id=playbook.id, status=rs.RUNNING, started_by=actor)
    plan = make_plan(rt, playbook, now, cast(Run, stub))
    w = RowWriter(session)
    with w.page_cache(cache_runs or len(runs)):
        return _bulk(session, rt, w, plan, stub, runs, actor=actor, now=now,
                     import_id=import_id, label=label, summarize=summarize)


def _bulk(session: Session, rt: Runtime, w: RowWriter, plan: Plan, stub: RunStub,
          runs: Sequence[NewRun], *, actor: str, now: datetime, import_id: int | None,
          label: str | None, summarize: bool) -> BulkResult:
    playbook = plan.playbook
    rows = _Rows(rt, w, plan, now, actor, import_id)
    unit_names = {uid: u.name for uid, u in rt.org.units.items()}
    decider = Decider(rt, plan, stub, unit_names)

    # Decide each row's outcome first: the fast ones get one block of ids.
    decided: list[tuple[Outcome, list[tuple[str, str]]] | None] = []
    for new in runs:
        if plan.all_one_by_one:
            decided.append(None)
            continue
        outcome, failures = decider.decide(new)
        decided.append(None if outcome.one_by_one else (outcome, failures))
    fast_count = sum(1 for d in decided if d is not None)
    ids = w.run_ids(fast_count)
    if ids and playbook.register_ is not None:  # codes people typed that these ids would make
        low, high = f"YH{ids[0]:08d}", f"YH{ids[-1]:08d}\uffff"
        rows.taken = codes_in_the_way(session, ids[0], ids[-1]) | {
            code for new in runs if low <= (code := str(new.params.get("code") or "")) <= high}
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
        rows.add(run_id, new, run_title(playbook, new, unit_names), outcome, failures, stub)
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
            session.execute(update(table_of(Hazard)).where(
                table_of(Hazard).c.run_id.in_(slow_ids[start:start + 1000])
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
