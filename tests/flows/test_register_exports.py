"""The registers' exports and the risk import together (flows/exports.py, flows/risk_import.py)
on real runtimes: days left and days overdue of closed, cancelled and just-overdue hazards;
the risk register exported (CSV and XLSX) and imported back gives the same person ids for
责任人; which names become ids and which stay free text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import SMALL_ORG
from sqlalchemy import delete, insert, select

from flows import exports
from flows.risk_import import import_risks
from flows.runtime import Runtime
from models.db import read_session
from models.hazard import Hazard, RiskPoint

SH = ZoneInfo("Asia/Shanghai")


def hazard(now: datetime, **fields: Any) -> Hazard:
    base: dict[str, Any] = {
        "run_id": 1, "code": "YH1", "playbook_id": "register-demo", "unit_id": "c1",
        "street_id": "s1", "source": "检查发现", "grade": "一般", "location": "仓库",
        "found_at": now, "status": "整改中", "plan": {}, "updated_at": now}
    return Hazard(**(base | fields))


# -- days left, days overdue -------------------------------------------------------------------

@pytest.mark.parametrize("status,closed", [("已撤销", False), ("已销号", True)])
@pytest.mark.parametrize("due", [timedelta(days=-5), timedelta(days=5), timedelta(hours=-1)])
def test_closed_and_cancelled_hazards_have_no_days_left(rt: Runtime, status: str,
                                                        closed: bool, due: timedelta) -> None:
    now = rt.clock.now()
    h = hazard(now, due_at=now + due, status=status,
               closed_at=now - timedelta(days=1) if closed else None)
    assert exports.hazard_days_left(h, now, SH) is None
    assert exports.overdue_days(h, now, SH) is None
    assert exports.is_overdue(h, now) is False
    [row] = exports.rectification_rows(rt, [h], now)
    cells = dict(zip([c.header for c in exports.RECTIFICATION_COLUMNS], row, strict=True))
    assert (cells["剩余天数"], cells["逾期天数"], cells["是否逾期"]) == (None, 0, "否")
    [listed] = exports.hazard_rows(rt, [h], now)
    cells = dict(zip([c.header for c in exports.HAZARD_COLUMNS], listed, strict=True))
    assert (cells["是否逾期"], cells["逾期天数"]) == ("否", 0)


@pytest.mark.parametrize("due,left,late,overdue", [
    (timedelta(hours=-1), 0, 1, "是"),  # 08:00 today, now 09:00: overdue since this morning
    (timedelta(hours=-9), -1, 1, "是"),  # 00:00 today: yesterday was its last day
    (timedelta(hours=-10), -1, 1, "是"),  # 23:00 yesterday
    (timedelta(days=-2), -2, 2, "是"),
    (timedelta(hours=1), 0, 0, "否"),  # due later today
    (timedelta(hours=15), 0, 0, "否"),  # 24:00 tonight: today is its last day
    (timedelta(days=3), 3, 0, "否"),
])
def test_overdue_days_agree_with_the_overdue_flag(rt: Runtime, due: timedelta, left: int,
                                                  late: int, overdue: str) -> None:
    now = rt.clock.now()  # 2026-03-02 09:00 in Shanghai
    h = hazard(now, due_at=now + due)
    assert exports.hazard_days_left(h, now, SH) == left
    assert exports.overdue_days(h, now, SH) == late
    assert exports.is_overdue(h, now) is (overdue == "是")
    [row] = exports.rectification_rows(rt, [h], now)
    cells = dict(zip([c.header for c in exports.RECTIFICATION_COLUMNS], row, strict=True))
    assert (cells["剩余天数"], cells["逾期天数"], cells["是否逾期"]) == (max(left, 0), late,
                                                                overdue)
    # The 隐患清单 says the same days overdue beside the same flag.
    [listed] = exports.hazard_rows(rt, [h], now)
    cells = dict(zip([c.header for c in exports.HAZARD_COLUMNS], listed, strict=True))
    assert (cells["是否逾期"], cells["逾期天数"]) == (overdue, late)


def test_a_hazard_without_a_deadline_is_neither_overdue_nor_counting(rt: Runtime) -> None:
    now = rt.clock.now()
    [row] = exports.rectification_rows(rt, [hazard(now)], now)
    assert row[12:15] == [None, 0, "否"]


# -- the risk register, exported and imported back ---------------------------------------------

def risks(rt: Runtime, rows: list[dict[str, Any]]) -> None:
    now = rt.clock.now()
    with rt.db.begin() as conn:
        conn.execute(insert(RiskPoint.__table__), [  # type: ignore[arg-type]
            {"category": None, "location": None, "level": "较大", "controls": None,
             "import_id": None, "updated_at": now, **r} for r in rows])


def responsible(rt: Runtime) -> dict[str, str | None]:
    with read_session(rt.db) as session:
        return {r.code: r.responsible for r in session.execute(select(RiskPoint)).scalars()}


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_the_exported_risk_register_imports_back_to_the_same_people(demo: Runtime,
                                                                    fmt: str) -> None:
    risks(demo, [
        {"code": "FX-1", "unit_id": "liuhe", "name": "加油站", "responsible": "liuhe-safety"},
        {"code": "FX-2", "unit_id": "liuhe", "name": "菜市场", "responsible": "liuhe-grid"},
        {"code": "FX-3", "unit_id": "liuhe", "name": "仓库", "responsible": "张三（外聘）"},
        {"code": "FX-4", "unit_id": "liuhe", "name": "作坊", "responsible": None},
    ])
    before = responsible(demo)
    with read_session(demo.db) as session:
        points = list(session.execute(select(RiskPoint).order_by(RiskPoint.code))
                      .scalars())  # type: ignore[arg-type]
    table = exports.Table("风险清单", exports.RISK_COLUMNS, exports.risk_rows(demo, points))
    data = b"".join(exports.export_chunks(fmt, table))
    if fmt == "csv":
        assert "尹秀英" in data.decode("utf-8-sig") and "liuhe-safety" not in data.decode(
            "utf-8-sig")
    with demo.db.begin() as conn:
        conn.execute(delete(RiskPoint))
    result = import_risks(demo, data=data, filename=f"风险清单.{fmt}", actor="pingshan-admin")
    assert (result.rows, result.inserted) == (4, 4)
    assert responsible(demo) == before == {"FX-1": "liuhe-safety", "FX-2": "liuhe-grid",
                                           "FX-3": "张三（外聘）", "FX-4": None}


# A copy of the small org where two people of street s1 share a name.
TWINS = SMALL_ORG.read_text(encoding="utf-8").replace(
    "{id: s1-insp2, name: 检查员乙,", "{id: s1-insp2, name: 检查员甲,")


@pytest.mark.parametrize("unit,text,stored", [
    ("c1", "一社区安全员", "c1-safety"),  # in the row's unit
    ("c1", "一街道值班员", "s1-duty"),  # above it
    ("c1", "区科室负责人", "d1-manager"),  # the root is above every unit
    ("s1", "二社区安全员", "c2-safety"),  # below it
    # Outside the branch, one person of that name in the whole chart: that person (a
    # neighbouring community's, another street's, as an export writes them).
    ("c1", "二社区安全员", "c2-safety"),
    ("c1", "二街道检查员", "s2-insp"),
    ("c1", "检查员甲", "检查员甲"),  # two people of that name: ambiguous, kept as written
    ("s2", "检查员甲", "检查员甲"),  # outside their branch, and two of them in the chart
    ("c1", "张三", "张三"),  # nobody
    ("c1", "c2-safety", "c2-safety"),  # a person id is kept as is
])
def test_a_responsible_name_becomes_an_id_when_it_names_one_person(
    make_rt: Callable[..., Runtime], unit: str, text: str, stored: str
) -> None:
    assert TWINS.count("检查员甲") == 2
    rt = make_rt(org_text=TWINS)
    csv_text = ("风险点编号,单位编号,风险点名称,风险等级,责任人\r\n"
                f"FX-1,{unit},加油站,一般,{text}\r\n")
    import_risks(rt, data=csv_text.encode("utf-8-sig"), filename="r.csv", actor="d1-admin")
    assert responsible(rt) == {"FX-1": stored}
