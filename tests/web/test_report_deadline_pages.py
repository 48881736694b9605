"""In a real browser: the task page of a 半小时口头报告 handed out already late says its deadline
counts from the alert, by how much it was late at hand-out and which step held it up; the
信息报送考核 page lists a report never handed out (no task to open: the step it waits on
named) and, apart, the 待核实 ones, and 导出明细 downloads the detail with Chinese headers."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gas_leak_walk import finish, start, steps
from playwright.sync_api import Page, expect

from flows.segments import drain_wakes
from models.clock import ManualClock

SignedIn = Callable[..., Page]
ASSESS = "初步研判事件等级和影响范围"


def test_a_verbal_report_handed_out_late_says_why_on_its_page(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    rt = server.rt
    run_id = start(rt, "重大")  # 09:00
    clock.advance(timedelta(minutes=1))
    finish(rt, run_id, "receive")
    clock.set(datetime(2026, 3, 2, 1, 40, tzinfo=UTC))  # judged at 09:40
    finish(rt, run_id, "assess", "重大")
    drain_wakes(rt)
    verbal = steps(rt, run_id)["verbal"]
    page = signed_in("liu-yang")  # the duty leader who gives the verbal report
    page.goto(server.url(f"/tasks/{verbal.id}"))
    expect(page.locator("#deadline-basis")).to_have_text("时限自接报（09:00）起算，应于09:30前报送")
    expect(page.locator("#handed-out-late")).to_have_text(
        f"；已超时10分钟才派发（等待“{ASSESS}”，09:40完成）")
    # The first report, handed out in time, says only what its deadline counts from.
    page.goto(server.url(f"/tasks/{steps(rt, run_id)['report.write'].id}"))
    expect(page.locator("#deadline-basis")).to_have_text("时限自接报（09:00）起算，应于09:05前报送")
    expect(page.locator("#handed-out-late")).to_have_count(0)


def test_the_reporting_page_lists_reports_never_handed_out_and_the_unsure_ones(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    rt = server.rt
    major, general = start(rt, "重大"), start(rt, "一般")  # 09:00, neither ever judged
    clock.advance(timedelta(minutes=1))
    for run_id in (major, general):
        finish(rt, run_id, "receive")
    drain_wakes(rt)
    clock.set(datetime(2026, 3, 2, 2, 30, tzinfo=UTC))  # 10:30
    page = signed_in("sun-li")
    page.goto(server.url("/reporting?month=2026-03"))
    missed = page.locator(f"#reports-table tr[data-run='{major}'][data-step='']")
    expect(missed).to_have_count(2)
    cells = missed.first.locator("td")
    expect(cells.nth(0)).to_have_text("漏报")
    expect(cells.nth(1)).to_have_text("口头报告")
    expect(cells.nth(2).locator("a")).to_have_count(0)  # no task to open: never handed out
    expect(cells.nth(5)).to_have_text(f"未派发（时限自接报起算，等待“{ASSESS}”）")
    expect(cells.nth(7).locator("a")).to_have_attribute("href", f"/runs/{major}")

    expect(page.locator("#unsure-section")).to_be_visible()
    unsure = page.locator("#unsure-table tbody tr")
    expect(unsure).to_have_count(2)
    expect(unsure.first.locator("td").nth(0)).to_have_text("待核实")
    expect(unsure.first.locator("td").nth(5)).to_have_text(f"是否应报取决于“{ASSESS}”，该步骤未完成")
    assert {r.get_attribute("data-run") for r in unsure.all()} == {str(general)}
    # The unit's 待核实 count on its row, beside the figures it is not counted in.
    street = page.locator("#reporting-table tr.unit-row[data-unit='pingshan-street'] td")
    expect(street.nth(10)).to_have_text("2")
    expect(page.locator("#reporting-table thead th").nth(10)).to_have_text("待核实")

    with page.expect_download() as d:
        page.click("#export-detail-csv")
    assert "明细" in d.value.suggested_filename
    rows = list(csv.reader(io.StringIO(Path(d.value.path()).read_bytes().decode("utf-8-sig"))))
    assert rows[0][:6] == ["情况", "报告类别", "报告", "事件所在单位", "计入单位", "报送时限"]
    # Each leak's 首报 missed and the major one's two never handed out; then the two unsure.
    assert [(r[0], r[1], r[12]) for r in rows[1:]] == [
        ("漏报", "首报", str(major)), ("漏报", "首报", str(general)),
        ("漏报", "口头报告", str(major)), ("漏报", "系统首报", str(major)),
        ("待核实", "口头报告", str(general)), ("待核实", "系统首报", str(general))]
