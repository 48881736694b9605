"""A 3030 campaign's run page, in a real browser: its progress (目标、已发现、整改中、逾期、已销号、
尚差、剩余天数) at the top, counted live from the hazard register, each figure a link into the
register filtered to this campaign; a run of another kind shows no such card."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hazard_walk import INSPECTOR, MANAGER
from playwright.sync_api import Page, expect

from flows.lifecycle import start_run
from models.clock import ManualClock

SignedIn = Callable[..., Page]


def hazard(server: Any, code: str, campaign: int | None = None) -> None:
    params: dict[str, Any] = {"location": f"六和社区{code}号厂房", "grade": "重大", "code": code}
    if campaign is not None:
        params["campaign"] = campaign
    start_run(server.rt, playbook_id="hazard-3030", unit_id="liuhe", params=params,
              actor=INSPECTOR)


def figures(page: Page) -> dict[str, str]:
    box = page.locator("#campaign-figures")
    keys = box.locator(".figure").evaluate_all("(nodes) => nodes.map((n) => n.dataset.figure)")
    return {k: box.locator(f".figure[data-figure='{k}'] dd").inner_text() for k in keys}


def test_a_campaign_shows_its_progress_and_leads_into_its_hazards(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    campaign = start_run(server.rt, playbook_id="campaign-3030", unit_id="pingshan-street",
                         params={"target": 3, "name": "坪山街道3030行动"},
                         actor="pingshan-street-commander").id or 0
    hazard(server, "CA-1", campaign)
    hazard(server, "CA-2", campaign)
    hazard(server, "OUT-1")  # found outside the campaign: in no figure of it

    page = signed_in(MANAGER)
    page.goto(server.url(f"/runs/{campaign}"))
    card = page.locator("#campaign-box")
    expect(card).to_be_visible()
    expect(card.locator("h2")).to_contain_text("专项行动进度")
    expect(card.locator(".figure[data-figure='found'] dd")).to_have_text("2")
    assert figures(page) == {
        "target": "3 个", "found": "2", "rectifying": "2", "overdue": "0", "closed": "0",
        "remaining": "3 个", "days-left": "30 天"}
    expect(card.locator(".figure dt")).to_have_text(
        ["目标（销号重大隐患）", "已发现", "整改中", "逾期", "已销号", "尚差销号", "剩余天数"])
    expect(page.locator("#campaign-window")).to_contain_text("整治窗口至 2026-04-01 09:00")
    # The card comes first, above what holds the run up.
    assert page.evaluate(
        "document.querySelector('#campaign-box').compareDocumentPosition("
        "document.querySelector('#holdup-box')) & Node.DOCUMENT_POSITION_FOLLOWING") > 0

    register = f"/hazards?campaign={campaign}&grade=%E9%87%8D%E5%A4%A7"
    expect(card.locator(".figure[data-figure='found'] a")).to_have_attribute("href", register)
    expect(card.locator(".figure[data-figure='overdue'] a")).to_have_attribute(
        "href", f"{register}&overdue=true")
    expect(card.get_by_role("link", name="整改清单（本行动）")).to_have_attribute(
        "href", f"/hazards?register=rectification&campaign={campaign}&grade=%E9%87%8D%E5%A4%A7")

    # A month on, the window has closed with both still open and late.
    clock.advance(timedelta(days=31))
    page.reload()
    expect(card.locator(".figure[data-figure='overdue'] dd")).to_have_text("2")
    expect(card.locator(".figure[data-figure='overdue']")).to_have_class("figure alarm")
    expect(card.locator(".figure[data-figure='days-left'] dd")).to_have_text("已结束")
    expect(page.locator("#campaign-window")).to_contain_text("整治窗口已于 2026-04-01 09:00 结束")

    # 已发现 opens the hazard register with this campaign's filter: its two hazards only.
    card.locator(".figure[data-figure='found'] a").click()
    expect(page.locator("#filter-campaign")).to_have_value(str(campaign))
    rows = page.locator("#register-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#register-table")).not_to_contain_text("OUT-1")


def test_a_run_of_another_kind_has_no_campaign_card(
        signed_in: SignedIn, server: Any) -> None:
    run = start_run(server.rt, playbook_id="gas-leak", unit_id="liuhe",
                    params={"location": "六和社区深汕路88号", "grade": "一般"},
                    actor="wang-qiang")
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run.id}"))
    expect(page.locator("#steps li").first).to_be_visible()
    expect(page.locator("#campaign-box")).to_be_hidden()
