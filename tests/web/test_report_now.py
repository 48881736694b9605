"""The run page of a major gas leak shows when its next 续报 will be handed out, and the duty
officer (or the commander), told of a turn for the worse, hands it out at once with the reason:
the new round is in the step list with its deadline, and the button waits while it is open.
A missing reason is named by the words beside its box. Headless Chromium on the real app."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gas_leak_walk import walk_up_to_the_close
from playwright.sync_api import Page, expect

from models.clock import ManualClock


def test_the_duty_officer_reports_at_once_when_the_situation_changes(
        signed_in: Callable[..., Page], server: Any, clock: ManualClock) -> None:
    rt = server.rt
    run_id = walk_up_to_the_close(rt, clock)  # the first 续报 in, the close open

    # The duty leader may ask too (gas-leak's recur.early_by); a manager only reads.
    for person, may in (("liu-yang", True), ("sun-li", False)):
        other = signed_in(person)
        other.goto(server.url(f"/runs/{run_id}"))
        expect(other.locator("#rounds")).to_be_visible()
        expect(other.locator("#round-form")).to_be_visible(visible=may)

    page = signed_in("pingshan-duty-1")  # 黄磊, the district duty room's officer
    page.goto(server.url(f"/runs/{run_id}"))
    box = page.locator("#rounds")
    expect(box).to_be_visible()
    expect(box.locator("#round-next li")).to_have_text(
        "续报事件处置进展（第2次，03-02 17:00前） 将于 2026-03-02 16:00 下达，"
        "由 黄磊、吴静、郑涛 办理")
    ahead = page.locator("#steps li[data-step='follow-up'][data-status='pending']")
    expect(ahead.locator(".scheduled")).to_have_text("将于 2026-03-02 16:00 下达")

    page.locator("#round-ask").click()  # no reason given
    expect(page.locator("#flash")).to_contain_text("提前下达原因")
    expect(page.locator("#round-note")).to_have_attribute("aria-invalid", "true")

    page.locator("#round-note").fill("泄漏点附近发现1人头晕送医，事态扩大")
    page.locator("#round-ask").click()
    expect(page.locator("#flash")).to_have_text(
        re.compile(r"已下达：续报事件处置进展（第2次，03-02 \d\d:\d\d前），"
                   r"时限 2026-03-02 \d\d:\d\d"))
    expect(page.locator("#round-note")).to_have_value("")
    expect(page.locator("#steps li[data-step='follow-up'][data-status='ready']")).to_have_count(1)
    expect(page.locator("#round-ask")).to_be_disabled()
    expect(page.locator("#round-hint")).to_contain_text("尚未完成：请在该任务中填报最新情况")
    # The next regular round is still 16:00's, now the third.
    expect(box.locator("#round-next li")).to_contain_text("第3次，03-02 17:00前")
    expect(page.locator("#timeline")).to_contain_text("泄漏点附近发现1人头晕送医，事态扩大")
