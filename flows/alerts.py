"""A step's `alert`: a message sent the moment a task is handed in with outputs that call for
it, to people other than the next step's holders.

A community that records its transfer at a red signal with 3 people 应转未转 has people in a
danger zone hours before impact; its follow-up round comes an hour later and is chased only
when late. The street head and commander must hear at once, on their own channels, which
community, how many and why, so they can send help (强制转移, a stretcher) now. The same for
each round that still leaves people. The message is written in the outbox in the hand-in's
own transaction (nothing told for a hand-in that did not happen, nothing lost for one that
did) and the run's timeline says whom it reached.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session

from flows.duty import duty_cut, fallback_events, role_groups
from flows.expressions import ExpressionError, evaluate, render_string
from flows.message_titles import message_title
from flows.output_checks import hand_in_context
from flows.recipients import notification_rows, resolve_targets, target_name, unreached_roles
from flows.runtime import Runtime
from flows.spec import StepSpec
from models.audit import SYSTEM, AuditEvent
from models.org import ROLE_NAMES_ZH
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates, insert_rows

log = logging.getLogger("closeloop.alerts")

ALERTED = "alerted"


def alert_on_hand_in(session: Session, rt: Runtime, run: Run, step: StepInstance,
                     spec: StepSpec, outputs: dict[str, Any], *, actor: str,
                     now: datetime) -> None:
    """Tell `spec.alert.to` (resolved up from the item's unit) when `when` holds for this
    hand-in. A `when` or message that cannot be evaluated is logged and the message is sent
    with what is known: people in danger are better told plainly than not at all."""
    alert = spec.alert
    if alert is None:
        return
    context = hand_in_context(session, rt, run, step, spec, outputs)
    try:
        owed = bool(evaluate(alert.when, context))
    except ExpressionError as exc:
        log.warning("alert.when of step %s in run %s not evaluated: %s", spec.id, run.id, exc)
        owed = True
    if not owed:
        return
    unit_name = rt.org.unit_name(step.unit_id)
    try:
        body = render_string(alert.message, context).strip()
    except ExpressionError as exc:
        log.warning("alert.message of step %s in run %s not rendered: %s", spec.id, run.id, exc)
        body = f"{run.title}：{step.title}（{unit_name}）已填报，请立即查看。"
    by = rt.org.person_name(actor)
    body += f"\n{by}于 {rt.renderer.local(now)} 填报。"
    people, channels = resolve_targets(rt.org, alert.to, step.unit_id)
    cut = duty_cut(rt.org, rt.tz, now, role_groups(rt.org, alert.to, step.unit_id))
    insert_rows(session, AuditEvent, fallback_events(rt.org, cut, run_id=run.id,
                                                     step_id=step.id, now=now))
    title = message_title(rt, run, f"【{alert.title}】", unit_name, session)
    insert_ignoring_duplicates(session, Notification, notification_rows(
        rt.org, people=people, channels=channels, kind=ALERTED, title=title, body=body,
        dedupe=f"{ALERTED}|{step.id}|{step.version}", now=now, run_id=run.id,
        step_id=step.id, quiet=cut.quiet))
    missed = unreached_roles(rt.org, alert.to, step.unit_id)
    add_event(session, at=now, actor=SYSTEM, action=ALERTED, run_id=run.id, step_id=step.id,
              detail={"title": alert.title, "recipients": people + channels,
                      "recipient_names": [rt.org.person_name(p) for p in people] + channels}
              | ({"unrouted": [target_name(r, ROLE_NAMES_ZH) for r in missed]}
                 if missed else {}))
