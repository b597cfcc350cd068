// A machine's page: live charts of its metrics (uPlot) that append as readings arrive over the socket,
// history over a chosen range through the bucketed readings API, and its prediction, alerts, maintenance
// events and work orders.

import { api, session } from "../api.js";
import { metricChart } from "../chart.js";
import { el, field, link, localInput, notice, num, select, table, when } from "../dom.js";
import * as live from "../live.js";

const RANGES = [
  ["900", "Last 15 minutes (live)"],
  ["3600", "Last hour (live)"],
  ["21600", "Last 6 hours (live)"],
  ["86400", "Last 24 hours (live)"],
  ["604800", "Last 7 days (live)"],
  ["2592000", "Last 30 days (live)"],
  ["custom", "A chosen range"],
];

/** A bucket width that gives at most about 400 points over `seconds`. */
function bucketFor(seconds) {
  return `${Math.max(1, Math.ceil(seconds / 400))}s`;
}

function chartWidth(container) {
  return Math.max(280, Math.min(container.clientWidth || 900, 1100) - 24);
}

export async function renderMachine(container, { params, stale }) {
  const name = params.name;
  const path = `/machines/${encodeURIComponent(name)}`;
  const [machine, latest] = await Promise.all([api(path), api(`${path}/latest`)]);
  if (stale()) return;

  const charts = new Map();
  const chartsNode = el("div", { class: "charts" });
  const state = { live: true, windowSecs: 900 };
  const status = notice();

  function chartOf(metric) {
    let chart = charts.get(metric);
    if (!chart) {
      chart = metricChart(metric, chartWidth(container));
      if (state.live) chart.setWindow(Date.now() / 1000 - state.windowSecs, Date.now() / 1000);
      charts.set(metric, chart);
      const nodes = [...charts.keys()].sort().map((m) => charts.get(m).node);
      chartsNode.replaceChildren(...nodes);
    }
    return chart;
  }
  for (const m of latest.metrics || []) chartOf(m.metric);

  const rangeSelect = select({ name: "range" }, RANGES, "900");
  const now = new Date();
  const fromInput = el("input", { type: "datetime-local", name: "from", value: localInput(new Date(now - 86400_000)) });
  const toInput = el("input", { type: "datetime-local", name: "to", value: localInput(now) });
  const custom = el("span", { class: "custom-range", hidden: true }, field("From", fromInput), field("To", toInput));
  const rangeForm = el(
    "form",
    { class: "range", "aria-label": "Chart range" },
    field("Range", rangeSelect),
    custom,
    el("button", { type: "submit" }, "Show"),
  );
  rangeSelect.addEventListener("change", () => {
    custom.hidden = rangeSelect.value !== "custom";
    if (rangeSelect.value !== "custom") load();
  });
  rangeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });

  async function load() {
    let from;
    let to;
    if (rangeSelect.value === "custom") {
      from = new Date(fromInput.value);
      to = new Date(toInput.value);
      if (!(from < to)) {
        status.error("The range must start before it ends.");
        return;
      }
      state.live = false;
    } else {
      state.windowSecs = Number(rangeSelect.value);
      to = new Date();
      from = new Date(to - state.windowSecs * 1000);
      state.live = true;
    }
    const seconds = (to - from) / 1000;
    status.set("Loading history…");
    const answer = await api(`${path}/readings`, {
      query: { from: from.toISOString(), to: to.toISOString(), bucket: bucketFor(seconds), limit: 100000 },
    });
    if (stale()) return;
    const byMetric = new Map();
    for (const b of answer.buckets) {
      if (!byMetric.has(b.metric)) byMetric.set(b.metric, [[], [], [], []]);
      const series = byMetric.get(b.metric);
      series[0].push(Date.parse(b.ts) / 1000);
      series[1].push(b.avg);
      series[2].push(b.min);
      series[3].push(b.max);
    }
    for (const metric of byMetric.keys()) chartOf(metric);
    for (const [metric, chart] of charts) {
      const series = byMetric.get(metric) || [[], [], [], []];
      chart.setWindow(from / 1000, to / 1000);
      chart.setData(...series);
    }
    const width = answer.bucket_seconds >= 60 ? `${num(answer.bucket_seconds / 60, 1)} min` : `${answer.bucket_seconds} s`;
    status.set(
      `${when(from)} to ${state.live ? "now, live" : when(to)}; buckets of ${width}${answer.truncated ? " (cut at the limit)" : ""}.`,
    );
  }

  const details = el(
    "dl",
    { class: "facts" },
    el("dt", {}, "Registered"),
    el("dd", {}, machine.status === "retired" ? `retired ${when(machine.retired_at)}` : when(machine.created_at)),
    el("dt", {}, "Site"),
    el("dd", {}, machine.site || "—"),
    el("dt", {}, "Tags"),
    el("dd", {}, (machine.tags || []).join(", ") || "—"),
    el("dt", {}, "Description"),
    el("dd", {}, machine.description || "—"),
  );
  const prediction = el("section", { "aria-labelledby": "rul-title" }, el("h2", { id: "rul-title" }, "Remaining useful life"));
  const alerts = el("section", { "aria-labelledby": "alerts-title" }, el("h2", { id: "alerts-title" }, "Alerts"));
  const maintenance = el("section", { "aria-labelledby": "maint-title" }, el("h2", { id: "maint-title" }, "Maintenance events"));
  const orders = el("section", { "aria-labelledby": "orders-title" }, el("h2", { id: "orders-title" }, "Work orders"));

  container.append(
    el("p", { class: "crumbs" }, link("/fleet", "Fleet"), " / ", name),
    el("h1", {}, name),
    details,
    el("section", { "aria-labelledby": "metrics-title" }, el("h2", { id: "metrics-title" }, "Metrics"), rangeForm, status, chartsNode),
    prediction,
    alerts,
    maintenance,
    orders,
  );

  live.follow([name]);
  live.on("readings", (message) => {
    if (!state.live) return;
    const keepFrom = Date.now() / 1000 - state.windowSecs;
    for (const r of message.readings || []) {
      if (r.machine !== name) continue;
      const ts = typeof r.ts === "number" ? r.ts / 1000 : Date.parse(r.ts) / 1000;
      chartOf(r.metric).append(ts, r.value, keepFrom);
    }
  });
  live.on("alert", (message) => {
    if (message.alert?.machine === name) loadAlerts();
  });

  async function loadAlerts() {
    const answer = await api("/alerts", { query: { machine: name, limit: 20 } });
    if (stale()) return;
    const rows = answer.alerts.map((a) =>
      el(
        "tr",
        { "data-alert-id": a.id },
        el("td", {}, link(`/alerts/${a.id}`, when(a.raised_at))),
        el("td", {}, a.severity),
        el("td", {}, a.metric),
        el("td", {}, a.state + (a.acked_at ? ", acknowledged" : "")),
        el("td", {}, a.explanation),
      ),
    );
    alerts.replaceChildren(
      alerts.firstChild,
      rows.length ? table("Newest alerts of this machine", ["Raised", "Severity", "Metric", "State", "Why"], rows) : el("p", {}, "No alerts."),
      link(`/alerts?machine=${encodeURIComponent(name)}`, "Every alert of this machine"),
    );
  }

  async function loadPrediction() {
    const answer = await api(`${path}/predictions`, { query: { limit: 1 } });
    if (stale()) return;
    const p = answer.predictions[0];
    if (!p) {
      prediction.append(el("p", {}, "No prediction: no remaining-life model serves this machine yet."));
      return;
    }
    prediction.append(
      el(
        "p",
        { class: "rul", "data-rul": p.rul },
        el("strong", {}, `${num(p.rul, 1)} ${p.unit}`),
        ` left (between ${num(p.lower, 1)} and ${num(p.upper, 1)}), health ${num(p.health, 2)}, at cycle ${p.cycle}, ${when(p.at)}.`,
      ),
    );
  }

  async function loadMaintenance() {
    const answer = await api("/maintenance-events", { query: { machine: name, limit: 20 } });
    if (stale()) return;
    const rows = answer.events.map((e) =>
      el("tr", {}, el("td", {}, when(e.performed_at)), el("td", {}, e.kind), el("td", {}, e.by || ""), el("td", {}, e.notes || "")),
    );
    maintenance.append(rows.length ? table("Maintenance of this machine", ["Performed", "Kind", "By", "Notes"], rows) : el("p", {}, "No maintenance events."));
  }

  async function loadOrders() {
    const answer = await api("/work-orders", { query: { machine: name, limit: 20 } });
    if (stale()) return;
    const rows = answer.work_orders.map((w) =>
      el("tr", {}, el("td", {}, link(`/work-orders/${w.id}`, w.title)), el("td", {}, w.status), el("td", {}, w.assignee_email || "—"), el("td", {}, w.due_date || "—")),
    );
    orders.append(rows.length ? table("Work orders of this machine", ["Title", "Status", "Assignee", "Due"], rows) : el("p", {}, "No work orders."));
    if (session.canOperate) {
      orders.append(el("p", {}, link(`/work-orders/new?machine=${encodeURIComponent(name)}`, "New work order for this machine", { "data-write": "" })));
    }
  }

  await Promise.all([load(), loadAlerts(), loadPrediction(), loadMaintenance(), loadOrders()]);
}
