"""The pages of a real `closeloop serve` on its embedded default (SQLite in the data dir, the
shipped playbooks, the demo district, its own Prefect), reached the way a new user would: a
sign-in link from `closeloop token --link`, then the run a commander started."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from server_process import REPO, ServerProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("served"), env={})
    for name in list(srv.env):
        if name.startswith("CLOSELOOP_") and name != "CLOSELOOP_DATA_DIR":
            del srv.env[name]  # the embedded default, as `./dev serve` runs it
    srv.start()
    yield srv
    srv.stop()


def sign_in_link(served: ServerProcess, person: str) -> str:
    done = subprocess.run([sys.executable, "-m", "api.cli", "token", person, "--link",
                           served.base], cwd=REPO, env=served.env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def test_a_commander_signs_in_by_link_and_watches_the_run_they_started(
        browser: Browser, served: ServerProcess, tmp_path: Path) -> None:
    token = served.token("wang-qiang")
    status, run = served.request("POST", "/api/runs", token=token, body={
        "playbook": "gas-leak", "unit": "liuhe",
        "params": {"location": "六和社区某小区3栋", "grade": "重大"}})
    assert status == 201, run
    context = browser.new_context(locale="zh-CN")
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(sign_in_link(served, "wang-qiang"))
        expect(page.locator("#welcome-line")).to_contain_text("王强")
        page.goto(served.base + f"/runs/{run['id']}")
        expect(page.locator("#main")).to_contain_text(run["title"])
        expect(page.locator("#main")).to_contain_text("六和社区某小区3栋")
    finally:
        context.close()
    assert errors == []
