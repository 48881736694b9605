"""The shipped 卫星监测热点1小时核查反馈 playbook (playbooks/hotspot-check.yaml, seeds/002 二(六)四)
on the demo district 坪山区: the duty room takes a satellite hotspot that falls in 江岭社区, the
community's grid worker checks it on site with a photo, and the duty room signs the 核查反馈,
due one hour from the alert, which is filed and sent to the forest-fire office (through real
Apprise to a local receiver); late, each step goes up the chain once per level; a real fire
tells the commander at once and hands the street's rescue team the fire and the community the
watch, then a 火情续报; fire used in the open goes to the community's safety officer.
Real runtime and database, segments run bare, a ManualClock moved, never slept on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import png_bytes, run_steps
from factories import run_row as get_run
from hotspot_case import DUTY_OFFICER, PARAMS, PLAYBOOK
from receivers import HttpReceiver
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.notify import deliver_due
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.errors import InvalidInput
from models.escalation import Escalation
from models.outbox import Notification
from models.task import StepInstance

TITLE = "卫星监测热点核查反馈·马峦山北坡·江岭社区"
CHECK = {"arrived_at": "2026-03-02T09:25:00+08:00", "open_fire": False,
         "scene": "林地旁菜地焚烧秸秆，火堆约2平方米", "measures": "已责令熄灭"}


def start(rt: Runtime, **params: Any) -> int:
    run = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id="jiangling",
                              params=PARAMS | params, actor=DUTY_OFFICER)
    return run.id or 0


def rows(rt: Runtime, run_id: int) -> dict[str, StepInstance]:
    return {r.step_key: r for r in run_steps(rt, run_id)}


def handed_out(keyed: dict[str, StepInstance], *keys: str) -> list[str]:
    """Those of `keys` the run handed out (not passed over by their `when`)."""
    return [k for k in keys if k in keyed and keyed[k].status != "skipped"]


def answer(rt: Runtime, row: StepInstance, **outputs: Any) -> StepInstance:
    """The row's first holder hands it in, with a photo of their own where one is asked."""
    spec = rt.catalog.get(PLAYBOOK).step(row.step_key)
    who = row.assignees[0]
    photos = [store_evidence(rt, data=png_bytes(), filename="现场.png", uploaded_by=who).id
              for _ in range(spec.evidence.photos if spec.evidence else 0)]
    return tasks.complete(rt, step_id=row.id or 0, actor=who, note="已核查",
                          outputs=outputs, evidence=photos)


def at_minute(rt: Runtime, clock: ManualClock, run_started: Any, minute: int) -> None:
    clock.set(run_started + timedelta(minutes=minute))
    sweep_once(rt)
    drain_wakes(rt)


def escalations(rt: Runtime, run_id: int) -> list[tuple[str, int, list[str]]]:
    with read_session(rt.db) as session:
        return [(e.step_key, e.level, e.recipients) for e in session.exec(
            select(Escalation).where(Escalation.run_id == run_id, Escalation.kind == "escalate")
            .order_by(Escalation.id)).all()]  # type: ignore[arg-type]


def notes(rt: Runtime, run_id: int, step_key: str) -> list[Notification]:
    with read_session(rt.db) as session:
        ids = [r.id for r in run_steps(rt, run_id) if r.step_key == step_key]
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.step_id.in_(ids),  # type: ignore[union-attr]
            Notification.kind == "notify").order_by(Notification.id)).all())  # type: ignore[arg-type]


def document(rt: Runtime, run_id: int) -> str:
    with read_session(rt.db) as session:
        return session.exec(select(Document).where(Document.run_id == run_id)).one().body


# --- the playbook ---------------------------------------------------------------------------------

def test_the_playbook_loads_and_a_hotspot_outside_china_is_refused(demo: Runtime) -> None:
    playbook = demo.catalog.get(PLAYBOOK)
    assert playbook.kind == "response" and playbook.title_en
    feedback = playbook.step("feedback")
    assert feedback.due is not None and feedback.due.from_ == "run"
    assert feedback.due.after.seconds() == 3600
    assert feedback.report == "首报"  # late is a 迟报 in the monthly 信息报送考核
    outcomes = playbook.step("verify").outputs["outcome"].values
    assert outcomes == ["真实火情", "农事用火", "祭祀用火", "野外施工用火", "工业热源", "其他热源",
                        "误报"]
    assert "forest_fire_office" in demo.org.channels
    for field, value in (("lat", 91), ("lon", 20.5)):
        with pytest.raises(InvalidInput) as caught:
            start(demo, **{field: value})
        assert caught.value.field == f"params.{field}"
    with pytest.raises(InvalidInput) as caught:
        lifecycle.start_run(demo, playbook_id=PLAYBOOK, unit_id="jiangling",
                            params={k: v for k, v in PARAMS.items() if k != "place"},
                            actor=DUTY_OFFICER)
    assert caught.value.field == "params.place"


# --- on time -------------------------------------------------------------------------------------

def test_a_false_alarm_checked_on_time_is_reported_back_within_the_hour(
        wired: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    started = clock.now()
    run_id = start(wired)
    assert get_run(wired, run_id).title == TITLE
    receive = rows(wired, run_id)["receive"]
    # The district duty room takes it, whichever community it is in.
    assert receive.assignees == ["pingshan-duty-1", "pingshan-duty-2", "pingshan-duty-3"]
    assert receive.due_at == started + timedelta(minutes=5)
    at_minute(wired, clock, started, 2)
    answer(wired, receive, notified="江岭社区网格员谭雪梅")
    drain_wakes(wired)
    verify = rows(wired, run_id)["verify"]
    assert verify.assignees == ["jiangling-grid"]
    assert verify.due_at == started + timedelta(minutes=45)  # from the alert, not the receipt

    at_minute(wired, clock, started, 30)
    answer(wired, verify, outcome="误报", **CHECK | {"scene": "现场为光伏板反光，无火情"})
    drain_wakes(wired)
    keyed = rows(wired, run_id)
    feedback = keyed["feedback"]
    assert feedback.due_at == started + timedelta(hours=1)
    assert not handed_out(keyed, "fire-alert", "suppress", "fire-use")
    at_minute(wired, clock, started, 41)
    answer(wired, feedback, remarks="同意核查结论")
    drain_wakes(wired)
    assert escalations(wired, run_id) == []
    assert get_run(wired, run_id).status == "completed"

    body = document(wired, run_id)
    assert body.startswith("# 卫星监测热点核查反馈单\n")
    for line in ("**热点编号**：FY3D-20260302-017", "**热点来源**：国家卫星气象中心",
                 "**卫星监测时间**：2026-03-02 08:42", "**经纬度**：北纬 22.6531°，东经 114.3702°",
                 "**热点位置**：马峦山北坡（马峦街道江岭社区）", "**接报时间**：2026-03-02 09:00",
                 "- 核查结论：**误报**", "- 核查人员：谭雪梅", "- 到达现场时间：2026-03-02 09:25",
                 "- 现场有明火：否", "- 现场情况：现场为光伏板反光，无火情",
                 "- 反馈时限：2026-03-02 10:00（接报后 1 小时内）",
                 "- 反馈时间：2026-03-02 09:41，按时反馈", "- 值班室审核意见：同意核查结论",
                 "审核人：黄磊", "报送单位：坪山区应急管理局总值班室"):
        assert line in body, line
    assert "扑救情况" not in body and "None" not in body

    # Sent to the forest-fire office, delivered through real Apprise.
    sent = notes(wired, run_id, "feedback-send")
    assert [(n.recipient, n.title) for n in sent] == [
        ("forest_fire_office", f"【报送热点核查反馈】{TITLE}")]
    delivery = deliver_due(wired.db, clock=clock, limit=1000)
    assert delivery.failed == 0 and delivery.dead == 0
    got = [m.json for m in receiver.wait_for(delivery.delivered)
           if m.path == "/api/receiver/forest-fire"]
    assert [m["title"] for m in got] == [f"【报送热点核查反馈】{TITLE}"]
    assert got[0]["message"] == body.rstrip("\n")


# --- late, and a real fire ----------------------------------------------------------------------

def test_a_real_fire_checked_late_goes_up_the_chain_once_and_the_commander_is_told_at_once(
        demo: Runtime, clock: ManualClock) -> None:
    started = clock.now()
    run_id = start(demo)
    at_minute(demo, clock, started, 1)
    answer(demo, rows(demo, run_id)["receive"], notified="江岭社区网格员")
    drain_wakes(demo)
    verify = rows(demo, run_id)["verify"]

    at_minute(demo, clock, started, 45)  # the check is due: the community's and street's heads
    assert escalations(demo, run_id) == [
        ("verify", 1, ["jiangling-head", "maluan-head"])]
    at_minute(demo, clock, started, 50)
    assert len(escalations(demo, run_id)) == 1  # once
    at_minute(demo, clock, started, 55)  # then the street's commander, every 10 minutes
    assert escalations(demo, run_id)[1] == ("verify", 2, ["maluan-commander"])

    at_minute(demo, clock, started, 58)
    answer(demo, verify, outcome="真实火情", **CHECK | {
        "open_fire": True, "scene": "山脚林地有明火，火线约50米", "area": 3.5,
        "measures": "社区扑火队先期处置"})
    drain_wakes(demo)
    keyed = rows(demo, run_id)
    # Told at once, before the feedback is signed: the district's commander and duty leader,
    # and the forest-fire office.
    alert = notes(demo, run_id, "fire-alert")
    assert {n.recipient for n in alert} == {"wang-qiang", "liu-yang", "forest_fire_office"}
    text = next(n.body for n in alert if n.recipient == "forest_fire_office")
    assert text.startswith("# 火情速报：卫星监测热点核查为真实火情")
    for line in ("**热点位置**：马峦山北坡（马峦街道江岭社区）",
                 "**卫星监测时间**：2026-03-02 08:42（国家卫星气象中心，编号 FY3D-20260302-017）",
                 "**核查人员**：谭雪梅，2026-03-02 09:58 报告", "**现场有明火**：是",
                 "**过火面积**：3.5 亩", "**现场情况**：山脚林地有明火，火线约50米"):
        assert line in text, line
    suppress = keyed["suppress"]
    assert suppress.assignees == ["maluan-rescue"] and suppress.status == "ready"
    assert suppress.due_at == clock.now() + timedelta(hours=1)  # 一小时扑救圈
    assert not handed_out(keyed, "fire-use")

    # The feedback is due at the hour whatever the check's lateness: the duty leader, once,
    # then the director every 15 minutes.
    at_minute(demo, clock, started, 60)
    assert escalations(demo, run_id)[-1] == (
        "feedback", 1, ["liu-yang"])
    at_minute(demo, clock, started, 66)
    assert rows(demo, run_id)["feedback"].report_kind == "首报"
    answer(demo, rows(demo, run_id)["feedback"], remarks="真实火情，已报指挥长")
    drain_wakes(demo)
    body = document(demo, run_id)
    assert "- 核查结论：**真实火情**" in body and "- 过火面积：3.5 亩" in body
    assert "- 反馈时间：2026-03-02 10:06，超时反馈" in body
    assert [k for k, _, _ in escalations(demo, run_id)].count("feedback") == 1

    at_minute(demo, clock, started, 100)
    answer(demo, suppress, out_at="2026-03-02T10:35:00+08:00", burned_area=4.2,
           forces="马峦街道专职扑火队12人", cause="村民烧荒引发", casualties=0)
    drain_wakes(demo)
    watch = rows(demo, run_id)["watch"]
    assert watch.assignees == ["jiangling-grid"]
    assert watch.due_at == clock.now() + timedelta(hours=24)
    at_minute(demo, clock, started, 100 + 24 * 60)
    answer(demo, watch, rekindled=False, guards="江岭社区护林员2人")
    drain_wakes(demo)
    report = notes(demo, run_id, "fire-report")
    assert [(n.recipient, n.title) for n in report] == [
        ("forest_fire_office", f"【报送火情续报】{TITLE}")]
    for line in ("## 三、扑救情况", "- 扑救力量：马峦街道专职扑火队12人（",
                 "- 明火扑灭时间：2026-03-02 10:35", "- 过火面积：4.2 亩", "- 伤亡人数：0 人",
                 "- 起火原因（初判）：村民烧荒引发",
                 "- 火场看守：江岭社区护林员2人看守 24 小时，无复燃"):
        assert line in report[0].body, line
    assert get_run(demo, run_id).status == "completed"


def test_fire_used_in_the_open_goes_to_the_communitys_safety_officer(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo)
    answer(demo, rows(demo, run_id)["receive"], notified="江岭社区")
    drain_wakes(demo)
    clock.advance(timedelta(minutes=30))
    answer(demo, rows(demo, run_id)["verify"], outcome="农事用火", **CHECK)
    drain_wakes(demo)
    keyed = rows(demo, run_id)
    assert not handed_out(keyed, "suppress", "fire-alert")
    fire_use = keyed["fire-use"]
    assert fire_use.assignees == ["jiangling-safety"]
    assert fire_use.due_at == clock.now() + timedelta(days=1)
    answer(demo, keyed["feedback"])
    tasks.complete(demo, step_id=fire_use.id or 0, actor="jiangling-safety",
                   note="已责令熄灭并开展防火宣传", outputs={"handled": "已责令熄灭并教育",
                                                            "user": "村民张某"})
    drain_wakes(demo)
    assert get_run(demo, run_id).status == "completed"
    assert "- 核查结论：**农事用火**" in document(demo, run_id)
