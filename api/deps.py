"""Annotated dependencies every route shares: the runtime and the person behind the token, and
`single_query_values`, which api/main.py runs before every route: a query parameter given
twice (`status=open&status=closed`, `limit=1&limit=2`) is a 422 naming it, never a silent
choice of one of the values (Starlette keeps the last). A parameter a route declares as a list
may repeat (none does today); everything else, declared or not, may not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import person_from_token
from flows.params import FIRST_YEAR, LAST_YEAR
from flows.runtime import Runtime
from models.base import MAX_ID
from models.errors import InvalidInput, Unauthorized, clipped

_bearer = HTTPBearer(auto_error=False)


def _list_params(dependant: Dependant) -> set[str]:
    """Query parameters the route (and its dependencies) declare as lists: they may repeat."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names.update(f.alias for f in current.query_params
                     if field_annotation_is_sequence(f.field_info.annotation))
        stack.extend(current.dependencies)
    return names


async def single_query_values(request: Request) -> None:
    """Refuse a query parameter given more than once (see the module's docstring). Async, so
    it runs on the event loop; the query string is parsed once (the route reuses the parse)
    and only a request that does repeat a name looks further, at its route's parameters."""
    params = request.query_params
    items = params.multi_items()
    if len(items) == len(params):  # one value per name: the usual case
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    lists = _list_params(dependant) if isinstance(dependant, Dependant) else set()
    seen: dict[str, int] = {}
    for name, _ in items:
        seen[name] = seen.get(name, 0) + 1
    for name, times in seen.items():
        if times > 1 and name not in lists:
            shown = clipped(name, 80)
            raise InvalidInput(shown, f"参数 {shown} 重复（出现 {times} 次），只能给一个值 / "
                               f"query parameter {shown} given {times} times; give it once")


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_person(
    rt: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("缺少登录令牌（由 closeloop token PERSON_ID 生成）/ missing bearer "
                           "token (closeloop token PERSON_ID)")
    return person_from_token(credentials.credentials, rt.settings.signing_secret(), rt.org)


CurrentPerson = Annotated[str, Depends(get_person)]


# Row ids as both databases hold them (models.base.MAX_ID): a larger one is a 422 naming the field.
MAX_ROW = MAX_ID
# No listing holds more rows than there are ids, so an offset past that is a mistake too.
MAX_OFFSET = MAX_ROW
RowId = Annotated[int, Path(ge=1, le=MAX_ROW)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


# The window of time filters, local time, both ends allowed: the years a date or time param
# may name (flows.params), so whatever a run was given can also be filtered on.
EARLIEST = (FIRST_YEAR, 1, 1)
LATEST = (LAST_YEAR, 1, 1)


def filter_time(rt: Runtime, field: str, value: datetime | None) -> datetime | None:
    """A time filter (`since`, `found_until`, ...) as an aware datetime; one without a zone is
    the bureau's local time (CLOSELOOP_TIMEZONE). Nothing closeloop records lies outside
    EARLIEST … LATEST, and near the ends of datetime's range the conversion to UTC for the
    query overflows (a 500, or an export cut off after its 200), so such a time is refused
    naming the field."""
    if value is None:
        return None
    aware = value.replace(tzinfo=rt.tz) if value.tzinfo is None else value
    try:
        in_utc: datetime | None = aware.astimezone(UTC)
    except OverflowError:
        in_utc = None
    lo, hi = datetime(*EARLIEST, tzinfo=rt.tz), datetime(*LATEST, tzinfo=rt.tz)
    if in_utc is None or not lo <= in_utc <= hi:
        raise InvalidInput(field, f"时间须在 {lo:%Y-%m-%d} 至 {hi:%Y-%m-%d} 之间 / time must be "
                           f"between {lo:%Y-%m-%d} and {hi:%Y-%m-%d}, got '{value.isoformat()}'")
    return aware
