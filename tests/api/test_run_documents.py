"""GET /api/runs/{id}/documents and /documents/{doc}: a 重大 hazard's 挂牌督办通知书 comes under its
own title (its first heading, not the step that filed it) and as HTML the page shows as a
formatted document (headings, bold, the 项目 | 内容 table, the numbered requirements), beside the
Markdown as filed. What people typed into the hazard goes into that HTML as text only: no
script, tag, link or image of theirs comes through (the demo district, through the API)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hazard_walk import CHIEF, INSPECTOR, MANAGER

from flows.runtime import Runtime
from flows.segments import drain_wakes

TYPED = ("除尘器<script>alert(1)</script><img src=x onerror=alert(2)>"
         "[点此查看](http://evil.example/x) ![](http://evil.example/p.png) <b>未设</b>泄爆装置")


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def listed_hazard(client: TestClient, auth, rt: Runtime, description: str) -> int:  # noqa: ANN001
    """A 重大 hazard registered and listed (挂牌督办): its notice is filed."""
    r = client.post("/api/runs", headers=auth(INSPECTOR), json={
        "playbook": "hazard-3030", "unit": "liuhe", "params": {
            "location": "六和社区和平路18号", "grade": "重大", "description": description}})
    assert r.status_code == 201, r.text
    run = r.json()
    drain_wakes(rt)
    listing = next(s for s in run["steps"] if s["step"] == "list")
    r = client.post(f"/api/tasks/{listing['id']}/complete", headers=auth(CHIEF), json={
        "outputs": {"responsible_unit": "富达五金厂", "responsible_person": "李富达"}})
    assert r.status_code == 200, r.text
    drain_wakes(rt)
    return int(run["id"])


def notice_of(client: TestClient, auth, run_id: int) -> dict[str, Any]:  # noqa: ANN001
    r = client.get(f"/api/runs/{run_id}/documents", headers=auth(MANAGER))
    assert r.status_code == 200, r.text
    [notice] = [d for d in r.json()["data"] if d["step"] == "notice"]
    return notice  # type: ignore[no-any-return]


def test_the_notice_comes_formatted_under_its_own_title(
    client: TestClient, auth, rt: Runtime  # noqa: ANN001
) -> None:
    notice = notice_of(client, auth, listed_hazard(client, auth, rt, "除尘系统未设泄爆装置"))
    assert notice["title"] == "生成重大事故隐患挂牌督办通知书"  # the record: the step's name
    assert notice["heading"] == "重大事故隐患挂牌督办通知书"  # the document's own
    html = notice["html"]
    assert html.startswith("<h1>重大事故隐患挂牌督办通知书</h1>")
    assert "<h2>一、督办隐患</h2>" in html and "<h2>二、督办要求</h2>" in html
    assert f"<p><strong>{notice['number']}</strong></p>" in html
    assert "<table>" in html and "<th>项目</th>" in html
    assert "<td>隐患描述</td>\n<td>除尘系统未设泄爆装置</td>" in html
    assert "<td><strong>整改期限</strong></td>" in html
    assert "<ol>" in html and "<li>立即落实临时管控措施" in html
    # The signature block keeps its lines.
    assert "督办单位（盖章）：区安全生产委员会办公室<br />\n签发人：赵丽娟<br />" in html
    for markup in ("**", "|---|", "# ", "| 项目"):
        assert markup not in html, markup
    # The Markdown as filed is still there to copy.
    assert notice["body"].startswith("# 重大事故隐患挂牌督办通知书")


def test_what_people_typed_is_printed_as_text_never_as_markup(
    client: TestClient, auth, rt: Runtime  # noqa: ANN001
) -> None:
    html = notice_of(client, auth, listed_hazard(client, auth, rt, TYPED))["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "[点此查看](http://evil.example/x)" in html
    assert "&lt;b&gt;未设&lt;/b&gt;" in html
    for tag in ("<script", "<img", "<a ", "<b>", 'href="', 'src="'):
        assert tag not in html, tag


def test_one_document_is_read_by_its_run_and_id(
    client: TestClient, auth, rt: Runtime  # noqa: ANN001
) -> None:
    run_id = listed_hazard(client, auth, rt, "除尘系统未设泄爆装置")
    notice = notice_of(client, auth, run_id)
    r = client.get(f"/api/runs/{run_id}/documents/{notice['id']}", headers=auth(MANAGER))
    assert r.status_code == 200, r.text
    assert r.json() == notice
    # Under another run it is not there, and it is read with the run's own read rights.
    other = listed_hazard(client, auth, rt, "另一处隐患")
    r = client.get(f"/api/runs/{other}/documents/{notice['id']}", headers=auth(MANAGER))
    assert r.status_code == 404 and r.json()["detail"].startswith("文书")
    r = client.get(f"/api/runs/{run_id}/documents/{notice['id']}",
                   headers=auth("biling-inspector-1"))
    assert r.status_code == 403, r.text
