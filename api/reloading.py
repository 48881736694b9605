"""A reload as the server does it, from an admin's request or a SIGHUP: the files read again
(flows/reload.py), then the background workers' start-up findings brought up to date."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from flows.reload import Reloaded, SetupInvalid, reload_setup
from flows.runtime import Runtime
from models.audit import SIGHUP

log = logging.getLogger("closeloop.reload")


def reload_now(rt: Runtime, workers: Any, *, actor: str) -> Reloaded:
    """reload_setup, then `workers.after_reload()` (api/workers.py) when workers run."""
    outcome = reload_setup(rt, actor=actor)
    if workers is not None:
        workers.after_reload()
    return outcome


def reload_on_sighup(rt: Runtime, get_workers: Any) -> None:
    """`kill -HUP <pid>` reloads, as daemons do: for an operator at the server's console. The
    reload runs on a thread of its own (a signal handler must return quickly) and says in the
    log what it changed or which mistakes kept it from changing anything."""
    def run() -> None:
        try:
            reload_now(rt, get_workers(), actor=SIGHUP)
        except SetupInvalid:
            pass  # flows/reload.py logged every mistake
        except Exception:
            log.exception("reload on SIGHUP failed; the server keeps what it had")

    def handler(_signum: int, _frame: object) -> None:
        threading.Thread(target=run, name="reload-sighup", daemon=True).start()

    signal.signal(signal.SIGHUP, handler)
