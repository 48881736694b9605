"""Fixtures shared by the gas-leak tests that check what Apprise really posts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from receivers import HttpReceiver

from flows.runtime import Runtime
from models.clock import ManualClock


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as rx:
        yield rx


@pytest.fixture
def wired(tmp_path: Path, clock: ManualClock, receiver: HttpReceiver) -> Iterator[Runtime]:
    """The demo district with its duty-office channels (and leaders' own URLs) pointed at a
    local receiver instead of the app's loopback one: what Apprise really posts is checked."""
    org = DEMO_ORG.read_text(encoding="utf-8").replace(
        "json://127.0.0.1:8000/api/receiver", receiver.url("/api/receiver"))
    assert receiver.url("/api/receiver/county-duty") in org
    rt = make_runtime(tmp_path / "wired", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_text=org)
    assert rt.catalog.errors == []
    yield rt
    rt.db.dispose()
