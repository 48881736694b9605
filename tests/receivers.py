"""Real local endpoints for notification tests: an HTTP receiver for Apprise's json:// and a
minimal SMTP server for mailto://. Both listen on 127.0.0.1 on a free port, serve from their
own threads, and record what they receive, so tests check what Apprise really sent instead of
mocking it.

    with HttpReceiver() as rx:
        send(rx.url("/hook"), "title", "body")
        [message] = rx.wait_for(1)
        assert message.json["title"] == "title"

Waiting is bounded and condition-based (no sleeps): `wait_for` returns as soon as enough
messages arrived and raises TimeoutError otherwise.
"""

from __future__ import annotations

import email
import email.policy
import json
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

# Generous enough for a loaded CI machine, short enough that a broken test fails quickly.
DEFAULT_TIMEOUT = 10.0


T = TypeVar("T")


class _Recorder(Generic[T]):
    """A list of received items and a condition to wait on; shared by both receivers."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._cond = threading.Condition()

    def add(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def snapshot(self) -> list[T]:
        with self._cond:
            return list(self._items)

    def wait_until(self, ready: Callable[[list[T]], bool], timeout: float, what: str) -> list[T]:
        with self._cond:
            if not self._cond.wait_for(lambda: ready(self._items), timeout=timeout):
                raise TimeoutError(f"{what} within {timeout}s; got {len(self._items)}")
            return list(self._items)


# --------------------------------------------------------------------------------------------
# HTTP (json://)


@dataclass(frozen=True)
class HttpRequest:
    """One request the HTTP receiver answered. Header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any  # the parsed body, or None when it was not JSON
    status: int  # what the receiver answered

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a request stuck in a test must not keep the interpreter alive
    receiver: HttpReceiver


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        rx = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        rx._hold_here()
        status = rx._next_status()
        request = HttpRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            json=parsed,
            status=status,
        )
        reply = b'{"ok": true}' if 200 <= status < 300 else b'{"ok": false}'
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except OSError:
            # The client gave up (e.g. its read timeout ran out while the request was held).
            self.close_connection = True
        finally:
            # Recorded after answering: once a test sees the request, the sender has its reply.
            rx._requests.add(request)

    do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass  # keep test output clean


class HttpReceiver:
    """A threaded HTTP server on 127.0.0.1 that records every request (see `HttpRequest`).

    `fail_next(n)` answers the next n requests with an error status; `hold()` makes requests
    wait (a slow endpoint) until `release()`; `wait_held(n)` waits until n requests are waiting.
    """

    def __init__(self) -> None:
        self._requests: _Recorder[HttpRequest] = _Recorder()
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._gate = threading.Event()
        self._gate.set()
        self._held = 0
        self._held_cond = threading.Condition()
        self._server = _HttpServer(("127.0.0.1", 0), _HttpHandler)
        self._server.receiver = self
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # lifecycle

    def _serve(self) -> None:
        # A short poll so close() (which waits for the serving loop to notice) is quick.
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._serve, name=f"http-receiver-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._gate.set()  # let held requests finish so shutdown does not hang
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=DEFAULT_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # what tests use

    def url(self, path: str = "/hook") -> str:
        """An Apprise json:// URL that POSTs to this receiver at `path`."""
        if not path.startswith("/"):
            path = "/" + path
        return f"json://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[HttpRequest]:
        """Every request so far, failed ones included, in arrival order."""
        return self._requests.snapshot()

    @property
    def messages(self) -> list[HttpRequest]:
        """The requests answered with success."""
        return [r for r in self._requests.snapshot() if r.ok]

    def fail_next(self, n: int, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * n)

    def wait_for(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[HttpRequest]:
        """The successful messages once at least `count` arrived; TimeoutError otherwise."""
        self._requests.wait_until(
            lambda items: sum(r.ok for r in items) >= count,
            timeout,
            f"expected {count} successful message(s)",
        )
        return self.messages

    def wait_for_requests(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[HttpRequest]:
        """All requests (failed ones included) once at least `count` arrived."""
        return self._requests.wait_until(
            lambda items: len(items) >= count, timeout, f"expected {count} request(s)"
        )

    def hold(self) -> None:
        """From now on, requests wait before being answered (a slow endpoint)."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def wait_held(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Block until `count` requests are waiting at the gate."""
        with self._held_cond:
            if not self._held_cond.wait_for(lambda: self._held >= count, timeout=timeout):
                raise TimeoutError(f"expected {count} held request(s) within {timeout}s")

    # handler side

    def _hold_here(self) -> None:
        if self._gate.is_set():
            return
        with self._held_cond:
            self._held += 1
            self._held_cond.notify_all()
        try:
            self._gate.wait(timeout=60)  # bounded: a forgotten release() must not hang forever
        finally:
            with self._held_cond:
                self._held -= 1

    def _next_status(self) -> int:
        with self._lock:
            return self._failures.pop(0) if self._failures else 200


# --------------------------------------------------------------------------------------------
# SMTP (mailto://)


@dataclass(frozen=True)
class SmtpMessage:
    """One message accepted (or refused, see `status`) by the SMTP receiver."""

    sender: str
    recipients: list[str]
    data: bytes  # the message as received, dot-stuffing removed
    status: int  # the reply code given after DATA
    message: EmailMessage = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.status == 250

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def text(self) -> str:
        """The plain-text body (the text/plain part if the message has several)."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""  # type: ignore[attr-defined]

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else None  # type: ignore[attr-defined]


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: SmtpReceiver


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
    No STARTTLS and no AUTH are offered, so a client configured for either fails loudly."""

    server: _SmtpServer
    timeout = DEFAULT_TIMEOUT  # a client that goes quiet does not pin a thread for ever

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        rx = self.server.receiver
        sender: str | None = None
        recipients: list[str] = []
        self._reply("220 closeloop-test ESMTP ready")
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self._reply("250-closeloop-test")
                self._reply("250-8BITMIME")
                self._reply("250 SIZE 10485760")
            elif verb == "HELO":
                self._reply("250 closeloop-test")
            elif verb == "MAIL" and arg.upper().startswith("FROM:"):
                sender = _address(arg[5:])
                recipients = []
                self._reply("250 OK")
            elif verb == "RCPT" and arg.upper().startswith("TO:"):
                if sender is None:
                    self._reply("503 MAIL first")
                    continue
                recipients.append(_address(arg[3:]))
                self._reply("250 OK")
            elif verb == "DATA":
                if sender is None or not recipients:
                    self._reply("503 need MAIL and RCPT first")
                    continue
                self._reply("354 End data with <CR><LF>.<CR><LF>")
                data = self._read_data()
                if data is None:
                    return
                status = rx._next_status()
                rx._messages.add(
                    SmtpMessage(
                        sender=sender,
                        recipients=recipients,
                        data=data,
                        status=status,
                        message=email.message_from_bytes(  # type: ignore[arg-type]
                            data, policy=email.policy.default
                        ),
                    )
                )
                self._reply("250 OK queued" if status == 250 else f"{status} try again later")
                sender, recipients = None, []
            elif verb == "RSET":
                sender, recipients = None, []
                self._reply("250 OK")
            elif verb == "NOOP":
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 Bye")
                return
            else:
                self._reply("502 command not implemented")

    def _read_data(self) -> bytes | None:
        lines: list[bytes] = []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return None
            if raw in (b".\r\n", b".\n"):
                return b"".join(lines)
            # Undo dot-stuffing (RFC 5321 4.5.2).
            lines.append(raw[1:] if raw.startswith(b"..") else raw)


def _address(arg: str) -> str:
    """'<a@b> SIZE=123' -> 'a@b'."""
    arg = arg.strip()
    if arg.startswith("<"):
        return arg[1 : arg.find(">")]
    return arg.split()[0] if arg else ""


class SmtpReceiver:
    """A minimal threaded SMTP server on 127.0.0.1 recording every message (see `SmtpMessage`).

    `fail_next(n)` refuses the next n messages after DATA with a temporary error (451)."""

    def __init__(self) -> None:
        self._messages: _Recorder[SmtpMessage] = _Recorder()
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._server = _SmtpServer(("127.0.0.1", 0), _SmtpHandler)
        self._server.receiver = self
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def _serve(self) -> None:
        # A short poll so close() (which waits for the serving loop to notice) is quick.
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._serve, name=f"smtp-receiver-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=DEFAULT_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def url(self, to: str = "duty@example.org", sender: str = "closeloop@example.org") -> str:
        """An Apprise mailto:// URL that delivers to this server in plain SMTP.

        Apprise's email plugin: the host (an IP here) is the SMTP server, `mode=insecure` turns
        off STARTTLS/SSL, `from=` gives the envelope sender (otherwise it is made of user@host),
        and no user:password means no AUTH (which this server does not offer)."""
        return (
            f"mailto://127.0.0.1:{self.port}/?to={quote(to, safe='@')}"
            f"&from={quote(sender, safe='@')}&mode=insecure"
        )

    @property
    def messages(self) -> list[SmtpMessage]:
        """Accepted messages, in arrival order."""
        return [m for m in self._messages.snapshot() if m.ok]

    @property
    def received(self) -> list[SmtpMessage]:
        """Every message that got through DATA, refused ones included."""
        return self._messages.snapshot()

    def fail_next(self, n: int, status: int = 451) -> None:
        with self._lock:
            self._failures.extend([status] * n)

    def wait_for(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[SmtpMessage]:
        """The accepted messages once at least `count` arrived; TimeoutError otherwise."""
        self._messages.wait_until(
            lambda items: sum(m.ok for m in items) >= count,
            timeout,
            f"expected {count} accepted email(s)",
        )
        return self.messages

    def _next_status(self) -> int:
        with self._lock:
            return self._failures.pop(0) if self._failures else 250
