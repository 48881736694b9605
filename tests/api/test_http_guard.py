"""The guard in front of every route (api/body_guard.py) and the API's own shape for errors
Starlette answers: bad text in a JSON body or a query is a 422 naming the JSON path or the
parameter, Chinese first, before any database sees it; runaway bodies are refused; 401, 404 and
405 speak Chinese first too. TestClient on a real SQLite runtime (the conftest hook fails any
5xx); the same inputs against PostgreSQL are in test_api_postgres.py."""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from factories import png_bytes
from fastapi.testclient import TestClient

from api.auth import make_token
from api.body_guard import MAX_BODY_BYTES, MAX_JSON_DEPTH

Json = dict[str, Any]
Auth = Callable[[str], dict[str, str]]
JSON = {"content-type": "application/json"}
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def post_raw(client: TestClient, auth: Auth, url: str, body: bytes,
             who: str = "s1-commander", content_type: str = "application/json") -> Json:
    r = client.post(url, content=body, headers=auth(who) | {"content-type": content_type})
    assert r.status_code == 422, r.text[:300]
    return r.json()  # type: ignore[no-any-return]


def assert_invalid(body: Json, field: str, *, zh: str) -> None:
    """The API's 422 shape naming `field`, the message Chinese first."""
    assert body["error"] == "invalid_input" and body["field"] == field, body
    message = body["errors"][0]["message"]
    assert body["detail"] == f"{field}: {message}"
    assert message.startswith(zh) and "/ " in message, message


def run_count(client: TestClient, auth: Auth) -> int:
    return client.get("/api/runs", headers=auth("d1-admin")).json()["count"]  # type: ignore[no-any-return]


def start(client: TestClient, auth: Auth) -> Json:
    r = client.post("/api/runs", json={"playbook": "quick-escalation", "unit": "c1",
                                       "params": {"location": "一社区"}},
                    headers=auth("s1-commander"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# --- text no database can store ------------------------------------------------------------

def test_lone_surrogate_in_run_params_is_422_naming_the_field(client: TestClient,
                                                               auth: Auth) -> None:
    body = post_raw(client, auth, "/api/runs", b'{"playbook": "quick-escalation", "unit": "c1",'
                    b' "params": {"location": "\\ud800"}}')
    assert_invalid(body, "params.location", zh="文本含有不成对的代理字符 \\ud800")
    assert run_count(client, auth) == 0


def test_lone_surrogate_in_a_cancel_reason_is_422_naming_the_field(client: TestClient,
                                                                    auth: Auth) -> None:
    run = start(client, auth)
    body = post_raw(client, auth, f"/api/runs/{run['id']}/cancel", b'{"reason": "\\udfff x"}')
    assert_invalid(body, "reason", zh="文本含有不成对的代理字符 \\udfff")
    r = client.get(f"/api/runs/{run['id']}", headers=auth("d1-admin"))
    assert r.json()["status"] == "running"


def test_lone_surrogate_in_a_receiver_title_is_422_naming_the_field(client: TestClient,
                                                                     auth: Auth) -> None:
    body = post_raw(client, auth, "/api/receiver/duty",
                    b'{"version": "1.0", "title": "\\ud800", "message": "m", "type": "info",'
                    b' "attachments": []}')
    assert_invalid(body, "title", zh="文本含有不成对的代理字符")


def test_lone_surrogate_or_nul_in_a_key_is_422_naming_the_key(client: TestClient,
                                                               auth: Auth) -> None:
    body = post_raw(client, auth, "/api/runs", b'{"playbook": "quick-escalation", "unit": "c1",'
                    b' "params": {"loc\\udc00": "x"}}')
    assert_invalid(body, "params.loc\\udc00", zh="字段名含有不成对的代理字符")
    body = post_raw(client, auth, "/api/runs", b'{"playbook": "quick-escalation", "unit": "c1",'
                    b' "params": {"a\\u0000": "x"}}')
    assert_invalid(body, "params.a\\u0000", zh="字段名不能含有空字符")


def test_nul_in_a_string_anywhere_is_422_with_its_json_path(client: TestClient,
                                                             auth: Auth) -> None:
    body = post_raw(client, auth, "/api/runs", b'{"playbook": "quick-escalation", "unit": "c1",'
                    b' "params": {"location": "a\\u0000b"}}')
    assert_invalid(body, "params.location", zh="文本不能含有空字符 \\u0000")
    task = start(client, auth)["steps"][0]["id"]
    body = post_raw(client, auth, f"/api/tasks/{task}/complete",
                    b'{"note": "ok", "outputs": {"list": ["x", {"deep": "\\u0000"}]}}',
                    who="s1-duty")
    assert_invalid(body, "outputs.list[1].deep", zh="文本不能含有空字符")
    assert run_count(client, auth) == 1


def test_surrogate_pairs_chinese_and_escapes_pass_the_guard(client: TestClient,
                                                             auth: Auth) -> None:
    r = client.post("/api/runs", content=b'{"playbook": "quick-escalation", "unit": "c1", '
                    b'"params": {"location": "\\ud83d\\ude92 \\u4e00\\u793e\\u533a\\t3\\u53f7"}}',
                    headers=auth("s1-commander") | JSON)
    assert r.status_code == 201, r.text
    assert r.json()["params"]["location"] == "\U0001F692 一社区\t3号"


# --- shape and size of a JSON body ---------------------------------------------------------

def test_a_100k_deep_array_is_422_in_the_api_shape(client: TestClient, auth: Auth) -> None:
    depth = 100_000
    body = post_raw(client, auth, "/api/runs", b"[" * depth + b"]" * depth)
    assert_invalid(body, "body", zh=f"嵌套超过 {MAX_JSON_DEPTH} 层")


def nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_is_allowed_to_the_limit_and_refused_past_it(client: TestClient,
                                                              auth: Auth) -> None:
    # The body object and `params` are two levels; the rest is a list in `location`.
    inside = MAX_JSON_DEPTH - 2
    ok = {"playbook": "quick-escalation", "unit": "c1", "params": {"location": nested(inside)}}
    body = post_raw(client, auth, "/api/runs", json.dumps(ok).encode())
    assert body["field"] == "params.location"  # through the guard: the param check names it
    assert body["errors"][0]["message"].startswith("应为文本")
    deep = ok | {"params": {"location": nested(inside + 1)}}
    body = post_raw(client, auth, "/api/runs", json.dumps(deep).encode())
    assert_invalid(body, "params.location" + "[0]" * inside, zh=f"嵌套超过 {MAX_JSON_DEPTH} 层")


def test_a_body_over_the_cap_is_refused_whether_or_not_its_length_is_declared(
    client: TestClient, auth: Auth
) -> None:
    padding = b" " * (MAX_BODY_BYTES + 1)
    whole = b'{"playbook": "quick-escalation", "unit": "c1", "params": {"location": "x"}}'
    body = post_raw(client, auth, "/api/runs", whole + padding)
    assert_invalid(body, "body", zh="请求体超过 1 MB")

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked, read up to the cap
        yield whole
        for _ in range(64):
            yield b" " * (64 * 1024)

    r = client.post("/api/runs", content=chunks(), headers=auth("s1-commander") | JSON)
    assert r.status_code == 422 and r.json()["field"] == "body", r.text[:300]
    assert run_count(client, auth) == 0
    # The cap is on bytes, not on the JSON: a body just under it goes through.
    under = whole[:-2] + b', "pad": "' + b"x" * (MAX_BODY_BYTES - len(whole) - 20) + b'"}}'
    assert len(under) <= MAX_BODY_BYTES
    body = post_raw(client, auth, "/api/runs", under)
    assert body["field"] == "params.pad"  # reached the route: an unknown param


def test_not_strict_json_is_422_naming_the_body(client: TestClient, auth: Auth) -> None:
    for raw, zh in [(b'{"x": NaN}', "不是合法的 JSON：NaN"),
                    (b'{"x": -Infinity}', "不是合法的 JSON"),
                    (b'{"x": 1e999}', "数字超出范围"), (b'{"x": ' + b"9" * 5000 + b"}", "整数超过"),
                    (b'{"x": 1,}', "不是合法的 JSON（第 1 行第 9 列）"),
                    (b"\xff\xfe\xfd", "须为 UTF-8 编码"), (b'{"x": "\xc3"}', "须为 UTF-8 编码")]:
        body = post_raw(client, auth, "/api/runs", raw)
        assert body["field"] == "body", (raw[:20], body)
        assert body["errors"][0]["message"].startswith(zh), (raw[:20], body)
        assert CHINESE.search(body["detail"].split(" / ")[0]), body


def test_json_that_is_no_object_is_422_in_chinese_first(client: TestClient, auth: Auth) -> None:
    run = start(client, auth)
    for url in ("/api/runs", f"/api/runs/{run['id']}/cancel"):
        for raw, content_type in [(b"[]", "application/json"), (b"1", "application/json"),
                                  (b'{"reason": "x"}', "text/plain")]:
            body = post_raw(client, auth, url, raw, content_type=content_type)
            assert_invalid(body, "body", zh="应为 JSON 对象")


def test_uploads_are_multipart_and_not_held_to_the_json_cap(client: TestClient,
                                                             auth: Auth) -> None:
    # A whole PNG made large by a private chunk of noise before its end.
    noise = os.urandom(2 * MAX_BODY_BYTES)
    chunk = (struct.pack(">I", len(noise)) + b"ruSt" + noise
             + struct.pack(">I", zlib.crc32(b"ruSt" + noise)))
    photo = png_bytes()[:-12] + chunk + png_bytes()[-12:]
    r = client.post("/api/evidence", files={"file": ("site.png", photo, "image/png")},
                    headers=auth("c1-grid"))
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(photo)


# --- a key twice in one object ------------------------------------------------------------

def submitted_inspection(client: TestClient, auth: Auth) -> tuple[int, int]:
    """(run id, task id) of the grid worker's inspection, done and waiting for an inspector."""
    run = start(client, auth)
    r = client.post(f"/api/tasks/{run['steps'][0]['id']}/complete", json={"note": "已登记"},
                    headers=auth("s1-duty"))
    assert r.status_code == 200, r.text
    steps = client.get(f"/api/runs/{run['id']}", headers=auth("d1-admin")).json()["steps"]
    inspect = next(s["id"] for s in steps if s["step"] == "inspect")
    photo = client.post("/api/evidence", files={"file": ("site.png", png_bytes(), "image/png")},
                        headers=auth("c1-grid")).json()["id"]
    r = client.post(f"/api/tasks/{inspect}/complete",
                    json={"note": "阀门已关闭", "evidence": [photo]}, headers=auth("c1-grid"))
    assert r.status_code == 200 and r.json()["status"] == "submitted", r.text
    return run["id"], inspect


def test_a_verify_naming_approve_twice_is_422_and_approves_nothing(client: TestClient,
                                                                    auth: Auth) -> None:
    # json.loads keeps the last value: this approved the work with the note 不合格.
    run_id, inspect = submitted_inspection(client, auth)
    body = post_raw(client, auth, f"/api/tasks/{inspect}/verify",
                    '{"approve": false, "note": "不合格", "approve": true}'.encode(),
                    who="s1-insp1")
    assert_invalid(body, "approve", zh="重复的键 approve")
    assert "duplicate key 'approve'" in body["detail"]
    got = client.get(f"/api/tasks/{inspect}", headers=auth("d1-admin")).json()
    assert got["status"] == "submitted" and got["verified_by"] is None, got
    timeline = client.get(f"/api/runs/{run_id}", headers=auth("d1-admin")).json()["timeline"]
    assert "verified" not in [e["action"] for e in timeline]


def test_a_key_twice_in_nested_run_params_is_422_naming_its_path(client: TestClient,
                                                                  auth: Auth) -> None:
    body = post_raw(client, auth, "/api/runs", '{"playbook": "quick-escalation", "unit": "c1", '
                    '"params": {"location": "一社区", "location": "二社区"}}'.encode())
    assert_invalid(body, "params.location", zh="重复的键 location")
    assert run_count(client, auth) == 0


def test_one_key_in_sibling_objects_is_no_duplicate_but_twice_in_one_is(client: TestClient,
                                                                         auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]["id"]
    url = f"/api/tasks/{receive}/complete"
    body = post_raw(client, auth, url, b'{"note": "ok", "outputs": {"list": [{"a": 1}, '
                    b'{"a": 2, "b": 3, "a": 4}]}}', who="s1-duty")
    assert_invalid(body, "outputs.list[1].a", zh="重复的键 a")
    # The same key in two different objects, in a list or side by side, is ordinary JSON.
    outputs = {"list": [{"a": 1}, {"a": 2}], "x": {"a": 1}, "y": {"a": 2}}
    r = client.post(url, content=json.dumps({"note": "ok", "outputs": outputs}).encode(),
                    headers=auth("s1-duty") | JSON)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "done" and r.json()["outputs"] == outputs


# --- query and path ------------------------------------------------------------------------

def test_nul_in_a_query_parameter_is_422_naming_it(client: TestClient, auth: Auth) -> None:
    me = auth("d1-admin")
    for url, field in [("/api/runs?playbook=a%00b", "playbook"), ("/api/runs?unit=%00", "unit"),
                       ("/api/tasks?status=ready&unit=c1%00", "unit"),
                       ("/api/runs?x%00y=1", "x\\u0000y")]:
        r = client.get(url, headers=me)
        assert r.status_code == 422, (url, r.text)
        assert_invalid(r.json(), field, zh="不能含有空字符")


def test_nul_in_the_path_is_422(client: TestClient, auth: Auth) -> None:
    for url in ("/api/evidence/a%00b", "/api/receiver/du%00ty", "/api/playbooks/x%00"):
        r = client.get(url, headers=auth("d1-admin"))
        assert r.status_code == 422, (url, r.text)
        assert_invalid(r.json(), "path", zh="路径不能含有空字符")


# --- errors Starlette and the token check answer -------------------------------------------

@pytest.mark.parametrize("header", [
    None, "Bearer junk", "Basic czEtY29tbWFuZGVyOng=",
    f"Bearer {make_token('s1-commander', 'not-the-secret')}",
    f"Bearer {make_token('nobody-here', 'test-secret')}",
])
def test_every_401_is_chinese_first(client: TestClient, header: str | None) -> None:
    r = client.get("/api/runs", headers={"Authorization": header} if header else {})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    body = r.json()
    assert body["error"] == "unauthorized"
    zh, en = re.split(r" ?/ ", body["detail"], maxsplit=1)
    assert CHINESE.search(zh) and en.isascii(), body


def test_unknown_route_and_method_answer_in_the_api_shape(client: TestClient,
                                                           auth: Auth) -> None:
    r = client.get("/api/no-such-thing", headers=auth("d1-admin"))
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "detail": "接口不存在 / Not Found"}
    r = client.delete("/api/runs", headers=auth("d1-admin"))
    assert r.status_code == 405
    assert r.json() == {"error": "method_not_allowed",
                        "detail": "该接口不支持此请求方法 / Method Not Allowed"}
    assert r.headers["allow"]  # which methods the path takes, as Starlette said
