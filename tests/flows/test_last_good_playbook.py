"""A playbook file broken before a restart (an operator's typo in gas-leak.yaml) no longer
leaves the commander unable to start a gas-leak response: the server serves the version its
runs last used, from the database, says so in /api/playbooks, /api/me and the start page's
data, and /healthz stays degraded until the file is mended. A playbook no run ever used has no
such version: it stays unstartable, with the file's error. Real runtimes on one data dir, the
shipped playbooks copied into a folder of the test's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from fastapi.testclient import TestClient

from api.auth import make_token
from api.main import create_app
from flows import lifecycle
from flows.runtime import Runtime
from models.clock import ManualClock
from models.errors import InvalidInput

LEAK = {"location": "六和社区幸福里3栋", "grade": "一般"}


def runtime(tmp_path: Path, clock: ManualClock) -> Runtime:
    return make_runtime(tmp_path / "data", clock=clock, playbooks=tmp_path / "playbooks",
                        org_path=DEMO_ORG)


@pytest.fixture
def books(tmp_path: Path) -> Path:
    shutil.copytree(SHIPPED_PLAYBOOKS, tmp_path / "playbooks")
    return tmp_path / "playbooks"


def break_file(path: Path) -> None:
    """The operator's typo: the playbook's `title:` typed with a full-width colon."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\ntitle: ", "\ntitle： ", 1), encoding="utf-8")


def test_a_broken_file_serves_the_version_runs_last_used(
        books: Path, tmp_path: Path, clock: ManualClock) -> None:
    before = runtime(tmp_path, clock)
    first = lifecycle.start_run(before, playbook_id="gas-leak", unit_id="liuhe", params=LEAK,
                                actor="wang-qiang")
    sha = first.playbook_sha
    before.db.dispose()

    break_file(books / "gas-leak.yaml")
    rt = runtime(tmp_path, clock)
    assert [e.file for e in rt.catalog.errors] == [str(books / "gas-leak.yaml")]
    assert rt.catalog.get("gas-leak").sha256 == sha
    assert "gas-leak.yaml" in rt.catalog.fallbacks["gas-leak"]
    run = lifecycle.start_run(rt, playbook_id="gas-leak", unit_id="liuhe", params=LEAK,
                              actor="wang-qiang")
    assert run.playbook_sha == sha

    token = make_token("wang-qiang", rt.settings.signing_secret())
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(rt, background=False, prefect=False)) as client:
        listed = {p["id"]: p for p in client.get("/api/playbooks", headers=auth).json()["data"]}
        assert "gas-leak.yaml" in listed["gas-leak"]["broken_file"]
        assert listed["typhoon-633"]["broken_file"] is None
        me = {p["id"]: p for p in client.get("/api/me", headers=auth).json()["startable"]}
        assert me["gas-leak"]["broken_file"] == rt.catalog.fallbacks["gas-leak"]
        health = client.get("/healthz").json()
        assert health["status"] == "degraded"
        assert health["playbook_files_failed"] == ["gas-leak.yaml"]
    rt.db.dispose()


def test_a_broken_file_no_run_ever_used_stays_unstartable(
        books: Path, tmp_path: Path, clock: ManualClock) -> None:
    break_file(books / "typhoon-633.yaml")
    rt = runtime(tmp_path, clock)
    assert "typhoon-633" not in rt.catalog.current and rt.catalog.fallbacks == {}
    with pytest.raises(InvalidInput) as refused:
        lifecycle.start_run(rt, playbook_id="typhoon-633", unit_id="pingshan",
                            params={"name": "山竹"}, actor="wang-qiang")
    assert "流程 typhoon-633 的文件有错误" in refused.value.message
    rt.db.dispose()


def test_a_broken_module_serves_the_playbooks_that_use_it_from_their_last_version(
        books: Path, tmp_path: Path, clock: ManualClock) -> None:
    """The error is the module's file (first-report.yaml), not gas-leak.yaml: gas-leak, which
    uses it, is still served from the version its runs last used, and says why."""
    before = runtime(tmp_path, clock)
    sha = lifecycle.start_run(before, playbook_id="gas-leak", unit_id="liuhe", params=LEAK,
                              actor="wang-qiang").playbook_sha
    before.db.dispose()
    module = books / "modules" / "first-report.yaml"
    module.write_text(module.read_text(encoding="utf-8").replace("\ntitle: ", "\ntitle： ", 1),
                      encoding="utf-8")
    rt = runtime(tmp_path, clock)
    assert {e.file for e in rt.catalog.errors} == {str(module)}
    assert rt.catalog.get("gas-leak").sha256 == sha
    assert "first-report.yaml" in rt.catalog.fallbacks["gas-leak"]
    rt.db.dispose()
