"""The runs list (/runs) shows which running runs have overdue work: a commander scanning it
sees the late ones in red, how many tasks are late and by how many days at worst (the run
page's 逾期 N 天), without opening each run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from playwright.sync_api import Page, expect
from slow_sign_in import open_before_sign_in

from flows.drills import Drill
from flows.lifecycle import cancel_run, start_run
from models.clock import ManualClock

SignedIn = Callable[..., Page]
INSPECTOR = "pingshan-street-inspector-1"


def register_hazard(server: Any, location: str) -> int:
    run = start_run(server.rt, playbook_id="hazard-3030", unit_id="liuhe",
                    params={"location": location, "grade": "一般"}, actor=INSPECTOR)
    return run.id or 0


def test_the_runs_list_marks_running_runs_with_overdue_tasks(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    late = register_hazard(server, "六和社区旧厂房")  # rectify: due in 30 days
    withdrawn = register_hazard(server, "六和社区误登记")
    cancel_run(server.rt, run_id=withdrawn, actor="wang-qiang", reason="误登记")
    clock.advance(timedelta(days=65))  # 35 days past the first one's deadline
    fresh = register_hazard(server, "六和社区新仓库")

    page = signed_in("wang-qiang")
    page.goto(server.url("/runs"))
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#runs-table thead th")).to_contain_text(["逾期"])
    late_row = page.locator(f"#runs-table tr[data-run-id='{late}']")
    expect(late_row).to_have_class("overdue-row")
    expect(late_row.locator(".run-overdue")).to_have_text("1 项逾期，最长 35 天")
    for quiet in (fresh, withdrawn):
        row = page.locator(f"#runs-table tr[data-run-id='{quiet}']")
        expect(row).not_to_have_class("overdue-row")
        expect(row.locator(".run-overdue")).to_have_count(0)

    # On a phone: the same on the card.
    phone = signed_in("wang-qiang", phone=True)
    phone.goto(server.url("/runs"))
    card = phone.locator(f"#runs .run-card[data-run-id='{late}']")
    expect(card.locator(".run-overdue")).to_have_text("1 项逾期，最长 35 天")
    expect(card).to_have_class("card run-card is-overdue")
    expect(phone.locator(f"#runs .run-card[data-run-id='{fresh}'] .run-overdue")).to_have_count(0)


def test_a_run_minutes_late_is_said_in_minutes_not_as_a_day(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    """A gas leak's alert is taken within 3 minutes: 2 minutes past that is 逾期 2分钟 on the
    list, as the task page and the inbox say it, not the registers' started day (1 天)."""
    leak = start_run(server.rt, playbook_id="gas-leak", unit_id="liuhe",
                     params={"location": "六和社区3栋"}, actor="wang-qiang").id
    clock.advance(timedelta(minutes=5))
    page = signed_in("wang-qiang")
    page.goto(server.url("/runs"))
    mark = page.locator(f"#runs-table tr[data-run-id='{leak}'] .run-overdue")
    expect(mark).to_have_text("1 项逾期，最长 2分钟")


def test_a_filter_chosen_while_the_page_loads_is_kept(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    """On a slow phone network the form shows before the page knows who is signed in: 仅演练
    chosen then was reset to the address's filters when the menus were filled (the form
    listened only after sign-in). /api/me is held here until the choice is made."""
    real = register_hazard(server, "六和社区旧厂房")
    drill = start_run(server.rt, playbook_id="gas-leak", unit_id="liuhe",
                      params={"location": "六和社区演练点", "grade": "一般"}, actor="wang-qiang",
                      drill=Drill(kind="桌面推演")).id
    page = signed_in("wang-qiang", phone=True)
    open_before_sign_in(page, server.url("/runs"), lambda: page.select_option("#f-drill", "true"))
    expect(page.locator(f"#runs .run-card[data-run-id='{drill}']")).to_have_count(1)
    expect(page.locator(f"#runs .run-card[data-run-id='{real}']")).to_have_count(0)
    expect(page.locator("#f-drill")).to_have_value("true")
    assert "drill=true" in page.url
