"""Drills (演练) in the browser: the start page's clear choice between a real event and a drill
(its kind and name, the button saying 启动演练; not offered for the hazard register), the
【演练】 on the run page, the task page, the inbox card and the runs list (with its filter),
and the evaluation page (演练评估: each task against its deadline, an assessment written and
kept beside the earlier one). A real run's pages carry no mark.

The runtime is web/conftest.py's: the shipped playbooks on the demo district."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from playwright.sync_api import Page, expect

from flows.drills import Drill
from flows.lifecycle import start_run
from flows.sweeper import sweep_once
from models.clock import ManualClock

SignedIn = Callable[..., Page]
LEAK = {"location": "六和社区深汕路88号", "grade": "一般"}


def started(server: Any, drill: Drill | None) -> int:
    run = start_run(server.rt, playbook_id="gas-leak", unit_id="liuhe", params=LEAK,
                    actor="wang-qiang", drill=drill)
    return run.id or 0


def test_the_start_page_offers_a_drill_and_its_run_page_says_so(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in("wang-qiang")
    page.goto(server.url("/runs/new?playbook=gas-leak"))
    expect(page.locator("#nature")).to_be_visible()
    expect(page.locator("#nature input[value=real]")).to_be_checked()  # real is the default
    expect(page.locator("#drill-fields")).to_be_hidden()
    expect(page.locator("#start-submit")).to_have_text("启动")
    page.check("#nature input[value=drill]")
    expect(page.locator("#drill-fields")).to_be_visible()
    expect(page.locator("#start-submit")).to_have_text("启动演练")
    page.select_option("#unit", "liuhe")
    page.fill("[name=location]", "六和社区深汕路88号")
    page.select_option("#drill-kind", "盲演")
    page.fill("#drill-title", "夜间燃气泄漏盲演")
    page.click("#start-submit")

    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#heading")).to_have_text(re.compile(r"^【演练】燃气泄漏"))
    band = page.locator(".drill-banner")
    expect(band).to_contain_text("【演练】「夜间燃气泄漏盲演」盲演，非真实事件。")
    expect(band).to_contain_text("参演人员事先未获通知")
    expect(page.locator("#evaluation-link")).to_have_attribute(
        "href", f"/runs/{run_id}/evaluation")
    expect(page.locator("#evaluation-link")).to_contain_text("演练评估")

    # The duty officer's inbox card and task page.
    duty = signed_in("pingshan-duty-1", phone=True)
    duty.goto(server.url("/inbox"))
    card = duty.locator(".task-card").filter(has_text="接收燃气泄漏警情")
    expect(card.locator(".drill-badge")).to_have_text("【演练】盲演")
    card.locator("h3 a").click()
    expect(duty.locator("#heading")).to_have_text("【演练】接收燃气泄漏警情")
    expect(duty.locator(".drill-banner")).to_contain_text("非真实事件")


def test_the_start_page_offers_no_drill_for_the_register(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in("liuhe-grid")
    page.goto(server.url("/runs/new?playbook=hazard-3030"))
    expect(page.locator("#playbook")).to_have_value("hazard-3030")
    expect(page.locator("#nature")).to_be_hidden()


def test_the_runs_list_marks_drills_and_filters_them(
        signed_in: SignedIn, server: Any) -> None:
    drill = started(server, Drill(kind="桌面推演"))
    real = started(server, None)
    page = signed_in("wang-qiang")
    page.goto(server.url("/runs"))
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator(f"tr[data-run-id='{drill}'] .drill-badge")).to_have_text("【演练】桌面推演")
    expect(page.locator(f"tr[data-run-id='{real}'] .drill-badge")).to_have_count(0)
    page.select_option("#f-drill", "true")
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-run-id='{drill}']")).to_be_visible()
    expect(page).to_have_url(re.compile(r"drill=true"))
    page.select_option("#f-drill", "false")
    expect(page.locator(f"tr[data-run-id='{real}']")).to_be_visible()
    expect(rows).to_have_count(1)
    # A real run's own page carries no mark.
    page.goto(server.url(f"/runs/{real}"))
    expect(page.locator("#run-status")).to_contain_text("进行中")
    expect(page.locator(".drill-banner")).to_have_count(0)
    expect(page.locator("#heading")).not_to_contain_text("演练")
    expect(page.locator("#evaluation-link")).to_contain_text("复盘")


def test_the_evaluation_page_times_each_task_and_keeps_each_assessment(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    run_id = started(server, Drill(kind="实战演练", title="燃气泄漏实战演练"))
    clock.advance(timedelta(minutes=5))  # the alert (3 minutes) is not taken: late, chased
    sweep_once(server.rt)
    page = signed_in("sun-li")  # the district's manager evaluates
    page.goto(server.url(f"/runs/{run_id}/evaluation"))
    expect(page.locator("#heading")).to_have_text("【演练】演练评估报告")
    expect(page.locator(".drill-banner")).to_contain_text("「燃气泄漏实战演练」实战演练")
    receive = page.locator("#eval-steps tr[data-step='receive']")
    expect(receive.locator(".outcome")).to_have_text("未完成 2 分钟")
    expect(receive).to_contain_text("1 级")
    expect(page.locator("#eval-summary")).to_contain_text("未报出")
    expect(page.locator("#report")).to_contain_text("演练文书，非真实事件")
    expect(page.locator("#report")).to_contain_text("（尚未填写评估意见）")

    page.fill("#assessment", "一、接警超时。\n二、建议加强值班人员培训。")
    page.click("#assess-submit")
    expect(page.locator("#eval-history li")).to_have_count(1)
    expect(page.locator("#eval-history")).to_contain_text("孙丽")
    expect(page.locator("#report")).to_contain_text("二、建议加强值班人员培训。")
    page.fill("#assessment", "补充：督办到位。")
    page.click("#assess-submit")
    expect(page.locator("#eval-history li")).to_have_count(2)
    expect(page.locator("#eval-history li").first).to_contain_text("一、接警超时。")
    expect(page.locator("#report")).to_contain_text("补充：督办到位。")

    # An empty assessment is the API's refusal, on the box.
    page.click("#assess-submit")
    expect(page.locator("#flash")).to_contain_text("评估意见")
    expect(page.locator("#assessment")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#eval-history li")).to_have_count(2)


def test_a_second_drill_is_asked_about_as_a_drill_never_as_a_real_event(
        signed_in: SignedIn, server: Any) -> None:
    """A drill is held up only by a drill: the box lists it 【演练】 and asks about another
    drill, so a commander never reads of a real gas leak "already running"."""
    first = started(server, Drill(kind="实战演练"))
    page = signed_in("wang-qiang")
    page.goto(server.url("/runs/new?playbook=gas-leak"))
    page.check("#nature input[value=drill]")
    page.select_option("#unit", "liuhe")
    page.fill("[name=location]", "六和社区深汕路88号")
    page.click("#start-submit")
    box = page.locator("#concurrent")
    expect(box).to_be_visible()
    expect(box.locator(f"a[href='/runs/{first}']")).to_contain_text(f"#{first} 【演练】燃气泄漏")
    expect(box).to_contain_text("是同一场演练的")
    expect(page.locator("#concurrent-yes")).to_have_text("确属另一场演练，仍然启动")


def test_the_evaluation_page_fits_a_phone(signed_in: SignedIn, server: Any) -> None:
    """The report's table (nine columns) scrolls inside its sheet: the page itself does not
    slide sideways under a commander's thumb."""
    run_id = started(server, Drill(kind="实战演练"))
    page = signed_in("wang-qiang", phone=True)
    page.goto(server.url(f"/runs/{run_id}/evaluation"))
    expect(page.locator("#report table")).to_be_visible()
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_the_evaluation_page_shows_the_refusal_to_others(
        signed_in: SignedIn, server: Any) -> None:
    run_id = started(server, Drill(kind="桌面推演"))
    page = signed_in("pingshan-duty-1")
    page.goto(server.url(f"/runs/{run_id}/evaluation"))
    expect(page.locator("#flash")).to_contain_text("指挥长或综合管理人员")
    expect(page.locator("#evaluation")).to_be_hidden()
