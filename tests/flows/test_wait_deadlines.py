"""A step made ready by a `wait` counts its deadline from the moment the wait ended, not from
when the sweeper noticed: sweeper lag (or downtime) never moves a deadline, and a wait that
ends at 24:00 is followed by working days that start the next day, as the rules count."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from factories import ENGINE_PLAYBOOKS, step_row

from flows import lifecycle
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock

PLAYBOOK = """\
id: hold-then-file
version: 1
title: 公示期满后备案
kind: response
params:
  location: {type: string, required: true, title: 地点}
steps:
  - id: hold
    title: 公示期
    action: wait
    due: {hold}
  - id: file
    title: 备案
    role: duty_officer
    needs: [hold]
    due: {file}
"""


def with_playbook(make_rt: Callable[..., Runtime], tmp_path: Path, text: str) -> Runtime:
    """A runtime on the engine's test playbooks plus this one (its id names the file)."""
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    playbook_id = text.split("\n", 1)[0].removeprefix("id: ")
    (books / f"{playbook_id}.yaml").write_text(text, encoding="utf-8")
    return make_rt(playbooks=books)


def runtime(make_rt: Callable[..., Runtime], tmp_path: Path, hold: str, file: str) -> Runtime:
    return with_playbook(make_rt, tmp_path,
                         PLAYBOOK.replace("{hold}", hold).replace("{file}", file))


def start(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="hold-then-file", unit_id="c1",
                              params={"location": "x"}, actor="s1-commander")
    return run.id or 0


def test_working_days_after_a_wait_that_ends_at_midnight_start_the_next_day(
    make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock
) -> None:
    # Started Monday 2 March 2026, 09:00 in Shanghai: the wait of 1wd ends Tuesday 24:00.
    rt = runtime(make_rt, tmp_path, hold="1wd", file="2wd")
    run_id = start(rt)
    hold = step_row(rt, run_id, "hold")
    assert hold.due_at == datetime(2026, 3, 3, 16, 0, tzinfo=UTC)  # Tue 24:00 +08:00
    clock.set(datetime(2026, 3, 3, 16, 0, 30, tzinfo=UTC))  # the sweep runs at 00:00:30 Wed
    assert sweep_once(rt).waits_finished == 1
    filed = step_row(rt, run_id, "file")
    assert filed.ready_at == clock.now()  # the ready event is when it happened
    # Two working days after Tuesday: Wednesday and Thursday, due Thursday 24:00 (not Friday's).
    assert filed.due_at == datetime(2026, 3, 5, 16, 0, tzinfo=UTC)


def test_sweeper_lag_and_downtime_do_not_move_the_next_deadline(
    make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock
) -> None:
    rt = runtime(make_rt, tmp_path, hold="10m", file="30m")
    run_id = start(rt)
    ended = step_row(rt, run_id, "hold").due_at
    assert ended is not None
    clock.set(ended + timedelta(minutes=7))  # the sweeper was down for seven minutes
    sweep_once(rt)
    filed = step_row(rt, run_id, "file")
    assert filed.ready_at == ended + timedelta(minutes=7)
    assert filed.due_at == ended + timedelta(minutes=30)


WITH_PREP = """\
id: hold-and-prepare
version: 1
title: 等待并准备
kind: response
params:
  location: {type: string, required: true, title: 地点}
steps:
  - id: hold
    title: 观察期
    action: wait
    due: 10m
  - id: prep
    title: 准备材料
    role: duty_officer
  - id: file
    title: 备案
    role: duty_officer
    needs: [hold, prep]
    due: 30m
"""


def test_a_step_also_waiting_for_later_work_counts_from_that_work(
    make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock
) -> None:
    from flows import tasks

    rt = with_playbook(make_rt, tmp_path, WITH_PREP)
    started = clock.now()
    run = lifecycle.start_run(rt, playbook_id="hold-and-prepare", unit_id="c1",
                              params={"location": "x"}, actor="s1-commander")
    clock.set(started + timedelta(minutes=20))  # the wait ended at 10 min; nobody swept yet
    tasks.complete(rt, step_id=step_row(rt, run.id or 0, "prep").id or 0, actor="s1-duty")
    clock.set(started + timedelta(minutes=25))
    sweep_once(rt)
    # It could start when the materials were ready (20 min), not when the wait ended.
    assert step_row(rt, run.id or 0, "file").due_at == started + timedelta(minutes=50)


TWO_WAITS = """\
id: two-holds
version: 1
title: 两个观察期
kind: response
params:
  location: {type: string, required: true, title: 地点}
steps:
  - id: hold-a
    title: 观察期甲
    action: wait
    due: 1wd
  - id: hold-b
    title: 观察期乙
    action: wait
    due: 1wd
  - id: file
    title: 备案
    role: duty_officer
    needs: [hold-a, hold-b]
    due: 2wd
"""


def test_a_step_after_two_waits_counts_from_their_ends_not_from_the_sweeps(
    make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock
) -> None:
    rt = with_playbook(make_rt, tmp_path, TWO_WAITS)
    run = lifecycle.start_run(rt, playbook_id="two-holds", unit_id="c1",
                              params={"location": "x"}, actor="s1-commander")
    # Both end Tuesday 24:00; the sweep that sees them runs at 00:00:30 Wednesday.
    clock.set(datetime(2026, 3, 3, 16, 0, 30, tzinfo=UTC))
    assert sweep_once(rt).waits_finished == 2
    assert step_row(rt, run.id or 0, "file").due_at == datetime(2026, 3, 5, 16, 0, tzinfo=UTC)
