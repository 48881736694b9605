"""Checks of one validated step against what the installation knows.

Roles and channels (the org chart), stages, templates, child playbooks and expressions:
everything a step refers to is looked up once at load time, so a typo fails the playbook,
not a run at 3 a.m. Each problem is one SourceError at the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flows.expressions import (
    BUILTIN_NAMES,
    CONTEXT_NAMES,
    CompiledExpression,
    ExpressionError,
    compile_expression,
    compile_value,
    is_template_string,
)
from flows.locate import Where, choices, choices_zh, not_known, separator_hint, zh_en
from flows.recipients import alternatives
from flows.sampling import sample_problems
from flows.spec import StepSource
from flows.step_rules import step_problems
from flows.template_checks import template_lookups, template_problems
from models.errors import SourceError
from models.yamlpos import PathKey


@dataclass(frozen=True)
class CheckEnv:
    """What a step may refer to; None means "not known here, don't check"."""

    roles: frozenset[str] | None
    channels: frozenset[str]
    stages: tuple[str, ...] | None
    templates: frozenset[str] | None
    templates_dir: str
    playbooks: frozenset[str] | None
    params: tuple[str, ...] | None
    step_ids: tuple[str, ...]  # in playbook order, for messages
    prefixes: frozenset[str]  # module aliases, for a helpful message on `steps.report.x`
    helpers: frozenset[str]
    broken: frozenset[str] = frozenset()  # modules that failed: their steps are not known
    unit_types: frozenset[str] | None = None  # the org chart's, for `at`; None: don't check
    # The declared outputs of each step that declares them (a step without declares none and
    # takes free-form outputs): `steps.assess.outputs.toxik` is held to them.
    step_outputs: dict[str, frozenset[str]] = field(default_factory=dict)
    # The raw `params:` mapping (name -> its declaration), for the params an expression's
    # sample() count reads; None when unreadable.
    param_specs: dict[str, Any] | None = None

    step_set: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        # Membership tests run once per `steps.x` lookup; keep them O(1).
        object.__setattr__(self, "step_set", frozenset(self.step_ids))

    @property
    def names(self) -> frozenset[str]:
        return CONTEXT_NAMES | self.helpers | BUILTIN_NAMES


def check_step(step: StepSource, where: Where, env: CheckEnv, *, rules: bool = True
               ) -> list[SourceError]:
    """`rules=False` for a step salvaged from a failed one: only what it refers to is checked,
    since the cross-key rules would misfire on the keys that were dropped."""
    out = [where.at(path, message) for path, message in step_problems(step)] if rules else []
    if env.roles is not None:
        if step.role is not None:
            out += _role(step.role, where, ("role",), env)
        if step.verify is not None:
            out += _role(step.verify.role, where, ("verify", "role"), env)
        for i, role in enumerate(step.recur.early_by if step.recur is not None else []):
            out += _role(role, where, ("recur", "early_by", i), env)
        if step.extension is not None:
            out += _role(step.extension.role, where, ("extension", "role"), env)
        out += _recipients(step.to, where, ("to",), env)
        for i, remind in enumerate(step.remind):
            out += _recipients(remind.to, where, ("remind", i, "to"), env)
        for i, level in enumerate(step.escalate):
            out += _recipients(level.notify, where, ("escalate", i, "notify"), env)
        for i, level in enumerate(step.verify.escalate if step.verify else []):
            out += _recipients(level.notify, where, ("verify", "escalate", i, "notify"), env)
        if step.alert is not None:
            out += _recipients(step.alert.to, where, ("alert", "to"), env)
    out += check_unit_type(step.at, where, ("at",), env)
    for i, level in enumerate(step.escalate):
        out += check_unit_type(level.at, where, ("escalate", i, "at"), env)
    for i, level in enumerate(step.verify.escalate if step.verify else []):
        out += check_unit_type(level.at, where, ("verify", "escalate", i, "at"), env)
    if step.due is not None and step.due.from_ == "stage" and env.stages == ():
        out.append(where.at(("due", "from"), zh_en(
            "流程未分阶段，时限不能从阶段起算（from: stage）；请用 from: ready 或 from: run",
            "the playbook has no stages: a deadline cannot count from the stage; use "
            "from: ready or from: run")))
    if step.stage is not None and env.stages is not None and step.stage not in env.stages:
        if env.stages:
            message = not_known("阶段", "stage", step.stage, env.stages)
        else:
            message = zh_en(f"没有阶段 {step.stage}（流程未分阶段）",
                            f"unknown stage '{step.stage}' (known: the playbook has no stages)")
        out.append(where.at(("stage",), message))
    if step.template is not None:
        out += _template(step.template, where, env)
    for i, level in enumerate(step.escalate):
        if level.template is not None:
            out += _template(level.template, where, env, ("escalate", i, "template"))
    for i, level in enumerate(step.verify.escalate if step.verify else []):
        if level.template is not None:
            out += _template(level.template, where, env, ("verify", "escalate", i, "template"))
    if step.playbook is not None and env.playbooks is not None:
        if step.playbook not in env.playbooks:
            message = not_known("流程", "playbook", step.playbook, sorted(env.playbooks))
            out.append(where.at(("playbook",), message))
    if step.when is not None:
        out += check_expression(step.when, where, ("when",), env)
    if step.for_each is not None:
        out += check_expression(step.for_each, where, ("for_each",), env)
    out += check_templated(step.with_, where, ("with",), env)
    for i, check in enumerate(step.checks):
        out += check_expression(check.expr, where, ("checks", i, "expr"), env)
        out += _paired(check.expr, step, where, ("checks", i, "expr"))
        out += _previous(check.expr, step, where, ("checks", i, "expr"), env)
        out += _previous(check.message, step, where, ("checks", i, "message"), env)
        out += check_templated(check.message, where, ("checks", i, "message"), env)
        if check.output is not None and check.output not in (step.outputs or {}):
            out.append(where.at(("checks", i, "output"),
                                not_known("填报项", "output", check.output,
                                          list(step.outputs or {}))))
    if step.follow_up is not None:
        out += _until_stage(step, where, env)
        out += check_expression(step.follow_up.while_, where, ("follow_up", "while"), env)
        out += _previous(step.follow_up.while_, step, where, ("follow_up", "while"), env)
        for i, name in enumerate(step.follow_up.state):
            if name not in (step.outputs or {}):
                out.append(where.at(("follow_up", "state", i),
                                    not_known("填报项", "output", name, list(step.outputs or {}))))
        if step.follow_up.label is not None:
            out += check_templated(step.follow_up.label, where, ("follow_up", "label"), env)
            out += _previous(step.follow_up.label, step, where, ("follow_up", "label"), env)
    if step.alert is not None:
        out += check_expression(step.alert.when, where, ("alert", "when"), env)
        out += check_templated(step.alert.message, where, ("alert", "message"), env)
        for key in ("when", "message"):
            text = getattr(step.alert, key)
            out += _paired(text, step, where, ("alert", key))
            out += _previous(text, step, where, ("alert", key), env)
    for i, target in enumerate(step.not_by):
        if target not in env.step_set and not _in_broken(target, env):
            out.append(where.at(("not_by", i), not_known("步骤", "step", target, env.step_ids)))
    for name, output in (step.outputs or {}).items():
        target = output.not_after_due
        if target is not None and target not in env.step_set and not _in_broken(target, env):
            out.append(where.at(("outputs", name, "not_after_due"),
                                not_known("步骤", "step", target, env.step_ids)))
    return out


def _until_stage(step: StepSource, where: Where, env: CheckEnv) -> list[SourceError]:
    """`follow_up.until_stage` names a stage of the playbook after the step's own: rounds
    that ended the moment they began (or never) would be a typo, not a rule."""
    assert step.follow_up is not None
    until = step.follow_up.until_stage
    if until is None or env.stages is None:
        return []
    path = ("follow_up", "until_stage")
    if until not in env.stages:
        return [where.at(path, not_known("阶段", "stage", until, env.stages))]
    if step.stage in env.stages and env.stages.index(until) <= env.stages.index(step.stage):
        return [where.at(path, zh_en(
            f"until_stage 须是本步骤阶段 {step.stage} 之后的阶段，收到 {until}",
            f"'until_stage' must be a stage after the step's own '{step.stage}', got "
            f"'{until}'"))]
    return []


PREVIOUS_OUTPUT = re.compile(r"\bprevious\.outputs\.([A-Za-z_][A-Za-z0-9_]*)")


def _previous(text: str, step: StepSource, where: Where, path: PathKey, env: CheckEnv
              ) -> list[SourceError]:
    """`previous` is the record a round of `follow_up` follows: the item's `item_needs`
    record for the first round, its own last round after. It exists only on such a step, and
    an output it reads must be declared by both, or a round would read nothing."""
    if not re.search(r"\bprevious\b", text):
        return []
    if step.follow_up is None:
        return [where.at(path, zh_en(
            "previous（上一次填报）只用于逐项跟踪（follow_up）的步骤",
            "'previous' (the record before) is only known on a step with 'follow_up'"))]
    out: list[SourceError] = []
    sources = [("本步骤的", "this step", step.outputs)] + [
        (f"步骤 {need} 的", f"step '{need}'", dict.fromkeys(env.step_outputs[need]))
        for need in step.item_needs if need in env.step_outputs]
    for name in sorted(set(PREVIOUS_OUTPUT.findall(text))):
        for zh, en, outputs in sources:
            if outputs is not None and name not in outputs:
                out.append(where.at(path, not_known(f"{zh}填报项（previous.outputs）",
                                                    f"output of {en} (previous.outputs)",
                                                    name, sorted(outputs))))
    return out


def _paired(expr: str, step: StepSource, where: Where, path: PathKey) -> list[SourceError]:
    """`paired.<need>` must name one of the step's item_needs: nothing else is paired."""
    try:
        lookups = compile_expression(expr).lookups
    except ExpressionError:
        return []  # reported by check_expression
    return [where.at(path, not_known("按项等待的步骤（item_needs）", "item_needs step", key,
                                     step.item_needs))
            for base, key in sorted(lookups) if base == "paired" and key not in step.item_needs]


def check_unit_type(at: str | None, where: Where, path: PathKey, env: CheckEnv
                    ) -> list[SourceError]:
    """An `at` must name a unit type of the org chart, or its steps would silently stay at
    the run's unit (`at: distrct` would leave the alert with the street)."""
    if at is None or env.unit_types is None or at in env.unit_types:
        return []
    types = sorted(env.unit_types)
    return [where.at(path, zh_en(
        f"组织架构中没有单位类型 {at}（现有：{choices_zh(types, at)}）",
        f"unknown unit type '{at}' (the org chart has: {choices(types, at)})"))]


def check_roles(roles: list[str], where: Where, path: PathKey, env: CheckEnv
                ) -> list[SourceError]:
    """Each of a list of role names (a playbook's `started_by`) must be the org chart's."""
    if env.roles is None:
        return []
    return [e for i, role in enumerate(roles) for e in _role(role, where, (*path, i), env)]


def _role(role: str, where: Where, path: PathKey, env: CheckEnv) -> list[SourceError]:
    assert env.roles is not None
    if role in env.roles:
        return []
    return [where.at(path, not_known("角色", "role", role, sorted(env.roles)))]


def _recipients(
    names: Iterable[str], where: Where, path: PathKey, env: CheckEnv
) -> list[SourceError]:
    assert env.roles is not None
    out: list[SourceError] = []
    for i, entry in enumerate(names):
        # `a|b` names alternatives (flows/recipients.py): each must be known on its own.
        name = next((a for a in alternatives(entry) or [entry]
                     if a not in env.roles and a not in env.channels), None)
        if name is None:
            continue
        roles, channels = sorted(env.roles), sorted(env.channels)
        hint_zh, hint_en = separator_hint(name)
        out.append(where.at((*path, i), zh_en(
            f"没有角色或通道 {name}（角色：{choices_zh(roles, name)}；"
            f"通道：{choices_zh(channels, name)}）{hint_zh}",
            f"unknown role or channel '{name}' (roles: {choices(roles, name)}; "
            f"channels: {choices(channels, name)}){hint_en}",
        )))
    return out


def _template(name: str, where: Where, env: CheckEnv, path: PathKey = ("template",)
              ) -> list[SourceError]:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts:
        return [where.at(path, zh_en(
            # Not the folder's path: POST /api/playbooks/validate would show anyone signed in
            # where the server is installed.
            f"模板 {name} 必须位于流程目录的 templates/ 之内",
            f"template '{name}' must be a path inside the playbooks' templates/"))]
    if env.templates is None:
        return []
    if name in env.templates:
        problems = [where.at(path, zh_en(zh, en)) for zh, en in
                    template_problems(env.templates_dir, name, env.helpers)]
        return problems or _template_keys(name, where, env, path)
    if not env.templates:
        return [where.at(path, zh_en(
            f"没有模板 {name}（{env.templates_dir} 是空的）",
            f"unknown template '{name}' (known: {env.templates_dir} is empty)"))]
    return [where.at(path, not_known("模板", "template", name, sorted(env.templates)))]


def _template_keys(name: str, where: Where, env: CheckEnv, path: PathKey
                   ) -> list[SourceError]:
    """The params, steps and outputs a template reads unguarded, held to the playbook's: a
    misspelt `params.chemcal` would fail the document in every run (a stub filed instead)."""
    first, outputs = template_lookups(env.templates_dir, name)
    out: list[SourceError] = []
    for base, key in sorted(first):
        if base == "params" and env.params is not None and key not in env.params:
            message = not_known("参数", "parameter", key, env.params)
        elif base == "steps" and key not in env.step_set and not _in_broken(key, env):
            message = not_known("步骤", "step", key, env.step_ids)
        else:
            continue
        out.append(where.at(path, _in_template(name, message)))
    for step, output in sorted(outputs):
        declared = env.step_outputs.get(step)
        if declared is not None and output not in declared:
            out.append(where.at(path, _in_template(name, not_known(
                f"步骤 {step} 的填报项", f"output of step '{step}'", output, sorted(declared)))))
    return out


def _in_template(name: str, message: str) -> str:
    zh, _, en = message.partition(" / ")
    return zh_en(f"模板 {name} 中{zh}", f"template {name}: {en}")


def check_expression(
    expr: str, where: Where, path: PathKey, env: CheckEnv
) -> list[SourceError]:
    """Parse `expr` in the sandbox and check every name and `params.x`/`steps.x` it reads."""
    try:
        compiled = compile_expression(expr)
    except ExpressionError as exc:
        return [where.at(path, exc.message)]
    out = _references(compiled.names, compiled.lookups, where, path, env)
    for kind in sorted(compiled.unit_types):
        out += check_unit_type(kind, where, path, env)
    out += [where.at(path, message)
            for message in sample_problems(compiled.samples, env.param_specs)]
    for step, output in sorted(compiled.output_lookups):
        declared = env.step_outputs.get(step)
        if declared is not None and output not in declared:
            out.append(where.at(path, not_known(f"步骤 {step} 的填报项", f"output of step "
                                                f"'{step}'", output, sorted(declared))))
    return out


def check_templated(value: Any, where: Where, path: PathKey, env: CheckEnv) -> list[SourceError]:
    """`{{ }}` strings anywhere inside `value` (a step's `with`)."""
    if isinstance(value, dict):
        out: list[SourceError] = []
        for key, item in value.items():
            out += check_templated(item, where, (*path, key), env)
        return out
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            out += check_templated(item, where, (*path, i), env)
        return out
    if not is_template_string(value):
        return []
    try:
        compiled = compile_value(value)
    except ExpressionError as exc:
        return [where.at(path, exc.message)]
    out = _references(compiled.names, compiled.lookups, where, path, env)
    if isinstance(compiled, CompiledExpression):  # "{{ sample(...) }}" handed to a child
        out += [where.at(path, message)
                for message in sample_problems(compiled.samples, env.param_specs)]
    return out


def _in_broken(key: str, env: CheckEnv) -> bool:
    return key.split(".", 1)[0] in env.broken


def _references(
    names: frozenset[str],
    lookups: frozenset[tuple[str, str]],
    where: Where,
    path: PathKey,
    env: CheckEnv,
) -> list[SourceError]:
    out: list[SourceError] = []
    allowed = env.names
    for name in sorted(names - allowed):
        allowed_names = sorted(CONTEXT_NAMES | env.helpers)
        out.append(where.at(path, zh_en(
            f"表达式中没有名称 {name}（可用：{choices_zh(allowed_names, name)}）",
            f"unknown name '{name}' in expression (allowed: {choices(allowed_names, name)})")))
    for base, key in sorted(lookups):
        if base == "params" and env.params is not None and key not in env.params:
            if env.params:
                message = not_known("参数", "parameter", key, env.params)
            else:
                message = zh_en(f"没有参数 {key}（流程没有参数）",
                                f"unknown parameter '{key}' (known: the playbook has no params)")
            out.append(where.at(path, message))
        elif base == "steps" and key not in env.step_set and not _in_broken(key, env):
            if key in env.prefixes:
                # The engine keys step views by full id; a dotted id needs the [] form.
                message = zh_en(
                    f"模块 {key} 中的步骤要写成 steps['{key}.<id>']"
                    f"（可选：{choices_zh(env.step_ids, key)}）",
                    f"'{key}' is a module; reach its steps as steps['{key}.<id>'] "
                    f"(known: {choices(env.step_ids, key)})",
                )
            else:
                message = not_known("步骤", "step", key, env.step_ids)
            out.append(where.at(path, message))
    return out
