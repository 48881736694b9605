"""Stages a typhoon response jumps over without handing out their measures.

A typhoon that turns away after communities moved people out of danger zones (橙色/红色预警)
must still bring them back: 转移人员返回 is a step of the last stage (解除), so ending early is
refused (lifecycle._refuse_dropping_follow_ups). Entering 解除 hands out every stage jumped
over on the way, by default: a storm that never landed would send every community the
台风登陆 measures. So the commander may name, when jumping forward, the stages in between to
pass over, with a note saying why (台风转向，未登陆). Their steps are then not handed out; the
steps that need them read them as passed over (like a `when` that is false), and the run
completes without them.

The choice is undone by the weather, not by hand: a run brought back down to a passed-over
stage, or below it (the storm turned back), takes it off the list, and entering it again hands
its steps out as on a first entry. Steps of a passed-over stage that already have instances (a
stage visited before, left by a downgrade) are not touched: their tasks stay as they are."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flows.spec import Playbook
from models.errors import InvalidInput
from models.run import Run


def is_passed_over(run: Run, stage: str | None) -> bool:
    return stage is not None and stage in (run.passed_over_stages or ())


def passed_over_keys(playbook: Playbook, run: Run) -> list[str]:
    """Keys of the steps of the stages the run passed over, in playbook order."""
    if not run.passed_over_stages:
        return []
    return [spec.id for spec in playbook.steps if is_passed_over(run, spec.stage)]


def jumped_over(playbook: Playbook, run: Run, target: str, named: Sequence[str],
                stage_id: Callable[[Playbook, str], str], note: str) -> list[str]:
    """The stages `named` (ids or titles) a forward move from the run's stage to `target`
    passes over, checked: each strictly between the two, and a note saying why (422 naming
    `pass_over` or `note`)."""
    if not named:
        return []
    here, there = playbook.stages.index(run.stage or playbook.stages[0]), \
        playbook.stages.index(target)
    if there < here:
        raise InvalidInput("pass_over", "只有向前越级切换时才能跳过中间阶段；退回时请选择撤销或保留"
                           "任务 / stages are passed over only when jumping forward")
    between = playbook.stages[here + 1:there]
    titles = "、".join(playbook.stage_title(s) or s for s in between)
    chosen: list[str] = []
    for given in named:
        stage = stage_id(playbook, given)
        if stage not in between:
            raise InvalidInput(
                "pass_over",
                (f"只能跳过本次切换越过的阶段（{titles}） / only the stages this move jumps over "
                 f"can be passed over ({', '.join(between)}); '{given}' is not one of them")
                if between else
                (f"切换到“{playbook.stage_title(target) or target}”不越过任何阶段，无可跳过 / "
                 "this move jumps over no stage: there is nothing to pass over"))
        if stage not in chosen:
            chosen.append(stage)
    if not note:
        raise InvalidInput("note", "跳过阶段须写明说明（如：台风转向，未登陆），记入时间线 / "
                           "passing stages over needs a note saying why; the timeline keeps it")
    return [s for s in playbook.stages if s in chosen]


def come_back_to(playbook: Playbook, run: Run, target: str) -> list[str]:
    """Going back to `target`: the passed-over stages at or above it are owed again (taken off
    the run's list, which is set anew). Returns them."""
    floor = playbook.stages.index(target)
    again = [s for s in run.passed_over_stages or () if playbook.stages.index(s) >= floor]
    if again:
        run.passed_over_stages = [s for s in run.passed_over_stages if s not in again]
    return again
