"""Notification URLs as the API shows them: where a message went, never the secret that sends it.

An Apprise URL carries its credentials wherever the service puts them: the user and password of
json:// or mailto:// (userinfo), a Telegram bot token or a DingTalk access token as the "host"
(tgram://123456:AAE.../chat, dingtalk://token/), a webhook key in the path or the query
(?access_token=...). Whoever may read a run may read its notifications, so every API view keeps
only the scheme and a real network host (an IP address, `localhost`, or a dotted DNS name) with
its port, and replaces the rest by "…": json://duty:S3cretPass@127.0.0.1:9/hook is shown as
json://127.0.0.1:9/…, tgram://123456:AAE.../42 as tgram://…

The same applies to admins: the org chart file is where URLs are kept and edited, and an API
answer ends up in browser caches, logs and screenshots, where a secret does not belong. The
scheme, host and the delivery error are what anyone needs to tell which target failed."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from models.outbox import INBOX_URL

HIDDEN = "…"

# A DNS name: dot-separated labels of letters, digits and hyphens, a letter in the last one.
# Apprise's token-in-the-host schemes (bot tokens, webhook keys, numeric ids) have no dot.
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]"
                       r"([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
# requests' "Max retries exceeded with url: /bot<token>/sendMessage" names the path sent to.
_ERROR_URL = re.compile(r"(\burl: )\S+")
# Shorter pieces are replaced nowhere: "api", "hook" or "1" would garble the text for nothing;
# a token in a path or query is long, a password may be short.
_MIN_USERINFO = 3
_MIN_TOKEN = 8


def _network_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_DNS_NAME.match(host))


def mask_url(url: str) -> str:
    """The URL with only scheme and host[:port] kept (see the module); the inbox as is."""
    if url == INBOX_URL:
        return url
    scheme, sep, _ = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        return HIDDEN  # not a URL at all: nothing in it is safe to show
    parts = urlsplit(url)
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:  # "123456:AAE..." read as host:port is no port: a bot token
        host, port = "", None
    if not _network_host(host):
        return f"{scheme}://{HIDDEN}"
    where = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    more = parts.username or parts.password or parts.path.strip("/") or parts.query
    return f"{scheme}://{where}" + (f"/{HIDDEN}" if more else "")


def _secrets(url: str) -> list[str]:
    """The pieces of an Apprise URL that may be credentials: the user and password, and any
    token-long path segment, query value or host that is no network host."""
    parts = urlsplit(url)
    short = [parts.username or "", parts.password or ""]
    authority = parts.netloc.rpartition("@")[2]
    try:
        host = parts.hostname or ""
    except ValueError:
        host = ""
    long = [*parts.path.split("/"), *(v for _, v in parse_qsl(parts.query))]
    if not _network_host(host):
        long += [authority, *authority.split(":")]
    found = {p for piece in short for p in (piece, unquote(piece)) if len(p) >= _MIN_USERINFO}
    found |= {p for piece in long for p in (piece, unquote(piece)) if len(p) >= _MIN_TOKEN}
    return sorted(found, key=len, reverse=True)  # the longest first: no half-replaced secret


def mask_error(error: str | None, url: str) -> str | None:
    """A delivery error without the credentials of the URL it was sent to."""
    if not error or url == INBOX_URL:
        return error
    for secret in _secrets(url):
        error = error.replace(secret, HIDDEN)
    return _ERROR_URL.sub(lambda m: f"{m.group(1)}{HIDDEN}", error)
