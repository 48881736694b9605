"""A task shows what the tasks it waits on recorded (`earlier`, GET /api/tasks/{id}): the duty
officer who signs a hotspot's 核查反馈 sees, on that task's own page, the grid worker's finding,
who made it and when, and the photo, as the feedback's description asks (审核现场核查结论和
照片). Before, the page showed only the hotspot's parameters: the finding was on the run page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from factories import png_bytes, run_steps
from hotspot_case import DUTY_OFFICER, PARAMS
from playwright.sync_api import Page, expect

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes

SignedIn = Callable[..., Page]
SCENE = "林地旁菜地焚烧秸秆，火堆约2平方米"


def test_the_feedback_task_shows_the_on_site_finding_and_its_photo(
        signed_in: SignedIn, server: Any, web_rt: Runtime) -> None:
    rt = web_rt
    run = lifecycle.start_run(rt, playbook_id="hotspot-check", unit_id="jiangling",
                              params=PARAMS, actor=DUTY_OFFICER)
    drain_wakes(rt)

    def step(key: str) -> Any:
        return next(s for s in run_steps(rt, run.id or 0) if s.step_key == key)

    tasks.complete(rt, step_id=step("receive").id or 0, actor=DUTY_OFFICER, note="已接收",
                   outputs={"notified": "江岭社区网格员"})
    drain_wakes(rt)
    verify = step("verify")
    grid = verify.assignees[0]
    photo = store_evidence(rt, data=png_bytes(), filename="现场.png", uploaded_by=grid).id
    tasks.complete(rt, step_id=verify.id or 0, actor=grid, note="已到场核查",
                   outputs={"outcome": "农事用火", "arrived_at": rt.clock.now().isoformat(),
                            "open_fire": False, "scene": SCENE, "measures": "已责令熄灭"},
                   evidence=[photo])
    drain_wakes(rt)
    feedback = step("feedback")
    assert feedback.status == "ready"

    page = signed_in(DUTY_OFFICER)
    page.goto(server.url(f"/tasks/{feedback.id}"))
    earlier = page.locator("#earlier .earlier[data-step='verify']")
    expect(earlier).to_have_count(1)
    expect(earlier.locator("h3")).to_contain_text(rt.org.person_name(grid))
    expect(earlier.locator("table")).to_contain_text("农事用火")
    expect(earlier.locator("table")).to_contain_text(SCENE)
    expect(earlier.locator("figure.thumb img")).to_have_count(1)
    # The heading links to the finding's own task.
    expect(earlier.locator("h3 a")).to_have_attribute("href", f"/tasks/{verify.id}")
