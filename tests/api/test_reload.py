"""Reading the org chart, the playbooks and the calendar again without a restart
(POST /api/admin/reload; flows/reload.py): a shift swapped in the roster, a new playbook
version, a broken file refused with every mistake at file:line:col and nothing changed. On a
copy of the shipped playbooks and the demo district, edited the way an operator edits them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from fastapi.testclient import TestClient
from sqlmodel import select

from flows.runtime import Runtime
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session

ADMIN = "pingshan-admin"
COMMANDER = "wang-qiang"
ROSTER_FROM = "    from: 2026-01-01\n"
LEAK = {"playbook": "gas-leak", "unit": "liuhe",
        "params": {"location": "六和社区幸福里小区3栋", "grade": "一般"}}


@pytest.fixture
def rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    books = tmp_path / "books"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    org = tmp_path / "org.yaml"
    shutil.copy(DEMO_ORG, org)
    runtime = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=org,
                           settings={"calendar": books / "calendar" / "cn-workdays.yaml"})
    assert runtime.catalog.errors == []
    yield runtime
    runtime.db.dispose()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def on_duty(client: TestClient, auth) -> list[tuple[str, bool]]:
    me = client.get("/api/me", headers=auth(COMMANDER)).json()
    return [(s["person_name"], s["swapped"]) for s in me["on_duty"]]


def reload(client: TestClient, auth, who: str = ADMIN):
    return client.post("/api/admin/reload", headers=auth(who))


def test_a_shift_swapped_in_the_roster_takes_effect_without_a_restart(
        rt: Runtime, client: TestClient, auth) -> None:
    # 03-02 09:00 on the tests' clock: 黄磊's shift. He falls ill; 郑涛 takes it.
    assert on_duty(client, auth) == [("黄磊", False)]
    edit(rt.settings.org_path, ROSTER_FROM,
         ROSTER_FROM + "    swaps: {2026-03-02: pingshan-duty-3}\n")
    r = reload(client, auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] is True and body["playbooks"] == {}
    assert body["org"]["rosters_changed"] == ["pingshan/duty_officer"]
    assert body["org"]["people_changed"] == [] and body["calendar"]["changed"] is False
    assert on_duty(client, auth) == [("郑涛", True)]
    # In the audit trail: who reloaded, and what changed.
    with read_session(rt.db) as session:
        [event] = session.exec(select(AuditEvent).where(
            AuditEvent.action == "setup_reloaded")).all()
    assert event.actor == ADMIN and event.run_id is None
    assert event.detail["summary"] == "组织架构：值班表变更 pingshan/duty_officer"


def test_a_new_playbook_version_serves_new_runs_and_the_old_runs_keep_theirs(
        rt: Runtime, client: TestClient, auth) -> None:
    headers = auth(COMMANDER)
    before = client.post("/api/runs", headers=headers, json=LEAK).json()
    books = rt.settings.playbooks
    edit(books / "gas-leak.yaml", "\nversion: 2\n", "\nversion: 3\n")
    edit(books / "gas-leak.yaml", "    title: 接收燃气泄漏警情\n",
         "    title: 接收燃气泄漏警情并登记\n")
    r = reload(client, auth)
    assert r.status_code == 200, r.text
    assert r.json()["playbooks"] == {"gas-leak": "v2 → v3"}
    after = client.post("/api/runs", headers=headers, json=LEAK).json()
    assert (before["playbook_version"], after["playbook_version"]) == (2, 3)
    titles = {run["id"]: next(s["title"] for s in client.get(
        f"/api/runs/{run['id']}", headers=headers).json()["steps"] if s["step"] == "receive")
        for run in (before, after)}
    assert titles == {before["id"]: "接收燃气泄漏警情", after["id"]: "接收燃气泄漏警情并登记"}


def test_a_mistake_in_any_file_changes_nothing_and_names_it_at_its_line(
        rt: Runtime, client: TestClient, auth) -> None:
    org_path, books = rt.settings.org_path, rt.settings.playbooks
    org, catalog, calendar = rt.org, rt.catalog, rt.calendar

    def unchanged() -> None:
        assert (rt.org, rt.catalog, rt.calendar) == (org, catalog, calendar)
        assert on_duty(client, auth) == [("黄磊", False)]
        with read_session(rt.db) as session:
            assert session.exec(select(AuditEvent).where(
                AuditEvent.action == "setup_reloaded")).all() == []

    # The roster swapped (right), an unquoted change time (wrong: YAML reads 8:30 as 510),
    # and a playbook step needing a step that does not exist.
    edit(org_path, ROSTER_FROM, ROSTER_FROM + "    swaps: {2026-03-02: pingshan-duty-3}\n")
    edit(org_path, '    change_at: "08:30"\n', "    change_at: 8:30\n")
    edit(books / "gas-leak.yaml", "    needs: [summon, verify]\n", "    needs: [summon, verfy]\n")
    r = reload(client, auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "setup_invalid"
    # The org chart first: the playbooks are checked against the chart they would run on.
    [wrong] = r.json()["errors"]
    assert Path(wrong["file"]).name == "org.yaml" and wrong["line"] > 1
    assert wrong["path"] == "rosters[0].change_at" and "510" in wrong["message"]
    unchanged()
    # The time quoted: now the playbook's mistake, at its line; still nothing changed.
    edit(org_path, "    change_at: 8:30\n", '    change_at: "08:30"\n')
    r = reload(client, auth)
    assert r.status_code == 422, r.text
    [wrong] = r.json()["errors"]
    assert Path(wrong["file"]).name == "gas-leak.yaml" and "verfy" in wrong["message"]
    assert wrong["text"].startswith(f"{wrong['file']}:{wrong['line']}:{wrong['col']}: ")
    unchanged()
    # Both mended: the swap is in force.
    edit(books / "gas-leak.yaml", "    needs: [summon, verfy]\n", "    needs: [summon, verify]\n")
    assert reload(client, auth).status_code == 200
    assert on_duty(client, auth) == [("郑涛", True)]


def test_a_role_the_new_org_chart_drops_is_caught_in_the_playbooks_that_use_it(
        rt: Runtime, client: TestClient, auth) -> None:
    """The chart is valid on its own; the playbooks checked against it are not."""
    edit(rt.settings.org_path, "roles: [deputy_director, duty_leader]",
         "roles: [deputy_director]")
    r = reload(client, auth)
    assert r.status_code == 422, r.text
    messages = [e for e in r.json()["errors"] if "duty_leader" in e["message"]]
    assert messages and all(Path(e["file"]).suffix == ".yaml" for e in messages)
    assert "duty_leader" in rt.org.roles


def test_a_broken_calendar_changes_nothing(rt: Runtime, client: TestClient, auth) -> None:
    calendar = rt.calendar
    edit(rt.settings.calendar_path, "{name: 元旦, from: 2024-01-01, to: 2024-01-01}",
         "{name: 元旦, from: 2024-01-01, to: 2024-02-30}")
    r = reload(client, auth)
    assert r.status_code == 422 and rt.calendar is calendar
    assert [Path(e["file"]).name for e in r.json()["errors"]] == ["cn-workdays.yaml"]


def test_next_years_holidays_are_read(rt: Runtime, client: TestClient, auth) -> None:
    years = list(rt.calendar.years)
    nxt = years[-1] + 1
    with rt.settings.calendar_path.open("a", encoding="utf-8") as f:
        f.write(f"  {nxt}:\n    holidays:\n      - {{name: 元旦, from: {nxt}-01-01, "
                f"to: {nxt}-01-01}}\n")
    r = reload(client, auth)
    assert r.status_code == 200, r.text
    assert r.json()["calendar"] == {"changed": True, "years": [*years, nxt]}
    assert rt.calendar.years[-1] == nxt


def test_nothing_edited_is_nothing_changed(rt: Runtime, client: TestClient, auth) -> None:
    r = reload(client, auth)
    assert r.status_code == 200 and r.json()["changed"] is False


def test_a_role_spelt_like_a_used_one_reloads_with_a_warning(
        rt: Runtime, client: TestClient, auth) -> None:
    text = rt.settings.org_path.read_text(encoding="utf-8")
    rt.settings.org_path.write_text(text.replace("roles: [inspector], notify: []}",
                                                 "roles: [inspecter], notify: []}", 1),
                                    encoding="utf-8")
    r = reload(client, auth)
    assert r.status_code == 200, r.text
    [warning] = r.json()["warnings"]
    assert "警告：角色 inspecter 没有流程使用，疑为 inspector 之误" in warning
    assert warning.startswith(f"{rt.settings.org_path}:")
    assert "inspecter" in rt.org.roles  # loaded all the same: a warning, not a refusal


def test_only_the_admin_reloads(rt: Runtime, client: TestClient, auth) -> None:
    org = rt.org
    r = reload(client, auth, COMMANDER)
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert rt.org is org
    assert client.post("/api/admin/reload").status_code == 401
