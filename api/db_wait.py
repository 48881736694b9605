"""`closeloop serve` waiting for a database server that is not up yet.

After a power cut the bureau's machines come back in no particular order: closeloop may start
before PostgreSQL accepts connections. Exiting then leaves the duty room without the service
until someone notices; `serve` waits instead, saying so, and starts as soon as the database
answers. Only a server that cannot be reached is waited for: a wrong password, a database that
does not exist or a bad URL exits at once, naming CLOSELOOP_DATABASE_URL, since waiting would
not mend them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

T = TypeVar("T")

# What libpq says when no server answers (yet): connection refused or timed out, a server
# starting up or shutting down, no route to it. Anything else is not mended by waiting.
_NOT_UP = ("connection refused", "timeout expired", "timed out", "is starting up",
           "is shutting down", "no route to host", "network is unreachable",
           "server closed the connection unexpectedly", "temporary failure in name resolution")


def server_not_up(exc: OperationalError, drivername: str) -> bool:
    """Whether a failed connection means a PostgreSQL server not (yet) answering."""
    if not drivername.startswith("postgresql"):
        return False  # SQLite: a file that cannot be opened is not mended by waiting
    text = str(exc.orig or exc).lower()
    return any(marker in text for marker in _NOT_UP)


class DatabaseNotUp(Exception):
    """The database server cannot be reached yet; `first` is the first line of why."""

    def __init__(self, first: str) -> None:
        super().__init__(first)
        self.first = first


def once_reachable(build: Callable[[], T], *, wait_s: float, say: Callable[[str], None],
                   sleep: Callable[[float], None] = time.sleep,
                   monotonic: Callable[[], float] = time.monotonic) -> T:
    """`build()` once the database answers: retried while it raises DatabaseNotUp, 1 s apart
    at first and at most 15 s, for up to `wait_s` seconds; then DatabaseNotUp goes up."""
    deadline = monotonic() + wait_s
    delay = 1.0
    tries = 0
    while True:
        try:
            return build()
        except DatabaseNotUp as exc:
            tries += 1
            left = deadline - monotonic()
            if left <= 0:
                raise
            pause = min(delay, left)
            say(f"数据库暂不可达，{pause:.0f} 秒后重试（第 {tries} 次；最多再等 {left:.0f} 秒）/ "
                f"database not reachable yet, retrying in {pause:.0f} s: {exc.first}")
            sleep(pause)
            delay = min(delay * 2, 15.0)
