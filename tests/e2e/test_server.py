"""End to end, as a new user would try it: a real `closeloop serve` (SQLite, its own Prefect
server), tokens from `closeloop token`, a real json:// receiver on loopback, and a SIGKILL.

Deadlines here are seconds long and the server's real clock runs them; the restart moves the
server's clock forward (CLOSELOOP_CLOCK_OFFSET) instead of waiting."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from factories import ENGINE_PLAYBOOKS, SMALL_ORG, png_bytes
from receivers import HttpReceiver
from server_process import ServerProcess, prefect_post, wait_until


@pytest.fixture(scope="module")
def receiver() -> HttpReceiver:
    with HttpReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: HttpReceiver) -> ServerProcess:
    data = tmp_path_factory.mktemp("server")
    org = data / "org.yaml"
    org.write_text(SMALL_ORG.read_text(encoding="utf-8").replace(
        "json://127.0.0.1:9/duty", receiver.url("/duty")), encoding="utf-8")
    srv = ServerProcess(data, env={
        "CLOSELOOP_PLAYBOOKS": str(ENGINE_PLAYBOOKS), "CLOSELOOP_ORG": str(org),
        "CLOSELOOP_SWEEP_INTERVAL": "1s", "CLOSELOOP_SECRET": "e2e-secret",
    })
    srv.start()
    yield srv
    srv.stop()


def escalations(server: ServerProcess, run_id: int, token: str) -> list[tuple[int, int]]:
    run = server.get(f"/api/runs/{run_id}", token)
    return [(e["level"], e["repeat"]) for e in run["escalations"]]


def upload(server: ServerProcess, token: str) -> str:
    import urllib.request

    boundary = "closeloopboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"site.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += png_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(server.base + "/api/evidence", data=body, method="POST")
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    req.add_header("Authorization", f"Bearer {token}")
    import json

    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.loads(resp.read())["id"])


def test_run_escalates_through_apprise_and_prefect_records_it(
    server: ServerProcess, receiver: HttpReceiver
) -> None:
    commander = server.token("s1-commander")
    status, run = server.request("POST", "/api/runs", token=commander, body={
        "playbook": "e2e-escalation", "unit": "c1", "params": {"location": "一社区燃气泄漏"}})
    assert status == 201, run
    receive = next(s for s in run["steps"] if s["step"] == "receive")
    assert [(p["id"], p["name"]) for p in receive["assignees"]] == [("s1-duty", "一街道值班员")]
    assert receive["due_at"] and receive["status"] == "ready"
    run_id = run["id"]

    # Left alone: level 1 at due (2 s), then level 2 at due + 3 s, then its repeat.
    wait_until(lambda: (1, 0) in escalations(server, run_id, commander)
               and (2, 1) in escalations(server, run_id, commander),
               timeout=40, what="level 1, level 2 and a repeat")
    got = receiver.wait_for(3, timeout=30)
    titles = [m.json["title"] for m in got if m.path == "/duty"]
    assert all("督办提醒" in t for t in titles[:3])
    timeline = [e["action"] for e in server.get(f"/api/runs/{run_id}", commander)["timeline"]]
    assert timeline.count("escalate") >= 3 and "overdue" in timeline

    # Prefect shows the run's flow runs by tag, with a task run per escalation.
    health = server.get("/healthz")
    api = health["prefect"]["api_url"]
    # The server holds the sweeper's lease itself, in real time (a few minutes ahead at most).
    lease = health["sweeper"]["lease"]
    assert lease["mine"] is True, lease

    def task_names() -> list[str]:
        flows = prefect_post(api, "/flow_runs/filter",
                             {"flow_runs": {"tags": {"all_": [f"run:{run_id}"]}}})
        if not flows:
            return []
        tasks = prefect_post(api, "/task_runs/filter",
                             {"flow_runs": {"id": {"any_": [f["id"] for f in flows]}}})
        return [t["name"] for t in tasks]

    names = wait_until(lambda: [n for n in task_names() if "escalate L2" in n],
                       timeout=60, what="escalation task runs in Prefect")
    assert names
    assert any(n.startswith("receive · escalate L1") for n in task_names())
    flows = prefect_post(api, "/flow_runs/filter",
                         {"flow_runs": {"tags": {"all_": [f"run:{run_id}"]}}})
    assert {tuple(sorted(f["tags"])) for f in flows} == {
        tuple(sorted(["playbook:e2e-escalation", f"run:{run_id}", "unit:c1"]))}

    # People finish it: duty officer, then grid worker with a photo, verified by an inspector.
    duty = server.token("s1-duty")
    status, body = server.request("POST", f"/api/tasks/{receive['id']}/complete", token=duty,
                                  body={"note": "已登记"})
    assert status == 200, body
    steps = server.get(f"/api/runs/{run_id}", commander)["steps"]
    inspect = next(s for s in steps if s["step"] == "inspect")
    grid = server.token("c1-grid")
    status, body = server.request("POST", f"/api/tasks/{inspect['id']}/complete", token=grid,
                                  body={"note": "无照片"})
    assert status == 422 and body["field"] == "evidence"
    photo = upload(server, grid)
    status, body = server.request("POST", f"/api/tasks/{inspect['id']}/complete", token=grid,
                                  body={"note": "阀门已关", "evidence": [photo]})
    assert status == 200 and body["status"] == "submitted"

    # Two inspectors approve at the same moment: one success, one 409.
    results: list[int] = []
    tokens = [server.token("s1-insp1"), server.token("s1-insp2")]
    barrier = threading.Barrier(2)

    def approve(tok: str) -> None:
        barrier.wait()
        results.append(server.request("POST", f"/api/tasks/{inspect['id']}/verify", token=tok,
                                      body={"approve": True})[0])

    threads = [threading.Thread(target=approve, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409]

    wait_until(lambda: server.get(f"/api/runs/{run_id}", commander)["status"] == "completed",
               timeout=60, what="run completed (notify step executed by a segment)")
    names = wait_until(lambda: {"receive", "inspect", "report"} <= set(task_names()),
                       timeout=60, what="a task run per executed step")
    assert names


def test_sigkill_while_deadlines_pass_loses_nothing(
    server: ServerProcess, receiver: HttpReceiver
) -> None:
    commander = server.token("s1-commander")
    status, run = server.request("POST", "/api/runs", token=commander, body={
        "playbook": "e2e-escalation", "unit": "c2", "params": {"location": "二社区"}})
    assert status == 201
    run_id = run["id"]
    server.kill()  # pending steps, and their deadline passes while the server is down
    server.start(extra_env={"CLOSELOOP_CLOCK_OFFSET": "10m"})
    def fired() -> list[tuple[int, int]] | None:
        found = escalations(server, run_id, commander)
        return found if len(found) >= 2 else None

    got = wait_until(fired, timeout=30, what="missed escalations after restart")
    counts = Counter((lvl, rep) for lvl, rep in got)
    assert counts[(1, 0)] == 1 and all(n == 1 for n in counts.values())
    # Missed repeats collapse into the single late firing of level 2.
    first = escalations(server, run_id, commander)[:2]
    assert first == [(1, 0), (2, 0)]
    run = server.get(f"/api/runs/{run_id}", commander)
    assert [s["status"] for s in run["steps"]] == ["ready", "pending", "pending"]
    assert run["timeline"][0]["action"] == "run_started"


def test_validate_endpoint_returns_every_error_as_422(server: ServerProcess) -> None:
    token = server.token("d1-admin")
    bad = (Path(__file__).resolve().parent.parent / "fixtures" / "engine" / "e2e-escalation.yaml"
           ).read_text(encoding="utf-8").replace("needs: [receive]", "needs: [recieve]")
    import urllib.request

    req = urllib.request.Request(server.base + "/api/playbooks/validate",
                                 data=bad.encode(), method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/yaml")
    import json
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)
    assert exc.value.code == 422
    body = json.loads(exc.value.read())
    assert any("unknown step 'recieve'" in e["message"] for e in body["errors"])
    assert all(e["line"] > 0 for e in body["errors"])
