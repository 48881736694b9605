"""Expressions that parse yet can only fail when a run reaches them are refused when the
playbook loads, at file:line:col and the field's path (flows/expression_rules.py): Python
internals (`().__class__.__bases__[0].__subclasses__()` passed `closeloop validate` and
failed as an expression_failed event at run time), calls of what is not a function, methods
that change data, and a constant range() beyond the sandbox's limit. What runs stays
loadable: the shipped playbooks (tests/api/test_cli.py validates them all), keys of the
playbook's own data named with `_`, range() within the limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.expressions import ExpressionError, compile_expression, compile_value
from flows.loader import LoadContext, load_playbook_text
from models.errors import PlaybookInvalid

PLAYBOOK = """\
id: probe
version: 1
title: 表达式检查
params:
  grade: {type: enum, values: [一般, 重大], default: 一般}
  _batch: {type: int, default: 1, title: 批次}
steps:
  - id: assess
    title: 研判
    role: grid_worker
    outputs:
      _n: {type: int, title: 人数}
      names: {type: string, title: 名单}
  - id: act
    title: 处置
    role: grid_worker
    needs: [assess]
    when: "params.grade == '重大'"
  - id: child
    title: 子流程
    action: playbook
    playbook: probe
    needs: [assess]
    with: {grade: "{{ params.grade }}"}
"""
WHEN = "    when: \"params.grade == '重大'\""
WHEN_AT = (18, 11)  # line, column of the `when` value
WITH_AT = (24, 19)  # ... of the `grade` value under `with`


def load(text: str) -> None:
    load_playbook_text(text, filename="probe.yaml",
                       context=LoadContext(Path("."), known_roles=None))


def refused(text: str) -> list[str]:
    with pytest.raises(PlaybookInvalid) as caught:
        load(text)
    return [str(error) for error in caught.value.errors]


def test_the_playbook_as_written_loads() -> None:
    load(PLAYBOOK)


INTERNALS = "表达式不能读取以下划线开头的名称 {}：这是 Python 的内部属性，运行时会被沙箱拒绝"


REFUSED = [
    ("().__class__.__bases__[0].__subclasses__()", INTERNALS.format("__class__")),
    ("params.grade.__class__", INTERNALS.format("__class__")),
    ("params['__class__']", INTERNALS.format("__class__")),  # even where data keys are read
    ("run._sa_instance_state", INTERNALS.format("_sa_instance_state")),
    ("steps.assess._private", INTERNALS.format("_private")),
    ("params | attr('_batch')", INTERNALS.format("_batch")),  # attr() reads no keys
    ("[params.grade] | map(attribute='__class__') | list", INTERNALS.format("__class__")),
    ("params(1)", "params 是数据，不是函数，不能调用"),
    ("steps()", "steps 是数据，不是函数，不能调用"),
    ("lipsum(5)", "表达式中没有名称 lipsum"),  # a function the context does not offer
    ("params.update({'grade': '重大'})",
     "表达式不能调用会修改数据的方法 update()，运行时会被沙箱拒绝"),
    ("(steps.assess.outputs.names | list).append(1)",
     "表达式不能调用会修改数据的方法 append()，运行时会被沙箱拒绝"),
    ("range(100001) | length > 0",
     "range() 有 100,001 项，超过沙箱的上限 100,000 项，运行时会失败"),
    ("range(-5, 10**6) | length > 0",
     "range() 有 1,000,005 项，超过沙箱的上限 100,000 项，运行时会失败"),
    ("range(0, 10 ** 10 ** 10) | length > 0",
     "range() 有 1,000,000,000,000,000,000,000,000,000,000 项，超过沙箱的上限 100,000 项，"
     "运行时会失败"),
    ("range(1, 5, 0) | length > 0", "range() 的参数有误"),
]


@pytest.mark.parametrize(("expr", "message"), REFUSED, ids=[expr for expr, _ in REFUSED])
def test_a_when_that_can_only_fail_at_run_time_is_refused_at_its_line(expr: str,
                                                                       message: str) -> None:
    [error] = refused(PLAYBOOK.replace(WHEN, f"    when: \"{expr}\""))
    line, col = WHEN_AT
    assert error.startswith(f"probe.yaml:{line}:{col}: steps[1] (act).when: {message}"), error
    assert " / " in error  # and in English after it


def test_a_for_each_and_a_with_value_are_held_to_the_same_rules() -> None:
    fan_out = PLAYBOOK.replace(WHEN, "    for_each: \"range(200000)\"")
    [error] = refused(fan_out)
    assert error.startswith(f"probe.yaml:{WHEN_AT[0]}:{WHEN_AT[1] + 4}: steps[1] (act).for_each: "
                            "range() 有 200,000 项")
    value = PLAYBOOK.replace("{{ params.grade }}", "{{ ''.__class__.__mro__ }}")
    [error] = refused(value)
    assert error.startswith(f"probe.yaml:{WITH_AT[0]}:{WITH_AT[1]}: steps[2] (child).with.grade: "
                            + INTERNALS.format("__class__"))


@pytest.mark.parametrize("expr", [
    "params._batch > 0",  # a param may be named `_batch`: a key of the playbook's data
    "params['_batch'] > 0",
    "run.params._batch > 0",
    "(steps.assess.outputs._n | default(0, true)) > 0",
    "steps['assess']['outputs']['_n'] > 0",
    "range(100000) | length > 0",
    "range(params._batch) | list",  # known only at run time: left to it
    "(steps.assess.outputs.names | default('', true)).split(',') | length > 1",
    "params.grade.startswith('重')",
    "dict(a=1).a == 1",
    "units(type='community') | map(attribute='name') | list",
])
def test_what_runs_still_loads(expr: str) -> None:
    load(PLAYBOOK.replace(WHEN, f"    when: \"{expr}\""))


def test_a_key_named_with_an_underscore_is_read_at_run_time() -> None:
    context = {"params": {"_batch": 3}, "steps": {"assess": {"outputs": {"_n": 2}}}}
    assert compile_expression("params._batch + steps.assess.outputs._n").evaluate(context) == 5


def test_the_same_rules_hold_when_an_expression_is_compiled_to_run() -> None:
    # A run pinned to an older version of the playbook fails as it did, with the reason.
    with pytest.raises(ExpressionError, match="__subclasses__|__class__"):
        compile_expression("().__class__.__bases__[0].__subclasses__()")
    with pytest.raises(ExpressionError, match="range"):
        compile_value("{{ range(10 ** 6) | list }}")
