"""Signing in on the web: a token pasted once, the person's name and links, a refused token
said in the API's words, a page asked for before signing in reached after it, and pages that
load nothing from anywhere but this server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

SignedIn = Callable[..., Page]


def test_a_pasted_token_signs_in_and_shows_the_persons_links(signed_in: SignedIn,
                                                             server: Any) -> None:
    page = signed_in(None, phone=True)
    page.goto(server.url("/"))
    expect(page.locator("#signin")).to_be_visible()
    page.fill("#token", server.token("pingshan-street-inspector-1"))
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#welcome-line")).to_contain_text("邓思远")
    expect(page.locator("#welcome-line")).to_contain_text("坪山街道")
    expect(page.locator("#welcome-line")).to_contain_text("检查员")
    expect(page.locator("#who")).to_contain_text("邓思远")
    links = page.locator("#links a")
    expect(links.filter(has_text="我的待办")).to_have_attribute("href", "/inbox")
    # An inspector may register a hazard (hazard-3030's started_by): the start page is theirs.
    expect(links.filter(has_text="启动预案")).to_have_count(1)
    # Signed in once, the browser keeps the token: the next visit goes straight to the links.
    page.reload()
    expect(page.locator("#welcome")).to_be_visible()
    page.click("#signout")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("window.localStorage.getItem('closeloop.token')") is None


def test_a_sign_in_link_keeps_the_token_and_takes_it_out_of_the_address(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in(None, phone=True)
    token = server.token("liuhe-grid")
    page.goto(server.url(f"/#token={token}"))
    expect(page.locator("#welcome-line")).to_contain_text("熊淑芬")
    assert page.url == server.url("/")
    assert page.evaluate("window.localStorage.getItem('closeloop.token')") == token


def test_a_person_who_may_start_nothing_is_not_offered_the_start_page(signed_in: SignedIn,
                                                                     server: Any) -> None:
    page = signed_in("liuhe-head")  # a community head: no playbook's started_by, no command
    page.goto(server.url("/"))
    expect(page.locator("#links a").filter(has_text="我的待办")).to_have_count(1)
    expect(page.locator("#links a").filter(has_text="启动预案")).to_have_count(0)
    # The ranking is a manager's (the API refuses anyone else): not offered, nor in the nav.
    expect(page.locator("#links a").filter(has_text="月度排名")).to_have_count(0)
    manager = signed_in("sun-li")
    manager.goto(server.url("/"))
    expect(manager.locator("#links a").filter(has_text="月度排名")).to_have_count(1)


def test_a_refused_token_is_said_in_the_apis_words_and_not_kept(signed_in: SignedIn,
                                                               server: Any) -> None:
    page = signed_in(None)
    page.goto(server.url("/"))
    page.fill("#token", server.token("pingshan-admin")[:-4] + "AAAA")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text("登录失败")
    expect(page.locator("#flash")).to_contain_text("令牌签名不对")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("window.localStorage.getItem('closeloop.token')") is None


def test_a_page_asked_for_before_signing_in_is_reached_after_it(signed_in: SignedIn,
                                                                server: Any) -> None:
    page = signed_in(None)
    page.goto(server.url("/inbox"))
    expect(page).to_have_url(server.url("/?next=%2Finbox"))
    page.fill("#token", server.token("liuhe-grid"))
    page.click("#signin-form button[type=submit]")
    expect(page).to_have_url(server.url("/inbox"))
    expect(page.locator("#who")).to_contain_text("熊淑芬")


@pytest.mark.parametrize("next_", ["//example.org/x", "/%5Cexample.org/x", "/%5C%5Cexample.org",
                                   "https://example.org/", "/%09/example.org"])
def test_a_next_address_off_this_server_is_not_followed(signed_in: SignedIn, server: Any,
                                                        next_: str) -> None:
    page = signed_in(None)
    left: list[str] = []
    page.on("request", lambda r: left.append(r.url)
            if "example.org" in (urlsplit(r.url).hostname or "") else None)
    page.goto(server.url(f"/?next={next_}"))
    page.fill("#token", server.token("liuhe-grid"))
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#welcome")).to_be_visible()
    assert page.url.startswith(server.url("/")) and left == []


def test_a_token_of_someone_gone_from_the_org_chart_sends_the_page_back_to_sign_in(
        signed_in: SignedIn, server: Any) -> None:
    page = signed_in(None)
    page.add_init_script(
        f"window.localStorage.setItem('closeloop.token', {server.token('nobody-here')!r});")
    page.goto(server.url("/runs"))
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("nobody-here")


def test_pages_load_nothing_from_elsewhere_and_refuse_strange_files(server: Any) -> None:
    for path in ("/", "/inbox", "/tasks/1", "/runs", "/runs/new", "/runs/1", "/hazards",
                 "/ranking"):
        r = httpx.get(server.url(path))
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "http" not in r.text.split("<body", 1)[0].replace("http-equiv", "")
    assert httpx.get(server.url("/static/closeloop.js")).headers["content-type"].startswith(
        "text/javascript")
    for bad in ("/static/..%2Fpages.py", "/static/.hidden.js", "/static/nothing.js",
                "/static/app.py", "/tasks/0", "/runs/99999999999999999999"):
        r = httpx.get(server.url(bad))
        assert r.status_code == 404, bad


def test_a_page_that_does_not_exist_is_a_page_saying_so(signed_in: SignedIn,
                                                        server: Any) -> None:
    page = signed_in("liuhe-grid")
    for path in ("/tasks/abc", "/runs/0", "/runs/99999999999999999999", "/no-such-page"):
        answer = page.goto(server.url(path))
        assert answer is not None and answer.status == 404, path
        expect(page.locator("#heading")).to_have_text("页面不存在")
        expect(page.locator("main")).to_contain_text(path)
    # The API and the pages' files keep answering in their own terms.
    assert httpx.get(server.url("/api/nothing"), headers={"Accept": "text/html"}).json()[
        "error"] == "not_found"
    assert httpx.get(server.url("/static/none.js"),
                     headers={"Accept": "text/html"}).headers["content-type"].startswith(
        "application/json")

