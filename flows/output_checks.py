"""A step's `checks`: rules its outputs must meet together when it is completed, e.g. a
community's returned and still-sheltered people adding up to the people it moved. One output's
type and bounds are checked by flows/params.py; what several outputs (and the item's record of
an earlier step) say at once is checked here, before anything is written."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session, select

from flows.context import expression_context
from flows.expressions import ExpressionError, evaluate, render_string
from flows.follow_ups import previous_record
from flows.progress import item_key
from flows.rehand import current
from flows.runtime import Runtime
from flows.spec import StepSpec
from models import task as st
from models.errors import InvalidInput
from models.run import Run
from models.task import StepInstance

log = logging.getLogger("closeloop.checks")


def paired_records(session: Session, rt: Runtime, run: Run, step: StepInstance, spec: StepSpec
                   ) -> dict[str, dict[str, Any]]:
    """For a step waiting item by item (`item_needs`), each need's record of the same item:
    its status, unit and outputs (a community's return sees that community's transfer). A
    need followed up round by round (`follow_up`) is the item's latest round handed in, with
    `rounds` (how many were) and `totals` (each of its int and number outputs summed over
    them, 0 without a round): a community that moved 10 at first and 3 more in the rounds
    after returns 13 (`paired['transfer-followup'].totals.moved` is the 3)."""
    if not spec.item_needs:
        return {}
    mine = item_key(step.item)
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    # The item's record as it stands: not a called-off one handed out again (flows/rehand.py).
    rows = current(session.exec(select(StepInstance).where(
        StepInstance.run_id == run.id,
        StepInstance.step_key.in_(spec.item_needs),  # type: ignore[attr-defined]
    ).order_by(StepInstance.item_index)).all())  # type: ignore[arg-type]
    # Every need is there, empty when the item has no record of it (the need passed over
    # whole): a check says `'people' not in paired.transfer.outputs or ...`.
    paired: dict[str, dict[str, Any]] = {
        need: {"status": None, "unit": None, "outputs": {}} for need in spec.item_needs}
    rounds: dict[str, list[StepInstance]] = {}
    for row in rows:
        if item_key(row.item) != mine:
            continue
        if playbook.step(row.step_key).follow_up is not None:
            rounds.setdefault(row.step_key, []).append(row)
        else:
            paired[row.step_key] = {"status": row.status, "unit": row.unit_id,
                                    "outputs": dict(row.outputs or {})}
    for need in spec.item_needs:
        if playbook.step(need).follow_up is not None:
            paired[need] = _rounds_record(playbook.step(need), rounds.get(need, []))
    return paired


def _rounds_record(need: StepSpec, rows: list[StepInstance]) -> dict[str, Any]:
    """An item's rounds of a follow-up as one paired record (paired_records says what)."""
    done = [r for r in rows if r.status == st.DONE]
    latest = done[-1] if done else (rows[-1] if rows else None)
    numeric = [name for name, out in (need.outputs or {}).items() if out.type in ("int", "number")]
    totals = {name: sum(v for r in done if isinstance(v := (r.outputs or {}).get(name), int | float)
                        and not isinstance(v, bool)) for name in numeric}
    return {"status": latest.status if latest else None,
            "unit": latest.unit_id if latest else None,
            "outputs": dict(latest.outputs or {}) if latest and latest.status == st.DONE else {},
            "rounds": len(done), "totals": totals}


# A step needing a fan-out (a summary of every community's return) shows the first few of its
# records: the run page lists them all.
EARLIER_SHOWN = 20


def earlier_records(session: Session, rt: Runtime, run: Run, spec: StepSpec
                    ) -> dict[str, list[dict[str, Any]]]:
    """What the people's tasks this step needs (`needs`) recorded, for whoever does it: the
    duty officer signing a hotspot's 核查反馈 sees the grid worker's finding and photos on the
    task's own page, not only on the run's. Each need's current records (at most
    EARLIER_SHOWN), handed in or done: who, when, outputs, evidence ids. Needs read item by
    item (`item_needs`) are the `paired` records instead."""
    keys = [k for k in spec.needs if k not in spec.item_needs]
    if not keys:
        return {}
    rows = current(session.exec(select(StepInstance).where(
        StepInstance.run_id == run.id,
        StepInstance.step_key.in_(keys),  # type: ignore[attr-defined]
        StepInstance.action == "task",
        StepInstance.status.in_((st.SUBMITTED, st.DONE)),  # type: ignore[attr-defined]
    ).order_by(StepInstance.step_key, StepInstance.item_index)).all())
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        shown = out.setdefault(row.step_key, [])
        if len(shown) >= EARLIER_SHOWN:
            continue
        by = row.submitted_by or row.acked_by
        at = row.submitted_at or row.done_at
        shown.append({
            "task": row.id, "title": row.title, "status": row.status, "unit": row.unit_id,
            "unit_name": rt.org.unit_name(row.unit_id), "by": by,
            "by_name": rt.org.person_name(by) if by else None,
            "at": at, "at_local": rt.renderer.local(at) if at else None, "note": row.note,
            "outputs": dict(row.outputs or {}), "evidence": list(row.evidence or []),
        })
    return out


def hand_in_context(session: Session, rt: Runtime, run: Run, step: StepInstance,
                    spec: StepSpec, outputs: dict[str, Any]) -> dict[str, Any]:
    """What a step's `checks` and `alert` read of a hand-in: the run's context with the
    item, the values handed in (`outputs`), the item's records of its `item_needs`
    (`paired`) and, for a round, the record it follows (`previous`)."""
    context = expression_context(session, rt, run, item=step.item) | {
        "outputs": outputs, "paired": paired_records(session, rt, run, step, spec)}
    if spec.follow_up is not None:  # a round is read against the record it follows
        context["previous"] = previous_record(session, run, spec, step)
    return context


def check_together(session: Session, rt: Runtime, run: Run, step: StepInstance,
                   spec: StepSpec, outputs: dict[str, Any]) -> None:
    """InvalidInput (naming the check's output, else `outputs`) with the first false check's
    message. A check that cannot be evaluated (a playbook mistake the load checks could not
    see, a value of an unexpected type) is logged and passed over: a person at a typhoon's
    end is not stopped by the playbook's own bug."""
    if not spec.checks:
        return
    context = hand_in_context(session, rt, run, step, spec, outputs)
    for check in spec.checks:
        try:
            if evaluate(check.expr, context):
                continue
            message = render_string(check.message, context)
        except ExpressionError as exc:
            log.warning("check of step %s in run %s not evaluated: %s", spec.id, run.id, exc)
            continue
        raise InvalidInput(f"outputs.{check.output}" if check.output else "outputs", message)
