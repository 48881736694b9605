"""The manager's pages in a real browser: the three registers (三个清单) filled through the real
import API, their filters kept in the address, overdue rows in red once the clock has moved,
CSV and Excel exports with the Chinese headers, an import from the page (a bad row named by row
and column, nothing written; a good file grows the list), the monthly ranking showing what
GET /api/ranking counts, and a community's person seeing only their community."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
from factories import seed_hazards
from playwright.sync_api import Page, expect
from sqlalchemy import update

from models.clock import ManualClock
from models.hazard import Hazard
from models.register_queries import CANCELLED as REGISTER_CANCELLED

SignedIn = Callable[..., Page]
SH = ZoneInfo("Asia/Shanghai")
HEADER = "隐患编号,单位编号,隐患来源,隐患等级,隐患类别,隐患地点,隐患描述,涉及企业,发现时间"
HAZARD_HEADERS = ["隐患编号", "单位", "街道", "来源", "等级", "类别", "地点", "描述", "涉及企业",
                  "发现时间", "发现人", "整改期限", "原整改期限", "状态", "是否逾期", "逾期天数",
                  "销号时间"]
RANKING_HEADERS = ["排名", "单位", "发现隐患数", "当月销号数", "当月发现且销号数", "销号率(%)",
                   "月末逾期未销号数", "平均销号天数", "按期销号数", "按期销号率(%)"]
MANAGER = "sun-li"


def csv_bytes(lines: list[str]) -> bytes:
    return ("\r\n".join([HEADER, *lines]) + "\r\n").encode("utf-8-sig")


def row(code: str, unit: str, grade: str = "一般", where: str = "厂房",
        found: str = "2026-03-01 09:30") -> str:
    return f"{code},{unit},检查发现,{grade},消防安全,{unit}{where},消防通道堵塞,某公司,{found}"


def headers(server: Any, person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(person)}"}


def import_rows(server: Any, lines: list[str], name: str = "隐患清单.csv") -> dict[str, Any]:
    # httpx's 5 s default is not a bound this test means to set: on a loaded CI machine an
    # import (its own transaction, Prefect nearby) once took longer and the test failed there.
    r = httpx.post(server.url("/api/hazards/import"), headers=headers(server, MANAGER),
                   files={"file": (name, csv_bytes(lines), "text/csv")}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def api_get(server: Any, path: str, person: str = MANAGER, **params: Any) -> dict[str, Any]:
    r = httpx.get(server.url(path), params=params, headers=headers(server, person))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def table_codes(page: Page) -> list[str]:
    return page.locator("#register-table tbody tr td:first-child").all_inner_texts()


def downloaded_csv(page: Page, button: str) -> list[list[str]]:
    with page.expect_download() as d:
        page.click(button)
    data = Path(d.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel opens the Chinese as UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_the_hazard_register_lists_imports_and_keeps_its_filters_across_a_reload(
        signed_in: SignedIn, server: Any) -> None:
    imported = import_rows(server, [
        row("YH-001", "liuhe"), row("YH-002", "liuhe", grade="重大"),
        row("YH-003", "heping"), row("YH-004", "maluan-community"),
    ])
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards"))
    expect(page.locator("#summary")).to_have_text("共 4 条隐患，第 1–4 条")
    expect(page.locator("#register-table thead th")).to_have_text(HAZARD_HEADERS)
    expect(page.locator("#tab-hazards")).to_have_attribute("aria-selected", "true")
    # Each hazard opens its run.
    first = imported["runs"][0]
    expect(page.locator("#register-table a", has_text="YH-001")).to_have_attribute(
        "href", f"/runs/{first}")

    page.select_option("#filter-unit", "liuhe")
    expect(page.locator("#summary")).to_have_text("共 2 条隐患，第 1–2 条")
    page.select_option("#filter-grade", "重大")
    expect(page.locator("#summary")).to_have_text("共 1 条隐患，第 1–1 条")
    assert table_codes(page) == ["YH-002"]
    assert "unit=liuhe" in page.url and "grade=%E9%87%8D%E5%A4%A7" in page.url

    page.reload()
    expect(page.locator("#summary")).to_have_text("共 1 条隐患，第 1–1 条")
    expect(page.locator("#filter-unit")).to_have_value("liuhe")
    expect(page.locator("#filter-grade")).to_have_value("重大")
    expect(page.locator("#register-table tbody tr")).to_have_count(1)
    # Back in history: the unit alone.
    page.go_back()
    expect(page.locator("#summary")).to_have_text("共 2 条隐患，第 1–2 条")
    expect(page.locator("#filter-grade")).to_have_value("")


def test_a_filter_the_api_refuses_is_said_in_its_words(signed_in: SignedIn,
                                                     server: Any) -> None:
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards?register=hazards&status=丢失"))
    expect(page.locator("#flash")).to_contain_text("未知的取值“丢失”")
    expect(page.locator("#filter-status")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#register-table")).to_have_count(0)
    # A campaign number that is no number is the API's to refuse too, not an unfiltered list.
    page.goto(server.url("/hazards?register=hazards"))
    page.fill("#filter-campaign", "abc")
    page.press("#filter-campaign", "Enter")
    expect(page.locator("#flash")).to_contain_text("campaign")
    expect(page.locator("#filter-campaign")).to_have_attribute("aria-invalid", "true")


def test_the_rectification_register_shows_an_overdue_hazard_in_red(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    import_rows(server, [row("YH-OLD", "liuhe")], name="第一批.csv")
    clock.advance(timedelta(days=20))
    import_rows(server, [row("YH-NEW", "heping", found="2026-03-20 10:00")], name="第二批.csv")
    clock.advance(timedelta(days=11))  # the first is 31 days old: past its 30-day deadline

    page = signed_in(MANAGER)
    page.goto(server.url("/hazards"))
    page.click("#tab-rectification")
    expect(page).to_have_url(server.url("/hazards?register=rectification"))
    expect(page.locator("#register-table thead th").nth(12)).to_have_text("剩余天数")
    late = page.locator("#register-table tbody tr", has_text="YH-OLD")
    fine = page.locator("#register-table tbody tr", has_text="YH-NEW")
    expect(late).to_have_class("overdue-row")
    expect(late.locator("td").nth(14)).to_have_text("是")
    expect(late.locator("td").nth(13)).to_have_text("1")
    expect(fine).not_to_have_class("overdue-row")
    expect(fine.locator("td").nth(12)).to_have_text("19")
    # Where it waits and whose move it is: the community's safety officer, to rectify.
    expect(page.locator("#register-table thead th").nth(16)).to_have_text("当前环节")
    expect(late.locator("td").nth(16)).to_have_text("隐患整改")
    expect(late.locator("td").nth(17)).to_have_text("尹秀英")
    # The nearest deadline first, as the API sorts it.
    assert table_codes(page) == ["YH-OLD", "YH-NEW"]

    page.select_option("#filter-overdue", "true")
    expect(page.locator("#register-table tbody tr")).to_have_count(1)
    page.reload()
    expect(page.locator("#tab-rectification")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#filter-overdue")).to_have_value("true")
    # The list is drawn after the page: wait for it, then read it.
    expect(page.locator("#register-table tbody tr")).to_have_count(1)
    assert table_codes(page) == ["YH-OLD"]


def test_exports_download_the_filtered_register(signed_in: SignedIn, server: Any) -> None:
    import_rows(server, [row("YH-101", "liuhe"), row("YH-102", "heping"),
                         row("YH-103", "liuhe", where="仓库")])
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards?register=hazards&unit=liuhe"))
    expect(page.locator("#summary")).to_have_text("共 2 条隐患，第 1–2 条")
    rows = downloaded_csv(page, "#export-csv")
    assert rows[0] == HAZARD_HEADERS
    assert sorted(r[0] for r in rows[1:]) == ["YH-101", "YH-103"]
    assert {r[1] for r in rows[1:]} == {"六和社区"}

    with page.expect_download() as d:
        page.click("#export-xlsx")
    assert d.value.suggested_filename.startswith("隐患清单-")
    assert d.value.suggested_filename.endswith(".xlsx")
    book = openpyxl.load_workbook(io.BytesIO(Path(d.value.path()).read_bytes()))
    cells = [list(r) for ws in book.worksheets for r in ws.iter_rows(values_only=True)]
    assert cells[0] == HAZARD_HEADERS and len(cells) == 3

    # The rectification register's export is its own, with the same filter.
    page.click("#tab-rectification")
    expect(page.locator("#summary")).to_have_text("共 2 条未销号隐患，第 1–2 条")
    rows = downloaded_csv(page, "#export-csv")
    assert rows[0][:4] == ["隐患编号", "单位", "街道", "等级"] and "剩余天数" in rows[0]
    assert sorted(r[0] for r in rows[1:]) == ["YH-101", "YH-103"]


def test_a_bad_file_names_row_and_column_and_imports_nothing_a_good_one_grows_the_list(
        signed_in: SignedIn, server: Any) -> None:
    import_rows(server, [row("YH-201", "liuhe")])
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards"))
    expect(page.locator("#summary")).to_have_text("共 1 条隐患，第 1–1 条")
    expect(page.locator("#import")).to_be_visible()

    bad = [row("YH-202", "heping"), row("YH-203", "liuhe", grade="特大")]  # row 3 of the file
    page.set_input_files("#import-file", {"name": "有错.csv", "mimeType": "text/csv",
                                          "buffer": csv_bytes(bad)})
    page.click("#import-submit")
    errors = page.locator("#import-errors li")
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text("第 3 行 隐患等级")
    expect(errors.first).to_contain_text("特大")
    expect(errors.first).to_have_attribute("data-row", "3")
    expect(page.locator("#import-problems-line")).to_contain_text("未导入任何数据")
    expect(page.locator("#flash")).to_contain_text("1 处错误")
    assert api_get(server, "/api/hazards")["count"] == 1

    good = [row("YH-202", "heping"), row("YH-203", "liuhe", grade="重大")]
    page.set_input_files("#import-file", {"name": "改好了.csv", "mimeType": "text/csv",
                                          "buffer": csv_bytes(good)})
    page.click("#import-submit")
    expect(page.locator("#import-result")).to_contain_text("已导入 2 条隐患")
    expect(page.locator("#import-problems")).to_be_hidden()
    expect(page.locator("#summary")).to_have_text("共 3 条隐患，第 1–3 条")
    assert api_get(server, "/api/hazards")["count"] == 3
    assert sorted(table_codes(page)) == ["YH-201", "YH-202", "YH-203"]


def test_a_file_with_many_mistakes_lists_them_below_and_the_banner_only_counts_them(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards"))
    bad = [row("YH-301", "liuhe", grade="特大"), row("YH-301", "heping", grade="特大")]
    page.set_input_files("#import-file", {"name": "有错.csv", "mimeType": "text/csv",
                                          "buffer": csv_bytes(bad)})
    page.click("#import-submit")
    errors = page.locator("#import-errors li")
    expect(errors).to_have_count(3)  # 特大 twice, YH-301 repeated
    flash = page.locator("#flash")
    expect(flash).to_contain_text("3 处错误")
    expect(flash).to_contain_text("逐行列在下方")
    # Said once, below, in Chinese: not run together again in the banner under field ids.
    expect(flash).not_to_contain_text("第 3 行")
    expect(flash).not_to_contain_text("grade:")
    expect(flash).not_to_contain_text("code:")
    assert api_get(server, "/api/hazards")["count"] == 0


def L(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SH)


def test_the_ranking_shows_what_the_api_counts_and_exports_it(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    # March's hazards: two imported on 03-01 (still open), and closed ones written into the
    # register with their dates (as the ranking's API tests seed a month).
    import_rows(server, [row("YH-301", "liuhe"), row("YH-302", "maluan-community")])
    seed_hazards(server.rt, [
        {"unit": "heping", "street": "pingshan-street", "found_at": L(3, 3),
         "due_at": L(3, 20), "closed_at": L(3, 5), "status": "已销号"},
        {"unit": "maluan-community", "street": "maluan", "found_at": L(3, 4),
         "due_at": L(3, 10), "closed_at": L(3, 25), "status": "已销号"},
        {"unit": "maluan-community", "street": "maluan", "found_at": L(3, 6),
         "due_at": L(3, 16)},
    ], playbook_id="hazard-3030")
    clock.advance(timedelta(days=40))  # 2026-04-11: March is past, and the open ones overdue

    want = api_get(server, "/api/ranking", month="2026-03")
    page = signed_in(MANAGER)
    page.goto(server.url("/ranking"))
    # The API's default month, the previous one by the server's clock, put in the picker.
    expect(page.locator("#month")).to_have_value("2026-03")
    expect(page.locator("#period")).to_contain_text(want["start_local"])
    expect(page.locator("#period")).to_contain_text(want["end_local"])
    expect(page.locator("#ranking-table thead th")).to_have_text(RANKING_HEADERS)

    def pct(rate: float | None) -> str:
        return "—" if rate is None else f"{rate * 100:.1f}"

    expected = [[str(r["rank"]), r["unit_name"], str(r["found"]), str(r["closed"]),
                 str(r["closed_of_found"]), pct(r["closure_rate"]), str(r["overdue"]),
                 "—" if r["mean_days_to_close"] is None else f"{r['mean_days_to_close']:.1f}",
                 str(r["on_time"]), pct(r["on_time_rate"])] for r in want["data"]]
    body = page.locator("#ranking-table tbody tr")
    expect(body).to_have_count(len(expected))
    shown = [r.locator("td").all_inner_texts() for r in body.all()]
    assert shown == expected
    by_unit = {r["unit_id"]: r for r in want["data"]}
    assert (by_unit["pingshan-street"]["found"], by_unit["maluan"]["found"]) == (2, 3)
    assert by_unit["maluan"]["overdue"] == 1 and by_unit["pingshan-street"]["rank"] == 1
    expect(page.locator("#ranking-table tr[data-unit=maluan] td").nth(6)).to_have_class(
        "num overdue")

    rows = downloaded_csv(page, "#export-csv")
    # The file also says, on every row, its month and that these are live figures.
    assert rows[0] == [*RANKING_HEADERS, "月份", "口径"] and len(rows) == len(expected) + 1
    assert [r[:3] for r in rows[1:]] == [e[:3] for e in expected]
    assert {(r[10], r[11].split("（")[0]) for r in rows[1:]} == {("2026-03", "实时统计")}

    # The communities of one street, kept in the address.
    page.select_option("#unit", "pingshan-street")
    expect(page.locator("#level")).to_have_value("community")
    expect(page.locator("#ranking-table tr[data-unit=liuhe] td").nth(2)).to_have_text("1")
    page.reload()
    expect(page.locator("#unit")).to_have_value("pingshan-street")
    expect(page.locator("#ranking-table tbody tr")).to_have_count(5)


def test_a_published_ranking_stays_as_published_and_a_recount_is_said_as_such(
        signed_in: SignedIn, server: Any, clock: ManualClock) -> None:
    seed_hazards(server.rt, [
        {"unit": "heping", "street": "pingshan-street", "found_at": L(3, 3),
         "due_at": L(3, 20), "closed_at": L(3, 5), "status": "已销号"},
        {"unit": "maluan-community", "street": "maluan", "found_at": L(3, 4),
         "due_at": L(3, 10)},
    ], playbook_id="hazard-3030")
    clock.advance(timedelta(days=40))  # 2026-04-11: March is over
    page = signed_in(MANAGER)
    page.goto(server.url("/ranking?month=2026-03"))
    expect(page.locator("#published")).to_have_text("未发布：以下为按登记台账实时统计的数据。")
    expect(page.locator("#switch-live")).to_be_hidden()
    page.click("#publish")
    expect(page.locator("#publish-effect")).to_contain_text("此后该月排名以发布时的数据为准")
    assert api_get(server, "/api/ranking", month="2026-03")["published"] is None
    page.click("#publish-yes")
    expect(page.locator("#flash")).to_have_text("已发布 2026-03 综合评价月排名")
    expect(page.locator("#published")).to_have_text(
        "已于 2026-04-11 09:00 由 孙丽 发布：以下为发布时的数据。")
    maluan = page.locator("#ranking-table tr[data-unit=maluan] td")
    expect(maluan.nth(2)).to_have_text("1")

    # 马峦's March hazard turns out to be registered in error: the published month keeps it,
    # the recount does not, and says it is a recount.
    with server.rt.db.begin() as conn:
        conn.execute(update(Hazard).where(Hazard.unit_id == "maluan-community")
                     .values(status=REGISTER_CANCELLED))
    page.reload()
    expect(maluan.nth(2)).to_have_text("1")
    page.click("#switch-live")
    expect(page.locator("#published")).to_contain_text("实时重算：以下为按当前台账重新统计的数据")
    expect(maluan.nth(2)).to_have_text("0")
    assert "live=true" in page.url
    # A correction needs its reason: the API's 409 is shown, then it goes through with one.
    page.click("#publish")
    page.click("#publish-yes")
    expect(page.locator("#flash")).to_contain_text("请说明原因后重新发布")
    page.fill("#reason", "马峦社区一条隐患系误登记")
    page.click("#publish")
    page.click("#publish-yes")
    expect(page.locator("#published")).to_have_text(
        "已于 2026-04-11 09:00 由 孙丽 发布（更正原因：马峦社区一条隐患系误登记）："
        "以下为发布时的数据。")
    expect(maluan.nth(2)).to_have_text("0")



def test_a_community_person_sees_only_their_communitys_hazards(signed_in: SignedIn,
                                                              server: Any) -> None:
    import_rows(server, [row("YH-401", "liuhe"), row("YH-402", "heping"),
                         row("YH-403", "maluan-community")])
    page = signed_in("liuhe-grid", phone=True)
    page.goto(server.url("/hazards"))
    expect(page.locator("#summary")).to_have_text("共 1 条隐患，第 1–1 条")
    assert table_codes(page) == ["YH-401"]
    # Neither the manager's registers nor the exports nor the import are offered.
    expect(page.locator("#tabs button")).to_have_text(["隐患清单"])
    expect(page.locator("#actions")).to_be_hidden()
    expect(page.locator("#import")).to_be_hidden()
    # A manager's register asked for by address: who may read it (the API's refusal said as
    # such), and no table (tests/web/test_register_filters.py has the rest).
    page.goto(server.url("/hazards?register=risks"))
    expect(page.locator("#refused")).to_contain_text("需要科室负责人")
    expect(page.locator("#register-table")).to_have_count(0)


RISK_HEADER = "风险点编号,单位编号,风险点名称,风险类别,位置,风险等级,管控措施"


def test_the_risk_register_imports_from_the_page_and_filters_by_level(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards?register=risks"))
    expect(page.locator("#summary")).to_have_text("共 0 个风险点")
    expect(page.locator("#import-title")).to_have_text("导入风险清单")
    lines = ["FX-001,liuhe,加油站,危化品,六和路1号,重大,专人值守",
             "FX-002,heping,农贸市场,消防,和平路2号,一般,每日巡查"]
    data = ("\r\n".join([RISK_HEADER, *lines]) + "\r\n").encode("utf-8-sig")
    page.set_input_files("#import-file", {"name": "风险清单.csv", "mimeType": "text/csv",
                                          "buffer": data})
    page.click("#import-submit")
    expect(page.locator("#import-result")).to_contain_text("已导入 2 个风险点（新增 2，更新 0）")
    expect(page.locator("#register-table thead th")).to_have_text(
        ["风险点编号", "单位", "街道", "名称", "类别", "地点", "风险等级", "管控措施", "责任人",
         "更新时间"])
    assert table_codes(page) == ["FX-001", "FX-002"]  # 重大 first
    page.select_option("#filter-level", "一般")
    expect(page.locator("#summary")).to_have_text("共 1 个风险点，第 1–1 条")
    assert table_codes(page) == ["FX-002"]
    assert "register=risks" in page.url and "level=" in page.url


def test_a_long_register_pages_and_the_page_is_kept_in_the_address(
        signed_in: SignedIn, server: Any) -> None:
    import_rows(server, [row(f"YH-{i:03d}", "liuhe", where=f"{i}号") for i in range(55)])
    page = signed_in(MANAGER)
    page.goto(server.url("/hazards?register=hazards"))
    expect(page.locator("#summary")).to_have_text("共 55 条隐患，第 1–50 条")
    expect(page.locator("#page-prev")).to_be_disabled()
    page.click("#page-next")
    expect(page.locator("#summary")).to_have_text("共 55 条隐患，第 51–55 条")
    assert "offset=50" in page.url
    page.reload()
    expect(page.locator("#summary")).to_have_text("共 55 条隐患，第 51–55 条")
    expect(page.locator("#page-next")).to_be_disabled()
    page.click("#page-prev")
    expect(page.locator("#summary")).to_have_text("共 55 条隐患，第 1–50 条")

