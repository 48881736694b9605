"""Everything the engine needs, built once per process and passed explicitly: the database,
the org chart, the playbooks, the working-day calendar, the clock and the time zone."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from flows.apprise_urls import usable_url
from flows.catalog import Catalog
from flows.render import Renderer
from flows.role_typos import suspect_names
from flows.workcal import WorkCalendar
from models.clock import Clock, ManualClock, SystemClock
from models.db import create_schema, make_engine
from models.org import OrgChart, load_org
from models.settings import Settings

log = logging.getLogger(__name__)


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
    # What leases between processes (the sweeper's) are timed by: real time, whatever the
    # engine's clock says. A drill's `closeloop sweep --once` with CLOCK_OFFSET=2h against a
    # live data dir once left the lease "held" for two real hours, and the live server's
    # sweeper, refused, kept no deadline meanwhile. A ManualClock world (tests, benchmarks)
    # has no real time: its leases follow that clock.
    lease_clock: Clock = field(default_factory=SystemClock)
    # The latest reload asked of this process (flows/reload.py), None before the first: a
    # refused one means the files on disk would not load at a restart either.
    last_reload: ReloadAttempt | None = None


@dataclass(frozen=True)
class ReloadAttempt:
    at: datetime
    actor: str
    refused: bool
    errors: tuple[str, ...] = ()  # each as file:line:col: message
    files: tuple[str, ...] = ()  # the names of the files those are in


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, db: Engine | None = None
) -> Runtime:
    org = load_org(settings.org_path, url_ok=usable_url)
    calendar = (
        WorkCalendar.from_file(settings.calendar_path)
        if settings.calendar_path.exists()
        else WorkCalendar.weekends_only()
    )
    engine = db or make_engine(settings.db_url)
    create_schema(engine)
    clock = clock or SystemClock()
    catalog = Catalog(settings.playbooks, org)
    for pid in catalog.keep_last_good(engine):
        log.warning("流程 %s 的文件有错误，沿用上次运行的版本 / playbook %s failed to load; "
                    "serving the version its runs last used: %s", pid, pid,
                    catalog.fallbacks[pid])
    for warning in suspect_names(org, catalog.current.values()):
        log.warning("%s", warning)
    return Runtime(
        settings=settings,
        db=engine,
        org=org,
        catalog=catalog,
        calendar=calendar,
        clock=clock,
        tz=settings.tz,
        renderer=Renderer(settings.playbooks / "templates", tz=settings.tz),
        lease_clock=clock if isinstance(clock, ManualClock) else SystemClock(),
    )
