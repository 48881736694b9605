// A filed document as people read it (run.js lists them, document.js prints one): its own
// title, and its body as the server rendered it from Markdown (api/document_html.py, raw HTML
// off). The rendering is built again here element by element from a short list of tags with no
// attributes (but a list's start number), the way closeloop.js builds everything else, so that
// nothing in the text, which comes from what people typed, can become a script, a link, an
// image or a style, even if the server's rendering changed.
import { h } from "/static/closeloop.js";

const TAGS = new Set([
  "h1", "h2", "h3", "h4", "h5", "h6", "p", "strong", "em", "code", "pre", "blockquote",
  "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "hr", "br",
]);

// The document's own title (its first heading: 重大事故隐患挂牌督办通知书), else the record's.
export function docTitle(doc) {
  return doc.heading || doc.title;
}

function copy(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.textContent);
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  const children = [...node.childNodes].map(copy).filter(Boolean);
  const tag = node.tagName.toLowerCase();
  if (tag === "script" || tag === "style") return null;
  // Any other tag: its text stays, the tag does not.
  if (!TAGS.has(tag)) return children.length ? h("span", {}, children) : null;
  const start = tag === "ol" && /^\d{1,4}$/.test(node.getAttribute("start") || "")
    ? node.getAttribute("start") : null;
  return h(tag, { start }, children);
}

// The rendered body (`doc.html`) as elements, in a div.doc-html.
export function docBody(doc) {
  const parsed = new DOMParser().parseFromString(doc.html || "", "text/html");
  return h("div", { class: "doc-html" }, [...parsed.body.childNodes].map(copy).filter(Boolean));
}

// The Markdown as filed, folded away: to copy into another system as it is.
export function docSource(doc) {
  return h("details", { class: "doc-source" },
    h("summary", { text: "原文" }),
    h("pre", { class: "doc-body", text: doc.body }));
}

// Where one document is read and printed on its own; `print` opens the print dialog at once.
export function docPage(doc, runId, { print = false } = {}) {
  return `/runs/${runId}/documents/${doc.id}${print ? "?print=1" : ""}`;
}
