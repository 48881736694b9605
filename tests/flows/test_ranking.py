"""The monthly ranking (flows/ranking.py) against counts made independently: hazards are
written straight into the register (with the run rows they hang on), and every expected
figure is either worked out by hand below or counted with plain Python loops over the rows
read back from the database, by local calendar month in Shanghai time. On SQLite and on a
real PostgreSQL 15 (the mean-days arithmetic differs by dialect). Then publishing a month
(flows/ranking_publish.py) and reading it back after the register changed."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import make_runtime
from pg_server import PostgresServer
from sqlalchemy import insert, update
from sqlmodel import select

from flows.ranking import check_not_future, month_bounds, monthly_ranking
from flows.ranking_publish import publish_ranking, published_ranking
from flows.registers import CANCELLED as REGISTER_CANCELLED
from flows.runtime import Runtime
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.errors import Conflict, Forbidden, InvalidInput
from models.hazard import Hazard
from models.ranking import RankingFigure, RankingPublication
from models.register_queries import CANCELLED
from models.run import Run

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 4, 10, 2, 0, tzinfo=UTC)

ORG = """
units:
  - id: d
    name: 测试区
    type: district
    people:
      - {id: d-manager, name: 区科室负责人, roles: [manager], notify: []}
      - {id: d-commander, name: 区指挥长, roles: [commander], notify: []}
    children:
      - id: sa
        name: 甲街道
        type: street
        people:
          - {id: sa-manager, name: 甲街道负责人, roles: [manager], notify: []}
        children:
          - {id: ca1, name: 甲一社区, type: community}
          - {id: ca2, name: 甲二社区, type: community}
      - id: sb
        name: 乙街道
        type: street
        children:
          - {id: cb1, name: 乙一社区, type: community}
      - id: sc
        name: 丙街道
        type: street
        children:
          - {id: cc1, name: 丙一社区, type: community}
      - id: tz
        name: 丁镇
        type: town
        children:
          - {id: v1, name: 丁一村, type: village}
      - {id: dept, name: 区住建局, type: department}
"""
STREET_OF = {"sa": "sa", "ca1": "sa", "ca2": "sa", "sb": "sb", "cb1": "sb", "sc": "sc",
             "cc1": "sc", "tz": "tz", "v1": "tz", "dept": None, "d": None}


def L(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    """A Shanghai wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=SH)


@pytest.fixture(params=["sqlite", "postgresql"])
def rrt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    url = None
    pg: PostgresServer | None = None
    name = f"t_{uuid.uuid4().hex[:16]}"
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg")
        url = pg.create_database(name)
    rt = make_runtime(tmp_path / "rt", clock=ManualClock(NOW), org_text=ORG, db_url=url)
    yield rt
    rt.db.dispose()
    if pg is not None:
        pg.drop_database(name)


def seed(rt: Runtime, hazards: list[dict[str, Any]]) -> None:
    """Run and register rows written directly (no engine): `unit` plus any Hazard field."""
    runs, rows = [], []
    for i, h in enumerate(hazards, start=1):
        unit = h.pop("unit")
        runs.append({"id": i, "playbook_id": "hazard", "playbook_version": 1,
                     "playbook_sha": "0" * 64, "title": f"隐患{i}", "unit_id": unit,
                     "status": "running", "params": {}, "started_by": "d-commander",
                     "started_at": h["found_at"], "segments": 0})
        rows.append({"run_id": i, "code": f"YH{i:06d}", "playbook_id": "hazard",
                     "unit_id": unit, "street_id": STREET_OF[unit], "source": "检查发现",
                     "grade": "一般", "category": None, "location": f"地点{i}",
                     "description": None, "enterprise": None, "found_by": None,
                     "due_at": None, "original_due_at": None, "status": "整改中",
                     "closed_at": None, "plan": {}, "campaign_run_id": None,
                     "import_id": None, "updated_at": NOW, **h})
    with rt.db.begin() as conn:
        conn.execute(insert(Run.__table__), runs)  # type: ignore[arg-type]
        conn.execute(insert(Hazard.__table__), rows)  # type: ignore[arg-type]


def rank(rt: Runtime, month: str = "2026-03", now: datetime = NOW, **kw: Any
         ) -> dict[str, dict[str, Any]]:
    with read_session(rt.db) as session:
        ranking = monthly_ranking(session, org=rt.org, month=month, tz=SH, now=now, **kw)
    return {r.unit_id: vars(r) for r in ranking.rows}


def closed(at: datetime) -> dict[str, Any]:
    return {"closed_at": at, "status": "已销号"}


# Hand-worked March 2026 (Shanghai): the month is [03-01 00:00, 04-01 00:00) local.
HAND = [
    # 甲街道 sa
    {"unit": "ca1", "found_at": L(3, 1), "due_at": L(3, 31), **closed(L(3, 5, 12))},  # 4.5 d
    {"unit": "ca1", "found_at": L(2, 28, 23, 59), "due_at": L(3, 1),  # found in Feb, late
     **closed(L(3, 10))},  # 9 d 1 min
    {"unit": "ca2", "found_at": L(3, 20), "due_at": L(3, 25)},  # overdue at the end
    {"unit": "ca2", "found_at": L(3, 31, 23, 59), "due_at": L(4, 30)},  # last minute, in time
    {"unit": "sa", "found_at": L(2, 10), "due_at": L(3, 1),
     **closed(L(4, 1))},  # closed at the very end: April's, so overdue at March's end
    {"unit": "ca2", "found_at": L(3, 3), "due_at": L(3, 4), "status": CANCELLED},  # nowhere
    # 乙街道 sb
    {"unit": "cb1", "found_at": L(3, 2), "due_at": L(3, 10), **closed(L(3, 4))},  # 2 d
    {"unit": "cb1", "found_at": L(3, 3), **closed(L(3, 6))},  # no deadline: on time; 3 d
    {"unit": "sb", "found_at": L(1, 15), "due_at": L(2, 14)},  # overdue since February
    {"unit": "cb1", "found_at": L(4, 2), "due_at": L(3, 30)},  # found after the month
    # 丁镇 tz: equal to sb on every figure, so they share a rank
    {"unit": "v1", "found_at": L(3, 12), "due_at": L(3, 20), **closed(L(3, 13, 12))},  # 1.5 d
    {"unit": "v1", "found_at": L(3, 14), "due_at": L(3, 20), **closed(L(3, 17, 12))},  # 3.5 d
    {"unit": "tz", "found_at": L(2, 20), "due_at": L(3, 31, 23, 59)},  # overdue at the end
    # not in any street: ranked nowhere
    {"unit": "dept", "found_at": L(3, 5), "due_at": L(3, 6)},
    # 丙街道 sc: nothing at all
]


def test_register_cancelled_label_is_the_one_queries_exclude() -> None:
    assert CANCELLED == REGISTER_CANCELLED


def test_month_bounds_are_local_midnights_in_utc() -> None:
    assert month_bounds("2026-03", SH) == (datetime(2026, 2, 28, 16, tzinfo=UTC),
                                           datetime(2026, 3, 31, 16, tzinfo=UTC))
    assert month_bounds("2026-12", SH) == (datetime(2026, 11, 30, 16, tzinfo=UTC),
                                           datetime(2026, 12, 31, 16, tzinfo=UTC))


@pytest.mark.parametrize("month", ["2026-13", "2026-3", "26-03", "", "2026-00", "march",
                                   "9999-12", "0001-01", "２０２６-03", "1999-12", "1900-01",
                                   "2100-01"])
def test_month_that_is_not_a_calendar_month_is_invalid(month: str) -> None:
    with pytest.raises(InvalidInput) as err:
        month_bounds(month, SH)
    assert err.value.field == "month"


def test_months_from_2000_to_2099_have_bounds() -> None:
    assert month_bounds("2000-01", SH)[0] == datetime(1999, 12, 31, 16, tzinfo=UTC)
    assert month_bounds("2099-12", SH)[1] == datetime(2099, 12, 31, 16, tzinfo=UTC)


@pytest.mark.parametrize("month", ["2026-05", "2027-01", "2099-01"])
def test_ranking_of_a_month_after_the_current_one_is_refused(rrt: Runtime, month: str
                                                            ) -> None:
    seed(rrt, [dict(h) for h in HAND])  # overdue hazards that a future month-end would count
    with pytest.raises(InvalidInput) as err:
        rank(rrt, month)  # NOW is 2026-04-10 in Shanghai
    assert err.value.field == "month"
    assert err.value.message == "月份不能晚于本月 / month is in the future"


def test_the_current_month_is_the_bureaus_local_one() -> None:
    # 04-30 16:30 UTC is already 05-01 00:30 in Shanghai: May is current, June is not.
    now = datetime(2026, 4, 30, 16, 30, tzinfo=UTC)
    check_not_future("2026-05", SH, now)
    with pytest.raises(InvalidInput):
        check_not_future("2026-06", SH, now)
    with pytest.raises(InvalidInput):  # and in UTC-12, it is still April there
        check_not_future("2026-05", ZoneInfo("Etc/GMT+12"), now)


def test_the_current_month_is_counted_up_to_now(rrt: Runtime) -> None:
    seed(rrt, [
        {"unit": "ca1", "found_at": L(4, 2), "due_at": L(4, 5)},  # overdue now
        {"unit": "ca1", "found_at": L(4, 3), "due_at": L(4, 20)},  # due later: not yet late
        {"unit": "ca2", "found_at": L(3, 25), "due_at": L(4, 30)},  # due at the month's end
        {"unit": "cb1", "found_at": L(4, 1), "due_at": L(4, 8), **closed(L(4, 9))},  # late
    ])
    with read_session(rrt.db) as session:
        ranking = monthly_ranking(session, org=rrt.org, month="2026-04", tz=SH, now=NOW)
    assert ranking.as_of == NOW and ranking.end == L(5, 1)  # NOW: 04-10 10:00 in Shanghai
    got = {r.unit_id: r for r in ranking.rows}
    assert (got["sa"].found, got["sa"].overdue) == (2, 1)
    assert (got["sb"].found, got["sb"].closed, got["sb"].on_time, got["sb"].overdue) == (
        1, 1, 0, 0)
    # A past month is counted to its end, whatever the clock says.
    march = rank(rrt, "2026-03")
    assert march["sa"]["overdue"] == 0 and march["sa"]["found"] == 1


def test_ranking_of_a_hand_worked_month_by_street(rrt: Runtime) -> None:
    seed(rrt, [dict(h) for h in HAND])
    got = rank(rrt)
    assert list(got) == ["sb", "tz", "sa", "sc"]  # rank order, ties in org-chart order
    pick = ("rank", "found", "closed", "closed_of_found", "closure_rate", "overdue",
            "mean_days_to_close", "on_time", "on_time_rate")
    assert {u: {k: got[u][k] for k in pick} for u in got} == {
        "sb": {"rank": 1, "found": 2, "closed": 2, "closed_of_found": 2, "closure_rate": 1.0,
               "overdue": 1, "mean_days_to_close": 2.5, "on_time": 2, "on_time_rate": 1.0},
        "tz": {"rank": 1, "found": 2, "closed": 2, "closed_of_found": 2, "closure_rate": 1.0,
               "overdue": 1, "mean_days_to_close": 2.5, "on_time": 2, "on_time_rate": 1.0},
        "sa": {"rank": 3, "found": 3, "closed": 2, "closed_of_found": 1,
               "closure_rate": 0.3333, "overdue": 2, "mean_days_to_close": 6.8, "on_time": 1,
               "on_time_rate": 0.5},
        "sc": {"rank": 4, "found": 0, "closed": 0, "closed_of_found": 0, "closure_rate": None,
               "overdue": 0, "mean_days_to_close": None, "on_time": 0, "on_time_rate": None},
    }
    assert got["tz"]["unit_name"] == "丁镇"


def test_neighbouring_months_see_the_boundary_hazards_on_their_own_side(rrt: Runtime) -> None:
    seed(rrt, [dict(h) for h in HAND])
    feb, apr = rank(rrt, "2026-02"), rank(rrt, "2026-04")
    # 02-28 23:59 local is February's (it is 15:59 UTC on the 28th, March's start is 16:00)
    assert feb["sa"]["found"] == 2 and feb["sa"]["closed"] == 0  # with the one of 02-10
    # closed at 04-01 00:00 local: April's closure; found 04-02 in sb: April's
    assert apr["sa"]["closed"] == 1 and apr["sb"]["found"] == 1


def test_scope_ranks_only_the_given_units(rrt: Runtime) -> None:
    seed(rrt, [dict(h) for h in HAND])
    got = rank(rrt, units=["sa"])
    assert list(got) == ["sa"] and got["sa"]["rank"] == 1 and got["sa"]["found"] == 3


def test_ranking_by_community_folds_units_below_into_their_community(rrt: Runtime) -> None:
    seed(rrt, [dict(h) for h in HAND])
    got = rank(rrt, level="community")
    pick = ("rank", "found", "closed", "closed_of_found", "overdue", "on_time",
            "mean_days_to_close")
    # The street-level hazards (sa's closed on 04-01, sb's overdue one) and tz's own
    # overdue one belong to no community.
    assert {u: tuple(got[u][k] for k in pick) for u in got} == {
        "cb1": (1, 2, 2, 2, 0, 2, 2.5), "v1": (1, 2, 2, 2, 0, 2, 2.5),
        "ca1": (3, 1, 2, 1, 0, 1, 6.8), "ca2": (4, 2, 0, 0, 1, 0, None),
        "cc1": (5, 0, 0, 0, 0, 0, None),
    }
    assert list(got) == ["cb1", "v1", "ca1", "ca2", "cc1"]


def independent(rows: list[Hazard], month: str, units: list[str]) -> dict[str, dict[str, Any]]:
    """The ranking counted the plain way: each row's local month as text, one loop."""
    year, mon = map(int, month.split("-"))
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=SH)

    def in_month(t: datetime | None) -> bool:
        return t is not None and t.astimezone(SH).strftime("%Y-%m") == month

    out: dict[str, dict[str, Any]] = {}
    for unit in units:
        found = closed_n = of_found = overdue = on_time = 0
        spans: list[timedelta] = []
        for h in rows:
            if h.street_id != unit or h.status == "已撤销":
                continue
            if in_month(h.found_at):
                found += 1
                if in_month(h.closed_at):
                    of_found += 1
            if in_month(h.closed_at):
                closed_n += 1
                assert h.closed_at is not None
                spans.append(h.closed_at - h.found_at)
                if h.due_at is None or h.closed_at <= h.due_at:
                    on_time += 1
            if (h.found_at < end and h.due_at is not None and h.due_at < end
                    and (h.closed_at is None or h.closed_at >= end)):
                overdue += 1
        seconds = sum(round(s.total_seconds()) for s in spans)
        out[unit] = {
            "found": found, "closed": closed_n, "closed_of_found": of_found,
            "overdue": overdue, "on_time": on_time,
            "closure": Fraction(of_found, found) if found else None,
            "on_time_share": Fraction(on_time, closed_n) if closed_n else None,
            "mean": Fraction(seconds, 86400 * closed_n) if closed_n else None,
        }
    # Ranks: better on-time share, then closure, then fewer overdue, then faster; missing
    # values last; equal units share the rank.
    def key(u: str) -> tuple[Any, ...]:
        r = out[u]
        return (r["on_time_share"] is None, -(r["on_time_share"] or 0), r["closure"] is None,
                -(r["closure"] or 0), r["overdue"], r["mean"] is None, r["mean"] or 0)

    for u in units:
        out[u]["rank"] = 1 + sum(1 for v in units if key(v) < key(u))
    return out


def random_hazards(rng: random.Random, n: int) -> list[dict[str, Any]]:
    units = [u for u in STREET_OF if u not in ("sc", "cc1")]  # 丙街道 keeps no hazards
    lo, hi = L(1, 20), L(5, 10)
    out: list[dict[str, Any]] = []
    for i in range(n):
        # A quarter right on a month boundary (local midnight) give or take a second.
        if i % 4 == 0:
            edge = L(rng.choice([3, 4, 5]), 1) + timedelta(seconds=rng.choice([-1, 0, 1]))
            found = edge - timedelta(days=rng.choice([0, 0, 3, 20]))
        else:
            found = lo + (hi - lo) * rng.random()
        found = found.replace(microsecond=0)
        h: dict[str, Any] = {"unit": rng.choice(units), "found_at": found}
        if rng.random() > 0.05:
            h["due_at"] = found + timedelta(days=rng.choice([3, 10, 30]))
        if rng.random() < 0.6:
            shut = found + timedelta(seconds=rng.randint(3600, 45 * 86400))
            if i % 7 == 0:  # closed exactly on a boundary
                shut = L(rng.choice([3, 4]), 1) + timedelta(seconds=rng.choice([-1, 0]))
                shut = max(shut, found)
            h |= closed(shut)
        if rng.random() < 0.03:
            h["status"] = CANCELLED
        out.append(h)
    return out


@pytest.mark.parametrize("month", ["2026-02", "2026-03", "2026-04"])
def test_ranking_matches_an_independent_count_of_the_database(rrt: Runtime, month: str
                                                              ) -> None:
    seed(rrt, random_hazards(random.Random(7), 600))
    with read_session(rrt.db) as session:
        rows = list(session.exec(select(Hazard)).all())
    streets = ["sa", "sb", "sc", "tz"]
    want = independent(rows, month, streets)
    got = rank(rrt, month, now=L(6, 1))  # every month a past one: counted to its end
    assert set(got) == set(streets)
    for u in streets:
        g, w = got[u], want[u]
        assert (g["found"], g["closed"], g["closed_of_found"], g["overdue"], g["on_time"],
                g["rank"]) == (w["found"], w["closed"], w["closed_of_found"], w["overdue"],
                               w["on_time"], w["rank"]), u
        assert g["closure_rate"] == (None if w["closure"] is None
                                     else round(float(w["closure"]), 4))
        assert g["on_time_rate"] == (None if w["on_time_share"] is None
                                     else round(float(w["on_time_share"]), 4))
        if w["mean"] is None:
            assert g["mean_days_to_close"] is None
        else:  # to one decimal, half up
            assert abs(g["mean_days_to_close"] - float(w["mean"])) <= 0.05 + 1e-9
    assert got["sc"]["found"] == 0 and got["sc"]["rank"] == 4
    assert sum(w["found"] for w in want.values()) > 50  # the month really had hazards


def test_ranking_with_no_hazards_lists_every_street_tied(rrt: Runtime) -> None:
    got = rank(rrt)
    assert list(got) == ["sa", "sb", "sc", "tz"]
    assert {r["rank"] for r in got.values()} == {1}



# --- publication (flows/ranking_publish.py): what was published is what the month reads
# afterwards, however the register changes (a hazard cancelled later, an extension approved
# after the month); rates and ranks are derived from the published counts for any scope; a
# month not over, a second publication without a reason and a manager below the district
# are refused; a correction keeps the earlier publication.

FIGURES = ("rank", "found", "closed", "closed_of_found", "closure_rate", "overdue",
           "mean_days_to_close", "on_time", "on_time_rate")


def published(rt: Runtime, month: str = "2026-03", level: str = "street",
              units: list[str] | None = None) -> dict[str, dict[str, object]]:
    with read_session(rt.db) as session:
        found = published_ranking(session, month=month, level=level, tz=SH, units=units)
    assert found is not None
    return {r.unit_id: {k: getattr(r, k) for k in FIGURES} for r in found[0].rows}


def live(rt: Runtime, **kw: object) -> dict[str, dict[str, object]]:
    return {u: {k: row[k] for k in FIGURES} for u, row in rank(rt, **kw).items()}


def test_a_published_month_keeps_its_figures_when_the_register_changes_later(
        rrt: Runtime) -> None:
    seed(rrt, [dict(h) for h in HAND])
    before = live(rrt)
    publication = publish_ranking(rrt, month="2026-03", actor="d-manager")
    assert publication.published_at == rrt.clock.now()
    assert publication.published_by == "d-manager" and publication.reason is None
    assert published(rrt) == before
    assert list(published(rrt)) == ["sb", "tz", "sa", "sc"]  # rank order, ties by org order

    # April: one of 乙街道's March hazards turns out to be registered in error, and 甲街道's
    # late one gets its deadline moved past March by an extension approved afterwards.
    with rrt.db.begin() as conn:
        conn.execute(update(Hazard).where(Hazard.code == "YH000007")
                     .values(status=CANCELLED))
        conn.execute(update(Hazard).where(Hazard.code == "YH000003")
                     .values(due_at=L(4, 20)))
    after = live(rrt)
    assert after != before
    assert after["sb"]["found"] == 1 and after["sa"]["overdue"] == 1
    assert published(rrt) == before  # what was announced stays


def test_published_counts_are_ranked_among_the_scope_asked_for(rrt: Runtime) -> None:
    seed(rrt, [dict(h) for h in HAND])
    publish_ranking(rrt, month="2026-03", actor="d-manager")
    ours = published(rrt, level="community", units=["ca1", "ca2"])
    assert ours == live(rrt, level="community", units=["ca1", "ca2"])
    assert [ours[u]["rank"] for u in ("ca1", "ca2")] == [1, 2]
    assert published(rrt, units=["sa", "sc"]) == live(rrt, units=["sa", "sc"])


def test_a_month_not_over_and_a_manager_below_the_district_are_refused(rrt: Runtime) -> None:
    with pytest.raises(InvalidInput) as caught:
        publish_ranking(rrt, month="2026-04", actor="d-manager")  # the clock is 2026-04-10
    assert caught.value.field == "month" and "尚未结束" in str(caught.value)
    with pytest.raises(InvalidInput) as caught:
        publish_ranking(rrt, month="2026-13", actor="d-manager")
    assert caught.value.field == "month"
    with pytest.raises(Forbidden):
        publish_ranking(rrt, month="2026-03", actor="sa-manager")
    with pytest.raises(InvalidInput) as caught:
        publish_ranking(rrt, month="2026-03", actor="d-manager", reason="因" * 501)
    assert caught.value.field == "reason"
    with read_session(rrt.db) as session:
        assert session.exec(select(RankingPublication)).all() == []
        assert session.exec(select(RankingFigure)).all() == []


def test_publishing_again_needs_a_reason_and_keeps_the_earlier_publication(
        rrt: Runtime) -> None:
    seed(rrt, [dict(h) for h in HAND])
    first = publish_ranking(rrt, month="2026-03", actor="d-manager")
    with rrt.db.begin() as conn:
        conn.execute(update(Hazard).where(Hazard.code == "YH000007")
                     .values(status=CANCELLED))
    rrt.clock.advance(timedelta(hours=3))  # type: ignore[attr-defined]
    with pytest.raises(Conflict, match="已于 2026-04-10 10:00 由 区科室负责人 发布"):
        publish_ranking(rrt, month="2026-03", actor="d-manager", reason="  ")
    second = publish_ranking(rrt, month="2026-03", actor="d-manager",
                             reason="乙街道一条隐患系误登记，已撤销")
    assert published(rrt) == live(rrt)  # the correction is what the month reads now
    assert published(rrt)["sb"]["found"] == 1
    with read_session(rrt.db) as session:
        kept = session.exec(select(RankingFigure).where(
            RankingFigure.publication_id == first.id, RankingFigure.level == "street",
            RankingFigure.unit_id == "sb")).one()
        events = session.exec(select(AuditEvent).where(
            AuditEvent.action == "ranking_published").order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
        per_level = session.exec(select(RankingFigure.level).where(
            RankingFigure.publication_id == second.id)).all()
    assert kept.found == 2  # the first publication's figures are still there
    assert sorted(set(per_level)) == ["community", "street"]
    assert [(e.actor, e.detail["replaces"], e.detail["reason"]) for e in events] == [
        ("d-manager", None, None), ("d-manager", first.id, "乙街道一条隐患系误登记，已撤销")]


def test_an_unpublished_month_has_no_published_ranking(rrt: Runtime) -> None:
    with read_session(rrt.db) as session:
        assert published_ranking(session, month="2026-03", level="street", tz=SH) is None
