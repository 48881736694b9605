"""Date rules of step outputs: `not_past` (not before today in the bureau's zone, or before now
for a time) and `not_after_due: <step>` (not after that step's deadline as it stands, an
approved extension included), checked when the step is completed; checked at their line when
the playbook loads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from factories import books_with, step_row

from flows import extensions, lifecycle, tasks
from flows.loader import LoadContext, load_playbook_text
from flows.runtime import Runtime
from models.clock import ManualClock
from models.errors import InvalidInput, PlaybookInvalid

DATED = """\
id: dated
version: 1
title: 日期规则
steps:
  - id: fix
    title: 整改
    role: grid_worker
    due: 10d
    extension: {role: street_head}
  - id: report
    title: 整改计划
    role: grid_worker
    outputs:
      finish_by: {type: date, not_past: true, not_after_due: fix, title: 完成日期}
      visit_at: {type: datetime, not_past: true, not_after_due: fix, title: 复查时间}
      later: {type: date, not_after_due: close, title: 销号日期}
  - id: close
    title: 销号
    role: inspector
    needs: [fix, report]
    due: 5d
"""


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    made = make_rt(playbooks=books_with(tmp_path, {"dated.yaml": DATED}))
    assert made.catalog.errors == []
    return made


def file_report(rt: Runtime, run_id: int, **outputs: str) -> None:
    tasks.complete(rt, step_id=step_row(rt, run_id, "report").id or 0, actor="c1-grid",
                   outputs=outputs)


def refused(rt: Runtime, run_id: int, field: str, **outputs: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        file_report(rt, run_id, **outputs)
    assert caught.value.field == f"outputs.{field}"
    assert step_row(rt, run_id, "report").status == "ready"  # nothing written
    return caught.value.message


def test_a_date_before_today_or_after_the_deadline_is_refused(
        rt: Runtime, clock: ManualClock) -> None:
    # The clock is 2026-03-02 09:00 in Shanghai (01:00 UTC); fix is due 03-12 09:00.
    run_id = lifecycle.start_run(rt, playbook_id="dated", unit_id="c1", params={},
                                 actor="s1-commander").id or 0
    assert "不能早于今天（2026-03-02）" in refused(rt, run_id, "finish_by",
                                             finish_by="2026-03-01")
    message = refused(rt, run_id, "finish_by", finish_by="2026-03-13")
    assert message.startswith("不能晚于“整改”的期限 2026-03-12 09:00；确需延长的，请先申请延期")
    # A time: before now (beyond a phone's few minutes of clock difference), or after the
    # deadline to the minute; without a zone it is the bureau's clock.
    assert "不能早于现在" in refused(rt, run_id, "visit_at", visit_at="2026-03-02T08:50:00")
    assert "期限 2026-03-12 09:00" in refused(rt, run_id, "visit_at",
                                              visit_at="2026-03-12T09:01:00+08:00")
    # The step `later` waits for has no deadline yet (not reached): nothing to hold it to.
    file_report(rt, run_id, finish_by="2026-03-02", visit_at="2026-03-12T09:00:00",
                later="2027-01-01")
    assert step_row(rt, run_id, "report").outputs["finish_by"] == "2026-03-02"


def test_an_approved_extension_moves_the_bound(rt: Runtime, clock: ManualClock) -> None:
    run_id = lifecycle.start_run(rt, playbook_id="dated", unit_id="c1", params={},
                                 actor="s1-commander").id or 0
    fix = step_row(rt, run_id, "fix")
    asked = extensions.request_extension(
        rt, step_id=fix.id or 0, actor="c1-grid", reason="材料未到",
        due_at=datetime(2026, 3, 20, 18, 0, tzinfo=rt.tz))
    # Pending: the deadline has not moved yet.
    assert "2026-03-12 09:00" in refused(rt, run_id, "finish_by", finish_by="2026-03-15")
    extensions.decide_extension(rt, request_id=asked.id or 0, actor="s1-head", approve=True)
    assert "2026-03-20 18:00" in refused(rt, run_id, "finish_by", finish_by="2026-03-21")
    clock.advance(timedelta(days=1))
    file_report(rt, run_id, finish_by="2026-03-20")


def load_errors(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(text, filename="dated.yaml",
                           context=LoadContext(Path("."), known_roles=None))
    return [(e.line, e.path, e.message) for e in caught.value.errors]


def test_the_rules_are_checked_where_they_are_written() -> None:
    [(line, path, message)] = load_errors(DATED.replace("not_after_due: fix, title: 完成日期",
                                                        "not_after_due: fixx, title: 完成日期"))
    assert (line, path) == (14, "steps[1].outputs.finish_by.not_after_due")
    assert message.startswith("没有步骤 fixx（可选：fix、report、close）")
    errors = load_errors(DATED.replace("later: {type: date,", "later: {type: string,"))
    assert errors == [(16, "steps[1].outputs.later.not_after_due",
                       "只有 date 或 datetime 类型才能写 not_after_due（这里是 string） / "
                       "'not_after_due' is only for type date or datetime (this is string)")]


def test_a_mistyped_output_is_named_as_what_the_form_records(rt: Runtime) -> None:
    """An output is a 填报项 of the step's form, not a parameter of the run."""
    run_id = lifecycle.start_run(rt, playbook_id="dated", unit_id="c1", params={},
                                 actor="s1-commander").id or 0
    message = refused(rt, run_id, "finsh_by", finsh_by="2026-03-05")
    assert message.startswith("没有填报项 'finsh_by'（可用：finish_by、visit_at、later）")
    assert "unknown output 'finsh_by'" in message


def test_every_wrong_output_is_named_at_once(rt: Runtime) -> None:
    """Three mistakes in one form are three boxes to fix, said together, not one per try."""
    run_id = lifecycle.start_run(rt, playbook_id="dated", unit_id="c1", params={},
                                 actor="s1-commander").id or 0
    with pytest.raises(InvalidInput) as caught:
        file_report(rt, run_id, finsh_by="2026-03-05", visit_at="明天", later="x")
    every = [(caught.value.field, caught.value.message.split(" / ")[0]),
             *((f, m.split(" / ")[0]) for f, m in caught.value.others)]
    assert [field for field, _ in every] == ["outputs.finsh_by", "outputs.visit_at",
                                             "outputs.later"]
    assert every[0][1].startswith("没有填报项 'finsh_by'")
