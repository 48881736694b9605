"""What a step's template says, checked when the playbook loads: Jinja syntax, filters and
tests that exist, the templates it includes or imports, and the names it reads. Before this,
a `{{ params.chemical }` (one brace short) or a misspelt `parms` passed `closeloop validate`
and was found only when the document step ran in a real incident, filing a stub instead of
the report.

Names are checked against everything a template can be given (a step's document or message,
or a ladder level's letter: flows/segments.py and flows/sweeper.py build those contexts) and
the names the template assigns itself ({% set %}, loops, macros, imports). Keys under a name
(`params.chemical`, `steps['assess'].outputs.x`) are listed by `template_lookups` for the
playbook's check to hold to its params, steps and outputs, except those the template guards
(`is defined`, `| default`, `'x' in params`): templates shared by playbooks read optional
values that way, while an unguarded `params.chemcal` fails at render time in every run."""

from __future__ import annotations

import threading
from pathlib import Path

from jinja2 import FileSystemLoader, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from flows.expressions import CONTEXT_NAMES

# What the engine puts in a template's context, over all its uses (see the module docstring).
TEMPLATE_NAMES = CONTEXT_NAMES | frozenset({
    "units", "campaign", "sample", "step", "now_local", "district_name", "numbers", "doc_no",
    "evidence", "kind", "kind_label", "level", "repeat", "unit_name", "minutes_late", "level_title",
    "verify", "ordinal",
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
    _lookups_seen[key] = (mtime, _lookups_of(templates_dir, name))
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


# (templates dir, name) -> (newest mtime_ns in the dir, (first-level lookups, output lookups))
_lookups_seen: dict[tuple[str, str], tuple[int, tuple[frozenset[tuple[str, str]],
                                                      frozenset[tuple[str, str]]]]] = {}
_CHECKED_BASES = ("params", "steps")


def template_lookups(templates_dir: str, name: str
                     ) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """The constant keys template `name` (and what it includes) reads without a guard:
    ({("params", "chemical"), ("steps", "monitor")}, {("monitor", "conclusion")}), the second
    from `steps.<step>.outputs.<output>`. Empty for a template that does not parse (its
    syntax error is template_problems' to report)."""
    folder = Path(templates_dir)
    if not (folder / name).is_file():
        return frozenset(), frozenset()
    key = (templates_dir, name)
    if key in _seen and key in _lookups_seen and _seen[key][0] == _lookups_seen[key][0]:
        # template_problems, called first for every step, has just looked at the folder: a
        # 5,000-step playbook does not list the templates folder twice per step.
        return _lookups_seen[key][1]
    mtime = max((f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()), default=0)
    found = _lookups_of(templates_dir, name)
    _lookups_seen[key] = (mtime, found)
    return found


def _lookups_of(templates_dir: str, name: str
                ) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    first: set[tuple[str, str]] = set()
    outputs: set[tuple[str, str]] = set()
    _collect(_environment(templates_dir), name, set(), first, outputs)
    return frozenset(first), frozenset(outputs)


def _collect(env: SandboxedEnvironment, name: str, visited: set[str],
             first: set[tuple[str, str]], outputs: set[tuple[str, str]]) -> None:
    visited.add(name)
    try:
        source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        tree = env.parse(source, name=name)
    except TemplateError:
        return
    guarded = _guarded(tree)
    # `steps.values()`, `params.get('x')`: a method of the mapping, not a key in it.
    called = {id(call.node) for call in tree.find_all(nodes.Call)}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if id(node) in called:
            continue
        chain = _chain(node)
        if chain is None or chain[0] not in _CHECKED_BASES or chain[:2] in guarded:
            continue
        if len(chain) >= 2:
            first.add((chain[0], chain[1]))
        if chain[0] == "steps" and len(chain) >= 4 and chain[2] == "outputs" \
                and ("steps", chain[1], "outputs", chain[3]) not in guarded:
            outputs.add((chain[1], chain[3]))
    for other in meta.find_referenced_templates(tree):
        if other is not None and other not in visited:
            _collect(env, other, visited, first, outputs)


def _chain(node: nodes.Node) -> tuple[str, ...] | None:
    """`steps['a'].outputs.x` -> ("steps", "a", "outputs", "x"); None past a computed key or
    when the chain does not start at a name the template reads from its context."""
    keys: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            keys.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            return (node.name, *reversed(keys))
        else:
            return None


def _guarded(tree: nodes.Node) -> set[tuple[str, ...]]:
    """The chains a template guards, cut to (base, key), and to (steps, s, outputs, o) for
    outputs: tested (`is defined`, `is none`, ...), given a `default`, or asked `'k' in x`."""
    chains: list[tuple[str, ...]] = []
    for test in tree.find_all(nodes.Test):
        chain = _chain(test.node)
        chains += [chain] if chain else []
    for filt in tree.find_all(nodes.Filter):
        chain = _chain(filt.node) if filt.node is not None and filt.name in ("default", "d") \
            else None
        chains += [chain] if chain else []
    for compare in tree.find_all(nodes.Compare):
        if not (isinstance(compare.expr, nodes.Const) and isinstance(compare.expr.value, str)):
            continue
        for operand in compare.ops:
            chain = _chain(operand.expr) if operand.op in ("in", "notin") else None
            chains += [(*chain, compare.expr.value)] if chain else []
    guarded: set[tuple[str, ...]] = set()
    for chain in chains:
        guarded.add(chain[:2])
        if len(chain) >= 4 and chain[2] == "outputs":
            guarded.add(chain[:4])
    return guarded
