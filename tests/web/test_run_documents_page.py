"""The 文书 of a 重大 hazard on its run page, in a real browser: the 挂牌督办通知书 under its own
title, formatted as the office prints it (headings, bold, its table), not as Markdown; what the
inspector typed shown as text and never obeyed; and 打印 opening the document alone on its own
page, which prints nothing but the document."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from hazard_walk import CHIEF, INSPECTOR, MANAGER
from playwright.sync_api import Page, expect

from flows.segments import drain_wakes

SignedIn = Callable[..., Page]

TYPED = ("除尘器<script>window.hacked = 1</script><img src=x onerror='window.hacked = 2'>"
         "[点此查看](http://evil.example/x)未设泄爆装置")
# Stands in for the print dialog (which a headless browser has not): counts the calls.
COUNT_PRINTS = "window.__printed = 0; window.print = () => { window.__printed += 1; };"


def call(server: Any, person: str, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {server.token(person)}"}
    r = httpx.request(method, server.url(path), headers=headers, timeout=10, **kwargs)
    assert r.status_code < 400, r.text
    return r.json()


def listed_hazard(server: Any, description: str) -> int:
    """A 重大 hazard registered and listed (挂牌督办): its notice is filed."""
    run = call(server, INSPECTOR, "POST", "/api/runs", json={
        "playbook": "hazard-3030", "unit": "liuhe", "params": {
            "location": "六和社区和平路18号", "grade": "重大", "description": description}})
    drain_wakes(server.rt)
    listing = next(s for s in run["steps"] if s["step"] == "list")
    call(server, CHIEF, "POST", f"/api/tasks/{listing['id']}/complete", json={
        "outputs": {"responsible_unit": "富达五金厂", "responsible_person": "李富达"}})
    drain_wakes(server.rt)
    return int(run["id"])


def open_notice(signed_in: SignedIn, server: Any, run_id: int) -> tuple[Page, Any]:
    page = signed_in(MANAGER)
    page.context.add_init_script(COUNT_PRINTS)
    page.goto(server.url(f"/runs/{run_id}"))
    notice = page.locator("#documents details.doc", has_text="挂牌督办通知书")
    notice.locator(":scope > summary").click()
    return page, notice


def test_the_notice_reads_as_a_formatted_document_under_its_own_title(
        signed_in: SignedIn, server: Any) -> None:
    page, notice = open_notice(signed_in, server, listed_hazard(server, "除尘系统未设泄爆装置"))
    expect(notice.locator(".doc-title")).to_have_text("重大事故隐患挂牌督办通知书")
    expect(notice.locator(":scope > summary")).not_to_contain_text("生成")  # not the step
    body = notice.locator(".doc-html")
    expect(body.locator("h1")).to_have_text("重大事故隐患挂牌督办通知书")
    expect(body.locator("h2").first).to_have_text("一、督办隐患")
    expect(body.locator("strong").first).to_have_text(re.compile(r"^坪应急督〔2026〕\d+号$"))
    row = body.locator("table tr", has_text="隐患描述")
    expect(row.locator("td")).to_have_text(["隐患描述", "除尘系统未设泄爆装置"])
    expect(body.locator("ol > li")).to_have_count(5)
    for markup in ("**", "|---|", "| 项目", "# "):
        expect(body).not_to_contain_text(markup)
    # The Markdown as filed stays, folded away, to copy.
    source = notice.locator(".doc-source pre")
    expect(source).to_be_hidden()
    notice.locator(".doc-source summary").click()
    expect(source).to_contain_text("| 隐患描述 | 除尘系统未设泄爆装置 |")


def test_what_the_inspector_typed_is_shown_and_never_obeyed(
        signed_in: SignedIn, server: Any) -> None:
    page, notice = open_notice(signed_in, server, listed_hazard(server, TYPED))
    body = notice.locator(".doc-html")
    expect(body).to_contain_text("<script>window.hacked = 1</script>")
    expect(body).to_contain_text("[点此查看](http://evil.example/x)")
    expect(body.locator("script, img, a, [onerror]")).to_have_count(0)
    assert page.evaluate("window.hacked") is None


def test_print_opens_the_document_alone_and_prints_only_it(
        signed_in: SignedIn, server: Any) -> None:
    run_id = listed_hazard(server, "除尘系统未设泄爆装置")
    page, notice = open_notice(signed_in, server, run_id)
    with page.context.expect_page() as opened:
        notice.get_by_role("link", name="打印").click()
    sheet = opened.value
    expect(sheet.locator("#doc .doc-html h1")).to_have_text("重大事故隐患挂牌督办通知书")
    expect(sheet).to_have_title("重大事故隐患挂牌督办通知书")
    assert re.search(rf"/runs/{run_id}/documents/\d+$", sheet.url), sheet.url  # asked once
    sheet.wait_for_function("window.__printed === 1")
    # On paper: the document, and nothing of the page around it.
    sheet.emulate_media(media="print")
    for chrome in (".top", "#heading", "#print", "#back", "#doc-meta", ".doc-source"):
        expect(sheet.locator(chrome)).to_be_hidden()
    expect(sheet.locator("#doc table")).to_be_visible()
    # The page's own 打印 prints again.
    sheet.emulate_media(media="screen")
    sheet.locator("#print").click()
    sheet.wait_for_function("window.__printed === 2")
