"""Who `closeloop start` records as the starter (SPEC §5, the audit trail of §3): with
`--as PERSON_ID` that person, who must exist and may start the playbook in the unit (the API's
own check); without it the operator console (`cli`, 运维命令行), never a person who did not
act. Run as a real subprocess from the repository on a fresh data dir, the shipped playbooks
and the demo district, as tests/api/test_cli.py does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import DEMO_ORG, run_events, run_row
from fastapi.testclient import TestClient
from gas_leak_walk import walk_to_the_end
from sqlmodel import select
from test_cli import closeloop, runtime_on

from api.auth import make_token
from api.main import create_app
from flows.runtime import build_runtime
from models.audit import SYSTEM, AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.hazard import Hazard
from models.outbox import Notification
from models.run import Run
from models.settings import Settings

CONSOLE = "cli"


def all_runs(data_dir: Path) -> list[Run]:
    rt = runtime_on(data_dir)
    try:
        with read_session(rt.db) as session:
            return list(session.exec(select(Run)).all())
    finally:
        rt.db.dispose()


# --- without --as: the operator console ------------------------------------------------------

def test_start_without_as_records_the_operator_console_not_a_person(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                     "--param", "location=六和社区幸福里3栋")
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout)  # stdout is the id alone (SPEC), the note goes to stderr
    note = done.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("提示：未给 --as，本次启动记为运维命令行（cli）")
    assert "--as PERSON_ID" in note[0]
    rt = runtime_on(tmp_path)
    try:
        assert CONSOLE not in rt.org.people
        run = run_row(rt, run_id)
        assert run.started_by == CONSOLE
        [started] = run_events(rt, run_id, "run_started")
        assert started.actor == CONSOLE
        with read_session(rt.db) as session:
            actors = {e.actor for e in session.exec(select(AuditEvent).where(
                AuditEvent.run_id == run_id)).all()}
        assert actors <= {CONSOLE, SYSTEM}  # nobody of the org chart has done anything yet
        # The run's view as a commander reads it says so too, not some commander's id.
        settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
        token = make_token("wang-qiang", settings.signing_secret())
        with TestClient(create_app(rt, background=False, prefect=False)) as client:
            view = client.get(f"/api/runs/{run_id}",
                              headers={"Authorization": f"Bearer {token}"}).json()
        assert view["started_by"] == CONSOLE
        assert [e["actor"] for e in view["timeline"] if e["action"] == "run_started"] == [CONSOLE]
    finally:
        rt.db.dispose()


def test_reports_of_a_console_run_are_signed_by_the_people_who_wrote_them(
    tmp_path: Path
) -> None:
    """The run walked to its end: no report or message names the console, and the first
    report's 报告人 is the duty officer who wrote it."""
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                     "--param", "location=六和社区幸福里3栋", "--param", "grade=重大")
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout)
    clock = ManualClock(datetime.now(UTC) + timedelta(seconds=1))
    rt = build_runtime(Settings(data_dir=tmp_path, _env_file=None),  # type: ignore[call-arg]
                       clock=clock)
    try:
        walk_to_the_end(rt, clock, run_id, "重大")
        with read_session(rt.db) as session:
            bodies = [d.body for d in session.exec(select(Document)).all()]
            bodies += [f"{n.title}\n{n.body}" for n in session.exec(select(Notification)).all()]
        assert len(bodies) > 5
        assert not [b for b in bodies if re.search(r"\bcli\b|运维命令行", b)]
        reporters = {line for b in bodies for line in b.splitlines()
                     if line.startswith("报告人：")}
        assert reporters, "no report names its 报告人"
        names = {p.name for p in rt.org.people.values()}
        for line in reporters:
            assert set(line.removeprefix("报告人：").split("、")) <= names, line
    finally:
        rt.db.dispose()


def test_a_register_playbook_without_as_asks_who_found_the_hazard(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "hazard-3030", "--unit", "liuhe",
                     "--param", "location=六和社区某厂房")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "error: --as: 登记台账的流程要记录发现人：请用 --as 人员ID 指定启动人，或用 --param "
        "found_by=姓名 / a register playbook records who found the hazard: give --as "
        "PERSON_ID or --param found_by=NAME")
    assert all_runs(tmp_path) == []
    named = closeloop(tmp_path, "start", "hazard-3030", "--unit", "liuhe",
                      "--param", "location=六和社区某厂房", "--param", "found_by=张三")
    assert named.returncode == 0, named.stderr
    rt = runtime_on(tmp_path)
    try:
        assert run_row(rt, int(named.stdout)).started_by == CONSOLE
        with read_session(rt.db) as session:
            hazard = session.exec(select(Hazard).where(
                Hazard.run_id == int(named.stdout))).one()
        assert hazard.found_by == "张三"
    finally:
        rt.db.dispose()


def test_start_without_as_refuses_when_cli_is_someones_id(tmp_path: Path) -> None:
    org = tmp_path / "org.yaml"
    text = DEMO_ORG.read_text(encoding="utf-8")
    assert text.count("{id: liuhe-grid,") == 1
    org.write_text(text.replace("{id: liuhe-grid,", "{id: cli,"), encoding="utf-8")
    done = closeloop(tmp_path / "data", "start", "gas-leak", "--unit", "liuhe",
                     "--param", "location=x", CLOSELOOP_ORG=str(org))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: --as: 组织架构中有人员 ID 为 cli，无法与运维命令行区分")
    assert len(done.stderr.strip().splitlines()) == 1


# --- with --as: that person, if they may ------------------------------------------------------

def test_start_as_a_commander_records_them_and_says_nothing_more(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "wang-qiang",
                     "--param", "location=六和社区")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    rt = runtime_on(tmp_path)
    try:
        run_id = int(done.stdout)
        assert run_row(rt, run_id).started_by == "wang-qiang"
        assert [e.actor for e in run_events(rt, run_id, "run_started")] == ["wang-qiang"]
    finally:
        rt.db.dispose()


def test_start_as_someone_without_the_right_is_refused_naming_them(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "liuhe-grid",
                     "--param", "location=六和社区")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    # The API's refusal (whom to call), after the person it is about.
    assert lines[0].startswith("error: --as liuhe-grid: 需要指挥长（commander）")
    assert "/ requires role 'commander' in unit 'liuhe' or above" in lines[0]
    assert all_runs(tmp_path) == []


@pytest.mark.parametrize("unit", ["heping", "pingshan"])
def test_start_as_a_commander_of_another_unit_is_refused(tmp_path: Path, unit: str) -> None:
    """The street's commander directs its own communities, not a sibling street's, nor the
    district above it."""
    street = "maluan-commander"
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", unit, "--as", street,
                     "--param", "location=x")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: --as {street}: 需要指挥长（commander）")
    assert all_runs(tmp_path) == []
