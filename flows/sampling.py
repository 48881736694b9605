"""`sample(items, count)`: a random draw that a run makes once and keeps, and its load checks.

The duty room's spot check (一键通抽查、随机签到, seeds/002 二(二)) calls a random few of the
responsible people: `for_each: "sample(units(type='community', within=run.unit), params.count)"`.
The engine may evaluate a fan-out again (a segment replayed after a crash, a restart between the
draw and its commit), so the draw must not change: it is seeded from the run id. Keyed with the
installation's secret (CLOSELOOP_SECRET, or the one kept in the data dir): a spot check anyone
could work out from the next run's number (or that draws the same communities for run #7 in
every bureau) would not be random to the people it checks. Each item is ranked by SHA-256 of
the seed and the item's key (a unit by its id) and the `count` lowest are drawn, in the order
the items came: the same run draws the same units whatever the process, the Python version or
the hash seed, and another run draws afresh.

At load, what can only fail when a run gets there is refused at the expression's
file:line:col: a count that is not a whole number of at least 1, a count read from a
parameter that is not an `int` with `min` of at least 1 (a start with 0 would draw nobody
and the spot check would check nobody), and a call that does not give exactly the two
arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes

NAME = "sample"
_NOT_CONSTANT = object()


class SampleError(ValueError):
    """A draw asked of what cannot be drawn from, or for a count that is not a count."""


def seed_for_run(run_id: int | None, secret: str) -> str:
    """The run's seed, an HMAC of its id under the installation's secret: the same for the run
    in every process of the installation, not to be worked out without the secret."""
    return hmac.new(secret.encode(), f"closeloop:sample:run:{run_id}".encode(),
                    hashlib.sha256).hexdigest()


def _key(item: Any) -> str:
    # A unit (or any record with an id) by its id, so the draw does not move when a unit's
    # name is edited; anything else by its JSON.
    if isinstance(item, Mapping) and "id" in item:
        return f"id:{item['id']}"
    return json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)


def draw(items: Any, count: Any, *, seed: str) -> list[Any]:
    """`count` of `items` (all of them when there are fewer), in their own order."""
    if isinstance(items, str | bytes | Mapping) or not hasattr(items, "__iter__"):
        raise SampleError("sample() 的第一个参数应为列表 / sample() draws from a list, "
                          f"not {type(items).__name__}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SampleError(f"抽取数量应为不小于 1 的整数，实为 {count!r} / the number to draw "
                          f"must be a whole number of at least 1, not {count!r}")
    pool = list(items)

    def rank(index: int) -> str:
        return hashlib.sha256(f"{seed}\0{_key(pool[index])}".encode()).hexdigest()

    chosen = sorted(sorted(range(len(pool)), key=rank)[:count])
    return [pool[i] for i in chosen]


@dataclass(frozen=True)
class SampleCall:
    """One `sample(...)` as written: enough to judge it without values."""

    positional: int
    keywords: tuple[str, ...]
    count: Any = _NOT_CONSTANT  # the constant count, if written as one
    count_param: str | None = None  # `params.x` / `params['x']`, if read from one


def sample_calls(tree: nodes.Node) -> tuple[SampleCall, ...]:
    found = [tree] if isinstance(tree, nodes.Call) else []
    calls = []
    for call in [*found, *tree.find_all(nodes.Call)]:
        if not (isinstance(call.node, nodes.Name) and call.node.name == NAME):
            continue
        arg = call.args[1] if len(call.args) > 1 else None
        count, param = _NOT_CONSTANT, None
        if isinstance(arg, nodes.Const):
            count = arg.value
        elif isinstance(arg, nodes.Neg) and isinstance(arg.node, nodes.Const) \
                and isinstance(arg.node.value, int | float):
            count = -arg.node.value
        elif isinstance(arg, nodes.Getattr) and _is_params(arg.node):
            param = arg.attr
        elif isinstance(arg, nodes.Getitem) and _is_params(arg.node) \
                and isinstance(arg.arg, nodes.Const) and isinstance(arg.arg.value, str):
            param = arg.arg.value
        calls.append(SampleCall(positional=len(call.args),
                                keywords=tuple(kw.key for kw in call.kwargs),
                                count=count, count_param=param))
    return tuple(calls)


def _is_params(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "params"


def sample_problems(calls: tuple[SampleCall, ...], params: Mapping[str, Any] | None
                    ) -> list[str]:
    """Messages (中文 / English) for the calls that can only fail at run time. `params`: the
    playbook's raw `params:` mapping (None when unreadable: the count's param is not judged)."""
    out: list[str] = []
    for call in calls:
        if call.positional != 2 or call.keywords:
            out.append("sample() 需要两个参数：抽取范围和抽取数量，如 sample(units(type="
                       "'community', within=run.unit), params.count) / sample() takes two "
                       "arguments, what to draw from and how many")
            continue
        if call.count is not _NOT_CONSTANT:
            value = call.count
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                out.append(f"sample() 的抽取数量应为不小于 1 的整数，实为 {value!r} / the "
                           f"number to draw must be a whole number of at least 1, not "
                           f"{value!r}")
        elif call.count_param is not None and isinstance(params, Mapping):
            out += _param_problems(call.count_param, params)
    return out


def _param_problems(name: str, params: Mapping[str, Any]) -> list[str]:
    spec = params.get(name)
    if not isinstance(spec, Mapping):
        return []  # an unknown param is named by the reference check
    if spec.get("type") != "int":
        return [f"sample() 的抽取数量取自参数 {name}，该参数应为 int（整数），实为 "
                f"{spec.get('type')} / the number to draw comes from param '{name}', which "
                f"must be an int, not {spec.get('type')}"]
    low = spec.get("min")
    if isinstance(low, bool) or not isinstance(low, int | float) or low < 1:
        return [f"sample() 的抽取数量取自参数 {name}，该参数应写明 min: 1 或更大（为 0 时一个"
                f"也抽不到）/ the number to draw comes from param '{name}', which must set "
                f"min: 1 or more (0 would draw nobody)"]
    return []
