"""What a step's template says, checked when the playbook loads: Jinja syntax, filters and
tests that exist, the templates it includes or imports, and the names it reads. Before this,
a `{{ params.chemical }` (one brace short) or a misspelt `parms` passed `closeloop validate`
and was found only when the document step ran in a real incident, filing a stub instead of
the report.

Names are checked against everything a template can be given (a step's document or message,
or a ladder level's letter: flows/segments.py and flows/sweeper.py build those contexts) and
the names the template assigns itself ({% set %}, loops, macros, imports). Keys under a name
(`params.chemical`, `steps.assess.outputs.x`) are not checked here: templates are shared by
playbooks and guard optional values with `is defined`."""

from __future__ import annotations

import threading
from pathlib import Path

from jinja2 import FileSystemLoader, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from flows.expressions import CONTEXT_NAMES

# What the engine puts in a template's context, over all its uses (see the module docstring).
TEMPLATE_NAMES = CONTEXT_NAMES | frozenset({
    "units", "campaign", "step", "now_local", "district_name", "numbers", "doc_no", "evidence",
    "kind", "kind_label", "level", "repeat", "unit_name", "minutes_late", "level_title",
    "verify",
})

_lock = threading.Lock()
_environments: dict[str, SandboxedEnvironment] = {}
# (templates dir, name) -> (newest mtime_ns in the dir, problems): a 5,000-step playbook
# naming one template parses it once.
_seen: dict[tuple[str, str], tuple[int, list[tuple[str, str]]]] = {}


def _environment(templates_dir: str) -> SandboxedEnvironment:
    with _lock:
        env = _environments.get(templates_dir)
        if env is None:
            # As flows/render.py builds it: the same syntax, the same filters.
            env = SandboxedEnvironment(loader=FileSystemLoader(templates_dir),
                                       trim_blocks=True, lstrip_blocks=True,
                                       keep_trailing_newline=True)
            env.filters["local"] = lambda value, fmt="": value
            _environments[templates_dir] = env
        return env


def template_problems(templates_dir: str, name: str, known: frozenset[str] = frozenset()
                      ) -> list[tuple[str, str]]:
    """(中文, English) for each mistake in template `name` and those it includes; `known`
    adds the playbook's helper names (units, campaign)."""
    folder = Path(templates_dir)
    if not (folder / name).is_file():
        return []  # a missing template is the caller's to report
    # The newest file of the folder: an included template edited counts as a change too.
    mtime = max((f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()), default=0)
    key = (templates_dir, name)
    cached = _seen.get(key)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    problems = _check(_environment(templates_dir), name, TEMPLATE_NAMES | known, set())
    _seen[key] = (mtime, problems)
    return problems


def _check(env: SandboxedEnvironment, name: str, allowed: frozenset[str], visited: set[str]
           ) -> list[tuple[str, str]]:
    visited.add(name)
    try:
        source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        tree = env.parse(source, name=name)
        env.compile(tree, name=name)  # unknown filters and tests fail here
    except TemplateSyntaxError as exc:
        where = exc.name or name
        return [(f"模板 {where} 第 {exc.lineno} 行：{exc.message}",
                 f"template {where} line {exc.lineno}: {exc.message}")]
    except TemplateError as exc:
        return [(f"模板 {name}：{exc.message}", f"template {name}: {exc.message}")]
    problems: list[tuple[str, str]] = []
    for other in meta.find_referenced_templates(tree):
        if other is None or other in visited:
            continue  # a name computed at render time cannot be checked here
        if not (Path(env.loader.searchpath[0]) / other).is_file():  # type: ignore[union-attr]
            problems.append((f"模板 {name} 引用的模板 {other} 不存在",
                             f"template {name} includes '{other}', which does not exist"))
            continue
        problems += _check(env, other, allowed, visited)
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for macro in tree.find_all(nodes.Macro):
        assigned.add(macro.name)
        assigned.update(arg.name for arg in macro.args)
    unknown = meta.find_undeclared_variables(tree) - assigned - allowed \
        - set(env.globals)
    for bad in sorted(unknown):
        shown = "、".join(sorted(TEMPLATE_NAMES))
        problems.append((f"模板 {name} 使用了未知的名称 {bad}（可用：{shown}）",
                         f"template {name} reads an unknown name '{bad}' (known: "
                         f"{', '.join(sorted(TEMPLATE_NAMES))})"))
    return problems
