"""A small playbook with rounds (`recur`), shared by the rounds tests on SQLite and PostgreSQL:
a first report, then a 续报 due at 08:00 and 17:00 (handed out at 07:00 and 16:00, due 1h,
escalated to the duty leader when late) until the close, each round sent by `send` (item by
item), and a summary after the sending, which must not wait for the next day's rounds."""

SITREP = """\
id: sitrep
version: 1
title: 事件续报
steps:
  - id: first
    title: 首报
    role: duty_officer
    due: 30m
  - id: follow-up
    title: 续报
    role: duty_officer
    needs: [first]
    recur: {at: ["07:00", "16:00"], until: [close]}
    due: 1h
    escalate:
      - {after: 0m, notify: [duty_leader]}
    outputs:
      progress: {type: string, required: true, title: 最新情况}
  - id: send
    title: 报送续报
    action: notify
    template: send.txt.j2
    to: [duty_leader]
    needs: [follow-up]
    item_needs: [follow-up]
  - id: summary
    title: 汇总已报情况
    role: duty_officer
    needs: [send]
  - id: close
    title: 处置终结
    role: duty_officer
    needs: [first]
"""
TEMPLATE = "续报：{{ steps['follow-up'].outputs.progress | default('') }}\n"
