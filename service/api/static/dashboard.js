// The operations dashboard: polls /v1/stats and draws it. No dependencies.
"use strict";

const POLL_MS = 2000;
const HISTORY = 300; // polls of queue depth kept for the load chart (10 minutes)
const OUTCOMES = ["ok", "error", "timeout", "memory_limit", "output_limit", "killed", "sandbox_error"];
const SVG = "http://www.w3.org/2000/svg";
const history = [];

const $ = (id) => document.getElementById(id);
const color = (name) => getComputedStyle(document.documentElement)
  .getPropertyValue("--" + (OUTCOMES.includes(name) ? name : "other")).trim();

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fillTable(table, rows, emptyText, columns) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    const row = body.insertRow();
    row.className = "empty";
    cell(row, emptyText).colSpan = columns;
  }
  return body;
}

const sum = (obj) => Object.values(obj).reduce((a, b) => a + b, 0);
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });

function age(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function duration(seconds) {
  if (seconds === undefined) return "–";
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
  return `${seconds.toFixed(2)} s`;
}

// Sizes an svg's coordinate system to its pixels, so text is never stretched.
function canvas(svg) {
  const width = Math.max(100, Math.round(svg.clientWidth || 600));
  const height = Math.max(20, Math.round(svg.clientHeight || 150));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  return { width, height };
}

function niceMax(value) {
  if (value <= 4) return 4;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

function axis(svg, box, top, pad) {
  for (const frac of [0, 0.5, 1]) {
    const y = pad.top + (box.height - pad.top - pad.bottom) * (1 - frac);
    svg.append(el("line", { x1: pad.left, x2: box.width - pad.right, y1: y, y2: y, class: "grid-line" }));
    svg.append(el("text", { x: pad.left - 4, y: y + 3, "text-anchor": "end" }, String(Math.round(top * frac))));
  }
}

function stackedBars(svg, window, labelEvery, label) {
  const box = canvas(svg);
  const pad = { top: 6, right: 4, bottom: 16, left: 30 };
  const totals = window.counts.map(sum);
  const top = niceMax(Math.max(...totals));
  axis(svg, box, top, pad);
  const plotH = box.height - pad.top - pad.bottom;
  const slot = (box.width - pad.left - pad.right) / window.counts.length;
  window.counts.forEach((counts, i) => {
    const x = pad.left + i * slot + 1;
    let y = box.height - pad.bottom;
    const names = Object.keys(counts).sort((a, b) => OUTCOMES.indexOf(a) - OUTCOMES.indexOf(b));
    for (const name of names) {
      const h = (counts[name] / top) * plotH;
      y -= h;
      const rect = el("rect", { x, y, width: Math.max(1, slot - 2), height: h, fill: color(name) });
      rect.append(el("title", {}, `${name}: ${counts[name]}`));
      svg.append(rect);
    }
    if (i % labelEvery === 0) {
      const t = window.start + i * window.bucket_s;
      svg.append(el("text", { x: x + slot / 2, y: box.height - 3, "text-anchor": "middle" }, label(t)));
    }
  });
}

function lines(svg, series) {
  const box = canvas(svg);
  const pad = { top: 6, right: 4, bottom: 16, left: 30 };
  const top = niceMax(Math.max(1, ...series.flatMap((s) => s.values)));
  axis(svg, box, top, pad);
  const plotW = box.width - pad.left - pad.right;
  const plotH = box.height - pad.top - pad.bottom;
  for (const s of series) {
    if (s.values.length < 2) continue;
    const step = plotW / (HISTORY - 1);
    const offset = HISTORY - s.values.length;
    const points = s.values.map((v, i) =>
      `${(pad.left + (offset + i) * step).toFixed(1)},${(pad.top + plotH * (1 - v / top)).toFixed(1)}`);
    svg.append(el("polyline", { points: points.join(" "), fill: "none", stroke: s.color, "stroke-width": 2 }));
  }
  svg.append(el("text", { x: box.width - pad.right, y: box.height - 3, "text-anchor": "end" }, "now"));
}

function outcomeBar(outcomes) {
  const svg = $("chart-outcomes");
  const box = canvas(svg);
  const total = sum(outcomes);
  const names = Object.keys(outcomes).sort((a, b) => OUTCOMES.indexOf(a) - OUTCOMES.indexOf(b));
  let x = 0;
  const legend = $("outcomes-legend");
  legend.replaceChildren();
  if (!total) svg.append(el("rect", { x: 0, y: 0, width: box.width, height: box.height, fill: "#e9ecef" }));
  for (const name of names) {
    const w = (outcomes[name] / total) * box.width;
    const rect = el("rect", { x, y: 0, width: w, height: box.height, fill: color(name) });
    rect.append(el("title", {}, `${name}: ${outcomes[name]}`));
    svg.append(rect);
    x += w;
    const item = document.createElement("span");
    item.id = `outcome-${name}`;
    item.innerHTML = `<i class="swatch" style="background:${color(name)}"></i>`;
    item.append(`${name} ${outcomes[name]} (${((100 * outcomes[name]) / total).toFixed(1)}%)`);
    legend.append(item);
  }
}

function latencyTable(latency) {
  $("latency-samples").textContent = `last ${latency.samples} jobs`;
  const body = $("latency").tBodies[0];
  body.replaceChildren();
  for (const [label, key] of [["queue wait", "queue_s"], ["run", "run_s"], ["end to end", "total_s"]]) {
    const row = body.insertRow();
    cell(row, label);
    for (const p of ["p50", "p95", "p99"]) cell(row, duration(latency[key][p]));
  }
}

function workersTable(workers, now) {
  const body = fillTable($("workers"), workers, "no live worker", 8);
  for (const w of workers) {
    const row = body.insertRow();
    cell(row, w.host);
    cell(row, w.pid, "num");
    cell(row, `${clock(w.started)} (${age(now - w.started)})`);
    cell(row, `${w.containers} / ${w.capacity}${w.starting ? ` (${w.starting} starting)` : ""}`,
      "num");
    cell(row, w.busy, "num");
    cell(row, w.executions, "num");
    cell(row, age(Math.max(0, now - w.heartbeat)));
    cell(row, w.pool_error || "", "message");
  }
}

function tenantsTable(tenants) {
  const body = fillTable($("tenants"), tenants, "no tenant", 7);
  for (const t of tenants) {
    const row = body.insertRow();
    row.id = `tenant-${t.name}`;
    cell(row, t.admin ? `${t.name} (admin)` : t.name);
    for (const k of ["weight", "queued", "running", "last_minute"]) cell(row, t[k], "num");
    for (const k of ["max_queued", "max_running"]) cell(row, t[k] ?? "–", "num");
  }
}

function errorsTable(errors) {
  const body = fillTable($("errors"), errors, "none", 4);
  for (const e of errors) {
    const row = body.insertRow();
    cell(row, clock(e.time));
    cell(row, e.job_id, "message");
    cell(row, e.source);
    cell(row, e.message, "message");
  }
}

function render(s) {
  // The same rule as /readyz: a live worker with a free warm container.
  const idle = s.workers.reduce((a, w) => a + w.idle_containers, 0);
  const [text, cls] = !s.workers.length ? ["no worker", "not-ready"]
    : idle > 0 ? ["ready", "ready"] : ["saturated", "saturated"];
  $("status").textContent = text;
  $("status").className = `pill ${cls}`;
  $("updated").textContent = `updated ${clock(s.time)}`;
  $("queue-depth").textContent = `${s.lanes.interactive} / ${s.lanes.bulk}`;
  $("busy").textContent = `${s.pool.busy} / ${s.pool.size}`;
  $("workers-count").textContent = s.workers.length;
  $("last-minute").textContent = s.throughput.minute.counts.map(sum).reduce((a, b) => a + b, 0);
  $("last-hour").textContent = s.throughput.hour.counts.map(sum).reduce((a, b) => a + b, 0);
  $("jobs-total").textContent = s.totals.jobs;
  $("reclaimed").textContent = s.totals.reclaimed;
  $("dead-lettered").textContent = s.totals.dead_lettered;
  $("cancelled").textContent = s.totals.cancelled;

  history.push({ queue: s.queue_depth, busy: s.pool.busy, size: s.pool.size });
  if (history.length > HISTORY) history.shift();
  stackedBars($("chart-hour"), s.throughput.hour, 10, (t) => clock(t).slice(0, 5));
  stackedBars($("chart-minute"), s.throughput.minute, 3, (t) => clock(t).slice(3));
  const style = getComputedStyle(document.documentElement);
  lines($("chart-load"), ["size", "busy", "queue"].map((k) => ({
    values: history.map((h) => h[k]), color: style.getPropertyValue("--" + k).trim() })));
  outcomeBar(s.totals.outcomes);
  latencyTable(s.latency);
  tenantsTable(s.tenants);
  workersTable(s.workers, s.time);
  errorsTable(s.errors);
}

async function poll() {
  const key = sessionStorage.getItem("sandbox-key");
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  try {
    const response = await fetch("/v1/stats", { headers, cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      $("key-form").hidden = false;
      $("status").textContent = response.status === 401 ? "key required" : "admin key required";
    } else if (response.ok) {
      $("key-form").hidden = true;
      render(await response.json());
    } else {
      $("status").textContent = `stats unavailable (${response.status})`;
      $("status").className = "pill not-ready";
    }
  } catch (err) {
    $("status").textContent = "API unreachable";
    $("status").className = "pill not-ready";
  }
  setTimeout(poll, POLL_MS);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("sandbox-key", $("key-input").value);
});

poll();
