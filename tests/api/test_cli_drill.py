"""`closeloop start … --drill [KIND] [--drill-title TITLE]`: a drill from the operator
console, as POST /api/runs takes it (`drill`). Run as a real subprocess from the repository on
a fresh data dir, the shipped playbooks and the demo district, as tests/api/test_cli.py does."""

from __future__ import annotations

from pathlib import Path

from factories import run_events, run_row
from sqlmodel import select
from test_cli import closeloop, runtime_on

from models.db import read_session
from models.run import Run


def test_start_with_drill_records_a_drill_and_says_so(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "wang-qiang",
                     "--param", "location=六和社区", "--drill", "盲演",
                     "--drill-title", "夜间燃气泄漏盲演")
    assert done.returncode == 0, done.stderr
    assert "【演练】已启动盲演" in done.stderr
    rt = runtime_on(tmp_path)
    try:
        run_id = int(done.stdout)
        run = run_row(rt, run_id)
        assert (run.drill_kind, run.drill_title) == ("盲演", "夜间燃气泄漏盲演")
        [started] = run_events(rt, run_id, "run_started")
        assert started.detail["drill"] == {"kind": "盲演", "title": "夜间燃气泄漏盲演"}
    finally:
        rt.db.dispose()


def test_drill_alone_is_a_tabletop_and_without_it_a_real_event(tmp_path: Path) -> None:
    drill = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "wang-qiang",
                      "--param", "location=六和社区", "--drill")
    real = closeloop(tmp_path, "start", "gas-leak", "--unit", "heping", "--as", "wang-qiang",
                     "--param", "location=和平社区")
    assert drill.returncode == 0 and real.returncode == 0, drill.stderr + real.stderr
    assert "演练" not in real.stderr
    rt = runtime_on(tmp_path)
    try:
        assert run_row(rt, int(drill.stdout)).drill_kind == "桌面推演"
        assert run_row(rt, int(real.stdout)).drill_kind is None
    finally:
        rt.db.dispose()


def test_a_bad_drill_kind_or_a_hazard_drill_is_refused_naming_it(tmp_path: Path) -> None:
    bad = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "wang-qiang",
                    "--param", "location=六和社区", "--drill", "演习")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: --drill.kind: 演练方式应为 桌面推演、实战演练、盲演 之一")
    alone = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "wang-qiang",
                      "--param", "location=六和社区", "--drill-title", "x")
    assert alone.returncode == 2 and "--drill-title" in alone.stderr
    hazard = closeloop(tmp_path, "start", "hazard-3030", "--unit", "liuhe", "--as",
                       "liuhe-grid", "--param", "location=某厂房", "--param",
                       "description=通道堵塞", "--param", "category=消防安全", "--drill")
    assert hazard.returncode == 2 and "不能演练" in hazard.stderr
    rt = runtime_on(tmp_path)
    try:
        with read_session(rt.db) as session:
            assert session.exec(select(Run)).all() == []
    finally:
        rt.db.dispose()


def test_end_ends_a_drill_in_a_commanders_name(tmp_path: Path) -> None:
    """`closeloop end RUN --as PERSON [--note]`: 结束演练 from the operator console, as POST
    /api/runs/{id}/complete does it."""
    drill = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "wang-qiang",
                      "--param", "location=六和社区", "--drill")
    run_id = drill.stdout.strip()
    ended = closeloop(tmp_path, "end", run_id, "--as", "wang-qiang", "--note", "推演结束")
    assert ended.returncode == 0, ended.stderr
    assert ended.stdout.strip() == run_id
    assert ended.stderr.startswith(f"【演练】演练已结束 / drill ended: #{run_id} 燃气泄漏")
    rt = runtime_on(tmp_path)
    try:
        assert run_row(rt, int(run_id)).status == "completed"
        [event] = run_events(rt, int(run_id), "run_completed")
        assert (event.actor, event.detail["drill_end"], event.detail["note"]) == (
            "wang-qiang", True, "推演结束")
    finally:
        rt.db.dispose()
    again = closeloop(tmp_path, "end", run_id, "--as", "wang-qiang")
    assert again.returncode == 2 and "流程已办结" in again.stderr


def test_end_is_refused_naming_what_is_wrong_and_ends_nothing(tmp_path: Path) -> None:
    drill = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "wang-qiang",
                      "--param", "location=六和社区", "--drill")
    real = closeloop(tmp_path, "start", "gas-leak", "--unit", "heping", "--as", "wang-qiang",
                     "--param", "location=和平社区")
    drill_id, real_id = drill.stdout.strip(), real.stdout.strip()
    for args, said in (
            ((drill_id, "--as", "sun-li"), "error: --as sun-li: "),
            ((drill_id, "--as", "nobody"), "error: --as: 人员 nobody 不存在"),
            ((drill_id, "--as", "wang-qiang", "--note", "x" * 2001), "error: --note: "),
            ((drill_id,), "缺少参数：--as"),
            (("abc", "--as", "wang-qiang"), "RUN_ID 应为整数"),
            ((real_id, "--as", "wang-qiang"), "error: run: 流程 燃气泄漏模块化应急处置 不分阶段")):
        done = closeloop(tmp_path, "end", *args)
        assert done.returncode == 2 and done.stdout == "", (args, done.stderr)
        assert said in done.stderr, (args, done.stderr)
    rt = runtime_on(tmp_path)
    try:
        assert {run_row(rt, int(i)).status for i in (drill_id, real_id)} == {"running"}
    finally:
        rt.db.dispose()
