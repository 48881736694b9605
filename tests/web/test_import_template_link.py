"""The register page's import panel offers the import template (导入模板) the clerk fills in:
the Excel link downloads 隐患导入模板.xlsx with the hazard import's header, and on the risk
register the CSV link downloads 风险点导入模板.csv with the risk import's."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
from playwright.sync_api import Page, expect

from flows.hazard_import import HAZARD_COLUMNS
from flows.risk_import import RISK_COLUMNS

SignedIn = Callable[..., Page]


def test_the_import_panel_downloads_the_template(signed_in: SignedIn, server: Any) -> None:
    page = signed_in("sun-li")
    page.goto(server.url("/hazards"))
    expect(page.locator("#import")).to_be_visible()
    link = page.get_by_role("link", name="下载导入模板（Excel）")
    expect(link).to_be_visible()
    with page.expect_download() as got:
        link.click()
    assert got.value.suggested_filename == "隐患导入模板.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(Path(got.value.path()).read_bytes()))
    assert [c.value for c in book["隐患清单"][1]] == [c.header for c in HAZARD_COLUMNS]
    assert book["隐患清单"].max_row == 1

    page.goto(server.url("/hazards?register=risks"))
    expect(page.locator("#import-title")).to_have_text("导入风险清单")
    with page.expect_download() as got:
        page.get_by_role("link", name="下载导入模板（CSV）").click()
    assert got.value.suggested_filename == "风险点导入模板.csv"
    data = Path(got.value.path()).read_bytes()
    assert data.decode("utf-8-sig") == ",".join(c.header for c in RISK_COLUMNS) + "\r\n"
