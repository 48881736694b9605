"""The web pages: commanders start and watch runs, inspectors work their inbox on a phone,
managers read the registers, the monthly ranking and the reporting figures (报送考核).

Each page is a Jinja2 shell (api/templates/) and a script (api/static/) that talks to the same
JSON API as everyone else, with the person's bearer token kept in the browser. So a page can do
exactly what its person may do through the API, the refusals and field errors are the API's own,
and there is no second, cookie-based way in to guard against cross-site requests. The pages load
nothing from outside the server (an intranet is offline) and their policy forbids it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from api.deps import MAX_ROW
from models.errors import NotFound

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Scripts and styles from this server only, no inline script, no frames, no outside address.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml"}

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)

router = APIRouter(include_in_schema=False)


def page(template: str, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, headers=HEADERS)


def wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, not a script or style): it is answered with a
    page, a 404 too, never JSON text on a white screen."""
    path = request.url.path
    return (request.method in ("GET", "HEAD") and not path.startswith(("/api/", "/static/"))
            and path not in ("/healthz", "/openapi.json")
            and "text/html" in request.headers.get("accept", ""))


def not_found(path: str) -> HTMLResponse:
    html = _env.get_template("not_found.html").render(path=path, page_id="not-found",
                                                      title="页面不存在")
    return HTMLResponse(html, status_code=404, headers=HEADERS)


def _row(value: int, what: str) -> int:
    # A page for an id no database row can have is the same "not found" the API gives.
    if not 1 <= value <= MAX_ROW:
        raise NotFound(what, value)
    return value


# (path, page id: its template and script, title). Who may see what is the API's business: a
# page is the same shell for everyone, and its script asks the API as the person.
PAGES = (
    ("/", "home", "闭环工作台"),           # sign in with a token; then the links of one's roles
    ("/inbox", "inbox", "我的待办"),       # an inspector's tasks, phone-sized, with countdowns
    ("/runs", "runs", "事件与流程"),       # responses, hazards, typhoon stages one may see
    ("/runs/new", "start", "启动预案"),    # start a playbook with its typed params
    ("/hazards", "hazards", "三个清单"),   # 隐患清单、整改清单、风险清单, exports and imports
    ("/ranking", "ranking", "月度排名"),   # 综合评价月排名 and its export
    ("/reporting", "reporting", "报送考核"),  # 信息报送考核: reports on time, 迟报, 漏报
)


def _shell(page_id: str, title: str) -> Callable[[], HTMLResponse]:
    def shell() -> HTMLResponse:
        return page(f"{page_id}.html", page_id=page_id, title=title)
    return shell


for _path, _page_id, _title in PAGES:
    router.add_api_route(_path, _shell(_page_id, _title), methods=["GET"],
                         response_class=HTMLResponse)


@router.get("/tasks/{task_id:int}", response_class=HTMLResponse)
def task(task_id: int) -> HTMLResponse:
    """One task: sign for it, hand in the work with photos, verify another's, ask for time."""
    return page("task.html", page_id="task", title="任务", task_id=_row(task_id, "task"))


@router.get("/runs/{run_id:int}", response_class=HTMLResponse)
def run(run_id: int) -> HTMLResponse:
    """A run: its steps and countdowns, escalations, documents and timeline."""
    return page("run.html", page_id="run", title="流程详情", run_id=_row(run_id, "run"))


@router.get("/runs/{run_id:int}/evaluation", response_class=HTMLResponse)
def evaluation(run_id: int) -> HTMLResponse:
    """演练评估 of a drill (复盘 of a real event): each task against its deadline, the summary,
    the written assessments and the report, for commanders and managers."""
    return page("evaluation.html", page_id="evaluation", title="演练评估",
                run_id=_row(run_id, "run"))


@router.get("/runs/{run_id:int}/documents/{document_id:int}", response_class=HTMLResponse)
def document(run_id: int, document_id: int) -> HTMLResponse:
    """One document of a run on a page of its own, to read and to print (打印) on its own."""
    return page("document.html", page_id="document", title="文书",
                run_id=_row(run_id, "run"), document_id=_row(document_id, "document"))


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The pages' own scripts and styles: a file of api/static by its plain name, nothing else."""
    path = STATIC / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise NotFound("file", name)
    return Response(path.read_bytes(), media_type=kind,
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})
