"""Tests for the throwaway PostgreSQL helper in tests/pg_server.py.

These need the PostgreSQL 15 server binaries. They deliberately fail (not skip)
when those are missing: CI installs them, and a silent skip would hide that
the PostgreSQL code path is untested.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

try:
    from pg_server import PostgresServer, PostgresUnavailable, find_pg_bin
except ModuleNotFoundError:  # tests/ became a package (tests/__init__.py added)
    from tests.pg_server import PostgresServer, PostgresUnavailable, find_pg_bin


def _engine(url: str) -> sa.Engine:
    # NullPool: no pooled connections linger to block DROP DATABASE or shutdown.
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _listening_addresses(proc_file: str, port: int) -> list[str]:
    """Hex local addresses of LISTEN sockets on ``port`` from /proc/net/tcp{,6}."""
    found = []
    for line in Path(proc_file).read_text().splitlines()[1:]:
        fields = line.split()
        address, port_hex = fields[1].rsplit(":", 1)
        if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = TCP_LISTEN
            found.append(address)
    return found


def test_find_pg_bin_locates_postgres_15() -> None:
    bin_dir = find_pg_bin()
    assert bin_dir is not None, "PostgreSQL binaries not found; install postgresql-15"
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert " 15." in out, out


def test_url_shape(pg: PostgresServer) -> None:
    assert pg.url == f"postgresql+psycopg://closeloop@127.0.0.1:{pg.port}/closeloop"


def test_version_is_postgresql_15(pg: PostgresServer) -> None:
    engine = _engine(pg.url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version()")).scalar_one()
        server_num = conn.execute(sa.text("SHOW server_version_num")).scalar_one()
    assert version.startswith("PostgreSQL 15"), version
    assert 150000 <= int(server_num) < 160000


def test_table_roundtrip(pg: PostgresServer) -> None:
    metadata = sa.MetaData()
    items = sa.Table(
        "roundtrip_items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )
    engine = _engine(pg.url)
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(items.insert(), [{"name": "alpha"}, {"name": "béta"}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(items.c.name).order_by(items.c.id)).scalars().all()
        assert rows == ["alpha", "béta"]
    finally:
        metadata.drop_all(engine)


def test_listens_on_loopback_only(pg: PostgresServer) -> None:
    with pg.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        # The TCP connection really landed on loopback.
        assert str(conn.execute("SELECT inet_server_addr()").fetchone()[0]) == "127.0.0.1"
    # Ask the kernel, not the server: exactly one IPv4 listener on 127.0.0.1
    # (0100007F little-endian) and none on IPv6.
    assert _listening_addresses("/proc/net/tcp", pg.port) == ["0100007F"]
    assert _listening_addresses("/proc/net/tcp6", pg.port) == []


def test_server_does_not_run_as_root(pg: PostgresServer) -> None:
    with pg.connect() as conn:
        backend_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        status = Path(f"/proc/{backend_pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert int(uid_line.split()[1]) != 0
    assert pg.data_dir.is_relative_to("/tmp")


def test_create_database_is_isolated(pg: PostgresServer) -> None:
    url_a = pg.create_database("iso_a")
    url_b = pg.create_database("iso_b")
    assert url_a.endswith(f":{pg.port}/iso_a")

    engine_a, engine_b, main = _engine(url_a), _engine(url_b), _engine(pg.url)
    with engine_a.begin() as conn:
        conn.execute(sa.text("CREATE TABLE only_in_a (x int)"))
        conn.execute(sa.text("INSERT INTO only_in_a VALUES (1)"))
    for other in (engine_b, main):
        assert "only_in_a" not in sa.inspect(other).get_table_names()
    with engine_a.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM only_in_a")).scalar_one() == 1

    pg.drop_database("iso_a")
    pg.drop_database("iso_b")
    with pg.connect("postgres") as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {"iso_a", "iso_b"}.isdisjoint(names)
    assert "closeloop" in names


def test_create_database_rejects_unsafe_names(pg: PostgresServer) -> None:
    for bad in ("Upper", "has-dash", "x; DROP DATABASE closeloop", "", "1abc"):
        with pytest.raises(ValueError):
            pg.create_database(bad)


def test_stop_removes_everything() -> None:
    server = PostgresServer()
    with server:
        root, port = server.root_dir, server.port
        assert root is not None and root.is_dir()
        postmaster_pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    assert not root.exists()
    assert _listening_addresses("/proc/net/tcp", port) == []
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster_pid, 0)
    server.stop()  # idempotent


def test_missing_binaries_give_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable, match="postgresql package"):
        PostgresServer(bin_dir=tmp_path)
