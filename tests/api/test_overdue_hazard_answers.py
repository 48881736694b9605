"""What a manager reads off an overdue 重大 hazard without counting (tests/hazard_walk.py: sent
back at re-inspection, extended once, 12 days past the extended deadline on 2026-04-21 12:00):
the task's days overdue as the number the 整改清单 prints, how its deadline was counted (working
days or not), and who holds it with their post, unit and phone."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from fastapi.testclient import TestClient
from hazard_walk import MANAGER, Walked

from flows.runtime import Runtime


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def test_overdue_task_counts_its_days_as_the_registers_do(
    walked: Walked, client: TestClient, auth  # noqa: ANN001
) -> None:
    steps = {s["step"]: s for s in walked.run["steps"]}
    rectify = steps["rectify"]
    assert rectify["status"] == "rejected" and rectify["overdue"] is True
    # Due 2026-04-08 24:00, read 2026-04-21: the 9th to the 21st is 13 started days.
    assert rectify["overdue_days"] == 13
    hazard = client.get(f"/api/hazards/{walked.run_id}", headers=auth(MANAGER)).json()
    assert hazard["overdue_days"] == 13 and hazard["days_left"] == -13
    export = client.get("/api/registers/rectification/export", params={"format": "csv"},
                        headers=auth(MANAGER))
    [row] = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert row["逾期天数"] == "13"
    # Finished tasks and ones not reached count nothing.
    assert steps["plan"]["overdue_days"] is None and steps["accept"]["overdue_days"] is None


def test_deadline_says_whether_it_counted_working_days(walked: Walked) -> None:
    steps = {s["step"]: s for s in walked.run["steps"]}
    assert (steps["list"]["due_rule"], steps["list"]["due_working_days"]) == (
        "3个工作日（自任务下达起）", True)
    # Whole days as the law counts them (民法典 §201/§203), not working days.
    assert (steps["rectify"]["due_rule"], steps["rectify"]["due_working_days"],
            steps["rectify"]["due_whole_days"]) == (
        "30日（自流程启动次日起算，届满日24时止，遇休息日、节假日顺延）", False, True)
    assert steps["list"]["due_whole_days"] is False
    # A step not reached yet says it too: the plan-to-close rule is known before it comes.
    assert steps["close"]["due_rule"] == "3个工作日（自任务下达起）"


def test_holder_comes_with_post_unit_and_phone(walked: Walked) -> None:
    rectify = next(s for s in walked.run["steps"] if s["step"] == "rectify")
    assert rectify["assignees"] == [{
        "id": "liuhe-safety", "name": "尹秀英", "title": "社区安全员", "unit_id": "liuhe",
        "unit_name": "六和社区", "phone": "13800138123"}]
    accept = next(s for s in walked.run["steps"] if s["step"] == "accept")
    assert [(p["name"], p["title"], p["unit_name"]) for p in accept["assignees"]] == [
        ("赵丽娟", "安全生产办公室主任", "坪山街道")]


def test_the_plans_funds_export_as_a_number_a_spreadsheet_sums(
    walked: Walked, client: TestClient, auth  # noqa: ANN001
) -> None:
    # The plan recorded 资金 12.5 (万元) as a number; the XLSX cell was the text '12.5', which
    # Excel's SUM over the 整改资金 column skips (the district's total read 0).
    r = client.get("/api/registers/rectification/export?format=xlsx", headers=auth(MANAGER))
    assert r.status_code == 200, r.text
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    header = [c.value for c in sheet[1]]
    [row] = [[c.value for c in line] for line in sheet.iter_rows(min_row=2)
             if line[0].value == "PS-2026-007"]
    funds = row[header.index("整改资金")]
    assert funds == 12.5 and not isinstance(funds, str)
    text = client.get("/api/registers/rectification/export?format=csv",
                      headers=auth(MANAGER)).content.decode("utf-8-sig")
    [line] = [r for r in csv.DictReader(io.StringIO(text)) if r["隐患编号"] == "PS-2026-007"]
    assert line["整改资金"] == "12.5"
