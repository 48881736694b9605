"""A real object store for evidence tests: a threaded HTTP server on 127.0.0.1 that keeps PUT
bodies in a dict and answers GET and HEAD with 200 or 404, as WebDAV, nginx dav or a bucket
with a permissive policy do. It records every request, can require HTTP Basic or a Bearer
token, can be told to fail a method (`failing["PUT"] = 507`) or to hang, can insist on WebDAV
collections (MKCOL before PUT), and can redirect GETs elsewhere.

    with ObjectServer(user="cl", password="pw") as store:
        url = store.url("cl:pw")          # http://cl:pw@127.0.0.1:PORT/bucket/evidence/
        ...
        assert [r.method for r in store.requests] == ["HEAD", "PUT"]
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

PREFIX = "/bucket/evidence/"


@dataclass(frozen=True)
class ObjectRequest:
    """One request the server answered. Header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung request must not keep the interpreter alive
    store: ObjectServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes = b"", location: str | None = None) -> None:
        store = self.server.store
        store._log(ObjectRequest(self.command, self.path,
                                 {k.lower(): v for k, v in self.headers.items()}, status))
        try:
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client gave up (its timeout ran out)

    def _handle(self) -> None:
        store = self.server.store
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        store._hang_here()
        status = store.failing.get(self.command)
        if status:
            return self._answer(status)
        if store.expected_authorization and (
                self.headers.get("Authorization") != store.expected_authorization):
            return self._answer(401)
        path = self.path
        if self.command == "GET" and store.redirect_gets_to:
            return self._answer(307, location=store.redirect_gets_to + path)
        if self.command == "PUT":
            folder = path.rsplit("/", 1)[0] + "/"
            if store.require_collections and folder not in store.collections:
                return self._answer(409)
            store.objects[path] = body
            return self._answer(201)
        if self.command == "MKCOL":
            if path in store.collections:
                return self._answer(405)
            store.collections.add(path)
            return self._answer(201)
        if path in store.objects:
            return self._answer(200, store.objects[path])
        return self._answer(404)

    do_GET = do_HEAD = do_PUT = do_MKCOL = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass  # keep test output clean


class ObjectServer:
    """Objects by request path in `objects`; every request in `requests`."""

    def __init__(self, *, user: str | None = None, password: str | None = None,
                 token: str | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.collections: set[str] = {PREFIX}
        self.require_collections = False
        self.redirect_gets_to: str | None = None  # like http://127.0.0.1:PORT
        self.expected_authorization: str | None = None
        if user is not None:
            pair = f"{user}:{password or ''}".encode()
            self.expected_authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        elif token is not None:
            self.expected_authorization = f"Bearer {token}"
        self.failing: dict[str, int] = {}  # method -> status to answer it with, e.g. PUT: 507
        self._requests: list[ObjectRequest] = []
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.store = self
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # what the handler uses

    def _log(self, request: ObjectRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _hang_here(self) -> None:
        self._gate.wait(timeout=30)

    # lifecycle

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"object-server-{self.port}")
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering (a store that went down); closing twice is harmless."""
        if self._thread is None:
            return
        self._gate.set()  # let hung requests finish so shutdown does not wait on them
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # what tests use

    def url(self, userinfo: str = "") -> str:
        """The store's base URL, with `user:pass` in it when given."""
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}{PREFIX}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[ObjectRequest]:
        with self._lock:
            return list(self._requests)

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    def hang(self) -> None:
        """Hold every request until `release()` (a stuck store)."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()
