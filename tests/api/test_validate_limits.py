"""POST /api/playbooks/validate with hostile or huge bodies: a 422 naming file:line:col (or the
size limit), never a 500, a crash or a stalled server.

The full-size inputs (a 10^9-value alias bomb, nesting 100,000 deep) are proven harmless in a
capped child process in tests/models/test_yamlpos_limits.py; here the same shapes at a scale
that would not hurt the test run even if a limit broke, asserting the exact position the
limit reports.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from api.body_guard import MAX_BODY_BYTES
from models.yamlpos import MAX_ALIAS_NODES, MAX_DEPTH
from tests.api.conftest import Auth

URL = "/api/playbooks/validate"


def post(client: TestClient, auth: Auth, body: bytes) -> httpx.Response:
    return client.post(URL, params={"filename": "drill.yaml"}, content=body,
                       headers=auth("c1-grid") | {"content-type": "application/yaml"})


def only_error(r: httpx.Response) -> str:
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert len(errors) == 1, errors
    return str(errors[0]["text"])


def chain(steps: int) -> str:
    """A valid playbook of `steps` steps, each needing the one before."""
    lines = ["id: chain", "version: 1", "title: 长链", "steps:"]
    lines += [f"  - {{id: s{i}, title: 第{i}步, role: duty_officer"
              + (f", needs: [s{i - 1}]}}" if i else "}") for i in range(steps)]
    return "\n".join(lines) + "\n"


def test_validate_alias_bomb_is_422_at_the_alias(client: TestClient, auth: Auth) -> None:
    # 6 levels of 9 aliases: ~600,000 values once expanded, from 300 bytes.
    lines = ["id: drill", "a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcde", "bcdef", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    text = only_error(post(client, auth, "\n".join(lines).encode()))
    assert text == (f"drill.yaml:7:8: 别名 *e：别名展开的值总计将超过 {MAX_ALIAS_NODES:,} 个 / "
                    f"invalid YAML: alias *e: aliases would repeat more than "
                    f"{MAX_ALIAS_NODES:,} values in all")


def test_validate_deep_nesting_is_422_at_the_first_level_too_many(
    client: TestClient, auth: Auth
) -> None:
    body = ("id: " + "[" * 5000 + "]" * 5000).encode()
    assert only_error(post(client, auth, body)) == (
        f"drill.yaml:1:{4 + MAX_DEPTH}: 嵌套过深（超过 {MAX_DEPTH} 层） / invalid YAML: nested "
        f"too deeply (more than {MAX_DEPTH} levels)")


def test_validate_nul_character_is_422_at_its_position(client: TestClient, auth: Auth) -> None:
    for body, where in ((b"id: x\x00", "1:6"), ("title: 演练\nid: x\x00\n".encode(), "2:6")):
        assert only_error(post(client, auth, body)) == (
            f"drill.yaml:{where}: 含有不允许的字符 / invalid YAML: control characters are not "
            "allowed")


def test_validate_body_over_the_limit_is_422_naming_it(client: TestClient, auth: Auth) -> None:
    # The body guard in front of every route (api/body_guard.py) holds the limit.
    body = b"# " + b"x" * MAX_BODY_BYTES + b"\nid: drill\n"
    for content in (body, iter([body[:1000], body[1000:]])):  # with and without a length
        r = client.post(URL, content=content, headers=auth("c1-grid"))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "body"
        assert "1 MiB" in r.json()["errors"][0]["message"]


def test_validate_runs_off_the_event_loop_so_other_requests_are_answered(
    client: TestClient, auth: Auth
) -> None:
    """A 5,000-step playbook takes about a second to validate; /healthz, asked after it was
    sent, is answered while it is still validating (it used to wait for it)."""
    body = chain(5000).encode()
    assert len(body) < MAX_BODY_BYTES

    async def race() -> tuple[bool, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            validating = asyncio.create_task(ac.post(URL, content=body, headers=auth("c1-grid")))
            health = await ac.get("/healthz")
            overtaken = not validating.done()
            return overtaken, health, await validating

    assert client.portal is not None
    overtaken, health, validated = client.portal.call(race)
    assert health.status_code == 200
    assert validated.status_code == 200, validated.text
    assert validated.json() == {"valid": True, "id": "chain", "version": 1, "steps": 5000}
    assert overtaken


def test_validations_run_one_at_a_time_and_a_second_waits_then_is_told(
        client: TestClient, auth: Auth, monkeypatch: pytest.MonkeyPatch) -> None:
    # A dozen large validations at once once held the interpreter so that a grid worker's
    # inbox took 11 s to answer: one runs at a time, another waits, then is told to retry.
    from api.routes import playbooks

    monkeypatch.setattr(playbooks, "WAIT_S", 0.2)
    assert playbooks._VALIDATING.acquire(timeout=5)  # another author's validation is running
    try:
        busy = post(client, auth, chain(3).encode())
        assert busy.status_code == 429, busy.text
        assert busy.headers["retry-after"] == "10"
        assert busy.json()["detail"].startswith("另一个流程正在校验")
    finally:
        playbooks._VALIDATING.release()
    assert post(client, auth, chain(3).encode()).status_code == 200
