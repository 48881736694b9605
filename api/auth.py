"""Bearer tokens per person: `closeloop token PERSON_ID` signs one with the installation's
secret; the API checks the signature and that the person is still in the org chart."""

from __future__ import annotations

import base64
import hashlib
import hmac

from models.errors import Unauthorized
from models.org import OrgChart

PREFIX = "cl1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(person_id: str, secret: str) -> str:
    body = _b64(person_id.encode())
    sig = hmac.new(secret.encode(), f"{PREFIX}.{body}".encode(), hashlib.sha256).digest()
    return f"{PREFIX}.{body}.{_b64(sig)}"


def person_from_token(token: str, secret: str, org: OrgChart) -> str:
    try:
        prefix, body, sig = token.split(".")
        expected = hmac.new(secret.encode(), f"{prefix}.{body}".encode(), hashlib.sha256).digest()
        # compare_digest: a byte-by-byte compare would leak the signature through timing.
        if prefix != PREFIX or not hmac.compare_digest(_unb64(sig), expected):
            raise Unauthorized("令牌签名不对 / bad token signature")
        person_id = _unb64(body).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unauthorized("令牌格式不对 / malformed token") from exc
    if person_id not in org.people:
        raise Unauthorized(f"人员 {person_id} 已不在组织架构中 / person '{person_id}' is no "
                           "longer in the org chart")
    return person_id
