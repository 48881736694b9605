"""Assembling one playbook from parsed YAML: modules spliced, steps checked, graph ordered.

Nothing here stops at the first problem: each step is validated on its own, the graph is
checked from whatever ids and needs could be read, and cascades are suppressed (a broken
module does not also produce "unknown step report.x"). `flows/loader.py` is the way in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from flows.checks import CheckEnv, check_expression, check_roles, check_step, check_unit_type
from flows.expressions import ExpressionError, compile_expression
from flows.graph import topological_order
from flows.locate import Where, not_known, validation_errors, zh_en
from flows.modules import Candidate, ModuleFile, ModuleLibrary, NeedRef, splice
from flows.spec import (
    DEFER_CHECKS,
    ModuleUse,
    Playbook,
    PlaybookHeader,
    PlaybookSource,
    StepSource,
    StepSpec,
)
from flows.step_rules import NO_ITEMS
from flows.template_pins import named_templates, template_texts
from models.errors import PlaybookInvalid, SourceError
from models.yamlpos import Positions

if TYPE_CHECKING:
    from flows.loader import LoadContext

M = TypeVar("M", bound=BaseModel)


class Session:
    """Caches shared by the playbooks of one load: module files and the template list."""

    def __init__(self, context: LoadContext) -> None:
        self.context = context
        self.modules = ModuleLibrary(context.modules_dir)
        self._templates: frozenset[str] | None = None

    def templates(self) -> frozenset[str]:
        if self._templates is None:
            root = self.context.templates_dir
            found = root.rglob("*") if root.is_dir() else []
            self._templates = frozenset(
                p.relative_to(root).as_posix() for p in found if p.is_file()
            )
        return self._templates


@dataclass
class _Node:
    """One step in the graph, known even when the step itself failed validation."""

    id: str | None
    candidate: Candidate
    step: StepSource | None
    needs: list[NeedRef]
    duplicate: bool = False


def dedupe(errors: list[SourceError]) -> list[SourceError]:
    """Each mistake once, under the first path that reached it. A module used twice reports
    its own mistakes once; and a value written once but read at two paths (a YAML alias:
    `with: *first` under a second module use, `to: *leaders` under a second step) is one
    mistake at one file:line:col, though each path reports it."""
    kept: dict[tuple[str, int, int, str], SourceError] = {}
    for error in errors:
        kept.setdefault((error.file, error.line, error.col, error.message), error)
    return list(kept.values())


def _validate(
    model: type[M],
    data: Any,
    where: Where,
    errors: list[SourceError],
    *,
    schema: type[BaseModel] | None = None,
    defer: bool = False,
) -> M | None:
    try:
        return model.model_validate(data, context={DEFER_CHECKS: True} if defer else None)
    except ValidationError as exc:
        errors += validation_errors(exc, data, where, schema or model)
        return None


def assemble(
    text: str,
    filename: str,
    data: Any,
    positions: Positions,
    session: Session,
    known_playbooks: set[str] | None,
) -> Playbook:
    """The compiled playbook from its parsed YAML; raises PlaybookInvalid with every error."""
    root = Where(filename, positions)
    if not isinstance(data, dict):
        message = zh_en("流程文件应为映射（键: 值），含 id、version、title、params、modules、steps",
                        "a playbook is a mapping of keys: id, version, title, params, modules, "
                        "steps")
        raise PlaybookInvalid([root.at((), message)])
    errors: list[SourceError] = []
    head = {key: value for key, value in data.items() if key not in ("modules", "steps")}
    header = _validate(PlaybookHeader, head, root, errors, schema=PlaybookSource)

    raw_modules = _list_at(data, "modules", root, errors)
    raw_steps = _list_at(data, "steps", root, errors)
    uses, module_candidates, used, broken = _modules(raw_modules, root, session, errors)
    own = [Candidate(raw, root.child("steps", j)) for j, raw in enumerate(raw_steps)]
    # Ties in the topological order are broken by file order, and `modules:` written above
    # `steps:` puts the module steps first.
    keys = list(data)
    modules_first = "modules" in data and (
        "steps" not in data or keys.index("modules") < keys.index("steps")
    )
    candidates = module_candidates + own if modules_first else own + module_candidates

    nodes = [_node(candidate, errors) for candidate in candidates]
    ids = _check_ids(nodes, errors)
    _check_numbers(nodes, errors)
    order = _check_graph(nodes, ids, broken, errors)
    _check_item_needs(nodes, errors)
    _check_recur_until(nodes, ids, errors)
    _check_when_reads_upstream(nodes, errors)
    if not nodes and not errors:
        errors.append(root.at(("steps",), zh_en("流程至少要有一个步骤",
                                                "a playbook needs at least one step")))

    # Read what we can even from a header that failed, so one mistake hides no other.
    stages = data.get("stages")
    params = data.get("params", {})
    context = session.context
    env = CheckEnv(
        roles=frozenset(context.known_roles) if context.known_roles is not None else None,
        channels=frozenset(context.known_channels),
        stages=tuple(stages) if isinstance(stages, list) else (() if stages is None else None),
        templates=session.templates(),
        templates_dir=str(context.templates_dir),
        playbooks=frozenset(known_playbooks) if known_playbooks is not None else None,
        params=tuple(params) if isinstance(params, dict) else None,
        param_specs=params if isinstance(params, dict) else None,
        step_ids=tuple(ids),
        step_outputs={node.id: frozenset(node.step.outputs) for node in nodes
                      if node.id and node.step is not None and node.step.outputs},
        prefixes=frozenset(use.prefix for use, _ in uses),
        helpers=frozenset(context.expression_names),
        broken=frozenset(broken),
        unit_types=frozenset(context.known_unit_types)
        if context.known_unit_types is not None else None,
    )
    for use, where in uses:
        if use.when is not None:
            errors += check_expression(use.when, where, ("when",), env)
        errors += check_unit_type(use.at, where, ("at",), env)
    if header is not None:
        errors += check_roles(header.started_by, root, ("started_by",), env)
        errors += _check_register(header, ids, broken, root)
        errors += [root.at(("stage_titles", stage), not_known("阶段", "stage", stage,
                                                              header.stages))
                   for stage in header.stage_titles if stage not in header.stages]
        errors += [root.at(("title_params", i), not_known("参数", "param", name, header.params))
                   for i, name in enumerate(header.title_params) if name not in header.params]
    for node in nodes:
        if node.step is not None:
            errors += check_step(node.step, node.candidate.where, env)
        elif (salvaged := _salvage(node.candidate.raw)) is not None:
            errors += check_step(salvaged, node.candidate.where, env, rules=False)
    if errors or header is None:
        raise PlaybookInvalid(dedupe(errors))

    steps = [_compiled_step(nodes[i], header.announce) for i in order]
    digest = hashlib.sha256(text.encode("utf-8"))
    for module in used:
        digest.update(b"\0" + module.name.encode("utf-8") + b"\0" + module.text.encode("utf-8"))
    source_sha = digest.hexdigest()
    # The templates are part of the version: a run keeps the papers it started with, and a
    # template edited makes a new version for the runs started after it.
    templates = template_texts(context.templates_dir, named_templates(steps))
    for name, body in templates.items():
        digest.update(b"\0tpl\0" + name.encode("utf-8") + b"\0" + body.encode("utf-8"))
    fields = {name: getattr(header, name) for name in PlaybookHeader.model_fields}
    return Playbook.model_validate(
        {**fields, "steps": steps, "source_file": filename, "sha256": digest.hexdigest(),
         "source_sha256": source_sha, "templates": templates}
    )


def _list_at(data: dict[str, Any], key: str, root: Where, errors: list[SourceError]) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        got = type(value).__name__
        errors.append(root.at((key,), zh_en(f"应为{_LIST_OF[key]}列表；收到 {got}",
                                            f"expected a list of {key}; got {got}")))
        return []
    return value


_LIST_OF = {"steps": "步骤", "modules": "模块"}


def _modules(
    raw_modules: list[Any], root: Where, session: Session, errors: list[SourceError]
) -> tuple[list[tuple[ModuleUse, Where]], list[Candidate], list[ModuleFile], set[str]]:
    """Splice every `modules` entry; `broken` holds prefixes whose steps could not be read."""
    uses: list[tuple[ModuleUse, Where]] = []
    candidates: list[Candidate] = []
    used: list[ModuleFile] = []
    broken: set[str] = set()
    for i, raw in enumerate(raw_modules):
        where = root.child("modules", i)
        use = _validate(ModuleUse, raw, where, errors, schema=ModuleUse)
        if use is None:
            if isinstance(raw, dict) and isinstance(raw.get("as") or raw.get("use"), str):
                broken.add(raw.get("as") or raw["use"])
            continue
        if any(use.prefix == other.prefix for other, _ in uses):
            field_name = "as" if use.as_ else "use"
            message = zh_en(f"模块前缀 {use.prefix} 用了两次，请给每处引用各写一个 as",
                            f"module prefix '{use.prefix}' is used twice; give each use its "
                            "own 'as'")
            errors.append(where.at((field_name,), message))
            continue
        uses.append((use, where))
        module = session.modules.get(use.use)
        if module is None:
            message = not_known("模块", "module", use.use, session.modules.names())
            errors.append(where.at(("use",), message))
            broken.add(use.prefix)
            continue
        if all(module is not other for other in used):
            used.append(module)
        parts = splice(use, where, module, errors)
        if parts is None:
            broken.add(use.prefix)
        else:
            candidates += parts
    return uses, candidates, used, broken


def _salvage(raw: Any) -> StepSource | None:
    """The part of a failed step that does validate (its wrong keys dropped), so a bad `due`
    hides no unknown role in the same step. Used for checking only, never compiled."""
    if not isinstance(raw, dict):
        return None
    data = dict(raw)
    while True:
        try:
            return StepSource.model_validate(data, context={DEFER_CHECKS: True})
        except ValidationError as exc:
            bad = {e["loc"][0] for e in exc.errors() if e["loc"] and e["loc"][0] in data}
            if not bad or bad & {"id", "title"}:
                return None
            for key in bad:
                del data[key]


def _node(candidate: Candidate, errors: list[SourceError]) -> _Node:
    raw = candidate.raw
    where = candidate.where
    step = _validate(StepSource, raw, where, errors, defer=True)
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(raw_id, str):
        raw_id = None
    node_id = f"{candidate.prefix}.{raw_id}" if candidate.prefix and raw_id else raw_id
    raw_needs = raw.get("needs") if isinstance(raw, dict) else None
    needs: list[NeedRef] = []
    if isinstance(raw_needs, list):
        for k, need in enumerate(raw_needs):
            if not isinstance(need, str):
                continue
            if candidate.local_ids is None:
                needs.append(NeedRef(need, where, ("needs", k)))
            elif need in candidate.local_ids and need != raw_id:
                needs.append(NeedRef(f"{candidate.prefix}.{need}", where, ("needs", k)))
            else:
                local = [other for other in candidate.local_ids if other != raw_id]
                message = _unknown_need(need, raw_id, local)
                errors.append(where.at(("needs", k), message))
    if candidate.local_ids is not None and not raw_needs:
        needs += candidate.entry_needs
    return _Node(node_id, candidate, step, needs)


def _check_numbers(nodes: list[_Node], errors: list[SourceError]) -> None:
    """Within a run, steps numbering with one prefix share one 文号, so they must be one
    document: filed once and served (the same template), never two documents."""
    first: dict[str, _Node] = {}
    filed: dict[str, _Node] = {}
    for node in nodes:
        step = node.step
        if step is None or step.number is None:
            continue
        earlier = first.setdefault(step.number, node)
        other = earlier.step
        if step.action == "document" and step.number in filed:
            earlier = filed[step.number]
        elif other is None or other.template == step.template:
            if step.action == "document":
                filed[step.number] = node
            continue
        line = earlier.candidate.where.line()
        errors.append(node.candidate.where.at(("number",), zh_en(
            f"步骤 {earlier.id}（第 {line} 行）已用文号前缀 {step.number}：同一流程中前缀相同的"
            "步骤共用一个文号，须是同一份文书（只归档一次，用同一模板送达）；请给这一步另设前缀",
            f"step '{earlier.id}' (line {line}) already numbers "
            f"with '{step.number}': a run's steps with one prefix share one 文号, so they must "
            "be one document (filed once, served with the same template); give this one a "
            "prefix of its own")))


def _check_item_needs(nodes: list[_Node], errors: list[SourceError]) -> None:
    """A step waiting item by item pairs its items with the need's by unit (or value): both
    must fan out over the same list, or an item would wait for a partner that never comes."""
    by_id = {node.id: node for node in nodes if node.id and not node.duplicate}
    for node in nodes:
        step = node.step
        if step is None or not step.item_needs:
            continue
        if step.for_each is None:
            # Without a fan-out of its own, a step pairs only with the rounds of recurring
            # needs (a 续报's sending, round by round).
            targets = [by_id.get(_resolved(node.candidate, need)) for need in step.item_needs]
            # An unknown need is reported by the graph check, a need that failed to load (a
            # mistyped recur) at its own mistake: not here too, sending the author to the
            # wrong step.
            if all(t is not None and t.step is not None for t in targets) and not all(
                    t is not None and t.step is not None and t.step.recur is not None
                    for t in targets):
                errors.append(node.candidate.where.at(("item_needs",), NO_ITEMS))
            continue
        for k, need in enumerate(step.item_needs):
            target = by_id.get(_resolved(node.candidate, need))
            other = target.step if target is not None else None
            if other is None or need not in step.needs:
                continue  # unknown needs are reported by the graph check
            if other.for_each is None or other.for_each.strip() != step.for_each.strip():
                theirs = other.for_each or "（无）"
                errors.append(node.candidate.where.at(("item_needs", k), zh_en(
                    f"步骤 {target.id} 须与本步骤按同一 for_each 分派才能按项等待（它的是 "
                    f"{theirs}，本步骤是 {step.for_each}）",
                    f"step '{target.id}' must fan out over the same for_each to be waited for "
                    f"item by item (it has {other.for_each or 'none'}, this step "
                    f"{step.for_each})")))


def _check_recur_until(nodes: list[_Node], ids: list[str], errors: list[SourceError]) -> None:
    """`recur.until` names steps of the playbook, none that the recurring step itself waits
    for: one finished before the first round would end the rounds before they began."""
    by_id = {node.id: node for node in nodes if node.id and not node.duplicate}
    for node in nodes:
        step = node.step
        if step is None or step.recur is None or not node.id or node.duplicate:
            continue
        wanted: dict[str, int] = {}
        for k, ref in enumerate(step.recur.until):
            target = _resolved(node.candidate, ref)
            if target == node.id:
                continue  # said by the step's own rules
            if target not in by_id:
                errors.append(node.candidate.where.at(("recur", "until", k),
                                                      not_known("步骤", "step", ref, ids)))
            else:
                wanted[target] = k
        for target, k in wanted.items():
            other = by_id[target]
            if other.step is not None and other.step.for_each is None and node.id in (
                    _resolved(other.candidate, need) for need in other.step.item_needs):
                errors.append(node.candidate.where.at(("recur", "until", k), zh_en(
                    f"{target} 逐轮跟随本步骤（item_needs），每一轮后都会完成，不能结束本步骤的"
                    "轮次（第一轮后就会结束）；请写处置终结等步骤",
                    f"'{target}' follows this step round by round (item_needs) and finishes "
                    "after every round, so it cannot end the rounds (they would end after the "
                    "first); name the step that closes the event")))
        for target in sorted(_found_above(by_id, node.id, set(wanted))):
            errors.append(node.candidate.where.at(("recur", "until", wanted[target]), zh_en(
                f"本步骤要等 {target} 完成后才开始，它不能结束本步骤的轮次（第一轮之前就已完成）",
                f"this step waits for '{target}' to finish before it starts, so '{target}' "
                "cannot end its rounds (it has finished before the first round)")))


def _resolved(candidate: Candidate, need: str) -> str:
    """A need's full step id: a module step's needs name its module's own steps."""
    return f"{candidate.prefix}.{need}" if candidate.local_ids is not None else need


_SELF_NEED = zh_en("步骤不能依赖自身", "a step cannot need itself")


def _check_register(header: PlaybookHeader, ids: list[str], broken: set[str], root: Where
                    ) -> list[SourceError]:
    """The steps `register` names must exist, or the playbook would be refused only when
    compiled, with no position."""
    if header.register_ is None:
        return []
    out: list[SourceError] = []
    for key in ("closed_by", "due_by", "plan_by"):
        ref = getattr(header.register_, key)
        if ref is None or ref in ids or any(ref.startswith(p + ".") for p in broken):
            continue
        out.append(root.at(("register", key), not_known("步骤", "step", ref, ids)))
    return out


def _unknown_need(need: str, own_id: str | None, known: list[str]) -> str:
    if need == own_id:
        return _SELF_NEED
    return not_known("步骤", "step", need, known)


def _check_ids(nodes: list[_Node], errors: list[SourceError]) -> list[str]:
    """Step ids in file order; a repeated id is reported at its second use."""
    first: dict[str, _Node] = {}
    for node in nodes:
        if node.id is None:
            continue
        if node.id in first:
            earlier = first[node.id].candidate.where
            line = earlier.line()
            same_file = earlier.file == node.candidate.where.file
            at_zh = f"第 {line} 行" if same_file else f" {earlier.file}:{line}"
            at = f"line {line}" if same_file else f"{earlier.file}:{line}"
            message = zh_en(f"步骤 id {node.id} 重复（首次定义于{at_zh}）",
                            f"duplicate step id '{node.id}' (first defined at {at})")
            errors.append(node.candidate.where.at(("id",), message))
            node.duplicate = True
        else:
            first[node.id] = node
    return list(first)


def _check_when_reads_upstream(nodes: list[_Node], errors: list[SourceError]) -> None:
    """A `when` is evaluated once, as soon as the step's needs are finished: a step it reads
    that is not among them (directly or further up) may not have finished then, and the
    condition would be decided on outputs not yet given (an evacuation made ready before the
    expert said the gas is harmless)."""
    by_id = {node.id: node for node in nodes if node.id and not node.duplicate}
    for node in nodes:
        step = node.step
        if step is None or not step.when or not node.id or node.duplicate:
            continue
        try:
            lookups = compile_expression(step.when).lookups
        except ExpressionError:
            continue  # reported by the step's own checks
        read = {key for base, key in lookups if base == "steps" and key in by_id
                and key != node.id}
        for key in sorted(read - _found_above(by_id, node.id, read)):
            errors.append(node.candidate.where.at(("when",), zh_en(
                f"when 读取了步骤 {key}，但它不在本步骤的 needs 之中（直接或间接）："
                f"判断时它可能尚未完成；请把 {key} 加入 needs",
                f"`when` reads step '{key}', which is not among this step's needs "
                f"(directly or further up): it may not have finished when the condition is "
                f"decided; add '{key}' to needs")))


def _found_above(by_id: dict[str, _Node], node_id: str, wanted: set[str]) -> set[str]:
    """Those of `wanted` that step `node_id` needs, directly or further up: a walk up its
    needs, stopped once all are found. Iterative, and nothing kept per step: the recursive
    walk that kept every step's whole ancestry hit Python's recursion limit (a traceback
    from `closeloop validate`) on a chain of a thousand steps whose last `when` read the
    first, and its sets grew with the square of the chain."""
    found: set[str] = set()
    seen = {node_id}
    stack = [node_id]
    while stack and len(found) < len(wanted):
        for ref in by_id[stack.pop()].needs:
            if ref.target in by_id and ref.target not in seen:
                seen.add(ref.target)
                stack.append(ref.target)
                if ref.target in wanted:
                    found.add(ref.target)
    return found


def _check_graph(
    nodes: list[_Node], ids: list[str], broken: set[str], errors: list[SourceError]
) -> list[int]:
    """Unknown needs and cycles, reported; returns the stable topological order."""
    index = {node.id: i for i, node in enumerate(nodes) if node.id and not node.duplicate}
    edges: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        kept: list[NeedRef] = []
        for ref in node.needs:
            if ref.target == node.id:
                errors.append(ref.where.at(ref.path, _SELF_NEED))
            elif ref.target in index:
                if not node.duplicate:
                    edges[i].append(index[ref.target])
                kept.append(ref)
            elif not any(ref.target.startswith(prefix + ".") for prefix in broken):
                known = [other for other in ids if other != node.id]
                if ref.outside:
                    # Written once on the `modules:` entry: list the steps outside the module.
                    known = [other for other in ids if not other.startswith(ref.outside + ".")]
                errors.append(ref.where.at(ref.path, _unknown_need(ref.target, node.id, known)))
        node.needs = kept
    order, cycles = topological_order(edges)
    for cycle in cycles:
        start, following = nodes[cycle[0]], nodes[cycle[1]]
        ref = next(ref for ref in start.needs if ref.target == following.id)
        path = " -> ".join(nodes[i].id or "?" for i in cycle)
        errors.append(ref.where.at(ref.path, zh_en(f"循环依赖：{path}", f"cycle: {path}")))
    return order


def _compiled_step(node: _Node, announce: str) -> StepSpec:
    """The step as the engine reads it; `announce` is the playbook's, for a step that says
    nothing of how its holders are told."""
    step = node.step
    assert step is not None and node.id is not None
    candidate = node.candidate
    when = step.when
    if candidate.module_when:
        when = f"({candidate.module_when}) and ({when})" if when else candidate.module_when
    fields = {name: getattr(step, name) for name in StepSource.model_fields}
    fields.update(
        id=node.id,
        needs=list(dict.fromkeys(ref.target for ref in node.needs)),
        item_needs=[_resolved(candidate, need) for need in step.item_needs],
        recur=None if step.recur is None else step.recur.model_copy(update={
            "until": [_resolved(candidate, ref) for ref in step.recur.until]}),
        when=when,
        at=step.at or candidate.module_at,
        announce=step.announce or announce,
        line=candidate.where.line(),
        file=candidate.where.file,
    )
    return StepSpec.model_validate(fields, context={DEFER_CHECKS: True})

