"""Timeline actions as people read them (中文). The API sends `action_name` with every event so
the run page, an export or another client never shows an action's identifier
(extension_approved) to a manager; an action missing here is sent as its identifier, and
tests/api/test_overdue_hazard_timeline.py checks every action the engine writes is named."""

from __future__ import annotations

EVENT_NAMES_ZH: dict[str, str] = {
    "evaluation_assessed": "填写评估意见（问题与整改建议）",
    "run_started": "启动流程", "run_completed": "流程完成", "run_cancelled": "取消流程",
    "stage_changed": "切换阶段", "called_off": "撤销任务", "ready": "任务下达", "acked": "签收",
    "param_changed": "变更参数",
    "signal_acked": "叫应已回复",
    "signal_ack_missed": "叫应未回复",
    "submitted": "提交核验", "done": "完成", "verified": "核验通过", "rejected": "退回",
    "skipped": "跳过", "overdue": "逾期", "remind": "到期提醒", "ack": "未签收提醒",
    "escalate": "督办", "verify": "核验超时督办", "extended": "延期",
    "deadline_recounted": "期限重算", "delivery_resent": "重新发送通知",
    "extension_requested": "申请延期", "extension_approved": "同意延期",
    "extension_refused": "不同意延期", "extension_lapsed": "延期申请失效",
    "extension_decision_overdue": "延期审批超时", "extension_chase_failed": "延期督办失败",
    "reassigned": "改派", "child_started": "启动子流程", "delivery_failed": "通知发送失败",
    "render_failed": "文书生成出错", "expression_failed": "条件计算出错",
    "segment_failed": "自动步骤执行出错（重试中）", "hazards_imported": "导入隐患",
    "imported": "导入登记",  # a run an import started (flows/bulk_start.py IMPORTED)
    "hazards_import_stopped": "隐患导入中止", "risks_imported": "导入风险",
    "ranking_published": "发布月度排名", "rehanded": "重新下达",
    "timer_failed": "计时出错（稍后重试）", "unrouted": "督办无人可送",
    "notify_unrouted": "通知对象无人担任",
    "setup_reloaded": "重新加载配置",
    "unrouted_partly": "督办部分对象无人担任",
    "round": "按轮次下达", "round_withdrawn": "轮次结束撤回",
    "follow_up_not_needed": "无需跟踪",
    "alerted": "即时通知",  # a step's `alert` (flows/alerts.py): 应转未转 told at once
    "duty_fallback": "值班表未能确定值班人员，已通知全部人员",
}


def event_name(action: str) -> str:
    return EVENT_NAMES_ZH.get(action, action)
