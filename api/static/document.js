// One document of a run on its own page (/runs/{run}/documents/{doc}): read as the office
// files it, and printed alone (打印; the run page's 打印 opens it with ?print=1, which opens
// the print dialog once it is drawn). document.css leaves only the document on paper.
import { $, api, clear, h, startPage } from "/static/closeloop.js";
import { docBody, docSource, docTitle } from "/static/docview.js";

const RUN_ID = document.body.dataset.runId;
const DOC_ID = document.body.dataset.documentId;

function draw(doc) {
  const title = docTitle(doc);
  $("#heading").textContent = title;
  // The print's own header and a saved PDF's name are the page's title.
  document.title = title;
  const served = (doc.recipients || []).map((r) => r.name).join("、");
  const meta = [doc.for === "escalation" ? doc.title : null, doc.number,
    doc.created_at_local, served ? `送达：${served}` : null].filter(Boolean);
  $("#doc-meta").textContent = meta.join(" · ");
  clear($("#doc")).append(docBody(doc));
  clear($("#doc-source")).append(docSource(doc));
  $("#doc-page").hidden = false;
}

startPage(async () => {
  const doc = await api(`/api/runs/${RUN_ID}/documents/${DOC_ID}`);
  draw(doc);
  $("#print").addEventListener("click", () => window.print());
  const params = new URLSearchParams(window.location.search);
  if (params.get("print") === "1") {
    // Once: a reload of this tab shows the document without asking to print it again.
    window.history.replaceState(null, "", window.location.pathname);
    window.print();
  }
});
