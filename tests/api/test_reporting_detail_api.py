"""信息报送考核 through the API: a report never handed out in `reports` (no task, the step
holding it up named) and a 待核实 one in `unsure`; the export's 明细 (XLSX: a second sheet;
`detail=true`: the detail alone, CSV or XLSX) with Chinese headers, the bureau's local times,
the run and the task, row for row what the page lists, checked against the database."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from gas_leak_walk import finish, start
from reporting_month import seed
from sqlmodel import select

from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock
from models.db import read_session
from models.task import StepInstance

Auth = Any
DETAIL_HEADERS = ["情况", "报告类别", "报告", "事件所在单位", "计入单位", "报送时限",
                  "完成/撤销时间", "迟报(分钟)", "任务状态", "是否派发", "说明", "事件", "事件编号",
                  "任务编号", "月份"]


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    """The shipped playbooks on the demo district, where sun-li (综合科) is the manager."""
    return demo


def _never_judged(rt: Runtime, clock: ManualClock) -> tuple[int, int]:
    """After the seeded month: a 重大 leak and a 一般 one at 六和 (03-03 09:00), alerts taken,
    never judged; the clock at 10:30, both leaks' deadlines past."""
    clock.set(datetime(2026, 3, 3, 1, 0, tzinfo=UTC))
    major, general = start(rt, "重大"), start(rt, "一般")
    clock.advance(timedelta(minutes=1))
    for run_id in (major, general):
        finish(rt, run_id, "receive")
    drain_wakes(rt)
    clock.set(datetime(2026, 3, 3, 2, 30, tzinfo=UTC))
    return major, general


def test_reports_never_handed_out_are_missed_or_unsure_in_the_answer(
        client: TestClient, auth: Auth, demo: Runtime, clock: ManualClock) -> None:
    major, general = _never_judged(demo, clock)
    body = client.get("/api/reporting", params={"month": "2026-03"},
                      headers=auth("sun-li")).json()
    unsent = [x for x in body["reports"] if not x["handed_out"]]
    assert [(x["run_id"], x["kind"], x["step"], x["step_id"], x["status_zh"], x["outcome"])
            for x in unsent] == [(major, "口头报告", "verbal", None, "未派发", "漏报"),
                                 (major, "系统首报", "system-report", None, "未派发", "漏报")]
    assert unsent[0]["held_up_by"] == "初步研判事件等级和影响范围"
    assert unsent[0]["due_at_local"] == "2026-03-03 09:30"
    assert [(x["run_id"], x["kind"], x["outcome"], x["depends_on"]) for x in body["unsure"]] == [
        (general, "口头报告", "待核实", "初步研判事件等级和影响范围"),
        (general, "系统首报", "待核实", "初步研判事件等级和影响范围")]
    # Counted: each leak's 首报 (a row, missed) and the major one's two; the unsure ones not.
    kinds = {k["kind"]: (k["due"], k["missed"]) for k in body["total"]["kinds"]}
    assert kinds == {"首报": (2, 2), "口头报告": (1, 1), "系统首报": (1, 1)}
    # Each unit's 待核实 beside its figures (六和 is 坪山街道's), in no figure nor the rank.
    assert {r["unit_id"]: r["unsure"] for r in body["data"] if r["unsure"]} == {
        "pingshan-street": 2}
    assert body["total"]["unsure"] == 2

    r = client.get("/api/reporting/export", params={"month": "2026-03", "format": "csv"},
                   headers=auth("sun-li"))
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    column = rows[0].index("待核实")
    assert rows[0][column - 1] == "按时报送率(%)"
    cells = {(row[1], row[2]): row[column] for row in rows[1:]}
    assert cells[("坪山街道", "全部")] == "2" and cells[("合计（坪山区）", "全部")] == "2"
    assert cells[("碧岭街道", "全部")] == "0"
    assert cells[("坪山街道", "首报")] == ""  # the unit's, not by kind


def test_the_xlsx_has_a_detail_sheet_and_detail_alone_comes_as_csv(
        client: TestClient, auth: Auth, demo: Runtime, clock: ManualClock) -> None:
    s = seed(demo, clock)
    major, general = _never_judged(demo, clock)
    page = client.get("/api/reporting", params={"month": "2026-03"},
                      headers=auth("sun-li")).json()
    listed = [*page["reports"], *page["unsure"]]
    # The seeded month's 7, the major walk's 终报 (due 03-03 09:09), the two new leaks' 首报
    # and the major one's two never handed out; unsure: the two new 一般 leak's and 坪环's.
    assert len(page["reports"]) == 12 and len(page["unsure"]) == 4  # 2 of 坪环's open leak too

    x = client.get("/api/reporting/export", params={"month": "2026-03", "format": "xlsx"},
                   headers=auth("sun-li"))
    assert x.status_code == 200, x.text
    book = openpyxl.load_workbook(io.BytesIO(x.content))
    assert book.sheetnames == ["信息报送考核2026-03", "明细"]
    sheet = [list(row) for row in book["明细"].iter_rows(values_only=True)]
    assert sheet[0] == DETAIL_HEADERS
    assert len(sheet) - 1 == len(listed)
    assert [(row[0], row[1], row[12], row[13]) for row in sheet[1:]] == [
        (r["outcome"], r["kind"], r["run_id"], r["step_id"]) for r in listed]

    # Each row as the database has it: the task's deadline and done time in Beijing time.
    with read_session(demo.db) as session:
        tasks = {t.id: t for t in session.exec(select(StepInstance)).all()}
    late = next(row for row in sheet[1:] if row[13] == s.late_round)
    task = tasks[s.late_round]
    assert late[:3] == ["迟报", "续报", task.title]
    assert late[5] == datetime(2026, 3, 2, 17, 0) and late[6] == datetime(2026, 3, 2, 17, 30)
    assert late[3:5] == ["六和社区", "坪山街道"]
    assert (late[7], late[8], late[9], late[10]) == (30, "已完成", "是", None)
    assert late[11:] == [page["reports"][3]["run_title"], s.major, s.late_round, "2026-03"]
    verbal = next(row for row in sheet[1:] if row[12] == major and row[1] == "口头报告")
    assert verbal[0] == "漏报" and verbal[5] == datetime(2026, 3, 3, 9, 30) and verbal[6] is None
    assert (verbal[8], verbal[9], verbal[13]) == ("未派发", "否", None)
    assert "初步研判事件等级和影响范围" in verbal[10] and verbal[4] == "坪山街道"
    unsure = [row for row in sheet[1:] if row[0] == "待核实"]
    assert {row[12] for row in unsure} == {general, s.maluan_open}
    assert all("待核实" in row[10] for row in unsure)

    c = client.get("/api/reporting/export",
                   params={"month": "2026-03", "format": "csv", "detail": "true"},
                   headers=auth("sun-li"))
    assert c.status_code == 200, c.text
    assert "%E6%98%8E%E7%BB%86" in c.headers["content-disposition"]  # 明细 in the name
    rows = list(csv.reader(io.StringIO(c.content.decode("utf-8-sig"))))
    assert rows[0] == DETAIL_HEADERS
    assert [(row[0], row[12], row[13]) for row in rows[1:]] == [
        (r["outcome"], str(r["run_id"]), "" if r["step_id"] is None else str(r["step_id"]))
        for r in listed]
    assert next(row for row in rows[1:] if row[13] == str(s.late_round))[6] == "2026-03-02 17:30"

    # The CSV without detail keeps the per-unit table alone, as before.
    plain = client.get("/api/reporting/export", params={"month": "2026-03", "format": "csv"},
                       headers=auth("sun-li"))
    assert list(csv.reader(io.StringIO(plain.content.decode("utf-8-sig"))))[0][0] == "排名"
    bad = client.get("/api/reporting/export", params={"month": "2026-03", "detail": "也许"},
                     headers=auth("sun-li"))
    assert bad.status_code == 422 and "detail" in bad.text
