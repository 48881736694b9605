"""One figure for how late a step is on the run page, in a real browser: a gas leak's receipt a
minute past its 3-minute deadline reads "逾期 1分钟" in 当前卡点 and in its step row, as the task
page says it, never "逾期 1 天" beside it (the days overdue of a hazard a fortnight late are
tests/web/test_overdue_hazard_page.py's)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from playwright.sync_api import Page, expect

from flows.lifecycle import start_run
from flows.sweeper import sweep_once
from models.clock import ManualClock

SignedIn = Callable[..., Page]

# The countdown's words a minute or so late (the browser's clock moves on after the page drew).
LATE = re.compile(r"^逾期 \d+分钟$")


def test_a_step_a_minute_late_says_minutes_everywhere_on_the_run_page(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    run = start_run(server.rt, playbook_id="gas-leak", unit_id="liuhe",
                    params={"location": "六和社区深汕路88号", "grade": "一般"},
                    actor="wang-qiang")
    clock.advance(timedelta(minutes=4))  # due 09:03, now 09:04
    sweep_once(server.rt)

    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run.id}"))
    held = page.locator("#holdup li[data-step='receive']")
    expect(held.locator(".holdup-head .due")).to_have_text(LATE)
    expect(held.locator(".holdup-head .due")).to_have_class(re.compile(r"\boverdue\b"))
    row = page.locator("#steps li[data-step='receive']")
    expect(row.locator(".due")).to_have_text(LATE)
    for place in (held, row):
        expect(place.locator(".overdue-days")).to_have_count(0)
        expect(place).not_to_contain_text(re.compile(r"逾期 \d+ 天"))

    # The task page says the same.
    task = row.locator(".step-head a").get_attribute("href")
    page.goto(server.url(task or ""))
    expect(page.locator("#summary .due")).to_have_text(LATE)
