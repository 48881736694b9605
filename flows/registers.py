"""Register entries (台账) for playbooks that declare `register:` (the hazard loop): created
with the run from its params, and kept in step with the run inside the same transaction
whenever it moves. The register's params contract: `location` (required by the playbook),
and optionally `source`, `grade`, `category`, `description`, `enterprise`, `found_at`,
`found_by`, `code` and `campaign` (the id of a 3030 campaign run)."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from flows.durations import add_due
from flows.runtime import Runtime
from flows.spec import Playbook
from models import run as rs
from models import task as st
from models.errors import InvalidInput, clipped
from models.hazard import CodeClaim, Hazard
from models.org import OrgChart
from models.run import Run
from models.task import StepInstance

CLOSED = "已销号"
FINISHED = "已办结"
CANCELLED = "已撤销"
REGISTERED = "登记"
# What a register row says when its run's params do not.
DEFAULT_SOURCE = "检查发现"
DEFAULT_GRADE = "一般"
STREET_TYPES = ("street", "town")


def street_of(rt: Runtime, unit_id: str) -> str | None:
    """The street/town a unit belongs to: the level units are ranked at."""
    return _streets(rt.org).get(unit_id)


@lru_cache(maxsize=8)
def _streets(org: OrgChart) -> dict[str, str | None]:
    """unit -> its street, once per org chart (an import asks 400,000 times)."""
    out: dict[str, str | None] = {}
    for unit_id in org.units:
        out[unit_id] = next((uid for uid in org.ancestors(unit_id)
                             if org.unit(uid).type in STREET_TYPES), None)
    return out


def parse_time(value: Any, default: datetime, tz: tzinfo) -> datetime:
    """A found_at param as a time; one without an offset is the bureau's clock (`tz`)."""
    if isinstance(value, str) and value:
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return default


def entry_row(rt: Runtime, run: Run, playbook: Playbook, now: datetime,
              taken: Container[str] = ()) -> dict[str, Any]:
    """The register row of a new run, as a dict (the bulk import writes many at once); its
    deadline is the caller's (known_deadline, the same for every run started at one moment).
    A run given no code gets one made from its id, clear of the codes in `taken`."""
    p = run.params
    campaign = p.get("campaign")
    return {
        "run_id": run.id, "code": p.get("code") or generated_code(run.id or 0, taken),
        "playbook_id": playbook.id, "unit_id": run.unit_id,
        "street_id": street_of(rt, run.unit_id), "source": p.get("source") or DEFAULT_SOURCE,
        "grade": p.get("grade") or DEFAULT_GRADE, "category": p.get("category"),
        "location": p.get("location") or rt.org.unit(run.unit_id).name,
        "description": p.get("description"), "enterprise": p.get("enterprise"),
        "found_at": parse_time(p.get("found_at"), run.started_at, rt.tz),
        "found_by": p.get("found_by") or run.started_by, "status": REGISTERED,
        "plan": {}, "campaign_run_id": int(campaign) if campaign not in (None, "") else None,
        "due_at": None, "updated_at": now,
    }


def generated_code(run_id: int, taken: Container[str] = ()) -> str:
    """The register number of a hazard given no 隐患编号: YH and its run id (YH00000123), or,
    when someone registered that very code by hand, the first of YH00000123-2, -3, ... that
    is free: a code people typed never blocks the system's own numbering."""
    code = base = f"YH{run_id:08d}"
    n = 2
    while code in taken:
        code, n = f"{base}-{n}", n + 1
    return code


def codes_in_the_way(session: Session, first_id: int, last_id: int) -> set[str]:
    """Stored or claimed codes that the numbering of run ids first_id..last_id would make
    (YH + 8 digits, and its -n variants): a range read on the code indexes, almost always
    empty."""
    low, high = f"YH{first_id:08d}", f"YH{last_id:08d}\uffff"
    found = set(session.exec(select(Hazard.code).where(
        Hazard.code >= low, Hazard.code <= high)).all())  # type: ignore[operator]
    found |= set(session.exec(select(CodeClaim.code).where(
        CodeClaim.code >= low, CodeClaim.code <= high)).all())  # type: ignore[operator]
    return found


def known_deadline(rt: Runtime, started_at: datetime, playbook: Playbook) -> datetime | None:
    """The register's deadline before its step is reached, when it is counted from the run's
    start (a major hazard's 30 days run from registration, through listing and the plan): a
    hazard stuck before rectification is overdue all the same."""
    spec = playbook.register_
    step = playbook.step(spec.due_by) if spec and spec.due_by else None
    if step is None or step.due is None or step.due.from_ != "run":
        return None
    return add_due(started_at, step.due.after, whole_days=step.due.whole_days,
                   calendar=rt.calendar, tz=rt.tz)


def create_entry(session: Session, rt: Runtime, run: Run, playbook: Playbook,
                 now: datetime) -> None:
    if playbook.register_ is None:
        return
    given = bool(run.params.get("code"))
    taken = set() if given else codes_in_the_way(session, run.id or 0, run.id or 0)
    for _ in range(3):
        row = entry_row(rt, run, playbook, now, taken)
        check_code_free(session, row["code"])
        row["due_at"] = known_deadline(rt, run.started_at, playbook)
        try:
            with session.begin_nested():
                session.add(Hazard(**row))
                session.flush()
            return
        except IntegrityError:  # PostgreSQL: the same code registered at this very moment
            if given:
                raise _code_taken(row["code"]) from None
            taken.add(row["code"])  # typed by someone else just now: the next of our own
    raise _code_taken(row["code"])


def check_code_free(session: Session, code: str) -> None:
    """422 on params.code for a 隐患编号 already on the register or held by an import that is
    still being written (a chunked import claims its file's codes first, models.hazard
    CodeClaim): one code, one hazard."""
    stored = session.exec(select(Hazard.run_id).where(Hazard.code == code)).first()
    if stored is not None:
        # Not which hazard: it may be of a unit the person registering may not read. Whoever
        # may read it finds it in the register by its code.
        raise _code_taken(code)
    claim = session.get(CodeClaim, code)
    if claim is not None:
        raise _code_taken(code, f"（正由导入批次 #{claim.import_id} 登记）",
                          f" (being imported by batch #{claim.import_id})")


def _code_taken(code: str, zh: str = "", en: str = "") -> InvalidInput:
    shown = clipped(code, 60)
    return InvalidInput("params.code", f"隐患编号 {shown} 已经登记过{zh} / hazard code "
                                       f"'{shown}' is already registered{en}")


def sync_entry(session: Session, rt: Runtime, run: Run, playbook: Playbook,
               now: datetime) -> None:
    """Bring the register row in line with the run: phase, deadline, plan, closure."""
    spec = playbook.register_
    if spec is None:
        return
    entry = session.get(Hazard, run.id)
    if entry is None:
        return
    rows = session.exec(select(StepInstance).where(StepInstance.run_id == run.id)).all()
    by_key: dict[str, list[StepInstance]] = {}
    for row in rows:
        by_key.setdefault(row.step_key, []).append(row)
    closing = by_key.get(spec.closed_by, [])
    if closing and all(r.status == st.DONE for r in closing):
        entry.closed_at = entry.closed_at or max(r.done_at or now for r in closing)
    if spec.due_by and by_key.get(spec.due_by):
        due_row = by_key[spec.due_by][0]
        entry.due_at = due_row.due_at
        entry.original_due_at = due_row.original_due_at or entry.original_due_at
    if spec.plan_by and by_key.get(spec.plan_by):
        plan_row = by_key[spec.plan_by][0]
        if plan_row.status in (st.DONE, st.SUBMITTED):
            entry.plan = dict(plan_row.outputs or {})
    entry.status = _phase(playbook, run, by_key, entry)
    entry.updated_at = now
    session.add(entry)


def _phase(playbook: Playbook, run: Run, by_key: dict[str, list[StepInstance]],
           entry: Hazard) -> str:
    if run.status == rs.CANCELLED:
        # A run cancelled after its hazard was closed (the look-back called off) stays a
        # closure: 销号 happened, and the month it happened in keeps counting it.
        return CLOSED if entry.closed_at else CANCELLED
    for spec in playbook.steps:  # the first open step, in playbook order, names the phase
        phase = spec.phase_while([r.status for r in by_key.get(spec.id, [])])
        if phase:
            return phase
    if run.status == rs.COMPLETED:
        return CLOSED if entry.closed_at else FINISHED
    return CLOSED if entry.closed_at else entry.status
