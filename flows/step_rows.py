"""The row a step instance starts as, and whom it goes to: what every new instance of a step
writes, whether made ready (progress.make_ready), written ahead as a later round or handed to
a round's partner (flows/rounds.py, flows/round_start.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.runtime import Runtime
    from flows.spec import StepSpec
    from models.run import Run


def instance_row(rt: Runtime, run: Run, spec: StepSpec, index: int, item: Any) -> dict[str, Any]:
    # A fan-out item, or a round of a recurring need (第2次 12-03 17:00), names the instance.
    named = spec.for_each or (isinstance(item, dict) and "round" in item)
    label = f"{spec.title}（{_item_label(item)}）" if named and item is not None else spec.title
    unit = _item_unit(rt, run, item)
    held = rt.org.held_at(unit, spec.at)
    return {
        "run_id": run.id, "step_key": spec.id, "item_index": index, "item": item,
        "title": label, "action": spec.action, "role": spec.role,
        # Held where `at` says; where the event is stays on the row for lists by unit.
        "unit_id": held, "origin_unit_id": unit if held != unit else None,
        "assignees": [], "outputs": {}, "evidence": [], "evidence_labels": {},
        "overdue": False, "escalation_level": 0, "reminders_sent": 0,
        "ack_missed": False, "prefect_recorded": False, "version": 0, "rehanded_from": None,
        "report_kind": spec.report,
    }


def _item_unit(rt: Runtime, run: Run, item: Any) -> str:
    if isinstance(item, dict) and item.get("id") in rt.org.units:
        return str(item["id"])
    if isinstance(item, str) and item in rt.org.units:
        return item
    return run.unit_id


def _item_label(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("name") or item.get("title") or item.get("id") or "")
    return str(item)


def assignment(rt: Runtime, role: str, unit_id: str) -> tuple[str | None, list[str]]:
    """Where `role` resolves for a step held at `unit_id`, and its holders there."""
    found_at, holders = rt.org.resolve_role(role, unit_id)
    return found_at, [p.id for p in holders]


def item_key(item: Any) -> str:
    """What pairs an item of one fan-out with the same item of another: a unit by its id,
    anything else by its value."""
    if isinstance(item, dict) and "id" in item:
        return f"id:{item['id']}"
    return json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
