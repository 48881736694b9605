"""The API reference at /docs: one HTML page rendered on the server, with Jinja2, from the app's
own OpenAPI document (`app.openapi()`), styled by inline CSS and needing nothing else.

FastAPI's own /docs (Swagger UI) and /redoc (ReDoc) load their scripts and stylesheets from a
CDN, which a bureau's offline intranet cannot reach (SPEC §4): there they were blank pages. So
api/main.py turns them off and this page answers at /docs, and at /redoc too, so that an old
bookmark still finds it. Its Content-Security-Policy lets the page load nothing at all (no
script, no stylesheet, font or image from anywhere; inline styles only), which also proves it
needs nothing from elsewhere. Every text from the OpenAPI document is escaped (autoescape).
Public, as /openapi.json is: it says what the API takes, never anything of the data."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, StrictUndefined, Template

router = APIRouter(include_in_schema=False)

# Nothing may be fetched: no script, stylesheet, font, image, frame or connection; the page's
# own <style> is the one thing allowed. No form posts anywhere, no <base> to redirect links.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}

# The app's tags (one per routes/ module), Chinese first; a tag not listed shows as it is.
TAG_NAMES = {
    "system": "系统", "playbooks": "预案", "runs": "流程", "tasks": "任务", "evidence": "证据",
    "extensions": "延期申请", "campaigns": "专项行动", "registers": "台账", "imports": "批量导入",
}
STATUS_NAMES = {
    "200": "成功", "201": "已创建", "202": "已接受", "204": "无内容", "400": "请求有误",
    "401": "未登录或令牌无效", "403": "无权限", "404": "不存在", "409": "状态冲突",
    "413": "请求过大", "422": "输入有误", "503": "暂不可用", "default": "其他",
}
PLACES = {"path": "路径 path", "query": "查询 query", "header": "请求头 header",
          "cookie": "Cookie"}
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")

Token = tuple[str, str | None]  # a piece of a type's text, and the schema it links to (or None)
Segment = tuple[str, bool]  # a piece of a description, and whether it was `code`


@router.get("/docs", response_class=HTMLResponse)
@router.get("/redoc", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """The API reference (接口说明), from the app's own OpenAPI document."""
    app = request.app
    return HTMLResponse(render(app.openapi(), openapi_url=app.openapi_url), headers=HEADERS)


def render(spec: dict[str, Any], *, openapi_url: str | None = "/openapi.json") -> str:
    """The page for an OpenAPI document (a dict as `FastAPI.openapi()` returns it)."""
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    schemes: dict[str, Any] = spec.get("components", {}).get("securitySchemes", {})
    info = spec.get("info", {})
    groups = _groups(spec, schemas, schemes)
    return _template().render(
        title=str(info.get("title", "API")), version=str(info.get("version", "")),
        description=_paragraphs(info.get("description")), openapi_url=openapi_url,
        groups=groups, count=sum(len(g["operations"]) for g in groups),
        schemas=[_schema_entry(name, schemas[name], schemas) for name in sorted(schemas)])


def _groups(spec: dict[str, Any], schemas: dict[str, Any],
            schemes: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations grouped by their first tag (an untagged one by its path's first two parts),
    groups and operations in the document's order: the order the app includes its routes."""
    declared = {t.get("name"): t for t in spec.get("tags", []) if isinstance(t, dict)}
    groups: dict[str, dict[str, Any]] = {}
    for name in declared:
        groups[str(name)] = _group(str(name), declared)
    default_security = spec.get("security", [])
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            tags = op.get("tags") or ["/" + "/".join(path.strip("/").split("/")[:2])]
            key = str(tags[0])
            if key not in groups:
                groups[key] = _group(key, declared)
            groups[key]["operations"].append(
                _operation(method, path, op, item, schemas, schemes, default_security))
    for number, group in enumerate(groups.values(), start=1):
        group["anchor"] = f"group-{number}"
    return [g for g in groups.values() if g["operations"]]


def _group(name: str, declared: dict[Any, Any]) -> dict[str, Any]:
    zh = TAG_NAMES.get(name)
    return {"name": name, "label": f"{zh} {name}" if zh else name,
            "description": _paragraphs(declared.get(name, {}).get("description")),
            "operations": []}


def _operation(method: str, path: str, op: dict[str, Any], item: dict[str, Any],
               schemas: dict[str, Any], schemes: dict[str, Any],
               default_security: list[Any]) -> dict[str, Any]:
    security = op.get("security", default_security) or []
    auth = sorted({_scheme_label(name, schemes)
                   for requirement in security if isinstance(requirement, dict)
                   for name in requirement})
    # Path-level parameters apply to every method unless the operation redefines them.
    params = {(p.get("name"), p.get("in")): p for p in item.get("parameters", [])
              if isinstance(p, dict)}
    params.update({(p.get("name"), p.get("in")): p for p in op.get("parameters", [])
                   if isinstance(p, dict)})
    return {
        "method": method.upper(), "path": path,
        "anchor": "op-" + re.sub(r"[^A-Za-z0-9_]+", "-", f"{method}-{path}").strip("-"),
        "summary": str(op.get("summary", "")), "description": _paragraphs(op.get("description")),
        "deprecated": bool(op.get("deprecated")), "auth": auth,
        "parameters": [_parameter(p, schemas) for p in params.values()],
        "body": _body(op.get("requestBody"), schemas),
        "responses": _responses(op.get("responses", {}), schemas),
    }


def _scheme_label(name: str, schemes: dict[str, Any]) -> str:
    scheme = schemes.get(name, {})
    if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
        return "Bearer token"
    if scheme.get("type") == "apiKey":
        return f"{scheme.get('name', name)} ({scheme.get('in', '')})"
    return str(name)


def _parameter(param: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = param.get("schema", {})
    where = str(param.get("in", ""))
    return {"name": str(param.get("name", "")), "in": PLACES.get(where, where),
            "required": bool(param.get("required")), "type": type_tokens(schema, schemas),
            "description": _paragraphs(param.get("description") or schema.get("description")),
            "notes": _notes(schema), "deprecated": bool(param.get("deprecated"))}


def _body(body: Any, schemas: dict[str, Any]) -> dict[str, Any] | None:
    if not isinstance(body, dict):
        return None
    contents = []
    for media, content in body.get("content", {}).items():
        schema = content.get("schema", {}) if isinstance(content, dict) else {}
        resolved = _resolve(schema, schemas)
        contents.append({"media": str(media), "type": type_tokens(schema, schemas),
                         "fields": _fields(resolved, schemas),
                         "description": _paragraphs(resolved.get("description"))})
    return {"required": bool(body.get("required")), "contents": contents,
            "description": _paragraphs(body.get("description"))}


def _responses(responses: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    def order(code: str) -> tuple[int, str]:
        return (0, code) if code[:1].isdigit() else (1, code)

    out = []
    for code in sorted(responses, key=lambda c: order(str(c))):
        response = responses[code] if isinstance(responses[code], dict) else {}
        content = response.get("content", {})
        out.append({
            "code": str(code), "label": STATUS_NAMES.get(str(code), ""),
            "description": _paragraphs(response.get("description")),
            "contents": [{"media": str(media),
                          "type": type_tokens((c or {}).get("schema", {}), schemas)}
                         for media, c in content.items()]})
    return out


def _schema_entry(name: str, schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "anchor": _schema_anchor(name),
            "description": _paragraphs(schema.get("description")),
            "type": type_tokens({k: v for k, v in schema.items() if k != "title"}, schemas),
            "fields": _fields(schema, schemas), "notes": _notes(schema)}


def _fields(schema: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """An object's properties as rows; nothing for a schema that is not an object of fields."""
    required = set(schema.get("required", []))
    return [{"name": str(name), "type": type_tokens(prop, schemas),
             "required": name in required,
             "description": _paragraphs(prop.get("description")), "notes": _notes(prop)}
            for name, prop in schema.get("properties", {}).items() if isinstance(prop, dict)]


def _resolve(schema: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref followed (one level; the components section shows the rest)."""
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return schemas.get(_ref_name(ref), {})
    return schema


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _schema_anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def type_tokens(schema: Any, schemas: dict[str, Any]) -> list[Token]:
    """A schema's type as short text (`string (date-time) | null`, `array[StepPublic]`), with
    each named schema a link to its entry in the components section."""
    if not isinstance(schema, dict) or not schema:
        return [("任意 any", None)]
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = _ref_name(ref)
        return [(name, _schema_anchor(name) if name in schemas else None)]
    for key, joiner in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")):
        options = schema.get(key)
        if isinstance(options, list) and options:
            out: list[Token] = []
            for number, option in enumerate(options):
                if number:
                    out.append((joiner, None))
                out.extend(type_tokens(option, schemas))
            return out
    if "const" in schema:
        return [(_literal(schema["const"]), None)]
    if isinstance(schema.get("enum"), list):
        return [(" | ".join(_literal(v) for v in schema["enum"]), None)]
    kind = schema.get("type")
    if isinstance(kind, list):
        return [(" | ".join(str(k) for k in kind), None)]
    if kind == "array":
        return [("array[", None), *type_tokens(schema.get("items", {}), schemas), ("]", None)]
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return [("object{string: ", None), *type_tokens(extra, schemas), ("}", None)]
        return [("object", None)]
    if kind == "string" and (schema.get("format") == "binary" or "contentMediaType" in schema):
        return [("文件 file", None)]
    if kind:
        fmt = schema.get("format")
        return [(f"{kind} ({fmt})" if fmt else str(kind), None)]
    return [("任意 any", None)]


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _notes(schema: Any) -> list[str]:
    """Default and bounds, Chinese first, from the schema or the options of its anyOf (where
    FastAPI puts the bounds of an optional parameter)."""
    if not isinstance(schema, dict):
        return []
    notes = []
    if "default" in schema and schema["default"] is not None:
        notes.append(f"默认 default: {_literal(schema['default'])}")
    for source in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
        if not isinstance(source, dict):
            continue
        for key, words in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                           ("exclusiveMaximum", "<")):
            if key in source:
                notes.append(f"{words} {source[key]}")
        for key, words in (("minLength", "至少 {} 个字符 / min length {}"),
                           ("maxLength", "最多 {} 个字符 / max length {}"),
                           ("minItems", "至少 {} 项 / min items {}"),
                           ("maxItems", "最多 {} 项 / max items {}")):
            if key in source:
                notes.append(words.format(source[key], source[key]))
        if "pattern" in source:
            notes.append(f"格式 pattern: {source['pattern']}")
    return notes


def _paragraphs(text: Any) -> list[list[Segment]]:
    """A description as paragraphs (split at blank lines; a docstring's wrapped lines joined
    again), each a list of plain and `code` pieces."""
    if not isinstance(text, str) or not text.strip():
        return []
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        joined = lines[0]
        for line in lines[1:]:
            # No space between two Chinese characters, or before a list item's own line.
            if line.startswith(("- ", "* ")):
                joined += "\n" + line
            elif _is_cjk(joined[-1]) and _is_cjk(line[0]):
                joined += line
            else:
                joined += " " + line
        out.append(_segments(joined))
    return out


def _is_cjk(char: str) -> bool:
    return "\u3000" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef"


def _segments(text: str) -> list[Segment]:
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: keep it as text
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return [(part, number % 2 == 1) for number, part in enumerate(parts) if part]


@cache
def _template() -> Template:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    return env.from_string(PAGE)


PAGE = """\
{% macro text(paragraphs) %}
{% for paragraph in paragraphs %}
<p>{% for piece, is_code in paragraph %}{% if is_code %}<code>{{ piece }}</code>{% else %}\
{{ piece }}{% endif %}{% endfor %}</p>
{% endfor %}
{% endmacro %}
{% macro type(tokens) %}<span class="type">{% for piece, anchor in tokens %}{% if anchor %}\
<a href="#{{ anchor }}">{{ piece }}</a>{% else %}{{ piece }}{% endif %}{% endfor %}</span>\
{% endmacro %}
{% macro notes(items) %}{% if items %}<ul class="notes">{% for note in items %}\
<li>{{ note }}</li>{% endfor %}</ul>{% endif %}{% endmacro %}
{% macro fields(rows) %}
<table>
<thead><tr><th>字段 Field</th><th>类型 Type</th><th>必填 Required</th><th>说明 Description</th>\
</tr></thead>
<tbody>
{% for f in rows %}
<tr><td><code>{{ f.name }}</code></td><td>{{ type(f.type) }}</td>\
<td>{% if f.required %}<strong>是 yes</strong>{% else %}否 no{% endif %}</td>\
<td>{{ text(f.description) }}{{ notes(f.notes) }}</td></tr>
{% endfor %}
</tbody>
</table>
{% endmacro %}
<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }} 接口说明 · API reference</title>
<style>
:root { color-scheme: light; --line: #d8dde3; --soft: #f5f7f9; --ink: #1d2733; --dim: #5b6673; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.55;
  font: 15px/1.55 "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC",
  system-ui, sans-serif; }
header { padding: 20px 28px; background: #1f3b57; color: #fff; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 4px 0; color: #dce6ef; }
header code { background: rgba(255, 255, 255, .15); color: #fff; }
.layout { display: flex; align-items: flex-start; }
nav { position: sticky; top: 0; flex: 0 0 260px; max-height: 100vh; overflow: auto;
  padding: 16px 12px 32px 20px; border-right: 1px solid var(--line); background: var(--soft);
  font-size: 13px; }
nav h2 { font-size: 14px; margin: 14px 0 6px; }
nav ul { list-style: none; margin: 0; padding: 0; }
nav li { margin: 2px 0; }
nav a { color: var(--ink); text-decoration: none; }
nav a:hover { text-decoration: underline; }
main { flex: 1 1 auto; min-width: 0; padding: 8px 28px 48px; }
h2.group { margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #1f3b57;
  font-size: 20px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
details.op { margin: 12px 0; border: 1px solid var(--line); border-radius: 6px; }
details.op > summary { cursor: pointer; padding: 8px 12px; background: var(--soft);
  border-radius: 6px; list-style-position: inside; }
details.op[open] > summary { border-bottom: 1px solid var(--line);
  border-radius: 6px 6px 0 0; }
.op-body { padding: 4px 14px 12px; }
.method { display: inline-block; min-width: 62px; padding: 1px 6px; margin-right: 6px;
  border-radius: 4px; color: #fff; font: bold 12px/1.6 ui-monospace, Consolas, monospace;
  text-align: center; background: #5b6673; }
.m-GET { background: #1f6fb2; } .m-POST { background: #2e8540; } .m-PUT { background: #b26b00; }
.m-PATCH { background: #8a5a00; } .m-DELETE { background: #b3261e; }
.path { font: 14px ui-monospace, Consolas, monospace; font-weight: 600; }
.summary { color: var(--dim); margin-left: 8px; }
.badge { display: inline-block; margin-left: 8px; padding: 0 6px; border-radius: 10px;
  font-size: 12px; border: 1px solid var(--line); color: var(--dim); background: #fff; }
.badge.auth { border-color: #c98a00; color: #7a5300; background: #fff7e0; }
.badge.old { border-color: #b3261e; color: #b3261e; }
table { width: 100%; border-collapse: collapse; margin: 4px 0 10px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td p { margin: 0 0 4px; }
code, .type { font-family: ui-monospace, Consolas, "Courier New", monospace; font-size: 13px; }
code { background: #eef1f4; padding: 0 3px; border-radius: 3px; }
.type a { color: #1f6fb2; }
p { margin: 6px 0; white-space: pre-line; }
ul.notes { margin: 2px 0 0; padding-left: 18px; color: var(--dim); font-size: 13px; }
.muted { color: var(--dim); }
section.schema { margin: 14px 0; padding: 8px 14px; border: 1px solid var(--line);
  border-radius: 6px; }
section.schema h3 { margin-top: 4px; }
:target { outline: 2px solid #c98a00; }
@media (max-width: 800px) { .layout { display: block; } nav { position: static;
  max-height: none; border-right: 0; } main { padding: 8px 14px 40px; } }
@media print { nav { display: none; } details.op > summary { background: none; } }
</style>
</head>
<body>
<header>
<h1>{{ title }} 接口说明 <span class="muted">API reference</span></h1>
{% if version %}<p>版本 version {{ version }} · 共 {{ count }} 个接口 / {{ count }} operations\
</p>{% endif %}
{{ text(description) }}
</header>
<div class="layout">
<nav aria-label="目录 Contents">
<h2>目录 Contents</h2>
<ul>
<li><a href="#usage">使用说明 Usage</a></li>
{% for group in groups %}
<li><a href="#{{ group.anchor }}">{{ group.label }}</a></li>
{% endfor %}
<li><a href="#schemas">数据结构 Schemas</a></li>
</ul>
{% for group in groups %}
<h2>{{ group.label }}</h2>
<ul>
{% for op in group.operations %}
<li><a href="#{{ op.anchor }}"><code>{{ op.method }}</code> {{ op.path }}</a></li>
{% endfor %}
</ul>
{% endfor %}
</nav>
<main>
<h2 class="group" id="usage">使用说明 Usage</h2>
<p>本页由服务器根据本系统的 OpenAPI 文档生成，不需要连接外网。\
This page is generated by the server from its own OpenAPI document and loads nothing from \
the network.</p>
{% if openapi_url %}
<p>机器可读的 OpenAPI 文档 / machine-readable document: <code>{{ openapi_url }}</code></p>
{% endif %}
<p>标有“需要登录 (Bearer token)”的接口须带请求头 <code>Authorization: Bearer &lt;令牌&gt;</code>；\
令牌由 <code>closeloop token PERSON_ID</code> 生成。\
Operations marked as needing login take the header <code>Authorization: Bearer &lt;token&gt;\
</code>; a token comes from <code>closeloop token PERSON_ID</code>.</p>
<p>错误以 JSON 返回 <code>{"error": …, "detail": …}</code>：401 未登录或令牌无效，403 无权限，\
404 不存在，409 状态冲突，422 输入有误（<code>field</code> 指出哪个字段）。\
Errors answer JSON: 401 no or bad token, 403 wrong role or unit, 404 not found, 409 state \
conflict, 422 invalid input naming the <code>field</code>.</p>
{% for group in groups %}
<h2 class="group" id="{{ group.anchor }}">{{ group.label }}</h2>
{{ text(group.description) }}
{% for op in group.operations %}
<details class="op" id="{{ op.anchor }}" open>
<summary><span class="method m-{{ op.method }}">{{ op.method }}</span>\
<span class="path">{{ op.path }}</span><span class="summary">{{ op.summary }}</span>\
{% if op.auth %}<span class="badge auth">需要登录 ({{ op.auth | join(", ") }})</span>\
{% else %}<span class="badge">公开 public</span>{% endif %}\
{% if op.deprecated %}<span class="badge old">已弃用 deprecated</span>{% endif %}</summary>
<div class="op-body">
{{ text(op.description) }}
{% if op.parameters %}
<h3>参数 Parameters</h3>
<table>
<thead><tr><th>名称 Name</th><th>位置 In</th><th>必填 Required</th><th>类型 Type</th>\
<th>说明 Description</th></tr></thead>
<tbody>
{% for p in op.parameters %}
<tr><td><code>{{ p.name }}</code>{% if p.deprecated %} <span class="badge old">已弃用</span>\
{% endif %}</td><td>{{ p.in }}</td>\
<td>{% if p.required %}<strong>是 yes</strong>{% else %}否 no{% endif %}</td>\
<td>{{ type(p.type) }}</td><td>{{ text(p.description) }}{{ notes(p.notes) }}</td></tr>
{% endfor %}
</tbody>
</table>
{% endif %}
{% if op.body %}
<h3>请求体 Request body{% if op.body.required %} <span class="muted">（必填 required）</span>\
{% endif %}</h3>
{{ text(op.body.description) }}
{% for content in op.body.contents %}
<p><code>{{ content.media }}</code>: {{ type(content.type) }}</p>
{{ text(content.description) }}
{% if content.fields %}{{ fields(content.fields) }}{% endif %}
{% endfor %}
{% endif %}
<h3>响应 Responses</h3>
<table>
<thead><tr><th>状态码 Status</th><th>说明 Description</th><th>内容 Content</th></tr></thead>
<tbody>
{% for r in op.responses %}
<tr><td><code>{{ r.code }}</code> {{ r.label }}</td><td>{{ text(r.description) }}</td>\
<td>{% for content in r.contents %}<div><code>{{ content.media }}</code>: \
{{ type(content.type) }}</div>{% else %}<span class="muted">—</span>{% endfor %}</td></tr>
{% endfor %}
</tbody>
</table>
</div>
</details>
{% endfor %}
{% endfor %}
<h2 class="group" id="schemas">数据结构 Schemas</h2>
{% for s in schemas %}
<section class="schema" id="{{ s.anchor }}">
<h3><code>{{ s.name }}</code></h3>
{{ text(s.description) }}
{% if s.fields %}{{ fields(s.fields) }}{% else %}<p>类型 type: {{ type(s.type) }}</p>\
{{ notes(s.notes) }}{% endif %}
</section>
{% else %}
<p class="muted">无 none</p>
{% endfor %}
</main>
</div>
</body>
</html>
"""
