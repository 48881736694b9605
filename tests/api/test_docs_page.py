"""The API reference at /docs (api/docs_page.py): served by the app itself from its own OpenAPI
document, loading nothing from the network (a bureau's intranet is offline, SPEC §4), with a
Content-Security-Policy that would block anything it tried to load."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

from fastapi.testclient import TestClient

from api.docs_page import render

CJK = re.compile("[\u4e00-\u9fff]")
# Attributes through which a page makes the browser fetch or go somewhere.
URL_ATTRS = {"src", "href", "srcset", "action", "formaction", "poster", "data", "background",
             "cite", "longdesc", "manifest", "ping", "xlink:href"}
LOADING_TAGS = {"script", "link", "img", "iframe", "frame", "object", "embed", "audio", "video",
                "source", "track", "picture", "base", "form", "svg", "image", "input"}


class Page(HTMLParser):
    """What a browser would see of the page: tags, URL attributes, element ids, and the
    (method, path) of each operation's heading."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()
        self.styles: list[str] = []
        self.operations: set[tuple[str, str]] = set()
        self._span: str | None = None
        self._method = ""
        self._in_style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in URL_ATTRS:
                self.urls.append((tag, name, value or ""))
            if name == "id" and value:
                self.ids.add(value)
            if name == "style" and value:
                self.styles.append(value)
            if tag == "span" and name == "class" and value:
                self._span = next((c for c in ("method", "path") if c in value.split()), None)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._span = None
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
        elif self._span == "method":
            self._method = data.strip()
        elif self._span == "path":
            self.operations.add((self._method, data.strip()))


def operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item
            if method in ("get", "put", "post", "delete", "patch", "options", "head")}


def test_docs_answers_html_with_every_operation_of_openapi(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    spec = client.app.openapi()  # type: ignore[attr-defined]
    page = Page(response.text)
    assert page.operations == operations(spec)
    for path in spec["paths"]:
        assert html.escape(path) in response.text, path
    assert "<title>closeloop 接口说明" in response.text
    for heading in ("参数", "请求体", "响应", "需要登录 (Bearer token)", "数据结构"):
        assert heading in response.text, heading
    # Every component schema has its entry, so every type link lands somewhere.
    for name in spec["components"]["schemas"]:
        assert f"schema-{name}" in page.ids, name


def test_docs_loads_nothing_from_anywhere(client: TestClient) -> None:
    response = client.get("/docs")
    page = Page(response.text)
    assert not page.tags & LOADING_TAGS, page.tags & LOADING_TAGS
    # The only links are to places on the page itself, and each of them exists.
    assert page.urls, "the table of contents links to the operations"
    for tag, attr, value in page.urls:
        assert (tag, attr) == ("a", "href") and value.startswith("#"), (tag, attr, value)
        assert value[1:] in page.ids, value
    text = response.text.lower()
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    for css in page.styles:
        assert "url(" not in css and "@import" not in css, css


def test_docs_has_a_csp_that_forbids_loading(client: TestClient) -> None:
    response = client.get("/docs")
    csp = response.headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["style-src"] == ["'unsafe-inline'"]
    for name in ("script-src", "img-src", "font-src", "connect-src", "frame-src"):
        assert name not in directives  # default-src 'none' governs them
    assert "http" not in csp and "*" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_redoc_serves_no_cdn_page(client: TestClient) -> None:
    response = client.get("/redoc")
    assert response.status_code in (200, 404)
    text = response.text.lower()
    assert "cdn" not in text and "<script" not in text and "redoc.standalone" not in text
    if response.status_code == 200:
        assert response.text == client.get("/docs").text
        assert "default-src 'none'" in response.headers["content-security-policy"]
    # Swagger UI's helper page went with it.
    assert client.get("/docs/oauth2-redirect").status_code == 404


def test_docs_public_like_openapi_json(client: TestClient) -> None:
    spec = client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["paths"]
    assert client.get("/docs").status_code == 200  # no token, as for /openapi.json
    # The page is not itself an operation of the API.
    assert "/docs" not in spec.json()["paths"] and "/redoc" not in spec.json()["paths"]


def test_docs_shows_chinese_parameter_descriptions(client: TestClient) -> None:
    spec = client.app.openapi()  # type: ignore[attr-defined]
    chinese = {p["description"] for item in spec["paths"].values() for op in item.values()
               for p in op.get("parameters", [])
               if CJK.search(p.get("description", "")) and "`" not in p["description"]
               and "\n" not in p["description"]}
    assert "检查发现 | 群众举报 | 执法检查 | 事故调查" in chinese  # GET /api/hazards ?source=
    # Read as a browser shows it: the page may escape an apostrophe as &#39; or &#x27;.
    text = html.unescape(client.get("/docs").text)
    for description in chinese:
        assert description in text, description


def test_docs_escapes_what_the_openapi_document_says() -> None:
    hostile = "<script>alert(1)</script>"
    spec = {
        "openapi": "3.1.0",
        "info": {"title": f"t{hostile}", "version": "1"},
        "paths": {"/x/{id}": {"post": {
            "tags": [hostile], "summary": hostile, "description": f"`{hostile}` and {hostile}",
            "parameters": [{"name": hostile, "in": "path", "required": True,
                            "description": hostile, "schema": {"type": "string",
                                                               "default": hostile}}],
            "requestBody": {"content": {"application/json": {"schema": {
                "$ref": f"#/components/schemas/{hostile}"}}}},
            "responses": {"200": {"description": hostile}},
        }}},
        "components": {"schemas": {hostile: {"type": "object", "description": hostile,
                                             "properties": {hostile: {"enum": [hostile]}}}}},
    }
    text = render(spec)
    assert "<script" not in text and "&lt;script&gt;" in text
    page = Page(text)
    assert page.operations == {("POST", "/x/{id}")}
    for _, _, value in page.urls:
        assert value.startswith("#") and "<" not in value and '"' not in value
