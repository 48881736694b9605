"""Rules that need a whole step: what each action requires, escalation levels in order.

A pure function, so the models (refusing a bad step) and the loader (reporting every
problem at its line) share one list of rules. Messages read `中文 / English`.
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
        out.append((("role",), "任务步骤须写 role（由谁办理） / a task step needs a 'role' "
                               "(who does it)"))
    if action == "notify":
        if not step.to:
            out.append((("to",), "通知步骤须写 to（发给哪些角色或通道） / a notify step needs "
                                 "'to' (roles or channels to send to)"))
        if not step.template:
            out.append((("template",), "通知步骤须写 template / a notify step needs a "
                                       "'template'"))
    if action == "document" and not step.template:
        out.append((("template",), "文书步骤须写 template / a document step needs a 'template'"))
    if action == "wait" and step.due is None:
        out.append((("due",), "等待步骤须写 due（等多久） / a wait step needs 'due' (how long "
                              "to wait)"))
    if action == "playbook" and not step.playbook:
        out.append((("playbook",), "子流程步骤须写 playbook（子流程 id） / a playbook step "
                                   "needs 'playbook' (the child playbook id)"))
    if action != "playbook" and step.playbook:
        out.append((("playbook",), f"只有 action: playbook 的步骤才能写 playbook（这里是 "
                                   f"{action}） / 'playbook' is only used with action: "
                                   f"playbook, not {action}"))
    if action != "playbook" and step.with_:
        out.append((("with",), f"只有 action: playbook 的步骤才能写 with（这里是 {action}） / "
                               f"'with' is only used with action: playbook, not {action}"))
    if step.verify is not None and action != "task":
        out.append((("verify",), f"只有 action: task 的步骤才能写 verify（一人办理、另一人核验），"
                                 f"这里是 {action} / 'verify' is only used with action: task (a "
                                 f"person's work another person checks), not {action}"))
    if step.number is not None and action not in ("document", "notify"):
        out.append((("number",), f"只有 action: document 或 notify 的步骤才能写 number（文号），"
                                 f"这里是 {action} / 'number' (文号) is only used with action: "
                                 f"document or notify, not {action}"))
    if step.due is not None and step.due.after.amount == 0:
        out.append((("due",), "时限须大于 0：due: 0m 的任务一下达即已逾期并立即升级 / 'due' must "
                              "be more than 0: a task due in 0m is overdue, and escalated, the "
                              "moment it is handed out"))
    if step.remind and step.due is None:
        out.append((("remind",), "提醒从时限倒数，请加上 due / reminders count back from the "
                                 "due time; add 'due'"))
    if step.escalate and step.due is None and step.ack is None:
        out.append((("escalate",), "升级从时限起算，请加上 due 或 ack / escalation counts from "
                                   "the due time; add 'due' or 'ack'"))
    out += _ladder_order(step.escalate, ("escalate",))
    if step.verify is not None:
        if step.verify.escalate and step.verify.due is None:
            out.append((("verify", "escalate"),
                        "核验升级从核验时限起算，请加上 verify.due / escalation counts from the "
                        "verifier's deadline; add 'verify.due'"))
        out += _ladder_order(step.verify.escalate, ("verify", "escalate"))
    if len(set(step.needs)) != len(step.needs):
        out.append((("needs",), "同一步骤在 needs 中写了两次 / a step is listed twice in 'needs'"))
    out += _item_needs(step)
    return out


def _item_needs(step: StepSource) -> list[Problem]:
    """`item_needs` pairs this step's items with a need's items: it needs a fan-out of its
    own, and each name must also be in `needs` (it says how a need is waited for, not a new
    one). Whether the need fans out over the same list is checked with the whole playbook."""
    if not step.item_needs:
        return []
    if step.for_each is None:
        return [(("item_needs",), "item_needs 按项等待，须配合 for_each（本步骤逐项分派） / "
                                  "item_needs waits item by item: the step needs a 'for_each'")]
    out: list[Problem] = []
    seen: set[str] = set()
    for k, need in enumerate(step.item_needs):
        if need in seen:
            out.append((("item_needs", k), f"item_needs 中 {need} 写了两次 / '{need}' is "
                                           "listed twice in 'item_needs'"))
        elif need not in step.needs:
            out.append((("item_needs", k), f"{need} 须同时写在 needs 中（item_needs 只说明按项"
                                           f"等待） / '{need}' must also be in 'needs' "
                                           "(item_needs says how it is waited for)"))
        seen.add(need)
    return out


def _ladder_order(levels: Sequence[EscalateSpec], path: tuple[str, ...]) -> list[Problem]:
    out: list[Problem] = []
    for index in range(1, len(levels)):
        before, level = levels[index - 1].after, levels[index].after
        if _shorter(level, before):
            out.append((
                (*path, index, "after"),
                f"升级各级须按 after 从短到长排列：{level} 排在 {before} 之后 / escalation "
                f"levels must be in order of 'after': {level} comes after {before}",
            ))
    return out


def _shorter(a: Duration, b: Duration) -> bool:
    """`a` is certainly shorter than `b`; working days only compare with working days."""
    if a.is_working_days != b.is_working_days:
        return False
    if a.is_working_days:
        return a.amount < b.amount
    return a.seconds() < b.seconds()
