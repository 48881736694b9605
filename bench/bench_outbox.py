"""The outbox while one receiver hangs: how long everybody else's notifications wait.

A county duty office's webhook that accepts connections and never answers holds each delivery
to it for the read timeout. `--hung` notifications for it are queued first; then `--healthy`
notifications spread over `--receivers` local HTTP receivers that answer at once. An
OutboxWorker (the one `closeloop serve` runs, real Apprise, SQLite, system clock) starts, and
the figure is the time until every healthy notification is delivered, with the worker's lanes
(LANES receivers at once) and, as the baseline in the same process, with one lane (one
delivery at a time, as the outbox sent before lanes).

Target (set with the lanes; no issue names one): with one receiver hanging, the healthy
receivers' notifications are all delivered within 5 s, and at least 5x sooner than one at a
time.

    ./dev bench bench_outbox
    ./dev bench bench_outbox --hung 5 --healthy 500 --rto 2
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import common
from common import print_table
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from flows.notify import LANES, OutboxWorker  # noqa: E402
from models.clock import SystemClock  # noqa: E402
from models.db import create_schema, make_engine, read_session, session_scope  # noqa: E402
from models.outbox import DELIVERED, PENDING, Notification  # noqa: E402

TARGET_S = 5.0
TARGET_RATIO = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hung", type=int, default=10,
                        help="notifications queued first for the receiver that hangs")
    parser.add_argument("--healthy", type=int, default=200,
                        help="notifications for the receivers that answer")
    parser.add_argument("--receivers", type=int, default=5, help="receivers that answer")
    parser.add_argument("--rto", type=float, default=2.0,
                        help="read timeout of the hung receiver's URL (s); the outbox's own "
                             "default is 15 s")
    return parser.parse_args(argv)


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextmanager
def receivers(count: int) -> Iterator[tuple[str, list[str]]]:
    """(URL of a receiver that accepts and never answers, URLs of receivers that answer)."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(256)  # connections complete in the kernel and are never read
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(count)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield (f"json://127.0.0.1:{hung.getsockname()[1]}/hook",
               [f"json://127.0.0.1:{s.server_address[1]}/hook" for s in servers])
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        hung.close()


def run(tmp: Path, lanes: int, args: argparse.Namespace, hung_url: str,
        healthy_urls: list[str]) -> dict[str, float]:
    engine = make_engine(f"sqlite:///{tmp / f'outbox-{lanes}.db'}")
    create_schema(engine)
    clock = SystemClock()
    now = clock.now()
    urls = [f"{hung_url}?rto={args.rto:g}"] * args.hung + [
        healthy_urls[i % len(healthy_urls)] for i in range(args.healthy)]
    with session_scope(engine) as session:
        for i, url in enumerate(urls):
            session.add(Notification(
                dedupe_key=f"bench|{i}", message_id=f"closeloop-bench-{uuid.uuid4().hex}",
                kind="notify", recipient_kind="channel", recipient="duty", url=url,
                title="燃气泄漏首报", body="请于 **30 分钟内** 到场。", status=PENDING,
                created_at=now, next_attempt_at=now))
    worker = OutboxWorker(engine, clock=clock, interval=0.2, lanes=lanes)
    started = time.monotonic()
    worker.start()
    try:
        deadline = started + 600
        while _delivered(engine) < args.healthy and time.monotonic() < deadline:
            time.sleep(0.02)
        all_healthy_s = time.monotonic() - started
    finally:
        worker.stop(timeout=args.rto + 10)
        engine.dispose()
    return {"all_healthy_s": all_healthy_s}


def _delivered(engine: Engine) -> int:
    with read_session(engine) as session:
        return session.exec(select(func.count()).select_from(Notification)
                            .where(Notification.status == DELIVERED)).one()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"bench_outbox: {args.healthy} notifications for {args.receivers} receivers behind "
          f"{args.hung} for one that hangs (read timeout {args.rto:g} s); {LANES} lanes vs 1")
    with common.temp_dir("outbox") as tmp, receivers(args.receivers) as (hung, healthy):
        lanes = run(tmp, LANES, args, hung, healthy)
        one = run(tmp, 1, args, hung, healthy)
    ratio = one["all_healthy_s"] / lanes["all_healthy_s"]
    ok = lanes["all_healthy_s"] <= TARGET_S and ratio >= TARGET_RATIO
    print_table(
        "summary",
        ["figure", "value", "target", "verdict"],
        [[f"all {args.healthy} healthy delivered, {LANES} lanes (s)", lanes["all_healthy_s"],
          f"<= {TARGET_S:g}", common.verdict(lanes["all_healthy_s"] <= TARGET_S)],
         ["the same, one at a time (s)", one["all_healthy_s"], "-", "-"],
         ["one at a time / lanes", ratio, f">= {TARGET_RATIO:g}",
          common.verdict(ratio >= TARGET_RATIO)]],
    )
    common.emit_result("bench_outbox", hung=args.hung, healthy=args.healthy,
                       receivers=args.receivers, rto_s=args.rto, lanes=LANES,
                       all_healthy_s=lanes["all_healthy_s"],
                       baseline_all_healthy_s=one["all_healthy_s"], ratio=ratio,
                       target_s=TARGET_S, target_ratio=TARGET_RATIO, ok=ok)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
