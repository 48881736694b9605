"""What the pages say of a major gas leak's 续报 rounds (recur): the task page of the round
written ahead says when it will be handed out and how long it then has (not that it waits for
an earlier step, with no deadline), and the run page's by-step summary, which counts the units
a step was handed to, leaves the rounds out (one duty room, again and again: not 3 units).
Headless Chromium on the real app, 390x844 where the duty officer reads it on a phone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gas_leak_walk import complete, rounds, steps, verifier_for, walk_up_to_the_close
from playwright.sync_api import Page, expect

from flows import tasks
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_round_written_ahead_says_when_it_comes_on_the_phone(
        signed_in: Callable[..., Page], server: Any, clock: ManualClock) -> None:
    run_id = walk_up_to_the_close(server.rt, clock)
    ahead = rounds(server.rt, run_id)[-1]
    assert ahead.status == "pending" and ahead.next_check_at is not None

    page = signed_in("pingshan-duty-2", phone=True)
    page.goto(server.url(f"/tasks/{ahead.id}"))
    expect(page.locator("#heading")).to_have_text("续报事件处置进展（第2次，03-02 17:00前）")
    expect(page.locator("#not-yet")).to_have_text(
        "尚未下达：本轮将于 2026-03-02 16:00 下达，届时另行通知。")
    expect(page.locator("#scheduled-local")).to_have_text("2026-03-02 16:00")
    expect(page.locator("#content")).to_contain_text("下达后1小时")
    expect(page.locator("#content")).not_to_contain_text("无时限")


def test_the_by_step_summary_does_not_count_rounds_as_units(
        signed_in: Callable[..., Page], server: Any, clock: ManualClock) -> None:
    run_id = walk_up_to_the_close(server.rt, clock)
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    expect(page.locator("#rounds")).to_be_visible()
    expect(page.locator("#steps li[data-step='follow-up']")).to_have_count(2)
    expect(page.locator("#overview-table tr[data-step='follow-up']")).to_have_count(0)
    expect(page.locator("#overview-table tr[data-step='follow-up-send']")).to_have_count(0)
    expect(page.locator("#overview-box")).to_be_hidden()


def test_the_timeline_says_which_rounds_the_server_was_down_for_and_why_rounds_stop(
        signed_in: Callable[..., Page], server: Any, clock: ManualClock) -> None:
    """Down from Monday 15:00 to Tuesday 18:30: 16:00's and 07:00's rounds were never handed
    out; the one handed out on restart says so, so a manager asked where Tuesday's 08:00
    report is reads it in the timeline. The close then says why the round ahead went."""
    rt = server.rt
    run_id = walk_up_to_the_close(rt, clock)
    clock.set(datetime(2026, 3, 3, 10, 30, tzinfo=UTC))  # Tuesday 18:30 in Shanghai
    assert sweep_once(rt).rounds_started == 1
    close = steps(rt, run_id)["close"]
    complete(rt, close, "重大")
    tasks.verify(rt, step_id=close.id or 0, actor=verifier_for(rt, steps(rt, run_id)["close"]),
                 approve=True, note="同意终报")
    drain_wakes(rt)

    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text(
        "按轮次下达 · 续报事件处置进展（第2次，03-03 17:00前）；"
        "此前 2 轮因系统停止运行未按时下达，并入本轮")
    expect(timeline).to_contain_text("“处置终结，形成终报”已完成，不再续报")


def test_the_inbox_lists_a_finished_report_without_a_clock(
        signed_in: Callable[..., Page], server: Any, clock: ManualClock) -> None:
    """The duty officer's 全部 at 15:00: the first 续报, done at 09:1x in time, shows its
    deadline and no clock, not 逾期 by the hours since (the round written ahead is not given
    out yet: it is not listed)."""
    run_id = walk_up_to_the_close(server.rt, clock)
    first, ahead = rounds(server.rt, run_id)
    clock.set(datetime(2026, 3, 2, 7, 0, tzinfo=UTC))  # 15:00 in Shanghai
    page = signed_in("pingshan-duty-1", phone=True)
    page.goto(server.url("/inbox"))
    page.select_option("#f-status", "all")
    done = page.locator(f".task-card[data-task-id='{first.id}']")
    expect(done.locator(".badge.status-done")).to_have_text("已完成")
    expect(done).to_contain_text(f"期限 {first.due_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}")
    expect(done.locator(".due")).to_have_count(0)
    expect(done).not_to_contain_text("逾期")
    expect(page.locator(f".task-card[data-task-id='{ahead.id}']")).to_have_count(0)
