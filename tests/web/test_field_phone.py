"""Field people on a phone (390 px) against the real pages: a community head answering a
typhoon's 30-minute 叫应 from the inbox, and what a field person sees of the hazards they hold."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from factories import complete_answered, png_bytes
from playwright.sync_api import Page, expect

from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.task import StepInstance

SignedIn = Callable[..., Page]

COMMANDER = "wang-qiang"  # 王强, the district's commander, starts the typhoon response
HEAD = "liuhe-head"  # 贾丽萍, 六和社区's head: answers the community's measures and transfers


def call(server: Any, person: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token(person)}"}
    return httpx.request(method, server.url(path), headers=headers, timeout=10, **kwargs)


def typhoon_at_severe(server: Any) -> int:
    """Typhoon 633 for 坪山街道 moved to 橙色/红色预警: each community's transfer (危险区人员
    转移) is handed out, to be signed for within 30 minutes and done within 6 hours. Returns
    六和社区's transfer task."""
    r = call(server, COMMANDER, "POST", "/api/runs", json={
        "playbook": "typhoon-633", "unit": "pingshan-street", "params": {"name": "海葵"}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    r = call(server, COMMANDER, "POST", f"/api/runs/{run_id}/stage",
             json={"stage": "橙色/红色预警"})
    assert r.status_code == 200, r.text
    inbox = call(server, HEAD, "GET", "/api/tasks?mine=true&limit=50").json()["data"]
    return next(t["id"] for t in inbox if t["step"] == "transfer")


def test_the_inbox_card_says_when_the_30_minute_sign_for_is_due(
        signed_in: SignedIn, server: Any) -> None:
    transfer = typhoon_at_severe(server)
    # The clock stands at 09:00 (tests/conftest.py): signed for by 09:30, done by 15:00.
    page = signed_in(HEAD, phone=True)
    page.goto(server.url("/inbox"))
    card = page.locator(f".task-card[data-task-id='{transfer}']")
    expect(card).to_contain_text("期限 2026-03-02 15:00")
    # Before: the card read only "剩余 6小时0分", below three measures due sooner, and the head
    # learnt of the 30-minute 叫应 only from its escalation.
    expect(card.locator(".ack-due")).to_contain_text("签收（叫应）期限 2026-03-02 09:30")
    expect(card.locator(".ack-clock")).to_have_text(re.compile(r"^剩余 (30|29)分钟$"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # Signed for: the line goes, the work's deadline stays.
    page.goto(server.url(f"/tasks/{transfer}"))
    page.click("#ack")
    expect(page.locator("#flash")).to_contain_text("已签收")
    page.goto(server.url("/inbox"))
    expect(card).to_contain_text("期限 2026-03-02 15:00")
    expect(card.locator(".ack-due")).to_have_count(0)


def test_a_box_marked_wrong_is_unmarked_once_it_is_corrected(
        signed_in: SignedIn, server: Any) -> None:
    """The transfer handed in with -3 people and no photo: both boxes are marked red. Typing the
    right count, and adding the photo, takes each one's mark away at once, before the next
    提交; before, the corrected boxes stayed red and read as still wrong."""
    transfer = typhoon_at_severe(server)
    page = signed_in(HEAD, phone=True)
    page.goto(server.url(f"/tasks/{transfer}"))
    page.fill("[name=moved_at]", "2026-03-02T08:30")
    for name, value in (("from_where", "低洼地段"), ("mover", "网格员熊淑芬"),
                        ("shelter", "社区服务中心"), ("management", "专人值守")):
        page.fill(f"[name={name}]", value)
    people = page.locator("[name=people]")
    people.fill("-3")
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("转移人数（要转谁）：不能小于 0")
    expect(people).to_have_attribute("aria-invalid", "true")
    people.fill("12")
    expect(people).not_to_have_attribute("aria-invalid", "true")

    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("需要至少 1 张照片")
    picker = page.locator("#evidence")
    expect(picker).to_have_attribute("aria-invalid", "true")
    picker.set_input_files(files=[{"name": "转移现场.png", "mimeType": "image/png",
                                   "buffer": png_bytes(3, 3)}])
    expect(page.locator("#evidence-count")).to_contain_text("已选 1 个")
    expect(picker).not_to_have_attribute("aria-invalid", "true")
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("已办结")


def test_a_round_for_people_not_yet_moved_is_handed_in_on_a_phone(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    """六和社区 moved 12 and left 3 (应转未转): an hour later the head is asked again on her
    phone. The task says which round and how many are left, shows the transfer it follows,
    fits 390 px, refuses a round that does not add up on the named box in Chinese, and takes
    the corrected one (2 still refusing: 强制转移)."""
    transfer = typhoon_at_severe(server)
    with read_session(server.rt.db) as session:
        row = session.get(StepInstance, transfer)
    assert row is not None
    complete_answered(server.rt, row, people=12, not_moved=3, from_where="河滨路低洼地段",
                      mover="网格员熊淑芬", shelter="社区服务中心", management="专人值守")
    clock.advance(timedelta(hours=1, seconds=10))
    sweep_once(server.rt)
    inbox = call(server, HEAD, "GET", "/api/tasks?mine=true&limit=50").json()["data"]
    chase = next(t["id"] for t in inbox if t["step"] == "transfer-followup")

    page = signed_in(HEAD, phone=True)
    page.goto(server.url(f"/tasks/{chase}"))
    expect(page.locator("#heading")).to_contain_text(
        "应转未转人员跟踪（六和社区，第1次，03-02 10:30前，仍有 3 人未转移）")
    expect(page.locator(".paired[data-step='transfer']")).to_contain_text("应转未转人数")
    page.fill("[name=moved]", "1")
    page.fill("[name=not_moved]", "1")
    page.fill("[name=shelter]", "社区服务中心")
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text(
        "本轮转移 1 人与仍未转移 1 人之和应等于上次填报的应转未转 3 人")
    expect(page.locator("#flash")).not_to_contain_text("outputs.")
    moved = page.locator("[name=moved]")
    expect(moved).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.fill("[name=not_moved]", "2")
    page.fill("[name=refused]", "2")
    page.select_option("[name=measures]", "强制转移")
    page.fill("[name=situation]", "2名老人拒绝转移，已联系派出所协助强制转移")
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("已办结")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


STREET_COMMANDER = "pingshan-street-commander"  # 胡红霞 imports her street's hazard list
RECTIFIER = "liuhe-safety"  # 尹秀英: every 六和社区 rectification is hers
FINDER = "pingshan-street-inspector-1"  # 邓思远 registers what he finds on his rounds
VERIFIER = "pingshan-street-inspector-2"  # 潘立新 re-inspects (复查)


def import_liuhe_hazards(server: Any, rows: int) -> dict[str, int]:
    """`rows` 一般 hazards of 六和社区 imported at once, as a street's list is: the safety
    officer's inbox holds them all, due the same day. Returns each number's rectify task."""
    lines = ["隐患编号,单位编号,隐患来源,隐患等级,隐患类别,隐患地点,隐患描述,涉及企业,"
             "发现时间,发现人"]
    for i in range(rows):
        enterprise = "深圳市和平百货有限公司" if i == 7 else f"企业{i}"
        lines.append(f"PS-2026-{i:05d},liuhe,检查发现,一般,消防安全,和平路{i}号,"
                     f"疏散通道堆放杂物,{enterprise},2026-03-01 09:30,邓思远")
    csv = ("\n".join(lines) + "\n").encode()
    r = call(server, STREET_COMMANDER, "POST", "/api/hazards/import",
             files={"file": ("隐患清单.csv", csv, "text/csv")})
    assert r.status_code == 201, r.text
    tasks = call(server, RECTIFIER, "GET", f"/api/tasks?mine=true&limit={rows}").json()["data"]
    codes = {t["run_id"]: t["id"] for t in tasks}
    hazards = call(server, STREET_COMMANDER, "GET",
                   f"/api/hazards?limit={rows}").json()["data"]
    return {h["code"]: codes[h["run_id"]] for h in hazards}


def hand_in(server: Any, task: int, seed: int) -> None:
    ids = []
    for i in range(2):
        up = call(server, RECTIFIER, "POST", "/api/evidence", files={
            "file": (f"p{seed}-{i}.png", png_bytes(4, 4, (seed, i, 9)), "image/png")})
        assert up.status_code == 201, up.text
        ids.append(up.json()["id"])
    r = call(server, RECTIFIER, "POST", f"/api/tasks/{task}/complete", json={
        "note": "已整改", "outputs": {"done_measures": "已清理"}, "evidence": ids,
        "evidence_labels": {ids[0]: "整改前", ids[1]: "整改后"}})
    assert r.status_code == 200, r.text


def test_a_hazard_is_found_in_a_long_inbox_by_its_number_or_its_enterprise(
        signed_in: SignedIn, server: Any) -> None:
    tasks = import_liuhe_hazards(server, 45)
    page = signed_in(RECTIFIER, phone=True)
    page.goto(server.url("/inbox"))
    expect(page.locator("#count")).to_have_text("共 45 项")  # three pages of twenty
    # Before: no way to look one up but paging; the card does not even carry the number.
    page.fill("#f-q", "PS-2026-00031")
    page.press("#f-q", "Enter")
    expect(page.locator("#count")).to_have_text("共 1 项")
    expect(page.locator(".task-card")).to_have_count(1)
    card = page.locator(f".task-card[data-task-id='{tasks['PS-2026-00031']}']")
    expect(card).to_contain_text("和平路31号")
    assert "q=PS-2026-00031" in page.url  # kept in the address: a reload or 返回 keeps it
    page.reload()
    expect(page.locator("#f-q")).to_have_value("PS-2026-00031")
    expect(page.locator(".task-card")).to_have_count(1)

    page.fill("#f-q", "和平百货")
    page.press("#f-q", "Enter")
    expect(page.locator(".task-card")).to_have_count(1)
    expect(page.locator(f".task-card[data-task-id='{tasks['PS-2026-00007']}']")).to_be_visible()
    page.fill("#f-q", "不存在的隐患")
    page.press("#f-q", "Enter")
    expect(page.locator("#tasks .empty")).to_have_text("没有与「不存在的隐患」相符的任务。")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_work_sent_back_is_listed_on_its_own(signed_in: SignedIn, server: Any) -> None:
    tasks = import_liuhe_hazards(server, 30)
    sent_back = tasks["PS-2026-00029"]  # the last of thirty due the same day: page two
    hand_in(server, sent_back, 1)
    r = call(server, VERIFIER, "POST", f"/api/tasks/{sent_back}/verify",
             json={"approve": False, "note": "整改后照片未拍到通道全貌"})
    assert r.status_code == 200, r.text

    page = signed_in(RECTIFIER, phone=True)
    page.goto(server.url("/inbox"))
    expect(page.locator("#count")).to_have_text("共 30 项")
    expect(page.locator(f".task-card[data-task-id='{sent_back}']")).to_have_count(0)
    page.select_option("#f-status", "rejected")
    expect(page.locator(".task-card")).to_have_count(1)
    card = page.locator(f".task-card[data-task-id='{sent_back}']")
    expect(card.locator(".reject-line")).to_have_text("退回原因：整改后照片未拍到通道全貌")
    assert "status=rejected" in page.url


def fill_rectification(page: Page, tmp_path: Any, seed: int) -> None:
    page.fill("#out-done_measures", "已清理疏散通道杂物")
    page.fill("#note", "现场已复核")
    for i, box in enumerate(["#evidence-0", "#evidence-1"]):
        path = tmp_path / f"site-{seed}-{i}.png"
        path.write_bytes(png_bytes(4, 4, (seed, i, 50)))
        page.set_input_files(box, str(path))
    expect(page.locator("#evidence-count")).to_have_text("已选 2 个")


def submissions(server: Any, task: int) -> int:
    run_id = call(server, RECTIFIER, "GET", f"/api/tasks/{task}").json()["run_id"]
    timeline = call(server, STREET_COMMANDER, "GET", f"/api/runs/{run_id}").json()["timeline"]
    return sum(1 for e in timeline if e["action"] == "submitted")


def test_a_draft_brought_back_after_a_reload_counts_its_photos(
        signed_in: SignedIn, server: Any, tmp_path: Any) -> None:
    task = import_liuhe_hazards(server, 1)["PS-2026-00000"]
    page = signed_in(RECTIFIER, phone=True)
    page.goto(server.url(f"/tasks/{task}"))
    fill_rectification(page, tmp_path, 3)
    page.reload()  # the phone reloads mid-form (or the tab was dropped for the camera)
    expect(page.locator("#out-done_measures")).to_have_value("已清理疏散通道杂物")
    expect(page.locator("#note")).to_have_value("现场已复核")
    expect(page.locator(".evidence-box figure")).to_have_count(2)
    # Before: the photos came back but the line beside them stayed blank.
    expect(page.locator("#evidence-count")).to_have_text("已选 2 个")


def test_a_hand_in_lost_on_the_network_says_what_to_do_and_keeps_the_work(
        signed_in: SignedIn, server: Any, tmp_path: Any) -> None:
    tasks = import_liuhe_hazards(server, 1)
    page = signed_in(RECTIFIER, phone=True)
    # Lost on the way: nothing reached the server. (An answer lost on the way back:
    # test_phone_hand_in.py, where the second tap is taken as the first hand-in.)
    dropped = tasks["PS-2026-00000"]
    page.goto(server.url(f"/tasks/{dropped}"))
    fill_rectification(page, tmp_path, 1)
    page.route("**/api/tasks/*/complete", lambda route: route.abort("internetdisconnected"))
    page.click("#submit")
    told = ("网络中断，未能确认是否已提交。已填写的内容和照片仍保存在本机，"
            "网络恢复后再点一次「提交」即可（服务器已收到的不会重复提交）")
    # Before: "连不上服务器 / cannot reach the server (Failed to fetch)", nothing on whether the
    # work was in or what to do.
    expect(page.locator("#flash")).to_have_text(told)
    assert submissions(server, dropped) == 0
    page.unroute("**/api/tasks/*/complete")
    page.reload()  # even a reload keeps what was typed and the photos
    expect(page.locator("#out-done_measures")).to_have_value("已清理疏散通道杂物")
    expect(page.locator("#evidence-count")).to_have_text("已选 2 个")
    page.click("#submit")
    expect(page.locator("#flash")).to_have_text("已提交，等待核验")
    assert submissions(server, dropped) == 1


def test_a_verifiers_reason_survives_a_reload_and_is_gone_once_decided(
        signed_in: SignedIn, server: Any) -> None:
    task = import_liuhe_hazards(server, 1)["PS-2026-00000"]
    hand_in(server, task, 5)
    page = signed_in(VERIFIER, phone=True)
    page.goto(server.url(f"/tasks/{task}"))
    reason = "整改后照片未拍到二楼通道全貌，东侧安全出口仍有铁链，请清除后补拍"
    page.fill("#verify-note", reason)
    page.reload()  # back from the photo viewer, the tab reloaded
    # Before: the reason typed was gone.
    expect(page.locator("#verify-note")).to_have_value(reason)
    page.click("#reject")
    expect(page.locator("#flash")).to_have_text("已退回，已通知整改人")
    kept = page.evaluate("Object.keys(window.localStorage).filter((k) => k.includes('verify'))")
    assert kept == []
    assert call(server, RECTIFIER, "GET", f"/api/tasks/{task}").json()["reject_reason"] == reason


def test_an_unbroken_latin_location_wraps_on_a_phone(signed_in: SignedIn, server: Any) -> None:
    """A map link pasted as the location, a long hazard number, a company's name in Latin
    letters: one unbroken run of text that used to push the inbox and the run page sideways."""
    link = "https://map.example.com/location?lat=22.7000000000&lng=114.3400000000000000"
    r = call(server, FINDER, "POST", "/api/runs", json={
        "playbook": "hazard-3030", "unit": "liuhe", "params": {
            "location": link, "code": "PS-2026-PINGSHAN-LIUHE-HEPINGLU-000000000000000000000001",
            "enterprise": "ShenzhenPingshanSuperLongEnterpriseNameCoLtdBranchNo3Factory"}})
    assert r.status_code == 201, r.text
    run = r.json()
    task = next(s["id"] for s in run["steps"] if s["step"] == "rectify")
    page = signed_in(RECTIFIER, phone=True)
    width = "document.documentElement.scrollWidth"
    page.goto(server.url("/inbox"))
    expect(page.locator(f".task-card[data-task-id='{task}']")).to_contain_text(link)
    assert page.evaluate(width) <= 390  # was 402: the whole inbox slid sideways
    page.goto(server.url(f"/tasks/{task}"))
    expect(page.locator("#params")).to_contain_text(link)
    # The two-column table of the hazard fits the screen (it was 1006 px, read sideways).
    assert page.evaluate("document.querySelector('#params').getBoundingClientRect().right") <= 390
    page.goto(server.url(f"/runs/{run['id']}"))
    expect(page.locator("#params-table")).to_contain_text(link)
    assert page.evaluate(
        "document.querySelector('#params-table').getBoundingClientRect().right") <= 390
    assert page.evaluate(width) <= 390


def test_a_verdict_or_a_request_for_time_whose_answer_was_lost_is_told_and_taken_once(
        signed_in: SignedIn, server: Any) -> None:
    tasks = import_liuhe_hazards(server, 2)
    judged, asked = tasks["PS-2026-00000"], tasks["PS-2026-00001"]
    hand_in(server, judged, 6)

    def answer_lost(route: Any) -> None:
        route.fetch()  # the server takes it; the phone never hears back
        route.abort("connectionreset")

    page = signed_in(VERIFIER, phone=True)
    page.goto(server.url(f"/tasks/{judged}"))
    page.fill("#verify-note", "照片模糊，请补拍")
    page.route("**/api/tasks/*/verify", answer_lost)
    page.click("#reject")
    # Before: only 连不上服务器 (Failed to fetch).
    expect(page.locator("#flash")).to_have_text(
        "网络中断，未能确认核验结果是否已送达。意见仍保存在本机，网络恢复后再点一次即可（已送达的不会重复）")
    page.unroute("**/api/tasks/*/verify")
    page.click("#reject")
    expect(page.locator("#flash")).to_have_text("已退回，已通知整改人")
    assert call(server, RECTIFIER, "GET", f"/api/tasks/{judged}").json()["status"] == "rejected"

    page = signed_in(RECTIFIER, phone=True)
    page.goto(server.url(f"/tasks/{asked}"))
    page.fill("#ext-due", "2026-05-01")
    page.fill("#ext-reason", "消防设施供货周期长")
    page.route("**/api/tasks/*/extension-requests", answer_lost)
    page.click("#ext-send")
    expect(page.locator("#flash")).to_contain_text("连不上服务器")
    page.unroute("**/api/tasks/*/extension-requests")
    page.click("#ext-send")  # tapped again: the first one is in
    # Before: "409 该任务已有待审批的延期申请", beside a form that could only be refused again.
    expect(page.locator("#flash")).to_have_text("已有待审批的延期申请（见下方），无需重复申请")
    expect(page.locator("#ext-form")).to_have_count(0)
    expect(page.locator(".ext-request[data-status='pending']")).to_have_count(1)
    requests = call(server, RECTIFIER, "GET", f"/api/extension-requests?task={asked}").json()
    assert requests["count"] == 1
