"""People a typhoon's transfer left 应转未转 are chased until moved (typhoon-633 version 3's
`transfer-followup`, the engine's `follow_up` with `every` and `until_stage`): a community that
hands in "应转未转 3" is asked an hour after each hand-in how many more were moved and where
to, how many remain and why, each round adding up against the one before, until none is left;
a late round goes to the street head and commander at once. The rounds stop at 解除, the
people never moved stay recorded (the 防御总结 lists them by community), and the return counts
the people moved in the rounds. Runs pinned to version 2 are untouched. Real runtime and
database; the clock is a ManualClock, moved, never slept on."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, complete_answered, make_runtime, run_events
from sqlmodel import select
from typhoon_demo import at, escalations, keyed, sweep_at

from flows import lifecycle
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.errors import InvalidInput
from models.outbox import Notification
from models.task import StepInstance

COMMANDER = "maluan-commander"  # 郝家豪, 马峦街道
PARAMS: dict[str, Any] = {"name": "海葵（2311）", "signal": "红色"}
MOVED = {"maluan-community": 10, "jiangling": 4, "pinghuan": 4}
SHELTER = {"from_where": "低洼地段", "mover": "网格员", "shelter": "社区服务中心",
           "management": "专人值守"}
STILL_THERE = {"refused": 1, "immobile": 1, "measures": "强制转移",
               "situation": "1人拒绝转移，已通知派出所协助；1人卧床，已安排担架"}


def chase(rt: Runtime, run_id: int, unit: str = "maluan-community") -> list[StepInstance]:
    return [r for r in keyed(rt, run_id).get("transfer-followup", []) if r.unit_id == unit]


def to_transfer(rt: Runtime, clock: ManualClock, **not_moved: int) -> int:
    """马峦街道's typhoon at 橙色/红色预警 from 03-02 10:00; at 12:00 every community records its
    transfer, 马峦社区 with `not_moved` people it could not move."""
    clock.set(at("2026-03-02T09:00:00"))
    run = lifecycle.start_run(rt, playbook_id="typhoon-633", unit_id="maluan", params=PARAMS,
                              actor=COMMANDER)
    run_id = run.id or 0
    clock.set(at("2026-03-02T10:00:00"))
    lifecycle.set_stage(rt, run_id=run_id, stage="severe", actor=COMMANDER)
    clock.set(at("2026-03-02T12:00:00"))
    for row in keyed(rt, run_id)["transfer"]:
        left = not_moved.get(row.unit_id.replace("-", "_"), 0)
        complete_answered(rt, row, people=MOVED[row.unit_id], not_moved=left, **SHELTER)
    drain_wakes(rt)
    return run_id


def to_recovery(rt: Runtime, run_id: int, clock: ManualClock, local: str) -> None:
    clock.set(at(local))
    lifecycle.set_stage(rt, run_id=run_id, stage="recovery", actor=COMMANDER)
    for key in ("recovery-street", "recovery-community", "recovery-public"):
        for row in keyed(rt, run_id)[key]:
            complete_answered(rt, row)
    drain_wakes(rt)


def all_home(rt: Runtime, run_id: int, **moved_later: int) -> str:
    """Every community records everyone it moved (at the transfer, and `moved_later` in the
    rounds) as home; the 防御总结 filed then."""
    for row in keyed(rt, run_id)["return"]:
        total = MOVED[row.unit_id] + moved_later.get(row.unit_id.replace("-", "_"), 0)
        complete_answered(rt, row, returned=total, remaining=0)
    drain_wakes(rt)
    return summary_of(rt, run_id)


def summary_of(rt: Runtime, run_id: int) -> str:
    with read_session(rt.db) as session:
        return session.exec(select(Document.body).where(
            Document.run_id == run_id, Document.title == "生成台风防御工作总结")).one()


def test_people_not_moved_are_chased_every_hour_until_none_is_left(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = to_transfer(demo, clock, maluan_community=3)

    # Only 马峦社区 is chased; the others moved everyone at the transfer.
    rows = keyed(demo, run_id)["transfer-followup"]
    assert {r.unit_id: r.status for r in rows} == {
        "maluan-community": "pending", "jiangling": "skipped", "pinghuan": "skipped"}
    # Round 1: an hour after the transfer was handed in, not at the next morning's 09:00.
    [first] = chase(demo, run_id)
    assert first.next_check_at == at("2026-03-02T13:00:00") and first.due_at is None
    assert first.assignees == ["maluan-community-head"]
    assert first.title == ("【橙色/红色预警】应转未转人员跟踪（马峦社区，第1次，03-02 13:30前，"
                           "仍有 3 人未转移）")

    clock.set(at("2026-03-02T13:00:20"))
    sweep_once(demo)
    [first] = chase(demo, run_id)
    assert first.status == "ready" and first.due_at == at("2026-03-02T13:30:00")

    # A round that does not add up is refused by name, in Chinese, and nothing changes.
    with pytest.raises(InvalidInput) as bad:
        complete_answered(demo, first, moved=1, not_moved=1, shelter="社区服务中心")
    assert bad.value.field == "outputs.moved"
    assert str(bad.value) == (
        "outputs.moved: 本轮转移 1 人与仍未转移 1 人之和应等于上次填报的应转未转 3 人，请核实后"
        "填报 / people moved since and still not moved must add up to the 3 people not moved "
        "at the last report")
    with pytest.raises(InvalidInput) as reasons:
        complete_answered(demo, first, moved=1, not_moved=2, shelter="社区服务中心", refused=1,
                          measures="强制转移", situation="见上")
    assert reasons.value.field == "outputs.refused"
    assert "之和应等于仍未转移 2 人" in str(reasons.value)
    with pytest.raises(InvalidInput) as nowhere:
        complete_answered(demo, first, moved=1, not_moved=2, **STILL_THERE)
    assert nowhere.value.field == "outputs.shelter"
    with pytest.raises(InvalidInput) as no_measure:
        complete_answered(demo, first, moved=1, not_moved=2, shelter="社区服务中心",
                          refused=1, immobile=1)
    assert no_measure.value.field == "outputs.measures"
    assert chase(demo, run_id)[0].status == "ready"

    clock.set(at("2026-03-02T13:20:00"))
    complete_answered(demo, first, moved=1, not_moved=2, shelter="马峦小学", **STILL_THERE)
    drain_wakes(demo)

    # Round 2 an hour after that hand-in; left past its 30 minutes, the street head and the
    # street's commander hear of it at once.
    second = chase(demo, run_id)[1]
    assert second.next_check_at == at("2026-03-02T14:20:00")
    assert second.title.endswith("（马峦社区，第2次，03-02 14:50前，仍有 2 人未转移）")
    sweep_at(demo, clock, "2026-03-02T14:20:10", "2026-03-02T14:50:10")
    second = chase(demo, run_id)[1]
    assert second.status == "ready" and second.overdue
    assert escalations(demo, second.id) == [(1, ["maluan-commander", "maluan-head"])]

    # The last two are moved (强制转移): no third round.
    clock.set(at("2026-03-02T15:00:00"))
    complete_answered(demo, second, moved=2, not_moved=0, shelter="马峦小学")
    drain_wakes(demo)
    assert [r.status for r in chase(demo, run_id)] == ["done", "done"]

    # At 解除 the return counts the 3 moved in the rounds: 10 + 3 = 13 people to account for.
    to_recovery(demo, run_id, clock, "2026-03-03T09:00:00")
    back = next(r for r in keyed(demo, run_id)["return"] if r.unit_id == "maluan-community")
    assert back.status == "ready"
    with pytest.raises(InvalidInput) as short:
        complete_answered(demo, back, returned=10, remaining=0)
    assert short.value.field == "outputs.returned"
    assert str(short.value).startswith(
        "outputs.returned: 已返回 10 人与仍在安置 0 人之和应等于本社区转移人数 13 人（首次转移 10 "
        "人，跟踪期间又转移 3 人），请核实后填报")
    body = all_home(demo, run_id, maluan_community=3)
    assert "合计 3 个社区，转移 21 人（其中应转未转跟踪期间又转移 3 人），应转未转 0 人。" in body
    assert ("| 马峦社区 | 3 人 | 2 次 | 3 人（马峦小学） | 0 人 | — | — | "
            "2026-03-02 15:00 |") in body
    assert "应转未转人员已全部转移。" in body
    assert "人数不符" not in body
    assert "合计已返回 21 人，仍在安置 0 人。" in body


def test_the_rounds_stop_at_recovery_and_the_unmoved_are_recorded_not_lost(
        demo: Runtime, clock: ManualClock) -> None:
    """The typhoon has passed: moving people now protects nobody. The open round is withdrawn
    (its holder told), none comes after, a transfer handed in late gets none, and the 防御总结
    names the community and the people never moved, with why and what was done."""
    run_id = to_transfer(demo, clock, maluan_community=3)
    clock.set(at("2026-03-02T13:00:20"))
    sweep_once(demo)
    clock.set(at("2026-03-02T13:20:00"))
    complete_answered(demo, chase(demo, run_id)[0], moved=1, not_moved=2, shelter="马峦小学",
                      **STILL_THERE)
    drain_wakes(demo)
    clock.set(at("2026-03-02T14:20:10"))
    sweep_once(demo)
    assert [r.status for r in chase(demo, run_id)] == ["done", "ready"]

    to_recovery(demo, run_id, clock, "2026-03-03T09:00:00")
    done, withdrawn = chase(demo, run_id)
    assert (done.status, withdrawn.status, withdrawn.next_check_at) == ("done", "skipped", None)
    with read_session(demo.db) as session:
        event = session.exec(select(AuditEvent).where(
            AuditEvent.step_id == withdrawn.id, AuditEvent.action == "round_withdrawn")).one()
        told = session.exec(select(Notification).where(
            Notification.step_id == withdrawn.id,
            Notification.kind == "round_withdrawn")).all()
    assert event.detail["until_stage_title"] == "解除与灾后恢复"
    assert {n.title for n in told} == {f"【轮次结束】{withdrawn.title}"}
    assert "已进入“解除与灾后恢复”阶段" in told[0].body
    # Nothing is owed any more: no round is written after the withdrawn one, and the follow-up
    # holds neither the return nor the end of the response.
    clock.set(at("2026-03-03T11:00:00"))
    sweep_once(demo)
    drain_wakes(demo)
    assert len(chase(demo, run_id)) == 2

    body = all_home(demo, run_id, maluan_community=1)
    assert "合计 3 个社区，转移 19 人（其中应转未转跟踪期间又转移 1 人），应转未转 2 人。" in body
    assert ("| 马峦社区 | 3 人 | 1 次 | 1 人（马峦小学） | 2 人 | 拒绝转移 1 人、行动不便 1 人 | "
            "强制转移：1人拒绝转移，已通知派出所协助；1人卧床，已安排担架 | "
            "2026-03-02 13:20 |") in body
    assert ("**仍未转移人员**：马峦社区 2 人。进入“解除与灾后恢复”阶段后跟踪结束，以上人员未能"
            "转移，如实记录在案。") in body
    lifecycle.end_response(demo, run_id=run_id, actor=COMMANDER)


def test_a_transfer_handed_in_after_recovery_gets_no_round(
        demo: Runtime, clock: ManualClock) -> None:
    clock.set(at("2026-03-02T09:00:00"))
    run = lifecycle.start_run(demo, playbook_id="typhoon-633", unit_id="maluan", params=PARAMS,
                              actor=COMMANDER)
    run_id = run.id or 0
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor=COMMANDER)
    to_recovery(demo, run_id, clock, "2026-03-02T20:00:00")
    late = next(r for r in keyed(demo, run_id)["transfer"] if r.unit_id == "pinghuan")
    complete_answered(demo, late, people=4, not_moved=2, **SHELTER)
    drain_wakes(demo)
    assert [r.status for r in chase(demo, run_id, "pinghuan")] == ["skipped"]
    # Its return is handed out at once, against its 4 people moved.
    back = next(r for r in keyed(demo, run_id)["return"] if r.unit_id == "pinghuan")
    assert back.status == "ready"


# --- a run pinned to version 2 ------------------------------------------------------------------

def _version_2(v3: str) -> str:
    """typhoon-633 as version 2 shipped it: no transfer-followup, the return paired with the
    transfer alone."""
    start = v3.index("  # 应转尽转:")
    end = v3.index("  # == 5 台风登陆")
    text = v3[:start] + v3[end:]
    text = text.replace("version: 3", "version: 2", 1)
    text = text.replace("    needs: [transfer, transfer-followup]\n", "    needs: [transfer]\n")
    text = text.replace("    item_needs: [transfer, transfer-followup]\n",
                        "    item_needs: [transfer]\n")
    return text.replace(" + paired['transfer-followup'].totals.moved", "").replace(
        "{% if\n          paired['transfer-followup'].totals.moved %}", "{% if false %}")


def test_a_run_pinned_to_version_2_keeps_its_transfer_as_it_was(
        tmp_path: Path, clock: ManualClock) -> None:
    books = tmp_path / "books"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    shipped = (SHIPPED_PLAYBOOKS / "typhoon-633.yaml").read_text(encoding="utf-8")
    (books / "typhoon-633.yaml").write_text(_version_2(shipped), encoding="utf-8")
    old = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    assert old.catalog.errors == []
    clock.set(at("2026-03-02T09:00:00"))
    run = lifecycle.start_run(old, playbook_id="typhoon-633", unit_id="maluan", params=PARAMS,
                              actor=COMMANDER)
    run_id = run.id or 0
    old.db.dispose()

    # The server is upgraded to version 3 while the run is open: it keeps version 2.
    (books / "typhoon-633.yaml").write_text(shipped, encoding="utf-8")
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    lifecycle.set_stage(rt, run_id=run_id, stage="severe", actor=COMMANDER)
    clock.set(at("2026-03-02T12:00:00"))
    for row in keyed(rt, run_id)["transfer"]:
        left = 3 if row.unit_id == "maluan-community" else 0
        complete_answered(rt, row, people=MOVED[row.unit_id], not_moved=left, **SHELTER)
    drain_wakes(rt)
    clock.set(at("2026-03-02T14:00:00"))
    sweep_once(rt)
    assert "transfer-followup" not in keyed(rt, run_id)
    to_recovery(rt, run_id, clock, "2026-03-03T09:00:00")
    for row in keyed(rt, run_id)["return"]:
        complete_answered(rt, row, returned=MOVED[row.unit_id], remaining=0)
    drain_wakes(rt)
    assert "合计 3 个社区，转移 18 人，应转未转 3 人。" in summary_of(rt, run_id)
    # A run started now gets version 3.
    fresh = lifecycle.start_run(rt, playbook_id="typhoon-633", unit_id="jiangling",
                                params=PARAMS, actor=COMMANDER)
    lifecycle.set_stage(rt, run_id=fresh.id or 0, stage="severe", actor=COMMANDER)
    assert "transfer-followup" in keyed(rt, fresh.id or 0)
    rt.db.dispose()


def test_a_transfer_called_off_and_handed_out_again_is_still_chased(
        demo: Runtime, clock: ManualClock) -> None:
    """橙色 lowered to 黄色 before 马峦社区 recorded its transfer (called off), then 橙色 again:
    the transfer handed out anew says 3 are left, and they are chased as on a first entry."""
    clock.set(at("2026-03-02T09:00:00"))
    run = lifecycle.start_run(demo, playbook_id="typhoon-633", unit_id="maluan", params=PARAMS,
                              actor=COMMANDER)
    run_id = run.id or 0
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor=COMMANDER)
    first = next(r for r in keyed(demo, run_id)["transfer"] if r.unit_id == "maluan-community")
    lifecycle.set_stage(demo, run_id=run_id, stage="emergency", actor=COMMANDER,
                        call_off=[first.id or 0], note="预警降为黄色")
    assert [r.status for r in chase(demo, run_id)] == ["pending"]  # still waiting, not passed over
    clock.set(at("2026-03-02T11:00:00"))
    lifecycle.set_stage(demo, run_id=run_id, stage="severe", actor=COMMANDER)
    again = [r for r in keyed(demo, run_id)["transfer"] if r.unit_id == "maluan-community"][-1]
    assert again.rehanded_from == first.id
    clock.set(at("2026-03-02T12:00:00"))
    complete_answered(demo, again, people=10, not_moved=3, **SHELTER)
    drain_wakes(demo)
    [round_one] = chase(demo, run_id)
    assert round_one.next_check_at == at("2026-03-02T13:00:00")
    assert round_one.title.endswith("（马峦社区，第1次，03-02 13:30前，仍有 3 人未转移）")


HEAD_URL = "json://127.0.0.1:9/maluan-head"


def test_people_left_unmoved_are_told_to_the_street_at_once_with_the_reasons(
        tmp_path: Path, clock: ManualClock) -> None:
    """Not an hour later when a round is late: the transfer's hand-in with 应转未转 people, and
    each round that still leaves some, tell the street head (on her own channel too) and the
    street's commander at once, in Chinese, naming the community, how many and why."""
    text = DEMO_ORG.read_text(encoding="utf-8")
    head = "{id: maluan-head, name: 白少华, title: 街道办主任, roles: [street_head], notify: []}"
    assert text.count(head) == 1
    rt = make_runtime(tmp_path / "rt", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_text=text.replace(head, head.replace("[]", f'["{HEAD_URL}"]')))
    run_id = to_transfer(rt, clock, maluan_community=3)

    def alerts() -> list[Notification]:
        with read_session(rt.db) as session:
            return list(session.exec(select(Notification).where(
                Notification.run_id == run_id, Notification.kind == "alerted")
                .order_by(Notification.id)).all())  # type: ignore[arg-type]

    # Only 马峦社区 left people: one message each, at 12:00, the moment it was handed in.
    first = alerts()
    assert {(n.recipient, n.url) for n in first} == {
        ("maluan-head", "inbox://"), ("maluan-head", HEAD_URL),
        ("maluan-commander", "inbox://")}
    assert {n.created_at for n in first} == {at("2026-03-02T12:00:00")}
    note = first[0]
    assert note.title.startswith("【应转未转人员】马峦社区·")
    assert note.body.startswith("马峦社区已填报危险区人员转移：已转移 10 人，仍有 3 人应转未转，"
                                "留在危险区（低洼地段）。请立即督导组织转移")
    assert note.body.endswith("\n冯明辉于 2026-03-02 12:00 填报。")
    [event] = [e for e in run_events(rt, run_id, "alerted")]
    assert sorted(event.detail["recipients"]) == ["maluan-commander", "maluan-head"]

    # A round that still leaves 2 people says so, with the reasons given.
    sweep_at(rt, clock, "2026-03-02T13:00:20")
    clock.set(at("2026-03-02T13:20:00"))
    complete_answered(rt, chase(rt, run_id)[0], moved=1, not_moved=2, shelter="马峦小学",
                      **STILL_THERE)
    second = alerts()[len(first):]
    assert {n.recipient for n in second} == {"maluan-head", "maluan-commander"}
    assert second[0].body.startswith(
        "马峦社区应转未转人员跟踪第1次：本轮又转移 1 人，仍有 2 人未转移（拒绝转移 1 人、"
        "行动不便 1 人）。主要措施：强制转移。情况：1人拒绝转移，已通知派出所协助；1人卧床，"
        "已安排担架。请立即督导组织转移")

    # The round that moves the last people tells nobody: there is nothing to send help for.
    drain_wakes(rt)
    sweep_at(rt, clock, "2026-03-02T14:20:10")
    clock.set(at("2026-03-02T14:30:00"))
    complete_answered(rt, chase(rt, run_id)[1], moved=2, not_moved=0, shelter="马峦小学")
    assert len(alerts()) == len(first) + len(second)
