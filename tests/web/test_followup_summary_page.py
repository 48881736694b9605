"""The run page's 分项汇总 of a follow-up step (typhoon-633's 应转未转人员跟踪), on a 390 px phone
and a desktop: 仍未转移 is where each community stands, so its latest round counts, not the sum
of every round (3 left, then 2 left, is 2 people still in danger, not 5); the people moved in the
rounds add up. The API gives the page which fields are such a state (`state_outputs`).

The runtime is web/conftest.py's: the shipped typhoon-633 playbook on the demo district; the
clock is moved, never slept on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from factories import complete_answered, run_steps
from playwright.sync_api import Page, expect

from flows.lifecycle import set_stage, start_run
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock

SignedIn = Callable[..., Page]
COMMANDER = "maluan-commander"
SHELTER = {"from_where": "低洼地段", "mover": "网格员", "shelter": "社区服务中心",
           "management": "专人值守"}
STILL = {"shelter": "马峦小学", "refused": 2, "measures": "上门劝导",
         "situation": "2人拒绝转移，继续劝导"}


def rounds(server: Any, run_id: int) -> list[Any]:
    return [s for s in run_steps(server.rt, run_id) if s.step_key == "transfer-followup"
            and s.unit_id == "maluan-community"]


def two_rounds_left_two(server: Any, clock: ManualClock) -> int:
    """马峦街道's typhoon at 橙色/红色预警: 马峦社区 moves 10 and leaves 3; its first round moves
    1 more (2 left), its second moves none (still 2 left)."""
    rt = server.rt
    run_id = start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                       params={"name": "山竹", "signal": "红色"}, actor=COMMANDER).id or 0
    set_stage(rt, run_id=run_id, stage="severe", actor=COMMANDER)
    for row in run_steps(rt, run_id):
        if row.step_key == "transfer":
            left = 3 if row.unit_id == "maluan-community" else 0
            complete_answered(rt, row, people=10, not_moved=left, **SHELTER)
    drain_wakes(rt)
    for moved in (1, 0):
        clock.advance(timedelta(hours=1, minutes=1))
        sweep_once(rt)
        [open_round] = [r for r in rounds(server, run_id) if r.status == "ready"]
        complete_answered(rt, open_round, moved=moved, not_moved=2, **STILL)
        drain_wakes(rt)
    assert [r.status for r in rounds(server, run_id)][:2] == ["done", "done"]
    return run_id


@pytest.mark.parametrize("phone", [True, False], ids=["phone-390", "desktop"])
def test_the_summary_counts_people_still_not_moved_by_each_communitys_latest_round(
        signed_in: SignedIn, server: Any, clock: ManualClock, phone: bool) -> None:
    run_id = two_rounds_left_two(server, clock)

    # The API says which of the follow-up's fields are a state (what its `while` reads).
    r = httpx.get(server.url(f"/api/runs/{run_id}/playbook"), timeout=10,
                  headers={"Authorization": f"Bearer {server.token(COMMANDER)}"})
    assert r.status_code == 200, r.text
    steps = {s["id"]: s for s in r.json()["steps"]}
    assert steps["transfer-followup"]["follow_up"]["state_outputs"] == [
        "not_moved", "refused", "immobile", "unreachable", "other_reason"]
    assert steps["shelter-followup"]["follow_up"]["state_outputs"] == ["remaining"]

    page = signed_in(COMMANDER, phone=phone)
    page.goto(server.url(f"/runs/{run_id}"))
    sums = page.locator("#overview-table tr[data-step='transfer-followup'] td.sums")
    # 2 people still in danger (the latest round), not 4 (2 + 2), and 2 of them refusing
    # (`follow_up.state`); the people moved in the rounds add up.
    expect(sums).to_have_text("本轮转移人数（自上次填报以来） 1；仍未转移人数（各单位最近一次） 2；"
                              "其中拒绝转移人数（各单位最近一次） 2")
    # The transfer's own row still adds up every community: 30 moved, 3 left at the time.
    transfer = page.locator("#overview-table tr[data-step='transfer'] td.sums")
    expect(transfer).to_contain_text("转移人数（要转谁） 30")
    expect(sums).to_be_visible()
    if phone:  # the row reads as a card: the 合计 cell is on the screen, not pushed off it
        box = sums.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
