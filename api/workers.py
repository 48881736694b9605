"""The server's background work: the segment runner (Prefect), the deadline sweeper, the
outbox, and, once at start, finishing hazard imports a crash interrupted. Started by the
app's lifespan; none of it is on a request's path."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from flows.calendar_gaps import years_to_add
from flows.calendar_recount import recount_if_changed
from flows.catalog import reused_versions
from flows.hazard_import import resume_imports
from flows.notify import OutboxWorker
from flows.prefect_server import PrefectServer
from flows.runtime import Runtime
from flows.segments import SegmentRunner, failing_wakes
from flows.sweeper import LEASE, SweeperThread
from flows.unheld_tasks import UnheldTasks, unheld_tasks
from models.db import read_session
from models.queries import units_with_running_runs
from models.wake import Lease


class Workers:
    def __init__(self, rt: Runtime, *, prefect: bool = True, sweep: bool = True) -> None:
        self.rt = rt
        self.prefect_server = PrefectServer(rt.settings) if prefect else None
        self.segments = (
            SegmentRunner(rt, api_url_provider=self.prefect_server.start)
            if self.prefect_server else None
        )
        self.sweeper = SweeperThread(rt, interval=rt.settings.sweep_seconds) if sweep else None
        self.outbox = OutboxWorker(rt.db, clock=rt.clock, interval=1.0, org=rt.org,
                                   catalog=rt.catalog)
        self.resumer: threading.Thread | None = None
        # Units with running runs that the org chart no longer has (found at start and after each
        # reload):
        # their steps are parked and only the admin can close them out.
        self.orphan_units: list[str] = []
        # Playbooks changed without a new version number (at start and after each reload).
        self.reused_versions: list[str] = []
        # Open tasks whose holder the org chart no longer has (at start and after each reload): in
        # nobody's inbox until they are reassigned.
        self.unheld: list[UnheldTasks] = []

    def start(self) -> None:
        # Before serving (part of start-up: 0.14 s over 1,200,000 runs), not in idle time.
        try:
            self._check_at_start()
        except Exception:  # logged: a start-up check, never a reason not to serve
            logging.getLogger("closeloop.org").exception("start-up checks failed")
        # One grouped read of every open task's inbox key (about half a second of CPU at
        # 1,000,000 open hazards): start-up work too, not a cost that lands in idle time.
        self._find_unheld_tasks()
        if self.segments:
            self.segments.start()
        if self.sweeper:
            self.sweeper.start()
        self.outbox.start()
        # Off the start's path: each can read many rows on a large database.
        self.resumer = threading.Thread(target=self._after_start, name="resume-imports",
                                        daemon=True)
        self.resumer.start()

    def after_reload(self) -> None:
        """The org chart, playbooks and calendar were read again (flows/reload.py): what the
        start found against the old ones is found again, the outbox tells failed deliveries
        with the new chart, and working-day deadlines re-count if the calendar lists a new
        year (off the request's path, as after a start)."""
        self.outbox.org, self.outbox.catalog = self.rt.org, self.rt.catalog
        try:
            self._check_at_start()
        except Exception:  # logged: a check, never a reason to undo the reload
            logging.getLogger("closeloop.org").exception("checks after the reload failed")
        self._find_unheld_tasks()
        threading.Thread(target=self._recount_deadlines, name="recount-after-reload",
                         daemon=True).start()

    def _check_at_start(self) -> None:
        with read_session(self.rt.db) as session:
            units = units_with_running_runs(session)
            self.reused_versions = reused_versions(session, self.rt.catalog)
        if self.reused_versions:
            logging.getLogger("closeloop.playbooks").warning(
                "流程文件已改动但版本号未变：%s（已启动的运行沿用原内容；"
                "请给改动的文件下一个版本号） / "
                "playbook files changed without a new version number: %s (runs keep what they "
                "started with; give the changed file the next version)",
                "、".join(self.reused_versions), ", ".join(self.reused_versions))
        missing = years_to_add(self.rt, self.rt.clock.now())
        if missing:
            logging.getLogger("closeloop.calendar").warning(
                "工作日历（%s）缺少 %s 年：落在该年的工作日时限暂按周一至周五计算，不含节假日；"
                "请补上该年的放假安排（通常 11 月公布）并重新加载（POST /api/admin/reload 或 "
                "SIGHUP） / the working-day calendar (%s) lacks %s: working-day deadlines there "
                "are counted Mon-Fri, without the holidays; add the year's arrangement (usually "
                "published in November) and reload (POST /api/admin/reload, or SIGHUP)",
                self.rt.calendar.source or "无", "、".join(str(y) for y in missing),
                self.rt.calendar.source or "none", ", ".join(str(y) for y in missing))
        self.orphan_units = sorted(u for u in units if u not in self.rt.org.units)
        if self.orphan_units:
            logging.getLogger("closeloop.org").warning(
                "组织架构中已没有这些单位，但仍有进行中的运行：%s（系统管理员可查看并撤销） / "
                "running runs in units the org chart no longer has: %s (an admin can read and "
                "cancel them)", "、".join(self.orphan_units), ", ".join(self.orphan_units))

    def _after_start(self) -> None:
        self._resume_imports()
        self._recount_deadlines()

    def _find_unheld_tasks(self) -> None:
        try:
            with read_session(self.rt.db) as session:
                self.unheld = unheld_tasks(session, self.rt.org)
        except Exception:  # logged: on the start's path now, so never a reason not to serve
            logging.getLogger("closeloop.org").exception("checking task holders failed")
            return
        if self.unheld:
            logging.getLogger("closeloop.org").warning(
                "组织架构中已无人承办的待办任务 / open tasks whose holder the org chart no "
                "longer has: %s (改派 reassign them, or give the role back to someone there)",
                "; ".join(str(u) for u in self.unheld))

    def _resume_imports(self) -> None:
        try:
            finished = resume_imports(self.rt)
        except Exception:  # logged: the server serves on, the batch stays as it was
            logging.getLogger("closeloop.import").exception("resuming imports failed")
            return
        if finished:
            logging.getLogger("closeloop.import").info("finished %d interrupted import(s)",
                                                       finished)

    def _recount_deadlines(self) -> None:
        try:
            moved = recount_if_changed(self.rt)
        except Exception:  # logged: the deadlines stay as they were counted
            logging.getLogger("closeloop.calendar").exception("recounting deadlines failed")
            return
        if moved:
            logging.getLogger("closeloop.calendar").warning(
                "%d working-day deadline(s) counted Mon-Fri into a year the calendar now lists "
                "were counted again with its holidays (each is in its run's timeline)", moved)

    def stop(self) -> None:
        if self.sweeper:
            self.sweeper.stop()
        if self.segments:
            self.segments.stop()
        self.outbox.stop()
        if self.prefect_server:
            self.prefect_server.stop()

    def _failing_runs(self) -> int | None:
        try:
            return failing_wakes(self.rt)
        except SQLAlchemyError:  # health answers whatever the database's state
            return None

    def _lease(self) -> dict[str, Any] | None:
        try:
            with read_session(self.rt.db) as session:
                lease = session.get(Lease, LEASE)
        except SQLAlchemyError as exc:  # health answers whatever the database's state
            return {"error": type(exc).__name__}
        if lease is None:
            return None
        return {"holder": lease.holder, "expires_at": lease.expires_at,
                "mine": bool(self.sweeper and lease.holder == self.sweeper.holder)}

    def health(self) -> dict[str, Any]:
        seg = self.segments
        return {
            "prefect": {
                "api_url": self.prefect_server.api_url if self.prefect_server else None,
                "ready": bool(seg and seg.ready.is_set()),
                "error": seg.error if seg else None,
                "segments_run": seg.segments_run if seg else 0,
                # Segments executed while Prefect was unreachable, waiting to be recorded.
                "degraded_segments": seg.degraded_segments if seg else 0,
                # Runs whose automatic step keeps failing (a child run that cannot start, a
                # report that cannot be filed): each also says so in its timeline.
                "failing_runs": self._failing_runs(),
            },
            # Playbook files changed without a new version number: runs of the old and the
            # new content would both say "version 1".
            "playbook_versions_reused": self.reused_versions,
            "sweeper": {
                "interval_s": self.rt.settings.sweep_seconds,
                "errors": self.sweeper.errors if self.sweeper else 0,
                "failing": bool(self.sweeper and self.sweeper.failing),
                "units_missing_from_org": self.orphan_units,
                "tasks_without_holder": [u.as_dict() for u in self.unheld],
                # Who sweeps (this server or another process on the same database) and until
                # when, in real time: a server that is not sweeping says why here.
                "lease": self._lease(),
                "last": vars(self.sweeper.last) | {"lags": None}
                if self.sweeper and self.sweeper.last else None,
            },
        }
