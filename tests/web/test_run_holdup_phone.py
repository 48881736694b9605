"""A district typhoon in its 橙色/红色预警 stage on the commander's phone: some 230 tasks are open
at once (every street and community, the stages skipped over included). 当前卡点 shows the most
pressing few and the rest on a tap, so the stage and cancel controls below it are a scroll
away, not fifty screens down; the steps list still lists every task.

The runtime is web/conftest.py's: the shipped typhoon-633 playbook on the demo district."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from playwright.sync_api import Page, expect

from flows.lifecycle import set_stage, start_run
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock

SignedIn = Callable[..., Page]


def test_a_district_typhoons_holdup_shows_the_first_few_and_the_rest_on_a_tap(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    rt = server.rt
    run = start_run(rt, playbook_id="typhoon-633", unit_id="pingshan",
                    params={"name": "海葵（2311）"}, actor="wang-qiang")
    drain_wakes(rt)
    set_stage(rt, run_id=run.id or 0, stage="severe", actor="wang-qiang")
    drain_wakes(rt)
    clock.advance(timedelta(hours=1, minutes=5))  # the street heads' 1 h is gone: 6 overdue
    sweep_once(rt)
    drain_wakes(rt)
    page = signed_in("wang-qiang", phone=True)
    page.goto(server.url(f"/runs/{run.id}"))

    cards = page.locator("#holdup > li")
    expect(cards).to_have_count(5)
    # The overdue come first: the six streets' 橙色/红色 measures, past their hour.
    expect(cards.first).to_have_class("holdup is-overdue")
    opened = page.locator("#steps > li").count()
    more = page.locator("#holdup-more")
    expect(more).to_be_visible()
    total = int(more.inner_text().rsplit("共 ", 1)[1].split(" ")[0])
    assert total > 200
    expect(more).to_have_text(f"显示其余 {total - 5} 项（其中逾期 1 项），共 {total} 项未完成")

    more.click()
    expect(cards).to_have_count(total)
    expect(more).to_be_hidden()
    # Still all of them after a refresh, once asked for.
    page.click("#refresh")
    expect(cards).to_have_count(total)
    assert page.locator("#steps > li").count() == opened
