"""GET /api/reporting and its export (信息报送考核): the figures of a month of real runs
(tests/reporting_month.py) as a manager reads them, who may read them (a street's manager
their street only), every bad filter a 422 naming it, and the export's Chinese headers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from fastapi.testclient import TestClient
from reporting_month import seed

from flows.runtime import Runtime
from models.clock import ManualClock

Auth = Any
MALUAN_HEAD = "{id: maluan-head, name: 白少华"
PINGSHAN_HEAD = "{id: pingshan-street-head, name: 王建华"


def _with_manager(text: str, head: str, person: str, name: str) -> str:
    at = text.index(head)
    line_start = text.rindex("\n", 0, at) + 1
    indent = text[line_start:at]
    line = f"{indent}{{id: {person}, name: {name}, roles: [manager], notify: []}}\n"
    return text[:line_start] + line + text[line_start:]


@pytest.fixture
def rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    """The demo district with a manager in 坪山街道 and one in 马峦街道."""
    text = DEMO_ORG.read_text(encoding="utf-8")
    text = _with_manager(text, MALUAN_HEAD, "maluan-manager", "马峦街道综治办")
    text = _with_manager(text, PINGSHAN_HEAD, "pingshan-street-manager", "坪山街道综治办")
    made = make_runtime(tmp_path / "demo", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                        org_text=text)
    assert made.catalog.errors == []
    yield made
    made.db.dispose()


def get(client: TestClient, auth: Auth, who: str, path: str = "/api/reporting",
        **params: Any) -> Any:
    return client.get(path, params=params, headers=auth(who))


def test_a_district_manager_reads_each_streets_reports_and_every_late_or_missed_one(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    s = seed(rt, clock)
    r = get(client, auth, "sun-li", month="2026-03")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["month"], body["level"], body["unit"]) == ("2026-03", "street", "pingshan")
    assert body["kinds"][:3] == ["首报", "口头报告", "系统首报"]
    first = body["data"][0]
    assert (first["unit_id"], first["rank"], first["due"], first["on_time"], first["late"],
            first["missed"], first["on_time_rate"]) == ("pingshan-street", 1, 8, 5, 2, 1, 0.625)
    assert (first["mean_late_minutes"], first["max_late_minutes"]) == (16.5, 30.0)
    assert [(k["kind"], k["due"]) for k in first["kinds"]] == [
        ("首报", 4), ("口头报告", 1), ("系统首报", 1), ("续报", 2)]
    assert (body["total"]["due"], body["total"]["missed"]) == (14, 5)
    late = [x for x in body["reports"] if x["outcome"] == "迟报"]
    assert [(x["run_id"], x["kind"], x["late_minutes"]) for x in late] == [
        (s.late, "首报", 3.0), (s.major, "续报", 30.0)]
    assert late[1]["due_at_local"] == "2026-03-02 17:00"
    assert late[1]["done_at_local"] == "2026-03-02 17:30"
    missed = [x for x in body["reports"] if x["outcome"] == "漏报"]
    assert {x["run_id"] for x in missed} == {s.missed, s.maluan_open, s.typhoon}
    cancelled = next(x for x in missed if x["run_id"] == s.missed)
    assert (cancelled["status_zh"], cancelled["unit_name"]) == ("已撤销", "六和社区")
    # Each one's run opens for its manager: why it was late is in its timeline.
    for x in body["reports"]:
        assert client.get(f"/api/runs/{x['run_id']}", headers=auth("sun-li")).status_code == 200


def test_a_street_manager_sees_their_street_only_and_others_are_refused(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    seed(rt, clock)
    mine = get(client, auth, "maluan-manager", month="2026-03", unit="maluan").json()
    assert mine["level"] == "street"
    assert [r["unit_id"] for r in mine["data"]] == ["maluan"]
    communities = get(client, auth, "maluan-manager", month="2026-03", unit="maluan",
                      level="community").json()
    assert {r["unit_id"] for r in communities["data"]} == {
        "maluan-community", "jiangling", "pinghuan"}
    seen = {x["unit_id"] for x in mine["reports"]} | {x["unit_id"] for x in communities["reports"]}
    assert seen == {"pinghuan", "maluan-community", "jiangling"}  # nothing of 六和
    assert mine["total"]["due"] == 6
    # 坪山街道's manager sees 六和's, none of 马峦's.
    theirs = get(client, auth, "pingshan-street-manager", month="2026-03",
                 unit="pingshan-street").json()
    assert {x["unit_id"] for x in theirs["reports"]} == {"liuhe"}
    # Wider than one's street, another street, or no manager at all: 403, and no figures.
    for who, unit in (("maluan-manager", None), ("maluan-manager", "pingshan-street"),
                      ("maluan-manager", "liuhe"), ("wang-qiang", None),
                      ("maluan-commander", "maluan"), ("liuhe-grid", "liuhe")):
        params = {"month": "2026-03"} | ({"unit": unit} if unit else {})
        for path in ("/api/reporting", "/api/reporting/export"):
            r = get(client, auth, who, path, **params)
            assert r.status_code == 403, (who, unit, path, r.text)
            assert "reports" not in r.json() and "漏报" not in r.text


@pytest.mark.parametrize(("params", "field"), [
    ({"month": "2026-13"}, "month"),
    ({"month": "March"}, "month"),
    ({"month": "2026-05"}, "month"),  # after the current month (the clock is in March)
    ({"level": "county"}, "level"),
    ({"unit": "nowhere"}, "unit"),
    ({"unit": "liuhe", "level": "street"}, "level"),  # a community has no streets below it
    ({"format": "CSV"}, "format"),
])
def test_a_bad_filter_is_a_422_naming_it(client: TestClient, auth: Auth, params: dict[str, str],
                                         field: str) -> None:
    path = "/api/reporting/export" if "format" in params else "/api/reporting"
    r = get(client, auth, "sun-li", path, **params)
    assert r.status_code == 422, r.text
    said = r.text
    assert field in said
    assert any("\u4e00" <= ch <= "\u9fff" for ch in said)  # said in Chinese too


def test_no_token_is_a_401(client: TestClient) -> None:
    assert client.get("/api/reporting").status_code == 401


def test_the_export_has_chinese_headers_and_a_row_per_kind(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    seed(rt, clock)
    headers = ["排名", "单位", "报告类别", "应报数", "按时报送数", "迟报数", "平均迟报(分钟)",
               "最长迟报(分钟)", "漏报数", "按时报送率(%)", "待核实", "月份", "口径"]
    r = get(client, auth, "sun-li", "/api/reporting/export", month="2026-03", format="csv")
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == headers
    liuhe = [row for row in rows[1:] if row[1] == "坪山街道"]
    assert [row[2] for row in liuhe] == ["全部", "首报", "口头报告", "系统首报", "续报"]
    assert liuhe[0][:10] == ["1", "坪山街道", "全部", "8", "5", "2", "16.5", "30.0", "1", "62.5"]
    assert liuhe[0][11] == "2026-03" and liuhe[0][12].startswith("实时统计")
    assert [row[2] for row in rows[1:] if row[1] == "碧岭街道"] == ["全部"]

    x = get(client, auth, "sun-li", "/api/reporting/export", month="2026-03", format="xlsx")
    assert x.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    table = [list(row) for row in ws.iter_rows(values_only=True)]
    assert table[0] == headers
    assert table[1][:10] == [1, "坪山街道", "全部", 8, 5, 2, 16.5, 30, 1, 62.5]


def test_the_export_ends_with_the_pages_total_those_above_the_level_counted(
        client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    """The page ends with 合计, which also counts what no unit's row holds (a run at the
    district, above the level): the file a manager hands on ends with the same."""
    seed(rt, clock)
    page = get(client, auth, "sun-li", month="2026-03").json()
    total = page["total"]
    r = get(client, auth, "sun-li", "/api/reporting/export", month="2026-03", format="csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    totals = [row for row in rows[1:] if row[1] == "合计（坪山区）"]
    assert [row[2] for row in totals] == ["全部", *[k["kind"] for k in total["kinds"]]]
    assert totals[0][:10] == ["", "合计（坪山区）", "全部", str(total["due"]),
                              str(total["on_time"]), str(total["late"]),
                              str(total["mean_late_minutes"]), str(total["max_late_minutes"]),
                              str(total["missed"]), str(round(total["on_time_rate"] * 100, 1))]
    assert rows[-len(totals):] == totals  # last, as on the page

    x = get(client, auth, "sun-li", "/api/reporting/export", month="2026-03", format="xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    table = [list(row) for row in ws.iter_rows(values_only=True)]
    last = [row for row in table if row[1] == "合计（坪山区）"][0]
    assert last[0] is None and last[3] == total["due"] and last[8] == total["missed"]
