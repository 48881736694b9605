"""The app factory: routes, error handlers and, in the lifespan, the background workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import docs_page, errors, pages
from api.body_guard import BodyGuard
from api.deps import single_query_values
from api.routes import (
    admin,
    campaigns,
    evidence,
    extensions,
    import_templates,
    me,
    playbooks,
    reporting,
    runs,
    system,
    tasks,
)
from api.routes import hazards as hazard_routes
from api.routes import imports as import_routes
from api.workers import Workers
from flows.runtime import Runtime


def create_app(rt: Runtime, *, background: bool = True, prefect: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers = Workers(rt, prefect=prefect) if background else None
        app.state.workers = workers
        if workers:
            workers.start()
        try:
            yield
        finally:
            if workers:
                workers.stop()

    app = FastAPI(
        title="closeloop",
        description="应急管理闭环工作流 · playbooks compiled to Prefect flows that track every "
        "step, deadline and escalation",
        version="0.1.0",
        lifespan=lifespan,
        # Swagger UI and ReDoc load from a CDN an offline intranet cannot reach: /docs (and
        # /redoc) is api/docs_page.py's page instead, rendered here from app.openapi().
        docs_url=None,
        redoc_url=None,
        # Before any route's own parameters: a query parameter given twice is a 422 naming
        # it, never whichever value Starlette kept (api/deps.py).
        dependencies=[Depends(single_query_values)],
    )
    app.state.runtime = rt
    app.state.workers = None
    errors.install(app)
    # Before any route parses a body: bad text or a runaway body is a 422, never a 500.
    app.add_middleware(BodyGuard)
    # import_templates before hazard_routes: /api/hazards/{run_id} would take
    # /api/hazards/import-template for a run id.
    for module in (system, admin, me, playbooks, runs, tasks, evidence, extensions, campaigns,
                   import_templates, hazard_routes, import_routes, reporting):
        app.include_router(module.router)
    app.include_router(docs_page.router)
    app.include_router(pages.router)
    return app
