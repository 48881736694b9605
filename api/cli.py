"""The `closeloop` command (SPEC §5): validate, serve, token, start, sweep; and backup."""

from __future__ import annotations

import argparse
import errno
import json
import re
import socket
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from api.db_wait import DatabaseNotUp, once_reachable, server_not_up
from models.audit import CLI
from models.errors import CloseloopError, InvalidInput, SourceInvalid
from models.settings import Settings


class BadSetting(Exception):
    """A configuration value (CLOSELOOP_* or .env) that cannot be used: reported as one line
    naming the variable, never as a traceback."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


def load_settings() -> Settings:
    """Settings from the environment and .env; BadSetting for the first value that fails."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = " ".join(str(first["msg"]).removeprefix("Value error, ").split())
        loc = [str(part) for part in first["loc"]]
        if loc:
            # Fields are read from CLOSELOOP_<FIELD>, an alias (PREFECT_API_URL) as it is.
            variable = loc[0] if loc[0].isupper() else f"CLOSELOOP_{loc[0].upper()}"
        else:  # a check across fields: its message starts with the variable it is about
            variable = re.split(r"[：:\s]", message, maxsplit=1)[0]
        if message.startswith(variable):  # our own validators: already in both languages
            raise BadSetting(variable, message[len(variable):].lstrip("：: ")) from None
        raise BadSetting(variable or "CLOSELOOP", f"配置值无效 / invalid value: {message}"
                         ) from None


def _runtime(settings: Settings, *, wait_for_server: bool = False):  # type: ignore[no-untyped-def]
    """The runtime on the configured database. `wait_for_server`: a PostgreSQL server not up
    is DatabaseNotUp (serve waits for it), not a setting to fix."""
    from flows.runtime import build_runtime
    from models.clock import OffsetClock, SystemClock

    offset = settings.clock_offset_seconds
    clock = OffsetClock(timedelta(seconds=offset)) if offset else SystemClock()
    _check_data_dir(settings)
    try:
        # Parsed first, so a bad URL is named here; the message never repeats the URL, which
        # may hold a password.
        url = make_url(settings.db_url)
        url.get_dialect().import_dbapi()
    except ArgumentError:
        raise BadSetting("CLOSELOOP_DATABASE_URL", "无法解析数据库地址或不支持该数据库 / not "
                         "a database URL closeloop can use (expected sqlite:///path or "
                         "postgresql+psycopg://user@host/db)") from None
    except ImportError:
        # A driver closeloop does not install (psycopg2, MySQLdb): named, without a traceback.
        raise BadSetting("CLOSELOOP_DATABASE_URL", f"不支持数据库驱动 {url.drivername}，请使用 "
                         "sqlite:///路径 或 postgresql+psycopg://用户@主机/库 / driver "
                         f"'{url.drivername}' is not installed; use sqlite:///path or "
                         "postgresql+psycopg://user@host/db") from None
    try:
        return build_runtime(settings, clock=clock)
    except OperationalError as exc:
        lines = str(exc.orig or exc).strip().splitlines()
        first = lines[0] if lines else type(exc).__name__
        if wait_for_server and server_not_up(exc, url.drivername):
            raise DatabaseNotUp(first) from None
        raise BadSetting("CLOSELOOP_DATABASE_URL", f"无法连接数据库 / cannot reach the "
                         f"database: {first}") from None


def _check_data_dir(settings: Settings) -> None:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadSetting("CLOSELOOP_DATA_DIR", f"无法创建数据目录 {settings.data_dir} / cannot "
                         f"create the data directory {settings.data_dir}: "
                         f"{exc.strerror or exc}") from None
    # Written to, not only there: the database, the secret, evidence and Prefect's home all
    # live in it, and a read-only one once surfaced as "cannot reach the database" under a
    # variable that was not even set.
    try:
        with tempfile.NamedTemporaryFile(dir=settings.data_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise BadSetting("CLOSELOOP_DATA_DIR", f"数据目录 {settings.data_dir} 不可写 / cannot "
                         f"write in the data directory {settings.data_dir}: "
                         f"{exc.strerror or exc}") from None
    if settings.calendar is not None and not settings.calendar.is_file():
        # Only the default path may be absent (Mon-Fri then); a file named and not there would
        # silently count every working-day deadline without the holidays.
        raise BadSetting("CLOSELOOP_CALENDAR", f"找不到工作日历文件 {settings.calendar} / no "
                         f"working-day calendar file at {settings.calendar}")


def _check_org_file(settings: Settings) -> None:
    """A missing org chart named by the variable that points at it, not as a YAML error."""
    path = settings.org_path
    if not path.is_file():
        variable = "CLOSELOOP_ORG" if settings.org is not None else "CLOSELOOP_PLAYBOOKS"
        if path.is_dir():
            raise BadSetting(variable, f"{path} 是目录，不是组织架构文件 / {path} is a "
                             "directory, not an org chart file")
        if settings.org is None:  # a bureau's own folder holds its chart under its own name
            raise BadSetting(variable, f"找不到组织架构文件 {path}，本局的组织架构文件请用 "
                             f"CLOSELOOP_ORG 指定 / no org chart file at {path}; name your "
                             "own with CLOSELOOP_ORG")
        raise BadSetting(variable, f"找不到组织架构文件 {path} / no org chart file at {path}")


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from flows.catalog import load_context
    from flows.loader import load_catalog, validate_paths
    from flows.role_typos import suspect_names
    from models.org import load_org

    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"{p}:1:1: 文件或目录不存在 / no such file or directory")
    # An org chart named on the command line (playbooks/org/*.yaml) is checked as one: an
    # operator who edits the org chart validates it like a playbook.
    charts = [p for p in paths if p.is_file() and _is_org_chart(p)]
    # The configured chart (CLOSELOOP_ORG) is the one `serve` will load, with the same checks:
    # `validate playbooks/` once said ok of a chart whose http:// URL (no Apprise service) then
    # kept the server from starting. Checked once, whether named here or not.
    configured = settings.org_path
    if configured.is_file() and not any(_same_file(c, configured) for c in charts):
        charts.append(configured)
    chart_errors = [e for p in charts for e in _org_errors(p)]
    for err in chart_errors:
        print(err)
    if chart_errors and any(_same_file(c, configured) for c in charts):
        return 1  # the playbooks' roles and channels are checked against it: nothing to say
    org = load_org(configured)
    context = load_context(settings.playbooks, org)
    errors = validate_paths([p for p in paths if p.exists() and p not in charts],
                            context=context)
    for err in errors:
        print(err)
    if errors or missing or chart_errors:
        return 1
    for chart in charts:  # loads, but a role spelt like one the playbooks use is suspect
        for warning in suspect_names(load_org(chart), load_catalog(settings.playbooks,
                                                                    context=context)[0].values()):
            print(warning)
    print(f"ok: {len(paths)} 个路径均有效 / {len(paths)} path(s) valid")
    return 0


def _is_org_chart(path: Path) -> bool:
    """A YAML file whose top level has `units` and no `steps`: an org chart, not a playbook.
    Decided from the top-level keys as the parser meets them, stopping at `steps` (a
    playbook's comes within its first lines): a full parse here was a second one of every
    playbook named, 18-24 s of `closeloop validate` on a 5 MB playbook."""
    from models.yamlpos import YamlSyntaxError, top_level_keys

    keys: set[str] = set()
    try:  # events only: no alias is expanded, however the file is built
        with path.open("rb") as stream:
            for key in top_level_keys(stream, str(path)):
                if key == "steps":
                    return False
                keys.add(key)
    except (OSError, YamlSyntaxError):
        return False  # the playbook loader reports what is wrong with it, at its line
    return "units" in keys


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _org_errors(path: Path) -> list[str]:
    from flows.apprise_urls import usable_url
    from models.errors import OrgInvalid
    from models.org import load_org

    try:
        load_org(path, url_ok=usable_url)
    except OrgInvalid as exc:
        return [str(e) for e in exc.errors]
    return []


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from api.auth import make_token
    from models.org import load_org

    org = load_org(settings.org_path)
    if args.person not in org.people:
        print(f"error: 人员 {args.person} 不存在 / unknown person '{args.person}' (see "
              f"{settings.org_path})", file=sys.stderr)
        return 1
    if not settings.secret:
        _check_data_dir(settings)  # the generated secret is kept there
    token = make_token(args.person, settings.signing_secret())
    if args.link is None:
        print(token)
    else:
        # A sign-in link for the web pages: the token rides in the fragment, which a browser
        # never sends to a server or a proxy log; the page keeps it and drops it from the URL.
        print(f"{args.link.rstrip('/')}/#token={token}")
    return 0


# Who the audit trail names when `closeloop start` is given no --as: the operator console, not a
# person. The CLI runs on the server with its data dir and secret (`closeloop token` mints any
# person's token), so like the engine (SYSTEM) it checks no rights for itself; what it must not
# do is put a person's name on a run that person never started, as picking "the first
# commander over the unit" did. Refusing without --as would break `closeloop start PLAYBOOK
# --unit UNIT` (SPEC §5) for scripts, so the run is recorded as started by "cli" (运维命令行);
# where "cli" would end up standing for a person (a register's 发现人, an org chart with a
# person "cli") --as is asked for instead. With --as the trail names that person, who must
# exist and hold the right to start the playbook in the unit (the API's own check: start_run
# with check_rights=True).
CLI_ACTOR = CLI
CLI_ACTOR_ZH, CLI_ACTOR_EN = "运维命令行", "operator console"


def cmd_start(args: argparse.Namespace, settings: Settings) -> int:
    from flows.concurrent import overlapping_runs
    from flows.drills import read_drill
    from flows.lifecycle import start_run
    from models.db import read_session
    from models.errors import Forbidden

    params = _cli_params(args.param or [])
    if args.drill_title is not None and args.drill is None:
        raise InvalidInput("--drill-title", "--drill-title 需与 --drill 一起使用 / --drill-title "
                           "needs --drill")
    drill = (read_drill(args.drill, args.drill_title, field="--drill")
             if args.drill is not None else None)
    rt = _runtime(settings)
    if args.unit not in rt.org.units:
        raise InvalidInput("--unit", f"没有单位 {args.unit[:80]} / unknown unit "
                           f"'{args.unit[:80]}'")
    if args.as_person is None:
        actor = _console_actor(rt, args.playbook, params)
    elif args.as_person in rt.org.people:
        actor = args.as_person
    else:
        raise InvalidInput("--as", f"人员 {args.as_person[:80]} 不存在 / unknown person "
                           f"'{args.as_person[:80]}'")
    try:
        run = start_run(rt, playbook_id=args.playbook, unit_id=args.unit, params=params,
                        actor=actor, check_rights=args.as_person is not None,
                        refuse_unstaffed=True, refuse_concurrent=args.refuse_concurrent,
                        drill=drill)
    except Forbidden as exc:  # the person given may not start it: whom to ask, as the API says
        raise InvalidInput(f"--as {actor}", str(exc)) from None
    print(run.id)
    with read_session(rt.db) as session:
        others = overlapping_runs(session, rt, rt.catalog.pinned(session, run.playbook_sha),
                                  run.unit_id, exclude=run.id,
                                  drill=run.drill_kind is not None)
    if drill is not None:
        print(f"【演练】已启动{drill.kind} / drill started ({drill.kind})", file=sys.stderr)
    for other in others:
        print(f"注意：同时进行中 {other.line()} / note: run {other.id} of this playbook is also "
              "running here (above or below)", file=sys.stderr)
    if args.as_person is None:
        print(f"提示：未给 --as，本次启动记为{CLI_ACTOR_ZH}（{CLI_ACTOR}）；以本人名义启动"
              f"请加 --as 人员ID / note: no --as, so the run is recorded as started by the "
              f"{CLI_ACTOR_EN} ({CLI_ACTOR}); add --as PERSON_ID to start it in a person's "
              "name", file=sys.stderr)
    return 0


def cmd_end(args: argparse.Namespace, settings: Settings) -> int:
    """结束 from the operator console, as POST /api/runs/{id}/complete: a drill (结束演练) at
    any point, a staged response by its rules. Always in a person's name (--as): who may end
    a run is who may cancel it, the run's commanders, and the timeline says who did."""
    from flows.drill_end import end_run
    from flows.params import ParamValueError, check_text
    from models.errors import Forbidden

    if args.note is not None:
        try:  # as the API's body checks it (api/schemas.py Note)
            check_text(args.note)
        except ParamValueError as exc:
            raise InvalidInput("--note", exc.text) from None
    rt = _runtime(settings)
    if args.as_person not in rt.org.people:
        raise InvalidInput("--as", f"人员 {args.as_person[:80]} 不存在 / unknown person "
                           f"'{args.as_person[:80]}'")
    try:
        run = end_run(rt, run_id=args.run, actor=args.as_person, note=args.note)
    except Forbidden as exc:
        raise InvalidInput(f"--as {args.as_person}", str(exc)) from None
    print(run.id)
    said = ("【演练】演练已结束 / drill ended" if run.drill_kind is not None
            else "响应已结束 / response ended")
    print(f"{said}: #{run.id} {run.title}", file=sys.stderr)
    return 0


def _cli_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput("--param", f"应为 键=值，收到 {item[:80]!r} / expected key=value, "
                               f"got {item[:80]!r}")
        if key in params:
            # Keeping the last of two would start a run nobody asked for (一般 or 重大?).
            raise InvalidInput(f"params.{key}", f"--param {key} 重复给出 / --param {key} is "
                               "given more than once")
        params[key] = value
    return params


def _console_actor(rt, playbook_id: str, params: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    """CLI_ACTOR, or InvalidInput asking for --as where "cli" would stand for a person."""
    if CLI_ACTOR in rt.org.people:
        # Then "cli" is somebody's id, and every name lookup would sign that person's name.
        raise InvalidInput("--as", f"组织架构中有人员 ID 为 {CLI_ACTOR}，无法与{CLI_ACTOR_ZH}"
                           f"区分，请用 --as 指定启动人 / the org chart has a person whose id "
                           f"is '{CLI_ACTOR}', who cannot be told apart from the {CLI_ACTOR_EN}; "
                           "give --as PERSON_ID")
    playbook = rt.catalog.current.get(playbook_id)
    if playbook is not None and playbook.register_ is not None \
            and not str(params.get("found_by") or "").strip():
        # A register entry's 发现人 is whoever started the run unless found_by says otherwise
        # (flows/registers.py), and the console found no hazard.
        if "found_by" in playbook.params:
            raise InvalidInput("--as", "登记台账的流程要记录发现人：请用 --as 人员ID 指定启动人，"
                               "或用 --param found_by=姓名 / a register playbook records who found "
                               "the hazard: give --as PERSON_ID or --param found_by=NAME")
        raise InvalidInput("--as", "登记台账的流程要记录发现人：请用 --as 人员ID 指定启动人 / a "
                           "register playbook records who found the hazard: give --as "
                           "PERSON_ID")
    return CLI_ACTOR


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from flows.sweeper import sweep_once

    rt = _runtime(settings)
    report = sweep_once(rt)
    if not report.swept:
        print("另一进程正在清扫，本次未执行 / another process holds the sweeper lease; nothing "
              "done")
        return 0
    print(json.dumps({"examined": report.examined, "fired": report.fired,
                      "overdue": report.overdue, "waits_finished": report.waits_finished,
                      "rounds_started": report.rounds_started,
                      "notifications": report.notifications}, ensure_ascii=False))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # The port is taken first, before the database, the Prefect server and the workers start:
    # a port already in use is one line naming it, not uvicorn's log line after a banner that
    # said the server was up (and no Prefect server started for nothing).
    sock = _listen(args.host, args.port)
    try:
        import uvicorn

        from api.main import create_app
        from api.reloading import reload_on_sighup

        try:
            rt = once_reachable(lambda: _runtime(settings, wait_for_server=True),
                                wait_s=args.wait_db, say=lambda line: print(
                                    line, file=sys.stderr, flush=True))
        except DatabaseNotUp as exc:
            raise BadSetting("CLOSELOOP_DATABASE_URL", f"等待 {args.wait_db:.0f} 秒后仍无法连接"
                             f"数据库 / cannot reach the database after waiting "
                             f"{args.wait_db:.0f} s: {exc.first}") from None
        for err in rt.catalog.errors:
            print(f"流程未加载 / playbook not loaded: {err}", file=sys.stderr)
        app = create_app(rt, prefect=settings.prefect_enabled)
        reload_on_sighup(rt, lambda: app.state.workers)
        where = _host_port(args.host, sock.getsockname()[1])
        print(f"closeloop 已启动 / running on http://{where} (web pages at /, API docs at "
              f"/docs); data in {settings.data_dir.resolve()}; sign in: closeloop token "
              f"PERSON_ID --link http://{where}", flush=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:  # the app's startup failed (uvicorn logged why) or was interrupted
        print("error: 服务未能启动（原因见上）/ the server did not start (see above)",
              file=sys.stderr)
        return 1
    return 0


class CannotListen(Exception):
    """The address `closeloop serve` was told to listen on cannot be had; exit 1."""


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn (as uvicorn binds: SO_REUSEADDR, IPv6 for a host with ':'),
    or CannotListen saying why in the operator's words."""
    where = _host_port(host, port)
    if not 0 <= port <= 65535:
        raise InvalidInput("--port", f"端口应在 0–65535 之间，收到 {port} / port must be 0-65535, "
                           f"got {port}")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if isinstance(exc, socket.gaierror):
            zh, en = f"无法解析主机名 {host}", f"cannot resolve host '{host}'"
        elif exc.errno == errno.EADDRINUSE:
            zh, en = ("端口已被占用，请换一个 --port 或先停止占用它的程序",
                      "address already in use; choose another --port or stop the program "
                      "using it")
        elif exc.errno == errno.EACCES:
            zh, en = ("没有权限监听该端口（1024 以下的端口需要管理员权限）",
                      "permission denied (ports below 1024 need root)")
        elif exc.errno == errno.EADDRNOTAVAIL:
            zh, en = (f"本机没有地址 {host}，请检查 --host",
                      f"this machine has no address '{host}'; check --host")
        else:
            zh = en = str(exc.strerror or exc)
        raise CannotListen(f"无法在 {where} 上监听：{zh} / cannot listen on {where}: {en}"
                           ) from None
    return sock


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from flows.backup import back_up

    _check_data_dir(settings)
    taken = back_up(settings, Path(args.dest), now=datetime.now(UTC))
    counts = taken.counts
    print(f"备份已写入 {taken.dest} / backup written to {taken.dest}")
    print(f"  流程实例 {counts['runs']}，任务 {counts['tasks']}，审计记录 "
          f"{counts['audit_events']}，证据 {counts['evidence']} / runs, tasks, audit events, "
          "evidence")
    if taken.database != "sqlite":
        print(f"  数据库为 {taken.database}，不在备份内，请用 pg_dump 备份 / the {taken.database} "
              "database is not in the backup: back it up with pg_dump")
    if taken.evidence_elsewhere:
        print(f"  证据存放在配置的存储（{taken.evidence_elsewhere}）中，不在备份内 / evidence "
              "is kept in the configured store (CLOSELOOP_EVIDENCE_URL), not in the backup")
    else:
        print(f"  证据文件 {taken.evidence_copied} 个（{taken.evidence_bytes} 字节），均已核对 "
              "SHA-256 / evidence files, each checked against its SHA-256")
    for problem in taken.problems:
        print(f"  {problem}", file=sys.stderr)
    # A backup missing a photo is still the best copy there is: kept, but not "ok".
    return 1 if taken.problems else 0


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from flows.schema_export import playbook_json_schema

    print(json.dumps(playbook_json_schema(), ensure_ascii=False, indent=2))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors (a missing --once, a --port that is not a number, an unknown
    command) as one Chinese-first line and exit 2, like every other error of the command,
    instead of a usage block in English. Subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {_usage_zh(message)} / {message} (see {self.prog} -h)", file=sys.stderr)
        sys.exit(2)


# argparse gives its errors only as (gettext) text, so they are recognised by their wording
# (Python 3.11 to 3.13); anything else keeps a generic Chinese label before argparse's English.
_USAGE_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"the following arguments are required: (?P<a>.+)"), "缺少参数：{a}"),
    (re.compile(r"unrecognized arguments: (?P<a>.+)"), "不认识的参数：{a}"),
    (re.compile(r"argument command: invalid choice: (?P<v>\S+) \(choose from (?P<c>.+)\)"),
     "没有命令 {v}，可选：{c}"),
    (re.compile(r"argument (?P<a>\S+): invalid int value: (?P<v>.+)"), "{a} 应为整数，收到 {v}"),
    (re.compile(r"argument (?P<a>\S+): expected one argument"), "{a} 后面缺少值"),
    (re.compile(r"ambiguous option: (?P<a>\S+) could match (?P<c>.+)"),
     "选项 {a} 有歧义，可能是：{c}"),
]


def _usage_zh(message: str) -> str:
    for pattern, zh in _USAGE_ZH:
        found = pattern.fullmatch(message)
        if found:
            return zh.format(**found.groupdict())
    return "命令行参数有误"


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="closeloop", description="应急管理闭环工作流 closeloop")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="validate playbook files or folders")
    v.add_argument("paths", nargs="+")
    v.set_defaults(func=cmd_validate)
    s = sub.add_parser("serve", help="API, pages, sweeper and Prefect")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--wait-db", type=float, default=300.0, metavar="SECONDS",
                   help="how long to wait for a PostgreSQL server that is not up yet "
                        "(default 300; 0: do not wait)")
    s.set_defaults(func=cmd_serve)
    t = sub.add_parser("token", help="print a bearer token for a person of the org chart")
    t.add_argument("person")
    t.add_argument("--link", nargs="?", const="http://127.0.0.1:8000", metavar="URL",
                   help="print a sign-in link for the web pages (default http://127.0.0.1:8000)")
    t.set_defaults(func=cmd_token)
    st = sub.add_parser("start", help="start a run; prints its id")
    st.add_argument("playbook")
    st.add_argument("--unit", required=True)
    st.add_argument("--param", action="append", metavar="KEY=VALUE")
    st.add_argument("--as", dest="as_person", metavar="PERSON_ID",
                    help="who starts it (must hold the right to start the playbook in UNIT); "
                         "without it the run is recorded as started by the operator console "
                         "(cli), never in a person's name")
    st.add_argument("--refuse-concurrent", action="store_true",
                    help="refuse (exit 2, naming them) while a run of the playbook is running "
                         "for UNIT, a unit above it or below it")
    st.add_argument("--drill", nargs="?", const="桌面推演", metavar="KIND",
                    help="start a drill (演练), not a real event: 桌面推演 (the default), 实战演练 "
                         "or 盲演; every message and document says 【演练】")
    st.add_argument("--drill-title", metavar="TITLE", help="the drill's name (with --drill)")
    st.set_defaults(func=cmd_start)
    en = sub.add_parser("end", help="end a drill (结束演练) at any point, or a staged response "
                        "by its rules, as POST /api/runs/{id}/complete; prints its id")
    en.add_argument("run", type=int, metavar="RUN_ID")
    en.add_argument("--as", dest="as_person", metavar="PERSON_ID", required=True,
                    help="who ends it: a commander over the run's unit")
    en.add_argument("--note", metavar="TEXT", help="said to those told (optional for a drill; "
                    "a response ended before its last stage needs it)")
    en.set_defaults(func=cmd_end)
    sw = sub.add_parser("sweep", help="run the deadline sweeper")
    sw.add_argument("--once", action="store_true", required=True)
    sw.set_defaults(func=cmd_sweep)
    b = sub.add_parser("backup", help="copy the data dir (database snapshot, evidence checked, "
                                      "Prefect history, secret) to a new folder, while serving")
    b.add_argument("dest", help="a new or empty folder; the backup is itself a data dir")
    b.set_defaults(func=cmd_backup)
    sc = sub.add_parser("schema", help="print the JSON Schema of the playbook format")
    sc.set_defaults(func=cmd_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.func is not cmd_schema:
            _check_org_file(settings)
        return int(args.func(args, settings))
    except BadSetting as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SourceInvalid as exc:
        for err in exc.errors:
            print(err, file=sys.stderr)
        return 1
    except InvalidInput as exc:
        print(f"error: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    except CannotListen as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except CloseloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # settings that fail validation
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while starting up: no traceback
        return 130


if __name__ == "__main__":
    sys.exit(main())
