"""Bulk import of the registers on a real SQLite runtime: flows/bulk_start.py writes what
start_run writes (compared row by row, as stored), spreadsheets in every shape bureaus send
(UTF-8 with and without BOM, GBK, XLSX with date cells), every mistake reported with its row
and column and nothing written, rights, campaigns, repeats, and the risk point upsert."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from factories import (
    DEMO_ORG,
    ENGINE_PLAYBOOKS,
    SHIPPED_PLAYBOOKS,
    make_runtime,
    start_one_and_bulk,
)
from sqlmodel import select

from flows import hazard_import, lifecycle
from flows.bulk_start import NewRun, bulk_start
from flows.hazard_import import import_hazards
from flows.import_checks import ImportInvalid
from flows.params import validate_params
from flows.risk_import import import_risks
from flows.runtime import Runtime
from flows.tabular import TableUnreadable, read_table
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.errors import Conflict, Forbidden, InvalidInput
from models.hazard import CodeClaim, Hazard, ImportBatch, RiskPoint
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.wake import Wake

IMPORT_DEMO = ENGINE_PLAYBOOKS.parent / "imports" / "import-demo.yaml"
HEADER = "隐患编号,单位编号,隐患来源,隐患等级,隐患类别,隐患地点,隐患描述,涉及企业,发现时间,发现人"
WRITTEN = ("run", "hazard", "step_instance", "audit_event", "notification", "wake",
           "import_batch", "risk_point", "playbook_version")


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    """The engine's test playbooks plus import-demo (kept in tests/fixtures/imports/, apart from
    the engine's folder whose playbooks other tests count)."""
    folder = tmp_path / "playbooks"
    shutil.copytree(ENGINE_PLAYBOOKS, folder)
    shutil.copy(IMPORT_DEMO, folder)
    return folder


@pytest.fixture
def make_rt(make_rt: Callable[..., Runtime], playbooks: Path) -> Callable[..., Runtime]:
    """conftest's make_rt (and so its `rt`), with import-demo among the playbooks."""
    def factory(**kwargs: Any) -> Runtime:
        kwargs.setdefault("playbooks", playbooks)
        return make_rt(**kwargs)

    return factory


def stored(rt: Runtime, table: str, *, drop: tuple[str, ...] = ("id",),
           order: str = "1") -> list[dict[str, Any]]:
    """Rows exactly as the database holds them (text for times and JSON), minus `drop`."""
    with rt.db.connect() as conn:
        result = conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")
        keys = list(result.keys())
        return [{k: v for k, v in zip(keys, row, strict=True) if k not in drop}
                for row in result.fetchall()]


def counts(rt: Runtime) -> dict[str, int]:
    with rt.db.connect() as conn:
        return {t: int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar() or 0)
                for t in WRITTEN}


def csv_bytes(*lines: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode(encoding)


def hazards(rt: Runtime) -> list[Hazard]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Hazard).order_by(Hazard.run_id)).all())  # type: ignore[arg-type]


# -- bulk_start gives what start_run gives ---------------------------------------------------

INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("c1", {"location": "一社区加油站", "grade": "一般", "source": "群众举报",
            "category": "消防安全", "found_at": "2026-02-01T09:30:00+08:00",
            "found_by": "检查员甲", "code": "HZ-001", "enterprise": "某某油品公司",
            "description": "灭火器过期"}),
    ("c2", {"location": "二社区菜市场", "grade": "重大"}),
    ("s1", {"location": "一街道办公楼", "grade": "重大", "code": "HZ-003"}),
    ("s2", {"location": "二街道仓库"}),  # no grid worker up the tree: unassigned, as start_run
    ("d1", {"location": "区政府大院", "grade": "一般", "found_at": "2026-01-05T00:00:00+08:00"}),
]


def _compare(rt_one: Runtime, rt_bulk: Runtime, playbook_id: str,
             inputs: list[tuple[str, dict[str, Any]]]) -> None:
    for unit, params in inputs:
        lifecycle.start_run(rt_one, playbook_id=playbook_id, unit_id=unit, params=params,
                            actor="d1-admin")
    playbook = rt_bulk.catalog.get(playbook_id)
    runs = [NewRun(unit, validate_params(playbook, params), row=n + 2)
            for n, (unit, params) in enumerate(inputs)]
    with session_scope(rt_bulk.db) as session:
        result = bulk_start(session, rt_bulk, playbook=playbook, runs=runs, actor="d1-admin")
    assert result.fast == len(inputs) and result.one_by_one == 0
    assert result.run_ids == list(range(1, len(inputs) + 1))
    # Both databases started empty, so run ids (and the codes made from them) line up.
    assert stored(rt_bulk, "run", drop=()) == stored(rt_one, "run", drop=())
    assert stored(rt_bulk, "playbook_version") == stored(rt_one, "playbook_version")
    assert stored(rt_bulk, "hazard", drop=("import_id",)) == \
        stored(rt_one, "hazard", drop=("import_id",))
    steps_order = "run_id, step_key, item_index"
    assert stored(rt_bulk, "step_instance", order=steps_order) == \
        stored(rt_one, "step_instance", order=steps_order)


def test_bulk_start_writes_the_rows_start_run_writes(make_rt: Callable[..., Runtime]) -> None:
    rt_one, rt_bulk = make_rt(), make_rt()
    _compare(rt_one, rt_bulk, "import-demo", INPUTS)
    steps = stored(rt_bulk, "step_instance", order="run_id, step_key")
    # The sample covers: skipped and ready branches, roles found above the unit, nobody.
    assert {(s["step_key"], s["status"]) for s in steps} == {
        ("rectify", "ready"), ("supervise", "ready")}
    # A step passed over has no row: it is in the run's `skipped` list.
    assert [r["skipped"] for r in stored(rt_bulk, "run")] == \
        ['["supervise"]', "[]", "[]", '["supervise"]', '["supervise"]']
    assert {s["assignee_unit_id"] for s in steps if s["status"] == "ready"} >= {"c1", "s1", None}
    assert [h["status"] for h in stored(rt_bulk, "hazard")] == \
        ["整改中", "挂牌督办", "挂牌督办", "整改中", "整改中"]


def test_bulk_start_matches_on_staged_and_registerless_playbooks(
        make_rt: Callable[..., Runtime]) -> None:
    # branching: stages (stage_entered_at), a `when` not reached at start, a staged for_each.
    _compare(make_rt(), make_rt(), "branching",
             [("c1", {"grade": "重大"}), ("s1", {}), ("s2", {"grade": "一般"})])
    # quick-escalation: no register, a 0s escalation (first check = now).
    _compare(make_rt(), make_rt(), "quick-escalation",
             [("c1", {"location": "一社区"}), ("c2", {"location": "二社区"})])


def test_bulk_start_audit_notes_and_no_wakes(rt: Runtime) -> None:
    playbook = rt.catalog.get("import-demo")
    runs = [NewRun("c1", validate_params(playbook, {"location": f"一社区{i}号"}), row=i + 2)
            for i in range(5)]
    runs.append(NewRun("c2", validate_params(playbook, {"location": "二社区", "grade": "重大"}),
                       row=7))
    with session_scope(rt.db) as session:
        result = bulk_start(session, rt, playbook=playbook, runs=runs, actor="s1-commander",
                            import_id=None, label="demo.csv")
    with read_session(rt.db) as session:
        events = session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
        notes = session.exec(select(Notification).order_by(Notification.recipient)).all()
        wakes = session.exec(select(Wake)).all()
    # One `imported` event per run, naming its row and what became ready or was skipped.
    assert [e.action for e in events] == ["imported"] * 6
    assert events[0].actor == "s1-commander" and events[0].to_state == "running"
    assert events[0].detail == {"import": None, "row": 2, "playbook": "import-demo",
                                "version": 1, "ready": ["rectify"], "skipped": ["supervise"]}
    assert events[5].detail["ready"] == ["supervise", "rectify"]
    # One summary note per assignee, not one per task; no wake (no Prefect flow run per run).
    assert [(n.recipient, n.title) for n in notes] == [
        ("c1-grid", "【批量导入】5 项新任务"), ("c2-grid", "【批量导入】1 项新任务"),
        ("s1-head", "【批量导入】1 项新任务")]
    assert all(n.url == "inbox://" and n.status == "delivered" for n in notes)
    assert "demo.csv" in notes[0].body and "隐患整改 5 项" in notes[0].body
    assert wakes == [] and result.summaries == 3 and result.wakes == 0


EDGE_PLAYBOOKS = {
    "edge-notify": """
id: edge-notify
version: 1
title: 启动即通知
kind: test
params:
  location: {type: string, required: true}
steps:
  - {id: tell, title: 通知, action: notify, template: t.md.j2, to: [duty]}
  - {id: work, title: 处置, role: grid_worker, due: 1h}
""",
    "edge-fanout": """
id: edge-fanout
version: 1
title: 启动即分发
kind: test
params:
  location: {type: string, required: true}
  wide: {type: bool, default: true}
steps:
  - {id: each, title: 社区签到, role: grid_worker, for_each: "units(type='community')",
     when: "params.wide"}
  - {id: one, title: 汇总, role: duty_officer, due: 2h}
""",
    "edge-when": """
id: edge-when
version: 1
title: 条件出错
kind: test
params:
  location: {type: string, required: true}
  n: {type: int}
steps:
  - {id: maybe, title: 可能, role: grid_worker, when: "params.n > 3"}
  - {id: then, title: 随后, role: grid_worker, needs: [maybe]}
  - {id: never, title: 从不, role: grid_worker, when: "false"}
""",
    "edge-steps": """
id: edge-steps
version: 1
title: 条件读步骤
kind: test
params:
  location: {type: string, required: true}
steps:
  - {id: first, title: 首步, role: grid_worker, when: "steps | length == 0"}
""",
}


@pytest.fixture
def edge_rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Callable[[], Runtime]:
    folder = tmp_path / "edge-playbooks"
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "t.md.j2").write_text("{{ run.title }}", encoding="utf-8")
    for name, body in EDGE_PLAYBOOKS.items():
        (folder / f"{name}.yaml").write_text(body, encoding="utf-8")
    return lambda: make_rt(playbooks=folder)


def test_bulk_start_edges_match_start_run(edge_rt: Callable[[], Runtime]) -> None:
    rt_one, rt_bulk = edge_rt(), edge_rt()
    assert rt_bulk.catalog.errors == []
    plan = [("edge-notify", "c1", {"location": "甲"}),
            ("edge-when", "c1", {"location": "乙", "n": 5}),
            ("edge-when", "c2", {"location": "丙", "n": 1}),
            ("edge-when", "c2", {"location": "丁"}),  # n is None: `None > 3` fails to evaluate
            ("edge-fanout", "s1", {"location": "戊"}),  # for_each at start: start_run per row
            ("edge-fanout", "s1", {"location": "己", "wide": False}),  # skipped: fast path
            ("edge-steps", "c1", {"location": "庚"})]  # reads `steps`: start_run per row
    for playbook_id, unit, params in plan:
        lifecycle.start_run(rt_one, playbook_id=playbook_id, unit_id=unit, params=params,
                            actor="d1-admin")
    kinds: dict[str, tuple[int, int]] = {}
    for playbook_id, unit, params in plan:
        playbook = rt_bulk.catalog.get(playbook_id)
        with session_scope(rt_bulk.db) as session:
            result = bulk_start(session, rt_bulk, playbook=playbook, actor="d1-admin",
                                runs=[NewRun(unit, validate_params(playbook, params))])
        kinds[f"{playbook_id}:{params['location']}"] = (result.fast, result.one_by_one)
    assert kinds == {"edge-notify:甲": (1, 0), "edge-when:乙": (1, 0), "edge-when:丙": (1, 0),
                     "edge-when:丁": (1, 0), "edge-fanout:戊": (0, 1),
                     "edge-fanout:己": (1, 0), "edge-steps:庚": (0, 1)}
    assert stored(rt_bulk, "run", drop=()) == stored(rt_one, "run", drop=())
    order = "run_id, step_key, item_index"
    assert stored(rt_bulk, "step_instance", order=order) == \
        stored(rt_one, "step_instance", order=order)
    # An automatic step ready at start keeps its wake (only a segment executes it).
    assert [w["run_id"] for w in stored(rt_bulk, "wake")] == [1, 5, 7]
    assert [w["run_id"] for w in stored(rt_one, "wake")] == [1, 2, 3, 4, 5, 6, 7]
    # A `when` that fails counts as true and is written to the timeline, as in advance().
    fails = [e for e in stored(rt_bulk, "audit_event") if e["action"] == "expression_failed"]
    assert [(f["run_id"], '"step": "maybe"' in f["detail"]) for f in fails] == [(4, True)]
    assert [e["detail"] for e in stored(rt_one, "audit_event")
            if e["action"] == "expression_failed"] == [f["detail"] for f in fails]


# -- reading files ---------------------------------------------------------------------------

def test_tabular_reads_utf8_bom_gbk_and_quoted_newlines() -> None:
    text_ = '单位编号,隐患地点\r\n\r\nc1,"一社区\n1号楼"\r\nc2, 二社区 \r\n'
    for data in (text_.encode("utf-8"), text_.encode("utf-8-sig"), text_.encode("gbk"),
                 text_.replace(",", "\t").encode("utf-16")):
        table = read_table(data, "x.csv")
        assert table.header == ["单位编号", "隐患地点"]
        # Row numbers count records as Excel does: blank row 2 dropped, numbers kept.
        assert table.rows == [(3, ["c1", "一社区\n1号楼"]), (4, ["c2", "二社区"])]
    assert read_table(b"", "x.csv").header == []
    with pytest.raises(TableUnreadable, match="xls"):
        read_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.xls")
    with pytest.raises(TableUnreadable, match=r"\.xlsx"):
        read_table(b"PK\x03\x04 not really a zip", "broken.xlsx")


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- importing hazards -----------------------------------------------------------------------

def test_import_csv_starts_one_run_per_row(rt: Runtime, clock: ManualClock) -> None:
    data = csv_bytes(
        "HZ-1,c1,检查发现,一般,消防安全,一社区1号楼,消防通道堵塞,某物业公司,2026-02-01 09:30,张三",
        "HZ-2,c2,群众举报,重大,用电安全,二社区菜市场,私拉电线,,2026/2/3,李四",
        ",c2,,,,二社区办公楼,,,,",
    )
    result = import_hazards(rt, data=data, filename="隐患清单.csv", actor="s1-commander",
                            playbook_id="import-demo")
    assert result.rows == 3 and result.run_ids == [1, 2, 3] and result.ignored_columns == []
    rows = hazards(rt)
    assert [(h.code, h.unit_id, h.street_id, h.grade, h.source, h.status, h.import_id)
            for h in rows] == [
        ("HZ-1", "c1", "s1", "一般", "检查发现", "整改中", result.import_id),
        ("HZ-2", "c2", "s1", "重大", "群众举报", "挂牌督办", result.import_id),
        ("YH00000003", "c2", "s1", "一般", "检查发现", "整改中", result.import_id)]
    # Local times (Asia/Shanghai) stored as UTC; no time given: the import's time.
    assert rows[0].found_at == datetime(2026, 2, 1, 1, 30, tzinfo=UTC)
    assert rows[1].found_at == datetime(2026, 2, 2, 16, 0, tzinfo=UTC)
    assert rows[2].found_at == clock.now() and rows[2].found_by == "s1-commander"
    assert rows[0].due_at == datetime(2026, 4, 1, 1, 0, tzinfo=UTC)  # rectify: 30d
    with read_session(rt.db) as session:
        run = session.get(Run, 1)
        assert run is not None and run.title == "隐患排查整改·一社区1号楼"
        assert run.params["found_at"] == "2026-02-01T09:30:00+08:00"
        assert run.started_by == "s1-commander"
        batch_event = session.exec(select(AuditEvent).where(
            AuditEvent.action == "hazards_imported")).one()
        assert batch_event.detail["rows"] == 3 and batch_event.detail["file"] == "隐患清单.csv"
        ready = session.exec(select(StepInstance).where(StepInstance.run_id == 2)).all()
        assert sorted(s.step_key for s in ready) == ["rectify", "supervise"]


def test_import_xlsx_with_date_cells_and_english_headers(rt: Runtime) -> None:
    data = xlsx_bytes([
        ["序号", "unit", "location", "grade", "found_at", "备注"],
        [1, "c1", "一社区", "重大", datetime(2026, 2, 10, 8, 0), "x"],
        [2, "c2", "二社区", None, 46054.375, None],  # a serial that lost its date format
        [None, None, None, None, None, None],
        [3, "c1", 12345, "一般", "2026年2月3日", None],
    ])
    result = import_hazards(rt, data=data, filename="list.xlsx", actor="d1-admin",
                            playbook_id="import-demo")
    assert result.rows == 3 and result.ignored_columns == ["备注"]
    rows = {h.location: h for h in hazards(rt)}
    assert {place: h.found_at for place, h in rows.items()} == {
        "一社区": datetime(2026, 2, 10, 0, 0, tzinfo=UTC),
        "二社区": datetime(2026, 2, 1, 1, 0, tzinfo=UTC),
        "12345": datetime(2026, 2, 2, 16, 0, tzinfo=UTC)}
    assert {place: h.grade for place, h in rows.items()} == {
        "一社区": "重大", "二社区": "一般", "12345": "一般"}


def test_gbk_csv_and_unit_names(rt: Runtime) -> None:
    data = csv_bytes("一社区,一社区甲楼", "二社区,二社区乙楼", header="单位,隐患地点",
                     encoding="gbk")
    import_hazards(rt, data=data, filename="gbk.csv", actor="d1-admin",
                   playbook_id="import-demo")
    assert [(h.unit_id, h.location) for h in hazards(rt)] == [("c1", "一社区甲楼"),
                                                               ("c2", "二社区乙楼")]


def test_a_bad_row_imports_nothing_and_every_mistake_is_named(rt: Runtime) -> None:
    lines = [f"HZ-{i},c1,检查发现,一般,消防,一社区{i}号,,,2026-02-01," for i in range(30)]
    lines[15] = "HZ-15,c1,检查发现,特大,消防,一社区15号,,,2026-02-01,"  # row 17
    lines[20] = "HZ-20,c9,上级交办,一般,消防,,,,2026-13-01,"  # row 22
    lines[25] = "HZ-3,c1,检查发现,一般,消防,一社区,,,2099-01-01,"  # row 27
    before = counts(rt)
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes(*lines), filename="bad.csv", actor="d1-admin",
                       playbook_id="import-demo")
    assert counts(rt) == before
    found = [(p.row, p.column) for p in exc.value.problems]
    assert found == [(17, "隐患等级"), (22, "单位编号"), (22, "隐患来源"), (22, "隐患地点"),
                     (22, "发现时间"), (27, "隐患编号"), (27, "发现时间")]
    first = exc.value.problems[0].message
    assert first.startswith("第 17 行 隐患等级: '特大' 不是有效值（可选：一般、重大）")
    assert "row 17" in first and "allowed: 一般, 重大" in first
    assert "与第 5 行重复" in exc.value.problems[5].message
    payload = exc.value.payload()
    assert payload["error_count"] == 7 and payload["file"] == "bad.csv"
    assert payload["errors"][0] == {"file": "bad.csv", "row": 17, "column": "隐患等级",
                                    "field": "grade", "message": first}


def test_header_problems(rt: Runtime) -> None:
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=b"", filename="empty.csv", actor="d1-admin",
                       playbook_id="import-demo")
    assert "隐患地点" in exc.value.problems[0].message and "单位编号" in str(exc.value)
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes("c1,x", header="单位编号,地址"), filename="h.csv",
                       actor="d1-admin", playbook_id="import-demo")
    assert [p.column for p in exc.value.problems] == ["隐患地点"]
    assert "缺少必填列“隐患地点”" in exc.value.problems[0].message
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes("x", header="隐患地点"), filename="h.csv",
                       actor="d1-admin", playbook_id="import-demo")
    assert exc.value.problems[0].column == "单位编号"
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes(header="单位编号,隐患地点"), filename="h.csv",
                       actor="d1-admin", playbook_id="import-demo")
    assert "没有数据行" in exc.value.problems[0].message
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes("c1,x,y", header="单位编号,隐患地点,地点"),
                       filename="h.csv", actor="d1-admin", playbook_id="import-demo")
    assert "列重复" in exc.value.problems[0].message
    # A column the playbook has no param for cannot be kept: said, not dropped silently.
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes("c1,x,消防", header="单位编号,隐患地点,隐患类别"),
                       filename="h.csv", actor="d1-admin", playbook_id="register-demo")
    assert "没有参数 category" in exc.value.problems[0].message
    with pytest.raises(InvalidInput, match="unknown playbook"):
        import_hazards(rt, data=csv_bytes("c1,x", header="单位编号,隐患地点"),
                       filename="h.csv", actor="d1-admin", playbook_id="nope")
    with pytest.raises(InvalidInput, match="register"):
        import_hazards(rt, data=csv_bytes("c1,x", header="单位编号,隐患地点"),
                       filename="h.csv", actor="d1-admin", playbook_id="quick-escalation")
    assert counts(rt)["run"] == 0


def test_units_resolve_uniquely_and_agree(rt: Runtime) -> None:
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes("c1,二社区,x", "c1,一社区,y", ",三社区,z", ",,w",
                                          header="单位编号,单位,隐患地点"),
                       filename="u.csv", actor="d1-admin", playbook_id="import-demo")
    assert [(p.row, p.column) for p in exc.value.problems] == [(2, "单位"), (4, "单位"),
                                                               (5, "单位编号")]
    assert "不一致" in exc.value.problems[0].message


def test_codes_unique_in_file_and_database(rt: Runtime) -> None:
    import_hazards(rt, data=csv_bytes("A-1,c1,x", header="隐患编号,单位编号,隐患地点"),
                   filename="one.csv", actor="d1-admin", playbook_id="import-demo")
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes("A-2,c1,x", "A-1,c1,y",
                                          header="隐患编号,单位编号,隐患地点"),
                       filename="two.csv", actor="d1-admin", playbook_id="import-demo")
    assert [(p.row, p.column) for p in exc.value.problems] == [(3, "隐患编号")]
    assert "已经登记过" in exc.value.problems[0].message
    assert counts(rt)["run"] == 1


def test_a_code_already_registered_is_named_with_the_rows_mistakes(rt: Runtime) -> None:
    # One answer lists every mistake: a code stored before is named beside a bad cell of
    # another row, not in a second round once the cell is fixed.
    import_hazards(rt, data=csv_bytes("A-1,c1,x", header="隐患编号,单位编号,隐患地点"),
                   filename="one.csv", actor="d1-admin", playbook_id="import-demo")
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes("A-2,nowhere,x", "A-1,c1,y",
                                          header="隐患编号,单位编号,隐患地点"),
                       filename="two.csv", actor="d1-admin", playbook_id="import-demo")
    assert [(p.row, p.column) for p in exc.value.problems] == [(2, "单位编号"), (3, "隐患编号")]
    assert "已经登记过" in exc.value.problems[1].message
    assert counts(rt)["run"] == 1


def test_rights_over_every_row(rt: Runtime) -> None:
    data = csv_bytes("c1,x", "c2,y", "s2,z", "s2,w", header="单位编号,隐患地点")
    with pytest.raises(Forbidden) as exc:
        import_hazards(rt, data=data, filename="r.csv", actor="s1-commander",
                       playbook_id="import-demo")
    assert "第 4 行" in exc.value.reason and "s2" in exc.value.reason
    assert "另有 1 行" in exc.value.reason
    with pytest.raises(Forbidden):
        import_hazards(rt, data=data, filename="r.csv", actor="c1-grid",
                       playbook_id="import-demo")
    assert counts(rt)["run"] == 0
    # A manager of the district may; so may an admin (s2 has nobody to rectify: not here).
    data = csv_bytes("c1,x", "c2,y", header="单位编号,隐患地点")
    assert import_hazards(rt, data=data, filename="r.csv", actor="d1-manager",
                          playbook_id="import-demo").rows == 2


def test_the_same_file_twice_is_a_conflict(rt: Runtime) -> None:
    data = csv_bytes("c1,x", header="单位编号,隐患地点")
    first = import_hazards(rt, data=data, filename="a.csv", actor="d1-admin",
                           playbook_id="import-demo")
    with pytest.raises(Conflict, match=f"#{first.import_id}"):
        import_hazards(rt, data=data, filename="again.csv", actor="d1-admin",
                       playbook_id="import-demo")
    again = import_hazards(rt, data=data, filename="again.csv", actor="d1-admin",
                           playbook_id="import-demo", allow_repeat=True)
    assert again.import_id == first.import_id + 1 and counts(rt)["run"] == 2


def test_the_same_rows_saved_again_in_another_encoding_or_format_are_a_conflict(
        rt: Runtime) -> None:
    """A register without 隐患编号, opened in Excel and saved again (GBK CSV, CRLF, XLSX) is new
    bytes but the same hazards: the second import is refused naming the first batch, rather
    than doubling every hazard. Nothing is written; repeat=true imports it on purpose."""
    header = "单位编号,隐患地点,隐患描述,发现时间"
    lines = ("c1,六和路1号,消防通道堵塞,2026-02-25 09:30", "c2,东门路2号,灭火器过期,2026-02-26")
    first = import_hazards(rt, data=csv_bytes(*lines, header=header), filename="隐患.csv",
                           actor="d1-admin", playbook_id="import-demo")
    before = counts(rt)
    resaved = [csv_bytes(*lines, header=header, encoding="gbk").replace(b"\n", b"\r\n"),
               xlsx_bytes([header.split(","), *[line.split(",") for line in lines]])]
    for data, name in zip(resaved, ("隐患-另存.csv", "隐患.xlsx"), strict=True):
        with pytest.raises(Conflict) as refused:
            import_hazards(rt, data=data, filename=name, actor="d1-admin",
                           playbook_id="import-demo")
        said = str(refused.value)
        assert f"批次 #{first.import_id}" in said and "逐行相同" in said and "隐患.csv" in said
        assert counts(rt) == before
    # One row changed: other hazards, imported.
    changed = csv_bytes(lines[0], "c2,东门路2号,灭火器过期已更换,2026-02-26", header=header,
                        encoding="gbk")
    assert import_hazards(rt, data=changed, filename="隐患2.csv", actor="d1-admin",
                          playbook_id="import-demo").rows == 2
    again = import_hazards(rt, data=resaved[0], filename="隐患-另存.csv", actor="d1-admin",
                           playbook_id="import-demo", allow_repeat=True)
    assert again.rows == 2 and counts(rt)["run"] == 6


CAMPAIGN = """
id: mini-campaign
version: 1
title: 专项行动
kind: campaign
params:
  target: {type: int, default: 30}
steps:
  - {id: window, title: 整治窗口, action: wait, due: 30d}
"""


def test_campaign_column(make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    folder = tmp_path / "with-campaign"
    folder.mkdir()
    shutil.copy(IMPORT_DEMO, folder)
    (folder / "mini-campaign.yaml").write_text(CAMPAIGN, encoding="utf-8")
    rt = make_rt(playbooks=folder)
    camp = lifecycle.start_run(rt, playbook_id="mini-campaign", unit_id="s1", params={},
                               actor="d1-admin")
    other = lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                                params={"location": "x"}, actor="d1-admin")
    header = "单位编号,隐患地点,专项行动"
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes(f"c1,a,{camp.id}", "s2,b," + str(camp.id),
                                          f"c1,c,{other.id}", "c1,d,999", header=header),
                       filename="c.csv", actor="d1-admin", playbook_id="import-demo")
    # Reported together: s2 has nobody to rectify, and the campaign does not cover it.
    assert [(p.row, p.column) for p in exc.value.problems] == [
        (3, "单位编号"), (3, "专项行动"), (4, "专项行动"), (5, "专项行动")]
    assert "不包括二街道（s2）" in exc.value.problems[1].message
    assert "不是专项行动" in exc.value.problems[2].message
    with pytest.raises(ImportInvalid, match="不是专项行动编号"):
        import_hazards(rt, data=csv_bytes("c1,e,abc", header=header), filename="c.csv",
                       actor="d1-admin", playbook_id="import-demo")
    result = import_hazards(rt, data=csv_bytes(f"c1,a,{camp.id}", f"c2,b,#{camp.id}",
                                               header=header),
                            filename="c.csv", actor="d1-admin", playbook_id="import-demo")
    assert [h.campaign_run_id for h in hazards(rt) if h.import_id == result.import_id] == \
        [camp.id, camp.id]


def test_campaign_column_refuses_a_grade_the_campaign_does_not_count(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    """A campaign of 重大 hazards: a 一般 row (said, or by the playbook's default) would count
    nowhere in its progress, so the file is refused naming those rows."""
    folder = tmp_path / "graded-campaign"
    folder.mkdir()
    shutil.copy(IMPORT_DEMO, folder)
    graded = CAMPAIGN.replace("params:\n", "params:\n  grade: {type: enum, values: [重大, 一般, "
                                           "全部], default: 重大}\n")
    (folder / "mini-campaign.yaml").write_text(graded, encoding="utf-8")
    rt = make_rt(playbooks=folder)
    camp = lifecycle.start_run(rt, playbook_id="mini-campaign", unit_id="s1", params={},
                               actor="d1-admin")
    header = "单位编号,隐患地点,隐患等级,专项行动"
    before = counts(rt)
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=csv_bytes(f"c1,a,重大,{camp.id}", f"c1,b,一般,{camp.id}",
                                          f"c2,c,,{camp.id}", header=header),
                       filename="c.csv", actor="d1-admin", playbook_id="import-demo")
    assert [(p.row, p.column) for p in exc.value.problems] == [(3, "专项行动"), (4, "专项行动")]
    assert all(f"专项行动 #{camp.id} 只计入重大隐患，本隐患为一般隐患" in p.message
               for p in exc.value.problems)
    assert counts(rt) == before
    result = import_hazards(rt, data=csv_bytes(f"c1,a,重大,{camp.id}", "c1,b,一般,",
                                               header=header),
                            filename="c.csv", actor="d1-admin", playbook_id="import-demo")
    assert [h.campaign_run_id for h in hazards(rt) if h.import_id == result.import_id] == \
        [camp.id, None]


# -- files that went wrong (a tester's list): refused whole, row and column named ----------

def refused(rt: Runtime, data: bytes, filename: str = "清单.csv",
            actor: str = "d1-admin") -> list[tuple[int, str, str]]:
    """The mistakes of a file that must import nothing: (row, column, message)."""
    before = counts(rt)
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=data, filename=filename, actor=actor,
                       playbook_id="import-demo")
    assert counts(rt) == before
    return [(p.row, p.column, p.message) for p in exc.value.problems]


ROW = "HZ-{0},c1,检查发现,一般,消防安全,一社区{0}号楼,消防通道堵塞,,2026-02-01 09:30,张三"


def test_a_quote_left_open_imports_nothing_and_names_the_row_it_opened_in(rt: Runtime) -> None:
    opened = ROW.format(2).replace("一社区2号楼", '"六和社区A栋')
    [(row, column, message)] = refused(rt, csv_bytes(opened, ROW.format(3), ROW.format(4)))
    assert (row, column) == (2, "隐患地点")
    assert message.startswith("第 2 行 隐患地点: 引号未闭合") and "unterminated quote" in message


def test_a_row_with_more_cells_than_the_header_imports_nothing(rt: Runtime) -> None:
    shifted = ROW.format(3).replace("一社区3号楼", "六和社区和平路12号,3栋")
    [(row, column, message)] = refused(rt, csv_bytes(ROW.format(2), shifted, ROW.format(4)))
    assert (row, column) == (3, "第 11 列")
    assert "有 11 个单元格，表头只有 10 列" in message and "11 cells" in message
    # Empty cells after the last column (Excel's trailing commas) are no mistake.
    result = import_hazards(rt, data=csv_bytes(ROW.format(2) + ",,", ROW.format(4) + ","),
                            filename="清单.csv", actor="d1-admin", playbook_id="import-demo")
    assert result.rows == 2 and [h.found_by for h in hazards(rt)] == ["张三", "张三"]


def test_control_characters_import_nothing(rt: Runtime) -> None:
    bad = ROW.format(2).replace("一社区2号楼", "一社区\x01号楼").replace("堵塞", "堵塞\x1b[0m")
    found = refused(rt, csv_bytes(bad, ROW.format(3).replace("张三", "张三\x7f")))
    assert [(row, column) for row, column, _ in found] == [
        (2, "隐患地点"), (2, "隐患描述"), (3, "发现人")]
    assert found[0][2].startswith("第 2 行 隐患地点: 含有不可见控制字符（\\x01）")


def test_found_times_before_2000_or_bare_numbers_import_nothing(rt: Runtime) -> None:
    header = "单位编号,隐患地点,发现时间"
    found = refused(rt, csv_bytes(
        "c1,甲,0001-01-01", "c1,乙,1000-01-01 00:00", "c1,丙,1", "c1,丁,1999-12-31 23:59",
        "c1,戊,0001-01-01T00:00+08:00", "c1,己,9999-12-31T23:00-05:00", "c1,庚,2026-02-01",
        header=header))
    assert [(row, column) for row, column, _ in found] == [
        (2, "发现时间"), (3, "发现时间"), (4, "发现时间"), (5, "发现时间"), (6, "发现时间"),
        (7, "发现时间")]
    messages = [m.split(" / ")[0] for _, _, m in found]
    assert messages[0] == "第 2 行 发现时间: '0001-01-01 00:00' 早于 2000-01-01，不是合理的发现时间"
    assert messages[2] == "第 4 行 发现时间: '1' 不是日期（例如 2026-02-01 或 2026-02-01 09:30）"
    assert "早于 2000-01-01" in messages[3] and "早于 2000-01-01" in messages[4]
    assert messages[5] == "第 7 行 发现时间: '9999-12-31 23:00' 晚于当前时间"
    # An XLSX number is read as a serial only from 2000 on; date cells as they are.
    found = refused(rt, xlsx_bytes([["单位编号", "隐患地点", "发现时间"], ["c1", "甲", 1],
                                    ["c1", "乙", datetime(1999, 1, 1)]]), "清单.xlsx")
    assert ["不是日期" in m for _, _, m in found] == [True, False]
    result = import_hazards(rt, filename="清单.csv", actor="d1-admin", playbook_id="import-demo",
                            data=csv_bytes("c1,甲,2000-01-01", "c1,乙,46054.375", header=header))
    assert [h.found_at for h in hazards(rt)] == [datetime(1999, 12, 31, 16, 0, tzinfo=UTC),
                                                 datetime(2026, 2, 1, 1, 0, tzinfo=UTC)]
    assert result.rows == 2


def test_rows_whose_unit_has_nobody_to_rectify_import_nothing(
        make_rt: Callable[..., Runtime]) -> None:
    rt = make_rt(playbooks=SHIPPED_PLAYBOOKS, org_text=None, org_path=DEMO_ORG)
    header = "单位编号,隐患地点,隐患等级"
    data = csv_bytes("liuhe,六和社区A栋,一般", "fire-brigade,消防大队院内,一般",
                     "pingshan,区政府大院,一般", "maluan,马峦街道办,重大", "heping,和平社区,重大",
                     "fire-brigade,消防大队车库,一般", header=header)
    before = counts(rt)
    with pytest.raises(ImportInvalid) as exc:
        import_hazards(rt, data=data, filename="清单.csv", actor="pingshan-admin")
    assert counts(rt) == before
    problems = exc.value.problems
    assert [(p.row, p.column, p.field) for p in problems] == [
        (3, "单位编号", "unit"), (4, "单位编号", "unit"), (5, "单位编号", "unit"),
        (7, "单位编号", "unit")]
    assert problems[0].message.startswith("第 3 行 单位编号: 单位 fire-brigade（区消防救援大队）"
                                          "及其上级均无安全员（safety_officer），")
    assert "无人可办" in problems[0].message and "nobody could do step" in problems[0].message
    assert "maluan（马峦街道）" in problems[2].message


NO_STREET_HEAD = """
units:
  - id: d9
    name: 九区
    type: district
    people:
      - {id: d9-admin, name: 管理员, roles: [admin], notify: []}
    children:
      - id: s8
        name: 八街道
        type: street
        people:
          - {id: s8-head, name: 八街道主任, roles: [street_head, section_chief], notify: []}
          - {id: s8-insp, name: 八街道检查员, roles: [inspector], notify: []}
      - id: c9
        name: 九社区
        type: community
        people:
          - {id: c9-grid, name: 九社区网格员, roles: [grid_worker], notify: []}
"""


def test_the_steps_checked_for_staff_are_those_the_row_makes_ready(
        make_rt: Callable[..., Runtime]) -> None:
    # c9 has a grid worker (rectify) but nobody above it is a street head (supervise, only
    # for 重大): an ordinary hazard is fine, a major one is not.
    rt = make_rt(org_text=NO_STREET_HEAD)
    header = "单位编号,隐患地点,隐患等级"
    found = refused(rt, csv_bytes("c9,甲,一般", "c9,乙,重大", "c9,丙,一般", header=header),
                    actor="d9-admin")
    assert [(row, column) for row, column, _ in found] == [(3, "单位编号")]
    assert "均无街道办主任（street_head），“挂牌督办”无人可办" in found[0][2]
    result = import_hazards(rt, data=csv_bytes("c9,甲,一般", header=header), filename="a.csv",
                            actor="d9-admin", playbook_id="import-demo")
    assert result.rows == 1


def test_merged_cells_and_unsaved_formulas_in_xlsx_import_nothing(rt: Runtime) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for cells in (["隐患编号", "单位编号", "隐患地点", "发现时间"], ["HZ-1", "c1", "甲", None],
                  ["HZ-2", None, "乙", None], ["HZ-3", "c1", '="六和"&"社区"', "=NOW()"],
                  ["HZ-4", "c2", "丁", datetime(2026, 2, 1)]):
        sheet.append(cells)
    sheet.merge_cells("B2:B3")
    out = io.BytesIO()
    book.save(out)
    found = refused(rt, out.getvalue(), "清单.xlsx")
    assert [(row, column) for row, column, _ in found] == [
        (2, "单位编号"), (4, "隐患地点"), (4, "发现时间")]
    assert "合并单元格 B2:B3" in found[0][2] and "请取消合并单元格后再导入" in found[0][2]
    assert "C4 的公式没有计算结果，请在 Excel 中打开并保存后再导入" in found[1][2]


def test_an_xlsx_file_named_csv_imports_as_xlsx(rt: Runtime) -> None:
    data = xlsx_bytes([["单位编号", "隐患地点", "发现时间"], ["c1", "甲", datetime(2026, 2, 1)]])
    result = import_hazards(rt, data=data, filename="隐患清单.csv", actor="d1-admin",
                            playbook_id="import-demo")
    assert result.rows == 1 and hazards(rt)[0].location == "甲"


# -- risk points -----------------------------------------------------------------------------

RISK_HEADER = "风险点编号,单位编号,风险点名称,风险类别,位置,风险等级,管控措施,责任人"


def test_risk_points_upsert_by_code(rt: Runtime) -> None:
    first = import_risks(rt, data=csv_bytes("FX-1,c1,加油站,危化品,一社区,重大,双人巡查,张三",
                                            "FX-2,c2,菜市场,消防,二社区,较大,,",
                                            header=RISK_HEADER),
                         filename="r1.csv", actor="s1-commander")
    assert (first.rows, first.inserted, first.updated) == (2, 2, 0)
    second = import_risks(rt, data=csv_bytes("FX-2,c2,菜市场,消防,二社区,一般,每日巡查,李四",
                                             "FX-3,c1,仓库,消防,一社区,低,,",
                                             header=RISK_HEADER),
                          filename="r2.csv", actor="s1-commander")
    assert (second.inserted, second.updated) == (1, 1)
    with read_session(rt.db) as session:
        points = session.exec(select(RiskPoint).order_by(RiskPoint.code)).all()  # type: ignore[arg-type]
    assert [(p.code, p.level, p.controls, p.import_id) for p in points] == [
        ("FX-1", "重大", "双人巡查", first.import_id),
        ("FX-2", "一般", "每日巡查", second.import_id),
        ("FX-3", "低", None, second.import_id)]


def test_risk_point_mistakes_and_rights(rt: Runtime) -> None:
    with pytest.raises(ImportInvalid) as exc:
        import_risks(rt, data=csv_bytes("FX-1,c1,,,,极高,,", "FX-1,c1,x,,,低,,",
                                        header=RISK_HEADER), filename="r.csv", actor="d1-admin")
    assert [(p.row, p.column) for p in exc.value.problems] == [
        (2, "风险点名称"), (2, "风险等级"), (3, "风险点编号")]
    import_risks(rt, data=csv_bytes("FX-9,s2,x,,,低,,", header=RISK_HEADER),
                 filename="s2.csv", actor="s2-commander")
    # Moving s2's point into s1 through an upsert needs rights over s2 as well.
    with pytest.raises(Forbidden, match="s2"):
        import_risks(rt, data=csv_bytes("FX-9,c1,x,,,低,,", header=RISK_HEADER),
                     filename="s1.csv", actor="s1-commander")
    assert counts(rt)["risk_point"] == 1


def test_risk_files_get_the_same_reading_checks(rt: Runtime) -> None:
    with pytest.raises(ImportInvalid) as exc:
        import_risks(rt, data=csv_bytes("FX-1,c1,加油站,危化品,一社区,重大,巡查,张三,东门",
                                        "FX-2,c1,仓库\x01,,,低,,", header=RISK_HEADER),
                     filename="r.csv", actor="d1-admin")
    assert [(p.row, p.column) for p in exc.value.problems] == [(2, "第 9 列"), (3, "风险点名称")]
    with pytest.raises(ImportInvalid, match="第 2 行 风险点名称: 引号未闭合"):
        import_risks(rt, data=csv_bytes('FX-1,c1,"加油站,,,低,,', "FX-2,c1,仓库,,,低,,",
                                        header=RISK_HEADER), filename="r.csv", actor="d1-admin")
    assert counts(rt)["risk_point"] == 0


def test_imported_runs_are_the_runs_start_run_makes(make_rt: Callable[..., Runtime]) -> None:
    """The whole path (file -> checks -> params -> bulk_start) against start_run given the
    same values by hand: the stored rows are the same, the register rows too."""
    rt_file, rt_hand = make_rt(), make_rt()
    import_hazards(rt_file, filename="x.csv", actor="d1-admin", playbook_id="import-demo",
                   data=csv_bytes(
                       "HZ-1,c1,群众举报,重大,消防安全,一社区1号楼,堵塞,某公司,2026-02-01 09:30,"
                       "张三",
                       ",c2,,,,二社区,,,2026/2/3,"))
    for unit, params in (
        ("c1", {"code": "HZ-1", "source": "群众举报", "grade": "重大", "category": "消防安全",
                "location": "一社区1号楼", "description": "堵塞", "enterprise": "某公司",
                "found_at": "2026-02-01T09:30:00+08:00", "found_by": "张三"}),
        ("c2", {"location": "二社区", "found_at": "2026-02-03T00:00:00+08:00"}),
    ):
        lifecycle.start_run(rt_hand, playbook_id="import-demo", unit_id=unit, params=params,
                            actor="d1-admin")
    assert stored(rt_file, "run", drop=()) == stored(rt_hand, "run", drop=())
    assert stored(rt_file, "hazard", drop=("import_id",)) == \
        stored(rt_hand, "hazard", drop=("import_id",))
    order = "run_id, step_key"
    assert stored(rt_file, "step_instance", order=order) == \
        stored(rt_hand, "step_instance", order=order)


# -- PostgreSQL ------------------------------------------------------------------------------

@pytest.fixture
def make_pg_rt(pg: Any, tmp_path: Path, clock: ManualClock, playbooks: Path) -> Any:
    import uuid

    from factories import make_runtime

    made: list[tuple[Runtime, str]] = []

    def factory() -> Runtime:
        name = f"t_{uuid.uuid4().hex[:16]}"
        rt = make_runtime(tmp_path / f"pg{len(made)}", clock=clock, playbooks=playbooks,
                          db_url=pg.create_database(name))
        assert rt.db.dialect.name == "postgresql"
        made.append((rt, name))
        return rt

    yield factory
    for rt, name in made:
        rt.db.dispose()
        pg.drop_database(name)


def _rows(rt: Runtime, model: Any, order: Any,
          drop: tuple[str, ...] = ("id",)) -> list[dict[str, Any]]:
    with read_session(rt.db) as session:
        found = session.exec(select(model).order_by(*order)).all()
    return [{k: v for k, v in row.model_dump().items() if k not in drop} for row in found]


def test_bulk_start_on_postgres_matches_start_run(make_pg_rt: Callable[[], Runtime]) -> None:
    rt_one, rt_bulk = make_pg_rt(), make_pg_rt()
    result = start_one_and_bulk(rt_one, rt_bulk, "import-demo", INPUTS)
    assert result.run_ids == [1, 2, 3, 4, 5]
    assert _rows(rt_bulk, Run, [Run.id], drop=()) == _rows(rt_one, Run, [Run.id], drop=())
    assert _rows(rt_bulk, Hazard, [Hazard.run_id], drop=("import_id",)) == \
        _rows(rt_one, Hazard, [Hazard.run_id], drop=("import_id",))
    order = [StepInstance.run_id, StepInstance.step_key]
    assert _rows(rt_bulk, StepInstance, order) == _rows(rt_one, StepInstance, order)
    # The sequence moved past the block: the next run started by hand gets the next id.
    run = lifecycle.start_run(rt_bulk, playbook_id="import-demo", unit_id="c1",
                              params={"location": "x"}, actor="d1-admin")
    assert run.id == 6


def test_imports_on_postgres(make_pg_rt: Callable[[], Runtime]) -> None:
    rt = make_pg_rt()
    lines = [f"HZ-{i},{'c1' if i % 2 else 'c2'},检查发现,{'重大' if i % 10 == 0 else '一般'},消防,"
             f"地点{i},,,2026-02-01 09:30," for i in range(50)]
    result = import_hazards(rt, data=csv_bytes(*lines), filename="pg.csv", actor="d1-admin",
                            playbook_id="import-demo")
    assert result.rows == 50 and counts(rt)["run"] == 50
    with pytest.raises(ImportInvalid, match="已经登记过"):
        import_hazards(rt, data=csv_bytes(lines[3]), filename="again.csv", actor="d1-admin",
                       playbook_id="import-demo")
    first = import_risks(rt, data=csv_bytes("FX-1,c1,加油站,,,重大,,", header=RISK_HEADER),
                         filename="r.csv", actor="d1-admin")
    second = import_risks(rt, data=csv_bytes("FX-1,c1,加油站,,,低,巡查,", "FX-2,c2,x,,,低,,",
                                             header=RISK_HEADER),
                          filename="r2.csv", actor="d1-admin")
    assert (first.inserted, second.inserted, second.updated) == (1, 1, 1)
    assert counts(rt)["risk_point"] == 2


def test_a_code_registered_by_hand_during_a_postgres_import_is_named_not_a_500(
        make_pg_rt: Callable[[], Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_pg_rt()
    real = hazard_import.bulk_start

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        # Someone registers row 3's code in their own transaction while the file is written.
        lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                            params={"location": "手工登记", "code": "HZ-01"}, actor="d1-admin")
        return real(*args, **kwargs)

    monkeypatch.setattr(hazard_import, "bulk_start", meanwhile)
    lines = [f"HZ-{i:02d},c1,检查发现,一般,,地点{i},,,," for i in range(5)]
    with pytest.raises(ImportInvalid) as err:
        import_hazards(rt, data=csv_bytes(*lines), filename="pg.csv", actor="d1-admin",
                       playbook_id="import-demo")
    assert [(p.row, p.field) for p in err.value.problems] == [(3, "code")]
    assert counts(rt)["run"] == 1  # the one by hand; nothing of the file
    with pytest.raises(InvalidInput, match="已经登记过"):
        lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                            params={"location": "再次登记", "code": "HZ-01"}, actor="d1-admin")


def test_two_postgres_imports_sharing_codes_at_once_one_wins_whole(
        make_pg_rt: Callable[[], Runtime]) -> None:
    import threading

    rt = make_pg_rt()
    n = 2000
    # The shared codes in opposite orders: the two COPYs meet in the unique index.
    first = [f"A-{i},c1,检查发现,一般,,地点{i},,,," for i in range(n)] + \
        ["SHARED-1,c1,检查发现,一般,,共,,,,", "SHARED-2,c1,检查发现,一般,,共,,,,"]
    second = ["SHARED-2,c2,检查发现,一般,,共,,,,", "SHARED-1,c2,检查发现,一般,,共,,,,"] + \
        [f"B-{i},c2,检查发现,一般,,地点{i},,,," for i in range(n)]
    barrier = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def run(name: str, lines: list[str]) -> None:
        barrier.wait()
        try:
            outcomes[name] = import_hazards(rt, data=csv_bytes(*lines), filename=f"{name}.csv",
                                            actor="d1-admin", playbook_id="import-demo").rows
        except Exception as exc:  # judged below: only the named refusals are allowed
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=args)
               for args in (("first", first), ("second", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [k for k, v in outcomes.items() if isinstance(v, int)]
    lost = [v for v in outcomes.values() if not isinstance(v, int)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(lost[0], ImportInvalid | Conflict), repr(lost[0])
    if isinstance(lost[0], ImportInvalid):
        assert {p.field for p in lost[0].problems} == {"code"}
    assert counts(rt)["run"] == n + 2  # the winner whole, nothing of the other


def test_when_memo_only_for_constant_lookups() -> None:
    from flows.bulk_plan import constant_lookups

    assert constant_lookups("params.grade == '重大'") == (("params", "grade"),)
    assert constant_lookups("params['grade'] in ['重大'] and run.unit == 'c1'") == \
        (("params", "grade"), ("run", "unit"))
    assert constant_lookups("params.grade.startswith('重')") == (("params", "grade"),)
    # Whole-dict uses and method calls read more than one value: evaluated per row.
    for source in ("params | length > 3", "params.get('grade') == '重大'",
                   "params.items() | list", "params[params.key] == 1", "params.values"):
        assert constant_lookups(source) is None, source


# -- chunked imports on SQLite ---------------------------------------------------------------

# ten_rows() in the order its runs are written, by found time: HZ-09 was found on 2-01 too.
FOUND_ORDER = ["HZ-00", "HZ-09", *[f"HZ-{i:02d}" for i in range(1, 9)]]


def ten_rows() -> bytes:
    return csv_bytes(*[f"HZ-{i:02d},{'c1' if i % 2 else 'c2'},检查发现,"
                       f"{'重大' if i == 4 else '一般'},消防安全,{i}号楼,消防通道堵塞,,"
                       f"2026-02-0{1 + i % 9} 09:30,张三" for i in range(10)])


def notes_of(rt: Runtime) -> list[tuple[str, str, str]]:
    with read_session(rt.db) as session:
        return sorted((n.recipient, n.title, n.body) for n in session.exec(
            select(Notification).where(Notification.kind == "assigned")).all())


def crash_at_chunk(monkeypatch: pytest.MonkeyPatch, rt: Runtime, chunk: int) -> None:
    """Import ten_rows() in chunks of 3 with the process cut off as chunk `chunk` begins: the
    chunks before it are committed, as after a power cut. bulk_start is itself again after."""
    monkeypatch.setattr(hazard_import, "CHUNK_RUNS", 3)
    real = hazard_import.bulk_start
    calls: list[int] = []

    def cut_off(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == chunk:
            raise KeyboardInterrupt("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(hazard_import, "bulk_start", cut_off)
    with pytest.raises(KeyboardInterrupt):
        import_hazards(rt, data=ten_rows(), filename="清单.csv", actor="s1-commander",
                       playbook_id="import-demo")
    monkeypatch.setattr(hazard_import, "bulk_start", real)


def test_a_file_written_in_chunks_ends_as_one_transaction_would(
        make_rt: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    whole, chunked = make_rt(), make_rt()
    import_hazards(whole, data=ten_rows(), filename="清单.csv", actor="s1-commander",
                   playbook_id="import-demo")
    monkeypatch.setattr(hazard_import, "CHUNK_RUNS", 3)  # 3 + 3 + 3 + 1
    result = import_hazards(chunked, data=ten_rows(), filename="清单.csv",
                            actor="s1-commander", playbook_id="import-demo")
    # Run ids in found-time order, answered in the file's order (HZ-09 has the second).
    assert result.rows == 10 and result.run_ids == [1, *range(3, 11), 2]
    # The same rows (each chunk starts at its own instant: those times are left out).
    moments = ("id", "started_at", "ready_at", "stage_entered_at", "next_check_at", "due_at")
    for table, order in (("run", "id"), ("step_instance", "run_id, step_key")):
        assert stored(chunked, table, drop=moments, order=order) == \
            stored(whole, table, drop=moments, order=order)
    assert [h.code for h in hazards(chunked)] == [h.code for h in hazards(whole)]
    assert notes_of(chunked) == notes_of(whole)  # one summary per person, whole-file counts
    with read_session(chunked.db) as session:
        batch = session.exec(select(ImportBatch)).one()
        assert (batch.written, batch.rows) == (10, 10) and batch.finished_at is not None
        assert batch.stored_file and not Path(batch.stored_file).exists()  # let go
        assert len(session.exec(select(AuditEvent).where(
            AuditEvent.action == "hazards_imported")).all()) == 1


def test_an_import_cut_off_between_chunks_is_finished_on_restart(
        make_rt: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_rt()
    crash_at_chunk(monkeypatch, rt, 3)  # two chunks committed
    with read_session(rt.db) as session:
        batch = session.exec(select(ImportBatch)).one()
        assert batch.written == 6 and batch.finished_at is None
        assert batch.stored_file and Path(batch.stored_file).exists()
    assert counts(rt)["run"] == 6
    assert hazard_import.resume_imports(rt) == 1
    assert [h.code for h in hazards(rt)] == FOUND_ORDER
    with read_session(rt.db) as session:
        batch = session.exec(select(ImportBatch)).one()
        assert batch.written == 10 and batch.finished_at is not None
        assert not Path(batch.stored_file or "").exists()
    [note] = [n for n in notes_of(rt) if n[0] == "c1-grid"]
    assert "共分派给你 5 项" in note[2]  # the whole file's count, not the last chunk's
    assert hazard_import.resume_imports(rt) == 0  # nothing left to do


def test_an_import_begun_in_file_order_by_an_earlier_version_goes_on_in_that_order(
        make_rt: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch an earlier version wrote in the file's order (no write_order), cut off and
    resumed after the upgrade: the rest follows the file's order, so no row is written twice
    and none is left out (in found order the rest would repeat HZ-09 and drop HZ-05)."""
    rt = make_rt()
    monkeypatch.setattr(hazard_import, "in_found_order", lambda runs: list(range(len(runs))))
    crash_at_chunk(monkeypatch, rt, 3)  # HZ-00 .. HZ-05 committed, in the file's order
    monkeypatch.undo()
    with session_scope(rt.db) as session:
        batch = session.exec(select(ImportBatch)).one()
        assert batch.written == 6
        batch.write_order = None  # as the earlier version left it
        session.add(batch)
    assert hazard_import.resume_imports(rt) == 1
    assert [h.code for h in hazards(rt)] == [f"HZ-{i:02d}" for i in range(10)]
    with read_session(rt.db) as session:
        assert session.exec(select(ImportBatch)).one().finished_at is not None


def test_an_interrupted_import_is_finished_from_a_data_dir_moved_since(
        make_rt: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        clock: ManualClock, playbooks: Path) -> None:
    """Cut off, then the data dir restored elsewhere (a new server, a new path at an upgrade):
    the batch names the kept file by its old path, and the rest of the file was never read."""
    rt = make_rt()
    crash_at_chunk(monkeypatch, rt, 3)  # two chunks committed
    rt.db.dispose()
    before, after = Path(rt.settings.data_dir), tmp_path / "restored"
    shutil.copytree(before, after)
    shutil.rmtree(before)
    moved = make_runtime(after, clock=clock, playbooks=playbooks,
                         org_path=after / "org.yaml")
    try:
        assert hazard_import.resume_imports(moved) == 1
        assert [h.code for h in hazards(moved)] == FOUND_ORDER
        assert list((after / "imports").iterdir()) == []  # let go once finished
    finally:
        moved.db.dispose()


def test_an_interrupted_import_holds_its_codes_until_it_is_finished(
        make_rt: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_rt()
    crash_at_chunk(monkeypatch, rt, 2)  # one chunk committed
    with pytest.raises(InvalidInput) as err:
        lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                            params={"location": "手工登记", "code": "HZ-05"}, actor="s1-commander")
    assert err.value.field == "params.code" and "正由导入批次 #1 登记" in str(err.value)
    assert hazard_import.resume_imports(rt) == 1
    assert [h.code for h in hazards(rt)] == FOUND_ORDER
    with read_session(rt.db) as session:
        assert session.exec(select(CodeClaim)).all() == []  # finished: nothing held
    with pytest.raises(InvalidInput, match="已经登记过"):
        lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                            params={"location": "手工登记", "code": "HZ-05"}, actor="s1-commander")


def test_a_code_of_a_file_being_imported_cannot_be_registered_between_its_chunks(
        make_rt: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    """All or nothing while other people work: a hazard registered by hand, and another file,
    between two chunks are refused for the codes the import holds; the import is whole."""
    rt = make_rt()
    monkeypatch.setattr(hazard_import, "CHUNK_RUNS", 3)
    real = hazard_import._write_chunk
    refused: list[Exception] = []

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not refused:
            try:
                lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                                    params={"location": "手工登记", "code": "HZ-08"},
                                    actor="s1-commander")
            except InvalidInput as exc:
                refused.append(exc)
            try:
                import_hazards(rt, data=csv_bytes("HZ-99,c1,检查发现,一般,,99号楼,,,,",
                                                  "HZ-08,c1,检查发现,一般,,8号楼,,,,"),
                               filename="另一份.csv", actor="s1-commander",
                               playbook_id="import-demo")
            except ImportInvalid as exc:
                refused.append(exc)
        return real(*args, **kwargs)

    monkeypatch.setattr(hazard_import, "_write_chunk", meanwhile)
    result = import_hazards(rt, data=ten_rows(), filename="清单.csv", actor="s1-commander",
                            playbook_id="import-demo")
    assert result.rows == 10 and len(refused) == 2
    by_hand, other_file = refused
    assert isinstance(by_hand, InvalidInput) and by_hand.field == "params.code"
    assert isinstance(other_file, ImportInvalid)
    assert [(p.row, p.field) for p in other_file.problems] == [(3, "code")]
    assert "正由导入批次 #1 登记" in other_file.problems[0].message
    assert [h.code for h in hazards(rt)] == FOUND_ORDER
    assert counts(rt)["run"] == 10


def test_a_chunked_import_that_writes_nothing_keeps_no_file(
        make_rt: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_rt()
    monkeypatch.setattr(hazard_import, "CHUNK_RUNS", 3)
    lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                        params={"location": "手工登记", "code": "HZ-07"}, actor="s1-commander")
    with pytest.raises(ImportInvalid) as err:
        import_hazards(rt, data=ten_rows(), filename="清单.csv", actor="s1-commander",
                       playbook_id="import-demo")
    assert [(p.row, p.field) for p in err.value.problems] == [(9, "code")]
    assert counts(rt)["run"] == 1 and counts(rt)["import_batch"] == 0
    kept = rt.settings.data_dir / "imports"
    assert not kept.exists() or list(kept.iterdir()) == []



def test_registers_own_words_for_grade_category_and_time_are_read(rt: Runtime) -> None:
    data = csv_bytes("HZ-1,c1,重大隐患,燃气安全,一社区食堂,2026-02-03 08:15",
                     "HZ-2,c2,一般事故隐患,消防安全,二社区仓库,2026-02-04",
                     header="隐患编号,单位编号,隐患级别,隐患类型,隐患地点,排查时间")
    result = import_hazards(rt, data=data, filename="台账.csv", actor="s1-commander",
                            playbook_id="import-demo")
    assert result.ignored_columns == []
    got = [(h.code, h.grade, h.category, h.found_at) for h in hazards(rt)]
    assert got == [("HZ-1", "重大", "燃气安全", datetime(2026, 2, 3, 0, 15, tzinfo=UTC)),
                   ("HZ-2", "一般", "消防安全", datetime(2026, 2, 3, 16, 0, tzinfo=UTC))]


def test_an_upload_no_batch_names_is_removed_at_start_once_it_is_old(rt: Runtime) -> None:
    import os
    import time

    folder = rt.settings.data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    old, fresh = folder / "abc-killed-before-commit.csv", folder / "def-being-written.csv"
    for path in (old, fresh):
        path.write_bytes(b"x")
    hour_ago = time.time() - hazard_import.LEFTOVER_AGE_S - 5
    os.utime(old, (hour_ago, hour_ago))
    assert hazard_import.resume_imports(rt) == 0
    assert not old.exists() and fresh.exists()


def test_a_risk_file_without_some_columns_leaves_those_fields_as_stored(rt: Runtime) -> None:
    import_risks(rt, data=csv_bytes("FX-1,c1,加油站,消防,一号路,重大,专人巡查,张三",
                                    header=RISK_HEADER), filename="全.csv", actor="d1-admin")
    result = import_risks(rt, data=csv_bytes("FX-1,c1,加油站,较大",
                                             header="风险点编号,单位编号,风险点名称,风险等级"),
                          filename="等级.csv", actor="d1-admin")
    assert result.updated == 1
    with read_session(rt.db) as session:
        point = session.exec(select(RiskPoint)).one()
    assert (point.level, point.category, point.location, point.controls, point.responsible) == (
        "较大", "消防", "一号路", "专人巡查", "张三")


def test_a_code_typed_like_the_systems_numbering_never_blocks_it(rt: Runtime) -> None:
    # Someone registered "YH00000002" by hand: the next run's own number would be that.
    first = lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                                params={"location": "手工", "code": "YH00000002"},
                                actor="s1-commander")
    second = lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                                 params={"location": "无编号"}, actor="s1-commander")
    assert (first.id, second.id) == (1, 2)
    # A file whose first row carries the code its second row's id (4) would make.
    result = import_hazards(rt, data=csv_bytes("YH00000004,c2,检查发现,一般,,甲,,,,",
                                               ",c1,检查发现,一般,,乙,,,,",
                                               ",c1,检查发现,一般,,丙,,,,"),
                            filename="无编号.csv", actor="s1-commander",
                            playbook_id="import-demo")
    assert result.rows == 3
    assert [h.code for h in hazards(rt)] == ["YH00000002", "YH00000002-2", "YH00000004",
                                             "YH00000004-2", "YH00000005"]


@pytest.mark.parametrize("typed", [" HZ-LOOK ", "HZ-LOOK\u200b", "\ufeffHZ-LOOK"])
def test_a_code_with_spaces_or_invisible_characters_is_the_stored_code(
        rt: Runtime, typed: str) -> None:
    lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                        params={"location": "甲", "code": "HZ-LOOK"}, actor="s1-commander")
    with pytest.raises(InvalidInput, match="已经登记过"):
        lifecycle.start_run(rt, playbook_id="import-demo", unit_id="c1",
                            params={"location": "乙", "code": typed}, actor="s1-commander")


def test_total_rows_at_the_bottom_and_under_groups_are_left_out_and_named(
        rt: Runtime) -> None:
    """A register as Excel users keep it: 小计 under a group, 合计 at the bottom (with counts, a
    colon, spaces). They are not hazards: left out, listed in skipped_rows, the rest imported."""
    data = xlsx_bytes([
        ["坪山区2026年隐患排查清单"],
        ["序号", "隐患编号", "单位编号", "隐患地点", "发现时间"],
        [1, "HZ-1", "c1", "一社区1号楼", "2026-02-01"],
        [2, "HZ-2", "c1", "一社区2号楼", "2026-02-02"],
        ["小计", "2条", None, None, None],
        [3, "HZ-3", "c2", "二社区菜市场", "2026-02-03"],
        ["合 计：", 3, None, None, None],
        [None, None, None, None, None],
    ])
    result = import_hazards(rt, data=data, filename="清单.xlsx", actor="d1-admin",
                            playbook_id="import-demo")
    assert result.rows == 3 and result.skipped_rows == [5, 7]
    assert [h.code for h in hazards(rt)] == ["HZ-1", "HZ-2", "HZ-3"]
    csv_total = csv_bytes("HZ-4,c1,检查发现,一般,消防安全,一社区4号楼,,,2026-02-01,",
                          "合计,1,,,,,,,,", encoding="gbk")
    result = import_hazards(rt, data=csv_total, filename="清单.csv", actor="d1-admin",
                            playbook_id="import-demo")
    assert result.rows == 1 and result.skipped_rows == [3]


def test_a_total_row_with_anything_but_counts_is_a_row_like_any_other(rt: Runtime) -> None:
    """合计 in the first cell but a location beside it: not a total row, checked as data."""
    found = refused(rt, csv_bytes("合计,c9,检查发现,一般,消防安全,一社区4号楼,,,2026-02-01,"))
    assert [(row, column) for row, column, _ in found] == [(2, "单位编号")]


def test_found_times_as_eight_digits_or_in_words_without_a_space_are_read(rt: Runtime) -> None:
    """20260205 (text in a CSV, a number cell in XLSX) and 2026年02月05日09时30分, as registers
    write them; eight digits that are no date are named, nothing imported."""
    header = "单位编号,隐患地点,发现时间"
    found = refused(rt, csv_bytes("c1,甲,20260205", "c1,乙,20261305", header=header))
    assert [(row, column) for row, column, _ in found] == [(3, "发现时间")]
    assert found[0][2].startswith("第 3 行 发现时间: '20261305' 不是有效的日期")
    import_hazards(rt, filename="清单.csv", actor="d1-admin", playbook_id="import-demo",
                   data=csv_bytes("c1,甲,20260205", "c1,乙,2026年02月05日09时30分",
                                  header=header))
    import_hazards(rt, filename="清单.xlsx", actor="d1-admin", playbook_id="import-demo",
                   data=xlsx_bytes([header.split(","), ["c1", "丙", 20260205]]))
    assert [h.found_at for h in hazards(rt)] == [datetime(2026, 2, 4, 16, 0, tzinfo=UTC),
                                                 datetime(2026, 2, 5, 1, 30, tzinfo=UTC),
                                                 datetime(2026, 2, 4, 16, 0, tzinfo=UTC)]


def test_a_missing_column_names_the_headers_read_and_the_files_unread_ones(rt: Runtime) -> None:
    """A clerk's header says 社区 and 隐患部位: the refusal lists the names each required
    column is read under and the file's columns that were not recognised."""
    found = refused(rt, csv_bytes("一社区,甲楼", header="社区,隐患部位"))
    assert [(row, column) for row, column, _ in found] == [(1, "隐患地点"), (1, "单位编号")]
    place, unit = (m.split(" / ")[0] for _, _, m in found)
    assert "表头可写作：单位编号、单位代码、unit_id、unit、单位、单位名称、所属单位、所属社区" \
        in unit
    assert place == ("第 1 行 隐患地点: 缺少必填列“隐患地点”（表头可写作：隐患地点、地点、"
                     "location）；文件中未识别的列：“社区”、“隐患部位”")


def test_street_registers_own_headers_for_the_community_and_the_inspector_are_read(
        rt: Runtime) -> None:
    data = csv_bytes("一社区,一社区甲楼,检查员甲", header="所属社区,隐患地点,检查人员")
    result = import_hazards(rt, data=data, filename="台账.csv", actor="d1-admin",
                            playbook_id="import-demo")
    assert result.ignored_columns == []
    assert [(h.unit_id, h.found_by) for h in hazards(rt)] == [("c1", "检查员甲")]
