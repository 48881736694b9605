"""Driving the shipped gas-leak playbook (playbooks/gas-leak.yaml) on the shipped demo district
(playbooks/org/demo-district.yaml), as tests/flows/test_gas_leak.py and test_gas_leak_reports.py
do: start a run for 六和社区, read its steps by key, complete a task the way a person would
(Chinese outputs, photos where evidence is required) and have someone else entitled to verify
it, and walk a whole run to its end a minute per round. Segments run bare (drain_wakes).

What a person types comes from `FACTS` unless a caller passes its own `facts` (a superset, say,
when the report under test quotes more of them) or per-step `given` outputs."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

from factories import png_bytes, run_steps
from factories import run_row as get_run

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.spec import ParamSpec, Playbook, StepSpec
from models.clock import ManualClock
from models.task import StepInstance

LOCATION = "六和社区幸福里小区3栋1单元"
COMMANDER = "wang-qiang"  # 王强, the district's commander

FACTS: dict[str, Any] = {
    "enterprise": "深圳市燃气集团坪山分公司",
    "occurred_at": "2026-03-02 08:55",
    "scene": "3栋1单元一楼燃气立管接口泄漏，有明显气味",
    "brief": "居民闻到燃气味后拨打报警电话，网格员到场确认泄漏",
    "est_loss": "0.5",
    "measures": "已关闭上游阀门，设置警戒区，疏散一楼住户",
    "casualties": 0,
    "missing": 0,
}


def start(rt: Runtime, grade: str = "一般", **params: Any) -> int:
    run = lifecycle.start_run(rt, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": LOCATION, "grade": grade, **params},
                              actor=COMMANDER)
    return run.id or 0


def steps(rt: Runtime, run_id: int) -> dict[str, StepInstance]:
    """Each step's first instance: gas-leak fans nothing out, and the later rounds of its
    续报 (follow-up, follow-up-send) are read with rounds()."""
    out: dict[str, StepInstance] = {}
    for row in run_steps(rt, run_id):
        if row.item_index == 0:
            assert row.step_key not in out, "one first instance per step"
            out[row.step_key] = row
        else:
            assert row.step_key in ROUND_STEPS, f"{row.step_key} has one instance"
    return out


ROUND_STEPS = ("follow-up", "follow-up-send")


def rounds(rt: Runtime, run_id: int, key: str = "follow-up") -> list[StepInstance]:
    """Every instance of a step handed out in rounds, in order (the last one may be the next
    round, written ahead: pending, with its time in next_check_at)."""
    return sorted((row for row in run_steps(rt, run_id) if row.step_key == key),
                  key=lambda row: row.item_index)


def playbook(rt: Runtime) -> Playbook:
    return rt.catalog.get("gas-leak")


def value_for(name: str, spec: ParamSpec, grade: str,
              facts: Mapping[str, Any] = FACTS) -> Any:
    """What a person types into output `name` (Chinese, like the real thing)."""
    if name == "grade":
        return grade
    if name in facts:
        return facts[name]
    return {
        "string": f"{spec.title or name}（已填报）", "int": 1, "number": 1.5, "bool": True,
        "enum": (spec.values or ["?"])[0], "date": "2026-03-02",
        "datetime": "2026-03-02T09:00:00+08:00", "list": ["已填报"],
    }[spec.type]


def outputs_for(spec: StepSpec, grade: str, facts: Mapping[str, Any] = FACTS) -> dict[str, Any]:
    return {name: value_for(name, out, grade, facts)
            for name, out in (spec.outputs or {}).items()}


def complete(rt: Runtime, step: StepInstance, grade: str, *, who: str | None = None,
             given: Mapping[str, Any] | None = None,
             facts: Mapping[str, Any] = FACTS) -> StepInstance:
    """Complete as `who` (default: the first assignee), with the photos and note the step asks
    for where evidence is required; `given` overrides outputs (None: left empty)."""
    spec = playbook(rt).step(step.step_key)
    actor = who or step.assignees[0]
    evidence: list[str] = []
    if spec.evidence:
        for _ in range(spec.evidence.photos + spec.evidence.files):
            evidence.append(store_evidence(rt, data=png_bytes(), filename="现场.png",
                                           uploaded_by=actor).id)
    outputs = outputs_for(spec, grade, facts) | dict(given or {})
    return tasks.complete(rt, step_id=step.id or 0, actor=actor, note=f"{step.title}：已处置",
                          outputs={k: v for k, v in outputs.items() if v is not None},
                          evidence=evidence)


def finish(rt: Runtime, run_id: int, key: str, grade: str = "一般", *,
           facts: Mapping[str, Any] = FACTS) -> StepInstance:
    step = steps(rt, run_id)[key]
    assert step.status == "ready", (key, step.status)
    return complete(rt, step, grade, facts=facts)


def verifier_for(rt: Runtime, step: StepInstance) -> str:
    """Someone entitled to verify `step` other than the person who submitted it."""
    rule = playbook(rt).step(step.step_key).verify
    assert rule is not None
    _, holders = rt.org.resolve_role(rule.role, step.unit_id)
    others = [p.id for p in holders if p.id != step.submitted_by]
    assert others, f"nobody but the submitter can verify {step.step_key}"
    return others[0]


def work_round(rt: Runtime, run_id: int, grade: str, *,
               given: Mapping[str, Mapping[str, Any]] | None = None,
               facts: Mapping[str, Any] = FACTS, skip: Collection[str] = ()) -> list[str]:
    """One round: every open task (but those in `skip`) is completed by an assignee (outputs
    from `given[step]` where set) or verified by someone else."""
    acted: list[str] = []
    for key, step in steps(rt, run_id).items():
        if step.action != "task" or key in skip:
            continue
        if step.status in ("ready", "acked", "rejected"):
            assert step.assignees, f"{key} is ready but has nobody to do it"
            complete(rt, step, grade, given=(given or {}).get(key), facts=facts)
            acted.append(key)
        elif step.status == "submitted":
            tasks.verify(rt, step_id=step.id or 0, actor=verifier_for(rt, step), approve=True,
                         note="核验无误")
            acted.append(key)
    return acted


def walk_to_the_end(rt: Runtime, clock: ManualClock, run_id: int, grade: str, *,
                    given: Mapping[str, Mapping[str, Any]] | None = None,
                    facts: Mapping[str, Any] = FACTS, max_rounds: int = 40
                    ) -> list[list[str]]:
    """Rounds a minute apart (work_round) until the run ends; the steps each round acted on."""
    rounds: list[list[str]] = []
    for _ in range(max_rounds):
        drain_wakes(rt)
        if get_run(rt, run_id).status != "running":
            return rounds
        acted = work_round(rt, run_id, grade, given=given, facts=facts)
        assert acted, {k: s.status for k, s in steps(rt, run_id).items()
                       if s.status not in ("done", "skipped")}
        rounds.append(acted)
        clock.advance(timedelta(minutes=1))
    raise AssertionError(f"run {run_id} did not finish in {max_rounds} rounds")


def walk_up_to_the_close(rt: Runtime, clock: ManualClock, grade: str = "重大") -> int:
    """A leak started (Monday 09:00 on the tests' clock) and worked a minute a round up to the
    close, which is left open: for 重大, the first 续报 is done and sent and the second
    written ahead for 16:00. Returns the run id."""
    run_id = start(rt, grade)
    for _ in range(30):
        drain_wakes(rt)
        if not work_round(rt, run_id, grade, skip=("close",)):
            break
        clock.advance(timedelta(minutes=1))
    drain_wakes(rt)
    return run_id
