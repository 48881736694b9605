"""The reports the shipped gas-leak playbook sends up (playbooks/gas-leak.yaml on the demo district
坪山区): the 终报 when a response ends, to the offices the 首报 went to, delivered through real
Apprise to a local HTTP receiver; its Order 493 §12 contents with the final figures, the close
summary, the times and who signed it; the measures every report lists (people's tasks only,
in finishing order to the microsecond, then playbook order); who a report names as its
author; and no English subtitle under the Chinese title of a report sent upward.
Segments run bare (drain_wakes); the clock is a ManualClock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import gas_leak_walk
from gas_leak_walk import LOCATION, start, steps
from receivers import HttpReceiver
from sqlmodel import select

from flows.notify import deliver_due
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.outbox import Notification
from models.run import Run

DUTY_OFFICER = "黄磊"  # pingshan-duty-1, the district duty room: receives, writes, closes
DUTY_LEADER = "刘洋"  # liu-yang: judges, verifies the close (signs the 终报)
GRID_WORKER = "熊淑芬"  # liuhe-grid: verifies on site

# Where the first report goes (gas-leak.yaml, module first-report `to`): the 终报 too.
OFFICES = {"county_duty_office", "district_duty_room"}
ORDER_493_HEADINGS = ["事发单位", "发生时间", "发生地点", "简要经过", "伤亡", "下落不明",
                      "直接经济损失", "已经采取的措施"]
# The reports sent upward, by the step that files or sends each (major grade: all of them).
REPORT_STEPS = ["report.document", "report.send", "verbal-points", "system-report-send",
                "follow-up-send", "close-send"]

FACTS: dict[str, Any] = gas_leak_walk.FACTS | {
    "summary": "关阀断气后检测合格，立管接口已更换并恢复供气，疏散群众全部返回，无次生事故",
    "cause": "立管接口密封圈老化",
}


# --- helpers ---------------------------------------------------------------------------------
# Starting, completing and walking a run are tests/gas_leak_walk.py's; here they fill in the
# close summary and the cause too, which the 终报 quotes.

finish = partial(gas_leak_walk.finish, facts=FACTS)
walk_to_the_end = partial(gas_leak_walk.walk_to_the_end, facts=FACTS)


def sent(rt: Runtime, run_id: int, key: str) -> list[Notification]:
    """The outbox rows step `key` (a notify step) wrote."""
    step_id = steps(rt, run_id)[key].id
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.step_id == step_id)).all())


def filed(rt: Runtime, run_id: int, key: str) -> str:
    """The body of the document step `key` filed."""
    step_id = steps(rt, run_id)[key].id
    with read_session(rt.db) as session:
        return session.exec(select(Document).where(Document.step_id == step_id)).one().body


def report(rt: Runtime, run_id: int, key: str) -> str:
    """The report a step filed (document) or sent to the county duty office (notify)."""
    if steps(rt, run_id)[key].action == "document":
        return filed(rt, run_id, key)
    [to_county] = [n for n in sent(rt, run_id, key) if n.recipient == "county_duty_office"]
    return to_county.body


def measures(body: str) -> list[str]:
    """The step lines ("- 标题（完成人，时间）") a report lists as measures taken / progress."""
    return [m.group(1) for m in re.finditer(r"^\s*- (.+?)（[^（）]*\d\d:\d\d）$", body, re.M)]


def local(rt: Runtime, at: datetime | None) -> str:
    return rt.renderer.local(at)


# --- the final report (终报) -------------------------------------------------------------------

def test_final_report_goes_to_the_first_reports_offices_when_the_response_ends(
    wired: Runtime, clock: ManualClock, receiver: HttpReceiver
) -> None:
    started = clock.now()
    run_id = start(wired, "一般")
    walk_to_the_end(wired, clock, run_id, "一般")
    keyed = steps(wired, run_id)
    close, close_send = keyed["close"], keyed["close-send"]
    # Sent by the engine once the duty leader verified the close, and the run ended with it.
    assert close_send.action == "notify" and close_send.status == "done"
    assert close.done_at is not None and close_send.done_at is not None
    assert close.done_at <= close_send.done_at
    with read_session(wired.db) as session:
        run = session.get(Run, run_id)
        assert run is not None
    assert run.status == "completed" and run.finished_at == close_send.done_at
    # The same offices as the first report, each sent exactly one 终报.
    first = {n.recipient for n in sent(wired, run_id, "report.send")}
    final = sent(wired, run_id, "close-send")
    assert first == OFFICES and sorted(n.recipient for n in final) == sorted(OFFICES)
    assert {n.title for n in final} == {f"【报送终报】{run.title}"}

    # Delivered through real Apprise to both duty offices' endpoints.
    delivery = deliver_due(wired.db, clock=clock, limit=1000)
    assert delivery.failed == 0 and delivery.dead == 0
    got = {m.path: m.json for m in receiver.wait_for(delivery.delivered)
           if m.json["title"] == f"【报送终报】{run.title}"}
    assert set(got) == {"/api/receiver/county-duty", "/api/receiver/district-duty"}
    body = got["/api/receiver/county-duty"]["message"]
    assert got["/api/receiver/district-duty"]["message"] == body

    assert body.startswith("# 突发事件终报\n")
    for heading in ORDER_493_HEADINGS:
        assert heading in body, heading
    for fact in ("enterprise", "occurred_at", "scene", "brief", "measures", "summary", "cause"):
        assert FACTS[fact] in body, fact
    assert f"发生地点：{LOCATION}（六和社区）" in body
    assert "初步估计 0.5 万元" in body
    # The times from the alert to the end: alert, first report sent, close verified.
    assert f"**接报时间**：{local(wired, started)}" in body
    assert f"**首报时间**：{local(wired, keyed['report.send'].done_at)}" in body
    assert f"**处置终结时间**：{local(wired, close.done_at)}" in body
    # Written by the duty officer who closed it, signed by the duty leader who verified it.
    assert f"填报人：{DUTY_OFFICER}" in body and f"签发人：{DUTY_LEADER}" in body
    assert "None" not in body and "待核实" not in body


def test_final_report_gives_the_final_figures_the_steps_recorded(
    demo: Runtime, clock: ManualClock
) -> None:
    """Alerted with no casualties; the grid worker finds 3 hurt and 1 missing, the hospital
    admits 2 and 1 dies. The 终报 carries those figures, not the alert's; a loss nobody
    estimated is said to be reported later, not printed as None or 0."""
    run_id = start(demo, "一般", casualties=0, missing=0)
    walk_to_the_end(demo, clock, run_id, "一般", given={
        "report.write": {"casualties": None, "missing": None, "est_loss": None},
        "verify": {"casualties": 3, "missing": 1},
        "medical": {"deaths": 1, "injured": 2},
        "evacuate": {"evacuated": 46, "shelter": "六和社区党群服务中心"},
    })
    keyed = steps(demo, run_id)
    assert keyed["medical"].status == "done"  # reached because the on-site count was not 0
    body = report(demo, run_id, "close-send")
    figures = body.split("## 五、")[1].split("## 七、")[0]
    assert "- 死亡 1 人、受伤 2 人\n" in figures
    assert "- 下落不明 1 人\n" in figures
    assert "- 疏散群众 46 人，安置于六和社区党群服务中心\n" in figures
    assert "尚无估计数，核定后按规定补报" in figures
    assert "None" not in body and "待核实" not in body


# --- what a report lists as measures taken ---------------------------------------------------

def test_reports_list_only_peoples_tasks_as_measures(demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, "重大")
    walk_to_the_end(demo, clock, run_id, "重大")
    keyed = steps(demo, run_id)
    engine_titles = {s.title for s in keyed.values() if s.action not in ("task", "")}
    assert {"生成首报文书", "报送首报", "下达调派令", "报送系统首报"} <= engine_titles
    titles = {s.title: s for s in keyed.values()}
    for key in REPORT_STEPS:
        listed = measures(report(demo, run_id, key))
        assert listed, key
        assert not set(listed) & engine_titles, (key, set(listed) & engine_titles)
        assert all(titles[t].action == "task" and titles[t].status == "done"
                   for t in listed), (key, listed)
    # A report does not list its own writing: the system report is not a measure of itself.
    assert "1小时系统首报" not in measures(report(demo, run_id, "system-report-send"))
    assert "续报事件处置进展" not in measures(report(demo, run_id, "follow-up-send"))
    assert "撰写突发事件首报" not in measures(report(demo, run_id, "report.send"))
    # The 终报 lists every task people did, once each, but its own close (that is section 八).
    done_tasks = [s.title for s in keyed.values() if s.action == "task" and s.status == "done"
                  and s.step_key != "close"]
    assert sorted(measures(report(demo, run_id, "close-send"))) == sorted(done_tasks)
    assert "报告单位：坪山区应急管理局总值班室" in report(demo, run_id, "close-send")


def test_steps_finished_in_the_same_minute_are_listed_by_time_then_playbook_order(
    demo: Runtime, clock: ManualClock
) -> None:
    t0 = clock.now()  # 09:00:00
    run_id = start(demo, "一般")
    clock.set(t0 + timedelta(seconds=10))
    finish(demo, run_id, "receive")
    drain_wakes(demo)
    # All within 09:01, against both the playbook order and the order of the step keys:
    clock.set(t0 + timedelta(minutes=1, seconds=5))
    finish(demo, run_id, "cordon")
    clock.set(t0 + timedelta(minutes=1, seconds=20))
    finish(demo, run_id, "verify")
    clock.set(t0 + timedelta(minutes=1, seconds=30))
    finish(demo, run_id, "assess")  # at the same instant as the rescue dispatch ...
    finish(demo, run_id, "rescue.dispatch")  # ... which comes first in the playbook
    drain_wakes(demo)
    clock.set(t0 + timedelta(minutes=1, seconds=50))
    finish(demo, run_id, "report.write")
    drain_wakes(demo)
    # (Not 撰写突发事件首报: that is the report itself, not a measure it reports.)
    expected = ["接收燃气泄漏警情", "设置警戒区、禁绝火源", "网格员现场核实", "调派救援队伍",
                "初步研判事件等级和影响范围"]
    for key in ("report.document", "report.send"):
        assert measures(report(demo, run_id, key)) == expected, key
    keyed = steps(demo, run_id)
    assert {local(demo, keyed[k].done_at) for k in ("cordon", "verify", "assess", "report.write",
                                                    "rescue.dispatch")} == {"2026-03-02 09:01"}


# --- who a report names ----------------------------------------------------------------------

def test_first_report_names_its_writer_though_others_finish_steps_meanwhile(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "一般")
    finish(demo, run_id, "receive")
    drain_wakes(demo)
    clock.advance(timedelta(minutes=1))
    finish(demo, run_id, "report.write")  # the duty officer writes the first report ...
    clock.advance(timedelta(seconds=5))
    finish(demo, run_id, "verify")  # ... the grid worker reports in before it is sent
    drain_wakes(demo)
    for key in ("report.document", "report.send"):
        body = report(demo, run_id, key)
        assert f"报告人：{DUTY_OFFICER}" in body, key
        assert GRID_WORKER not in body.split("---")[-1], key


# --- no English under the Chinese title -------------------------------------------------------

def test_reports_sent_upward_carry_no_english_subtitle(demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, "重大")
    walk_to_the_end(demo, clock, run_id, "重大")
    for key in REPORT_STEPS:
        body = report(demo, run_id, key)
        lines = body.splitlines()
        assert lines[0].startswith("# "), (key, lines[0])
        assert not any(re.fullmatch(r"_.*_", line) for line in lines), key
        # Not a word of English anywhere (I级 ... IV级 are the response levels' own names).
        assert re.search(r"[A-Za-z]{3,}", re.sub(r"[IV]+级", "", body)) is None, (key, body)


# --- the grade a report states -----------------------------------------------------------------

def test_a_leak_alerted_as_major_and_judged_general_says_both_grades(
    demo: Runtime, clock: ManualClock
) -> None:
    """Alerted as 重大, judged 一般 by the duty leader: the run keeps the major steps (the
    playbook takes the higher grade), and every report after the judgement says both, so the
    county knows why a 一般 event sends it verbal and system reports."""
    run_id = start(demo, "重大")
    walk_to_the_end(demo, clock, run_id, "重大", given={"assess": {"grade": "一般"}})
    keyed = steps(demo, run_id)
    assert keyed["verbal"].status == "done" and keyed["system-report-send"].status == "done"
    for key in ("system-report-send", "follow-up-send", "close-send"):
        body = report(demo, run_id, key)
        assert re.search(r"等级\**\s*[：|]\s*一般（接报时为重大）", body), (
            key, [line for line in body.splitlines() if "等级" in line])


def test_a_grade_that_never_changed_is_stated_alone(demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, "重大")
    walk_to_the_end(demo, clock, run_id, "重大")
    for key in ("system-report-send", "follow-up-send", "close-send"):
        body = report(demo, run_id, key)
        assert "接报时为" not in body and re.search(r"等级\**\s*[：|]\s*重大", body), (key, body)
