"""Expressions that parse, yet can only fail when they run: refused when the playbook loads.

`when: "().__class__.__bases__[0].__subclasses__()"` passed `closeloop validate` and failed
when a run reached the step (an `expression_failed` event instead of a decision), though SPEC
§2 says bad expressions are caught at load. The sandbox refuses these at run time whatever
the values are, so they are refused from the parsed tree (jinja2.nodes), before any value:

* reading a name that starts with `_` (Python's internals: `__class__`, `_fields`), except a
  key of the playbook's own data (`params._x`, `steps.a.outputs._x`, `item._x`: a param or
  output may be named so, and the sandbox reads a dict's keys); `__` names everywhere;
* calling what is not a function: `params(...)`, `steps()`;
* calling a method that changes a list, dict or set (`.append`, `.update`, ...): the
  immutable sandbox refuses every one;
* `range(N)` of constants with more than the sandbox's MAX_RANGE items, or that range()
  itself refuses (`range(1, 5, 0)`).

Messages read `中文 / English`, as every load error does.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator

from jinja2 import nodes
from jinja2.sandbox import MAX_RANGE

# What the engine hands an expression that holds the playbook's own data, by name or as the
# key under which a step's or the run's data sits.
_DATA_NAMES = frozenset({"params", "outputs", "item"})
_DATA_KEYS = frozenset({"params", "outputs"})
# Methods that change a list, dict, set or deque (jinja2.sandbox's table of them): the
# immutable sandbox refuses every call, whatever the value.
MUTATING = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort",
                      "reverse", "update", "setdefault", "popitem", "add", "discard",
                      "difference_update", "intersection_update",
                      "symmetric_difference_update", "rotate", "popleft", "appendleft",
                      "extendleft"})
# Filters that read attributes by a name given as a string.
_ATTRIBUTE_FILTERS = frozenset({"attr", "map", "selectattr", "rejectattr", "groupby", "sort",
                                "sum", "unique", "min", "max"})
_HUGE = 10**30  # stands for any larger constant: a range of it is far too long anyway


def run_time_failure(tree: nodes.Node, not_callable: frozenset[str]) -> str | None:
    """Why `tree` can only fail when it runs, or None. `not_callable`: the context's names
    that hold values, not functions."""
    for node in _nodes(tree):
        problem = _problem(node, not_callable)
        if problem is not None:
            return problem
    return None


def _nodes(tree: nodes.Node) -> Iterator[nodes.Node]:
    """Children before their parent: in `().__class__.__bases__` the `__class__` read comes
    first, as it is written."""
    for child in tree.iter_child_nodes():
        yield from _nodes(child)
    yield tree


def _problem(node: nodes.Node, not_callable: frozenset[str]) -> str | None:
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        name = node.attr if isinstance(node, nodes.Getattr) else _const_str(node.arg)
        if name is not None and name.startswith("_") and not (
                not name.startswith("__") and _holds_data(node.node)):
            return _internal(name)
    elif isinstance(node, nodes.Filter):
        return _attribute_filter(node)
    elif isinstance(node, nodes.Call):
        return _call(node, not_callable)
    return None


def _holds_data(node: nodes.Node) -> bool:
    """`params`, `outputs`, `item`, or `<anything>.params` / `.outputs`: a dict of the
    playbook's own keys."""
    if isinstance(node, nodes.Name):
        return node.name in _DATA_NAMES
    if isinstance(node, nodes.Getattr):
        return node.attr in _DATA_KEYS
    return isinstance(node, nodes.Getitem) and _const_str(node.arg) in _DATA_KEYS


def _const_str(node: nodes.Node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def _internal(name: str) -> str:
    return (f"表达式不能读取以下划线开头的名称 {name}：这是 Python 的内部属性，"
            f"运行时会被沙箱拒绝 / the expression reads '{name}': names starting with '_' "
            "are Python internals, which the sandbox refuses at run time")


def _attribute_filter(node: nodes.Filter) -> str | None:
    # `x|attr('__class__')`, `items|map(attribute='__class__')`: the same reads, by a name
    # given as text (dotted for a path). attr() reads attributes only, never a dict's keys;
    # the others read keys first, so only `__` names are sure to fail there.
    if node.name not in _ATTRIBUTE_FILTERS:
        return None
    for value in [*node.args[:1], *(kw.value for kw in node.kwargs if kw.key == "attribute")]:
        for part in (_const_str(value) or "").split("."):
            if part.startswith("__") or (node.name == "attr" and part.startswith("_")):
                return _internal(part)
    return None


def _call(node: nodes.Call, not_callable: frozenset[str]) -> str | None:
    called = node.node
    if isinstance(called, nodes.Name) and called.name in not_callable:
        return (f"{called.name} 是数据，不是函数，不能调用 / '{called.name}' is data, not a "
                "function: it cannot be called")
    if isinstance(called, nodes.Getattr) and called.attr in MUTATING:
        return (f"表达式不能调用会修改数据的方法 {called.attr}()，运行时会被沙箱拒绝 / the "
                f"expression calls {called.attr}(), which changes data: the sandbox refuses it "
                "at run time")
    if isinstance(called, nodes.Name) and called.name == "range":
        return _range(node)
    return None


def _range(node: nodes.Call) -> str | None:
    if node.kwargs or node.dyn_args or node.dyn_kwargs:
        return None
    values = [_const_int(arg) for arg in node.args]
    ints = [value for value in values if value is not None]
    if len(ints) < len(values):
        return None  # known only at run time
    try:
        count = len(range(*ints))
    except (TypeError, ValueError) as exc:
        return f"range() 的参数有误 / invalid range(): {exc}"
    except OverflowError:  # more items than a machine word counts
        count = _HUGE
    if count <= MAX_RANGE:
        return None
    return (f"range() 有 {count:,} 项，超过沙箱的上限 {MAX_RANGE:,} 项，运行时会失败 / "
            f"range() of {count:,} items is more than the sandbox's limit of {MAX_RANGE:,}: "
            "it fails at run time")


_ARITHMETIC = {nodes.Add: operator.add, nodes.Sub: operator.sub, nodes.Mul: operator.mul,
               nodes.Pow: operator.pow}


def _const_int(node: nodes.Node) -> int | None:
    """The value of a constant integer expression (`100000`, `-5`, `10**6`, `3 * 50000`), or
    None. Clamped at ±_HUGE, so that `10 ** 10 ** 10` costs nothing to judge."""
    if isinstance(node, nodes.Const):
        value = node.value
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(node, nodes.Neg | nodes.Pos):
        inner = _const_int(node.node)
        return None if inner is None else (-inner if isinstance(node, nodes.Neg) else inner)
    op = _ARITHMETIC.get(type(node))
    if op is None:
        return None
    left, right = _const_int(node.left), _const_int(node.right)  # type: ignore[attr-defined]
    if left is None or right is None:
        return None
    if op is operator.pow:
        if right < 0:
            return None  # a float: range() refuses it at run time, named there
        if abs(left) > 1 and right > 100:
            return _HUGE if left > 0 or right % 2 == 0 else -_HUGE
    return max(-_HUGE, min(_HUGE, int(op(left, right))))
