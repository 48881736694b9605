"""Register pages sorted on a value some hazards lack (due_at, closed_at) are read as two
ranges, those with the value and then the rest (models/register_queries.py): every page, in
either direction and across the boundary, must be the page the one-query order gives, so
nothing is skipped or shown twice while a manager pages through the 整改清单."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from factories import seed_hazards
from sqlalchemy import and_, true
from sqlmodel import select

from flows.runtime import Runtime
from models.db import read_session
from models.hazard import Hazard
from models.register_queries import (
    HazardFilter,
    hazard_conditions,
    hazard_order,
    list_hazards,
)


@pytest.fixture
def seeded(rt: Runtime) -> Runtime:
    rng = random.Random(7)
    now = rt.clock.now()
    hazards = []
    for i in range(37):
        due = now + timedelta(days=rng.randint(-5, 5)) if i % 4 else None  # ties, and None
        closed = now - timedelta(days=rng.randint(0, 3)) if i % 3 == 0 else None
        hazards.append({"unit": "c1" if i % 2 else "s2", "due_at": due, "closed_at": closed,
                        "status": "已销号" if closed else "整改中"})
    seed_hazards(rt, hazards, playbook_id="hazard-mini")
    return rt


@pytest.mark.parametrize("sort", ["due_at", "-due_at", "closed_at", "-closed_at"])
@pytest.mark.parametrize("filters", [HazardFilter(), HazardFilter(units=["c1"]),
                                     HazardFilter(open_only=True)])
def test_every_page_is_the_page_of_the_one_query_order(
        seeded: Runtime, sort: str, filters: HazardFilter) -> None:
    now = seeded.clock.now()
    with read_session(seeded.db) as session:
        where = and_(true(), *hazard_conditions(filters, now=now))
        expected = list(session.exec(
            select(Hazard.run_id).where(where).order_by(*hazard_order(sort))).all())
        for limit in (1, 4, 10, 50):
            for offset in range(0, len(expected) + 3):
                rows, total = list_hazards(session, filters=filters, now=now, sort=sort,
                                           limit=limit, offset=offset)
                assert total == len(expected)
                assert [h.run_id for h in rows] == expected[offset:offset + limit], (
                    sort, limit, offset)
