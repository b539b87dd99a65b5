// Polls /api/pools and shows the pools side by side; no library, nothing from elsewhere.
"use strict";

const POLL_MS = 1500;
const POOLS = ["prefork", "threads", "gevent", "solo", "asyncio"];
// the bench report's colours (poollab.measure.charts.POOL_COLORS)
const COLORS = { solo: "#7f7f7f", prefork: "#d62728", threads: "#1f77b4", gevent: "#2ca02c",
  asyncio: "#9467bd" };

const MIB = 1024 * 1024;
const fmt = {
  rate: (v) => v.toFixed(v < 10 ? 1 : 0),
  int: (v) => Math.round(v).toLocaleString("en"),
  ms: (v) => (v * 1000 < 10 ? (v * 1000).toFixed(1) : Math.round(v * 1000).toLocaleString("en")) + " ms",
  age: (v) => (v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString("en")) + " s",
  mib: (v) => (v / MIB).toFixed(v < 10 * MIB ? 1 : 0) + " MiB",
  cores: (v) => v.toFixed(2),
};

// [field, label, format, which value is best ("max", "min" or none)]
const ROWS = [
  ["group", "throughput"],
  ["jobs_per_s", "jobs/s", fmt.rate, "max"],
  ["completed", "completed", fmt.int],
  ["failed", "failed", fmt.int],
  ["latency_p50_s", "latency p50", fmt.ms, "min"],
  ["latency_p95_s", "latency p95", fmt.ms, "min"],
  ["group", "backlog"],
  ["queue_jobs", "queue depth", fmt.int],
  ["queue_oldest_age_s", "oldest waiting", fmt.age],
  ["unacked", "unacked", fmt.int],
  ["running", "running now", fmt.int],
  ["group", "cost"],
  ["concurrency", "concurrency (-c)", fmt.int],
  ["rss_bytes", "RSS", fmt.mib],
  ["pss_bytes", "PSS", fmt.mib],
  ["uss_bytes", "USS", fmt.mib, "min"],
  ["uss_per_slot_bytes", "USS per slot", fmt.mib, "min"],
  ["rss_per_slot_bytes", "RSS per slot", fmt.mib],
  ["cpu_cores", "CPU cores", fmt.cores],
  ["loop_lag_s", "event-loop lag", fmt.ms],
  ["processes", "processes", fmt.int],
  ["nodes", "consumers", fmt.int],
];
// a backlog older than this means the pool is not keeping up with what it is sent
const BEHIND_S = 2;

const cells = {};

function buildTable() {
  const head = document.querySelector("#pools thead tr");
  for (const pool of POOLS) {
    const th = document.createElement("th");
    th.scope = "col";
    th.dataset.pool = pool;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = COLORS[pool];
    th.append(swatch, pool);
    head.append(th);
  }
  const body = document.querySelector("#pools tbody");
  for (const [field, label] of ROWS) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = label;
    tr.append(th);
    if (field === "group") {
      tr.className = "group";
      th.colSpan = POOLS.length + 1;
    } else {
      for (const pool of POOLS) {
        const td = document.createElement("td");
        td.dataset.pool = pool;
        td.dataset.field = field;
        td.textContent = "–";
        cells[pool + "/" + field] = td;
        tr.append(td);
      }
    }
    body.append(tr);
  }
  document.getElementById("legend").replaceChildren(...POOLS.map((pool) => {
    const span = document.createElement("span");
    span.style.color = COLORS[pool];
    span.textContent = "▬ " + pool;
    return span;
  }));
}

function fillTable(pools) {
  for (const [field, , format, best] of ROWS) {
    if (field === "group") continue;
    const known = POOLS.map((p) => pools[p] && pools[p][field]).filter((v) => v !== null && v !== undefined);
    const target = best === "max" ? Math.max(...known) : best === "min" ? Math.min(...known) : null;
    for (const pool of POOLS) {
      const value = pools[pool] ? pools[pool][field] : null;
      const td = cells[pool + "/" + field];
      const isKnown = value !== null && value !== undefined;
      td.textContent = isKnown ? format(value) : "–";
      td.classList.toggle("best", isKnown && known.length > 1 && value === target && value > 0);
      td.classList.toggle("behind", field === "queue_oldest_age_s" && isKnown && value > BEHIND_S);
    }
  }
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function drawChart(svg, times, series, format) {
  const W = 560, H = 220, left = 62, right = 10, top = 10, bottom = 24;
  svg.replaceChildren();
  const values = Object.values(series).flat().filter((v) => v !== null);
  if (times.length < 2 || values.length === 0) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }));
    svg.lastChild.textContent = "no data yet";
    return;
  }
  const t0 = times[0], t1 = times[times.length - 1];
  const yMax = Math.max(...values) * 1.1 || 1;
  const x = (t) => left + ((t - t0) / Math.max(t1 - t0, 1)) * (W - left - right);
  const y = (v) => top + (1 - v / yMax) * (H - top - bottom);
  for (const frac of [0, 0.5, 1]) {
    const v = yMax * frac;
    svg.append(svgEl("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    const label = svgEl("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = format(v);
    svg.append(label);
  }
  const span = Math.round(t1 - t0);
  const since = svgEl("text", { x: left, y: H - 6 });
  since.textContent = "−" + (span >= 120 ? Math.round(span / 60) + " min" : span + " s");
  const now = svgEl("text", { x: W - right, y: H - 6, "text-anchor": "end" });
  now.textContent = "now";
  svg.append(since, now);
  for (const pool of POOLS) {
    const points = [];
    const line = () => {
      if (points.length > 1) {
        svg.append(svgEl("polyline", { points: points.join(" "), stroke: COLORS[pool] }));
      }
      points.length = 0;
    };
    (series[pool] || []).forEach((v, i) => {
      // a gap (no consumer sampled, no figure yet) breaks the line rather than bridging it
      if (v === null) line();
      else points.push(x(times[i]).toFixed(1) + "," + y(v).toFixed(1));
    });
    line();
  }
}

function drawCharts(history) {
  const pick = (name) => Object.fromEntries(POOLS.map((p) => [p, (history.pools[p] || {})[name] || []]));
  drawChart(document.getElementById("chart-jobs"), history.t, pick("jobs_per_s"), fmt.rate);
  drawChart(document.getElementById("chart-uss"), history.t, pick("uss_bytes"), fmt.mib);
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/api/pools", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const data = await response.json();
    fillTable(data.pools);
    drawCharts(data.history);
    document.getElementById("rate-window").textContent = data.windows.jobs_per_s_s;
    document.getElementById("latency-window").textContent = data.windows.latency_s;
    status.textContent = "updated " + new Date(data.t * 1000).toLocaleTimeString();
    status.classList.remove("error");
    document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
  } catch (error) {
    status.textContent = "collector not answering (" + error.message + "); retrying";
    status.classList.add("error");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

buildTable();
poll();
