"""Annotated dependencies every route shares: the runtime and the person behind the token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import person_from_token
from flows.runtime import Runtime
from models.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_person(
    rt: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token (closeloop token PERSON_ID)")
    return person_from_token(credentials.credentials, rt.settings.signing_secret(), rt.org)


CurrentPerson = Annotated[str, Depends(get_person)]


# Row ids and offsets as the databases store them (SQLite INTEGER / PostgreSQL bigint): a
# larger number is a 422, not an OverflowError deep in the driver.
MAX_ROW = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW)]
Offset = Annotated[int, Query(ge=0, le=MAX_ROW)]
