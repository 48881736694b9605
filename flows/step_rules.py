"""Rules that need a whole step: what each action requires, escalation levels in order.

A pure function, so the models (refusing a bad step) and the loader (reporting every
problem at its line) share one list of rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.durations import Duration

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flows.spec import EscalateSpec, StepSource

Problem = tuple[tuple[str | int, ...], str]


def step_problems(step: StepSource) -> list[Problem]:
    """Cross-field mistakes in one step, as (path inside the step, message)."""
    out: list[Problem] = []
    action = step.action
    if action == "task" and not step.role:
        out.append((("role",), "a task step needs a 'role' (who does it)"))
    if action == "notify":
        if not step.to:
            out.append((("to",), "a notify step needs 'to' (roles or channels to send to)"))
        if not step.template:
            out.append((("template",), "a notify step needs a 'template'"))
    if action == "document" and not step.template:
        out.append((("template",), "a document step needs a 'template'"))
    if action == "wait" and step.due is None:
        out.append((("due",), "a wait step needs 'due' (how long to wait)"))
    if action == "playbook" and not step.playbook:
        out.append((("playbook",), "a playbook step needs 'playbook' (the child playbook id)"))
    if action != "playbook" and step.playbook:
        out.append((("playbook",), f"'playbook' is only used with action: playbook, not {action}"))
    if action != "playbook" and step.with_:
        out.append((("with",), f"'with' is only used with action: playbook, not {action}"))
    if step.verify is not None and action != "task":
        out.append((("verify",), f"'verify' is only used with action: task (a person's work "
                                 f"another person checks), not {action}"))
    if step.number is not None and action not in ("document", "notify"):
        out.append((("number",), f"'number' (文号) is only used with action: document or "
                                 f"notify, not {action}"))
    if step.remind and step.due is None:
        out.append((("remind",), "reminders count back from the due time; add 'due'"))
    if step.escalate and step.due is None and step.ack is None:
        out.append((("escalate",), "escalation counts from the due time; add 'due' or 'ack'"))
    out += _ladder_order(step.escalate, ("escalate",))
    if step.verify is not None:
        if step.verify.escalate and step.verify.due is None:
            out.append((("verify", "escalate"),
                        "escalation counts from the verifier's deadline; add 'verify.due'"))
        out += _ladder_order(step.verify.escalate, ("verify", "escalate"))
    if len(set(step.needs)) != len(step.needs):
        out.append((("needs",), "a step is listed twice in 'needs'"))
    return out


def _ladder_order(levels: Sequence[EscalateSpec], path: tuple[str, ...]) -> list[Problem]:
    out: list[Problem] = []
    for index in range(1, len(levels)):
        before, level = levels[index - 1].after, levels[index].after
        if _shorter(level, before):
            out.append((
                (*path, index, "after"),
                f"escalation levels must be in order of 'after': {level} comes after {before}",
            ))
    return out


def _shorter(a: Duration, b: Duration) -> bool:
    """`a` is certainly shorter than `b`; working days only compare with working days."""
    if a.is_working_days != b.is_working_days:
        return False
    if a.is_working_days:
        return a.amount < b.amount
    return a.seconds() < b.seconds()
