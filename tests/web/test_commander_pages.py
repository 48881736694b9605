"""The commander's pages: starting a playbook with its typed params (and the API's refusal of
a bad one, shown on the box to fix), a run's steps with their countdowns, a missed deadline and
who was chased for it, the documents it filed, a typhoon's stage change, a cancellation with
its reason, a refusal to read another street's run, and the list of runs and its filters.

The runtime is web/conftest.py's: the shipped playbooks (the staged one is 台风633,
playbooks/typhoon-633.yaml: a stage change fans tasks out to every community of the street)
on the demo district."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from factories import complete_answered, png_bytes, run_steps
from playwright.sync_api import Page, expect

from flows.evidence import store_evidence
from flows.lifecycle import cancel_run, set_stage, start_run
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from flows.tasks import complete
from models.clock import ManualClock

SignedIn = Callable[..., Page]

LEAK = {"location": "六和社区深汕路88号", "grade": "一般"}


def call(server: Any, person: str, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {server.token(person)}"}
    r = httpx.request(method, server.url(path), headers=headers, timeout=10, **kwargs)
    assert r.status_code < 400, r.text
    return r.json()


def start_leak(server: Any, unit: str = "liuhe", actor: str = "wang-qiang", **params: Any) -> int:
    run = start_run(server.rt, playbook_id="gas-leak", unit_id=unit,
                    params={**LEAK, **params}, actor=actor)
    return run.id or 0


def step_of(server: Any, run_id: int, key: str) -> dict[str, Any]:
    run = call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")
    return next(s for s in run["steps"] if s["step"] == key)


def run_id_from(page: Page) -> int:
    match = re.search(r"/runs/(\d+)$", page.url)
    assert match, page.url
    return int(match.group(1))


def left(minutes: int) -> re.Pattern[str]:
    """The countdown of a deadline `minutes` ahead of the (frozen) server clock. The page counts
    from the server's time plus the time passed since on the browser's own clock, which moves
    on meanwhile: a moment after the page drew it, it may say a minute or so less."""
    return re.compile(rf"^剩余 [0-{minutes}]分钟$")


# What a jump forward past stages never handed out says it does, unless they are passed over.
BY_DEFAULT = ("这些阶段的任务默认一并下达；如这些阶段已不适用（如台风转向未登陆），可写明原因跳过，"
              "其任务不下达（之后退回到该阶段时再下达）。")

# Past the deadline, by the same reckoning: a minute late at least.
LATE = re.compile(r"^逾期 \d+分钟$")


def step_rows(rt: Any, run_id: int, key: str) -> dict[str, Any]:
    """A fan-out step's instances by unit."""
    return {r.unit_id: r for r in run_steps(rt, run_id) if r.step_key == key}


def step_item(page: Page, key: str) -> Any:
    return page.locator(f"#steps li[data-step='{key}']")


# -- starting ------------------------------------------------------------------------------------

def test_a_commander_starts_the_gas_leak_and_sees_its_steps_counting_down(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in("wang-qiang")
    page.goto(server.url("/runs/new?playbook=gas-leak"))
    expect(page.locator("#playbook")).to_have_value("gas-leak")
    expect(page.locator("#unit")).to_have_value("pingshan")  # his own unit first
    # Whom the duty room's alerts wake now (the demo's roster): 黄磊's shift, until 08:30.
    expect(page.locator("#on-duty")).to_have_text("今日值班：坪山区值班员 黄磊（至 03-03 08:30）")
    # The form is the playbook's params: required marked, defaults filled, enum as a choice.
    expect(page.locator(".param[data-param='location'] .req")).to_have_count(1)
    expect(page.locator("[name=grade]")).to_have_value("一般")
    expect(page.locator("[name=casualties]")).to_have_value("0")
    page.select_option("#unit", "liuhe")
    page.fill("[name=location]", "六和社区深汕路88号")
    page.select_option("[name=grade]", "较大")
    page.fill("[name=brief]", "居民楼一层燃气管道破损")
    page.click("#start-submit")

    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    run = call(server, "wang-qiang", "GET", f"/api/runs/{run_id_from(page)}")
    assert (run["unit_id"], run["params"]["location"], run["params"]["grade"]) == \
        ("liuhe", "六和社区深汕路88号", "较大")
    assert run["params"]["enterprise"] is None  # left empty: not sent, the default stands
    expect(page.locator("#heading")).to_have_text(run["title"])
    expect(page.locator("#run-status")).to_contain_text("进行中")
    expect(page.locator("#params-table")).to_contain_text("六和社区深汕路88号")
    # The alert is with the duty room, three minutes on the clock; the five-minute first
    # report is not reached yet but already shows whose it will be and its legal deadline.
    receive = step_item(page, "receive")
    expect(receive).to_contain_text("接收燃气泄漏警情")
    expect(receive).to_contain_text("待办")
    expect(receive).to_contain_text("黄磊")
    expect(receive.locator(".due")).to_have_text(left(3))
    expect(receive.locator("a")).to_have_attribute("href", f"/tasks/{run['steps'][0]['id']}")
    # 叫应: the acknowledgement is due long before the work, and the commander sees when.
    expect(receive.locator(".ack-due")).to_contain_text("叫应时限")
    expect(receive.locator(".ack-due")).to_contain_text("2026-03-02 09:01 前签收")
    report = step_item(page, "report.write")
    expect(report).to_have_class(re.compile("not-reached"))
    expect(report).to_contain_text("撰写突发事件首报")
    expect(report).to_contain_text("预计 黄磊")
    expect(report.locator(".due")).to_have_text(left(5))
    expect(report).to_contain_text("2026-03-02 09:05")
    expect(page.locator("#timeline li[data-action='run_started']")).to_contain_text("王强")


def test_starting_again_where_the_same_response_runs_asks_first(
        signed_in: SignedIn, server: Any) -> None:
    """A second tap (or a retry after a lost answer) shows the running response and starts
    nothing until the commander confirms that this is another event."""
    first = start_leak(server)
    page = signed_in("wang-qiang")
    page.goto(server.url("/runs/new?playbook=gas-leak"))
    page.select_option("#unit", "liuhe")
    page.fill("[name=location]", "六和社区深汕路88号")
    page.click("#start-submit")

    box = page.locator("#concurrent")
    expect(box).to_be_visible()
    expect(box).to_contain_text("已有进行中的同一预案")
    link = box.locator(f"a[href='/runs/{first}']")
    expect(link).to_contain_text(f"#{first} 燃气泄漏")
    expect(box).to_contain_text("六和社区，王强")
    expect(page).to_have_url(re.compile(r"/runs/new"))
    assert len(call(server, "wang-qiang", "GET", "/api/runs?playbook=gas-leak")["data"]) == 1

    page.click("#concurrent-no")  # the same event: nothing started, the box goes
    expect(box).to_be_hidden()
    assert len(call(server, "wang-qiang", "GET", "/api/runs?playbook=gas-leak")["data"]) == 1

    page.click("#start-submit")
    expect(box).to_be_visible()
    page.click("#concurrent-yes")  # another leak in the same community
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    second = run_id_from(page)
    assert second != first
    assert len(call(server, "wang-qiang", "GET", "/api/runs?playbook=gas-leak")["data"]) == 2


def test_the_task_page_shows_the_acknowledgement_deadline_and_stops_counting_once_done(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    run_id = start_leak(server)
    receive = step_of(server, run_id, "receive")
    assert (receive["ack_due_at_local"], receive["due_at_local"]) == (
        "2026-03-02 09:01", "2026-03-02 09:03")
    page = signed_in("pingshan-duty-1")
    page.goto(server.url(f"/tasks/{receive['id']}"))
    expect(page.locator("#ack-due-local")).to_have_text("2026-03-02 09:01")
    expect(page.locator("#ack")).to_have_text("签收（09:01 前）")
    clock.advance(timedelta(minutes=2))  # 09:02: the sign-for is late, and the button says so
    page.reload()
    expect(page.locator("#ack")).to_have_text("签收（已超过签收时限 09:01）")
    page.click("#ack")
    expect(page.locator("#ack")).to_have_count(0)
    expect(page.locator("#ack-due-local")).to_have_count(0)  # answered: no longer due
    expect(page.locator("#summary .due")).to_have_count(1)  # the work's deadline counts down
    call(server, "pingshan-duty-1", "POST", f"/api/tasks/{receive['id']}/complete",
         json={"outputs": {"scene": "一层厨房管道破损"}})
    page.reload()
    expect(page.locator("#due-local")).to_have_text("2026-03-02 09:03")
    expect(page.locator("#summary .due")).to_have_count(0)  # done: the clock has stopped


def test_a_missing_or_bad_param_is_the_apis_422_on_its_box_and_starts_nothing(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in("pingshan-street-commander")
    page.goto(server.url("/runs/new?playbook=gas-leak"))
    expect(page.locator("#unit")).to_have_value("pingshan-street")
    page.click("#start-submit")
    # Said by the box's own words (地点), not by the key the API reads (params.location).
    expect(page.locator("#flash")).to_contain_text("地点：缺少必填参数“地点”")
    expect(page.locator("#flash")).not_to_contain_text("params.location")
    expect(page.locator("[name=location]")).to_have_attribute("aria-invalid", "true")

    page.fill("[name=location]", "坪山街道东纵路1号")
    page.fill("[name=casualties]", "-2")
    page.click("#start-submit")
    expect(page.locator("#flash")).to_contain_text("不能小于 0")
    expect(page.locator("[name=casualties]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[name=location]")).not_to_have_attribute("aria-invalid", "true")

    page.fill("[name=casualties]", "两人")
    page.click("#start-submit")
    expect(page.locator("#flash")).to_contain_text("应为整数")
    expect(page).to_have_url(server.url("/runs/new?playbook=gas-leak"))
    # Two mistakes at once are both said and both boxes marked.
    page.fill("[name=location]", "")
    page.click("#start-submit")
    expect(page.locator("#flash")).to_contain_text("缺少必填参数“地点”")
    expect(page.locator("#flash")).to_contain_text("伤亡人数：应为整数")
    expect(page.locator("[name=location]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[name=casualties]")).to_have_attribute("aria-invalid", "true")
    assert call(server, "wang-qiang", "GET", "/api/runs")["count"] == 0


def test_a_unit_the_commander_does_not_command_is_refused_in_the_apis_words(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in("pingshan-street-commander")
    page.goto(server.url("/runs/new"))
    # Only her street and its communities are offered; an address tampered with is the API's.
    expect(page.locator("#unit option[value='liuhe']")).to_have_count(1)  # the list is drawn
    assert "maluan" not in page.locator("#unit option").evaluate_all(
        "options => options.map(o => o.value)")
    page.locator("#unit").evaluate(
        "select => select.append(new Option('马峦街道', 'maluan', true, true))")
    page.select_option("#playbook", "gas-leak")
    page.fill("[name=location]", "马峦街道某小区")
    page.click("#start-submit")
    expect(page.locator("#flash")).not_to_contain_text("403")  # its words, not its code
    expect(page.locator("#flash")).to_contain_text("指挥长")
    assert call(server, "wang-qiang", "GET", "/api/runs")["count"] == 0


def test_an_inspector_registers_a_hazard_with_the_time_found_in_the_bureaus_zone(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in("pingshan-street-inspector-1", phone=True)
    page.goto(server.url("/runs/new"))
    expect(page.locator("#playbook option")).to_have_count(1)  # hazard-3030 only
    # A hazard is a community's or an enterprise's, not the street's: none is preselected.
    expect(page.locator("#unit")).to_have_value("")
    expect(page.locator("#unit option").first).to_have_text("请选择责任单位（社区/企业）")
    page.select_option("#unit", "liuhe")
    page.fill("[name=location]", "六和社区某厂房二楼")
    page.select_option("[name=grade]", "重大")
    page.fill("[name=found_at]", "2026-03-02T08:30")
    page.click("#start-submit")
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    run = call(server, "wang-qiang", "GET", f"/api/runs/{run_id_from(page)}")
    assert (run["params"]["found_at"], run["params"]["grade"], run["unit_id"]) == \
        ("2026-03-02T08:30:00+08:00", "重大", "liuhe")
    expect(page.locator("#controls")).to_be_hidden()  # an inspector commands nothing


# -- watching a run ------------------------------------------------------------------------------

def test_a_missed_deadline_shows_overdue_and_who_was_chased(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    run_id = start_leak(server)
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    expect(step_item(page, "receive").locator(".due")).to_have_text(left(3))
    expect(page.locator("#escalations")).to_contain_text("暂无督办")

    clock.advance(timedelta(minutes=4))
    sweep_once(server.rt)
    page.reload()
    receive = step_item(page, "receive")
    expect(receive.locator(".overdue-badge")).to_have_text("逾期")
    expect(receive.locator(".due")).to_have_text(LATE)
    expect(receive).to_contain_text("时限 2026-03-02 09:03")
    expect(receive.locator(".due")).to_have_class(re.compile("overdue"))
    chased = page.locator("#escalations-table tr[data-kind='escalate']")
    expect(chased).to_contain_text("接收燃气泄漏警情")
    expect(chased).to_contain_text("督办提醒")
    expect(chased).to_contain_text("刘洋")
    expect(chased).to_contain_text("2026-03-02 09:04:00")
    expect(page.locator("#timeline li[data-action='overdue']")).to_have_count(1)


def test_after_downtime_the_ladder_shows_when_each_rung_was_due_and_counts_what_was_sent(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    run_id = start_leak(server)
    clock.advance(timedelta(minutes=3, seconds=10))  # due 09:03: level 1, swept in time
    sweep_once(server.rt)
    clock.advance(timedelta(hours=5))  # then the server is down for five hours
    sweep_once(server.rt)  # level 2, due 09:08, goes out at 14:03
    clock.advance(timedelta(minutes=5))
    sweep_once(server.rt)  # and its repeat, in time again
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    rows = page.locator("#escalations-table tr[data-kind='escalate']")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator(".fired")).to_have_text("2026-03-02 09:03:10")
    expect(rows.nth(1).locator(".fired")).to_have_text(
        "2026-03-02 14:03:10应触发 2026-03-02 09:08:00（补发）")
    expect(rows.nth(2).locator(".fired")).to_have_text("2026-03-02 14:08:10")
    # The repeat is the second 督办 of level 2 anyone received, not the 61st slot of the
    # five hours missed.
    expect(rows.nth(2).locator("td").nth(2)).to_have_text("2（第 2 次）")
    levels = call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")["escalations"]
    assert [(e["level"], e["repeat"], e["ordinal"], e["fired_late"]) for e in levels
            if e["kind"] == "escalate"] == [(1, 0, 1, False), (2, 0, 1, True), (2, 60, 2, False)]


def test_the_first_report_filed_shows_as_a_document_and_its_sending(
        signed_in: SignedIn, server: Any) -> None:
    run_id = start_leak(server)
    duty = "pingshan-duty-1"
    receive = step_of(server, run_id, "receive")
    call(server, duty, "POST", f"/api/tasks/{receive['id']}/complete",
         json={"outputs": {"scene": "一层厨房管道破损"}})
    write = step_of(server, run_id, "report.write")
    call(server, duty, "POST", f"/api/tasks/{write['id']}/complete",
         json={"outputs": {"scene": "一层厨房管道破损", "measures": "已疏散住户"}})
    drain_wakes(server.rt)  # the engine files the report and sends it (segments run bare)

    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    doc = page.locator("#documents details.doc").first
    # Under its own title, formatted (tests/web/test_run_documents_page.py has the rest).
    expect(doc.locator(".doc-title")).to_have_text("突发事件首报")
    body = doc.locator(".doc-html")
    expect(body).to_be_hidden()  # collapsed until opened
    doc.locator(":scope > summary").click()
    expect(body).to_contain_text("六和社区深汕路88号")
    expect(body).to_contain_text("已疏散住户")
    expect(step_item(page, "report.write")).to_contain_text("已完成")
    expect(step_item(page, "report.write")).to_contain_text("提交：黄磊")
    expect(step_item(page, "report.send")).to_contain_text("已完成")
    # The sending went to the county's duty office; the record is folded away until asked for.
    notes = page.locator("#notifications")
    expect(notes.locator("#notes-table")).to_be_hidden()
    notes.locator(":scope > summary").click()
    expect(notes.locator("#notes-table")).to_contain_text("报送首报")
    expect(notes.locator("#notes-table")).to_contain_text("黄磊")
    # What the report said, once per text however many it went to, can be read back.
    sent = notes.locator("#messages details.message", has_text="报送首报").first
    expect(sent.locator(".doc-html")).to_be_hidden()
    sent.locator(":scope > summary").click()
    # Formatted as the phone shows it, with the text as sent under 原文.
    expect(sent.locator(".doc-html")).to_contain_text("已疏散住户")
    expect(sent.locator(".doc-html")).not_to_contain_text("**")
    sent.locator(".doc-source > summary").click()
    expect(sent.locator("pre.doc-body")).to_contain_text("已疏散住户")
    expect(sent).to_contain_text("发送：")


def test_a_typhoon_started_in_the_browser_moves_to_warning_and_its_tasks_appear(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in("pingshan-street-commander")
    page.goto(server.url("/runs/new?playbook=typhoon-633"))
    # The six stages by their titles, each with its steps.
    stages = page.locator("#stages li")
    expect(stages).to_have_count(6)
    expect(stages.first).to_contain_text("台风消息")
    expect(page.locator("#stages li[data-stage='warning']")).to_contain_text("台风警报")
    expect(page.locator("#stages li[data-stage='warning']")).to_contain_text(
        "【台风警报】社区落实三项防御措施")
    expect(page.locator("#stages li[data-stage='severe']")).to_contain_text("危险区人员转移")
    page.fill("[name=name]", "山竹")
    page.fill("[name=areas]", "六和社区低洼地段\n东门社区在建工地\n")
    page.fill("[name=landfall]", "2026-03-03T14:00")
    page.select_option("[name=signal]", "黄色")
    expect(page.locator("#help-areas")).to_contain_text("低洼易涝点")
    page.click("#start-submit")
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    run_id = run_id_from(page)
    params = call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")["params"]
    assert params == {"name": "山竹", "areas": ["六和社区低洼地段", "东门社区在建工地"],
                      "landfall": "2026-03-03T14:00:00+08:00", "signal": "黄色"}
    expect(page.locator("#run-status")).to_contain_text("阶段：台风消息")
    # A time param in the bureau's zone, as people write it, not as ISO text.
    expect(page.locator("#params-table tr[data-param='landfall'] td")).to_have_text(
        "2026-03-03 14:00")
    expect(step_item(page, "warning-community")).to_have_class(re.compile("not-reached"))
    expect(step_item(page, "message-community")).to_have_count(5)

    # Jumping stages is said before it is done: the stages jumped over hand out theirs too.
    page.select_option("#stage", "severe")
    page.click("#stage-ask")
    expect(page.locator("#stage-effect")).to_have_text(
        f"越过 台风警报、紧急警报（蓝色/黄色预警）：{BY_DEFAULT}")
    expect(page.locator("#stage-pass-over")).to_have_text(
        "跳过 台风警报、紧急警报（蓝色/黄色预警） 并切换")
    page.click("#stage-no")
    page.select_option("#stage", "warning")
    page.click("#stage-ask")
    confirm = page.locator("#stage-yes")
    expect(confirm).to_have_text("确认切换到 台风警报")
    expect(page.locator("#stage-effect")).to_have_text("")
    assert call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")["stage"] == "message"
    confirm.click()
    expect(page.locator("#flash")).to_contain_text("已切换到阶段 台风警报")
    expect(page.locator("#run-status")).to_contain_text("阶段：台风警报")
    acks = step_item(page, "warning-community")
    expect(acks).to_have_count(5)  # one per community of the street
    liuhe = acks.filter(has_text="六和社区")
    expect(liuhe).to_contain_text("【台风警报】社区落实三项防御措施")
    expect(liuhe).to_contain_text("贾丽萍")
    expect(liuhe.locator(".due")).to_have_text(re.compile(r"^剩余 (6小时0分|5小时\d+分)$"))
    expect(step_item(page, "warning-street")).to_contain_text("王建华")  # the street's head
    expect(step_item(page, "warning-public")).to_have_count(5)
    expect(page.locator("#timeline li[data-action='stage_changed']")).to_contain_text(
        "台风消息 → 台风警报")
    # Each community's task in the timeline is named with its own community, not the last's.
    handed = page.locator("#timeline li[data-action='ready']").filter(
        has_text="【台风警报】社区落实三项防御措施")
    expect(handed).to_have_count(5)
    for community in ("六和社区", "和平社区", "坪山社区", "东门社区", "新和社区"):
        expect(handed.filter(has_text=community)).to_have_count(1)
    assert call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")["stage"] == "warning"
    # Going back asks what becomes of the open tasks of the stage left; kept, they stay.
    page.select_option("#stage", "message")
    page.click("#stage-ask")
    expect(page.locator("#stage-effect")).to_have_text(
        "退回到较早阶段：台风警报尚有 11 项任务未完成。"
        "撤销的任务停止计时和督办，记为已撤销（不算完成），"
        "并通知其负责人，再次进入该阶段时重新下达；保留的任务继续有效、继续计时。请选择："
        "“台风消息”的任务此前已下达，不会重复下达。")
    expect(page.locator("#stage-yes")).to_be_hidden()
    page.click("#stage-keep")
    expect(page.locator("#flash")).to_contain_text("已切换到阶段 台风消息，保留 11 项未完成任务")
    expect(page.locator("#run-status")).to_contain_text("阶段：台风消息")
    expect(step_item(page, "warning-community").first).to_contain_text("待办")
    expect(page.locator("#timeline li[data-action='stage_changed']").last).to_contain_text(
        "保留 11 项较高阶段未完成任务")
    # Forward again past a stage already handed out: only the new one is said to go out.
    page.select_option("#stage", "severe")
    page.click("#stage-ask")
    expect(page.locator("#stage-effect")).to_have_text(
        f"越过 紧急警报（蓝色/黄色预警）：{BY_DEFAULT}台风警报的任务此前已下达，不会重复下达。")


def typhoon_with_people_moved(signed_in: SignedIn, server: Any, commander: str,
                              *, phone: bool = False) -> tuple[int, Page]:
    """马峦街道's typhoon at 橙色/红色预警, 马峦社区 having moved 4 people; its page, signed in."""
    rt = server.rt
    run_id = start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                       params={"name": "山竹"}, actor=commander).id or 0
    set_stage(rt, run_id=run_id, stage="severe", actor=commander)
    complete_answered(rt, step_rows(rt, run_id, "transfer")["maluan-community"], people=4)
    page = signed_in(commander, phone=phone)
    page.goto(server.url(f"/runs/{run_id}"))
    return run_id, page


def test_a_downgraded_typhoon_calls_off_the_higher_stages_open_tasks_from_its_page(
        signed_in: SignedIn, server: Any) -> None:
    """橙色/红色预警 lowered to 紧急警报: the page lists what the higher stage left open and
    asks; calling all off needs a note, then those tasks read 已取消 (not done) in the list,
    the overview and the timeline, a done transfer stays done, and the holders are told."""
    commander = "maluan-commander"
    run_id, page = typhoon_with_people_moved(signed_in, server, commander)
    page.select_option("#stage", "emergency")
    page.click("#stage-ask")
    expect(page.locator("#stage-effect")).to_contain_text(
        "退回到较早阶段：橙色/红色预警尚有 11 项任务未完成。")
    expect(page.locator("#stage-yes")).to_be_hidden()  # no default: call off, or keep
    listed = page.locator("#stage-open li[data-step='transfer']")
    expect(listed).to_have_text("【橙色/红色预警】危险区人员转移：2 项（江岭社区、坪环社区）")
    # 4 measures and transfers, and the 应转未转 rounds of the two communities whose transfer is
    # not in yet (pending on it: called off with it, handed out again with it).
    expect(page.locator("#stage-open li")).to_have_count(5)
    # Without a note the API refuses; the choice stays up with the box to fill marked.
    page.click("#stage-call-off")
    expect(page.locator("#flash")).to_contain_text("撤销说明：撤销任务须写明说明")
    expect(page.locator("#flash")).not_to_contain_text("note:")
    expect(page.locator("#stage-note")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#stage-confirm")).to_be_visible()
    page.fill("#stage-note", "预警降为黄色，暂停转移")
    page.click("#stage-call-off")
    expect(page.locator("#flash")).to_contain_text(
        "已切换到阶段 紧急警报（蓝色/黄色预警），撤销 11 项任务")
    transfers = step_item(page, "transfer")
    expect(transfers.filter(has_text="江岭社区")).to_contain_text("已取消")
    expect(transfers.filter(has_text="江岭社区")).to_contain_text("撤销于")
    expect(transfers.filter(has_text="江岭社区").locator(".due")).to_have_count(0)
    expect(transfers.filter(has_text="马峦社区")).to_contain_text("已完成")
    row = page.locator("#overview-table tr[data-step='transfer'] td")
    expect(row.nth(4)).to_have_text("1")  # done
    expect(row.nth(5)).to_have_text("2")  # called off, not done
    offs = page.locator("#timeline li[data-action='called_off']")
    expect(offs).to_have_count(11)
    expect(offs.filter(has_text="江岭社区").filter(has_text="危险区人员转移")).to_contain_text(
        "说明：预警降为黄色，暂停转移")
    expect(page.locator("#timeline li[data-action='stage_changed']").last).to_contain_text(
        "撤销 11 项较高阶段任务")
    told = call(server, "jiangling-head", "GET", "/api/inbox")["data"]
    assert any(n["title"].startswith("【任务撤销】") and "预警降为黄色" in n["body"]
               for n in told)


def test_a_typhoon_raised_again_hands_its_called_off_tasks_out_again_from_its_page(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    """橙色 lowered to 黄色 with every open 橙红 task called off, then 橙色 again two hours
    later: the page says what going up hands out again before it is done; then each
    called-off task has a new one beside it, counting down from this entry, the overview
    counts each community once, the timeline says what went out again, and the old task's
    page leads to the new one. A transfer done before the downgrade stays done, alone."""
    rt = server.rt
    commander = "maluan-commander"
    run_id = start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                       params={"name": "山竹"}, actor=commander).id or 0
    set_stage(rt, run_id=run_id, stage="severe", actor=commander)
    complete_answered(rt, step_rows(rt, run_id, "transfer")["maluan-community"], people=4)
    old = step_rows(rt, run_id, "transfer")["jiangling"].id
    set_stage(rt, run_id=run_id, stage="emergency", actor=commander, call_off_all=True,
              note="预警降为黄色，暂停转移")
    clock.advance(timedelta(hours=2))

    page = signed_in(commander)
    page.goto(server.url(f"/runs/{run_id}"))
    page.select_option("#stage", "severe")
    page.click("#stage-ask")
    expect(page.locator("#stage-effect")).to_have_text(
        "“橙色/红色预警”此前撤销的 11 项任务将重新下达（重新计时），已完成和保留的任务不重复下达。")
    page.click("#stage-yes")
    expect(page.locator("#flash")).to_contain_text(
        "已切换到阶段 橙色/红色预警，重新下达 11 项此前撤销的任务")
    jiangling = step_item(page, "transfer").filter(has_text="江岭社区")
    expect(jiangling).to_have_count(2)
    expect(jiangling.nth(0)).to_contain_text("已取消")
    expect(jiangling.nth(0).locator(".again-badge")).to_have_text("已重新下达")
    expect(jiangling.nth(1)).to_contain_text("待办")
    expect(jiangling.nth(1).locator(".again-badge")).to_have_text("重新下达")
    # Six hours from this entry, not the four left of the first deadline.
    expect(jiangling.nth(1).locator(".due")).to_have_text(
        re.compile(r"^剩余 (6小时0分|5小时\d+分)$"))
    maluan = step_item(page, "transfer").filter(has_text="马峦社区")
    expect(maluan).to_have_count(1)
    expect(maluan).to_contain_text("已完成")
    row = page.locator("#overview-table tr[data-step='transfer'] td")
    expect(row.nth(2)).to_have_text("3")  # each community once
    expect(row.nth(4)).to_have_text("1")  # done
    expect(row.nth(5)).to_have_text("0")  # none called off now
    expect(page.locator("#timeline li[data-action='rehanded']")).to_contain_text(
        "重新下达 11 项此前撤销的任务")
    again = page.locator("#timeline li[data-action='ready']").filter(
        has_text="重新下达（原任务随预警降级撤销）")
    expect(again).to_have_count(9)
    expect(page.locator("#timeline li[data-action='called_off']")).to_have_count(11)

    new = next(s["id"] for s in call(server, commander, "GET", f"/api/runs/{run_id}")["steps"]
               if s["rehanded_from"] == old)
    page.goto(server.url(f"/tasks/{old}"))
    expect(page.locator("#rehanded a")).to_have_attribute("href", f"/tasks/{new}")
    page.locator("#rehanded a").click()
    expect(page.locator("#rehanded")).to_contain_text("此任务为重新下达")


def test_a_typhoon_page_sums_up_each_measure_and_filters_what_is_left(
        signed_in: SignedIn, server: Any) -> None:
    """Hundreds of steps: the overview says per measure how many units answered, finished,
    are late or reported a measure not taken, and what they counted; the list filters."""
    rt = server.rt
    commander = "maluan-commander"
    run_id = start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                       params={"name": "山竹"}, actor=commander).id or 0
    set_stage(rt, run_id=run_id, stage="warning", actor=commander)
    warned = step_rows(rt, run_id, "warning-community")
    complete_answered(rt, warned["maluan-community"], drains=False)
    complete_answered(rt, warned["jiangling"])
    set_stage(rt, run_id=run_id, stage="severe", actor=commander)
    moved = step_rows(rt, run_id, "transfer")
    complete_answered(rt, moved["maluan-community"], people=4)
    complete_answered(rt, moved["jiangling"], people=6)

    page = signed_in(commander)
    page.goto(server.url(f"/runs/{run_id}"))
    table = page.locator("#overview-table")
    transfer = table.locator("tr[data-step='transfer']")
    expect(transfer.locator("td").nth(2)).to_have_text("3")  # communities of the street
    expect(transfer.locator("td").nth(4)).to_have_text("2")  # done
    expect(transfer.locator("td").nth(8)).to_contain_text("转移人数（要转谁） 10")
    warning = table.locator("tr[data-step='warning-community']")
    expect(warning.locator("td").nth(4)).to_have_text("2")
    expect(warning.locator("td").nth(5)).to_have_text("0")  # none called off
    expect(warning.locator("td").nth(7)).to_have_text("1")  # one reported a measure not taken
    # The step that says 否 says so, not plain 已完成.
    flagged = step_item(page, "warning-community").filter(has_text="马峦社区")
    expect(flagged.locator(".unmet")).to_have_text("未落实：②清理沟渠、加固简易房和广告牌")

    page.check("input[name=step-filter][value=unmet]")
    expect(page.locator("#steps > li")).to_have_count(1)
    expect(page.locator("#step-count")).to_contain_text("显示 1 项")
    page.check("input[name=step-filter][value=open]")
    expect(page.locator("#steps li[data-status='done']")).to_have_count(0)
    expect(page.locator("#steps li[data-step='transfer']")).to_have_count(1)  # the third
    page.check("input[name=step-filter][value=all]")
    expect(page.locator("#steps li[data-step='transfer']")).to_have_count(3)


def test_the_by_step_summary_reads_on_the_commanders_phone(
        signed_in: SignedIn, server: Any) -> None:
    """At 3 a.m. on a 390 px phone: each measure of the summary is a card whose title reads on
    one or two lines and whose 合计 (the people moved) is on the screen. Before, nine columns
    squeezed the title to a character a line and 合计 sat off to the right of the table."""
    _, page = typhoon_with_people_moved(signed_in, server, "maluan-commander", phone=True)
    table = page.locator("#overview-table")
    expect(table).to_be_visible()
    # The table fits its box: nothing to scroll sideways to.
    assert page.evaluate("(() => { const w = document.querySelector('#overview-table')"
                         ".parentElement; return w.scrollWidth <= w.clientWidth; })()")
    transfer = table.locator("tr[data-step='transfer']")
    title = transfer.locator("td.step-name")
    expect(title).to_have_text("【橙色/红色预警】危险区人员转移")
    sums = transfer.locator("td.sums")
    expect(sums).to_contain_text("转移人数（要转谁） 4")
    for cell in (title, sums):
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    title_box = title.bounding_box()
    assert title_box is not None and title_box["width"] > 200  # not a character a line
    # Each figure still says what it counts, the column heads being out of sight.
    expect(transfer.locator("td").nth(4)).to_have_attribute("data-label", "已完成")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_communitys_return_waits_for_its_own_transfer_and_says_so(
        signed_in: SignedIn, server: Any) -> None:
    """item_needs on the page: 马峦社区 recorded its transfer, so its return is handed out and
    counts down; 江岭社区 has not, so its return is listed pending with whom it will go to,
    and its own page says it cannot be worked yet."""
    rt = server.rt
    run = start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                    params={"name": "山竹"}, actor="maluan-commander")
    run_id = run.id or 0
    set_stage(rt, run_id=run_id, stage="severe", actor="maluan-commander")
    moved = step_rows(rt, run_id, "transfer")["maluan-community"]
    photo = store_evidence(rt, data=png_bytes(), filename="转移现场.png",
                           uploaded_by="maluan-community-head").id
    complete(rt, step_id=moved.id or 0, actor="maluan-community-head", evidence=[photo],
             outputs={"moved_at": "2026-03-02T08:30:00+08:00", "people": 4,
                      "from_where": "低洼地段", "mover": "网格员", "shelter": "社区服务中心",
                      "management": "专人值守"})
    set_stage(rt, run_id=run_id, stage="recovery", actor="maluan-commander")
    waiting = step_rows(rt, run_id, "return")["jiangling"]

    page = signed_in("maluan-commander")
    page.goto(server.url(f"/runs/{run_id}"))
    returns = step_item(page, "return")
    expect(returns).to_have_count(3)
    given = returns.filter(has_text="马峦社区")
    expect(given).to_contain_text("待办")
    expect(given.locator(".due")).to_have_text(re.compile(r"^剩余 "))
    held = returns.filter(has_text="江岭社区")
    expect(held).to_contain_text("待开始")
    expect(held).to_contain_text("负责人：预计 任春梅")
    expect(held.locator(".due")).to_have_count(0)

    head = signed_in("jiangling-head", phone=True)
    head.goto(server.url(f"/tasks/{waiting.id}"))
    expect(head.locator("#not-yet")).to_have_text("尚未开始：前序步骤完成后才能办理，届时另行通知。")
    expect(head.locator("#ack")).to_have_count(0)

    # 马峦社区's return shows its own transfer, and holds the counts to it.
    given_row = step_rows(rt, run_id, "return")["maluan-community"]
    maluan = signed_in("maluan-community-head", phone=True)
    maluan.goto(server.url(f"/tasks/{given_row.id}"))
    paired = maluan.locator("#paired .paired[data-step='transfer']")
    expect(paired).to_contain_text("本单位已填报")
    expect(paired).to_contain_text("转移人数（要转谁）")
    expect(paired.locator("tr", has_text="转移人数")).to_contain_text("4")
    maluan.fill("[name=returned]", "5")
    maluan.fill("[name=remaining]", "0")
    maluan.select_option("[name=checked]", "true")
    maluan.click("#submit")
    expect(maluan.locator("#flash")).to_contain_text("应等于本社区转移人数 4 人")
    expect(maluan.locator("[name=returned]")).to_have_attribute("aria-invalid", "true")


def test_a_typhoon_response_is_ended_on_its_page_once_the_last_stage_is_done(
        signed_in: SignedIn, server: Any) -> None:
    rt = server.rt
    commander = "maluan-commander"
    run_id = start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                       params={"name": "山竹"}, actor=commander).id or 0
    set_stage(rt, run_id=run_id, stage="severe", actor=commander)
    for row in step_rows(rt, run_id, "transfer").values():
        complete_answered(rt, row)
    set_stage(rt, run_id=run_id, stage="recovery", actor=commander)
    page = signed_in(commander)
    page.goto(server.url(f"/runs/{run_id}"))
    expect(page.locator("#end-form")).to_be_visible()
    # Too early: the API's 409 says what the last stage still owes; nothing ends.
    page.click("#end-ask")
    page.click("#end-yes")
    expect(page.locator("#flash")).to_contain_text("“解除与灾后恢复”阶段尚未完成")
    assert call(server, commander, "GET", f"/api/runs/{run_id}")["status"] == "running"

    for key in ("return", "recovery-street", "recovery-community", "recovery-public"):
        for row in step_rows(rt, run_id, key).values():
            complete_answered(rt, row)
    drain_wakes(rt)
    page.reload()
    page.fill("#end-note", "台风已远离，解除响应")
    page.click("#end-ask")
    expect(page.locator("#end-confirm")).to_contain_text("此前各阶段仍未完成的任务将停止")
    page.click("#end-yes")
    expect(page.locator("#flash")).to_contain_text("响应已结束")
    expect(page.locator("#run-status")).to_contain_text("已完成")
    expect(page.locator("#controls")).to_be_hidden()
    ended = page.locator("#timeline li[data-action='run_completed']")
    expect(ended).to_contain_text("说明：台风已远离，解除响应")
    expect(ended).to_contain_text("停止 ")
    expect(ended).to_contain_text("【台风消息】")
    assert call(server, commander, "GET", f"/api/runs/{run_id}")["status"] == "completed"


def test_a_typhoon_whose_warning_is_lifted_early_is_ended_where_it_is(
        signed_in: SignedIn, server: Any) -> None:
    rt = server.rt
    commander = "maluan-commander"
    run_id = start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                       params={"name": "山竹"}, actor=commander).id or 0
    set_stage(rt, run_id=run_id, stage="warning", actor=commander)
    page = signed_in(commander)
    page.goto(server.url(f"/runs/{run_id}"))
    expect(page.locator("#end-form")).to_be_visible()
    expect(page.locator("#end-hint")).to_contain_text("当前为“台风警报”，提前结束须写原因")
    page.click("#end-ask")
    expect(page.locator("#end-confirm")).to_contain_text("尚未进入“解除与灾后恢复”")
    page.click("#end-yes")  # no reason: the API's 422 in the page, nothing ends
    expect(page.locator("#flash")).to_contain_text("提前结束响应须说明原因")
    assert call(server, commander, "GET", f"/api/runs/{run_id}")["status"] == "running"
    page.fill("#end-note", "台风转向，预警解除")
    page.click("#end-ask")
    page.click("#end-yes")
    expect(page.locator("#run-status")).to_contain_text("已完成")
    expect(page.locator("#timeline li[data-action='run_completed']")).to_contain_text(
        "说明：台风转向，预警解除")
    run = call(server, commander, "GET", f"/api/runs/{run_id}")
    assert run["status"] == "completed" and run["stage"] == "warning"
    assert not [s for s in run["steps"] if s["id"] and s["step"].startswith("transfer")]


def test_a_typhoon_that_turned_away_after_transfers_enters_recovery_passing_landfall_over(
        signed_in: SignedIn, server: Any) -> None:
    """People moved at 橙色/红色预警, then the typhoon turned away: the commander picks 解除 and
    the page offers to hand out 台风登陆 too (the default) or pass it over with a note. Without
    the note the API's 422 names 跳过说明; with it, the returns go out and 台风登陆's do not."""
    commander = "maluan-commander"
    run_id, page = typhoon_with_people_moved(signed_in, server, commander)
    page.select_option("#stage", "recovery")
    page.click("#stage-ask")
    expect(page.locator("#stage-effect")).to_have_text(f"越过 台风登陆：{BY_DEFAULT}")
    expect(page.locator("#stage-yes")).to_have_text("一并下达并切换到 解除与灾后恢复")
    skip = page.locator("#stage-pass-over")
    expect(skip).to_have_text("跳过 台风登陆 并切换")
    skip.click()
    expect(page.locator("#flash")).to_contain_text("跳过说明：跳过阶段须写明说明")
    expect(page.locator("#stage-skip-note")).to_have_attribute("aria-invalid", "true")
    assert call(server, commander, "GET", f"/api/runs/{run_id}")["stage"] == "severe"
    page.fill("#stage-skip-note", "台风转向，未登陆")
    skip.click()
    expect(page.locator("#flash")).to_contain_text(
        "已切换到阶段 解除与灾后恢复，跳过 台风登陆，其任务未下达")
    expect(page.locator("#timeline li[data-action='stage_changed']").last).to_contain_text(
        "跳过 台风登陆（任务未下达）")
    run = call(server, commander, "GET", f"/api/runs/{run_id}")
    assert (run["stage"], run["passed_over_stages"]) == ("recovery", ["landfall"])
    handed = {s["step"] for s in run["steps"] if s["id"]}
    assert "return" in handed and not any(k.startswith("landfall") for k in handed)


def test_a_task_handed_to_nobody_says_so_in_red_with_what_to_do(
        signed_in: SignedIn, server: Any) -> None:
    """A gas leak started for a street: no grid worker at the street or above. The response
    starts (at 3 a.m. half-staffed beats none), and the page says the site check has nobody,
    instead of showing "—"; its link takes the commander to the task, where 改派 names
    someone from the people they may hand it to."""
    run_id = start_leak(server, unit="pingshan-street")
    receive = step_of(server, run_id, "receive")  # the duty room takes the alert first
    call(server, "pingshan-duty-1", "POST", f"/api/tasks/{receive['id']}/complete",
         json={"outputs": {"scene": "街道办一楼燃气泄漏"}})
    verify = step_of(server, run_id, "verify")
    assert verify["id"] is not None and verify["assignees"] == []
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    nobody = step_item(page, "verify").locator(".nobody")
    expect(nobody).to_contain_text("负责人：无人——本单位及上级单位均无“网格员”，请改派给具体人员")
    nobody.locator("a.reassign-link").click()
    page.wait_for_url(f"**/tasks/{verify['id']}#reassign")
    form = page.locator("#reassign-form")
    expect(form).to_contain_text("此任务当前无人负责")
    form.locator("#reassign-send").click()  # nobody chosen yet: said, nothing sent
    expect(page.locator("#flash")).to_contain_text("请选择改派给谁")
    form.locator("#reassign-q").fill("梁子健")  # narrows the list on the server's side
    duty = form.locator("#reassign-person option[value='pingshan-street-duty']")
    expect(duty).to_have_count(1)
    expect(form.locator("#reassign-person option:not([value=''])")).to_have_count(
        len(call(server, "wang-qiang", "GET",
                 f"/api/tasks/{verify['id']}/reassign-candidates?q=梁子健")["data"]))
    form.locator("#reassign-person").select_option("pingshan-street-duty")
    form.locator("#reassign-send").click()
    expect(page.locator("#flash")).to_contain_text("已改派给")
    assert [a["id"] for a in step_of(server, run_id, "verify")["assignees"]] == [
        "pingshan-street-duty"]
    expect(page.locator("#reassign-form")).not_to_contain_text("此任务当前无人负责")
    expect(page.locator("#reassign-person option[value='pingshan-street-duty']")).to_be_disabled()
    page.goto(server.url(f"/runs/{run_id}"))
    expect(step_item(page, "verify").locator(".nobody")).to_have_count(0)


def test_a_run_cancelled_with_a_reason_says_so_and_keeps_it_in_the_timeline(
        signed_in: SignedIn, server: Any) -> None:
    run_id = start_leak(server)
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    page.fill("#reason", "误报，现场无泄漏")
    page.click("#cancel-ask")
    expect(page.locator("#cancel-confirm")).to_be_visible()
    # Who hears of it, said before it is done: the offices its reports went to as well.
    expect(page.locator("#cancel-effect")).to_contain_text("收到本流程报告和通知的单位（如上级值班室）")
    assert call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")["status"] == "running"
    page.click("#cancel-yes")
    expect(page.locator("#run-status")).to_contain_text("已取消")
    expect(page.locator("#controls")).to_be_hidden()
    expect(page.locator("#timeline li[data-action='run_cancelled']")).to_contain_text(
        "原因：误报，现场无泄漏")
    expect(step_item(page, "receive")).to_contain_text("已取消")
    expect(step_item(page, "receive")).to_contain_text("撤销于")
    # An ended run counts nothing down, and its header shows no stage (a gas leak has none).
    expect(page.locator("#steps [data-due]")).to_have_count(0)
    expect(page.locator("#run-status")).to_have_text("已取消")
    run = call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")
    assert run["status"] == "cancelled"


def test_the_timeline_names_the_task_of_each_act_and_what_changed(
        signed_in: SignedIn, server: Any) -> None:
    """A manager asked what happened reads, on every line, which task it was; a reassignment
    from whom to whom, an extension from which deadline to which."""
    run_id = start_leak(server)
    receive = step_of(server, run_id, "receive")
    call(server, "wang-qiang", "POST", f"/api/tasks/{receive['id']}/reassign",
         json={"person": "pingshan-duty-2"})
    call(server, "wang-qiang", "POST", f"/api/tasks/{receive['id']}/extend",
         json={"due_at": "2026-03-02T10:00:00+08:00", "reason": "值班员交接"})
    call(server, "pingshan-duty-2", "POST", f"/api/tasks/{receive['id']}/ack")
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    title = receive["title"]
    reassigned = page.locator("#timeline li[data-action='reassigned']")
    expect(reassigned).to_contain_text(f"{title}；")
    expect(reassigned).to_contain_text("→ 吴静")
    extended = page.locator("#timeline li[data-action='extended']")
    expect(extended).to_contain_text(title)
    expect(extended).to_contain_text("期限 2026-03-02 09:03 → 2026-03-02 10:00")
    expect(extended).to_contain_text("原因：值班员交接")
    expect(page.locator("#timeline li[data-action='acked']")).to_contain_text(title)


def test_a_person_of_another_street_is_refused_the_run_in_the_apis_words(
        signed_in: SignedIn, server: Any) -> None:
    run_id = start_leak(server)
    page = signed_in("maluan-commander", phone=True)
    page.goto(server.url(f"/runs/{run_id}"))
    expect(page.locator("#flash")).not_to_contain_text("403")  # its words, not its code
    expect(page.locator("#flash")).to_contain_text("无权查看该事件")
    expect(page.locator("#run")).to_be_hidden()


# -- the list ------------------------------------------------------------------------------------

def test_a_day_in_the_runs_filter_keeps_its_last_second(signed_in: SignedIn, server: Any) -> None:
    """From 03-02 to 03-02 is the whole day: a run started at 23:59:59.5 is in it, one at the
    next day's 00:00 is not."""
    clock = server.rt.clock
    clock.set(datetime(2026, 3, 2, 15, 59, 59, 500000, tzinfo=UTC))  # 23:59:59.5 in Shanghai
    late = start_leak(server, location="六和社区深夜")
    clock.set(datetime(2026, 3, 2, 16, 0, tzinfo=UTC))  # 03-03 00:00
    start_leak(server, location="六和社区次日")
    page = signed_in("wang-qiang")
    page.goto(server.url("/runs?since=2026-03-02&until=2026-03-02"))
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("六和社区深夜")
    expect(rows.first.locator("a")).to_have_attribute("href", f"/runs/{late}")


def test_the_runs_list_filters_by_status_and_playbook(signed_in: SignedIn, server: Any) -> None:
    first = start_leak(server, location="六和社区一号楼")
    start_leak(server, unit="heping", location="和平社区二号楼")
    start_run(server.rt, playbook_id="typhoon-633", unit_id="pingshan-street",
              params={"name": "山竹"}, actor="wang-qiang")
    cancel_run(server.rt, run_id=first, actor="wang-qiang", reason="误报")

    page = signed_in("wang-qiang")
    page.goto(server.url("/runs"))
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#count")).to_have_text("共 3 项")
    expect(page.locator("#start-link a")).to_have_attribute("href", "/runs/new")
    page.select_option("#f-status", "cancelled")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("六和社区一号楼")
    expect(rows.first).to_contain_text("已取消")
    expect(page).to_have_url(re.compile(r"status=cancelled"))
    page.select_option("#f-status", "running")
    expect(rows).to_have_count(2)
    page.select_option("#f-playbook", "typhoon-633")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("台风633分级响应")
    expect(rows.first).to_contain_text("台风消息")
    page.select_option("#f-playbook", "")
    page.select_option("#f-unit", "heping")
    expect(rows).to_have_count(1)
    # The typhoon row of the previous filter is also one row: wait for the new list itself.
    expect(rows.first).to_contain_text("和平社区二号楼")
    rows.first.locator("a").click()
    expect(page.locator("#heading")).to_contain_text("和平社区二号楼")


def test_on_a_phone_the_runs_are_cards_and_a_filter_survives_a_reload(
        signed_in: SignedIn, server: Any) -> None:
    start_leak(server, unit="heping", location="和平社区二号楼")
    page = signed_in("pingshan-street-commander", phone=True)
    page.goto(server.url("/runs?status=running"))
    expect(page.locator("#f-status")).to_have_value("running")
    card = page.locator("#runs .run-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("和平社区")
    expect(card).to_contain_text("进行中")
    page.select_option("#f-status", "completed")
    expect(page.locator("#runs .empty")).to_be_visible()
    page.reload()
    expect(page.locator("#f-status")).to_have_value("completed")
    expect(card).to_have_count(0)


def test_a_message_to_someone_with_their_own_channel_names_them_once(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    """刘洋 is chased in the inbox and on the leaders' channel: the card says one person, 刘洋
    once with each channel's state, and the table says 站内通知 rather than `inbox://`."""
    run_id = start_leak(server)
    clock.advance(timedelta(minutes=4))
    sweep_once(server.rt)
    notes = call(server, "wang-qiang", "GET", f"/api/runs/{run_id}/notifications")
    rows = notes["data"] if isinstance(notes, dict) else notes
    chased = [n for n in rows if n["recipient"] == "liu-yang"]
    assert {n["url"] == "inbox://" for n in chased} == {True, False}  # both channels
    title = chased[0]["title"]
    same = [n for n in rows if n["title"] == title]
    people = {n["recipient"] for n in same}
    assert len(same) > len(people)  # more deliveries than people: the case at hand

    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    page.locator("#notifications > summary").click()
    card = page.locator("#messages details.message", has_text=title).first
    expect(card.locator("summary .meta")).to_contain_text(f" · {len(people)} 人 · ")
    served = card.locator("p.meta", has_text="发送：")
    expect(served).to_contain_text(re.compile(r"刘洋（站内：[^；）]+；外部渠道：[^）]+）"))
    assert (served.text_content() or "").count("刘洋") == 1
    table = page.locator("#notes-table")
    expect(table.locator("tr", has_text="刘洋").first).to_be_visible()
    expect(table).to_contain_text("站内通知")
    expect(table).not_to_contain_text("inbox://")
