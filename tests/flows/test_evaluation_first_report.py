"""The evaluation's 首报 time is the step the playbook marks `report: 首报`, not whatever the
run sent to a channel first: a dispatch notice to the duty channel at minute 0 is not the first
report written at minute 4."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from factories import books_with, run_steps

from flows import lifecycle, tasks
from flows.evaluation import evaluate
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock

BOOK = """\
id: drill-report
version: 1
title: 首报演练
steps:
  - id: notice
    title: 通知值班室
    action: notify
    template: notice.md.j2
    to: [duty]
  - id: write
    title: 撰写首报
    role: duty_officer
    due: {after: 5m, from: run}
    report: 首报
"""


def test_the_first_report_is_the_marked_step_not_the_first_channel_message(
        make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock) -> None:
    rt = make_rt(playbooks=books_with(tmp_path, {
        "drill-report.yaml": BOOK, "templates/notice.md.j2": "请值班室知悉。\n"}))
    run = lifecycle.start_run(rt, playbook_id="drill-report", unit_id="s1", params={},
                              actor="d1-commander")
    drain_wakes(rt)  # the notice goes to the duty channel at minute 0
    clock.advance(timedelta(minutes=4))
    [write] = [s for s in run_steps(rt, run.id or 0) if s.step_key == "write"]
    tasks.complete(rt, step_id=write.id or 0, actor="s1-duty", note="首报已写")
    drain_wakes(rt)
    summary = evaluate(rt, run_id=run.id or 0, actor="d1-commander")["summary"]
    assert summary["first_report_minutes"] == 4


SIGNED = """\
id: signed-report
version: 1
title: 系统首报演练
steps:
  - id: write
    title: 1小时系统首报
    role: duty_officer
    due: {after: 60m, from: run}
    verify: {role: duty_leader}
    report: 系统首报
"""


def test_a_report_is_timed_when_signed_off_as_the_reporting_figures_time_it(
        make_rt: Callable[..., Runtime], tmp_path: Path, clock: ManualClock) -> None:
    """Handed in at minute 50, signed at minute 70: late by 10 minutes, here as in 信息报送考核
    (flows/reporting.py), since the report went out only when signed."""
    rt = make_rt(playbooks=books_with(tmp_path, {"signed-report.yaml": SIGNED}))
    run = lifecycle.start_run(rt, playbook_id="signed-report", unit_id="s1", params={},
                              actor="d1-commander")
    drain_wakes(rt)
    [write] = [s for s in run_steps(rt, run.id or 0) if s.step_key == "write"]
    clock.advance(timedelta(minutes=50))
    tasks.complete(rt, step_id=write.id or 0, actor="s1-duty", note="系统首报已写")
    clock.advance(timedelta(minutes=20))
    tasks.verify(rt, step_id=write.id or 0, actor="d1-leader", approve=True, note="同意报送")
    [row] = [s for s in evaluate(rt, run_id=run.id or 0, actor="d1-commander")["steps"]
             if s["step"] == "write"]
    assert (row["outcome"], row["late_minutes"]) == ("late", 10)
