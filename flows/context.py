"""The values playbook expressions and templates see: params, run, steps.<id>.outputs, item,
and helper functions: units(type=..., within=...), sample(items, count) (a draw seeded
from the run, the same however often evaluated), and campaign() (the live progress of the
current run as a 3030 campaign, or of the campaign run whose id is given)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from flows.calendar_gaps import estimated_note
from flows.campaigns import campaign_progress
from flows.passed_stages import passed_over_keys
from flows.registers import street_of
from flows.rehand import current
from flows.runtime import Runtime
from flows.sampling import draw, seed_for_run
from models.audit import ACTOR_NAMES, AuditEvent
from models.documents import Evidence
from models.run import Run
from models.task import SKIPPED, StepInstance


def unit_view(rt: Runtime, unit_id: str) -> dict[str, Any]:
    unit = rt.org.unit(unit_id)
    return {"id": unit.id, "name": unit.name, "name_en": unit.name_en, "type": unit.type,
            "parent": unit.parent_id}


def run_view(rt: Runtime, run: Run) -> dict[str, Any]:
    # The street (街道) or town (镇) the run's unit belongs to, the unit itself when it is one:
    # the 提级督办函 is addressed to it (a town's 人民政府, a street's 办事处). The registers and
    # the ranking place units the same way. '' when there is none above (a district department).
    street = street_of(rt, run.unit_id) or ""
    return {
        "id": run.id,
        "playbook": run.playbook_id,
        "title": run.title,
        "unit": run.unit_id,
        "unit_name": rt.org.unit(run.unit_id).name,
        "street": street,
        "street_name": rt.org.unit(street).name if street else "",
        "street_type": rt.org.unit(street).type if street else "",
        "stage": run.stage,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "started_at_local": rt.renderer.local(run.started_at),
        "started_by": run.started_by,
        # Who registered or started it, as people read it (a person's name; 系统, 运维命令行).
        "started_by_name": (rt.org.people[run.started_by].name
                            if run.started_by in rt.org.people
                            else ACTOR_NAMES.get(run.started_by, run.started_by)),
        "params": dict(run.params),
    }


# What a template reads of a step the run passed over: every key a reached step has.
_PASSED_OVER: dict[str, Any] = {
    "key": "", "status": SKIPPED, "action": "", "outputs": {}, "note": None, "completed_by": None,
    "completed_by_name": None, "done_at": "", "done_at_local": "", "due_at_local": "",
    "due_estimated": None,
    "verified_by": None, "verified_by_name": None, "reject_reason": None, "title": "",
    "step_title": "", "unit": "", "unit_name": "", "stage": None, "stage_title": None,
    "ready_at_local": "", "handed_in_at_local": "", "took_minutes": None, "late": None,
    "holder_names": [],
}


def steps_view(session: Session, rt: Runtime, run: Run, *,
               round_of: dict[str, Any] | None = None) -> dict[str, Any]:
    """Finished and open steps with their outputs; fan-out steps list their items' outputs;
    steps the run passed over are `skipped` with no outputs.

    `round_of`: recurring step -> the item of one of its rounds (None for the first). Such a
    step is that round alone, as the report of that round reads it (a 续报's sending: its
    own round's facts and writer, not the latest round's or the first's, however late it is
    rendered); see flows/rounds.paired_rounds.

    Reports list steps "in finishing order", and `done_at_local` is only to the minute, so each
    step also carries `done_at` (UTC, ISO to the microsecond, '' while unfinished: a string
    that sorts in time order) and `order` (its place in the playbook). Templates sort on
    'done_at,order'; the keys come in playbook order too, so an unsorted read is stable.
    `action` and `needs` are the playbook's: what kind of step it is, what it waits for."""
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    specs = playbook.steps
    spec_of = {s.id: s for s in specs}
    position = {s.id: i for i, s in enumerate(specs)}
    # What each step waits for: a report names as its author whoever did the step it needs.
    needs = {s.id: list(s.needs) for s in specs}
    # By item: a fan-out step's items (and so which output `pick` meets last) in item order.
    # Each item's record as it stands: a called-off instance handed out again is history.
    rows = current(session.exec(select(StepInstance).where(StepInstance.run_id == run.id)
                                .order_by(col(StepInstance.item_index))).all())
    now = rt.clock.now()
    # A stage jumped over at the commander's word reads like a false `when`; a step of it
    # handed out before (a row below) reads as the row says.
    out: dict[str, Any] = {key: dict(_PASSED_OVER, key=key)
                           for key in [*(run.skipped or ()), *passed_over_keys(playbook, run)]}
    for row in rows:
        if round_of is not None and row.step_key in round_of \
                and row.item != round_of[row.step_key]:
            continue
        person = rt.org.people.get(row.submitted_by or "")
        verifier = rt.org.people.get(row.verified_by or "")
        spec = spec_of.get(row.step_key)
        unit = rt.org.units.get(row.unit_id)
        view = {
            "key": row.step_key,
            "status": row.status,
            # task / notify / document / wait / playbook: reports list only people's tasks
            # as measures taken, not the engine sending or filing the report itself.
            "action": row.action,
            "outputs": dict(row.outputs or {}),
            "note": row.note,
            "completed_by": row.submitted_by,
            "completed_by_name": person.name if person else None,
            "done_at": (row.done_at.astimezone(UTC).isoformat(timespec="microseconds")
                        if row.done_at else ""),
            "done_at_local": rt.renderer.local(row.done_at),
            "due_at_local": rt.renderer.deadline(row.due_at),
            # Set when the deadline was counted Mon-Fri into a year the calendar lacks: a
            # document printing it says so (supervision-notice.md.j2).
            "due_estimated": estimated_note(rt, spec.due.after, row.ready_at, row.due_at,
                                            whole_days=spec.due.whole_days)
            if spec and spec.due and row.original_due_at is None else None,
            "verified_by": row.verified_by,
            "verified_by_name": verifier.name if verifier else None,
            "reject_reason": row.reject_reason,
            "title": row.title,
            # A fan-out item is titled "标题（单位）": the playbook's own title, the unit it is
            # for and the stage it belongs to, so a report need not take its title apart.
            "step_title": spec.title if spec else row.title,
            "unit": row.unit_id,
            "unit_name": unit.name if unit else row.unit_id,
            "stage": spec.stage if spec else None,
            "stage_title": playbook.stage_title(spec.stage) if spec else None,
            **_timeliness(rt, row, now),
        }
        if row.step_key in out:
            out[row.step_key].setdefault("items", [dict(out[row.step_key])]).append(view)
        else:
            out[row.step_key] = view
    # Every key of a run is in its pinned playbook; `last` only keeps the sort total.
    last = len(position)
    ordered = sorted(out, key=lambda key: (position.get(key, last), key))
    return {key: out[key] | {"order": position.get(key, last), "needs": needs.get(key, [])}
            for key in ordered}


def _timeliness(rt: Runtime, row: StepInstance, now: datetime) -> dict[str, Any]:
    """When a task was handed out and answered, in whole minutes, the minutes it was given,
    whether past its deadline
    (an open one: as of now), and whom it is with: a spot check's 抽查通报 lists each person
    called, when, how soon they answered, and who did not."""
    handed_in = row.submitted_at or row.done_at
    took = (int((handed_in - row.ready_at).total_seconds() // 60)
            if handed_in is not None and row.ready_at is not None else None)
    late = (handed_in or now) > row.due_at if row.due_at is not None else None
    # The time the task was given, as the playbook set it (before any extension): the 通报 says
    # "要求 N 分钟内签到" from the run's own playbook, not a number written into the template.
    set_due = row.original_due_at or row.due_at
    allowed = (int((set_due - row.ready_at).total_seconds() // 60)
               if set_due is not None and row.ready_at is not None else None)
    holders = [row.assignee_person_id] if row.assignee_person_id else list(row.assignees or [])
    return {
        "ready_at_local": rt.renderer.local(row.ready_at),
        "handed_in_at_local": rt.renderer.local(handed_in),
        "took_minutes": took,
        "allowed_minutes": allowed,
        "late": late,
        "holder_names": [rt.org.people[p].name if p in rt.org.people else p for p in holders],
    }


def evidence_view(session: Session, rt: Runtime, run: Run) -> dict[str, list[dict[str, Any]]]:
    """The files handed in for each step of the run (as its record stands: the last hand-in),
    in the order handed in, by step id: what each shows (整改前, 整改后; '' unmarked), the name
    its uploader gave it, and its SHA-256, which a form prints so the paper record names the
    very file kept (a stored file is hashed again on every read). For documents only: one
    query more than `steps` needs."""
    rows = [r for r in current(session.exec(
        select(StepInstance).where(StepInstance.run_id == run.id)
        .order_by(col(StepInstance.item_index))).all()) if r.evidence]
    ids = [ev_id for r in rows for ev_id in r.evidence]
    if not ids:
        return {}
    files = {e.id: e for e in session.exec(
        select(Evidence).where(col(Evidence.id).in_(ids))).all()}
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        marks = row.evidence_labels or {}
        for ev_id in row.evidence:
            file = files.get(ev_id)
            if file is None:
                continue
            out.setdefault(row.step_key, []).append({
                "id": file.id, "label": marks.get(ev_id, ""), "filename": file.filename,
                "content_type": file.content_type, "size": file.size, "sha256": file.sha256,
                "uploaded_at_local": rt.renderer.local(file.uploaded_at)})
    return out


def stage_history(session: Session, rt: Runtime, run: Run) -> list[dict[str, Any]]:
    """The stages a staged run has entered, in the order entered, with when: its first stage at
    the start, then each change (a stage entered twice is listed twice). [] for other runs."""
    if run.stage is None:
        return []
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    changes = session.exec(
        select(AuditEvent.to_state, AuditEvent.at)
        .where(AuditEvent.run_id == run.id, AuditEvent.action == "stage_changed")
        .order_by(col(AuditEvent.at), col(AuditEvent.id))).all()
    entered = [(playbook.stages[0], run.started_at), *changes]
    return [{"id": stage, "title": playbook.stage_title(stage),
             "entered_at_local": rt.renderer.local(at)} for stage, at in entered if stage]


def expression_context(
    session: Session, rt: Runtime, run: Run, *, item: Any = None,
    round_of: dict[str, Any] | None = None,
) -> dict[str, Any]:
    def units(type: str | None = None, within: Any = None) -> list[dict[str, Any]]:
        # `within` as expressions see `run.unit` (an id) or as templates do (the unit's view,
        # {id, name, ...}): the idiom `units(..., within=run.unit)` works in both.
        if isinstance(within, Mapping):
            within = within.get("id")
        return [
            unit_view(rt, u.id)
            for u in rt.org.units_where(type=type, within=within or run.unit_id)
        ]

    def sample(items: Any, count: Any) -> list[Any]:
        """`count` of `items`, drawn once for this run (flows/sampling.py)."""
        return draw(items, count, seed=seed_for_run(run.id, rt.settings.signing_secret()))

    def campaign(id: int | None = None) -> dict[str, Any]:
        """{found, rectifying, overdue, closed, target, met, grade, window_end}, counted now."""
        if id is None or id == run.id:
            return campaign_progress(session, run.id or 0, rt.clock.now(), run=run)
        return campaign_progress(session, int(id), rt.clock.now())

    return {
        "params": dict(run.params),
        "run": run_view(rt, run),
        "steps": steps_view(session, rt, run, round_of=round_of),
        "item": item,
        "units": units,
        "campaign": campaign,
        "sample": sample,
    }
