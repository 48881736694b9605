"""`kill -HUP` on a real `closeloop serve` reads the org chart, playbooks and calendar again
(api/reloading.py): the operator at the console swaps tonight's duty shift in the roster and
the running server follows; a file with a mistake is refused in the log and nothing changes."""

from __future__ import annotations

import shutil
import signal
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from factories import DEMO_ORG

from tests.server_process import ServerProcess, wait_until

ROSTER_FROM = "    from: 2026-01-01\n"
NAMES = {"pingshan-duty-1": "黄磊", "pingshan-duty-2": "吴静", "pingshan-duty-3": "郑涛"}


def test_sighup_reloads_the_roster_and_refuses_a_broken_file(tmp_path: Path) -> None:
    org = tmp_path / "org.yaml"
    shutil.copy(DEMO_ORG, org)
    serve = ServerProcess(tmp_path / "data", env={
        "CLOSELOOP_ORG": str(org), "CLOSELOOP_PREFECT_ENABLED": "false"})
    serve.data_dir.mkdir(parents=True)
    serve.start(wait_prefect=False, timeout=120)
    try:
        token = serve.token("wang-qiang")

        def duty() -> dict[str, object]:
            [shift] = serve.get("/api/me", token)["on_duty"]
            return shift

        now = duty()
        # The shift on duty started the day before it ends (a shift is named by its first day).
        ends = datetime.fromisoformat(str(now["until"]).replace("Z", "+00:00"))
        day = (ends.astimezone(ZoneInfo("Asia/Shanghai")) - timedelta(days=1)).date()
        taker = next(p for p in NAMES if p != now["person"])
        text = org.read_text(encoding="utf-8")
        org.write_text(text.replace(ROSTER_FROM, ROSTER_FROM + f"    swaps: {{{day}: {taker}}}\n"),
                       encoding="utf-8")
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: duty()["person"] == taker, timeout=30, what="the swap in force")
        assert duty()["swapped"] is True and duty()["person_name"] == NAMES[taker]
        said = "已重新加载 / reloaded: 组织架构：值班表变更 pingshan/duty_officer"
        assert said in serve.log_tail()

        # A mistake: refused, said in the log at its line, and the swap stays as it was.
        org.write_text(org.read_text(encoding="utf-8").replace('change_at: "08:30"',
                                                               "change_at: 8:30"),
                       encoding="utf-8")
        serve.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused, nothing changed" in serve.log_tail(), timeout=30,
                   what="the refusal in the log")
        assert f"{org}:" in serve.log_tail() and "rosters[0].change_at" in serve.log_tail()
        assert duty()["person"] == taker
        # The server keeps serving, but the probe says the files on disk would not load at a
        # restart (before, only the log did), and which file, without the mistakes' details.
        assert serve.proc.poll() is None
        health = serve.get("/healthz")
        assert health["status"] == "degraded"
        assert health["reload"] | {"at": None, "at_local": None} == {
            "at": None, "at_local": None, "actor": "sighup", "refused": True,
            "error_count": 1, "files_failed": ["org.yaml"]}

        # Mended and reloaded: ok again.
        org.write_text(org.read_text(encoding="utf-8").replace("change_at: 8:30",
                                                               'change_at: "08:30"'),
                       encoding="utf-8")
        serve.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: serve.get("/healthz")["status"] == "ok", timeout=30,
                   what="the mended files reloaded")
        assert serve.get("/healthz")["reload"]["refused"] is False
    finally:
        serve.stop()
