"""The start page when gas-leak.yaml was broken before a restart: the commander can still
start the response, on the version its runs last used, and the page says so plainly with the
file's error to pass on, instead of the playbook being missing from the list."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from playwright.sync_api import Page, expect

from flows import lifecycle
from flows.runtime import Runtime
from models.clock import ManualClock

SignedIn = Callable[..., Page]
LEAK = {"location": "六和社区幸福里3栋", "grade": "一般"}
# The version the run before the break was started on: the shipped one.
SHIPPED = yaml.safe_load(
    (SHIPPED_PLAYBOOKS / "gas-leak.yaml").read_text(encoding="utf-8"))["version"]


@pytest.fixture
def web_rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    books = tmp_path / "playbooks"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    before = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    lifecycle.start_run(before, playbook_id="gas-leak", unit_id="liuhe", params=LEAK,
                        actor="wang-qiang")
    before.db.dispose()
    leak = books / "gas-leak.yaml"
    leak.write_text(leak.read_text(encoding="utf-8").replace("\ntitle: ", "\ntitle： ", 1),
                    encoding="utf-8")
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    yield rt
    rt.db.dispose()


def test_a_broken_file_starts_on_its_last_good_version_and_says_so(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in("wang-qiang")
    page.goto(server.url("/runs/new?playbook=gas-leak"))
    expect(page.locator("#playbook")).to_have_value("gas-leak")
    warning = page.locator("#playbook-broken")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(f"此预案的文件有错误，现沿用上次运行的版本（第 {SHIPPED} 版）")
    expect(warning).to_contain_text("gas-leak.yaml")
    page.select_option("#playbook", "typhoon-633")
    expect(warning).to_be_hidden()
