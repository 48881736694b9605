"""POST /api/hazards/import and /api/risks/import through FastAPI's TestClient on a real SQLite
runtime: a 10,000-row file makes 10,000 runs, a file with a bad row writes nothing and names
the row and column (422), rights (403 naming the row), repeats (409), XLSX uploads, and never
a 500 (every response passes through a hook that fails the test on a 5xx)."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from factories import ENGINE_PLAYBOOKS
from fastapi.testclient import TestClient
from sqlmodel import select

from flows.runtime import Runtime
from models.db import read_session
from models.hazard import ImportBatch

Auth = Callable[[str], dict[str, str]]
HEADER = "隐患编号,单位编号,隐患来源,隐患等级,隐患类别,隐患地点,隐患描述,涉及企业,发现时间,发现人"
URL = "/api/hazards/import?playbook=import-demo"


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    """The engine's test playbooks plus tests/fixtures/imports/import-demo.yaml."""
    folder = tmp_path / "playbooks"
    shutil.copytree(ENGINE_PLAYBOOKS, folder)
    shutil.copy(ENGINE_PLAYBOOKS.parent / "imports" / "import-demo.yaml", folder)
    return make_rt(playbooks=folder)


def csv_file(lines: list[str], header: str = HEADER, name: str = "隐患清单.csv",
             encoding: str = "utf-8-sig") -> dict[str, Any]:
    data = ("\r\n".join([header, *lines]) + "\r\n").encode(encoding)
    return {"file": (name, data, "text/csv")}


def count(rt: Runtime, table: str) -> int:
    with rt.db.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar() or 0)


def run_of(rt: Runtime, code: str) -> int:
    with rt.db.connect() as conn:
        return int(conn.exec_driver_sql("SELECT run_id FROM hazard WHERE code = ?",
                                        (code,)).scalar_one())


def rows(n: int, *, units: tuple[str, ...] = ("c1", "c2")) -> list[str]:
    return [f"HZ{i:06d},{units[i % len(units)]},检查发现,{'重大' if i % 33 == 0 else '一般'},"
            f"消防安全,{units[i % len(units)]}片区{i}号,消防通道堵塞,某公司{i % 50},"
            f"2026-02-{1 + i % 28:02d} 09:30,检查员{i % 7}" for i in range(n)]


def test_a_10000_row_file_makes_10000_runs(client: TestClient, auth: Auth, rt: Runtime) -> None:
    r = client.post(URL, files=csv_file(rows(10_000)), headers=auth("s1-commander"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rows"] == 10_000 and body["playbook"] == "import-demo"
    # The answer names the runs of the file's first ten rows, in the file's order.
    assert body["runs"] == [run_of(rt, f"HZ{i:06d}") for i in range(10)]
    assert body["ignored_columns"] == []
    assert count(rt, "run") == 10_000 and count(rt, "hazard") == 10_000
    # Every run is a real run: its steps are in the inbox of the unit's grid worker.
    run = client.get(f"/api/runs/{run_of(rt, 'HZ000033')}", headers=auth("s1-commander")).json()
    assert run["status"] == "running" and run["title"] == "隐患排查整改·c2片区33号"
    assert {s["step"]: s["status"] for s in run["steps"]}["supervise"] == "ready"
    tasks = client.get("/api/tasks?mine=true&limit=5", headers=auth("c1-grid"))
    assert tasks.status_code == 200, tasks.text
    assert tasks.json()["count"] == 5_000 and len(tasks.json()["data"]) == 5
    listed = client.get("/api/runs?playbook=import-demo", headers=auth("s1-commander"))
    assert listed.json()["count"] == 10_000


def test_an_imported_runs_timeline_names_its_import(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    # Row 0 is 重大 (started one by one), row 1 一般 (the bulk path): both write `imported`,
    # which the run page once showed as the identifier.
    r = client.post(URL, files=csv_file(rows(2)), headers=auth("s1-commander"))
    assert r.status_code == 201, r.text
    for run_id in r.json()["runs"]:
        timeline = client.get(f"/api/runs/{run_id}", headers=auth("s1-commander")).json()[
            "timeline"]
        imported = [e for e in timeline if e["action"] == "imported"]
        assert [e["action_name"] for e in imported] == ["导入登记"]
        assert all(e["action_name"] != e["action"] for e in timeline)


def test_a_bad_row_writes_nothing_and_names_row_and_column(
        client: TestClient, auth: Auth, rt: Runtime) -> None:
    lines = rows(40)
    lines[15] = lines[15].replace(",一般,", ",特大,")  # spreadsheet row 17
    lines[30] = lines[30].replace(",c1,", ",no-such-unit,")  # row 32
    r = client.post(URL, files=csv_file(lines), headers=auth("s1-commander"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error_count"] == 2 and body["file"] == "隐患清单.csv"
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(17, "隐患等级"), (32, "单位编号")]
    assert body["errors"][0]["message"].startswith(
        "第 17 行 隐患等级: '特大' 不是有效值（可选：一般、重大）")
    assert count(rt, "run") == 0 and count(rt, "import_batch") == 0
    assert count(rt, "audit_event") == 0


def test_the_first_100_errors_and_the_count(client: TestClient, auth: Auth, rt: Runtime) -> None:
    lines = [line.replace(",一般,", ",较大,").replace(",重大,", ",较大,") for line in rows(250)]
    r = client.post(URL, files=csv_file(lines), headers=auth("d1-admin"))
    assert r.status_code == 422
    body = r.json()
    assert body["error_count"] == 250 and len(body["errors"]) == 100
    assert body["errors"][-1]["row"] == 101


def test_rights_403_names_the_row(client: TestClient, auth: Auth, rt: Runtime) -> None:
    r = client.post(URL, files=csv_file(rows(5, units=("c1", "c2", "s2"))),
                    headers=auth("s1-commander"))
    assert r.status_code == 403, r.text
    assert "第 4 行" in r.json()["detail"] and "s2" in r.json()["detail"]
    assert client.post(URL, files=csv_file(rows(2)), headers=auth("c1-grid")).status_code == 403
    assert client.post(URL, files=csv_file(rows(2))).status_code == 401
    assert count(rt, "run") == 0


def test_files_and_playbooks_that_cannot_be_imported(client: TestClient, auth: Auth) -> None:
    who = auth("d1-admin")
    r = client.post(URL, files={"file": ("empty.csv", b"", "text/csv")}, headers=who)
    assert r.status_code == 422 and "单位编号" in r.json()["errors"][0]["message"]
    old_excel = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64
    r = client.post(URL, files={"file": ("old.xls", old_excel, "application/vnd.ms-excel")},
                    headers=who)
    assert r.status_code == 422 and r.json()["field"] == "file"
    r = client.post(URL, files={"file": ("x.xlsx", b"PK\x03\x04garbage", "application/zip")},
                    headers=who)
    assert r.status_code == 422 and "xlsx" in r.json()["detail"]
    # The default playbook is the shipped hazard-3030; this runtime has only test playbooks.
    r = client.post("/api/hazards/import", files=csv_file(rows(1)), headers=who)
    assert r.status_code == 422 and r.json()["field"] == "playbook"
    r = client.post(URL, headers=who)
    assert r.status_code == 422


def test_the_same_file_twice_is_409_unless_repeat(client: TestClient, auth: Auth,
                                                  rt: Runtime) -> None:
    lines = [line.split(",", 1)[1] for line in rows(3)]  # no codes, so a repeat is possible
    files = csv_file(lines, header=HEADER.split(",", 1)[1])
    who = auth("d1-admin")
    first = client.post(URL, files=files, headers=who)
    assert first.status_code == 201, first.text
    again = client.post(URL, files=files, headers=who)
    assert again.status_code == 409 and f"#{first.json()['import_id']}" in again.json()["detail"]
    # Who and when as people read them: the importer's name and Beijing time, not an id and UTC.
    assert "由 系统管理员 导入" in again.json()["detail"]
    assert "2026-03-02 09:00" in again.json()["detail"] and "UTC" not in again.json()["detail"]
    assert client.post(URL + "&repeat=true", files=files, headers=who).status_code == 201
    assert count(rt, "run") == 6


def test_xlsx_upload(client: TestClient, auth: Auth, rt: Runtime) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["单位编号", "隐患地点", "隐患等级", "发现时间"])
    sheet.append(["c1", "一社区加油站", "重大", datetime(2026, 2, 1, 9, 0)])
    sheet.append(["c2", "二社区", "一般", datetime(2026, 2, 2)])
    out = io.BytesIO()
    book.save(out)
    r = client.post(URL, files={"file": ("list.xlsx", out.getvalue(), "application/octet-stream")},
                    headers=auth("d1-admin"))
    assert r.status_code == 201, r.text
    assert r.json()["rows"] == 2 and count(rt, "hazard") == 2


def test_risk_import(client: TestClient, auth: Auth, rt: Runtime) -> None:
    header = "风险点编号,单位编号,风险点名称,风险类别,位置,风险等级,管控措施,责任人"
    who = auth("s1-commander")
    r = client.post("/api/risks/import", headers=who, files=csv_file(
        ["FX-1,c1,加油站,危化品,一社区,重大,双人巡查,张三", "FX-2,c2,菜市场,消防,二社区,较大,,"],
        header=header, name="风险清单.csv"))
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in ("rows", "inserted", "updated")} == \
        {"rows": 2, "inserted": 2, "updated": 0}
    r = client.post("/api/risks/import", headers=who, files=csv_file(
        ["FX-2,c2,菜市场,消防,二社区,一般,每日巡查,李四"], header=header, name="b.csv"))
    assert r.status_code == 201 and r.json()["updated"] == 1
    r = client.post("/api/risks/import", headers=who, files=csv_file(
        ["FX-3,c1,仓库,,,极高,,"], header=header, name="c.csv"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"].startswith("第 2 行 风险等级: '极高' 不是有效值")
    r = client.post("/api/risks/import", headers=auth("s2-commander"), files=csv_file(
        ["FX-4,c1,仓库,,,低,,"], header=header, name="d.csv"))
    assert r.status_code == 403 and "第 2 行" in r.json()["detail"]
    assert count(rt, "risk_point") == 2


# -- files that went wrong (a tester's list): 422 naming row and column, nothing written -----

def refused(client: TestClient, auth: Auth, rt: Runtime, files: dict[str, Any]
            ) -> list[dict[str, Any]]:
    r = client.post(URL, files=files, headers=auth("d1-admin"))
    assert r.status_code == 422, r.text
    assert count(rt, "run") == 0 and count(rt, "import_batch") == 0
    errors: list[dict[str, Any]] = r.json()["errors"]
    return errors


def test_a_quote_left_open_is_422_naming_its_row(client: TestClient, auth: Auth,
                                                 rt: Runtime) -> None:
    lines = rows(3)
    lines[0] = lines[0].replace(",c1片区0号,", ',"六和社区A栋,')  # spreadsheet row 2
    [error] = refused(client, auth, rt, csv_file(lines))
    assert (error["row"], error["column"]) == (2, "隐患地点")
    assert error["message"].startswith("第 2 行 隐患地点: 引号未闭合")


def test_a_huge_cell_is_422_in_both_languages(client: TestClient, auth: Auth,
                                              rt: Runtime) -> None:
    lines = rows(3)
    lines[1] = lines[1].replace(",消防通道堵塞,", "," + "堵" * 200_000 + ",")
    [error] = refused(client, auth, rt, csv_file(lines))
    assert (error["row"], error["column"]) == (3, "隐患描述")
    assert error["message"] == ("第 3 行 隐患描述: 单元格超过 131072 字符上限（200000 个字符） / "
                                "row 3 隐患描述 (description): a cell is longer than the "
                                "131072-character limit (200000)")


def test_a_found_time_in_year_1_is_422_not_500(client: TestClient, auth: Auth,
                                               rt: Runtime) -> None:
    lines = rows(3)
    lines[2] = lines[2].replace("2026-02-03 09:30", "0001-01-01")
    [error] = refused(client, auth, rt, csv_file(lines))
    assert (error["row"], error["column"]) == (4, "发现时间")
    assert "早于 2000-01-01" in error["message"]


def test_an_xlsx_upload_named_csv(client: TestClient, auth: Auth, rt: Runtime) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["单位编号", "隐患地点"])
    sheet.append(["c1", "一社区加油站"])
    out = io.BytesIO()
    book.save(out)
    r = client.post(URL, files={"file": ("隐患清单.csv", out.getvalue(), "text/csv")},
                    headers=auth("d1-admin"))
    assert r.status_code == 201, r.text
    assert r.json()["rows"] == 1 and count(rt, "hazard") == 1


def test_a_gbk_file_name_with_a_control_character_is_kept_readable(
    client: TestClient, auth: Auth, rt: Runtime
) -> None:
    # A Windows PC set to Chinese sends the name in GBK; this one also carries a NUL byte.
    boundary = "closeloop"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".encode()
            + "隐患清单\x00.csv".encode("gbk") + b"\"\r\nContent-Type: text/csv\r\n\r\n"
            + "\n".join([HEADER, *rows(2)]).encode() + f"\r\n--{boundary}--\r\n".encode())
    r = client.post(URL, content=body, headers={
        **auth("s1-commander"), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 201, r.text
    assert r.json()["file"] == "隐患清单.csv"
    with read_session(rt.db) as session:
        assert session.exec(select(ImportBatch.filename)).all() == ["隐患清单.csv"]


def test_a_total_row_is_left_out_and_named_in_the_answer(client: TestClient, auth: Auth,
                                                         rt: Runtime) -> None:
    """The 合计 row Excel users keep at the bottom: both imports leave it out and say so."""
    r = client.post(URL, headers=auth("s1-commander"),
                    files=csv_file([*rows(2), "合计,2,,,,,,,,", ",,,,,,,,,"], encoding="gbk"))
    assert r.status_code == 201, r.text
    assert r.json()["rows"] == 2 and r.json()["skipped_rows"] == [4]
    header = "风险点编号,单位编号,风险点名称,风险类别,位置,风险等级,管控措施,责任人"
    r = client.post("/api/risks/import", headers=auth("s1-commander"), files=csv_file(
        ["FX-1,c1,加油站,危化品,一社区,重大,双人巡查,张三", "总计：1项,,,,,,,"],
        header=header, name="风险清单.csv"))
    assert r.status_code == 201, r.text
    assert r.json()["rows"] == 1 and r.json()["skipped_rows"] == [3]
    assert count(rt, "risk_point") == 1
