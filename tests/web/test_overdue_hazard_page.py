"""The director asks the manager (孙丽) why a 重大 hazard is 12 days overdue and who has it now:
the run page, in a real browser, answers from what it shows (tests/hazard_walk.py walks the
hazard through the API on the served runtime: sent back at re-inspection, one request for more
time refused and one granted, then 12 days past the extended deadline with the letters sent)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from hazard_walk import MANAGER, Walked, twelve_days_overdue
from playwright.sync_api import Page, expect

from api.auth import make_token
from api.main import create_app
from flows.runtime import Runtime
from models.clock import ManualClock

SignedIn = Callable[..., Page]


@pytest.fixture
def walked(web_rt: Runtime, clock: ManualClock) -> Iterator[Walked]:
    secret = web_rt.settings.signing_secret()
    with TestClient(create_app(web_rt, background=False, prefect=False)) as client:
        yield twelve_days_overdue(
            client, lambda p: {"Authorization": f"Bearer {make_token(p, secret)}"}, web_rt,
            clock)


def open_run(signed_in: SignedIn, server, walked: Walked) -> Page:  # noqa: ANN001
    page = signed_in(MANAGER)
    page.goto(server.url(f"/runs/{walked.run_id}"))
    expect(page.locator("#run")).to_be_visible()
    return page


def test_the_late_step_says_its_days_overdue_its_rule_and_how_to_reach_its_holder(
    signed_in: SignedIn, server, walked: Walked  # noqa: ANN001
) -> None:
    page = open_run(signed_in, server, walked)
    rectify = page.locator("#steps li[data-step='rectify']")
    expect(rectify.locator(".overdue-days")).to_have_text("逾期 13 天")
    # One figure: the register's days, not beside them a countdown of 12天12小时.
    expect(rectify.locator(".due")).to_have_text(["逾期 13 天"])
    # 30 whole days from registration (民法典 §201/§203): to 1 April 24:00.
    expect(rectify).to_contain_text(
        "期限按30日（自流程启动次日起算，届满日24时止，遇休息日、节假日顺延）计")
    expect(rectify).to_contain_text("原时限 2026-04-01 24:00")
    expect(rectify).to_contain_text("尹秀英（社区安全员，六和社区，电话 13800138123）")


def test_the_timeline_and_the_ladder_read_in_chinese_with_deadlines_and_numbers(
    signed_in: SignedIn, server, walked: Walked  # noqa: ANN001
) -> None:
    page = open_run(signed_in, server, walked)
    refused = page.locator("#timeline li[data-action='extension_refused']")
    expect(refused).to_contain_text("不同意延期")
    expect(refused).to_contain_text("申请延至 2026-04-30 24:00，期限仍为 2026-04-01 24:00")
    expect(refused).not_to_contain_text("extension_refused")
    granted = page.locator("#timeline li[data-action='extension_approved']")
    expect(granted).to_contain_text("同意延期")
    expect(granted).to_contain_text("期限 2026-04-01 24:00 → 2026-04-08 24:00")
    summons = page.locator("#escalations-table tr[data-kind='escalate']").nth(2)
    expect(summons.locator(".rung")).to_have_text("约谈")
    expect(summons.locator(".doc-number")).to_have_text("坪应急约〔2026〕1号")
    expect(page.locator("#timeline li[data-action='escalate']").first).to_contain_text(
        "文号 坪应急督函〔2026〕1号")


def test_what_holds_it_up_is_answered_first(
    signed_in: SignedIn, server, walked: Walked  # noqa: ANN001
) -> None:
    page = open_run(signed_in, server, walked)
    card = page.locator("#holdup li[data-step='rectify']")
    expect(page.locator("#holdup-box")).to_be_visible()
    expect(card.locator(".holdup-head")).to_contain_text("隐患整改 · 退回整改 · 已退回")
    expect(card.locator(".overdue-days")).to_have_text("逾期 13 天")
    expect(card.locator(".holdup-who")).to_have_text(
        "现由：尹秀英（社区安全员，六和社区，电话 13800138123）")
    expect(card).to_contain_text("复查退回，待承办人重新整改，自 2026-03-17 12:00")
    expect(card).to_contain_text("时限 2026-04-08 24:00，原时限 2026-04-01 24:00")
    expect(card.locator(".holdup-done")).to_have_text(
        "已督办 3 级（最近：约谈），发出督办文书 3 份；复查退回 1 次（最近原因：泄爆片规格不符，"
        "隔爆阀未安装）；申请延期 2 次（同意 1，不同意 1）")


def test_what_holds_it_up_names_who_reassigned_it_to_whom_and_when(
    signed_in: SignedIn, server, walked: Walked, web_rt: Runtime, clock: ManualClock  # noqa: ANN001
) -> None:
    clock.advance(timedelta(hours=2))
    secret = web_rt.settings.signing_secret()
    with TestClient(create_app(web_rt, background=False, prefect=False)) as client:
        r = client.post(f"/api/tasks/{walked.rectify_id}/reassign", json={"person": "liuhe-grid"},
                        headers={"Authorization":
                                 f"Bearer {make_token('pingshan-street-commander', secret)}"})
        assert r.status_code == 200, r.text
    page = open_run(signed_in, server, walked)
    card = page.locator("#holdup li[data-step='rectify']")
    expect(card.locator(".holdup-who")).to_have_text(
        "现由：熊淑芬（网格员，六和社区，电话 13800138122）")
    expect(card).to_contain_text("复查退回，待承办人重新整改，自 2026-04-21 14:00")
    expect(card.locator(".holdup-done")).to_contain_text(
        "改派 1 次（最近：2026-04-21 14:00 胡红霞 改派，尹秀英 → 熊淑芬）")


def test_the_ranking_leads_from_a_units_overdue_figure_to_the_hazards_behind_it(
    signed_in: SignedIn, server, walked: Walked  # noqa: ANN001
) -> None:
    # "Which units are worst this month and why?": 坪山街道 has one hazard overdue in April
    # (the month still running on 04-21); the figure opens that unit's overdue hazards.
    page = signed_in(MANAGER)
    page.goto(server.url("/ranking?month=2026-04"))
    row = page.locator("#ranking-table tr[data-unit='pingshan-street']")
    expect(row.locator("td").nth(6)).to_have_text("1")
    # The period in the manager's words: 北京时间, not the zone's identifier Asia/Shanghai.
    expect(page.locator("#period")).to_contain_text("统计至 2026-04-21 12:00）（北京时间）")
    expect(page.locator("#period")).not_to_contain_text("Asia")
    row.locator("td").nth(6).get_by_role("link").click()
    expect(page.locator("#summary")).to_contain_text("共 1 条未销号隐患")
    expect(page.locator("#register-table tbody tr")).to_have_count(1)
    expect(page.locator("#register-table tbody tr")).to_contain_text("PS-2026-007")
    expect(page.locator("#register-table tbody tr")).to_contain_text("尹秀英")
    # The unit's name opens its whole 整改清单.
    page.go_back()
    page.locator("#ranking-table tr[data-unit='maluan'] td").nth(1).get_by_role("link").click()
    expect(page.locator("#summary")).to_contain_text("共 0 条未销号隐患")


def test_a_finished_months_overdue_figure_opens_the_hazards_overdue_at_its_end(
    signed_in: SignedIn, server, walked: Walked, clock: ManualClock  # noqa: ANN001
) -> None:
    # April's 月末逾期未销号数, read in May, is the set overdue on 04-30 24:00, not "overdue
    # now": the figure opens the 隐患清单 filtered to that set (月末逾期未销号 2026-04),
    # which holds the hazard behind it.
    clock.advance(timedelta(days=15))
    page = signed_in(MANAGER)
    page.goto(server.url("/ranking?month=2026-04"))
    row = page.locator("#ranking-table tr[data-unit='pingshan-street']")
    expect(row.locator("td.overdue")).to_have_text("1")
    link = row.locator("td.overdue a")
    expect(link).to_have_attribute(
        "href", "/hazards?register=hazards&unit=pingshan-street&overdue_month=2026-04")
    expect(row.locator("td").nth(1).get_by_role("link")).to_have_attribute(
        "href", "/hazards?register=rectification&unit=pingshan-street")
    link.click()
    expect(page.locator("#filter-overdue_month")).to_have_value("2026-04")
    expect(page.locator("#register-table tbody tr")).to_have_count(1)
    expect(page.locator("#register-table tbody tr")).to_contain_text("PS-2026-007")


def test_the_run_page_says_when_and_by_whom_the_hazard_was_found_as_the_register_does(
    signed_in: SignedIn, server, walked: Walked  # noqa: ANN001
) -> None:
    # Registered by 邓思远 without 发现时间 or 发现人: the 隐患清单 and its exports say
    # 2026-03-02 09:00 and 邓思远; the run page said "—" for both.
    page = open_run(signed_in, server, walked)
    params = page.locator("#params-table")
    expect(params.locator("tr[data-param='found_at'] td")).to_have_text(
        "2026-03-02 09:00（未填写，台账按登记时间记）")
    expect(params.locator("tr[data-param='found_by'] td")).to_have_text(
        "邓思远（未填写，台账按登记人记）")
    expect(params.locator("tr[data-param='code'] td")).to_have_text("PS-2026-007")
    expect(params.locator("tr[data-param='campaign'] td")).to_have_text("—")
