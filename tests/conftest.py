"""Shared fixtures: a runtime on a fresh SQLite file with a movable clock, the small test org,
and the engine's test playbooks (`rt`), or the shipped playbooks with the demo district
(`demo`). Real database, real org chart, real playbook loader."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # tests/receivers.py, tests/pg_server.py, tests/factories.py

from factories import (  # noqa: E402
    DEMO_ORG,
    ENGINE_PLAYBOOKS,
    SHIPPED_PLAYBOOKS,
    SMALL_ORG,
    make_runtime,
)
from object_server import ObjectServer  # noqa: E402
from pg_server import PostgresServer  # noqa: E402

from flows.runtime import Runtime  # noqa: E402
from models.clock import ManualClock  # noqa: E402

# Monday 2026-03-02 09:00 in Shanghai: a working day, far from holidays.
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_rt(tmp_path: Path, clock: ManualClock) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def factory(**kwargs: object) -> Runtime:
        kwargs.setdefault("playbooks", ENGINE_PLAYBOOKS)
        kwargs.setdefault("org_text", SMALL_ORG.read_text(encoding="utf-8"))
        rt = make_runtime(tmp_path / f"rt{len(made)}", clock=clock, **kwargs)  # type: ignore[arg-type]
        made.append(rt)
        return rt

    yield factory
    for rt in made:
        rt.db.dispose()


@pytest.fixture
def rt(make_rt: Callable[..., Runtime]) -> Runtime:
    return make_rt()


@pytest.fixture
def demo(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    """The shipped playbooks and the demo district 坪山区, as `./dev serve` runs them."""
    rt = make_runtime(tmp_path / "demo", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_path=DEMO_ORG)
    assert rt.catalog.errors == []
    yield rt
    rt.db.dispose()


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A real PostgreSQL on loopback (tests/pg_server.py), one per test module that asks."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(pg: PostgresServer) -> Iterator[str]:
    """A fresh database on that server for one test, dropped after it."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield pg.create_database(name)
    pg.drop_database(name)


@pytest.fixture
def pg_rt(pg_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    """As `rt` (the engine's test playbooks, the small org), on that PostgreSQL database."""
    rt = make_runtime(tmp_path / "pg", clock=clock, db_url=pg_url)
    assert rt.db.dialect.name == "postgresql"
    yield rt
    rt.db.dispose()


@pytest.fixture
def object_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectServer]:
    """An object store on loopback (tests/object_server.py). urllib honours *_proxy variables:
    a CI proxy must not stand between the store client and loopback."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with ObjectServer() as server:
        yield server
