"""Query parameters of the API, the registers' ones first, on a real SQLite runtime: a parameter
given twice is a 422 naming it on every endpoint (never whichever value Starlette kept); the
registers' 422s are Chinese first; a sort takes one leading '-' at most; a cancelled hazard
has no days left; the rectification export's 是否逾期/逾期天数 agree with the API's `overdue`;
a hazard whose unit left the org chart opens for those whose list shows it."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from typing import Annotated, Any

import pytest
from factories import seed_hazards
from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient

from api.deps import single_query_values
from api.errors import install
from flows.runtime import Runtime

Auth = Any
Json = dict[str, Any]
ADMIN = "d1-admin"
MANAGER = "d1-manager"
CJK = re.compile(r"[\u4e00-\u9fff]")


def seed(rt: Runtime, hazards: list[Json], first_id: int = 1000) -> None:
    seed_hazards(rt, hazards, playbook_id="register-demo", first_id=first_id)

def read_csv(r: Any) -> list[list[str]]:
    assert r.status_code == 200, r.text
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


def refused(r: Any, field: str) -> str:
    """The 422's message for `field`, checked to be Chinese first, then English."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field, body
    message: str = body["errors"][0]["message"]
    zh, en = (re.split(r" ?/ ", message, maxsplit=1) + [""])[:2]
    assert CJK.match(zh) and en and not CJK.search(en), message
    return message


# -- a parameter given twice -------------------------------------------------------------------

def query_params(client: TestClient) -> list[tuple[str, str, str, bool]]:
    """(method, path with its path params filled, query param, declared as a list)."""
    out = []
    for path, item in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for method, op in item.items():
            url = re.sub(r"\{[^}]+\}", "1", path)
            for p in op.get("parameters", []):
                if p["in"] == "query":
                    schema = p.get("schema", {})
                    is_list = schema.get("type") == "array" or any(
                        s.get("type") == "array" for s in schema.get("anyOf", []))
                    out.append((method.upper(), url, p["name"], is_list))
    return out


def test_no_endpoint_declares_a_list_valued_query_parameter(client: TestClient) -> None:
    """So none is exempt from the rule below (a list-valued one would be: see the mini app)."""
    params = query_params(client)
    assert len(params) > 60
    assert [p for p in params if p[3]] == []


def test_every_query_parameter_given_twice_is_422_naming_it(client: TestClient,
                                                             auth: Auth) -> None:
    for method, url, name, _ in query_params(client):
        r = client.request(method, f"{url}?{name}=1&{name}=2", headers=auth(ADMIN))
        message = refused(r, name)
        assert message == (f"参数 {name} 重复（出现 2 次），只能给一个值 / query parameter "
                           f"{name} given 2 times; give it once"), (method, url, message)


@pytest.mark.parametrize("query,field", [
    ("status=open&status=closed", "status"), ("grade=一般&grade=重大", "grade"),
    ("limit=1&limit=2", "limit"), ("limit=2&offset=0&limit=2", "limit"),
    ("q=a&q=a&q=b", "q"),
])
def test_the_hazard_list_never_picks_one_of_two_values(client: TestClient, auth: Auth,
                                                       rt: Runtime, query: str,
                                                       field: str) -> None:
    seed(rt, [{"unit": "c1", "grade": "重大"}, {"unit": "c1", "status": "已销号",
                                               "closed_at": rt.clock.now()}])
    r = client.get(f"/api/hazards?{query}", headers=auth(MANAGER))
    message = refused(r, field)
    assert message.startswith(f"参数 {field} 重复")
    assert "出现 3 次" in message if query.startswith("q=") else "出现 2 次" in message


def test_other_endpoints_and_undeclared_parameters(client: TestClient, auth: Auth) -> None:
    for url, field in [("/api/ranking?month=2026-01&month=2026-02", "month"),
                       ("/api/ranking/export?format=csv&format=xlsx", "format"),
                       ("/api/risks?level=低&level=重大", "level"),
                       ("/api/runs?status=running&status=done", "status"),
                       ("/api/tasks?mine=true&mine=false", "mine"),
                       ("/api/hazards/1?x=1&x=1", "x"),  # undeclared: still not twice
                       ("/healthz?x=1&x=2", "x")]:
        refused(client.get(url, headers=auth(MANAGER)), field)
    r = client.post("/api/playbooks/validate?filename=a.yaml&filename=b.yaml",
                    content=b"id: x\n", headers=auth(ADMIN))
    refused(r, "filename")  # read by the route itself, not declared
    r = client.post("/api/risks/import?repeat=true&repeat=false", headers=auth(ADMIN),
                    files={"file": ("a.csv", b"x", "text/csv")})
    refused(r, "repeat")
    # Once each, in any order, is fine; so is a blank value given once.
    assert client.get("/api/hazards?limit=2&offset=0&status=", headers=auth(MANAGER)
                      ).status_code == 200


def tag_list(tag: Annotated[list[str] | None, Query()] = None) -> list[str]:
    return tag or []


def tagged(tags: Annotated[list[str], Depends(tag_list)], one: str = "") -> Json:
    return {"tags": tags, "one": one}


def test_a_list_valued_parameter_may_repeat() -> None:
    """Declared as a list (here in a dependency of the route): it may repeat; nothing else."""
    app = FastAPI(dependencies=[Depends(single_query_values)])
    install(app)
    app.get("/t")(tagged)
    with TestClient(app) as c:
        assert c.get("/t?tag=a&tag=b&one=x").json() == {"tags": ["a", "b"], "one": "x"}
        r = c.get("/t?tag=a&one=x&one=y")
        assert r.status_code == 422 and r.json()["field"] == "one"


# -- the registers' 422s, Chinese first --------------------------------------------------------

MANAGER_PATHS = ["/api/registers/rectification", "/api/risks", "/api/ranking",
                 "/api/hazards/export", "/api/registers/rectification/export",
                 "/api/risks/export", "/api/ranking/export"]
EXPORTS = ["/api/hazards/export", "/api/registers/rectification/export", "/api/risks/export",
           "/api/ranking/export"]
HAZARD_PATHS = ["/api/hazards", "/api/hazards/export", "/api/registers/rectification",
                "/api/registers/rectification/export"]


@pytest.mark.parametrize("path", MANAGER_PATHS)
def test_an_unknown_unit_on_a_manager_endpoint_is_chinese_first(client: TestClient,
                                                                 auth: Auth, path: str) -> None:
    message = refused(client.get(path, params={"unit": "nope"}, headers=auth(MANAGER)), "unit")
    assert message == "没有单位 nope / unknown unit 'nope'"


@pytest.mark.parametrize("path", ["/api/ranking", "/api/ranking/export"])
def test_ranking_levels_are_refused_in_chinese(client: TestClient, auth: Auth,
                                               path: str) -> None:
    message = refused(client.get(path, params={"level": "district"}, headers=auth(MANAGER)),
                      "level")
    assert message.startswith("未知的排名层级“district”（可选：street（街道/镇）、"
                              "community（社区/村）")
    message = refused(client.get(path, params={"unit": "c1", "level": "street"},
                                 headers=auth(ADMIN)), "level")
    assert message.startswith("一社区（c1）下没有街道/镇级单位")
    assert "no street-level units within 'c1'" in message


@pytest.mark.parametrize("path", [*HAZARD_PATHS, "/api/risks", "/api/risks/export"])
@pytest.mark.parametrize("sort", ["foo", "--found_at", "---code", "--level", "-", "--"])
def test_a_bad_sort_is_chinese_first_and_takes_one_dash_at_most(
    client: TestClient, auth: Auth, path: str, sort: str
) -> None:
    message = refused(client.get(path, params={"sort": sort}, headers=auth(MANAGER)), "sort")
    assert message.startswith(f"未知的排序“{sort}”（可选：")


@pytest.mark.parametrize("path,sort", [("/api/hazards", "-code"), ("/api/hazards", "code"),
                                       ("/api/registers/rectification", "-due_at"),
                                       ("/api/risks", "-level"), ("/api/risks", "name")])
def test_one_dash_still_sorts_descending(client: TestClient, auth: Auth, rt: Runtime,
                                         path: str, sort: str) -> None:
    seed(rt, [{"unit": "c1"}, {"unit": "c2"}])
    r = client.get(path, params={"sort": sort}, headers=auth(MANAGER))
    assert r.status_code == 200, r.text
    if path == "/api/hazards":
        got = [h["code"] for h in r.json()["data"]]
        assert got == sorted(got, reverse=sort.startswith("-"))


@pytest.mark.parametrize("path", EXPORTS)
@pytest.mark.parametrize("fmt", ["pdf", "CSV", "Xlsx", ""])
def test_an_unknown_format_is_chinese_first(client: TestClient, auth: Auth, path: str,
                                            fmt: str) -> None:
    message = refused(client.get(path, params={"format": fmt}, headers=auth(MANAGER)),
                      "format")
    assert message == (f"未知的导出格式“{fmt}”（可选：csv、xlsx）/ unknown format '{fmt}' "
                       "(known: csv, xlsx)")


# -- days left and overdue ---------------------------------------------------------------------

def test_a_cancelled_hazard_has_no_days_left(client: TestClient, auth: Auth,
                                             rt: Runtime) -> None:
    now = rt.clock.now()
    seed(rt, [{"unit": "c1", "due_at": now - timedelta(days=5), "status": "已撤销"},
              {"unit": "c1", "due_at": now + timedelta(days=5), "status": "已撤销"},
              {"unit": "c1", "due_at": now - timedelta(days=5)}])
    listed = {h["code"]: h for h in client.get("/api/hazards", headers=auth(MANAGER)
                                               ).json()["data"]}
    for code in ("YH001000", "YH001001"):
        assert (listed[code]["days_left"], listed[code]["overdue"]) == (None, False)
        one = client.get(f"/api/hazards/{int(code[2:])}", headers=auth(MANAGER)).json()
        assert (one["days_left"], one["overdue"]) == (None, False)
    assert (listed["YH001002"]["days_left"], listed["YH001002"]["overdue"]) == (-5, True)


def test_the_rectification_export_agrees_with_the_apis_overdue(client: TestClient, auth: Auth,
                                                               rt: Runtime) -> None:
    now = rt.clock.now()  # 2026-03-02 09:00 in Shanghai
    seed(rt, [{"unit": "c1", "due_at": now - timedelta(hours=1)},  # 08:00 today: just overdue
              {"unit": "c1", "due_at": now + timedelta(hours=1)},  # 10:00 today: due today
              {"unit": "c1", "due_at": now - timedelta(days=2)},
              {"unit": "c1", "due_at": now + timedelta(days=3)},
              {"unit": "c1"}])  # no deadline
    api = {h["code"]: h for h in client.get("/api/registers/rectification",
                                            headers=auth(MANAGER)).json()["data"]}
    rows = read_csv(client.get("/api/registers/rectification/export",
                               params={"format": "csv"}, headers=auth(MANAGER)))
    header = rows[0]
    assert header[12:16] == ["剩余天数", "逾期天数", "是否逾期", "状态"]
    got = {r[0]: r[12:15] for r in rows[1:]}
    assert got == {"YH001000": ["0", "1", "是"], "YH001001": ["0", "0", "否"],
                   "YH001002": ["0", "2", "是"], "YH001003": ["3", "0", "否"],
                   "YH001004": ["", "0", "否"]}
    for code, (_, _, overdue) in got.items():
        assert (overdue == "是") is api[code]["overdue"], code
    assert (api["YH001000"]["days_left"], api["YH001000"]["overdue"]) == (0, True)


# -- a unit gone from the org chart ------------------------------------------------------------

def test_a_hazard_of_a_removed_unit_opens_for_whoever_lists_it(client: TestClient, auth: Auth,
                                                               rt: Runtime) -> None:
    seed(rt, [{"unit": "ghost-community", "street": None}])
    for who in (MANAGER, ADMIN, "d1-commander"):
        listed = client.get("/api/hazards", headers=auth(who)).json()
        assert [h["code"] for h in listed["data"]] == ["YH001000"], who
        r = client.get("/api/hazards/1000", headers=auth(who))
        assert r.status_code == 200, (who, r.text)
        assert (r.json()["unit_id"], r.json()["unit_name"]) == ("ghost-community",
                                                                 "ghost-community")
    rows = read_csv(client.get("/api/hazards/export", params={"format": "csv"},
                               headers=auth(MANAGER)))
    assert [r[0] for r in rows[1:]] == ["YH001000"]
    for who in ("s1-commander", "c1-grid", "s2-insp"):
        assert client.get("/api/hazards", headers=auth(who)).json()["count"] == 0
        r = client.get("/api/hazards/1000", headers=auth(who))
        assert r.status_code == 403, (who, r.text)
        assert r.json()["detail"].startswith(
            "无权查看该隐患（所属单位 ghost-community 已不在组织架构中")


def test_when_sort_has_no_value_the_default_order_holds(client: TestClient, auth: Auth,
                                                        rt: Runtime) -> None:
    now = rt.clock.now()
    seed(rt, [{"unit": "c1", "found_at": now - timedelta(days=1)}, {"unit": "c1"}])
    r = client.get("/api/hazards?sort=", headers=auth(MANAGER))
    assert [h["code"] for h in r.json()["data"]] == ["YH001001", "YH001000"]
    assert isinstance(datetime.fromisoformat(r.json()["data"][0]["found_at"]), datetime)
