"""The registers page's filters and its refusals, in a real browser: every 状态 offered once and
each listing the rows of that status, the filters a tab switch carries over (every one the
other register has, shown in its controls; the others dropped and said so), and a person
without the manager right told who may read a manager's register instead of a raw 403."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from factories import seed_hazards
from playwright.sync_api import Page, expect
from test_manager_pages import MANAGER, api_get, import_rows, row, table_codes

SignedIn = Callable[..., Page]
STATUS_COLUMN = 14  # 状态, 1-based, of the hazard register's table
CLOSED = {"已销号", "回头看"}  # phases a hazard is in once closed (回头看 comes after 销号)


def statuses_shown(page: Page) -> Any:
    return page.locator(f"#register-table tbody tr td:nth-child({STATUS_COLUMN})")


def test_each_status_is_offered_once_and_lists_the_hazards_in_it(
        signed_in: SignedIn, server: Any) -> None:
    phases = [s for s in api_get(server, "/api/registers/vocabulary")["statuses"]
              if s not in ("open", "closed")]
    now = server.rt.clock.now()
    seed_hazards(server.rt, [
        {"unit": "liuhe", "street": "pingshan-street", "status": phase,
         "closed_at": now if phase in CLOSED else None, "location": f"六和社区{phase}"}
        for phase in phases], playbook_id="hazard-3030")
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards"))
    expect(page.locator("#summary")).to_have_text(f"共 {len(phases)} 条隐患，第 1–{len(phases)} 条")

    options = page.locator("#filter-status option")
    labels = options.all_inner_texts()
    values = [o.get_attribute("value") or "" for o in options.all()]
    assert len(labels) == len(set(labels)), labels
    assert labels.count("已销号") == 1
    assert set(phases) <= set(labels)
    for value, label in zip(values, labels, strict=True):
        if not value:
            continue
        page.select_option("#filter-status", value)
        expect(page).to_have_url(re.compile(f"status={re.escape(quote(value))}"))
        # The page lists what the API lists for the value it sends ...
        want = [h["status"] for h in api_get(server, "/api/hazards", status=value,
                                              limit=500)["data"]]
        expect(statuses_shown(page)).to_have_text(want)
        # ... and that is the hazards of the status the option names.
        if label in phases:
            assert want == [label], (value, label, want)
        else:  # the one group offered: every hazard not closed (nor withdrawn)
            assert value == "open" and label.startswith("未销号"), (value, label)
            assert sorted(want) == sorted(set(phases) - CLOSED - {"已撤销"})

    # The API's other group, all closed (回头看 included), is not offered beside the phase
    # 已销号; a link that carries it shows it under a name of its own.
    page.goto(server.url("/hazards?register=hazards&status=closed"))
    expect(page.locator("#filter-status option:checked")).to_have_text("已销号（含回头看）")
    expect(statuses_shown(page)).to_have_text(
        [h["status"] for h in api_get(server, "/api/hazards", status="closed")["data"]])
    assert sorted(statuses_shown(page).all_inner_texts()) == sorted(CLOSED)


def test_switching_registers_keeps_every_filter_the_other_has_and_says_which_it_drops(
        signed_in: SignedIn, server: Any) -> None:
    import_rows(server, [
        row("YH-501", "liuhe", grade="重大"), row("YH-502", "liuhe"),
        row("YH-503", "heping", grade="重大"),
        row("YH-504", "liuhe", grade="重大", found="2026-02-10 09:00"),
    ])
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards?register=hazards&unit=liuhe&status=open&grade=重大"
                         "&month=2026-03&q=厂房"))
    expect(page.locator("#summary")).to_have_text("共 1 条隐患，第 1–1 条")
    assert table_codes(page) == ["YH-501"]

    page.click("#tab-rectification")
    # Unit, grade, month and text all carried over and shown; the list is filtered by them.
    expect(page.locator("#filter-unit")).to_have_value("liuhe")
    expect(page.locator("#filter-grade")).to_have_value("重大")
    expect(page.locator("#filter-month")).to_have_value("2026-03")
    expect(page.locator("#filter-q")).to_have_value("厂房")
    expect(page.locator("#summary")).to_have_text("共 1 条未销号隐患，第 1–1 条")
    assert table_codes(page) == ["YH-501"]
    assert "grade=" in page.url and "month=2026-03" in page.url and "status=" not in page.url
    # The one it has no control for is dropped, and the page says so.
    expect(page.locator("#flash")).to_contain_text("状态")
    expect(page.locator("#filter-status")).to_have_count(0)

    page.click("#tab-risks")
    expect(page.locator("#filter-unit")).to_have_value("liuhe")
    expect(page.locator("#filter-q")).to_have_value("厂房")
    expect(page.locator("#flash")).to_contain_text("隐患等级")
    expect(page.locator("#flash")).to_contain_text("发现月份")
    assert "grade=" not in page.url and "month=" not in page.url

    # Back: what the risk register had is carried; the dropped ones stay dropped.
    page.click("#tab-hazards")
    expect(page.locator("#filter-unit")).to_have_value("liuhe")
    expect(page.locator("#filter-grade")).to_have_value("")
    expect(page.locator("#summary")).to_have_text("共 3 条隐患，第 1–3 条")  # liuhe's 厂房
    expect(page.locator("#flash")).to_be_hidden()  # nothing dropped this time


def test_only_what_a_register_filters_on_is_taken_from_the_address(
        signed_in: SignedIn, server: Any) -> None:
    """A filter the register has no control for is never applied unseen, even from a link."""
    import_rows(server, [row("YH-601", "liuhe", found="2026-02-10 09:00"), row("YH-602", "liuhe")])
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards?register=rectification&status=已销号"))
    expect(page.locator("#summary")).to_have_text("共 2 条未销号隐患，第 1–2 条")
    page.goto(server.url("/hazards?register=rectification&month=2026-03"))
    expect(page.locator("#filter-month")).to_have_value("2026-03")
    expect(page.locator("#summary")).to_have_text("共 1 条未销号隐患，第 1–1 条")
    assert table_codes(page) == ["YH-602"]


@pytest.mark.parametrize(("person", "register", "title"), [
    ("pingshan-street-inspector-1", "rectification", "整改清单"),  # a street's inspector
    ("wang-qiang", "rectification", "整改清单"),  # the district's commander: imports, no manager
    ("liuhe-grid", "risks", "风险清单"),
])
def test_a_person_without_the_manager_right_is_told_who_reads_a_managers_register(
        signed_in: SignedIn, server: Any, person: str, register: str, title: str) -> None:
    import_rows(server, [row("YH-701", "liuhe")])
    page = signed_in(person)
    page.goto(server.url(f"/hazards?register={register}"))
    refused = page.locator("#refused")
    expect(refused).to_be_visible()
    expect(refused.locator("h2")).to_have_text(f"您无权查看{title}")
    expect(refused).to_contain_text("科室负责人")
    expect(refused).to_contain_text("孙丽")  # who holds it now, as the API names them
    expect(refused).not_to_contain_text("requires")
    expect(refused.locator("a[href='/inbox']")).to_have_text("我的待办")
    expect(refused.locator("a[href='/']")).to_have_text("返回首页")
    # Nothing that cannot work: no filters, no export, no import, no table, no error line.
    expect(page.locator("#filters")).to_be_hidden()
    expect(page.locator("#filters select, #filters input")).to_have_count(0)
    expect(page.locator("#actions")).to_be_hidden()
    expect(page.locator("#import")).to_be_hidden()
    expect(page.locator("#register-table")).to_have_count(0)
    expect(page.locator("#flash")).to_be_hidden()
    expect(page.locator("#summary")).to_have_text("")

    # The register they may read is one click away, with its filters back.
    refused.locator("a", has_text="隐患清单").click()
    expect(page.locator("#tab-hazards")).to_have_attribute("aria-selected", "true")
    expect(refused).to_be_hidden()
    expect(page.locator("#filters")).to_be_visible()
    expect(page.locator("#summary")).to_contain_text("条隐患")
