// 演练评估 (复盘 of a real event): each task of the run against its deadline, the summary,
// the evaluator's written assessments (each save a new one, the earlier kept) and the report
// as it prints. Commanders and managers of the run's unit read and write it; anyone else is
// shown the API's refusal. 单位 is the unit of whoever did or held the task (the API's
// unit_name), the step's own where nobody did.
import {
  $, api, clear, clearFlash, drillBanner, flash, h, markField, showError, startPage,
} from "/static/closeloop.js";
import { docBody } from "/static/docview.js";

const RUN_ID = document.body.dataset.runId;
const COLUMNS = ["环节", "单位", "下达", "签收", "完成", "期限", "结果", "督办级别", "办理人"];

function fact(term, value) {
  return [h("dt", { text: term }), h("dd", { text: value })];
}

function outcomeText(step) {
  return step.late_minutes ? `${step.outcome_zh} ${step.late_minutes} 分钟` : step.outcome_zh;
}

function drawSummary(ev) {
  const s = ev.summary;
  const first = s.first_report_minutes === null ? "未报出"
    : `${s.first_report_at_local} 报出，距接报 ${s.first_report_minutes} 分钟`;
  const longest = s.longest_delays.map((d) => `${d.title}（${d.unit_name}，${d.late_minutes} 分钟）`)
    .join("；") || "无";
  // How it ended, when and by whom (结束演练, 结束响应, 取消; or its last step done).
  const end = s.ended;
  const ended = end ? [`${end.at_local} ${end.how_zh}`, end.how === "finished" ? null : end.by_name,
    end.note ? `说明：${end.note}` : null].filter(Boolean).join("，") : null;
  clear($("#eval-summary")).append(
    ...fact("事件", `${ev.title}（${ev.unit_name}）`),
    ...(ev.drill ? fact("演练方式", ev.drill.title ? `${ev.drill.kind}：${ev.drill.title}` : ev.drill.kind) : []),
    ...(ended ? fact("结束", ended) : []),
    ...fact("按时完成", `${s.on_time} 项`),
    ...fact("超时完成", `${s.late} 项`),
    ...fact("未完成", `${s.missed} 项`),
    ...fact("未到期", `${s.open} 项`),
    ...(end && end.how === "drill_end" ? fact("演练结束时未到期", `${s.ended_not_due} 项`) : []),
    ...fact("触发督办", `${s.escalated} 项`),
    ...fact("首报", first),
    ...fact("延误最长", longest),
  );
}

function drawSteps(ev) {
  clear($("#eval-steps")).append(
    h("thead", {}, h("tr", {}, COLUMNS.map((text) => h("th", { scope: "col", text })))),
    h("tbody", {}, ev.steps.map((s) => h("tr", { class: `outcome-${s.outcome}`, dataset: { step: s.step } },
      h("td", { text: s.title }),
      h("td", { text: s.unit_name }),
      h("td", { text: s.ready_at_local || "—" }),
      h("td", { text: s.acked_at_local || "—" }),
      h("td", { text: s.finished_at_local || "—" }),
      h("td", { text: s.due_at_local || "—" }),
      h("td", { class: "outcome", text: outcomeText(s) }),
      h("td", { text: s.escalation_level ? `${s.escalation_level} 级` : "—" }),
      h("td", { text: s.finished_by_name || s.acked_by_name || "—" }),
    ))));
}

function drawHistory(ev) {
  const list = clear($("#eval-history"));
  if (!ev.assessments.length) {
    list.append(h("li", { class: "meta", text: "尚未填写评估意见。" }));
    return;
  }
  for (const a of ev.assessments) {
    list.append(h("li", {},
      h("p", { class: "meta", text: `${a.at_local} · ${a.by_name}` }),
      h("p", { class: "assessment-text", text: a.assessment })));
  }
}

function draw(ev) {
  $("#heading").textContent = `${ev.drill ? "【演练】" : ""}${ev.heading}`;
  // The print's header and a saved PDF's name: a drill's says so, as its heading does.
  document.title = `${ev.drill ? "【演练】" : ""}${ev.heading} · ${ev.title} · closeloop`;
  clear($("#drill-band")).append(...[drillBanner(ev.drill && { ...ev.drill, mark: "【演练】" })].filter(Boolean));
  drawSummary(ev);
  drawSteps(ev);
  drawHistory(ev);
  clear($("#report")).append(docBody(ev));
  $("#evaluation").hidden = false;
}

async function assess(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearFlash();
  markField(form, null);
  const button = $("#assess-submit");
  button.disabled = true;
  try {
    const ev = await api(`/api/runs/${RUN_ID}/evaluation`, {
      method: "POST", json: { assessment: $("#assessment").value } });
    $("#assessment").value = "";
    draw(ev);
    flash("评估意见已保存，已记入时间线。", "ok");
  } catch (err) {
    showError(err, form);
    markField(form, err);
  } finally {
    button.disabled = false;
  }
}

startPage(async () => {
  draw(await api(`/api/runs/${RUN_ID}/evaluation`));
  $("#assess-form").addEventListener("submit", assess);
  $("#print").addEventListener("click", () => window.print());
});
