"""A compiled playbook as the pages read it (GET /api/playbooks/{id}, GET
/api/runs/{id}/playbook): the model without its template texts, and what the engine derives
that a page must not work out again on its own."""

from __future__ import annotations

from typing import Any

from flows.follow_ups import state_outputs
from flows.spec import Playbook


def playbook_json(playbook: Playbook) -> dict[str, Any]:
    """Without the texts of its templates (kept with each run's version for rendering): the
    start, run and task pages read this on a phone, and the texts would add half again to
    it. Each `follow_up` carries `state_outputs`: the outputs that say where an item stands
    (仍未转移, 仍在安置), which the run's 分项汇总 takes from each item's latest round
    instead of adding up every round (flows/follow_ups.state_outputs says why)."""
    out = playbook.model_dump(mode="json", by_alias=True, exclude={"templates"})
    for spec, step in zip(playbook.steps, out["steps"], strict=True):
        if spec.follow_up is not None and step.get("follow_up") is not None:
            step["follow_up"]["state_outputs"] = state_outputs(spec)
    return out
