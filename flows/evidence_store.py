"""Where evidence bytes live: a directory (evidence/ in the data dir, or a mounted share given
as CLOSELOOP_EVIDENCE_URL=file:///dir) or an object store spoken to with plain HTTP PUT, GET
and HEAD (CLOSELOOP_EVIDENCE_URL=http(s)://...). Keys are content addresses, `<sha[:2]>/<sha>`,
so one photo is one object however often it is uploaded; a put of a key already present checks
the stored bytes against the key and rewrites them only when they differ (a file damaged on disk
is repaired by uploading the genuine one again). Failures to reach a store raise
StoreUnavailable; an object that is gone raises ObjectMissing. The hash check against the
database is the caller's (flows/evidence.py)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

from models.errors import StoreUnavailable
from models.settings import Settings, check_evidence_url

log = logging.getLogger("closeloop.evidence")

KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{64}")
TIMEOUT = 30.0  # seconds per request: an upload waits at most this long for a stuck store


class ObjectMissing(Exception):
    """The store answered, and holds nothing under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def content_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


def _holds(key: str, data: bytes) -> bool:
    """Whether `data` is what `key` (a content address) names."""
    return hashlib.sha256(data).hexdigest() == key.rsplit("/", 1)[-1]


def _checked(key: str) -> str:
    # Keys also come back from stored paths in the database: never let one climb out of the
    # store's directory or prefix.
    if not KEY.fullmatch(key):
        raise ValueError(f"not an evidence key: {key!r}")
    return key


class EvidenceStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store `data` (whose SHA-256 `key` names) under `key`. A key already there is left
        alone when its bytes still hash to it, and rewritten with `data` when they do not."""

    def get(self, key: str) -> bytes:
        """The bytes under `key`; ObjectMissing when there are none."""

    def exists(self, key: str) -> bool: ...

    def location(self, key: str) -> str:
        """Where `key` is kept, as Evidence.stored_path records it (no credentials)."""

    def key_at(self, location: str) -> str | None:
        """The key of a stored path this store wrote, or None if it is not this store's."""


class DirectoryStore:
    """Files under `root`, written to a temporary name and renamed into place, so a crash never
    leaves half a photo under its hash."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.is_file():
            try:
                if _holds(key, path.read_bytes()):
                    return
            except OSError as exc:
                raise StoreUnavailable(f"cannot read {path}: {exc.strerror or exc}") from exc
            log.warning("evidence file %s does not match its hash; rewriting it with the "
                        "uploaded bytes", path)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:  # disk full, read-only or unmounted share
            with contextlib.suppress(OSError):  # the cleanup may fail for the same reason
                tmp.unlink(missing_ok=True)
            raise StoreUnavailable(f"cannot write {path}: {exc.strerror or exc}") from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if not self.root.is_dir():  # the share is not mounted: not the photo's fault
                raise StoreUnavailable(f"directory {self.root} is missing") from None
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc.strerror or exc}") from exc

    def location(self, key: str) -> str:
        return str(self._path(key))

    def key_at(self, location: str) -> str | None:
        path = Path(location)
        key = f"{path.parent.name}/{path.name}"
        return key if KEY.fullmatch(key) and self.location(key) == location else None


class HttpStore:
    """Objects at `<base URL><key>`. Credentials in the URL's userinfo go as HTTP Basic, a
    token as Bearer; both only to this store: urllib does not carry unredirected headers
    across a redirect (a presigning gateway may answer a GET with 307 to a signed URL)."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = TIMEOUT) -> None:
        check_evidence_url(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self.base = urlunsplit((parts.scheme.lower(), netloc, path, "", ""))
        self.timeout = timeout
        self._authorization: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        elif token:
            self._authorization = f"Bearer {token}"

    def _url(self, key: str) -> str:
        return self.base + quote(_checked(key))

    def _send(self, method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
        """Status and body of one request; StoreUnavailable when no answer comes."""
        request = urllib.request.Request(url, data=data, method=method)
        if self._authorization:
            request.add_unredirected_header("Authorization", self._authorization)
        if data is not None:
            request.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:  # an answer, just not a 2xx one
            with exc:
                return exc.code, b""
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise StoreUnavailable(f"{method} {url}: {why or type(exc).__name__}") from exc

    def exists(self, key: str) -> bool:
        url = self._url(key)
        status, _ = self._send("HEAD", url)
        if status == 404:
            return False
        if 200 <= status < 300:
            return True
        raise StoreUnavailable(f"HEAD {url} answered {status}")

    def put(self, key: str, data: bytes) -> None:
        url = self._url(key)
        if self.exists(key):
            status, stored = self._send("GET", url)
            if 200 <= status < 300 and _holds(key, stored):
                return
            if status != 404 and not 200 <= status < 300:
                raise StoreUnavailable(f"GET {url} answered {status}")
            log.warning("evidence object %s does not match its hash; rewriting it with the "
                        "uploaded bytes", url)
        status, _ = self._send("PUT", url, data)
        if status == 409:
            # WebDAV (Apache mod_dav) wants the `<sha[:2]>/` collection made first.
            folder = url.rsplit("/", 1)[0] + "/"
            made, _ = self._send("MKCOL", folder)
            if not (200 <= made < 300 or made == 405):  # 405: it exists already
                raise StoreUnavailable(f"MKCOL {folder} answered {made}")
            status, _ = self._send("PUT", url, data)
        if not 200 <= status < 300:
            raise StoreUnavailable(f"PUT {url} answered {status}")

    def get(self, key: str) -> bytes:
        url = self._url(key)
        status, body = self._send("GET", url)
        if status == 404:
            raise ObjectMissing(key)
        if not 200 <= status < 300:
            raise StoreUnavailable(f"GET {url} answered {status}")
        return body

    def location(self, key: str) -> str:
        return self._url(key)

    def key_at(self, location: str) -> str | None:
        if not location.startswith(self.base):
            return None
        key = location[len(self.base):]
        return key if KEY.fullmatch(key) else None


def open_store(settings: Settings) -> EvidenceStore:
    """The store CLOSELOOP_EVIDENCE_URL names; evidence/ in the data dir when it is unset."""
    if not settings.evidence_url:
        return DirectoryStore(settings.data_dir / "evidence")
    check_evidence_url(settings.evidence_url)  # settings built without validation, too
    parts = urlsplit(settings.evidence_url)
    if parts.scheme.lower() == "file":
        return DirectoryStore(Path(url2pathname(parts.path)))
    return HttpStore(settings.evidence_url, token=settings.evidence_token)


def read_at(location: str, store: EvidenceStore) -> bytes:
    """The bytes at `location`, an Evidence.stored_path: through `store` when it wrote them
    (with its credentials), straight from disk for a local path (rows stored before the store
    was configured, or in another directory), and never from a URL outside the configured
    store, whose credentials it would not have and which nobody asked us to trust.

    A local path gone from disk is looked up in `store` by its content address: the data dir
    was moved or restored from a backup (flows/backup.py), and the rows still name the old
    folder. Safe, because the caller checks the bytes against the recorded SHA-256."""
    if (key := store.key_at(location)) is not None:
        return store.get(key)
    if urlsplit(location).scheme.lower() in ("http", "https"):
        raise StoreUnavailable(f"{location} is outside the configured evidence store "
                               "(CLOSELOOP_EVIDENCE_URL)")
    path = Path(location)
    key = f"{path.parent.name}/{path.name}"
    if not KEY.fullmatch(key):
        raise ObjectMissing(location)  # not a path this code ever records
    if not path.is_file() and isinstance(store, DirectoryStore) and store.exists(key):
        return store.get(key)
    return DirectoryStore(path.parent.parent).get(key)
