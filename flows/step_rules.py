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
    out += _report(step)
    if step.verify is not None:
        if step.verify.escalate and step.verify.due is None:
            out.append((("verify", "escalate"),
                        "核验升级从核验时限起算，请加上 verify.due / escalation counts from the "
                        "verifier's deadline; add 'verify.due'"))
        out += _ladder_order(step.verify.escalate, ("verify", "escalate"))
    if len(set(step.needs)) != len(step.needs):
        out.append((("needs",), "同一步骤在 needs 中写了两次 / a step is listed twice in 'needs'"))
    out += _item_needs(step)
    out += _recur(step)
    out += _follow_up(step)
    if step.alert is not None and action != "task":
        out.append((("alert",), f"alert（填报即通知）用于由人填报的任务步骤，这里是 action: "
                                f"{action} / 'alert' is for task steps a person hands in, not "
                                f"{action}"))
    return out


NO_ITEMS = ("item_needs 按项等待，须配合 for_each（本步骤逐项分派） / item_needs waits item by "
            "item: the step needs a 'for_each'")
# Rounds come at most this often: a typo (every: 1s) must not hand out a task a second.
MIN_RECUR_SECONDS = 600


def _recur(step: StepSource) -> list[Problem]:
    """Rounds (`recur`): when they come (exactly one of `at` and `every`), and what may recur.
    A round is an item of the step's own, so a fan-out or an item-by-item wait cannot also
    recur; a wait or a child playbook has no report to owe again; a step of a stage comes and
    goes with the stage, which rounds do not follow."""
    recur = step.recur
    if recur is None:
        return []
    out: list[Problem] = []
    if bool(recur.at) == (recur.every is not None):
        out.append((("recur",), "recur 须写 at（每天几点，如 ['08:00', '17:00']）或 every（间隔，"
                                "如 12h）二者之一 / 'recur' needs exactly one of 'at' (times of "
                                "day, e.g. ['08:00', '17:00']) and 'every' (e.g. 12h)"))
    if len(set(recur.at)) != len(recur.at):
        out.append((("recur", "at"), "recur.at 中同一时刻写了两次 / a time is listed twice in "
                                     "'recur.at'"))
    every = recur.every
    if every is not None and not every.is_working_days and every.seconds() < MIN_RECUR_SECONDS:
        out.append((("recur", "every"), f"recur.every 至少 10m（收到 {every}） / 'recur.every' "
                                        f"is at least 10m (got {every})"))
    if step.id in recur.until:
        out.append((("recur", "until"), "recur.until 不能写本步骤自身：轮次由另一步骤的完成结束 / "
                                        "'recur.until' cannot name the step itself: another "
                                        "step's finishing ends the rounds"))
    for key, why_zh, why_en in (
            ("for_each", "逐项分派的步骤不能同时按轮次重复", "a fan-out step cannot also recur"),
            ("item_needs", "按项等待的步骤不能同时按轮次重复",
             "a step waiting item by item cannot also recur"),
            ("stage", "属于某一阶段的步骤随阶段下达，不能按轮次重复",
             "a step of a stage comes with the stage and cannot also recur")):
        if getattr(step, key):
            out.append(((key,), f"{why_zh}（recur） / {why_en} ('recur')"))
    if step.due is not None and step.due.from_ != "ready":
        out.append((("due", "from"),
                    f"按轮次重复的步骤，每一轮的时限从该轮下达起算（from: ready），不能从 "
                    f"{step.due.from_} 起算 / each round of a recurring step is due counted "
                    f"from its own hand-out (from: ready), not from {step.due.from_}"))
    if step.action in ("wait", "playbook"):
        out.append((("recur",), f"action: {step.action} 的步骤不能按轮次重复（recur 用于任务、通知"
                                f"和文书） / a {step.action} step cannot recur ('recur' is for "
                                "task, notify and document steps)"))
    return out


def _report(step: StepSource) -> list[Problem]:
    """A report (`report: 首报`) is measured against its deadline, on the step a person
    completes: the automatic sending has no deadline of its own and goes the moment the
    writing is done, so its time is the engine's, not the duty officer's."""
    if step.report is None:
        return []
    out: list[Problem] = []
    if step.action != "task":
        out.append((("report",), f"report（报告类别）写在由人完成并有时限的任务步骤上（撰写报告的"
                                 f"步骤），这里是 action: {step.action} / 'report' goes on the "
                                 f"task step a person completes by the deadline (the writing), "
                                 f"not on a {step.action} step"))
    if step.due is None:
        out.append((("report",), "报送考核按时限计算是否迟报、漏报，请加上 due / a report is "
                                 "measured against its deadline: add 'due'"))
    return out


def _item_needs(step: StepSource) -> list[Problem]:
    """`item_needs` pairs this step's items with a need's items: each name must also be in
    `needs` (it says how a need is waited for, not a new one). Whether the step has what to
    pair with (a fan-out over the same list, or rounds of a recurring need) is checked with
    the whole playbook (NO_ITEMS)."""
    if not step.item_needs:
        return []
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


def _follow_up(step: StepSource) -> list[Problem]:
    """Rounds item by item (`follow_up`): a person's task per item of a fan-out, following
    one record of the same item (`item_needs`), each round due counted from its own hand-out;
    not also `recur` (rounds of the whole step), which is another kind of round."""
    if step.follow_up is None:
        return []
    out: list[Problem] = []
    if step.action != "task":
        out.append((("follow_up",), f"follow_up（逐项跟踪）用于由人填报的任务步骤，这里是 action: "
                                    f"{step.action} / 'follow_up' is for task steps a person "
                                    f"answers, not {step.action}"))
    if not step.for_each:
        out.append((("follow_up",), "follow_up 逐项跟踪，须配合 for_each（如每个社区） / "
                                    "'follow_up' goes item by item: the step needs a "
                                    "'for_each'"))
    if len(step.item_needs) != 1:
        out.append((("follow_up",), "follow_up 须且只须写一个 item_needs：第一轮跟随的同项记录（如"
                                    "本社区的“转移人员返回”） / 'follow_up' needs exactly one "
                                    "'item_needs' step: the record of the same item the first "
                                    "round follows"))
    follow_up = step.follow_up
    if (follow_up.at is None) == (follow_up.every is None):
        out.append((("follow_up",), "follow_up 须写 at（每天几点，如 \"09:00\"）或 every（间隔，如 "
                                    "1h）二者之一 / 'follow_up' needs exactly one of 'at' (a "
                                    "time of day, e.g. \"09:00\") and 'every' (e.g. 1h)"))
    every = follow_up.every
    if every is not None and not every.is_working_days and every.seconds() < MIN_RECUR_SECONDS:
        out.append((("follow_up", "every"), f"follow_up.every 至少 10m（收到 {every}） / "
                                            f"'follow_up.every' is at least 10m (got {every})"))
    if step.recur is not None:
        out.append((("recur",), "逐项跟踪（follow_up）的步骤不能同时按轮次重复（recur） / a step "
                                "with 'follow_up' cannot also 'recur'"))
    if step.due is None:
        out.append((("follow_up",), "逐项跟踪的每一轮须有时限，请加上 due（从该轮下达起算） / "
                                    "each round needs a deadline: add 'due' (from its hand-out)"))
    elif step.due.from_ != "ready":
        out.append((("due", "from"),
                    f"逐项跟踪的每一轮时限从该轮下达起算（from: ready），不能从 {step.due.from_} "
                    f"起算 / each round is due counted from its own hand-out (from: ready), not "
                    f"from {step.due.from_}"))
    return out
