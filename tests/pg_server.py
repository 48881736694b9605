"""Throwaway PostgreSQL server on loopback for tests and benchmarks.

Usage::

    with PostgresServer() as pg:
        engine = create_engine(pg.url)              # .../closeloop
        other = create_engine(pg.create_database("t_isolated"))

The server runs from a fresh directory under /tmp, listens on 127.0.0.1 only
(plus a unix socket inside its data directory), trusts every loopback
connection and trades durability for speed (fsync/full_page_writes off). It is
stopped with ``pg_ctl stop -m immediate`` and its directory removed on exit.

PostgreSQL refuses to run as root, and this machine and CI run as root, so
when euid == 0 the binaries run as the unprivileged system user
``closeloop-pg`` (created once on demand).

This module deliberately imports nothing from pytest so bench scripts can use
it too; run it directly (``python tests/pg_server.py``) to get a server and
its URL until Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

__all__ = [
    "PG_USER",
    "PostgresServer",
    "PostgresStartError",
    "PostgresUnavailable",
    "find_pg_bin",
]

# OS account the server runs under when we are root. A dedicated system user
# (rather than Debian's "postgres") keeps us from touching a real cluster's
# files and works on machines where the postgresql-common package is absent.
PG_USER = "closeloop-pg"

# Only loopback, ever: tests must not expose a trust-auth server to a network.
HOST = "127.0.0.1"

# The major version production targets; other versions are only a fallback.
PREFERRED_MAJOR = 15

_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


class PostgresStartError(RuntimeError):
    """The server binaries exist but the server could not be brought up."""


def _has_binaries(path: Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in _REQUIRED_BINARIES)


def find_pg_bin() -> Path | None:
    """Directory holding initdb/pg_ctl/postgres, or None if not installed.

    Order: $CLOSELOOP_PG_BIN (explicit override), Debian's versioned directory
    for PostgreSQL 15, any other Debian version (newest first), then PATH.
    """
    candidates: list[Path] = []
    override = os.environ.get("CLOSELOOP_PG_BIN")
    if override:
        candidates.append(Path(override))
    candidates.append(Path(f"/usr/lib/postgresql/{PREFERRED_MAJOR}/bin"))

    def major(path: Path) -> int:
        try:
            return int(path.parent.name)
        except ValueError:
            return -1

    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True))
    on_path = shutil.which("pg_ctl")
    if on_path:
        # /usr/local/bin may hold symlinks; resolve to the real bin directory so
        # initdb finds its sibling "postgres" with the same version.
        candidates.append(Path(on_path).resolve().parent)
    for candidate in candidates:
        if _has_binaries(candidate):
            return candidate
    return None


def _free_port() -> int:
    # Bind port 0 to let the kernel pick. There is a small race until postgres
    # binds it; start() retries on "address in use" to cover it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry for ``name``, creating a system user if needed."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Re-check rather than trusting the exit code: a parallel test worker
        # may have created the user between our lookup and useradd (exit 9).
        return pwd.getpwnam(name)
    except KeyError:
        raise PostgresStartError(
            f"could not create system user {name!r} to run PostgreSQL as non-root "
            f"(useradd exit {result.returncode}): {result.stderr.strip()}"
        ) from None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


class PostgresServer:
    """A private PostgreSQL cluster for the lifetime of a ``with`` block.

    Attributes available once started: ``url`` (SQLAlchemy URL of the
    ``closeloop`` database), ``host``, ``port``, ``user``, ``data_dir``,
    ``log_path``, ``bin_dir``.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | str | None = None,
        user: str = "closeloop",
        dbname: str = "closeloop",
        start_timeout: float = 30.0,
        base_dir: Path | str | None = None,
        durable: bool = False,
    ) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir is not None else find_pg_bin()
        if self.bin_dir is None or not _has_binaries(self.bin_dir):
            where = self.bin_dir or "/usr/lib/postgresql/*/bin, $CLOSELOOP_PG_BIN or PATH"
            raise PostgresUnavailable(
                f"PostgreSQL server binaries ({', '.join(_REQUIRED_BINARIES)}) not found in "
                f"{where}. Install Debian's postgresql package "
                f"(apt-get install postgresql-{PREFERRED_MAJOR}) or point "
                "$CLOSELOOP_PG_BIN at the directory holding them."
            )
        # A benchmark that reports figures for production asks for PostgreSQL's own durability
        # (fsync, synchronous commit, full-page writes); tests throw the cluster away.
        self.durable = durable
        self.user = user  # database superuser name, not the OS account
        self.dbname = dbname
        self.host = HOST
        self.port = 0
        self.start_timeout = start_timeout
        # Under /tmp (not $TMPDIR) because the unprivileged user must be able
        # to traverse every parent, and unix socket paths are limited to ~107
        # bytes, which a long $TMPDIR could exceed.
        if base_dir is not None:
            self._parent_dir = Path(base_dir)
        else:
            self._parent_dir = (
                Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
            )
        self.root_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._os_user: pwd.struct_passwd | None = None

    # -- paths -----------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        if self.root_dir is None:
            raise RuntimeError("server not started")
        return self.root_dir / "data"

    @property
    def log_path(self) -> Path:
        if self.root_dir is None:
            raise RuntimeError("server not started")
        return self.root_dir / "server.log"

    # -- URLs ------------------------------------------------------------------

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) for a database on this server."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def connect(self, dbname: str | None = None, *, autocommit: bool = True) -> psycopg.Connection:
        """Raw psycopg connection, handy for admin statements in tests."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname or self.dbname,
            autocommit=autocommit,
            connect_timeout=5,
        )

    # -- database management ---------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL.

        Names are restricted to lowercase identifiers so URLs need no quoting.
        """
        if not _DB_NAME_RE.match(name):
            raise ValueError(f"database name must match {_DB_NAME_RE.pattern}: {name!r}")
        with self.connect("postgres") as conn:
            # template0 has no user objects, so every database starts truly empty
            # even if a test accidentally created tables in template1.
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                    sql.Identifier(name)
                )
            )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting any leftover sessions (PG 13+)."""
        with self.connect("postgres") as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- process control -------------------------------------------------------

    def _wrap(self, cmd: list[str]) -> list[str]:
        """Prefix ``cmd`` so it runs as the unprivileged user when we are root."""
        prefix: list[str] = []
        setpriv = shutil.which("setpriv")
        if setpriv:
            prefix = [setpriv]
            if self._os_user is not None:
                prefix += [
                    f"--reuid={self._os_user.pw_uid}",
                    f"--regid={self._os_user.pw_gid}",
                    "--clear-groups",
                ]
            # If the test process dies without cleanup (SIGKILL, crash), SIGQUIT
            # the server (immediate shutdown) instead of leaking it. The signal
            # fires when the *thread* that forked exits, so only use it from the
            # main thread, which lives as long as the process.
            if threading.current_thread() is threading.main_thread():
                prefix.append("--pdeathsig=SIGQUIT")
            prefix.append("--")
        elif self._os_user is not None:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresStartError("running as root but neither setpriv nor runuser found")
            prefix = [runuser, "-u", self._os_user.pw_name, "--"]
        return prefix + cmd

    def _run(self, cmd: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._wrap(cmd),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            # cwd must be readable by the unprivileged user (/root is not).
            cwd=self.root_dir,
            env=self._env(),
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        # A stray PGDATA/PGPORT/PGHOST from the developer's shell must not
        # redirect initdb or pg_ctl to a real cluster.
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        return env

    def start(self) -> PostgresServer:
        if self._proc is not None:
            raise RuntimeError("server already started")
        if os.geteuid() == 0:
            self._os_user = _ensure_system_user(PG_USER)
        self.root_dir = Path(tempfile.mkdtemp(prefix="closeloop-pg-", dir=self._parent_dir))
        try:
            if self._os_user is not None:
                # mkdtemp makes 0700 root-owned dirs; hand ours to the server user.
                os.chown(self.root_dir, self._os_user.pw_uid, self._os_user.pw_gid)
            self._initdb()
            # A port picked by _free_port can be grabbed by someone else before
            # postgres binds it; a couple of retries make that race irrelevant.
            for attempt in range(3):
                self.port = _free_port()
                try:
                    self._launch()
                    break
                except PostgresStartError:
                    log = _tail(self.log_path)
                    if attempt < 2 and "could not bind" in log:
                        continue
                    raise
            with self.connect("postgres") as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def _initdb(self) -> None:
        assert self.bin_dir is not None
        result = self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                # Skip fsyncing the new cluster: it is thrown away anyway.
                "--no-sync",
            ]
        )
        if result.returncode != 0:
            raise PostgresStartError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        # initdb --auth=trust also trusts ::1; allow exactly the socket and
        # 127.0.0.1 so nothing else can be reached even if misconfigured.
        # Writing into the existing file keeps its ownership by the server user.
        (self.data_dir / "pg_hba.conf").write_text(
            "# generated by tests/pg_server.py\n"
            "local all all trust\n"
            "host  all all 127.0.0.1/32 trust\n"
        )

    def _launch(self) -> None:
        assert self.bin_dir is not None
        # Settings go on the command line (not postgresql.conf) so a port retry
        # is just a relaunch with a different -p.
        cmd = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"unix_socket_directories={self.data_dir}",
        ]
        if not self.durable:
            # Durability is pointless for a throwaway cluster and costs seconds.
            for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                cmd += ["-c", setting]
        with open(self.log_path, "ab") as log:
            # Run postgres directly (not "pg_ctl start") so we hold its process
            # handle and notice at once if it dies during startup. A new session
            # keeps a terminal Ctrl-C from killing it before stop() runs.
            self._proc = subprocess.Popen(
                self._wrap(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root_dir,
                env=self._env(),
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise PostgresStartError(
                    f"postgres exited with code {code} during startup; "
                    f"server log tail:\n{_tail(self.log_path)}"
                )
            try:
                with self.connect("postgres"):
                    return
            except psycopg.OperationalError as exc:
                last_error = exc
            time.sleep(0.05)
        raise PostgresStartError(
            f"postgres did not accept connections on {self.host}:{self.port} within "
            f"{self.start_timeout:.0f}s (last error: {last_error}); "
            f"server log tail:\n{_tail(self.log_path)}"
        )

    def pause(self) -> None:
        """Stop the server (fast mode) keeping its data: what an operator's restart, or the
        database host going away, looks like to closeloop. `resume()` starts it again."""
        assert self.bin_dir is not None and self._proc is not None
        self._run([str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir),
                   "-m", "fast", "-w", "-t", "15"], timeout=30)
        self._proc.wait(timeout=15)
        self._proc = None

    def resume(self) -> None:
        """Start the paused server again on the same port, with the same data."""
        self._launch()

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its directory. Idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None and self.bin_dir is not None:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    self._run(
                        [
                            str(self.bin_dir / "pg_ctl"),
                            "stop",
                            "-D",
                            str(self.data_dir),
                            "-m",
                            "immediate",
                            "-w",
                            "-t",
                            "15",
                        ],
                        timeout=30,
                    )
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                # pg_ctl failed (e.g. missing postmaster.pid): last resort.
                proc.kill()
                proc.wait(timeout=15)
        if self.root_dir is not None:
            shutil.rmtree(self.root_dir, ignore_errors=True)
            self.root_dir = None

    # -- context manager -------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._proc is not None else "stopped"
        return f"<PostgresServer {state} {self.host}:{self.port} bin={self.bin_dir}>"


if __name__ == "__main__":
    # Manual/bench use: keep a server up and print how to reach it.
    started = time.monotonic()
    with PostgresServer() as server:
        print(f"started in {time.monotonic() - started:.2f}s")
        print(server.url)
        print(f"log: {server.log_path}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()  # until Ctrl-C
