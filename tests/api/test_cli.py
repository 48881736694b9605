"""The `closeloop` command (SPEC §5), run as a real subprocess (`python -m api.cli`) from the
repository with a fresh data dir: validate, token, start and sweep on the shipped playbooks and
the demo district."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from factories import REPO, TESTS
from fastapi.testclient import TestClient
from sqlmodel import select

from api.main import create_app
from flows.runtime import Runtime, build_runtime
from models.clock import ManualClock
from models.db import read_session
from models.run import Run
from models.settings import Settings
from models.task import StepInstance

FOUR_ERRORS = TESTS / "fixtures" / "playbooks" / "four-errors.yaml"


def closeloop(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("CLOSELOOP_", "PREFECT_"))}
    clean |= {"CLOSELOOP_DATA_DIR": str(data_dir), "PYTHONIOENCODING": "utf-8", **env}
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=REPO, env=clean,
                          capture_output=True, text=True, timeout=180)


def runtime_on(data_dir: Path) -> Runtime:
    """What `closeloop serve` would build from the same data dir (same secret, same database)."""
    settings = Settings(data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]
    return build_runtime(settings, clock=ManualClock(datetime.now(UTC)))


# --- validate --------------------------------------------------------------------------------

def test_validate_shipped_playbooks_exits_0(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "validate", "playbooks/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok")


def test_validate_shipped_playbook_and_module_files_one_by_one_exits_0(tmp_path: Path) -> None:
    files = [str(p.relative_to(REPO)) for p in sorted((REPO / "playbooks").glob("*.yaml"))]
    files += [str(p.relative_to(REPO))
              for p in sorted((REPO / "playbooks" / "modules").glob("*.yaml"))]
    assert "playbooks/gas-leak.yaml" in files
    done = closeloop(tmp_path, "validate", *files)
    assert done.returncode == 0, done.stdout + done.stderr


def _where(text: list[str], needle: str, after: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the first `needle` at or after line `after` (1-based)."""
    for i, line in enumerate(text[after:], start=after):
        if needle in line:
            return i + 1, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in the file")


def test_validate_prints_every_error_as_file_line_col_and_exits_1(tmp_path: Path) -> None:
    rel = str(FOUR_ERRORS.relative_to(REPO))
    lines = FOUR_ERRORS.read_text(encoding="utf-8").splitlines()
    done = closeloop(tmp_path, "validate", rel)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert len(out) == 4, done.stdout
    assert all(line.startswith(f"{rel}:") for line in out), done.stdout

    def line_with(fragment: str) -> str:
        found = [line for line in out if fragment in line]
        assert len(found) == 1, (fragment, done.stdout)
        return found[0]

    needs_at = _where(lines, "verfy")
    assert line_with("unknown step 'verfy'").startswith(f"{rel}:{needs_at[0]}:{needs_at[1]}: ")
    # the cycle assess -> decide -> assess is reported at one of its two `needs`
    cycle = line_with("cycle")
    assess_needs = _where(lines, "decide", after=_where(lines, "id: assess")[0])
    decide_needs = _where(lines, "assess", after=_where(lines, "id: decide")[0])
    assert any(cycle.startswith(f"{rel}:{ln}:{col}: ") for ln, col in (assess_needs,
                                                                      decide_needs)), cycle
    assert "assess" in cycle and "decide" in cycle
    due_at = _where(lines, "5 minutes")
    assert line_with("5 minutes").startswith(f"{rel}:{due_at[0]}:{due_at[1]}: ")
    role_at = _where(lines, "dutyofficer")
    role = line_with("unknown role 'dutyofficer'")
    assert role.startswith(f"{rel}:{role_at[0]}:{role_at[1]}: ")
    assert "duty_officer" in role  # the near miss is suggested


def test_validate_a_mix_reports_only_the_broken_file(tmp_path: Path) -> None:
    rel = str(FOUR_ERRORS.relative_to(REPO))
    done = closeloop(tmp_path, "validate", "playbooks/", rel)
    assert done.returncode == 1
    assert done.stdout.strip() and all(line.startswith(f"{rel}:")
                                       for line in done.stdout.splitlines())


def test_validate_checks_an_org_chart_as_an_org_chart(tmp_path: Path) -> None:
    # The shipped demo district is valid; it is not a playbook missing its id and steps.
    done = closeloop(tmp_path, "validate", "playbooks/org/demo-district.yaml", "playbooks/")
    assert done.returncode == 0, done.stdout
    broken = tmp_path / "org.yaml"
    broken.write_text((REPO / "playbooks/org/demo-district.yaml").read_text(encoding="utf-8")
                      .replace("type: district", "type: District"), encoding="utf-8")
    done = closeloop(tmp_path, "validate", str(broken))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{broken}:35:11: units[0].type: 单位类型 'District' 只能由小写字母、数字、- 或 _ 组成 / "
        "unit type 'District' must be a slug"]


def test_validate_warns_of_a_role_spelt_like_one_the_playbooks_use(tmp_path: Path) -> None:
    # The chart loads, but the inspector given `inspecter` would never receive a task.
    chart = tmp_path / "org.yaml"
    text = (REPO / "playbooks/org/demo-district.yaml").read_text(encoding="utf-8")
    chart.write_text(text.replace("roles: [inspector], notify: []}",
                                  "roles: [inspecter], notify: []}", 1), encoding="utf-8")
    line = next(i for i, row in enumerate(chart.read_text(encoding="utf-8").splitlines(), 1)
                if "[inspecter]" in row)
    done = closeloop(tmp_path, "validate", str(chart))
    assert done.returncode == 0, done.stdout
    warning, ok = done.stdout.splitlines()
    assert warning.startswith(f"{chart}:{line}:")
    assert "警告：角色 inspecter 没有流程使用，疑为 inspector 之误" in warning
    assert ok.startswith("ok: ")


def test_validate_warns_of_a_unit_type_spelt_like_one_the_playbooks_use(tmp_path: Path) -> None:
    # 马峦街道 written `type: stret` loads, and then typhoon-633's units(type='street') passes
    # it over: no street measures, nobody told.
    chart = tmp_path / "org.yaml"
    text = (REPO / "playbooks/org/demo-district.yaml").read_text(encoding="utf-8")
    maluan = "name: 马峦街道\n        name_en: Maluan Street\n        type: "
    assert maluan + "street" in text
    chart.write_text(text.replace(maluan + "street", maluan + "stret"), encoding="utf-8")
    line = next(i for i, row in enumerate(chart.read_text(encoding="utf-8").splitlines(), 1)
                if "type: stret" in row)
    done = closeloop(tmp_path, "validate", "playbooks/", CLOSELOOP_ORG=str(chart))
    assert done.returncode == 0, done.stdout
    warning, ok = done.stdout.splitlines()
    assert warning.startswith(f"{chart}:{line}:")
    assert "警告：单位类型 stret 没有流程使用，疑为 street 之误，马峦街道（maluan）" in warning
    assert ok.startswith("ok: ")


def test_an_apprise_url_apprise_cannot_use_is_an_org_chart_error_at_its_line(
        tmp_path: Path) -> None:
    # A mistyped scheme once passed validate and start-up, and the first report to the duty
    # office was given up the moment an incident fired.
    text = (REPO / "playbooks/org/demo-district.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "org.yaml"
    broken.write_text(text.replace("json://127.0.0.1:8000", "jsonx://127.0.0.1:8000", 1),
                      encoding="utf-8")
    line = next(i for i, t in enumerate(broken.read_text(encoding="utf-8").splitlines(), 1)
                if "jsonx://" in t)
    done = closeloop(tmp_path, "validate", str(broken))
    assert done.returncode == 1
    [error] = done.stdout.splitlines()
    assert error.startswith(f"{broken}:{line}:")
    assert "Apprise 不支持此地址（jsonx:// 不是已知的通知服务" in error
    # The server does not start on it either: one line naming the file.
    done = closeloop(tmp_path, "sweep", "--once", CLOSELOOP_ORG=str(broken))
    assert done.returncode != 0 and "jsonx://" in done.stderr
    assert "Traceback" not in done.stderr


def test_validate_playbooks_checks_the_configured_org_chart_as_serve_loads_it(
        tmp_path: Path) -> None:
    # A bureau's own chart in CLOSELOOP_ORG with an http:// URL (no Apprise service):
    # `validate playbooks/` said ok, then `serve` refused to start on it.
    text = (REPO / "playbooks/org/demo-district.yaml").read_text(encoding="utf-8")
    chart = tmp_path / "org.yaml"
    chart.write_text(text.replace("json://127.0.0.1:8000", "http://127.0.0.1:8000", 1)
                     .replace("roles: [inspector], notify: []}",
                              "roles: [inspecter], notify: []}", 1), encoding="utf-8")
    rows = chart.read_text(encoding="utf-8").splitlines()
    url_line = next(i for i, t in enumerate(rows, 1) if "http://" in t)
    done = closeloop(tmp_path, "validate", "playbooks/", CLOSELOOP_ORG=str(chart))
    assert done.returncode == 1
    [error] = done.stdout.splitlines()  # once, on stdout, as every other mistake
    assert error.startswith(f"{chart}:{url_line}:")
    assert "Apprise 不支持此地址（http:// 不是已知的通知服务" in error
    assert done.stderr == ""
    # Named as well, it is still said once.
    done = closeloop(tmp_path, "validate", "playbooks/", str(chart), CLOSELOOP_ORG=str(chart))
    assert done.returncode == 1 and done.stdout.splitlines() == [error]
    # Fixed, its misspelt role is warned of without naming the chart.
    chart.write_text(chart.read_text(encoding="utf-8").replace("http://", "json://"),
                     encoding="utf-8")
    done = closeloop(tmp_path, "validate", "playbooks/", CLOSELOOP_ORG=str(chart))
    assert done.returncode == 0, done.stdout
    warning, ok = done.stdout.splitlines()
    assert "警告：角色 inspecter 没有流程使用，疑为 inspector 之误" in warning
    assert ok.startswith("ok: ")


def test_validate_reads_a_file_it_sniffs_for_an_org_chart_through_the_guarded_loader(
        tmp_path: Path) -> None:
    # An alias bomb named on the command line is refused at its line, not expanded while the
    # CLI looks whether the file is an org chart.
    done = closeloop(tmp_path, "validate", "tests/fixtures/playbooks/alias-bomb.yaml")
    assert done.returncode == 1
    assert done.stdout.startswith("tests/fixtures/playbooks/alias-bomb.yaml:12:10: 别名 *e")


def test_validate_parses_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Whether a file is an org chart is told from its top-level keys, not a parse of its own:
    a 5 MB playbook was parsed twice (18-24 s). In process, counting the parses of each file
    named (the org chart the run checks against is parsed as well, once)."""
    import models.yamlpos
    from api import cli
    from flows import loader

    parsed: list[str] = []
    real = models.yamlpos.load_with_positions

    def counting(text: str, filename: str) -> object:
        parsed.append(filename)
        return real(text, filename)

    monkeypatch.setattr(models.yamlpos, "load_with_positions", counting)
    monkeypatch.setattr(loader, "load_with_positions", counting)
    for name in [k for k in os.environ if k.startswith(("CLOSELOOP_", "PREFECT_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CLOSELOOP_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(REPO)
    chart = "playbooks/org/demo-district.yaml"
    assert cli.main(["validate", "playbooks/gas-leak.yaml", chart]) == 0, capsys.readouterr()
    assert parsed.count("playbooks/gas-leak.yaml") == 1
    assert capsys.readouterr().out.startswith("ok")


def test_validate_missing_path_exits_1_naming_it(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "validate", "playbooks/nope.yaml")
    assert done.returncode == 1
    assert done.stdout.startswith("playbooks/nope.yaml:1:1: ")


def test_validate_missing_path_among_good_ones_is_one_chinese_first_line(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "validate", "playbooks/", "nope/", "playbooks/gas-leak.yaml")
    assert done.returncode == 1 and done.stderr == ""
    assert done.stdout == "nope:1:1: 文件或目录不存在 / no such file or directory\n"


def test_validate_own_broken_file_with_exact_positions(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "id: broken\n"
        "version: 1\n"
        "title: 坏\n"
        "steps:\n"
        "  - id: a\n"
        "    title: A\n"
        "    role: duty_officer\n"
        "    due: 5x\n"
        "  - id: b\n"
        "    title: B\n"
        "    role: duty_officer\n"
        "    needs: [a, zz]\n",
        encoding="utf-8")
    done = closeloop(tmp_path / "data", "validate", str(broken))
    assert done.returncode == 1
    out = done.stdout.splitlines()
    assert len(out) == 2, done.stdout
    assert out[0].startswith(f"{broken}:8:10: steps[0] (a).due: ")
    assert out[1].startswith(f"{broken}:12:16: steps[1] (b).needs[1]: 没有步骤 zz")
    assert " / unknown step 'zz' (known: a)" in out[1]


# --- token -------------------------------------------------------------------------------------

def test_token_prints_a_token_the_api_accepts(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "token", "wang-qiang")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("cl1.") and "\n" not in token
    rt = runtime_on(tmp_path)
    try:
        with TestClient(create_app(rt, background=False, prefect=False)) as client:
            ok = client.get("/api/runs", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200
            bad = client.get("/api/runs", headers={"Authorization": f"Bearer {token}x"})
            assert bad.status_code == 401
    finally:
        rt.db.dispose()


def test_token_link_carries_the_token_in_the_fragment(tmp_path: Path) -> None:
    token = closeloop(tmp_path, "token", "liuhe-grid").stdout.strip()
    default = closeloop(tmp_path, "token", "liuhe-grid", "--link").stdout.strip()
    assert default == f"http://127.0.0.1:8000/#token={token}"
    given = closeloop(tmp_path, "token", "liuhe-grid", "--link", "http://10.1.2.3:9000/")
    assert given.stdout.strip() == f"http://10.1.2.3:9000/#token={token}"


def test_token_is_stable_for_a_data_dir_and_differs_between_installations(
    tmp_path: Path
) -> None:
    one = closeloop(tmp_path / "a", "token", "liuhe-grid").stdout.strip()
    again = closeloop(tmp_path / "a", "token", "liuhe-grid").stdout.strip()
    other = closeloop(tmp_path / "b", "token", "liuhe-grid").stdout.strip()
    assert one == again and one != other


def test_token_for_unknown_person_exits_1_with_a_message(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "token", "no-such-person")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: 人员 no-such-person 不存在 / unknown person "
                                  "'no-such-person' (see ")
    assert len(done.stderr.splitlines()) == 1


# --- start ---------------------------------------------------------------------------------------

def test_start_prints_the_run_id_of_a_new_run(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                     "--param", "location=六和社区幸福里3栋", "--param", "grade=重大")
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout.strip())
    rt = runtime_on(tmp_path)
    try:
        with read_session(rt.db) as session:
            run = session.get(Run, run_id)
            assert run is not None
            assert run.playbook_id == "gas-leak" and run.unit_id == "liuhe"
            assert run.status == "running"
            assert run.params["location"] == "六和社区幸福里3栋" and run.params["grade"] == "重大"
            # No --as: the operator console, not a commander who never touched it.
            assert run.started_by == "cli" and "cli" not in rt.org.people
            receive = session.exec(select(StepInstance).where(
                StepInstance.run_id == run_id, StepInstance.step_key == "receive")).one()
            assert receive.status == "ready" and receive.assignees
    finally:
        rt.db.dispose()
    second = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                       "--param", "location=另一处")
    assert int(second.stdout.strip()) == run_id + 1
    # Started all the same (two leaks in one community happen), but the operator is told.
    assert f"注意：同时进行中 #{run_id} 燃气泄漏" in second.stderr
    # Asked to refuse, it refuses naming both, and starts nothing.
    third = closeloop(tmp_path, "start", "gas-leak", "--unit", "pingshan-street",
                      "--param", "location=街道某处", "--refuse-concurrent")
    assert third.returncode == 2 and third.stdout == ""
    assert f"#{run_id + 1} " in third.stderr and f"#{run_id} " in third.stderr
    assert "已有进行中的" in third.stderr
    fourth = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                       "--param", "location=又一处")
    assert int(fourth.stdout.strip()) == run_id + 2


def test_start_as_a_named_commander(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "wang-qiang",
                     "--param", "location=六和社区")
    assert done.returncode == 0, done.stderr
    rt = runtime_on(tmp_path)
    try:
        with read_session(rt.db) as session:
            run = session.get(Run, int(done.stdout))
            assert run is not None and run.started_by == "wang-qiang"
    finally:
        rt.db.dispose()


@pytest.mark.parametrize(("args", "fragment"), [
    (["gas-leak", "--unit", "liuhe", "--param", "grade=重大"], "params.location"),
    (["gas-leak", "--unit", "liuhe", "--param", "location=x", "--param", "grade=巨大"],
     "params.grade"),
    (["gas-leak", "--unit", "atlantis", "--param", "location=x"], "atlantis"),
    (["no-such-book", "--unit", "liuhe"], "no-such-book"),
    (["gas-leak", "--unit", "liuhe", "--param", "location"], "--param"),
])
def test_start_with_bad_input_fails_with_a_message(tmp_path: Path, args: list[str],
                                                   fragment: str) -> None:
    done = closeloop(tmp_path, "start", *args)
    assert done.returncode != 0
    assert done.stdout == ""
    assert fragment in done.stderr and "Traceback" not in done.stderr



def test_start_refuses_a_param_given_twice_naming_it(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--param", "location=x",
                     "--param", "grade=重大", "--param", "grade=一般")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("error: params.grade: --param grade 重复给出 / --param grade "
                                   "is given more than once")


def test_start_as_an_unknown_person_says_so(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe", "--as", "ghost",
                     "--param", "location=x")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "error: --as: 人员 ghost 不存在 / unknown person 'ghost'"


@pytest.mark.parametrize(("args", "message"), [
    (["gas-leak", "--unit", "nowhere"], "error: --unit: 没有单位 nowhere / unknown unit 'nowhere'"),
    (["gas-leak", "--unit", "liuhe", "--param", "location"],
     "error: --param: 应为 键=值，收到 'location' / expected key=value, got 'location'"),
    (["gas-leak", "--unit", "liuhe", "--param", "location=  "],
     "error: params.location: 必填，不能为空白 / required: must not be blank"),
    (["gas-leak", "--unit", "liuhe", "--param", "location=x", "--param", "casualties=-5"],
     "error: params.casualties: 不能小于 0；收到 -5 / must be at least 0; got -5"),
])
def test_start_errors_speak_chinese_then_english(tmp_path: Path, args: list[str],
                                                 message: str) -> None:
    done = closeloop(tmp_path, "start", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == message


def test_start_takes_cli_text_for_every_param_type(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                     "--param", "location=六和社区 3栋", "--param", "casualties=2",
                     "--param", "brief=12")
    assert done.returncode == 0, done.stderr
    rt = runtime_on(tmp_path)
    try:
        with read_session(rt.db) as session:
            run = session.get(Run, int(done.stdout))
            assert run is not None
            assert run.params["casualties"] == 2 and run.params["brief"] == "12"
    finally:
        rt.db.dispose()


# --- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["sweep", "--once"], ["token", "wang-qiang"],
                                     ["start", "gas-leak", "--unit", "liuhe"],
                                     ["validate", "playbooks/"], ["serve", "--port", "1"]])
def test_every_command_reports_an_unknown_time_zone_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    done = closeloop(tmp_path, *command, CLOSELOOP_TIMEZONE="Mars/Base")
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CLOSELOOP_TIMEZONE: 不认识的时区")
    assert "Mars/Base" in lines[0] and "unknown time zone" in lines[0]


@pytest.mark.parametrize(("env", "variable"), [
    ({"CLOSELOOP_TIMEZONE": "../../etc/passwd"}, "CLOSELOOP_TIMEZONE"),
    ({"CLOSELOOP_PREFECT_ENABLED": "maybe"}, "CLOSELOOP_PREFECT_ENABLED"),
    ({"CLOSELOOP_MAX_EVIDENCE_BYTES": "lots"}, "CLOSELOOP_MAX_EVIDENCE_BYTES"),
    ({"CLOSELOOP_EVIDENCE_URL": "ftp://x"}, "CLOSELOOP_EVIDENCE_URL"),
    ({"CLOSELOOP_EVIDENCE_TOKEN": "t"}, "CLOSELOOP_EVIDENCE_TOKEN"),
    ({"CLOSELOOP_CLOCK_OFFSET": "soon"}, "CLOSELOOP_CLOCK_OFFSET"),
    # Read when the settings load, not after `serve` said it was running; 0s swept without
    # a pause, and a negative upload limit refused every photo.
    ({"CLOSELOOP_SWEEP_INTERVAL": "abc"}, "CLOSELOOP_SWEEP_INTERVAL"),
    ({"CLOSELOOP_SWEEP_INTERVAL": "0s"}, "CLOSELOOP_SWEEP_INTERVAL"),
    ({"CLOSELOOP_MAX_EVIDENCE_BYTES": "-5"}, "CLOSELOOP_MAX_EVIDENCE_BYTES"),
    ({"CLOSELOOP_MIN_FREE_DISK_MB": "-1"}, "CLOSELOOP_MIN_FREE_DISK_MB"),
    # A calendar named and not there would count working days without the holidays.
    ({"CLOSELOOP_CALENDAR": "/nonexistent/cn-workdays.yaml"}, "CLOSELOOP_CALENDAR"),
    ({"CLOSELOOP_DATABASE_URL": "garbage"}, "CLOSELOOP_DATABASE_URL"),
    ({"CLOSELOOP_DATABASE_URL": "nosuchdb://h/x"}, "CLOSELOOP_DATABASE_URL"),
    ({"CLOSELOOP_DATABASE_URL": "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"},
     "CLOSELOOP_DATABASE_URL"),
    # Drivers closeloop does not install: named, not a ModuleNotFoundError traceback.
    ({"CLOSELOOP_DATABASE_URL": "postgresql+psycopg2://u:hunter2@127.0.0.1:1/x"},
     "CLOSELOOP_DATABASE_URL"),
    ({"CLOSELOOP_DATABASE_URL": "mysql://u:hunter2@127.0.0.1/x"}, "CLOSELOOP_DATABASE_URL"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    done = closeloop(tmp_path, "sweep", "--once", **env)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {variable}: ")
    assert "hunter2" not in lines[0]  # a database password is never echoed


def test_a_data_dir_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    done = closeloop(blocker / "data", "sweep", "--once")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CLOSELOOP_DATA_DIR: ")

def test_a_missing_org_chart_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "no-org.yaml"
    for command in (["token", "wang-qiang"], ["validate", "playbooks/"], ["sweep", "--once"]):
        done = closeloop(tmp_path / "data", *command, CLOSELOOP_ORG=str(missing))
        assert done.returncode == 2 and done.stdout == "", command
        assert done.stderr == (f"error: CLOSELOOP_ORG: 找不到组织架构文件 {missing} / no org "
                               f"chart file at {missing}\n")


def test_a_playbooks_folder_without_the_demo_chart_says_to_name_the_bureaus_own(
        tmp_path: Path) -> None:
    # A bureau copies playbooks/ and replaces the demo district with its own chart.
    folder = tmp_path / "playbooks"
    folder.mkdir()
    done = closeloop(tmp_path / "data", "validate", str(folder), CLOSELOOP_PLAYBOOKS=str(folder))
    assert done.returncode == 2 and done.stdout == ""
    missing = folder / "org" / "demo-district.yaml"
    assert done.stderr == (f"error: CLOSELOOP_PLAYBOOKS: 找不到组织架构文件 {missing}，本局的组织"
                           f"架构文件请用 CLOSELOOP_ORG 指定 / no org chart file at {missing}; "
                           "name your own with CLOSELOOP_ORG\n")


# --- usage errors and serve ----------------------------------------------------------------------

@pytest.mark.parametrize(("args", "line"), [
    (["sweep"], "error: 缺少参数：--once / the following arguments are required: --once "
                "(see closeloop sweep -h)"),
    (["sweep", "--once", "--twice"], "error: 不认识的参数：--twice / unrecognized arguments: "
                                     "--twice (see closeloop -h)"),
    (["token"], "error: 缺少参数：person / the following arguments are required: person "
                "(see closeloop token -h)"),
    (["start", "gas-leak"], "error: 缺少参数：--unit / the following arguments are required: "
                            "--unit (see closeloop start -h)"),
    (["start", "gas-leak", "--unit"], "error: --unit 后面缺少值 / argument --unit: expected one "
                                      "argument (see closeloop start -h)"),
    (["serve", "--port", "http"], "error: --port 应为整数，收到 'http' / argument --port: "
                                  "invalid int value: 'http' (see closeloop serve -h)"),
    (["serve", "--port", "70000"], "error: --port: 端口应在 0–65535 之间，收到 70000 / port must "
                                   "be 0-65535, got 70000"),
    ([], "error: 缺少参数：command / the following arguments are required: command "
         "(see closeloop -h)"),
], ids=["sweep-without-once", "unknown-option", "token-without-person", "start-without-unit",
        "unit-without-value", "port-not-a-number", "port-out-of-range", "no-command"])
def test_a_usage_error_is_one_chinese_first_line(tmp_path: Path, args: list[str],
                                                 line: str) -> None:
    done = closeloop(tmp_path, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == line + "\n"


def test_an_unknown_command_lists_the_commands(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "stat")
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: 没有命令 'stat'，可选：") and "'start'" in line


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = closeloop(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 1
    assert done.stdout == ""  # no "closeloop on http://..." for a server that never ran
    assert done.stderr == (f"error: 无法在 127.0.0.1:{port} 上监听：端口已被占用，请换一个 --port "
                           f"或先停止占用它的程序 / cannot listen on 127.0.0.1:{port}: address "
                           "already in use; choose another --port or stop the program using "
                           "it\n")


# --- sweep ---------------------------------------------------------------------------------------

SWEEP_KEYS = {"examined", "fired", "overdue", "waits_finished", "rounds_started",
              "notifications"}


def test_sweep_once_prints_json_figures(tmp_path: Path) -> None:
    done = closeloop(tmp_path, "sweep", "--once")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures) == SWEEP_KEYS
    assert figures["examined"] == 0 and figures["fired"] == 0


def test_sweep_once_after_the_deadlines_fires_the_escalations_once(tmp_path: Path) -> None:
    started = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                        "--param", "location=六和社区")
    assert started.returncode == 0, started.stderr
    # An hour later (the server's clock run ahead, as after a downtime).
    late = closeloop(tmp_path, "sweep", "--once", CLOSELOOP_CLOCK_OFFSET="1h")
    assert late.returncode == 0, late.stderr
    figures = json.loads(late.stdout)
    assert figures["examined"] >= 1 and figures["overdue"] >= 1
    assert figures["fired"] >= 2 and figures["notifications"] >= figures["fired"]
    again = json.loads(closeloop(tmp_path, "sweep", "--once",
                                 CLOSELOOP_CLOCK_OFFSET="1h").stdout)
    assert again["overdue"] == 0 and again["fired"] == 0  # each missed level fired once


# --- a database of another version -----------------------------------------------------------

def test_a_database_an_upgrade_cannot_fill_is_one_clear_error_without_a_traceback(
        tmp_path: Path) -> None:
    first = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                      "--param", "location=六和社区幸福里3栋")
    assert first.returncode == 0, first.stderr
    rt = runtime_on(tmp_path)  # "an older version": its run table lacks a column with no default
    with rt.db.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE run DROP COLUMN title")
    rt.db.dispose()
    done = closeloop(tmp_path, "start", "gas-leak", "--unit", "liuhe",
                     "--param", "location=又一处")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: 数据库由旧版本创建") and "run.title" in done.stderr
    assert "Traceback" not in done.stderr
