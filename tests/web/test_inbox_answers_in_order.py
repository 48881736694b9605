"""The inbox shows what its menus say, however the answers come back: on a slow phone network
the first page (未完成) can arrive after the list asked for by picking 全部, and it must not
be drawn over it. The first answer is held back by the test (Playwright routing) until the
second is drawn. Headless Chromium on the real app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gas_leak_walk import rounds, walk_up_to_the_close
from playwright.sync_api import Page, Route, expect

from models.clock import ManualClock


def test_a_late_answer_to_an_earlier_filter_is_not_drawn(
        signed_in: Callable[..., Page], server: Any, clock: ManualClock) -> None:
    run_id = walk_up_to_the_close(server.rt, clock)
    first, _ = rounds(server.rt, run_id)  # the duty officer's first 续报, done
    page = signed_in("pingshan-duty-1", phone=True)
    held: list[Route] = []

    def hold_the_first(route: Route) -> None:
        if not held:
            held.append(route)  # answered below, after the later question's answer
        else:
            route.continue_()

    page.route("**/api/tasks?*", hold_the_first)
    page.goto(server.url("/inbox"))
    expect(page.locator("#f-status")).to_have_value("")  # 未完成
    page.select_option("#f-status", "all")
    done = page.locator(f".task-card[data-task-id='{first.id}']")
    expect(done).to_be_visible()
    with page.expect_response(lambda r: "/api/tasks?" in r.url):
        held[0].continue_()
    page.wait_for_load_state("networkidle")  # the late answer read and handled by the page
    expect(done).to_be_visible()
    expect(page.locator("#f-status")).to_have_value("all")
