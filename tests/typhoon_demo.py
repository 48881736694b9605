"""The shipped 台风633 playbook on the demo district, for the stage tests (going back a stage
and calling off, coming up again and handing out again): 坪山街道's commander runs it, and
六和社区's head has a channel of her own (in the shipped chart community heads have only the
inbox), so being told on one's own channel is seen."""

from __future__ import annotations

from pathlib import Path

from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime

from flows.runtime import Runtime
from models.clock import ManualClock

PLAYBOOK = "typhoon-633"
COMMANDER = "pingshan-street-commander"  # commands 坪山街道 and its five communities
LIUHE_URL = "json://127.0.0.1:9/liuhe-head"
NOTE = "预警降为黄色，暂停转移"


def typhoon_runtime(tmp_path: Path, clock: ManualClock) -> Runtime:
    text = DEMO_ORG.read_text(encoding="utf-8")
    liuhe = "title: 社区党委书记、居委会主任, roles: [community_head], notify: []}"
    assert text.count(liuhe) > 1
    at = text.index("{id: liuhe-head")
    text = text[:at] + text[at:].replace(liuhe, liuhe.replace("[]", f'["{LIUHE_URL}"]'), 1)
    rt = make_runtime(tmp_path / "typhoon", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_text=text)
    assert rt.catalog.errors == []
    return rt
