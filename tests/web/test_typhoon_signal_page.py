"""The typhoon warning signal on the run's page, on a 390 px phone: the signal as it stands now
in its colour at the top and in its own box with every change (local time, who, which stage);
a commander of the run records a raise within the stage after a second click that says who
will be called, or enters a stage with the signal in one act; the holders of the stage's open
tasks find 【台风预警信号升级】 in their inbox; a community head sees the signal and no control;
the runs list shows it beside the stage.

The runtime is web/conftest.py's: the shipped typhoon-633 playbook on the demo district."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from flows.lifecycle import set_stage, start_run
from models.clock import ManualClock

SignedIn = Callable[..., Page]
COMMANDER = "maluan-commander"


def inbox(server: Any, person: str) -> list[dict[str, Any]]:
    r = httpx.get(server.url("/api/inbox"), timeout=10,
                  headers={"Authorization": f"Bearer {server.token(person)}"})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def typhoon_at(server: Any, stage: str, signal: str) -> int:
    """马峦街道's typhoon 山竹 at `stage`, started at `signal`."""
    run_id = start_run(server.rt, playbook_id="typhoon-633", unit_id="maluan",
                       params={"name": "山竹", "signal": signal}, actor=COMMANDER).id or 0
    set_stage(server.rt, run_id=run_id, stage=stage, actor=COMMANDER)
    return run_id


def test_the_commander_raises_the_signal_within_the_stage_from_a_phone(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    run_id = typhoon_at(server, "severe", "橙色")
    started = server.rt.renderer.local(clock.now())
    name = server.rt.org.people[COMMANDER].name
    clock.advance(timedelta(hours=2))
    page = signed_in(COMMANDER, phone=True)
    page.goto(server.url(f"/runs/{run_id}"))

    top = page.locator("#run-status .param-badge")
    expect(top).to_have_text("台风预警信号：橙色")
    expect(top).to_have_class(re.compile(r"\bsignal-orange\b"))
    expect(page.locator("#signal-now")).to_have_text("橙色")
    expect(page.locator("#signal-since")).to_have_text(f"自 {started} 起（{name}启动时填写）")
    page.select_option("#signal-value", "红色")
    page.fill("#signal-note", "气象台发布台风红色预警信号")
    page.click("#signal-ask")
    expect(page.locator("#signal-effect")).to_have_text(re.compile(
        r"^将台风预警信号由橙色升为红色：本阶段（橙色/红色预警）\d+ 项未完成任务的 \d+ 名负责人"
        r"将收到【台风预警信号升级】叫应；不下达新任务，也不撤销任务。$"))
    page.click("#signal-yes")
    expect(page.locator("#flash")).to_contain_text("已记录：台风预警信号 红色")

    expect(top).to_have_text("台风预警信号：红色")
    expect(top).to_have_class(re.compile(r"\bsignal-red\b"))
    history = page.locator("#signal-history li")
    expect(history).to_have_count(2)
    now = server.rt.renderer.local(clock.now())
    expect(history.last).to_contain_text(f"{now} 红色 由橙色升为红色（")
    expect(history.last).to_contain_text("记录，阶段：橙色/红色预警）")
    expect(history.last).to_contain_text("说明：气象台发布台风红色预警信号")
    expect(page.locator("#timeline li[data-action='param_changed']")).to_contain_text(
        "变更参数 · 台风预警信号 橙色 → 红色（升级）")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # The stage is as it was, and the community heads were called.
    expect(page.locator("#run-status")).to_contain_text("阶段：橙色/红色预警")
    called = [n for n in inbox(server, "jiangling-head")
              if n["title"].startswith("【台风预警信号升级】")]
    assert [n["title"] for n in called] == ["【台风预警信号升级】山竹·马峦街道：橙色→红色"]


def test_a_stage_is_entered_with_its_signal_and_others_only_read_it(
        signed_in: SignedIn, server: Any) -> None:
    run_id = typhoon_at(server, "emergency", "黄色")
    page = signed_in(COMMANDER, phone=True)
    page.goto(server.url(f"/runs/{run_id}"))
    page.select_option("#stage", "severe")
    expect(page.locator("#stage-signal option").first).to_have_text("不变（当前：黄色）")
    page.select_option("#stage-signal", "红色")
    page.click("#stage-ask")
    page.click("#stage-yes")
    expect(page.locator("#flash")).to_contain_text("已切换到阶段 橙色/红色预警，台风预警信号为红色")
    expect(page.locator("#run-status .param-badge")).to_have_text("台风预警信号：红色")
    expect(page.locator("#signal-history li").last).to_contain_text("由黄色升为红色")

    head = signed_in("jiangling-head", phone=True)
    head.goto(server.url(f"/runs/{run_id}"))
    expect(head.locator("#signal-now")).to_have_text("红色")
    expect(head.locator("#signal-form")).to_be_hidden()

    page.goto(server.url("/runs"))
    card = page.locator(f"[data-run-id='{run_id}']")
    expect(card.locator(".param-badge")).to_have_text("台风预警信号：红色")


def test_the_signal_box_lists_who_answered_the_raise_and_the_one_called_answers_there(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    run_id = typhoon_at(server, "severe", "橙色")
    raised = httpx.post(server.url(f"/api/runs/{run_id}/params"), timeout=10,
                        headers={"Authorization": f"Bearer {server.token(COMMANDER)}"},
                        json={"params": {"signal": "红色"}})
    assert raised.status_code == 200, raised.text
    called = len(raised.json()["signal_answers"])
    told = server.rt.renderer.local(clock.now())
    due = server.rt.renderer.local(clock.now() + timedelta(minutes=15))
    clock.advance(timedelta(minutes=4))

    head = signed_in("jiangling-head", phone=True)
    head.goto(server.url(f"/runs/{run_id}"))
    expect(head.locator("#signal-answers-count")).to_have_text(
        f"红色 · 已回复 0/{called} 人，叫应于 {told}")
    expect(head.locator("#signal-mine-text")).to_have_text(f"红色预警叫应：请于 {due} 前回复")
    head.click("#signal-ack")
    expect(head.locator("#flash")).to_contain_text("已回复收到（叫应）")
    expect(head.locator("#signal-mine")).to_be_hidden()
    mine = head.locator("#signal-answers-list li[data-person='jiangling-head']")
    expect(mine).to_contain_text(f"已回复 {server.rt.renderer.local(clock.now())}")
    assert head.evaluate("document.documentElement.scrollWidth") <= 390

    page = signed_in(COMMANDER, phone=True)
    page.goto(server.url(f"/runs/{run_id}"))
    expect(page.locator("#signal-answers-count")).to_have_text(
        f"红色 · 已回复 1/{called} 人，叫应于 {told}")
    expect(page.locator("#signal-mine")).to_be_hidden()
    rows = page.locator("#signal-answers-list li")
    expect(rows.first).to_contain_text(f"未回复（应于 {due} 前）")
    expect(rows.last).to_have_attribute("data-person", "jiangling-head")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
