"""/healthz tells the operator the data dir's disk is running out (`disk.low`, `degraded`)
before a full disk refuses a commander's start with database_disk_full. The free space is the
real one of the test's data dir; the threshold (CLOSELOOP_MIN_FREE_DISK_MB) is set above it to
see the low side, and the default shows the healthy one."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from fastapi.testclient import TestClient

from api.main import create_app
from flows.runtime import Runtime


def health(rt: Runtime) -> dict[str, object]:
    with TestClient(create_app(rt, background=False, prefect=False)) as client:
        r = client.get("/healthz")
    assert r.status_code == 200
    return dict(r.json())


def test_room_on_the_disk_is_ok(make_rt: Callable[..., Runtime]) -> None:
    rt = make_rt()
    said = health(rt)
    disk = said["disk"]
    assert isinstance(disk, dict)
    free = shutil.disk_usage(rt.settings.data_dir).free // 2**20
    assert abs(disk["free_mib"] - free) < 64 and disk["min_free_mib"] == 500
    assert disk["low"] is False and said["status"] == "ok"
    assert str(rt.settings.data_dir) not in str(said)  # no path to an unauthenticated probe


def test_less_room_than_the_threshold_is_degraded(make_rt: Callable[..., Runtime]) -> None:
    rt = make_rt()
    above = shutil.disk_usage(rt.settings.data_dir).free // 2**20 + 1024
    rt = make_rt(settings={"min_free_disk_mb": above})
    said = health(rt)
    assert said["status"] == "degraded"
    assert said["disk"] == {"free_mib": said["disk"]["free_mib"],  # type: ignore[index]
                            "min_free_mib": above, "low": True}
