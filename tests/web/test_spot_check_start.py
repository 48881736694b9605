"""The duty room starts the two seeds/002 checks from the start page (启动预案), in headless
Chromium on the demo district: a satellite hotspot (hotspot-check: numbers with their China
bounds, the time the satellite saw it in the bureau's zone), a bad latitude refused on its box
in the API's words; and a random roll-call (roll-call), whose run page lists the communities
drawn, each with its head. The form is built from the playbooks' own params: nothing new on
the page was needed for them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

SignedIn = Callable[..., Page]
DUTY_OFFICER = "pingshan-duty-1"  # 黄磊


def run_of(server: Any, page: Page) -> dict[str, Any]:
    match = re.search(r"/runs/(\d+)$", page.url)
    assert match, page.url
    r = httpx.get(server.url(f"/api/runs/{match.group(1)}"), timeout=10,
                  headers={"Authorization": f"Bearer {server.token(DUTY_OFFICER)}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_duty_officer_starts_a_hotspot_check_and_a_roll_call(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in(DUTY_OFFICER)
    page.goto(server.url("/runs/new?playbook=hotspot-check"))
    expect(page.locator("#playbook")).to_have_value("hotspot-check")
    expect(page.locator(".param[data-param='lat'] .help")).to_contain_text("最小 3 · 最大 54")
    page.select_option("#unit", "jiangling")
    page.fill("[name=place]", "马峦山北坡")
    page.fill("[name=lat]", "95")
    page.fill("[name=lon]", "114.3702")
    page.fill("[name=observed_at]", "2026-03-02T08:42")
    page.click("#start-submit")
    expect(page.locator("#flash")).to_contain_text("纬度：")
    expect(page.locator("#flash")).to_contain_text("不能大于 54")
    expect(page.locator("[name=lat]")).to_have_attribute("aria-invalid", "true")
    expect(page).to_have_url(re.compile(r"/runs/new"))
    page.fill("[name=lat]", "22.6531")
    page.click("#start-submit")
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    run = run_of(server, page)
    assert run["title"] == "卫星监测热点核查反馈·马峦山北坡·江岭社区"
    assert run["params"]["lat"] == 22.6531
    assert run["params"]["observed_at"].startswith("2026-03-02T08:42:00+08:00")
    expect(page.locator("#steps li[data-step='receive']")).to_contain_text("待办")

    page.goto(server.url("/runs/new?playbook=roll-call"))
    expect(page.locator("#playbook")).to_have_value("roll-call")
    expect(page.locator("[name=count]")).to_have_value("5")
    page.fill("[name=count]", "3")
    page.click("#start-submit")
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    run = run_of(server, page)
    drawn = [s for s in run["steps"] if s["step"] == "call"]
    assert len(drawn) == 3
    calls = page.locator("#steps li[data-step='call']")
    expect(calls).to_have_count(3)
    for i, step in enumerate(drawn):
        expect(calls.nth(i)).to_contain_text(step["unit_name"])
        expect(calls.nth(i)).to_contain_text(step["assignees"][0]["name"])
