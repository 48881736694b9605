"""A report or alert that does not reach an office is not left to a log line: the run's timeline
says `delivery_failed`, the people who answer for getting it through are told in the in-app inbox
(at the first failure and when it is given up), and /healthz says `degraded` with the count.

Who answers (flows/notify.py `_answerable`): for an automatic step's message, whoever did the
work it carries (the duty officer who wrote the first report, the section chief who listed the
hazard whose notice is served); for a person's task, its supervising office (the street's
安全生产办公室 for a hazard's 督办函); always the starter when a person; else the commanders over
the run's unit. The shipped playbooks run on the demo district with its targets down."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, step_row
from fastapi.testclient import TestClient
from gas_leak_walk import finish
from sqlmodel import col, select

from flows import lifecycle, tasks
from flows.notify import MAX_ATTEMPTS, backoff, deliver_due
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.outbox import Notification

Auth = Callable[[str], dict[str, str]]


def refused_url() -> str:
    """A json:// URL on a local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://127.0.0.1:{port}/duty"


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    return make_rt(channel_url=refused_url())  # the duty office's receiver is down


def test_an_alert_that_reaches_no_office_is_told_and_shown(
    client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
) -> None:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    assert client.get("/healthz").json()["status"] == "ok"
    clock.advance(timedelta(seconds=3))  # overdue: level 1 goes to the duty channel
    sweep_once(rt)
    assert deliver_due(rt.db, clock=clock).failed == 1
    health = client.get("/healthz").json()
    assert health["status"] == "degraded" and health["outbox"] == {"failing": 1,
                                                                   "given_up_24h": 0}
    inbox = client.get("/api/inbox", headers=auth("s1-commander")).json()["data"]
    told = [n for n in inbox if n["title"].startswith("【送达失败】")]
    body = told[0]["body"]
    assert len(told) == 1
    assert body.startswith("快速升级演示·一社区3号楼：「接警登记」发往通道 duty 的消息")
    assert "电话" in body and body.endswith("Connection refused\")))）")  # the cause, kept
    timeline = client.get(f"/api/runs/{run.id}", headers=auth("s1-commander")).json()
    failed = [e for e in timeline["timeline"] if e["action"] == "delivery_failed"]
    assert len(failed) == 1 and failed[0]["detail"]["given_up"] is False
    for n in range(1, MAX_ATTEMPTS):  # retried until given up: told once more, then
        clock.advance(backoff(n))
        deliver_due(rt.db, clock=clock)
    inbox = client.get("/api/inbox", headers=auth("s1-commander")).json()["data"]
    assert sum(n["title"].startswith("【送达失败】") for n in inbox) == 2
    assert client.get("/healthz").json()["outbox"] == {"failing": 0, "given_up_24h": 1}


def test_a_given_up_delivery_is_sent_again_by_the_runs_commander(
    client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
) -> None:
    # The duty office's gateway down all night: given up after an hour. Fixed in the morning,
    # the commander sends it again; the timeline says who did.
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    clock.advance(timedelta(seconds=3))
    sweep_once(rt)
    deliver_due(rt.db, clock=clock)
    for n in range(1, MAX_ATTEMPTS):
        clock.advance(backoff(n))
        deliver_due(rt.db, clock=clock)
    notes = client.get(f"/api/runs/{run.id}/notifications", headers=auth("s1-commander"))
    [dead] = [n for n in notes.json()["data"] if n["status"] == "dead"]
    url = f"/api/notifications/{dead['id']}/resend"
    assert client.post(url, headers=auth("c1-grid")).status_code == 403
    assert client.post(url, headers=auth("s2-commander")).status_code == 403
    again = client.post(url, headers=auth("s1-commander"))
    assert again.status_code == 200 and again.json()["status"] == "pending", again.text
    refused = client.post(url, headers=auth("s1-commander"))  # not given up any more
    assert refused.status_code == 409, refused.text
    with read_session(rt.db) as session:
        row = session.get(Notification, dead["id"])
        assert row is not None and row.attempts == 0 and row.next_attempt_at == clock.now()
    assert deliver_due(rt.db, clock=clock).failed == 1  # tried at once (still down here)
    # Failing again is told again (before, the second first-failure notice broke the outbox).
    inbox = client.get("/api/inbox", headers=auth("s1-commander")).json()["data"]
    assert sum(n["title"].startswith("【送达失败】") for n in inbox) == 3
    timeline = client.get(f"/api/runs/{run.id}", headers=auth("s1-commander")).json()
    [resent] = [e for e in timeline["timeline"] if e["action"] == "delivery_resent"]
    assert resent["actor"] == "s1-commander" and resent["detail"]["recipient"] == "duty"
    assert client.post("/api/notifications/999999/resend",
                       headers=auth("s1-commander")).status_code == 404


def test_a_run_no_person_started_tells_the_commanders_over_its_unit(
    client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
) -> None:
    # `closeloop start` without --as records the operator console (`cli`), nobody's inbox.
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="cli",
                              check_rights=False)
    clock.advance(timedelta(seconds=3))
    sweep_once(rt)
    assert deliver_due(rt.db, clock=clock, org=rt.org, catalog=rt.catalog).failed == 1
    # The commander role resolved at the run's unit: the street's, the nearest one.
    inbox = client.get("/api/inbox", headers=auth("s1-commander")).json()["data"]
    told = [n for n in inbox if n["title"].startswith("【送达失败】")]
    assert len(told) == 1 and told[0]["run_id"] == run.id
    assert client.get("/api/inbox", headers=auth("s2-commander")).json()["count"] == 0


# -- the shipped playbooks on the demo district, its targets down ------------------------------

CHIEF = "pingshan-street-chief"  # 赵丽娟, 坪山街道安全生产办公室主任: the hazards' 督办单位
FINDER = "liuhe-grid"  # 熊淑芬, grid worker of 六和社区: registers what she finds
UNIT_HEAD = "liuhe-head"  # 贾丽萍, head of 六和社区: served the notice and the 督办函
DUTY = "pingshan-duty-1"  # 黄磊, the district duty room's officer: writes the first report
STREET_COMMANDER = "pingshan-street-commander"  # 胡红霞


@pytest.fixture
def demo_down(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    """The demo district with the offices' receivers and 贾丽萍's own address down; the leaders'
    shared screen is left out (inbox only), so only the failures under test happen."""
    text = DEMO_ORG.read_text(encoding="utf-8")
    head = ("{id: liuhe-head, name: 贾丽萍, title: 社区党委书记、居委会主任, "
            "roles: [community_head], ")
    replaced = (text.replace('"json://127.0.0.1:8000/api/receiver/leaders"', "")
                .replace('"json://127.0.0.1:8000/api/receiver/county-duty"', f'"{refused_url()}"')
                .replace('"json://127.0.0.1:8000/api/receiver/district-duty"',
                         f'"{refused_url()}"')
                .replace('"json://127.0.0.1:8000/api/receiver/forest-fire"', f'"{refused_url()}"')
                .replace(head + "notify: []}", head + f'notify: ["{refused_url()}"]}}'))
    assert "127.0.0.1:8000" not in replaced and replaced.count("json://") == 4
    rt = make_runtime(tmp_path / "down", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_text=replaced)
    assert rt.catalog.errors == []
    yield rt
    rt.db.dispose()


def told(rt: Runtime, run_id: int) -> list[Notification]:
    """The 【送达失败】 notes of a run, oldest first."""
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "undelivered",
        ).order_by(col(Notification.id))).all())


def register_hazard(rt: Runtime, grade: str) -> int:
    run = lifecycle.start_run(rt, playbook_id="hazard-3030", unit_id="liuhe", actor=FINDER,
                              params={"location": "六和社区和平路18号富达五金厂",
                                      "grade": grade})
    drain_wakes(rt)
    return run.id or 0


def test_a_served_notice_that_fails_tells_the_chief_who_listed_the_hazard(
    demo_down: Runtime, clock: ManualClock
) -> None:
    rt = demo_down
    run_id = register_hazard(rt, "重大")
    listing = step_row(rt, run_id, "list")
    assert listing.assignees == [CHIEF]
    tasks.complete(rt, step_id=listing.id or 0, actor=CHIEF, note="核实无误，挂牌督办",
                   outputs={"responsible_person": "贾丽萍"})
    drain_wakes(rt)  # the notice is filed and served: 贾丽萍's own address is down
    assert deliver_due(rt.db, clock=clock, org=rt.org, catalog=rt.catalog).failed == 1
    notes = told(rt, run_id)
    # The section chief serves it; the grid worker who found the hazard has no letter to
    # chase; nobody is told about herself.
    assert [n.recipient for n in notes] == [CHIEF]
    body = notes[0].body
    assert body.startswith("隐患排查整治闭环销号·六和社区和平路18号富达五金厂："
                           "「送达挂牌督办通知书」发往贾丽萍的消息发送失败，系统正在重试。"
                           "请立即改用电话等方式通知贾丽萍")
    assert "liuhe-head" not in body
    error = body[body.index("（技术信息："):]  # last, in brackets, cut short
    assert error.startswith("（技术信息：A Connection error") and len(error) <= 130


@pytest.mark.parametrize(("grade", "key", "late"), [
    # Registered Monday 2 March 09:00: 30 whole days end on 1 April at 24:00, 30 days 15 hours
    # on. Its own supervising role decides.
    ("一般", "rectify", timedelta(days=30, hours=15, minutes=1)),
    ("重大", "interim", timedelta(days=1, minutes=1)),  # the 督办单位 the playbook names
])
def test_a_late_letter_that_fails_tells_the_supervising_office(
    demo_down: Runtime, clock: ManualClock, grade: str, key: str, late: timedelta
) -> None:
    rt = demo_down
    run_id = register_hazard(rt, grade)
    assert step_row(rt, run_id, key).status == "ready"
    assert step_row(rt, run_id, key).due_at == clock.now() + late - timedelta(minutes=1)
    clock.advance(late)
    sweep_once(rt)  # the step's 督办函 goes to 贾丽萍, whose address is down
    assert deliver_due(rt.db, clock=clock, org=rt.org, catalog=rt.catalog).failed == 1
    notes = told(rt, run_id)
    assert [n.recipient for n in notes] == [CHIEF]  # not the finder: the office chases it
    assert all("督办函" in n.title and "发往贾丽萍的消息" in n.body for n in notes)


def test_a_console_started_first_report_that_fails_tells_the_officer_who_wrote_it(
    demo_down: Runtime, clock: ManualClock
) -> None:
    rt = demo_down
    run = lifecycle.start_run(rt, playbook_id="gas-leak", unit_id="liuhe", actor="cli",
                              params={"location": "六和社区幸福里小区3栋1单元"},
                              check_rights=False)
    run_id = run.id or 0
    finish(rt, run_id, "receive")
    assert finish(rt, run_id, "report.write").submitted_by == DUTY  # 黄磊, at the district
    drain_wakes(rt)  # the first report goes to both offices: neither receiver is up
    assert deliver_due(rt.db, clock=clock, org=rt.org, catalog=rt.catalog).failed == 2
    notes = told(rt, run_id)
    # The duty officer who wrote it, once per office; not the street's commander.
    assert [n.recipient for n in notes] == [DUTY, DUTY]
    assert sorted(n.body.split("发往")[1].split("的消息")[0] for n in notes) == [
        "通道 county_duty_office ", "通道 district_duty_room "]
    assert all(n.body.startswith("燃气泄漏模块化应急处置·六和社区幸福里小区3栋1单元：「报送首报」")
               and "请立即改用电话等方式报送" in n.body for n in notes)
    for n in range(1, MAX_ATTEMPTS):  # given up: told once more per office, and no more
        clock.advance(backoff(n))
        deliver_due(rt.db, clock=clock, org=rt.org, catalog=rt.catalog)
    notes = told(rt, run_id)
    assert [n.recipient for n in notes] == [DUTY] * 4
    assert sum("已停止重试（共 8 次）" in n.body for n in notes) == 2
    assert STREET_COMMANDER not in {n.recipient for n in notes}


def test_a_console_started_alert_that_fails_tells_the_commander_where_the_step_is_held(
    tmp_path: Path, clock: ManualClock
) -> None:
    # 黄磊's own address is down: the chase of the leak's first step does not reach him.
    # Nobody's work is behind that message and no person started the run (the console), so
    # the commander is told: the district's (王强), where the duty room's step is held, not
    # the street's, who can do nothing in the district duty room.
    line = "{id: pingshan-duty-1, name: 黄磊, name_en: Huang Lei, title: 值班员, " \
        "roles: [duty_officer], notify: []}"
    text = DEMO_ORG.read_text(encoding="utf-8")
    assert line in text
    rt = make_runtime(tmp_path / "down", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_text=text.replace(line, line.replace(
                          "notify: []", f'notify: ["{refused_url()}"]')))
    try:
        run = lifecycle.start_run(rt, playbook_id="gas-leak", unit_id="liuhe", actor="cli",
                                  params={"location": "六和社区幸福里小区3栋1单元"},
                                  check_rights=False)
        clock.advance(timedelta(minutes=2))  # not acknowledged within 1 minute: 【未签收】
        sweep_once(rt)
        assert deliver_due(rt.db, clock=clock, org=rt.org, catalog=rt.catalog).failed >= 1
        assert {n.recipient for n in told(rt, run.id or 0)} == {"wang-qiang"}
    finally:
        rt.db.dispose()
