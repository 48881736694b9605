"""The server's background work: the segment runner (Prefect), the deadline sweeper, the
outbox, and, once at start, finishing hazard imports a crash interrupted. Started by the
app's lifespan; none of it is on a request's path."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flows.hazard_import import resume_imports
from flows.notify import OutboxWorker
from flows.prefect_server import PrefectServer
from flows.runtime import Runtime
from flows.segments import SegmentRunner
from flows.sweeper import SweeperThread


class Workers:
    def __init__(self, rt: Runtime, *, prefect: bool = True, sweep: bool = True) -> None:
        self.rt = rt
        self.prefect_server = PrefectServer(rt.settings) if prefect else None
        self.segments = (
            SegmentRunner(rt, api_url_provider=self.prefect_server.start)
            if self.prefect_server else None
        )
        self.sweeper = SweeperThread(rt, interval=rt.settings.sweep_seconds) if sweep else None
        self.outbox = OutboxWorker(rt.db, clock=rt.clock, interval=1.0)
        self.resumer: threading.Thread | None = None

    def start(self) -> None:
        if self.segments:
            self.segments.start()
        if self.sweeper:
            self.sweeper.start()
        self.outbox.start()
        self.resumer = threading.Thread(target=self._resume_imports, name="resume-imports",
                                        daemon=True)
        self.resumer.start()

    def _resume_imports(self) -> None:
        try:
            finished = resume_imports(self.rt)
        except Exception:  # logged: the server serves on, the batch stays as it was
            logging.getLogger("closeloop.import").exception("resuming imports failed")
            return
        if finished:
            logging.getLogger("closeloop.import").info("finished %d interrupted import(s)",
                                                       finished)

    def stop(self) -> None:
        if self.sweeper:
            self.sweeper.stop()
        if self.segments:
            self.segments.stop()
        self.outbox.stop()
        if self.prefect_server:
            self.prefect_server.stop()

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
            },
            "sweeper": {
                "interval_s": self.rt.settings.sweep_seconds,
                "errors": self.sweeper.errors if self.sweeper else 0,
                "failing": bool(self.sweeper and self.sweeper.failing),
                "last": vars(self.sweeper.last) | {"lags": None}
                if self.sweeper and self.sweeper.last else None,
            },
        }
