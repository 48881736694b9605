"""The duty officer's 发生时间 on a phone at night: a time, not free text, never later than now.
A tired hand typing 05:00 for 02:55 was taken as it stood and went up to the county duty
office in the 首报 as a time still to come; now the box refuses it by its label, the task stays
open, and the time taken is printed in the reports in the bureau's time, as typed."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gas_leak_walk import complete, start, steps
from playwright.sync_api import Page, expect
from sqlmodel import select

from flows.segments import drain_wakes
from models.db import read_session
from models.outbox import Notification

SignedIn = Callable[..., Page]
DUTY = "pingshan-duty-1"  # 黄磊, on shift at the district duty room


def test_a_time_it_happened_later_than_now_is_refused_by_its_label(
        signed_in: SignedIn, server: Any) -> None:
    rt = server.rt
    run_id = start(rt, "重大")
    drain_wakes(rt)
    receive = steps(rt, run_id)["receive"]
    page = signed_in(DUTY, phone=True)
    page.goto(server.url(f"/tasks/{receive.id}"))
    when = page.locator("[name=occurred_at]")
    expect(when).to_have_attribute("type", "datetime-local")
    # The tests' clock reads 09:00: two hours ahead is a slip of the finger, not a fact.
    when.fill("2026-03-02T11:00")
    page.fill("[name=scene]", "3栋1单元燃气味浓")
    page.click("#submit")
    flash = page.locator("#flash")
    expect(flash).to_contain_text(
        "发生时间：不能晚于现在（2026-03-02 09:00）；收到 2026-03-02 11:00")
    expect(when).to_have_attribute("aria-invalid", "true")
    assert steps(rt, run_id)["receive"].status == "ready"

    when.fill("2026-03-02T08:55")
    page.click("#submit")
    expect(page.locator("#flash")).to_have_text(re.compile("已办结"))
    drain_wakes(rt)
    taken = steps(rt, run_id)["receive"]
    assert taken.status == "done"
    assert taken.outputs["occurred_at"] == "2026-03-02T08:55:00+08:00"

    # The 首报 (no time of its own given) prints it in the bureau's time, not as ISO text.
    complete(rt, steps(rt, run_id)["report.write"], "重大", given={"occurred_at": None})
    drain_wakes(rt)
    sent_id = steps(rt, run_id)["report.send"].id
    with read_session(rt.db) as session:
        [first] = session.exec(select(Notification.body).where(
            Notification.step_id == sent_id,
            Notification.recipient == "county_duty_office")).all()
    assert "## 二、发生时间\n2026-03-02 08:55\n" in first, first
