"""POST /api/risks/import on a real PostgreSQL server on loopback, two imports at once: files
holding the same codes in opposite order used to deadlock (psycopg DeadlockDetected, a 500 in
about half the tries). The upsert now takes its rows in code order, and a transaction
PostgreSQL aborts as a deadlock is run again (flows/risk_import.py); a real deadlock, forced
with a barrier between two rows, is retried to a 201; one that keeps coming back is a 409 in
Chinese; a unique violation is a 409 naming the code. One server per module, a fresh database
per test; these fail (not skip) when the server binaries are missing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from api.main import create_app
from flows import risk_import
from flows.runtime import Runtime
from models.db import read_session
from models.hazard import RiskPoint

Auth = Callable[[str], dict[str, str]]
HEADER = "风险点编号,单位编号,风险点名称,风险类别,位置,风险等级,管控措施,责任人"
URL = "/api/risks/import?repeat=true"
ADMIN = "d1-admin"


@pytest.fixture
def rt(pg_rt: Runtime) -> Runtime:
    return pg_rt


@pytest.fixture
def bare_client(rt: Runtime) -> Iterator[TestClient]:
    """A client without the conftest's 5xx hook: a thread records the status instead."""
    with TestClient(create_app(rt, background=False, prefect=False),
                    raise_server_exceptions=False) as c:
        yield c


def risk_file(codes: Sequence[str], level: str, name: str) -> dict[str, Any]:
    lines = [f"{c},c1,加油站{c},危化品,一社区,{level},双人巡查,一社区安全员" for c in codes]
    return {"file": (name, ("\r\n".join([HEADER, *lines]) + "\r\n").encode("utf-8-sig"),
                     "text/csv")}


def at_once(client: TestClient, auth: Auth, files: list[dict[str, Any]]
            ) -> list[httpx.Response]:
    """Post each file from its own thread, released together."""
    gate = threading.Barrier(len(files))
    answers: list[httpx.Response | BaseException | None] = [None] * len(files)

    def post(i: int) -> None:
        try:
            gate.wait(timeout=30)
            answers[i] = client.post(URL, files=files[i], headers=auth(ADMIN))
        except BaseException as exc:  # noqa: BLE001 - reported below
            answers[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    return answers  # type: ignore[return-value]


def stored(rt: Runtime) -> dict[str, tuple[str, str | None]]:
    with read_session(rt.db) as session:
        return {r.code: (r.level, r.responsible) for r in session.execute(select(RiskPoint))
                .scalars()}


CODES = [f"FX{i:04d}" for i in range(300)]


def test_two_imports_of_the_same_codes_in_opposite_order_both_succeed(
    bare_client: TestClient, auth: Auth, rt: Runtime
) -> None:
    for round_ in range(8):
        forward = risk_file(CODES, "重大", f"a{round_}.csv")
        backward = risk_file(CODES[::-1], "一般", f"b{round_}.csv")
        answers = at_once(bare_client, auth, [forward, backward])
        assert [a.status_code for a in answers] == [201, 201], [a.text[:300] for a in answers]
        assert sorted(a.json()["rows"] for a in answers) == [300, 300]
    levels = stored(rt)
    assert len(levels) == 300
    # One file or the other won, whole: never a mix of the two within one transaction's rows.
    assert len({level for level, _ in levels.values()}) == 1
    assert {who for _, who in levels.values()} == {"c1-safety"}  # the name, made an id


def test_a_real_deadlock_is_retried_to_a_201(
    bare_client: TestClient, auth: Auth, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The codes are stored, so both imports update them. Each locks its first stored row,
    waits for the other to have locked its own, then locks the rest in file order: a circle
    PostgreSQL breaks by aborting one of them."""
    codes = CODES[:20]
    first = bare_client.post(URL, files=risk_file(codes, "较大", "0.csv"), headers=auth(ADMIN))
    assert first.status_code == 201, first.text
    real = risk_import._lock_stored
    gate = threading.Barrier(2)
    first_try: set[int] = set()
    tries: list[int] = []

    def file_order(session: Session, given: Sequence[str]) -> dict[str, str]:
        me = threading.get_ident()
        tries.append(me)
        if me in first_try:
            return real(session, given)
        first_try.add(me)
        table = RiskPoint.__table__  # type: ignore[attr-defined]

        def lock(part: Sequence[str]) -> None:
            for code in part:
                session.execute(select(table.c.code).where(table.c.code == code)
                                .with_for_update())

        lock(given[:1])
        gate.wait(timeout=30)
        lock(given[1:])
        return real(session, given)

    monkeypatch.setattr(risk_import, "_lock_stored", file_order)
    answers = at_once(bare_client, auth, [risk_file(codes, "重大", "a.csv"),
                                          risk_file(codes[::-1], "一般", "b.csv")])
    assert [a.status_code for a in answers] == [201, 201], [a.text[:300] for a in answers]
    assert len(tries) == 3  # one of the two was aborted as a deadlock and ran again
    assert len(stored(rt)) == 20
    assert [(a.json()["inserted"], a.json()["updated"]) for a in answers] == [(0, 20), (0, 20)]


def test_two_imports_of_the_same_new_codes_count_each_code_once(
    bare_client: TestClient, auth: Auth, rt: Runtime
) -> None:
    """Released together on 300 new codes, one import inserts them and the other, waiting on
    them, updates them: 300 inserted and 300 updated between the two answers (reading first
    and writing after counted 600 inserted whenever both read before either wrote)."""
    for round_ in range(6):
        codes = [f"R{round_}-{i:04d}" for i in range(300)]
        answers = at_once(bare_client, auth, [risk_file(codes, "重大", f"a{round_}.csv"),
                                              risk_file(codes[::-1], "一般", f"b{round_}.csv")])
        assert [a.status_code for a in answers] == [201, 201], [a.text[:300] for a in answers]
        counts = sorted((a.json()["inserted"], a.json()["updated"]) for a in answers)
        assert counts == [(0, 300), (300, 0)], (round_, counts)


def test_a_deadlock_that_keeps_coming_back_is_409_in_chinese(
    client: TestClient, auth: Auth, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def deadlocked(session: Session, values: Sequence[dict[str, Any]],
                   fields: Sequence[str] = ()) -> None:
        calls.append(1)
        raise OperationalError("INSERT INTO risk_point ...", {},
                               psycopg.errors.DeadlockDetected("deadlock detected"))

    monkeypatch.setattr(risk_import, "_upsert", deadlocked)
    monkeypatch.setattr(risk_import, "RETRY_PAUSE", 0.001)
    r = client.post(URL, files=risk_file(CODES[:3], "重大", "风险清单.csv"), headers=auth(ADMIN))
    assert r.status_code == 409, r.text
    assert r.json()["detail"].startswith("风险清单.csv: 与同时进行的其他导入冲突（已重试 5 次）")
    assert " / " in r.json()["detail"]
    assert len(calls) == risk_import.ATTEMPTS
    assert stored(rt) == {}
    with read_session(rt.db) as session:
        batches = session.execute(select(risk_import.ImportBatch)).scalars().all()
    assert batches == []  # rolled back with the rest


def test_a_unique_violation_is_409_naming_the_code(
    client: TestClient, auth: Auth, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A code stored meanwhile past the upsert's ON CONFLICT (here: a plain insert)."""
    with rt.db.begin() as conn:
        conn.execute(insert(RiskPoint.__table__), [{  # type: ignore[arg-type]
            "code": "FX0001", "unit_id": "c1", "name": "旧", "category": None,
            "location": None, "level": "低", "controls": None, "responsible": None,
            "import_id": None, "updated_at": rt.clock.now()}])

    def plain_insert(session: Session, values: Sequence[dict[str, Any]],
                     fields: Sequence[str] = ()) -> None:
        session.execute(insert(RiskPoint.__table__), list(values))  # type: ignore[arg-type]

    monkeypatch.setattr(risk_import, "_upsert", plain_insert)
    r = client.post(URL, files=risk_file(["FX0000", "FX0001"], "重大", "a.csv"),
                    headers=auth(ADMIN))
    assert r.status_code == 409, r.text
    assert r.json()["detail"].startswith("a.csv: 风险点编号 'FX0001' 已被同时进行的另一次导入登记")
    assert stored(rt) == {"FX0001": ("低", None)}
