"""The inspector's pages on a phone: the inbox with its countdowns, and one task worked through
the 3030 loop — signed for, handed in with real photos, refused where the API refuses (a wrong
value, one's own work to verify, another street's task), sent back with a reason, handed in
again and approved; and a request for more time decided by the street's safety office."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from factories import png_bytes
from playwright.sync_api import Page, expect
from slow_sign_in import open_before_sign_in

from flows.sweeper import sweep_once

SignedIn = Callable[..., Page]

RECTIFIER = "liuhe-safety"  # 尹秀英, 六和社区's safety officer: rectify goes to her
VERIFIER = "pingshan-street-inspector-2"  # 潘立新, a street inspector: 复查 (四眼)
FINDER = "pingshan-street-inspector-1"  # 邓思远 registers the hazard on his rounds
CHIEF = "pingshan-street-chief"  # 赵丽娟, 安全生产办公室主任: decides requests for more time


def png(rgb: tuple[int, int, int], size: int = 4) -> bytes:
    return png_bytes(size, size, rgb)


def left(days: int, hours: int) -> re.Pattern[str]:
    """A countdown of exactly that long on the server's clock, as a page shows it: the browser's
    own clock moves on a few milliseconds after it read the server's, so the text may already
    show the hour below (counting down floors)."""
    before = f"{days - 1}天23小时" if hours == 0 else f"{days}天{hours - 1}小时"
    return re.compile(rf"^剩余 ({days}天{hours}小时|{before})$")


def photos(tmp_path: Path, *colours: tuple[int, int, int]) -> list[str]:
    paths = []
    for i, colour in enumerate(colours):
        path = tmp_path / f"site-{i}.png"
        path.write_bytes(png(colour))
        paths.append(str(path))
    return paths


def call(server: Any, person: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token(person)}"}
    return httpx.request(method, server.url(path), headers=headers, timeout=10, **kwargs)


def register_hazard(server: Any) -> int:
    """A 一般 hazard in 六和社区 registered by a street inspector: its rectification goes at once
    to the community's safety officer, due in 30 whole days: registered at 09:00 on Monday 2
    March (the test clock), due 1 April 24:00. Returns the rectify task's id."""
    r = call(server, FINDER, "POST", "/api/runs", json={
        "playbook": "hazard-3030", "unit": "liuhe",
        "params": {"location": "六和社区某厂房二楼", "description": "消防通道堵塞",
                   "category": "消防安全"}})
    assert r.status_code == 201, r.text
    rectify = next(s for s in r.json()["steps"] if s["step"] == "rectify")
    assert rectify["status"] == "ready" and rectify["assignees"][0]["id"] == RECTIFIER
    return int(rectify["id"])


def open_task(page: Page, server: Any, task: int) -> None:
    page.goto(server.url(f"/tasks/{task}"))
    expect(page.locator("#summary")).to_be_visible()


def test_the_inbox_shows_the_task_with_its_countdown_and_then_overdue(
        signed_in: SignedIn, server: Any, clock: Any) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    page.goto(server.url("/inbox"))
    card = page.locator(f".task-card[data-task-id='{task}']")
    expect(card).to_contain_text("隐患整改")
    expect(card).to_contain_text("隐患排查整治闭环销号·六和社区某厂房二楼")  # the run's title
    expect(card.locator(".badge.status-ready")).to_have_text("待办")
    expect(card.locator(".due")).to_have_text(left(30, 15))  # to 1 April 24:00
    expect(card.locator(".due")).not_to_have_class(re.compile(r"overdue"))
    # The assignment notice is among the latest notifications.
    expect(page.locator("#notes")).to_contain_text("【新任务】隐患整改")
    # Only overdue: none yet.
    page.check("#f-overdue")
    expect(page.locator("#tasks .empty")).to_have_text("没有逾期的任务。")
    assert "overdue=true" in page.url

    clock.advance(timedelta(days=30, hours=17))  # 2 April 02:00
    sweep_once(server.rt)
    page.reload()  # the filter is kept in the address
    expect(page.locator("#f-overdue")).to_be_checked()
    card = page.locator(f".task-card[data-task-id='{task}']")
    expect(card.locator(".overdue-badge")).to_have_text("逾期")
    expect(card.locator(".due")).to_have_text("逾期 2小时0分")
    expect(card.locator(".due")).to_have_class(re.compile(r"\boverdue\b"))
    expect(card.locator(".escalated")).to_contain_text("已升级")
    card.get_by_role("link", name="隐患整改").click()
    expect(page).to_have_url(server.url(f"/tasks/{task}"))
    expect(page.locator("#summary .due")).to_have_text("逾期 2小时0分")


def test_a_rectification_is_signed_for_handed_in_sent_back_and_approved(
        signed_in: SignedIn, server: Any, tmp_path: Path) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, task)
    expect(page.locator("#heading")).to_have_text("隐患整改")
    expect(page.locator("#summary .due")).to_have_text(left(30, 15))
    expect(page.locator("#summary")).to_contain_text("2026-04-01 24:00")
    expect(page.locator("#params")).to_contain_text("消防通道堵塞")
    expect(page.locator("#evidence-need")).to_have_text("整改前、整改后照片各至少 1 张，须填写说明")

    page.click("#ack")
    expect(page.locator("#flash")).to_have_text("已签收")
    expect(page.locator("#summary .badge.status-acked")).to_have_text("已签收")
    expect(page.locator("#ack")).to_have_count(0)

    # Real photos, uploaded as soon as they are chosen, each under what it shows. The scene
    # before alone is not a rectification: handing it in is refused, naming the 整改后 picker.
    before = page.locator(".evidence-box[data-label='整改前']")
    after = page.locator(".evidence-box[data-label='整改后']")
    page.set_input_files("#evidence-0", photos(tmp_path, (200, 30, 30)))
    expect(before.locator("img")).to_have_count(1)
    page.fill("[name=done_measures]", "已清理消防通道，恢复畅通")
    page.fill("#note", "整改前后照片各一张")
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("缺少整改后照片")
    expect(page.locator("#evidence-1")).to_have_attribute("aria-invalid", "true")
    (tmp_path / "after").mkdir()
    page.set_input_files("#evidence-1", photos(tmp_path / "after", (30, 200, 30)))
    expect(after.locator("img")).to_have_count(1)
    # Each named, so a refusal naming a file says which to take out.
    expect(page.locator("#work figcaption")).to_have_text(["site-0.png", "site-0.png"])
    page.fill("[name=cost]", "-1")
    page.click("#submit")
    expect(page.locator("#flash")).not_to_contain_text("422")  # its words, not its code
    expect(page.locator("#flash")).to_contain_text("不能小于 0")
    expect(page.locator("[name=cost]")).to_have_attribute("aria-invalid", "true")
    page.fill("[name=cost]", "0.5")
    page.click("#submit")
    expect(page.locator("#flash")).to_have_text("已提交，等待核验")
    expect(page.locator("#summary .badge.status-submitted")).to_have_text("待核验")
    expect(page.locator("#waiting")).to_be_visible()
    expect(page.locator("#submitted-evidence img")).to_have_count(2)

    # The verifier finds it in the inbox as theirs to decide, and sends it back with a reason.
    inspector = signed_in(VERIFIER, phone=True)
    inspector.goto(server.url("/inbox"))
    card = inspector.locator(f".task-card[data-task-id='{task}']")
    expect(card.locator(".verify-mine")).to_have_text("待我核验")
    # 复查 within 10 whole days of Monday 09:00: Thursday 12 March 24:00.
    expect(card.locator(".verify-due .due")).to_have_text(left(10, 15))
    card.get_by_role("link", name="隐患整改").click()
    expect(inspector.locator("#submitted-outputs")).to_contain_text("已清理消防通道，恢复畅通")
    # The scene before beside the scene after: what re-inspection compares.
    groups = inspector.locator("#submitted-evidence .evidence-group")
    expect(groups.locator("h3")).to_have_text(["整改前", "整改后"])
    expect(groups.nth(0).locator("img")).to_have_count(1)
    expect(groups.nth(1).locator("img")).to_have_count(1)
    inspector.click("#reject")  # no reason: asked for before anything is sent
    expect(inspector.locator("#flash")).to_have_text("退回需说明原因")
    expect(inspector.locator("#verify-note")).to_have_attribute("aria-invalid", "true")
    inspector.fill("#verify-note", "照片未显示通道全貌，请补拍")
    inspector.click("#reject")
    expect(inspector.locator("#flash")).to_have_text("已退回，已通知整改人")
    expect(inspector.locator("#summary .badge.status-rejected")).to_have_text("已退回")

    # The rectifier sees why, and hands it in again (the photos and values are kept).
    page.reload()
    expect(page.locator("#reject-reason")).to_have_text("退回原因：照片未显示通道全貌，请补拍")
    expect(page.locator("#reject")).to_contain_text("退回人：潘立新")
    expect(before.locator("img")).to_have_count(1)
    expect(after.locator("img")).to_have_count(1)
    expect(page.locator("[name=done_measures]")).to_have_value("已清理消防通道，恢复畅通")
    after.locator(".remove").click()
    expect(after.locator("img")).to_have_count(0)
    page.set_input_files("#evidence-1", photos(tmp_path, (30, 30, 200)))
    expect(after.locator("img")).to_have_count(1)
    page.fill("#note", "已补拍通道全貌")
    page.click("#submit")
    expect(page.locator("#flash")).to_have_text("已提交，等待核验")

    inspector.reload()
    expect(inspector.locator("#submitted-note")).to_have_text("已补拍通道全貌")
    inspector.fill("#verify-note", "复查合格")
    inspector.click("#approve")
    expect(inspector.locator("#flash")).to_have_text("已通过核验")
    expect(inspector.locator("#summary .badge.status-done")).to_have_text("已完成")
    expect(inspector.locator("#verify")).to_have_count(0)

    # Done work leaves the rectifier's inbox; 全部 still lists it.
    page.goto(server.url("/inbox"))
    expect(page.locator("#tasks .empty")).to_have_text("没有待办任务，干得好。")
    page.select_option("#f-status", "all")
    expect(page.locator(f".task-card[data-task-id='{task}'] .badge.status-done")).to_have_text(
        "已完成")


def test_the_inbox_pages_by_twenty(signed_in: SignedIn, server: Any) -> None:
    tasks = [register_hazard(server) for _ in range(21)]
    page = signed_in(RECTIFIER, phone=True)
    page.goto(server.url("/inbox"))
    expect(page.locator(".task-card")).to_have_count(20)
    expect(page.locator("#page-info")).to_have_text("第 1–20 项 / 共 21 项")
    expect(page.locator("#prev")).to_be_disabled()
    page.click("#next")
    expect(page.locator(".task-card")).to_have_count(1)
    expect(page.locator("#page-info")).to_have_text("第 21–21 项 / 共 21 项")
    expect(page.locator("#next")).to_be_disabled()
    assert "offset=20" in page.url
    page.reload()  # the page is kept in the address
    expect(page.locator(".task-card")).to_have_count(1)
    page.click("#prev")
    expect(page.locator(".task-card")).to_have_count(20)
    shown = page.locator(".task-card").evaluate_all("cards => cards.map(c => +c.dataset.taskId)")
    assert set(shown) < set(tasks)


def test_a_filter_chosen_while_the_page_loads_is_kept(signed_in: SignedIn, server: Any,
                                                      clock: Any) -> None:
    """On a slow phone network the form shows before the page knows who is signed in: 只看逾期
    ticked then was reset to the stored filters when the list arrived (the menus listened only
    after sign-in). /api/me is held here until the box is ticked."""
    register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    open_before_sign_in(page, server.url("/inbox"), lambda: page.check("#f-overdue"))
    expect(page.locator("#tasks .empty")).to_have_text("没有逾期的任务。")
    expect(page.locator("#f-overdue")).to_be_checked()
    assert "overdue=true" in page.url


def test_a_missing_required_value_marks_its_box(signed_in: SignedIn, server: Any,
                                                tmp_path: Path) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, task)
    # Both photos chosen under 整改前 by mistake: the second is moved with its 类别 menu.
    page.set_input_files("#evidence-0", photos(tmp_path, (9, 9, 9), (250, 250, 250)))
    before = page.locator(".evidence-box[data-label='整改前']")
    expect(before.locator("img")).to_have_count(2)
    before.locator("figure").nth(1).locator("select.label-of").select_option("整改后")
    expect(before.locator("img")).to_have_count(1)
    expect(page.locator(".evidence-box[data-label='整改后'] img")).to_have_count(1)
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("done_measures")
    expect(page.locator("[name=done_measures]")).to_have_attribute("aria-invalid", "true")
    page.fill("[name=done_measures]", "已整改")
    page.click("#submit")  # the note this step requires
    expect(page.locator("#flash")).to_contain_text("需要填写说明")
    expect(page.locator("#note")).to_have_attribute("aria-invalid", "true")


def test_a_photo_handed_in_for_another_hazard_is_told_at_upload(
        signed_in: SignedIn, server: Any, tmp_path: Path) -> None:
    earlier = register_hazard(server)
    old = photos(tmp_path, (120, 60, 10), (10, 60, 120))
    ids = []
    for path in old:
        up = call(server, RECTIFIER, "POST", "/api/evidence",
                  files={"file": (Path(path).name, Path(path).read_bytes(), "image/png")})
        ids.append(up.json()["id"])
    done = call(server, RECTIFIER, "POST", f"/api/tasks/{earlier}/complete", json={
        "note": "已整改", "outputs": {"done_measures": "已清理"}, "evidence": ids,
        "evidence_labels": {ids[0]: "整改前", ids[1]: "整改后"}})
    assert done.status_code == 200, done.text

    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, register_hazard(server))
    # Last time's "after" photo chosen again for a new hazard: told now, on the photo too.
    page.set_input_files("#evidence-1", old[:1])
    expect(page.locator("#flash")).to_contain_text("这张照片已用于「")
    expect(page.locator("#flash")).to_contain_text("请重新拍照")
    expect(page.locator("#work .thumbs .reused")).to_have_text("已用于其他任务，请重新拍照")
    page.locator("#work .thumbs .remove").click()
    expect(page.locator("#work .thumbs figure")).to_have_count(0)
    # A new photo, then the same one again: kept once, and said so.
    (tmp_path / "new").mkdir()
    fresh = photos(tmp_path / "new", (5, 200, 5))
    page.set_input_files("#evidence-1", fresh)
    expect(page.locator("#work .thumbs img")).to_have_count(1)
    expect(page.locator("#work .thumbs .reused")).to_have_count(0)
    page.set_input_files("#evidence-0", fresh)  # the same photo as the scene before, too
    expect(page.locator("#flash")).to_contain_text("是同一张照片，未重复添加")
    expect(page.locator("#work .thumbs figure")).to_have_count(1)


def test_one_may_not_verify_ones_own_rectification(signed_in: SignedIn, server: Any) -> None:
    task = register_hazard(server)
    # The street's commander hands the rectification to an inspector, who does it himself.
    r = call(server, "pingshan-street-commander", "POST", f"/api/tasks/{task}/reassign",
             json={"person": FINDER})
    assert r.status_code == 200, r.text
    ids = []
    for i, colour in enumerate([(1, 2, 3), (4, 5, 6)]):
        up = call(server, FINDER, "POST", "/api/evidence",
                  files={"file": (f"p{i}.png", png(colour), "image/png")})
        assert up.status_code == 201, up.text
        ids.append(up.json()["id"])
    done = call(server, FINDER, "POST", f"/api/tasks/{task}/complete", json={
        "note": "已整改", "outputs": {"done_measures": "已清理"}, "evidence": ids,
        "evidence_labels": {ids[0]: "整改前", ids[1]: "整改后"}})
    assert done.status_code == 200, done.text

    page = signed_in(FINDER, phone=True)
    open_task(page, server, task)
    expect(page.locator("#summary .badge.status-submitted")).to_have_text("待核验")
    # No 通过/退回 the API can only refuse: the page says whose verdict it is.
    expect(page.locator("#waiting")).to_have_text(
        "已提交，等待其他人核验：自己提交的工作不能自己核验（四眼原则）。")
    expect(page.locator("#verify")).to_have_count(0)
    r = call(server, FINDER, "POST", f"/api/tasks/{task}/verify", json={"approve": True})
    assert r.status_code == 403 and "不能核验自己完成的任务" in r.text
    # The other inspector is offered the verdict.
    other = signed_in(VERIFIER, phone=True)
    open_task(other, server, task)
    expect(other.locator("#approve")).to_be_visible()


def test_a_person_of_another_street_is_told_why_not(signed_in: SignedIn, server: Any) -> None:
    task = register_hazard(server)
    page = signed_in("maluan-inspector-1", phone=True)
    page.goto(server.url(f"/tasks/{task}"))
    expect(page.locator("#flash")).not_to_contain_text("403")  # its words, not its code
    expect(page.locator("#flash")).to_contain_text("无权查看该任务")
    expect(page.locator("#unavailable")).to_contain_text("无法打开该任务")


def test_a_request_for_more_time_is_asked_and_approved(signed_in: SignedIn,
                                                       server: Any) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, task)
    page.fill("#ext-reason", "需更换防火门，厂家供货需时")
    page.click("#ext-send")  # no date: said on the phone, nothing sent
    expect(page.locator("#flash")).to_have_text("请选择新期限")
    expect(page.locator("#ext-due")).to_have_attribute("aria-invalid", "true")
    page.fill("#ext-due", "2026-03-20")  # earlier than the deadline: the API says so
    page.click("#ext-send")
    expect(page.locator("#flash")).to_contain_text("新期限须晚于当前期限（2026-04-01 24:00）")
    page.fill("#ext-due", "2026-04-15")
    page.click("#ext-send")
    expect(page.locator("#flash")).to_have_text("已提交延期申请，等待审批")
    request = page.locator(".ext-request")
    expect(request).to_have_count(1)
    expect(request).to_contain_text("待审批")
    expect(request).to_contain_text("申请延至 2026-04-15 24:00")
    expect(request.locator(".approve-ext")).to_have_count(0)  # not hers to decide
    expect(page.locator("#ext-form")).to_have_count(0)  # one pending request at a time

    chief = signed_in(CHIEF, phone=True)
    # The request is work for the supervising office: in its inbox, not only in a notice.
    chief.goto(server.url("/inbox"))
    waiting = chief.locator(f"#request-list li[data-task-id='{task}']")
    expect(waiting).to_contain_text("申请延期至")
    expect(chief.locator("#request-count")).to_have_text("（1）")
    waiting.get_by_role("link").click()
    expect(chief.locator("#summary")).to_be_visible()
    pending = chief.locator(".ext-request")
    pending.locator(".refuse-ext").click()  # refusing needs a reason
    expect(chief.locator("#flash")).to_have_text("不同意延期需说明理由")
    pending.locator(".approve-ext").click()
    expect(chief.locator("#flash")).to_have_text("已同意延期")
    expect(chief.locator(".ext-request")).to_contain_text("同意延期")
    expect(chief.locator("#due-local")).to_have_text("2026-04-15 24:00")
    expect(chief.locator("#original-due")).to_have_text("2026-04-01 24:00")

    page.reload()
    expect(page.locator("#summary .due")).to_have_text(left(44, 15))



def test_each_measure_is_answered_yes_or_no_and_a_no_is_kept(signed_in: SignedIn,
                                                             server: Any) -> None:
    """A typhoon's public measures: three required yes/no answers. Nothing chosen is refused
    by name (an unticked box would have said 否 for the grid worker); an honest 否 is kept."""
    r = call(server, "pingshan-street-commander", "POST", "/api/runs", json={
        "playbook": "typhoon-633", "unit": "pingshan-street", "params": {"name": "山竹"}})
    assert r.status_code == 201, r.text
    task = next(s for s in r.json()["steps"]
                if s["step"] == "message-public" and s["unit_id"] == "liuhe")
    page = signed_in("liuhe-grid", phone=True)
    open_task(page, server, int(task["id"]))
    page.fill("[name=households]", "abc")
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("已告知户数：应为整数")  # named as on screen
    expect(page.locator("[name=households]")).to_have_attribute("aria-invalid", "true")
    page.fill("[name=households]", "120")
    page.click("#submit")
    expect(page.locator("#flash")).to_contain_text("①关注台风消息和预警：缺少必填填报项")
    expect(page.locator("[name=watch]")).to_have_attribute("aria-invalid", "true")
    page.select_option("[name=watch]", "true")
    page.select_option("[name=secure]", "false")
    page.select_option("[name=stock]", "true")
    page.click("#submit")
    expect(page.locator("#flash")).to_have_text("已办结")
    done = call(server, "liuhe-grid", "GET", f"/api/tasks/{task['id']}").json()
    assert done["status"] == "done"
    assert done["outputs"] == {"households": 120, "watch": True, "secure": False,
                               "stock": True}


def test_a_deadline_counted_into_a_year_without_its_holidays_says_so(
        signed_in: SignedIn, server: Any, clock: Any) -> None:
    # 29 December of the calendar file's last year (2026 today): a 重大 hazard's listing
    # paperwork (3 working days) counts days of the next year, whose holidays are not in it.
    from datetime import UTC, datetime

    year = max(server.rt.calendar.years)
    clock.set(datetime(year, 12, 29, 1, 0, tzinfo=UTC))
    r = call(server, FINDER, "POST", "/api/runs", json={
        "playbook": "hazard-3030", "unit": "liuhe",
        "params": {"location": "六和社区某仓库", "description": "危化品混存",
                   "category": "危险化学品", "grade": "重大"}})
    assert r.status_code == 201, r.text
    listed = next(s for s in r.json()["steps"] if s["step"] == "list")
    assert listed["status"] == "ready" and f"{year + 1}年" in (listed["due_estimated"] or "")
    page = signed_in(listed["assignees"][0]["id"], phone=True)
    open_task(page, server, int(listed["id"]))
    expect(page.locator("#due-estimated")).to_have_text(
        f"{year + 1}年节假日安排未录入工作日历，此期限按周一至周五推算，以正式安排为准")


def test_past_its_deadline_the_phone_offers_no_request_for_more_time_and_says_why(
        signed_in: SignedIn, server: Any, clock: Any) -> None:
    task = register_hazard(server)
    page = signed_in(RECTIFIER, phone=True)
    open_task(page, server, task)
    expect(page.locator("#ext-form")).to_be_visible()  # in time: offered
    clock.advance(timedelta(days=30, hours=16))  # an hour past 1 April 24:00
    sweep_once(server.rt)
    page.reload()
    expect(page.locator("#summary .due")).to_have_text("逾期 1小时0分")
    expect(page.locator("#ext-form")).to_have_count(0)
    expect(page.locator("#ext-too-late")).to_have_text(
        "期限 2026-04-01 24:00 已过，不能再申请延期：延期须在期限届满前提出，"
        "逾期任务继续按督办程序处理。")
    # A page opened in time and sent after the deadline: told why, and the form goes.
    other = register_hazard(server)
    open_task(page, server, other)
    expect(page.locator("#ext-form")).to_be_visible()
    # Registered 2 April 01:00: the 30th day after is 2 May, inside 劳动节 (1-5 May 2026), so
    # due 6 May 24:00; a morning later it has passed.
    clock.advance(timedelta(days=35))
    page.fill("#ext-due", "2026-06-01")
    page.fill("#ext-reason", "资金未到位")
    page.click("#ext-send")
    expect(page.locator("#flash")).to_contain_text("已过，不能再申请延期")
    expect(page.locator("#ext-form")).to_have_count(0)
    expect(page.locator("#ext-too-late")).to_contain_text("不能再申请延期")
    # The API says the same to whoever asks anyway.
    r = call(server, RECTIFIER, "POST", f"/api/tasks/{task}/extension-requests",
             json={"due_at": "2026-05-01", "reason": "资金未到位"})
    assert r.status_code == 409 and r.json()["error"] == "extension_past_deadline"


def test_a_refusal_reads_不同意延期_on_the_page_in_the_timeline_and_in_the_message(
        signed_in: SignedIn, server: Any) -> None:
    task = register_hazard(server)
    asked = call(server, RECTIFIER, "POST", f"/api/tasks/{task}/extension-requests",
                 json={"due_at": "2026-04-15", "reason": "需更换防火门"})
    assert asked.status_code == 201, asked.text
    chief = signed_in(CHIEF, phone=True)
    open_task(chief, server, task)
    pending = chief.locator(".ext-request")
    expect(pending.locator(".refuse-ext")).to_have_text("不同意延期")
    pending.locator("input[name=note]").fill("整改期限内可以完成")
    pending.locator(".refuse-ext").click()
    expect(chief.locator("#flash")).to_have_text("已不同意延期")
    expect(chief.locator(".ext-request .badge")).to_have_text("不同意延期")
    run_id = call(server, RECTIFIER, "GET", f"/api/tasks/{task}").json()["run_id"]
    chief.goto(server.url(f"/runs/{run_id}"))
    expect(chief.locator("#timeline li[data-action='extension_refused']")).to_contain_text(
        "不同意延期")
    notes = call(server, RECTIFIER, "GET", "/api/inbox").json()["data"]
    [told] = [n for n in notes if n["kind"] == "extension_refused"]
    assert told["title"].startswith("【不同意延期】隐患整改·")
    assert "不同意延期" in told["body"] and "整改期限内可以完成" in told["body"]
