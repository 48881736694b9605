"""The 1-hour system report's casualty row: a total of 0 means none dead nor hurt, not two
blanks 待核实 beside it; without a total, what is not known is still 待核实."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import SHIPPED_PLAYBOOKS

from flows.render import Renderer


def casualty_row(outputs: dict[str, Any]) -> str:
    renderer = Renderer(SHIPPED_PLAYBOOKS / "templates", tz=ZoneInfo("Asia/Shanghai"))
    assess = {"key": "assess", "title": "研判", "status": "done", "action": "task", "needs": [],
              "outputs": outputs, "done_at": "2026-03-02T01:10:00", "order": 1,
              "done_at_local": "2026-03-02 09:10", "completed_by": "s1-duty",
              "completed_by_name": "值班员"}
    context = {
        "params": {"location": "六和社区某小区3栋", "grade": "重大"},
        "run": {"started_at_local": "2026-03-02 09:00", "unit_name": "六和社区", "title": "t",
                "unit": {"id": "liuhe", "name": "六和社区"}},
        "steps": {"assess": assess}, "numbers": {}, "district_name": "坪山区",
        "step": {"id": "system-report", "title": "1小时系统首报", "due_at_local": "",
                 "assignees": []},
        "now_local": "2026-03-02 09:40",
    }
    body = renderer.render("system-report.md.j2", context)
    [row] = [line for line in body.splitlines() if line.startswith("| 死亡/受伤/下落不明")]
    return row


@pytest.mark.parametrize(("outputs", "row"), [
    ({"casualties": 0, "missing": 0}, "| 死亡/受伤/下落不明 | 0 / 0 / 0 人（伤亡合计 0 人） |"),
    ({"casualties": 2}, "| 死亡/受伤/下落不明 | 待核实 / 待核实 / 0 人（伤亡合计 2 人） |"),
    ({"deaths": 1, "injured": 3, "casualties": 4},
     "| 死亡/受伤/下落不明 | 1 / 3 / 0 人（伤亡合计 4 人） |"),
])
def test_the_casualty_row_never_contradicts_its_total(outputs: dict[str, Any], row: str) -> None:
    assert casualty_row(outputs) == row
