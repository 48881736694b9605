"""The monthly pages (月度排名, 报送考核) show their month picker before they know who is signed
in (a phone on a slow network shows the form first). A month chosen then is kept and asked for,
not reset to the address's (none: the previous month) when the page fills its form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from slow_sign_in import open_before_sign_in

SignedIn = Callable[..., Page]
MANAGER = "sun-li"


@pytest.mark.parametrize("path", ["/ranking", "/reporting"])
def test_a_month_chosen_while_the_page_loads_is_kept(signed_in: SignedIn, server: Any,
                                                     path: str) -> None:
    want = httpx.get(server.url(f"/api{path}"), params={"month": "2025-11"},
                     headers={"Authorization": f"Bearer {server.token(MANAGER)}"}).json()
    page = signed_in(MANAGER, phone=True)
    open_before_sign_in(page, server.url(path), lambda: page.fill("#month", "2025-11"))
    expect(page.locator("#period")).to_contain_text(want["start_local"])
    expect(page.locator("#month")).to_have_value("2025-11")
    assert "month=2025-11" in page.url
