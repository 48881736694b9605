"""Playbook expressions: Jinja2 in an immutable sandbox, parsed once, evaluated to native values.

`when`, `for_each` and the `{{ }}` strings in a step's `with` are written by operators, not
programmers. So they run in `ImmutableSandboxedEnvironment` (no access to Python internals,
no mutation of run data), an undefined name fails loudly (StrictUndefined) instead of
quietly becoming "", and nothing here ever calls Python's `eval`.

Loading a playbook only *parses* an expression (syntax, names, filters and tests are all
checked then, and what the sandbox would refuse whatever the values: expression_rules.py);
the Python code generation, which costs several times the parse, happens on first
evaluation. A 100-step playbook therefore validates in milliseconds, and each distinct
expression text is parsed and compiled at most once per process (the caches below).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flows.expression_rules import run_time_failure
from flows.sampling import SampleCall, sample_calls
from models.errors import CloseloopError

# Top-level names every expression may use; helper functions (e.g. `units`) come on top,
# from LoadContext.expression_names.
# `paired` has values only in a step's `checks` (the item's record of each item_needs step).
CONTEXT_NAMES = frozenset({"params", "run", "steps", "item", "outputs", "paired",
                           "previous"})


class ExpressionError(CloseloopError):
    """An expression that does not parse, names something unknown, or fails to evaluate."""

    def __init__(self, message: str, *, source: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.source = source


def _make_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    # Text generators have no place in a condition; keep range/dict/namespace.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


ENV = _make_environment()
# Names that resolve without the caller providing them (Jinja globals such as `range`).
BUILTIN_NAMES = frozenset(ENV.globals)

_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


def _walk(tree: nodes.Node, kind: type[nodes.Node] | tuple[type[nodes.Node], ...]) -> list[Any]:
    """Nodes of `kind` in `tree`, the root included (`find_all` skips the root)."""
    found = [tree] if isinstance(tree, kind) else []
    return found + list(tree.find_all(kind))


def _lookups(tree: nodes.Node) -> frozenset[tuple[str, str]]:
    """Constant first-level lookups on a top-level name: `params.grade`, `steps['a.b']`."""
    found: set[tuple[str, str]] = set()
    for node in _walk(tree, (nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not isinstance(base, nodes.Name) or base.ctx != "load":
            continue
        if isinstance(node, nodes.Getattr):
            found.add((base.name, node.attr))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add((base.name, node.arg.value))
    return frozenset(found)


def _key(node: nodes.Node) -> tuple[nodes.Node, str] | None:
    """(what is read from, the constant key) of `a.key` or `a['key']`."""
    if isinstance(node, nodes.Getattr):
        return node.node, node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
            and isinstance(node.arg.value, str):
        return node.node, node.arg.value
    return None


def _output_lookups(tree: nodes.Node) -> frozenset[tuple[str, str]]:
    """(step, output) of each constant `steps.<step>.outputs.<output>` (either bracket form),
    so a misspelt output is found when the playbook loads."""
    found: set[tuple[str, str]] = set()
    for node in _walk(tree, (nodes.Getattr, nodes.Getitem)):
        output = _key(node)
        if output is None:
            continue
        outputs = _key(output[0])
        if outputs is None or outputs[1] != "outputs":
            continue
        step = _key(outputs[0])
        if step is not None and isinstance(step[0], nodes.Name) and step[0].name == "steps":
            found.add((step[1], output[1]))
    return frozenset(found)


def _unit_types(tree: nodes.Node) -> frozenset[str]:
    """The unit types written as constants in `units(type='community')` (or its first
    argument): the load check holds them to the org chart's types, since a misspelt one
    finds no units and a fan-out over it hands nothing out, silently."""
    found: set[str] = set()
    for call in _walk(tree, nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "units"):
            continue
        given = [kw.value for kw in call.kwargs if kw.key == "type"] + call.args[:1]
        found.update(v.value for v in given
                     if isinstance(v, nodes.Const) and isinstance(v.value, str))
    return frozenset(found)


def _check_filters_and_tests(tree: nodes.Node, source: str) -> None:
    # Jinja only notices an unknown filter or test at code generation; we skip that at load
    # time (see module docstring), so check here with the same message Jinja would give.
    for node in _walk(tree, nodes.Filter):
        if node.name not in ENV.filters:
            raise ExpressionError(f"没有名为 {node.name} 的过滤器 / no filter named "
                                  f"'{node.name}'", source=source)
    for node in _walk(tree, nodes.Test):
        if node.name not in ENV.tests:
            raise ExpressionError(f"没有名为 {node.name} 的测试 / no test named '{node.name}'",
                                  source=source)


def _check_run_time_failure(tree: nodes.Node, source: str) -> None:
    # What parses but the sandbox refuses whatever the values (flows/expression_rules.py):
    # refused here, so at load, not by an expression_failed event when a run gets there.
    problem = run_time_failure(tree, CONTEXT_NAMES)
    if problem is not None:
        raise ExpressionError(problem, source=source)


def _syntax_message(exc: TemplateError) -> str:
    # Jinja says what is wrong in English only; the Chinese half says what kind of mistake.
    message = (exc.message or str(exc)).strip()
    return f"表达式写法有误 / invalid expression: {message[:1].lower()}{message[1:]}"


class CompiledExpression:
    """A parsed expression; `names` are the top-level names it reads."""

    __slots__ = ("source", "names", "lookups", "unit_types", "output_lookups", "samples",
                 "_tree", "_function", "_lock")

    def __init__(self, source: str, tree: nodes.Expr) -> None:
        self.source = source
        self.names: frozenset[str] = frozenset(
            n.name for n in _walk(tree, nodes.Name) if n.ctx == "load"
        )
        self.lookups: frozenset[tuple[str, str]] = _lookups(tree)
        self.unit_types: frozenset[str] = _unit_types(tree)
        self.output_lookups: frozenset[tuple[str, str]] = _output_lookups(tree)
        # Each `sample(...)` as written: its count is judged at load (flows/sampling.py).
        self.samples: tuple[SampleCall, ...] = sample_calls(tree)
        self._tree = tree
        self._function: TemplateExpression | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"

    def _compiled(self) -> TemplateExpression:
        if self._function is None:
            with self._lock:
                if self._function is None:
                    body = [nodes.Assign(nodes.Name("result", "store"), self._tree, lineno=1)]
                    template = ENV.from_string(nodes.Template(body, lineno=1))
                    self._function = TemplateExpression(template, undefined_to_none=False)
        return self._function

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value as a Python object (a bool, a list, ...), never its text."""
        try:
            result = self._compiled()(dict(context))
            _reject_undefined(result)
        except ExpressionError:
            raise
        except UndefinedError as exc:
            raise ExpressionError(f"{exc.message} in '{self.source}'", source=self.source) from exc
        except Exception as exc:  # the sandbox, a bad comparison, a helper that failed
            raise ExpressionError(f"{exc} in '{self.source}'", source=self.source) from exc
        return result


class CompiledTemplate:
    """A `{{ }}` string: `render` gives text, `names`/`lookups` as for expressions."""

    __slots__ = ("source", "names", "lookups", "_template")

    def __init__(self, source: str, template: Template, tree: nodes.Template) -> None:
        self.source = source
        self.names: frozenset[str] = frozenset(meta.find_undeclared_variables(tree))
        self.lookups: frozenset[tuple[str, str]] = _lookups(tree)
        self._template = template

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.source!r})"

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self._template.render(dict(context))
        except UndefinedError as exc:
            raise ExpressionError(f"{exc.message} in '{self.source}'", source=self.source) from exc
        except Exception as exc:
            raise ExpressionError(f"{exc} in '{self.source}'", source=self.source) from exc


def _reject_undefined(value: Any) -> None:
    # StrictUndefined only fails when *used*; a bare `params.nope` (or one inside a list)
    # would come back as an Undefined object, so make it fail here.
    if isinstance(value, Undefined):
        str(value)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_undefined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _reject_undefined(item)


@lru_cache(maxsize=8192)
def compile_expression(expr: str) -> CompiledExpression:
    """Parse a bare expression (`params.grade == '重大'`); raises ExpressionError."""
    if not isinstance(expr, str) or not expr.strip():
        raise ExpressionError("表达式为空 / invalid expression: it is empty", source=str(expr))
    try:
        parser = Parser(ENV, expr, state="variable")
        tree = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise TemplateSyntaxError(f"unexpected '{token.value}' after the expression", 1)
        tree.set_environment(ENV)
    except TemplateSyntaxError as exc:
        raise ExpressionError(_syntax_message(exc), source=expr) from exc
    _check_filters_and_tests(tree, expr)
    _check_run_time_failure(tree, expr)
    return CompiledExpression(expr, tree)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> CompiledTemplate:
    """Parse and compile a `{{ }}` string; raises ExpressionError."""
    try:
        tree = ENV.parse(source)
    except TemplateError as exc:
        raise ExpressionError(_syntax_message(exc), source=source) from exc
    _check_run_time_failure(tree, source)
    try:
        template = ENV.from_string(tree)
    except TemplateError as exc:
        raise ExpressionError(_syntax_message(exc), source=source) from exc
    return CompiledTemplate(source, template, tree)


def is_template_string(value: object) -> bool:
    """True for a string holding Jinja markup (`{{ }}`, `{% %}` or `{# #}`)."""
    return isinstance(value, str) and any(marker in value for marker in _TEMPLATE_MARKERS)


def compile_value(value: str) -> CompiledExpression | CompiledTemplate:
    """A `with` string: exactly one `{{ expr }}` keeps its native type, else it is text."""
    match = _SINGLE_EXPRESSION.match(value)
    if match:
        return compile_expression(match["expr"])
    return compile_template(value)


def render_string(template: str, context: Mapping[str, Any]) -> str:
    """Render a `{{ }}` string to text; raises ExpressionError."""
    return compile_template(template).render(context)


def resolve_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Resolve a `with` value at run time.

    `"{{ params.units }}"` (one expression and nothing else) gives the native value (a list
    stays a list); any other string with markup is rendered to text; lists and mappings are
    resolved item by item; everything else is returned as it is.
    """
    if isinstance(value, str):
        if not is_template_string(value):
            return value
        compiled = compile_value(value)
        if isinstance(compiled, CompiledExpression):
            return compiled.evaluate(context)
        return compiled.render(context)
    if isinstance(value, list):
        return [resolve_value(item, context) for item in value]
    if isinstance(value, dict):
        return {key: resolve_value(item, context) for key, item in value.items()}
    return value


def evaluate(expr: str, context: Mapping[str, Any]) -> Any:
    """Shorthand for `compile_expression(expr).evaluate(context)`."""
    return compile_expression(expr).evaluate(context)
