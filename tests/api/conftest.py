"""Fixtures every API test module shares: a TestClient on the module's `rt` (each module may
override `rt` with the playbooks it needs) that fails any response of 500 or above, and
bearer-token headers for a person of the runtime's org chart."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.auth import make_token
from api.main import create_app
from flows.runtime import Runtime

Auth = Callable[[str], dict[str, str]]


def no_server_error(response: httpx.Response) -> None:
    """A 5xx is never an answer the API may give; fail the test where it happened."""
    response.read()
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: "
        f"{response.text[:500]}"
    )


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    app = create_app(rt, background=False, prefect=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.event_hooks["response"].append(no_server_error)
        yield c


@pytest.fixture
def auth(rt: Runtime) -> Auth:
    secret = rt.settings.signing_secret()
    return lambda person: {"Authorization": f"Bearer {make_token(person, secret)}"}
