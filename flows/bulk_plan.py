"""What each run of a batch gets at start (flows/bulk_start.py): the steps reached, which are
ready and which passed over, the phase and deadline its register row shows, decided once per
combination of `when` results; each `when` compiled once and, when it reads only constant
lookups on `params`/`run` (`params.grade == '重大'`), evaluated once per distinct value looked
up, so 400,000 rows cost a dict lookup each. Follows progress.advance step for step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser

from flows.context import run_view
from flows.expressions import BUILTIN_NAMES, ENV, ExpressionError, compile_expression
from flows.progress import AUTOMATIC_ACTIONS, due_time, first_check
from flows.registers import REGISTERED
from flows.run_titles import title_for
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from models import run as rs
from models import task as st
from models.run import Run

FAST_NAMES = frozenset({"params", "run"})


@dataclass(frozen=True)
class NewRun:
    """One run to start: its unit, its validated params, and where it came from."""

    unit_id: str
    params: dict[str, Any]
    row: int | None = None  # the spreadsheet row, kept in the audit trail


# -- `when`, evaluated once per distinct input ---------------------------------------------

@lru_cache(maxsize=4096)
def constant_lookups(source: str) -> tuple[tuple[str, str], ...] | None:
    """The (name, key) lookups an expression reads, when it reads `params`/`run` only through
    constant lookups (`params.grade`, `run['unit']`); None when it uses them otherwise. Parsed
    once per expression text: every run view asks it of each step not reached yet."""
    try:
        parser = Parser(ENV, source, state="variable")
        tree = parser.parse_expression()
    except TemplateSyntaxError:
        return None
    covered: set[int] = set()
    found: list[tuple[str, str]] = []
    for call in tree.find_all(nodes.Call):  # params.get('x'), params.items(): not a lookup
        target = call.node
        if isinstance(target, nodes.Getattr | nodes.Getitem) and \
                isinstance(target.node, nodes.Name) and target.node.name in FAST_NAMES:
            return None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not isinstance(base, nodes.Name) or base.name not in FAST_NAMES:
            continue
        if isinstance(node, nodes.Getattr):
            key = node.attr
            if hasattr(dict, key):  # `params.items` is the dict's method, not a value
                return None
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            key = node.arg.value
        else:
            return None
        covered.add(id(base))
        found.append((base.name, key))
    names = [tree] if isinstance(tree, nodes.Name) else []
    for name in [*names, *tree.find_all(nodes.Name)]:
        if name.name in FAST_NAMES and id(name) not in covered:
            return None
    return tuple(sorted(set(found)))


_MISSING = object()


class Condition:
    """A step's `when`: the compiled expression, and results memoised by the values it looks
    up (a grade has two values, so 400,000 rows evaluate it twice)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.expr = compile_expression(source)
        self.uses_run = "run" in self.expr.names
        self.lookups = constant_lookups(source)
        self.memo: dict[tuple[Any, ...], tuple[bool, str | None]] = {}

    def evaluate(self, ctx: dict[str, Any]) -> tuple[bool, str | None]:
        """(truth, error message or None): a failure counts as true, as in progress.advance."""
        key: tuple[Any, ...] | None = None
        if self.lookups is not None:
            key = tuple(ctx[name].get(attr, _MISSING) for name, attr in self.lookups)
            try:
                return self.memo[key]
            except KeyError:
                pass
            except TypeError:  # an unhashable value (a list param): no memo for this row
                key = None
        try:
            result: tuple[bool, str | None] = (bool(self.expr.evaluate(ctx)), None)
        except ExpressionError as exc:
            result = (True, str(exc))
        if key is not None:
            self.memo[key] = result
        return result


# -- the plan: what a run of this playbook gets at start ------------------------------------

@dataclass
class Candidate:
    spec: StepSpec
    condition: Condition | None


@dataclass
class Outcome:
    """What one combination of `when` results gives a run at start."""

    ready: list[StepSpec]
    skipped: list[StepSpec]
    one_by_one: bool  # for_each reached, or every step skipped (the run completes at once)
    automatic: bool  # an automatic step is ready: the run needs a segment (a wake)
    phase: str
    due_at: datetime | None
    detail: dict[str, Any]


@dataclass
class Plan:
    playbook: Playbook
    candidates: list[Candidate]
    all_one_by_one: bool  # a reachable `when` reads more than params/run
    due: dict[str, datetime | None] = field(default_factory=dict)
    check: dict[str, datetime | None] = field(default_factory=dict)
    outcomes: dict[tuple[bool, ...], Outcome] = field(default_factory=dict)


def make_plan(rt: Runtime, playbook: Playbook, now: datetime, stub: Run) -> Plan:
    first_stage = playbook.stages[0] if playbook.stages else None
    skippable: set[str] = set()
    candidates: list[Candidate] = []
    all_one_by_one = False
    # One pass in playbook order, as progress.advance: a step is reached at start when it has
    # no stage (or the first one) and every need is a step before it that may be skipped.
    for spec in playbook.steps:
        if spec.stage is not None and spec.stage != first_stage:
            continue
        if not all(need in skippable for need in spec.needs):
            continue
        condition = Condition(spec.when) if spec.when else None
        if condition is not None:
            skippable.add(spec.id)
            if not condition.expr.names <= FAST_NAMES | BUILTIN_NAMES:
                all_one_by_one = True
        candidates.append(Candidate(spec, condition))
    plan = Plan(playbook, candidates, all_one_by_one)
    for c in candidates:
        due = due_time(rt, stub, c.spec, ready_at=now)
        plan.due[c.spec.id] = due
        plan.check[c.spec.id] = first_check(rt, c.spec, status=st.READY, ready_at=now,
                                            due_at=due, now=now)
    return plan


def outcome_for(plan: Plan, results: tuple[bool, ...]) -> Outcome:
    """The steps a run gets at start for the truth values of the `when`s evaluated, in order."""
    found = plan.outcomes.get(results)
    if found is not None:
        return found
    playbook = plan.playbook
    state: dict[str, str] = {}
    ready: list[StepSpec] = []
    skipped: list[StepSpec] = []
    one_by_one = False
    truths = iter(results)
    for c in plan.candidates:
        if not all(state.get(need) == st.SKIPPED for need in c.spec.needs):
            continue
        if c.condition is not None and not next(truths):
            state[c.spec.id] = st.SKIPPED
            skipped.append(c.spec)
            continue
        if c.spec.for_each:
            one_by_one = True
        state[c.spec.id] = st.READY
        ready.append(c.spec)
    if len(skipped) == len(playbook.steps):
        one_by_one = True  # the run completes at start: start_run does that properly
    phase = REGISTERED
    for spec in playbook.steps:  # registers._phase: the first open step with a phase
        if spec.phase and state.get(spec.id) == st.READY:
            phase = spec.phase
            break
    reg = playbook.register_
    due_at = plan.due.get(reg.due_by) if reg and reg.due_by and reg.due_by in state and \
        state[reg.due_by] == st.READY else None
    outcome = Outcome(
        ready=ready, skipped=skipped, one_by_one=one_by_one,
        automatic=any(s.action in AUTOMATIC_ACTIONS for s in ready), phase=phase,
        due_at=due_at,
        detail={"playbook": playbook.id, "version": playbook.version,
                "ready": [s.id for s in ready], "skipped": [s.id for s in skipped]},
    )
    plan.outcomes[results] = outcome
    return outcome


class RunStub:
    """What entry_row, due_time and run_view read of a run, without an ORM object."""

    __slots__ = ("id", "params", "unit_id", "started_at", "started_by", "stage",
                 "stage_entered_at", "playbook_id", "title", "status")

    def __init__(self, **values: Any) -> None:
        for key in self.__slots__:
            setattr(self, key, values.get(key))


class Decider:
    """Which outcome each row gets. When every reachable `when` reads only constant lookups
    on `params`, a row's outcome depends on those values alone: one dict lookup per row."""

    def __init__(self, rt: Runtime, plan: Plan, stub: RunStub, unit_names: dict[str, str]
                 ) -> None:
        self.rt, self.plan, self.stub, self.unit_names = rt, plan, stub, unit_names
        conditions = [c.condition for c in plan.candidates if c.condition is not None]
        self.uses_run = any(c.uses_run for c in conditions)
        keys: set[str] = set()
        self.memo_ok = bool(conditions) and not self.uses_run
        for cond in conditions:
            if cond.lookups is None:
                self.memo_ok = False
            else:
                keys.update(key for name, key in cond.lookups if name == "params")
        self.keys = tuple(sorted(keys))
        self.memo: dict[tuple[Any, ...], tuple[Outcome, list[tuple[str, str]]]] = {}
        self.none = outcome_for(plan, ()) if not conditions else None

    def decide(self, new: NewRun) -> tuple[Outcome, list[tuple[str, str]]]:
        if self.none is not None:
            return self.none, []
        key: tuple[Any, ...] | None = None
        if self.memo_ok:
            key = tuple(new.params.get(k, _MISSING) for k in self.keys)
            try:
                return self.memo[key]
            except KeyError:
                pass
            except TypeError:  # an unhashable value (a list param)
                key = None
        found = self._walk(new)
        if key is not None:
            self.memo[key] = found
        return found

    def _walk(self, new: NewRun) -> tuple[Outcome, list[tuple[str, str]]]:
        plan = self.plan
        ctx: dict[str, Any] = {"params": new.params}
        if self.uses_run:
            stub = self.stub
            view = RunStub(id=None, params=new.params, unit_id=new.unit_id,
                            started_at=stub.started_at, started_by=stub.started_by,
                            stage=stub.stage, playbook_id=stub.playbook_id, status=rs.RUNNING,
                            title=run_title(plan.playbook, new, self.unit_names))
            ctx["run"] = run_view(self.rt, cast(Run, view))
        results: list[bool] = []
        failures: list[tuple[str, str]] = []
        state: dict[str, str] = {}
        for c in plan.candidates:
            if not all(state.get(need) == st.SKIPPED for need in c.spec.needs):
                continue
            if c.condition is None:
                state[c.spec.id] = st.READY
                continue
            truth, error = c.condition.evaluate(ctx)
            if error is not None:
                failures.append((c.spec.id, f"steps.{c.spec.id}.when: {error}"))
            results.append(truth)
            state[c.spec.id] = st.READY if truth else st.SKIPPED
        return outcome_for(plan, tuple(results)), failures


def run_title(playbook: Playbook, new: NewRun, unit_names: dict[str, str]) -> str:
    return title_for(playbook, new.params, unit_names[new.unit_id])
