// SentiCompare's web UI: six views over the JSON API (docs/serve.md). Every value from the API
// reaches the page through textContent or a form control's value, never as markup.
"use strict";

const state = { options: null, adapters: [], polling: null };

function token() {
  return sessionStorage.getItem("senticompare-token") || "";
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, body === undefined ? { headers } :
    { method: "POST", headers, body: JSON.stringify(body) });
  if (response.status === 401) document.getElementById("auth").hidden = false;
  const isJson = (response.headers.get("content-type") || "").includes("json");
  const data = isJson ? await response.json() : await response.text();
  if (!response.ok) {
    const detail = isJson ? data.detail : data;
    throw new Error(Array.isArray(detail)
      ? detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
      : String(detail));
  }
  return data;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function number(value, digits = 3) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

async function guarded(work) {
  showError(null);
  try {
    return await work();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

// ---- Train
async function loadOptions() {
  if (state.options) return state.options;
  state.options = await api("/options");
  return state.options;
}

function checkboxes(container, name, values, describe) {
  const legend = container.querySelector("legend");
  container.replaceChildren(legend);
  for (const value of values) {
    container.append(el("label", {}, el("input", { type: "checkbox", name, value }), ` ${value} `,
      el("small", { text: describe ? describe(value) : "" })));
  }
}

async function showTrain() {
  const options = await loadOptions();
  checkboxes(document.getElementById("train-models"), "models", Object.keys(options.models),
    (id) => options.models[id]);
  checkboxes(document.getElementById("train-datasets"), "datasets", Object.keys(options.datasets),
    (id) => options.datasets[id].join(" / "));
  const preset = document.getElementById("train-preset");
  preset.replaceChildren(...options.presets.map((p) => el("option", { value: p, text: p, selected: p === "tiny" })));
}

function field(form, name) {
  return form.elements.namedItem(name);
}

function checked(form, name) {
  return [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((input) => input.value);
}

async function submitTrain(event) {
  event.preventDefault();
  const form = event.target;
  const isYaml = form.id === "train-yaml";
  const body = { report: field(form, "report").checked, force: field(form, "force").checked };
  if (isYaml) body.study_yaml = field(form, "study_yaml").value;
  else body.form = {
    name: field(form, "name").value, models: checked(form, "models"), datasets: checked(form, "datasets"),
    preset: field(form, "preset").value, seeds: field(form, "seeds").value.split(",").map((s) => parseInt(s, 10)),
  };
  const job = await guarded(() => api("/train", body));
  if (job) location.hash = `#jobs/${job.id}`;
}

// ---- Jobs
function jobRow(job) {
  return el("tr", { "data-job": job.id },
    el("td", {}, el("a", { href: `#jobs/${job.id}`, text: String(job.id) })),
    el("td", { text: job.title }), el("td", { class: `state-${job.state}`, text: job.state }),
    el("td", { text: job.stage || "" }),
    el("td", {}, job.progress === null ? "" : el("progress", { max: 1, value: job.progress })),
    el("td", { text: job.created }));
}

async function showJobs(id) {
  const jobs = await api("/jobs");
  document.querySelector("#jobs-table tbody").replaceChildren(...jobs.map(jobRow));
  const detail = document.getElementById("job-detail");
  detail.hidden = id === undefined;
  if (id === undefined) {
    poll(() => showJobs(), jobs.some((j) => j.state === "running" || j.state === "queued"));
    return;
  }
  const job = await api(`/jobs/${id}`);
  document.getElementById("job-title").textContent = `#${job.id} ${job.title}`;
  document.getElementById("job-state").textContent = job.state;
  document.getElementById("job-stage").textContent = job.stage || "";
  const bar = document.getElementById("job-progress");
  if (job.progress === null) bar.removeAttribute("value");
  else bar.value = job.progress;
  bar.hidden = job.state !== "running";
  const error = document.getElementById("job-error");
  error.textContent = job.error || "";
  error.hidden = !job.error;
  document.getElementById("job-log").textContent = (job.log_tail || []).join("\n");
  document.getElementById("job-cancel").hidden = !["queued", "running"].includes(job.state);
  document.getElementById("job-cancel").onclick = () => guarded(async () => {
    await api(`/jobs/${job.id}/cancel`, {});
    await showJobs(id);
  });
  document.getElementById("job-adapters").replaceChildren(...job.adapters.map((adapter) => el("p", {},
    `Adapter ${adapter} `, el("a", { href: `#predict/${encodeURIComponent(adapter)}`, text: "predict with it" }))),
  ...(job.evaluation ? [el("p", {}, el("a", { href: job.evaluation, text: "its evaluation (JSON)" }))] : []));
  poll(() => showJobs(id), ["queued", "running"].includes(job.state));
}

function poll(again, active) {
  clearTimeout(state.polling);
  state.polling = active ? setTimeout(() => guarded(again), 1500) : null;
}

// ---- Adapters
async function loadAdapters() {
  state.adapters = await api("/adapters");
  return state.adapters;
}

async function showAdapters() {
  const adapters = await loadAdapters();
  document.querySelector("#adapters-table tbody").replaceChildren(...adapters.map((a) => el("tr", {},
    el("td", { text: a.id }), el("td", { text: a.method }), el("td", { text: a.dataset }),
    el("td", { text: a.labels.join(", ") }), el("td", { text: a.preset }), el("td", { text: String(a.seed) }),
    el("td", { text: a.label_type }), el("td", { text: headline(a) }),
    el("td", { text: a.created }), el("td", { text: a.present ? "present" : "MISSING" }))));
}

// The two numbers an adapter's label type is judged by (helpers/metrics.py MAIN_METRIC, SECOND_METRIC).
const HEADLINES = {
  multi: [["micro_f1", "micro-F1"], ["macro_f1", "macro-F1"]],
  regression: [["mae", "MAE"], ["r2", "R²"]],
};
const SINGLE_LABEL = [["accuracy", "accuracy"], ["f1", "macro F1"]];

function headline(adapter) {
  return (HEADLINES[adapter.label_type] || SINGLE_LABEL).filter(([key]) => adapter.metrics[key] != null)
    .map(([key, name]) => `${name} ${number(adapter.metrics[key])}`).join(" · ") || "–";
}

// ---- Predict / Generate
async function showPredict(preselected) {
  const adapters = (await loadAdapters()).filter((a) => a.present);
  const box = document.getElementById("predict-adapters");
  const keep = new Set(checked(document.getElementById("predict-form"), "adapters"));
  if (preselected) keep.add(preselected);
  checkboxes(box, "adapters", adapters.map((a) => a.id),
    (id) => { const a = adapters.find((x) => x.id === id); return `${a.method}, ${a.labels.join(" / ")}`; });
  for (const input of box.querySelectorAll("input")) input.checked = keep.has(input.value);
}

// A card per adapter, by what its head answers (the Prediction schema fills one kind's fields):
// one label with probabilities; several labels with scores; a number per target with an interval.
function predictionCard(result) {
  const p = result.predictions[0];
  const card = el("article", { class: "card", "data-adapter": result.adapter }, el("h3", { text: result.adapter }));
  if (p.prediction) return regressionCard(card, p);
  if (p.scores) return multiLabelCard(card, p);
  return singleLabelCard(card, p);
}

function meterRow(label, value) {
  return el("tr", {}, el("td", { text: label }), el("td", {}, el("meter", { min: 0, max: 1, value })),
    el("td", { class: "prob", text: number(value) }));
}

function singleLabelCard(card, p) {
  card.append(el("p", {}, "label ", el("strong", { class: "label", text: p.label }),
    ` · confidence ${number(p.confidence)}`));
  const table = el("table", { class: "probabilities" });
  for (const [label, value] of Object.entries(p.probabilities || {})) table.append(meterRow(label, value));
  card.append(table,
    el("p", { text: `conformal set: {${(p.conformal_set || []).join(", ")}} · `
      + `${p.abstain ? "abstain: hand to a person" : "decide"}`
      + ` · ${p.confident ? "confident" : "below the selective threshold"}` }));
  if (p.generated) {
    card.append(el("p", { text: `answer read as ${p.generated.read_as}: ${p.generated.decision ?? "no decision"}` }),
      el("pre", { class: "answer", text: p.generated.answer }));
    if (p.generated.rationale) card.append(el("p", { class: "rationale", text: p.generated.rationale }));
  }
  return card;
}

function multiLabelCard(card, p) {
  card.append(el("p", {}, "labels ", el("strong", { class: "label",
    text: p.labels.length ? p.labels.join(", ") : "none above its threshold" })));
  const table = el("table", { class: "probabilities" });
  const ranked = Object.entries(p.scores).sort((a, b) => b[1] - a[1]);
  for (const [label, value] of ranked) {
    const row = meterRow(label, value);
    if (p.labels.includes(label)) row.classList.add("chosen");
    table.append(row);
  }
  card.append(table, el("p", { text: `label set (conformal): {${(p.label_set || []).join(", ")}}` }));
  return card;
}

function regressionCard(card, p) {
  const table = el("table", { class: "regression" },
    el("tr", {}, el("th", { text: "target" }), el("th", { text: "prediction" }), el("th", { text: "interval" })));
  for (const [target, value] of Object.entries(p.prediction)) {
    const interval = (p.interval || {})[target];
    table.append(el("tr", {}, el("td", { text: target }), el("td", { class: "label", text: number(value, 2) }),
      el("td", { text: interval ? `[${number(interval[0], 2)}, ${number(interval[1], 2)}]` : "–" })));
  }
  card.append(table);
  return card;
}

async function submitPredict(event) {
  event.preventDefault();
  const form = event.target;
  const mode = form.querySelector("input[name=mode]:checked").value;
  const text = field(form, "text").value;
  const body = { adapters: checked(form, "adapters"), texts: [text] };
  const results = document.getElementById("predict-results");
  results.replaceChildren(el("p", { text: "running…" }));
  const response = await guarded(() => api(`/${mode}`, body));
  results.replaceChildren(...(response ? [el("p", { class: "predicted-text", text: `Text: ${text}` }),
    ...response.results.map(predictionCard)] : []));
}

// ---- Merge
function mergeRow() {
  const select = el("select", { name: "adapter" },
    ...state.adapters.filter((a) => a.present).map((a) => el("option", { value: a.id, text: a.id })));
  return el("div", { class: "merge-row" }, el("label", {}, "Adapter ", select),
    el("label", {}, " weight ", el("input", { name: "weight", type: "number", step: "any", value: "0.5" })));
}

async function showMerge() {
  await loadAdapters();
  const rows = document.getElementById("merge-rows");
  rows.replaceChildren(mergeRow(), mergeRow());
  const selects = rows.querySelectorAll("select");
  if (selects[1] && selects[1].options.length > 1) selects[1].selectedIndex = 1;
}

async function submitMerge(event) {
  event.preventDefault();
  const form = event.target;
  const adapters = [...form.querySelectorAll(".merge-row")].map((row) => ({
    id: row.querySelector("select").value, weight: parseFloat(row.querySelector("input").value),
  }));
  const body = { adapters, method: field(form, "method").value, out_id: field(form, "out_id").value,
    force: field(form, "force").checked };
  if (field(form, "density").value) body.density = parseFloat(field(form, "density").value);
  const job = await guarded(() => api("/merge", body));
  if (job) location.hash = `#jobs/${job.id}`;
}

// ---- Reports
async function showReports() {
  const reports = await api("/reports");
  const list = document.getElementById("reports-list");
  list.replaceChildren(...reports.map((r) => el("li", {},
    el("a", { href: "#reports", text: r.study, on: { click: (e) => { e.preventDefault(); guarded(() => openReport(r)); } } }),
    ` (${r.modified})`)));
  if (!reports.length) list.append(el("li", { text: "No report yet: train a study with the report on." }));
}

async function openReport(report) {
  const frame = document.getElementById("report-frame");
  frame.srcdoc = await api(report.url);  // sandboxed: no script of the report runs
  frame.hidden = false;
}

// ---- Routing
const views = {
  train: () => showTrain(), jobs: (arg) => showJobs(arg), predict: (arg) => showPredict(arg),
  merge: () => showMerge(), adapters: () => showAdapters(), reports: () => showReports(),
};

function route() {
  const [name, ...rest] = (location.hash.slice(1) || "train").split("/");
  const view = views[name] ? name : "train";
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : undefined;
  poll(null, false);
  for (const section of document.querySelectorAll("[data-view]")) section.hidden = section.dataset.view !== view;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === `#${view}`);
  }
  guarded(() => views[view](arg));
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("train-form").addEventListener("submit", submitTrain);
  document.getElementById("train-yaml").addEventListener("submit", submitTrain);
  document.getElementById("predict-form").addEventListener("submit", submitPredict);
  document.getElementById("merge-form").addEventListener("submit", submitMerge);
  document.getElementById("merge-add").addEventListener("click",
    () => document.getElementById("merge-rows").append(mergeRow()));
  document.getElementById("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("senticompare-token", document.getElementById("token").value);
    document.getElementById("auth").hidden = true;
    state.options = null;
    route();
  });
  window.addEventListener("hashchange", route);
  route();
});
