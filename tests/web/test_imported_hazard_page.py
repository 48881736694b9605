"""A hazard that came in with a spreadsheet: its run page's timeline says what the import did
for it (the row of the file, the tasks handed out and those that do not apply), since an import
records one event per hazard instead of one per task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

SignedIn = Callable[..., Page]
HEADER = "隐患编号,单位编号,隐患来源,隐患等级,隐患类别,隐患地点,隐患描述,涉及企业,发现时间"


def test_an_imported_hazards_timeline_names_its_row_and_the_tasks_handed_out(
        signed_in: SignedIn, server: Any) -> None:
    lines = [HEADER,
             "YH-101,liuhe,检查发现,一般,消防安全,六和厂房,消防通道堵塞,某公司,2026-03-01 09:30",
             "YH-102,liuhe,检查发现,重大,消防安全,六和仓库,仓库违规住人,某公司,2026-03-01 10:00"]
    r = httpx.post(server.url("/api/hazards/import"),
                   headers={"Authorization": f"Bearer {server.token('sun-li')}"},
                   files={"file": ("隐患清单.csv", ("\r\n".join(lines) + "\r\n").encode(),
                                   "text/csv")})
    assert r.status_code == 201, r.text
    general, major = r.json()["runs"]
    page = signed_in("sun-li")
    page.goto(server.url(f"/runs/{general}"))
    event = page.locator("#timeline li[data-action='imported']")
    expect(event).to_contain_text("导入登记")
    expect(event).to_contain_text("文件第 2 行")
    expect(event).to_contain_text("下达任务：隐患整改")
    expect(event).to_contain_text("不适用：重大隐患挂牌督办")
    page.goto(server.url(f"/runs/{major}"))
    event = page.locator("#timeline li[data-action='imported']")
    expect(event).to_contain_text("文件第 3 行")
    expect(event).to_contain_text("重大隐患挂牌督办")
    expect(event).not_to_contain_text("不适用：重大隐患挂牌督办")
