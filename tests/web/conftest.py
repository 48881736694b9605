"""Web pages in a real headless Chromium (Debian's `chromium`, driven by Playwright through
`executablePath`; no browser is ever downloaded). The server is the real app on the demo
district and the shipped playbooks, served by uvicorn on a loopback port in a thread of the
test process, so a test moves the runtime's clock and runs the sweeper between clicks."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from server_process import free_port

from api.auth import make_token
from api.main import create_app
from flows.runtime import Runtime

CHROMIUM = os.environ.get("CLOSELOOP_CHROMIUM", "/usr/bin/chromium")
# Chromium's own calls home (updates, sync, safe browsing) must not leave the machine.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PHONE = {"width": 390, "height": 844}


class WebServer:
    """The app on a free loopback port; `url(path)` for the browser."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.port = free_port()
        app = create_app(rt, background=False, prefect=False)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> WebServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def token(self, person: str) -> str:
        return make_token(person, self.rt.settings.signing_secret())


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(f"Chromium not found at {CHROMIUM}: `./dev test` installs Debian's "
                    "chromium package (or set CLOSELOOP_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def web_rt(demo: Runtime) -> Runtime:
    """The shipped playbooks and the demo district 坪山区, as `./dev serve` runs them
    (tests/conftest.py `demo`, on the shared movable `clock`)."""
    return demo


@pytest.fixture
def server(web_rt: Runtime) -> Iterator[WebServer]:
    with WebServer(web_rt) as s:
        yield s


SignedIn = Callable[..., Page]


@pytest.fixture
def signed_in(browser: Browser, server: WebServer) -> Iterator[SignedIn]:
    """signed_in(person, phone=False) -> a page whose browser holds that person's token (set
    before any script runs, as the sign-in form leaves it). Every page is checked at the end:
    no script error and no request the server answered with 500 or above."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    def open_as(person: str | None, *, phone: bool = False) -> Page:
        context = browser.new_context(viewport=PHONE if phone else None, locale="zh-CN",
                                      accept_downloads=True)
        if person:
            context.add_init_script(
                f"window.localStorage.setItem('closeloop.token', {server.token(person)!r});")
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
                if r.status >= 500 else None)
        page.set_default_timeout(10_000)
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert problems == []
