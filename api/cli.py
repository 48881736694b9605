"""The `closeloop` command (SPEC §5): validate, serve, token, start, sweep."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

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


def _runtime(settings: Settings):  # type: ignore[no-untyped-def]
    from flows.runtime import build_runtime
    from models.clock import OffsetClock, SystemClock

    offset = settings.clock_offset_seconds
    clock = OffsetClock(timedelta(seconds=offset)) if offset else SystemClock()
    _check_data_dir(settings)
    try:
        # Parsed first, so a bad URL is named here; the message never repeats the URL, which
        # may hold a password.
        make_url(settings.db_url).get_dialect()
    except ArgumentError:
        raise BadSetting("CLOSELOOP_DATABASE_URL", "无法解析数据库地址或不支持该数据库 / not "
                         "a database URL closeloop can use (expected sqlite:///path or "
                         "postgresql+psycopg://user@host/db)") from None
    try:
        return build_runtime(settings, clock=clock)
    except OperationalError as exc:
        lines = str(exc.orig or exc).strip().splitlines()
        first = lines[0] if lines else type(exc).__name__
        raise BadSetting("CLOSELOOP_DATABASE_URL", f"无法连接数据库 / cannot reach the "
                         f"database: {first}") from None


def _check_data_dir(settings: Settings) -> None:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadSetting("CLOSELOOP_DATA_DIR", f"无法创建数据目录 {settings.data_dir} / cannot "
                         f"create the data directory {settings.data_dir}: "
                         f"{exc.strerror or exc}") from None


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from flows.catalog import load_context
    from flows.loader import validate_paths
    from models.org import load_org

    org = load_org(settings.org_path)
    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"{p}:1:1: 文件或目录不存在 / no such file or directory")
    context = load_context(settings.playbooks, org)
    errors = validate_paths([p for p in paths if p.exists()], context=context)
    for err in errors:
        print(err)
    if errors or missing:
        return 1
    print(f"ok: {len(paths)} path(s) valid")
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from api.auth import make_token
    from models.org import load_org

    org = load_org(settings.org_path)
    if args.person not in org.people:
        print(f"人员 {args.person} 不存在 / unknown person '{args.person}' (see "
              f"{settings.org_path})", file=sys.stderr)
        return 1
    if not settings.secret:
        _check_data_dir(settings)  # the generated secret is kept there
    print(make_token(args.person, settings.signing_secret()))
    return 0


def cmd_start(args: argparse.Namespace, settings: Settings) -> int:
    from flows.lifecycle import start_run

    params: dict[str, str] = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput("--param", f"应为 键=值，收到 {item[:80]!r} / expected key=value, "
                               f"got {item[:80]!r}")
        if key in params:
            # Keeping the last of two would start a run nobody asked for (一般 or 重大?).
            raise InvalidInput(f"params.{key}", f"--param {key} 重复给出 / --param {key} is "
                               "given more than once")
        params[key] = value
    rt = _runtime(settings)
    if args.as_person is not None and args.as_person not in rt.org.people:
        raise InvalidInput("--as", f"人员 {args.as_person[:80]} 不存在 / unknown person "
                           f"'{args.as_person[:80]}'")
    run = start_run(rt, playbook_id=args.playbook, unit_id=args.unit, params=params,
                    actor=args.as_person or _system_commander(rt, args.unit))
    print(run.id)
    return 0


def _system_commander(rt, unit_id: str) -> str:  # type: ignore[no-untyped-def]
    """The CLI acts as an operator: it starts runs as a commander of the unit (or above)."""
    if unit_id not in rt.org.units:
        raise InvalidInput("--unit", f"没有单位 {unit_id[:80]} / unknown unit '{unit_id[:80]}'")
    for unit in rt.org.ancestors(unit_id):
        for pid in rt.org.unit(unit).person_ids:
            if "commander" in rt.org.person(pid).roles or "admin" in rt.org.person(pid).roles:
                return pid
    raise InvalidInput("--unit", f"{unit_id} 及上级单位没有指挥长，请用 --as 指定 / no commander "
                       f"for unit '{unit_id}' or above; use --as")


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from flows.sweeper import sweep_once

    rt = _runtime(settings)
    report = sweep_once(rt)
    if not report.swept:
        print("another process holds the sweeper lease; nothing done")
        return 0
    print(json.dumps({"examined": report.examined, "fired": report.fired,
                      "overdue": report.overdue, "waits_finished": report.waits_finished,
                      "notifications": report.notifications}, ensure_ascii=False))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.main import create_app

    rt = _runtime(settings)
    for err in rt.catalog.errors:
        print(f"playbook not loaded: {err}", file=sys.stderr)
    app = create_app(rt, prefect=settings.prefect_enabled)
    print(f"closeloop on http://{args.host}:{args.port} (API docs at /docs); data in "
          f"{settings.data_dir.resolve()}; token: closeloop token PERSON_ID", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from flows.schema_export import playbook_json_schema

    print(json.dumps(playbook_json_schema(), ensure_ascii=False, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="closeloop", description="应急管理闭环工作流 closeloop")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="validate playbook files or folders")
    v.add_argument("paths", nargs="+")
    v.set_defaults(func=cmd_validate)
    s = sub.add_parser("serve", help="API, pages, sweeper and Prefect")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.set_defaults(func=cmd_serve)
    t = sub.add_parser("token", help="print a bearer token for a person of the org chart")
    t.add_argument("person")
    t.set_defaults(func=cmd_token)
    st = sub.add_parser("start", help="start a run; prints its id")
    st.add_argument("playbook")
    st.add_argument("--unit", required=True)
    st.add_argument("--param", action="append", metavar="KEY=VALUE")
    st.add_argument("--as", dest="as_person", help="person id to start as (a commander)")
    st.set_defaults(func=cmd_start)
    sw = sub.add_parser("sweep", help="run the deadline sweeper")
    sw.add_argument("--once", action="store_true", required=True)
    sw.set_defaults(func=cmd_sweep)
    sc = sub.add_parser("schema", help="print the JSON Schema of the playbook format")
    sc.set_defaults(func=cmd_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
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
    except CloseloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # settings that fail validation
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
