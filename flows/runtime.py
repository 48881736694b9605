"""Everything the engine needs, built once per process and passed explicitly: the database,
the org chart, the playbooks, the working-day calendar, the clock and the time zone."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from flows.catalog import Catalog
from flows.render import Renderer
from flows.workcal import WorkCalendar
from models.clock import Clock, SystemClock
from models.db import create_schema, make_engine
from models.org import OrgChart, load_org
from models.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Engine
    org: OrgChart
    catalog: Catalog
    calendar: WorkCalendar
    clock: Clock
    tz: ZoneInfo
    renderer: Renderer


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, db: Engine | None = None
) -> Runtime:
    org = load_org(settings.org_path)
    calendar = (
        WorkCalendar.from_file(settings.calendar_path)
        if settings.calendar_path.exists()
        else WorkCalendar.weekends_only()
    )
    engine = db or make_engine(settings.db_url)
    create_schema(engine)
    return Runtime(
        settings=settings,
        db=engine,
        org=org,
        catalog=Catalog(settings.playbooks, org),
        calendar=calendar,
        clock=clock or SystemClock(),
        tz=settings.tz,
        renderer=Renderer(settings.playbooks / "templates", tz=settings.tz),
    )
