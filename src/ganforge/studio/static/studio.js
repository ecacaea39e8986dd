// GANForge studio: one page, no libraries.  Every value is checked by the server; its
// one-line messages are shown in #error.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { runs: [], model: null, view: "runs", a: null, b: null, inputSize: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function showNotes(notes) {
  const box = $("notes");
  box.textContent = (notes || []).join("\n");
  box.hidden = !(notes && notes.length);
}

async function call(url, options = {}) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok || body === null) {
    throw new Error((body && body.error) || `the studio answered ${response.status}`);
  }
  return body;
}

async function busy(button, work) {
  showError("");
  button.disabled = true;
  $("status").textContent = "working…";
  try {
    await work();
    $("status").textContent = "";
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  } finally {
    button.disabled = false;
  }
}

function formFields(form) {
  const fields = { run: $("run").value };
  for (const [key, value] of new FormData(form).entries()) {
    if (typeof value === "string") fields[key] = value;
  }
  return fields;
}

function post(url, fields) {
  return call(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(fields),
  });
}

function showImage(id, src) {
  const img = $(id);
  img.src = src;
  img.hidden = false;
}

// ----- views --------------------------------------------------------------------------
function setView(view) {
  state.view = view;
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.view === view);
  }
  for (const section of document.querySelectorAll("section.view")) {
    section.hidden = section.id !== `view-${view}`;
  }
  showError("");
}

function applyModel(model) {
  state.model = model;
  document.body.dataset.model = model ? model.id : "";  // which run the page is set up for
  const views = model ? model.views : [];
  for (const button of document.querySelectorAll("#tabs button")) {
    const v = button.dataset.view;
    button.disabled = v !== "runs" && !views.includes(v);
  }
  if (state.view !== "runs" && !views.includes(state.view)) setView(views[0] || "runs");
  if (!model) return;
  const toggle = (cls, on) => {
    for (const node of document.querySelectorAll(`.${cls}`)) node.hidden = !on;
  };
  toggle("needs-classes", model.conditional);
  toggle("needs-style", model.style_based);
  toggle("needs-codes", Boolean(model.codes));
  toggle("needs-directions", (model.directions || []).length > 0);
  toggle("needs-translate", model.operation === "translate");
  toggle("needs-inpaint", model.operation === "inpaint");
  for (const node of document.querySelectorAll(".truncation-hint")) {
    node.textContent = `truncation (${model.family}): ${model.truncation}`;
  }
  for (const id of ["gen-class", "walk-class"]) {
    const select = $(id);
    select.replaceChildren(el("option", { value: "" }, id === "gen-class"
      ? "one column per class" : "cycle through the classes"));
    model.classes.forEach((name, k) => select.append(el("option", { value: k }, `${k}: ${name}`)));
  }
  $("sweep-code").replaceChildren(...(model.codes || []).map((c) => el("option", {}, c)));
  $("mix-hint").textContent = model.num_ws
    ? `layers 0-${model.num_ws - 1}: coarse (pose, shape) first, fine (colour) last` : "";
  $("img-op").textContent = model.operation ? `(${model.operation})` : "";
  $("img-target-fig").hidden = model.task === "unpaired";
}

async function selectRun(id) {
  $("run").value = id;
  showError("");
  showNotes([]);
  for (const img of document.querySelectorAll("section.view:not(#view-runs) img")) img.hidden = true;
  $("gen-download").hidden = true;
  $("img-canvas").hidden = true;
  if (!id) { applyModel(null); return; }
  $("status").textContent = "loading the model…";
  try {
    applyModel(await call(`/api/model?run=${encodeURIComponent(id)}`));
    $("status").textContent = "";
  } catch (err) {
    applyModel(null);
    showError(err.message);
    $("status").textContent = "";
  }
}

// ----- Runs ---------------------------------------------------------------------------
function mainFigure(run) {
  const e = run.evaluation;
  if (!e) return "not evaluated";
  const m = e.metrics;
  const key = ["fid", "psnr", "l1"].find((k) => k in m) || Object.keys(m)[0];
  return key ? `${key} ${fmt(m[key])}` : "";
}

function fmt(v) {
  if (v === undefined || v === null) return "";
  const a = Math.abs(v);
  return a !== 0 && (a < 0.001 || a >= 1e5) ? v.toExponential(2) : v.toFixed(a < 1 ? 4 : 2);
}

async function loadRuns() {
  const body = await call("/api/runs");
  state.runs = body.runs;
  $("roots").textContent = `runs under: ${body.roots.join(", ")}`;
  const select = $("run");
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, "(choose a run)"));
  const tbody = document.querySelector("#runs-table tbody");
  tbody.replaceChildren();
  for (const run of body.runs) {
    const label = `${run.name} — ${run.family || "?"} (${run.preset || "?"})`;
    select.append(el("option", { value: run.id }, label));
    const a = el("input", { type: "radio", name: "card-a", value: run.id, "aria-label": "A" });
    const b = el("input", { type: "radio", name: "card-b", value: run.id, "aria-label": "B" });
    a.addEventListener("change", () => showCard("a", run.id));
    b.addEventListener("change", () => showCard("b", run.id));
    const name = el("td", {}, run.name);
    if (run.kind !== "trained") name.append(el("span", { class: "badge" }, run.kind));
    const row = el("tr", { "data-run": run.id }, name, el("td", {}, run.family || ""),
      el("td", {}, run.preset || ""), el("td", {}, run.data || ""),
      el("td", {}, run.steps ?? ""), el("td", {}, mainFigure(run)),
      el("td", {}, a), el("td", {}, b));
    row.addEventListener("click", (event) => {
      if (event.target.tagName === "INPUT") return;
      a.checked = true;
      showCard("a", run.id);
      selectRun(run.id);
    });
    tbody.append(row);
  }
  if (current && body.runs.some((r) => r.id === current)) select.value = current;
}

async function showCard(which, id) {
  const card = $(`card-${which}`);
  card.replaceChildren(el("p", { class: "hint" }, "loading…"));
  for (const row of document.querySelectorAll("#runs-table tbody tr")) {
    if (which === "a") row.classList.toggle("a", row.dataset.run === id);
  }
  try {
    const run = await call(`/api/run?run=${encodeURIComponent(id)}`);
    card.replaceChildren(...runCard(run));
  } catch (err) {
    card.replaceChildren(el("p", { class: "hint" }, err.message));
  }
}

function runCard(run) {
  const parts = [el("h3", {}, run.name)];
  const steps = run.steps_planned && run.steps_planned !== run.steps
    ? `${run.steps} of ${run.steps_planned}` : `${run.steps}`;
  parts.push(el("p", {}, `${run.family} · preset ${run.preset} · data ${run.data} · steps ${steps}`
    + (run.imported_from ? ` · imported from ${run.imported_from}` : "")));
  const e = run.evaluation;
  if (e) {
    const floor = e.floor ? e.floor.metrics : {};
    const rvr = e.real_vs_real ? e.real_vs_real.metrics : {};
    const head = el("tr", {}, el("th", {}, "metric"), el("th", {}, "this run"),
      el("th", {}, e.floor ? `floor: ${e.floor.name}` : "floor"),
      el("th", {}, e.real_vs_real ? `real vs real (${e.real_vs_real.splits})` : "real vs real"));
    const rows = Object.entries(e.metrics).map(([k, v]) => el("tr", {}, el("td", {}, k),
      el("td", {}, fmt(v)), el("td", {}, fmt(floor[k])), el("td", {}, fmt(rvr[k]))));
    parts.push(el("table", { class: "metrics" }, el("thead", {}, head), el("tbody", {}, ...rows)));
    parts.push(el("p", { class: "hint" },
      `${e.features} features, ${e.n ?? "?"} generated; real: ${e.real}`));
  } else {
    parts.push(el("p", { class: "hint" }, "no evaluation yet (ganforge eval RUN writes eval.json)"));
  }
  if (run.has_samples) {
    parts.push(el("img", { class: "sample", alt: `last sample grid of ${run.name}`,
      src: `/api/run/sample.png?run=${encodeURIComponent(run.id)}` }));
  }
  if (run.curves && Object.keys(run.curves).length) parts.push(lossPlot(run.curves));
  return parts;
}

const COLOURS = ["#2f5fd0", "#d0462f", "#2f9e5a", "#9b3fc4", "#c48a1c", "#1c9fc4", "#666"];

function lossPlot(curves) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 520, H = 240, L = 44, R = 10, T = 10, B = 56;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "curves");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "loss curves");
  const all = Object.values(curves).flat();
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 1; y1 += 1; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    add("text", { x: L - 4, y: sy(y) + 3, "text-anchor": "end" }, fmt(y));
  }
  for (const x of [x0, x1]) add("text", { x: sx(x), y: H - B + 12, "text-anchor": "middle" }, x);
  add("text", { x: (L + W - R) / 2, y: H - B + 24, "text-anchor": "middle" }, "step");
  Object.entries(curves).forEach(([key, points], i) => {
    const colour = COLOURS[i % COLOURS.length];
    const d = points.map((p, k) => `${k ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`);
    add("path", { d: d.join(""), fill: "none", stroke: colour, "stroke-width": 1.3 });
    add("text", { x: L + (i % 4) * 118, y: H - 20 + Math.floor(i / 4) * 11 },
      key).setAttribute("style", `fill:${colour}`);
  });
  return svg;
}

// ----- Generate, Explore, Text -----------------------------------------------------------
function wire(formId, buttonId, url, done) {
  $(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    busy($(buttonId), async () => done(await post(url, formFields($(formId)))));
  });
}

wire("gen-form", "gen-go", "/api/generate", (r) => {
  showImage("gen-grid", r.grid);
  const link = $("gen-download");
  link.href = r.zip;
  link.hidden = false;
  $("status").textContent = `${r.count} images from ${r.source}`;
});
wire("walk-form", "walk-go", "/api/walk", (r) => {
  showImage("walk-strip", r.strip);
  showImage("walk-gif", r.gif);
});
wire("mix-form", "mix-go", "/api/mix", (r) => showImage("mix-grid", r.grid));
wire("sweep-form", "sweep-go", "/api/sweep", (r) => showImage("sweep-grid", r.grid));
wire("text-form", "text-go", "/api/text", (r) => {
  showImage("text-grid", r.grid);
  const words = $("text-words");
  words.replaceChildren("read as: ");
  for (const w of r.words) {
    words.append(el("span", { class: w.known ? "word-known" : "word-unknown",
      title: w.known ? "known word" : "unknown word: read as <unk>" }, w.word), " ");
  }
  if (r.unknown.length) words.append(el("span", { class: "hint" }, `(unknown: ${r.unknown.join(", ")})`));
});

// ----- Image in, image out ---------------------------------------------------------------
function drawInput(src) {
  const img = new Image();
  img.onload = () => {
    state.inputSize = [img.naturalWidth, img.naturalHeight];
    const canvas = $("img-canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.getContext("2d").drawImage(img, 0, 0);
    canvas.dataset.src = src;
    canvas.hidden = false;
    $("img-input").hidden = true;
    drawBox();
  };
  img.src = src;
}

function drawBox() {
  const canvas = $("img-canvas");
  if (canvas.hidden || !canvas.dataset.src) return;
  const img = new Image();
  img.onload = () => {
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const box = $("img-box").value.split(",").map(Number);
    if (box.length === 4 && box.every(Number.isFinite) && state.model.operation === "inpaint") {
      ctx.strokeStyle = "#ff2a2a";
      ctx.lineWidth = Math.max(1, canvas.width / 96);
      ctx.strokeRect(box[1], box[0], box[3], box[2]);
    }
  };
  img.src = canvas.dataset.src;
}

$("img-box").addEventListener("input", drawBox);

(() => {
  const canvas = $("img-canvas");
  let start = null;
  const at = (event) => {
    const r = canvas.getBoundingClientRect();
    return [Math.floor(((event.clientY - r.top) / r.height) * canvas.height),
      Math.floor(((event.clientX - r.left) / r.width) * canvas.width)];
  };
  canvas.addEventListener("mousedown", (event) => { start = at(event); });
  canvas.addEventListener("mousemove", (event) => {
    if (!start || !state.model || state.model.operation !== "inpaint") return;
    const [y, x] = at(event);
    const top = Math.max(0, Math.min(start[0], y)), left = Math.max(0, Math.min(start[1], x));
    const h = Math.min(canvas.height, Math.max(start[0], y) + 1) - top;
    const w = Math.min(canvas.width, Math.max(start[1], x) + 1) - left;
    $("img-box").value = `${top},${left},${h},${w}`;
    drawBox();
  });
  window.addEventListener("mouseup", () => { start = null; });
})();

$("img-file").addEventListener("change", () => {
  const file = $("img-file").files[0];
  $("img-test").value = "";
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => drawInput(reader.result);
  reader.readAsDataURL(file);
  $("img-target").hidden = true;
});

$("img-pick").addEventListener("click", () => busy($("img-pick"), async () => {
  $("img-file").value = "";
  const fields = { run: $("run").value, test: $("img-test").value || "0",
    direction: state.model && state.model.directions.length ? $("img-direction").value : "" };
  $("img-test").value = fields.test;
  const r = await post("/api/test-item", fields);
  drawInput(r.input);
  if (r.target) showImage("img-target", r.target); else $("img-target").hidden = true;
  $("status").textContent = `test item ${fields.test} of ${r.count}`;
}));

$("img-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("img-go"), async () => {
    const form = new FormData();
    form.append("run", $("run").value);
    const file = $("img-file").files[0];
    if (file) form.append("image", file, file.name);
    else if ($("img-test").value) form.append("test", $("img-test").value);
    const m = state.model || {};
    if ((m.directions || []).length) form.append("direction", $("img-direction").value);
    if (m.operation === "translate" && $("img-size").value) form.append("size", $("img-size").value);
    if (m.operation === "inpaint") form.append("box", $("img-box").value);
    const r = await call("/api/image", { method: "POST", body: form });
    showNotes(r.notes);
    if (m.operation === "inpaint") drawInput(r.input);
    else {
      $("img-canvas").hidden = true;
      showImage("img-input", r.input);
    }
    showImage("img-output", r.output);
    if (r.target) showImage("img-target", r.target);
  });
});

// ----- start ----------------------------------------------------------------------------
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => setView(button.dataset.view));
}
$("run").addEventListener("change", () => selectRun($("run").value));
applyModel(null);
loadRuns().catch((err) => showError(err.message));
