"""Field people on a phone (390 px) against the real pages: a community head answering a
typhoon's 30-minute 叫应 from the inbox, and what a field person sees of the hazards they hold."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

SignedIn = Callable[..., Page]

COMMANDER = "wang-qiang"  # 王强, the district's commander, starts the typhoon response
HEAD = "liuhe-head"  # 贾丽萍, 六和社区's head: answers the community's measures and transfers


def call(server: Any, person: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token(person)}"}
    return httpx.request(method, server.url(path), headers=headers, timeout=10, **kwargs)


def typhoon_at_severe(server: Any) -> int:
    """Typhoon 633 for 坪山街道 moved to 橙色/红色预警: each community's transfer (危险区人员
    转移) is handed out, to be signed for within 30 minutes and done within 6 hours. Returns
    六和社区's transfer task."""
    r = call(server, COMMANDER, "POST", "/api/runs", json={
        "playbook": "typhoon-633", "unit": "pingshan-street", "params": {"name": "海葵"}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    r = call(server, COMMANDER, "POST", f"/api/runs/{run_id}/stage",
             json={"stage": "橙色/红色预警"})
    assert r.status_code == 200, r.text
    inbox = call(server, HEAD, "GET", "/api/tasks?mine=true&limit=50").json()["data"]
    return next(t["id"] for t in inbox if t["step"] == "transfer")


def test_the_inbox_card_says_when_the_30_minute_sign_for_is_due(
        signed_in: SignedIn, server: Any) -> None:
    transfer = typhoon_at_severe(server)
    # The clock stands at 09:00 (tests/conftest.py): signed for by 09:30, done by 15:00.
    page = signed_in(HEAD, phone=True)
    page.goto(server.url("/inbox"))
    card = page.locator(f".task-card[data-task-id='{transfer}']")
    expect(card).to_contain_text("期限 2026-03-02 15:00")
    # Before: the card read only "剩余 6小时0分", below three measures due sooner, and the head
    # learnt of the 30-minute 叫应 only from its escalation.
    expect(card.locator(".ack-due")).to_contain_text("签收（叫应）期限 2026-03-02 09:30")
    expect(card.locator(".ack-clock")).to_have_text(re.compile(r"^剩余 (30|29)分钟$"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # Signed for: the line goes, the work's deadline stays.
    page.goto(server.url(f"/tasks/{transfer}"))
    page.click("#ack")
    expect(page.locator("#flash")).to_contain_text("已签收")
    page.goto(server.url("/inbox"))
    expect(card).to_contain_text("期限 2026-03-02 15:00")
    expect(card.locator(".ack-due")).to_have_count(0)
