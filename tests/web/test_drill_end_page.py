"""结束演练 in the browser: the run page of a drill offers its commander 结束演练 (with a
confirmation saying what it does, and an optional note); ended, the run reads 已完成 and its
timeline says who ended it and what was stopped, and the evaluation page says how it ended and
which tasks the end overtook before they were due. A real gas leak offers no such end, and
someone who may not end it sees no control. A drill's document, on its own page, is titled
【演练】.

The runtime is web/conftest.py's: the shipped playbooks on the demo district."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from factories import run_steps
from playwright.sync_api import Page, expect

from flows.drills import Drill
from flows.lifecycle import start_run
from flows.segments import drain_wakes
from flows.tasks import complete
from models.clock import ManualClock

SignedIn = Callable[..., Page]
LEAK = {"location": "六和社区深汕路88号", "grade": "一般"}
DUTY = "pingshan-duty-1"


def call(server: Any, person: str, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {server.token(person)}"}
    r = httpx.request(method, server.url(path), headers=headers, timeout=10, **kwargs)
    assert r.status_code < 400, r.text
    return r.json()


def drill_with_first_report(server: Any) -> int:
    """A drill whose alert was taken and whose first report was written (and filed)."""
    rt = server.rt
    run_id = start_run(rt, playbook_id="gas-leak", unit_id="liuhe", params=LEAK,
                       actor="wang-qiang", drill=Drill(kind="实战演练", title="燃气泄漏实战演练")
                       ).id or 0
    for key, outputs in (("receive", {"scene": "立管接口泄漏"}),
                         ("report.write", {"scene": "立管接口泄漏", "casualties": 0,
                                           "missing": 0})):
        [row] = [s for s in run_steps(rt, run_id) if s.step_key == key]
        complete(rt, step_id=row.id or 0, actor=DUTY, outputs=outputs)
        drain_wakes(rt)
    return run_id


def test_a_drill_is_ended_on_its_page_and_reads_completed(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    run_id = drill_with_first_report(server)
    clock.advance(timedelta(minutes=2))
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}"))
    form = page.locator("#end-form")
    expect(form).to_be_visible()
    expect(page.locator("#end-label")).to_have_text("结束演练")
    expect(page.locator("#end-ask")).to_have_text("结束演练")
    expect(page.locator("#end-hint")).to_have_text("（说明选填）")
    # Asked first: nothing ends on the first click, and 不结束 steps back.
    page.click("#end-ask")
    expect(page.locator("#end-confirm")).to_contain_text("结束后演练记为已完成（不是已取消）")
    expect(page.locator("#end-yes")).to_have_text("确认结束演练")
    page.click("#end-no")
    expect(page.locator("#end-confirm")).to_be_hidden()
    assert call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")["status"] == "running"

    page.fill("#end-note", "演练科目全部完成")
    page.click("#end-ask")
    page.click("#end-yes")
    expect(page.locator("#flash")).to_contain_text("演练已结束")
    expect(page.locator("#run-status")).to_contain_text("已完成")
    expect(page.locator("#controls")).to_be_hidden()
    ended = page.locator("#timeline li[data-action='run_completed']")
    expect(ended).to_contain_text("结束演练")
    expect(ended).to_contain_text("说明：演练科目全部完成")
    expect(ended).to_contain_text("停止 ")
    run = call(server, "wang-qiang", "GET", f"/api/runs/{run_id}")
    assert run["status"] == "completed"

    page.goto(server.url(f"/runs/{run_id}/evaluation"))
    expect(page).to_have_title(re.compile(r"^【演练】演练评估报告 · 燃气泄漏"))
    summary = page.locator("#eval-summary")
    expect(summary).to_contain_text("结束演练，王强，说明：演练科目全部完成")
    expect(summary).to_contain_text("演练结束时未到期")
    verify = page.locator("#eval-steps tr[data-step='verify']")
    expect(verify.locator("td.outcome")).to_have_text("演练结束时未到期")


def test_a_real_run_and_a_person_who_may_not_end_it_see_no_such_button(
        signed_in: SignedIn, server: Any) -> None:
    real = start_run(server.rt, playbook_id="gas-leak", unit_id="liuhe", params=LEAK,
                     actor="wang-qiang").id or 0
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{real}"))
    expect(page.locator("#cancel-form")).to_be_visible()
    expect(page.locator("#end-form")).to_be_hidden()

    drill = drill_with_first_report(server)
    manager = signed_in("sun-li")  # reads the run and evaluates it; may not end it
    manager.goto(server.url(f"/runs/{drill}"))
    expect(manager.locator("#heading")).to_have_text(re.compile(r"^【演练】"))
    expect(manager.locator("#controls")).to_be_hidden()
    expect(manager.locator("#end-form")).to_be_hidden()


def test_a_drills_document_page_is_titled_as_a_drills(
        signed_in: SignedIn, server: Any) -> None:
    run_id = drill_with_first_report(server)
    [doc] = call(server, "wang-qiang", "GET", f"/api/runs/{run_id}/documents")["data"]
    page = signed_in("wang-qiang")
    page.goto(server.url(f"/runs/{run_id}/documents/{doc['id']}"))
    expect(page.locator("#heading")).to_have_text("【演练】突发事件首报")
    expect(page).to_have_title("【演练】突发事件首报")
    expect(page.locator("#doc")).to_contain_text("演练文书，非真实事件")
