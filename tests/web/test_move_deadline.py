"""A commander moves a task's deadline from its page (调整期限: POST /api/tasks/{id}/extend), as
the API has let them: later or earlier, with a reason; the overdue mark and the ladder start
again from the new time. Only a commander over the task's unit is offered it; a bad time is the
API's 422 on its box and changes nothing.

The runtime is web/conftest.py's: the shipped gas-leak playbook on the demo district."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from flows.lifecycle import start_run
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock

SignedIn = Callable[..., Page]


def _task(server: Any, task_id: int) -> dict[str, Any]:
    r = httpx.get(server.url(f"/api/tasks/{task_id}"), timeout=10,
                  headers={"Authorization": f"Bearer {server.token('wang-qiang')}"})
    assert r.status_code == 200, r.text
    return r.json()


def _overdue_receive(server: Any, clock: ManualClock) -> int:
    """A gas leak at 六和社区 whose alert nobody took: 4 minutes on, overdue and chased."""
    run = start_run(server.rt, playbook_id="gas-leak", unit_id="liuhe",
                    params={"location": "六和社区深汕路88号", "grade": "一般"}, actor="wang-qiang")
    drain_wakes(server.rt)
    clock.advance(timedelta(minutes=4))
    sweep_once(server.rt)
    receive = next(s for s in httpx.get(
        server.url(f"/api/runs/{run.id}"), timeout=10,
        headers={"Authorization": f"Bearer {server.token('wang-qiang')}"}).json()["steps"]
        if s["step"] == "receive")
    assert receive["overdue"] and receive["escalation_level"] == 1
    return int(receive["id"])


def test_a_commander_moves_an_overdue_tasks_deadline_from_its_page(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    task_id = _overdue_receive(server, clock)
    page = signed_in("wang-qiang", phone=True)
    page.goto(server.url(f"/tasks/{task_id}"))
    box = page.locator("#move-deadline")
    expect(box).to_contain_text("调整期限")
    expect(page.locator("#move-due")).to_have_value("2026-03-02T09:03")

    # No reason: said on the page, nothing sent.
    page.fill("#move-due", "2026-03-02T09:30")
    page.click("#move-send")
    expect(page.locator("#flash")).to_have_text("请写明调整原因")
    expect(page.locator("#move-reason")).to_have_attribute("aria-invalid", "true")
    assert _task(server, task_id)["due_at_local"] == "2026-03-02 09:03"

    # A time already gone: the API's 422, on the time's box, and nothing moved.
    page.fill("#move-due", "2026-03-02T08:30")
    page.fill("#move-reason", "值班室电话故障，改由街道转报")
    page.click("#move-send")
    expect(page.locator("#flash")).to_contain_text("新期限须晚于现在")
    expect(page.locator("#move-due")).to_have_attribute("aria-invalid", "true")
    assert _task(server, task_id)["due_at_local"] == "2026-03-02 09:03"

    page.fill("#move-due", "2026-03-02T09:30")
    page.click("#move-send")
    expect(page.locator("#flash")).to_have_text(
        "期限已调整为 2026-03-02 09:30，督办从新期限重新计时")
    moved = _task(server, task_id)
    assert moved["due_at_local"] == "2026-03-02 09:30"
    assert moved["original_due_at_local"] == "2026-03-02 09:03"
    assert not moved["overdue"] and moved["escalation_level"] == 0


def test_only_a_commander_over_the_tasks_unit_is_offered_it(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    task_id = _overdue_receive(server, clock)  # held by the district's duty room
    for person in ("pingshan-duty-1", "pingshan-street-commander"):
        page = signed_in(person, phone=True)
        page.goto(server.url(f"/tasks/{task_id}"))
        expect(page.locator("#heading")).to_have_text("接收燃气泄漏警情")
        expect(page.locator("#move-deadline")).to_have_count(0)
