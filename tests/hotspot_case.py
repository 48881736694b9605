"""The satellite hotspot the hotspot-check tests report (playbooks/hotspot-check.yaml on the demo
district): 马峦山北坡, in 江岭社区, taken by the district duty room's 黄磊. Shared by the
engine's walk (tests/flows/test_hotspot_check.py) and the task page's (tests/web)."""

from __future__ import annotations

from typing import Any

PLAYBOOK = "hotspot-check"
DUTY_OFFICER = "pingshan-duty-1"  # 黄磊
PARAMS: dict[str, Any] = {
    "place": "马峦山北坡", "lat": 22.6531, "lon": 114.3702,
    "observed_at": "2026-03-02T08:42:00+08:00", "source": "国家卫星气象中心",
    "hotspot_no": "FY3D-20260302-017",
}
