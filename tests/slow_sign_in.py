"""A page opened on a slow phone network: its form shows before it knows who is signed in.
`open_before_sign_in` holds GET /api/me until the test has chosen something on the form, then
lets the answer through, so a page that reset the choice when the answer arrived is seen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page


def open_before_sign_in(page: Page, url: str, choose: Callable[[], Any]) -> None:
    held: list[Any] = []
    page.route("**/api/me", lambda route: held.append(route))
    page.goto(url, wait_until="domcontentloaded")
    choose()
    for _ in range(200):  # the page has asked who is signed in (bounded: 10 s)
        if held:
            break
        page.wait_for_timeout(50)
    [asked] = held
    asked.continue_()  # the answer arrives after the choice
