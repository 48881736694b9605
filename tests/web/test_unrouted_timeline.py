"""The run page's timeline names the roles a message reached no one in: a street's alert
`to: [community_head]` finds no community head at the street or above, and the commander reads
通知对象无人担任 · 无人担任：社区负责人, not a plain 完成 as if the communities had been told."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from playwright.sync_api import Page, expect

from flows.lifecycle import start_run
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock

ALERT = """\
id: street-alert
version: 1
title: 街道预警
steps:
  - id: alert
    title: 向各社区发出预警
    action: notify
    template: alert-message.md.j2
    to: [community_head, district_duty_room]
"""


@pytest.fixture
def web_rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    books = tmp_path / "books"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    (books / "street-alert.yaml").write_text(ALERT, encoding="utf-8")
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    assert rt.catalog.errors == []
    yield rt
    rt.db.dispose()


def test_the_timeline_names_the_roles_a_message_reached_no_one_in(
        signed_in: Callable[..., Page], server: Any) -> None:
    run = start_run(server.rt, playbook_id="street-alert", unit_id="pingshan-street",
                    params={}, actor="wang-qiang")
    drain_wakes(server.rt)
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run.id}"))
    line = page.locator("#timeline li[data-action='notify_unrouted']")
    expect(line).to_contain_text("通知对象无人担任")
    expect(line).to_contain_text("无人担任：社区负责人")
