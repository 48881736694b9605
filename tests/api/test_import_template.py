"""GET /api/hazards/import-template and /api/risks/import-template (flows/import_template.py) on
the shipped playbooks and the demo district: only someone who may import gets one, `format` is
xlsx or csv, the register sheet's header is the import's columns with no row under it, and the
downloaded template, filled in with openpyxl (or a CSV editor) and uploaded as it is, imports:
its 填写说明 sheet is not read."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from factories import ENGINE_PLAYBOOKS
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook

from api.auth import make_token
from api.main import create_app
from flows.hazard_import import HAZARD_COLUMNS
from flows.import_template import NOTES_SHEET
from flows.risk_import import RISK_COLUMNS
from flows.runtime import Runtime
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]
HAZARD_URL = "/api/hazards/import-template"
RISK_URL = "/api/risks/import-template"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def rt(demo: Runtime, clock: ManualClock) -> Runtime:
    clock.set(datetime(2026, 11, 20, 1, 0, tzinfo=UTC))
    return demo


def workbook(content: bytes) -> Workbook:
    return load_workbook(io.BytesIO(content))


def header_of(book: Workbook, title: str) -> list[str]:
    ws = book[title]
    assert ws.max_row == 1, "an example row would be imported as a real hazard"
    return [c.value for c in ws[1]]


def notes_text(book: Workbook) -> str:
    return "\n".join(" | ".join("" if v is None else str(v) for v in row)
                     for row in book[NOTES_SHEET].iter_rows(values_only=True))


def fill(content: bytes, title: str, rows: list[dict[str, object]]) -> bytes:
    """The template with `rows` typed in under its header (by header name), saved."""
    book = workbook(content)
    ws = book[title]
    headers = [c.value for c in ws[1]]
    for row in rows:
        ws.append([row.get(h) for h in headers])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_only_someone_who_may_import_gets_a_template(client: TestClient, auth: Auth) -> None:
    # A community's grid worker registers hazards one by one but imports nothing.
    for url in (HAZARD_URL, RISK_URL):
        for fmt in ("xlsx", "csv"):
            r = client.get(url, params={"format": fmt}, headers=auth("liuhe-grid"))
            assert r.status_code == 403, r.text
            assert r.json()["detail"].startswith("无权导入清单")
    assert client.get(HAZARD_URL).status_code == 401
    # The district's commander and a street's commander may.
    for person in ("wang-qiang", "pingshan-street-commander", "pingshan-admin"):
        assert client.get(HAZARD_URL, headers=auth(person)).status_code == 200


@pytest.mark.parametrize("fmt", ["xls", "CSV", "", "pdf"])
def test_an_unknown_format_is_a_422_naming_format(client: TestClient, auth: Auth,
                                                  fmt: str) -> None:
    for url in (HAZARD_URL, RISK_URL):
        r = client.get(url, params={"format": fmt}, headers=auth("sun-li"))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "format"
        assert "未知的模板格式" in r.json()["detail"]


def test_an_unknown_playbook_is_a_422_naming_playbook(client: TestClient, auth: Auth) -> None:
    for playbook in ("no-such-playbook", "gas-leak"):  # gas-leak keeps no register
        r = client.get(HAZARD_URL, params={"playbook": playbook}, headers=auth("sun-li"))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "playbook"


def test_the_xlsx_header_is_the_imports_columns_and_nothing_under_it(
        client: TestClient, auth: Auth) -> None:
    r = client.get(HAZARD_URL, headers=auth("sun-li"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    assert f"filename*=UTF-8''{quote('隐患导入模板.xlsx')}" in r.headers["content-disposition"]
    book = workbook(r.content)
    assert book.sheetnames == ["隐患清单", NOTES_SHEET]
    assert book.active.title == "隐患清单"
    assert header_of(book, "隐患清单") == [c.header for c in HAZARD_COLUMNS]

    r = client.get(RISK_URL, headers=auth("sun-li"))
    assert f"filename*=UTF-8''{quote('风险点导入模板.xlsx')}" in r.headers["content-disposition"]
    book = workbook(r.content)
    assert book.sheetnames == ["风险清单", NOTES_SHEET]
    assert header_of(book, "风险清单") == [c.header for c in RISK_COLUMNS]


def test_the_csv_is_the_header_row_alone_with_a_bom(client: TestClient, auth: Auth) -> None:
    for url, columns, name in ((HAZARD_URL, HAZARD_COLUMNS, "隐患导入模板.csv"),
                               (RISK_URL, RISK_COLUMNS, "风险点导入模板.csv")):
        r = client.get(url, params={"format": "csv"}, headers=auth("sun-li"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert f"filename*=UTF-8''{quote(name)}" in r.headers["content-disposition"]
        assert r.content.startswith("\ufeff".encode())
        assert r.content.decode("utf-8-sig") == ",".join(c.header for c in columns) + "\r\n"


def test_the_notes_list_the_playbooks_values_the_units_and_the_aliases(
        client: TestClient, auth: Auth) -> None:
    notes = notes_text(workbook(client.get(HAZARD_URL, headers=auth("sun-li")).content))
    assert "检查发现、群众举报、执法检查、事故调查" in notes and "一般、重大" in notes
    assert "2026年2月1日9时30分" in notes and "Asia/Shanghai" in notes
    assert "所属社区" in notes and "检查人员" in notes  # aliases read for 单位 and 发现人
    # The district's manager imports for every unit, a street's commander for the street's.
    assert "housing-bureau" in notes and "liuhe | 六和社区 | 坪山街道" in notes
    street = notes_text(workbook(client.get(
        HAZARD_URL, headers=auth("pingshan-street-commander")).content))
    assert "liuhe | 六和社区" in street and "housing-bureau" not in street
    risk = notes_text(workbook(client.get(RISK_URL, headers=auth("sun-li")).content))
    assert "重大、较大、一般、低" in risk


def test_the_filled_in_template_imports_as_it_is(client: TestClient, auth: Auth) -> None:
    got = client.get(HAZARD_URL, headers=auth("sun-li"))
    data = fill(got.content, "隐患清单", [
        {"隐患编号": "TPL-001", "单位编号": "liuhe", "隐患等级": "重大", "隐患地点": "和平路12号",
         "隐患描述": "疏散通道堆放杂物", "发现时间": "2026-11-19 09:30"},
        {"单位": "和平社区", "隐患来源": "群众举报", "隐患地点": "新村3栋",
         "发现时间": datetime(2026, 11, 18, 14, 10), "发现人": "邓思远"},
    ])
    r = client.post("/api/hazards/import", files={"file": ("隐患导入模板.xlsx", data, XLSX)},
                    headers=auth("sun-li"))
    assert r.status_code == 201, r.text
    assert r.json()["rows"] == 2 and r.json()["ignored_columns"] == []
    listed = client.get("/api/hazards", headers=auth("sun-li")).json()["data"]
    by_place = {h["location"]: h for h in listed}
    assert by_place["和平路12号"]["grade"] == "重大" and by_place["和平路12号"]["code"] == "TPL-001"
    assert by_place["新村3栋"]["unit_id"] == "heping"

    csv = client.get(HAZARD_URL, params={"format": "csv"}, headers=auth("sun-li")).content
    headers = csv.decode("utf-8-sig").strip().split(",")
    for row in ({"单位编号": "liuhe", "隐患地点": "文化广场"},
                {"单位": "东门社区", "隐患地点": "东门路1号"}):
        csv += (",".join(row.get(h, "") for h in headers) + "\r\n").encode()
    r = client.post("/api/hazards/import", files={"file": ("隐患导入模板.csv", csv, "text/csv")},
                    headers=auth("sun-li"))
    assert r.status_code == 201, r.text
    assert r.json()["rows"] == 2


def test_the_filled_in_risk_template_imports_as_it_is(client: TestClient, auth: Auth) -> None:
    got = client.get(RISK_URL, headers=auth("sun-li"))
    data = fill(got.content, "风险清单", [
        {"风险点编号": "FX-1", "单位编号": "liuhe", "风险点名称": "加油站", "风险等级": "较大"},
        {"风险点编号": "FX-2", "单位": "和平社区", "风险点名称": "液化气站", "风险等级": "重大"},
    ])
    r = client.post("/api/risks/import", files={"file": ("风险点导入模板.xlsx", data, XLSX)},
                    headers=auth("sun-li"))
    assert r.status_code == 201, r.text
    assert r.json()["inserted"] == 2


def test_a_playbooks_own_values_and_params_make_its_template(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    """A bureau's own register playbook: its 隐患来源 values are the ones listed and offered,
    and a column it has no param for (专项行动) is not in its header, which imports."""
    folder = tmp_path / "playbooks"
    shutil.copytree(ENGINE_PLAYBOOKS, folder)
    text = (ENGINE_PLAYBOOKS.parent / "imports" / "import-demo.yaml").read_text(encoding="utf-8")
    text = text.replace("id: import-demo", "id: own-hazards").replace(
        "values: [检查发现, 群众举报, 执法检查, 事故调查], default: 检查发现",
        "values: [日常巡查, 上级交办], default: 日常巡查").replace(
        "  campaign: {type: int, title: 所属专项行动}\n", "")
    assert "日常巡查" in text and "campaign:" not in text
    (folder / "own-hazards.yaml").write_text(text, encoding="utf-8")
    rt = make_rt(playbooks=folder)
    token = make_token("s1-commander", rt.settings.signing_secret())
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(rt, background=False, prefect=False)) as client:
        r = client.get(HAZARD_URL, params={"playbook": "own-hazards"}, headers=headers)
        assert r.status_code == 200, r.text
        book = workbook(r.content)
        header = header_of(book, "隐患清单")
        assert header == [c.header for c in HAZARD_COLUMNS if c.key != "campaign"]
        assert "日常巡查、上级交办" in notes_text(book)
        lists = [dv.formula1 for dv in book["隐患清单"].data_validations.dataValidation]
        assert '"日常巡查,上级交办"' in lists
        data = fill(r.content, "隐患清单", [
            {"单位编号": "c1", "隐患来源": "上级交办", "隐患地点": "一号楼"},
            {"单位编号": "c2", "隐患地点": "二号楼"},
        ])
        r = client.post("/api/hazards/import?playbook=own-hazards",
                        files={"file": ("模板.xlsx", data, XLSX)}, headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["rows"] == 2
