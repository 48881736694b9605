"""The 信息报送考核 page (/reporting) in a real browser: a month of real runs
(tests/reporting_month.py) shown as GET /api/reporting counts it, each unit's kinds under it,
every late or missed report linked to its run, the export's Chinese headers, the page in the
managers' navigation only, and a street's scope kept in the address."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect
from reporting_month import seed

from models.clock import ManualClock

SignedIn = Callable[..., Page]
MANAGER = "sun-li"
HEADERS = ["排名", "单位", "报告类别", "应报数", "按时报送数", "迟报数", "平均迟报(分钟)",
           "最长迟报(分钟)", "漏报数", "按时报送率(%)", "待核实"]


def api_get(server: Any, **params: Any) -> dict[str, Any]:
    r = httpx.get(server.url("/api/reporting"), params=params,
                  headers={"Authorization": f"Bearer {server.token(MANAGER)}"})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_reporting_page_shows_what_the_api_counts_and_links_each_miss_to_its_run(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    s = seed(server.rt, clock)
    want = api_get(server, month="2026-03")
    page = signed_in(MANAGER)
    page.goto(server.url("/reporting?month=2026-03"))
    expect(page.locator("#heading")).to_have_text("信息报送考核")
    # Next to the ranking in a manager's navigation, marked as the page one is on.
    nav = page.locator("#nav a")
    expect(nav.filter(has_text="月度排名")).to_have_count(1)
    expect(nav.filter(has_text="报送考核")).to_have_attribute("aria-current", "page")
    expect(page.locator("#reporting-table thead th")).to_have_text(HEADERS)
    expect(page.locator("#period")).to_contain_text(want["start_local"])

    liuhe = page.locator("#reporting-table tr[data-unit=pingshan-street]")
    expect(liuhe).to_have_count(5)  # 全部, then 首报, 口头报告, 系统首报, 续报
    first = liuhe.first.locator("td").all_inner_texts()
    assert first == ["1", "坪山街道", "全部", "8", "5", "2", "16.5", "30.0", "1", "62.5", "0"]
    assert [r.locator("td").nth(2).inner_text() for r in liuhe.all()] == [
        "全部", "首报", "口头报告", "系统首报", "续报"]
    total = page.locator("#reporting-table tr[data-total] td").all_inner_texts()
    assert total[1].startswith("合计") and total[3] == str(want["total"]["due"])

    rows = page.locator("#reports-table tbody tr")
    expect(rows).to_have_count(len(want["reports"]))
    assert [r.get_attribute("data-run") for r in rows.all()] == [
        str(x["run_id"]) for x in want["reports"]]
    late_round = page.locator(f"#reports-table tr[data-step='{s.late_round}'] td")
    assert late_round.nth(0).inner_text() == "迟报"
    assert late_round.nth(6).inner_text() == "30.0"
    # "Why was it late?": the run's page, its timeline.
    page.locator(f"#reports-table tr[data-run='{s.missed}'] td").nth(7).locator("a").click()
    expect(page).to_have_url(server.url(f"/runs/{s.missed}"))


def test_the_export_downloads_with_chinese_headers_and_a_street_keeps_its_scope(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    seed(server.rt, clock)
    page = signed_in(MANAGER)
    page.goto(server.url("/reporting?month=2026-03"))
    expect(page.locator("#reporting-table tbody tr").first).to_be_visible()
    with page.expect_download() as d:
        page.click("#export-csv")
    data = Path(d.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == [*HEADERS, "月份", "口径"]

    page.select_option("#unit", "maluan")
    expect(page).to_have_url(server.url("/reporting?month=2026-03&level=community&unit=maluan"))
    units = page.locator("#reporting-table tr.unit-row td:nth-child(2)")
    expect(units).to_have_text(["江岭社区", "马峦社区", "坪环社区"])
    expect(page.locator("#reports-table tbody tr")).to_have_count(4)


def test_the_page_is_in_the_managers_navigation_only(
        signed_in: SignedIn, server: Any) -> None:
    commander = signed_in("wang-qiang")
    commander.goto(server.url("/runs"))
    expect(commander.locator("#nav a")).not_to_have_count(0)
    expect(commander.locator("#nav a:has-text('报送考核')")).to_have_count(0)
    # Opened anyway, the page says what the API says: not theirs to read.
    commander.goto(server.url("/reporting"))
    expect(commander.locator("#flash")).to_contain_text("manager")
    expect(commander.locator("#reporting-table")).to_have_count(0)
