// The alert inbox (live: alerts raised, updated and resolved, acks and snoozes arrive over the socket;
// filters by state, machine and severity) and an alert's page (its history as a timeline, ack, snooze,
// a work order from it).

import { api, ApiError, session } from "../api.js";
import { coalesced, el, field, link, localInput, notice, num, select, table, when } from "../dom.js";
import * as live from "../live.js";

const STATES = [
  ["open", "Open"],
  ["resolved", "Resolved"],
  ["", "Every state"],
];
const SEVERITIES = [
  ["", "Every severity"],
  ["critical", "Critical"],
  ["warning", "Warning"],
  ["info", "Info"],
];

/** Acknowledges alert `id`; a just-raised alert may not be stored yet (404): asks again shortly. */
async function ack(id) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await api(`/alerts/${id}/ack`, { method: "POST" });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404 && attempt < 5)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

function stateText(a) {
  if (a.state === "resolved") return a.acked_at ? "resolved, acknowledged" : "resolved";
  if (a.acked_at) return "acknowledged";
  if (a.snoozed_until && Date.parse(a.snoozed_until) > Date.now()) return `snoozed until ${when(a.snoozed_until)}`;
  return "open";
}

export async function renderAlerts(container, { query, stale }) {
  const filters = { state: query.state ?? "open", machine: query.machine ?? "", severity: query.severity ?? "" };
  const fleet = await api("/fleet/status", { query: { limit: 10000 } });
  if (stale()) return;
  const machineNames = fleet.machines.map((m) => m.name).sort();
  const items = new Map(); // id -> alert
  const status = notice();
  const body = el("div");

  const stateSelect = select({ name: "state" }, STATES, filters.state);
  const machineSelect = select({ name: "machine" }, [["", "Every machine"], ...machineNames], filters.machine);
  const severitySelect = select({ name: "severity" }, SEVERITIES, filters.severity);
  const form = el(
    "form",
    { class: "filters", "aria-label": "Alert filters" },
    field("State", stateSelect),
    field("Machine", machineSelect),
    field("Severity", severitySelect),
  );
  for (const control of [stateSelect, machineSelect, severitySelect]) {
    control.addEventListener("change", () => {
      filters.state = stateSelect.value;
      filters.machine = machineSelect.value;
      filters.severity = severitySelect.value;
      load();
    });
  }
  container.append(el("h1", {}, "Alerts"), form, status, body);

  function visible(a) {
    return (
      (!filters.state || a.state === filters.state) &&
      (!filters.machine || a.machine === filters.machine) &&
      (!filters.severity || a.severity === filters.severity)
    );
  }

  function render() {
    const list = [...items.values()].filter(visible).sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));
    const rows = list.map((a) => {
      const actions = el("td", {});
      if (session.canOperate && a.state === "open" && !a.acked_at) {
        actions.append(
          el(
            "button",
            {
              type: "button",
              "data-write": "",
              "aria-label": `Acknowledge ${a.rule_name || a.metric} on ${a.machine}`,
              onclick: async (event) => {
                event.target.disabled = true;
                try {
                  await ack(a.id);
                  status.set(`Acknowledged the alert on ${a.machine}.`);
                } catch (error) {
                  event.target.disabled = false;
                  status.error(`Could not acknowledge: ${error.message}`);
                }
              },
            },
            "Acknowledge",
          ),
        );
      }
      return el(
        "tr",
        { "data-alert-id": a.id, class: `severity-${a.severity}` },
        el("td", {}, link(`/alerts/${a.id}`, when(a.raised_at))),
        el("td", {}, link(`/machines/${encodeURIComponent(a.machine)}`, a.machine)),
        el("td", {}, a.severity),
        el("td", {}, a.rule_name || a.rule_id),
        el("td", {}, `${a.metric} ${num(a.observed)} (expected ${num(a.expected)})`),
        el("td", { class: "state" }, stateText(a)),
        actions,
      );
    });
    body.replaceChildren(
      rows.length
        ? table("Alert inbox", ["Raised", "Machine", "Severity", "Rule", "Observed", "State", "Actions"], rows, { "aria-describedby": "inbox-note" })
        : el("p", {}, "No alerts match."),
      el("p", { id: "inbox-note", class: "hint" }, "New alerts, acknowledgements and snoozes appear here as they happen."),
    );
  }

  async function load() {
    const answer = await api("/alerts", {
      query: { state: filters.state, machine: filters.machine, severity: filters.severity, limit: 200 },
    });
    if (stale()) return;
    items.clear();
    for (const a of answer.alerts) items.set(a.id, a);
    render();
  }

  const redraw = coalesced(render);
  live.follow("*", { readings: false });
  live.on("alert", (message) => {
    const a = message.alert;
    const known = items.get(a.id);
    const merged = {
      ...(known || { raised_at: a.at, acked_at: null, snoozed_until: null }),
      id: a.id,
      machine: a.machine,
      rule_id: a.rule_id,
      rule_name: a.rule_name,
      severity: a.severity,
      detector: a.detector,
      metric: a.metric,
      observed: a.observed,
      expected: a.expected,
      updated_at: a.at,
      state: message.transition === "resolved" ? "resolved" : "open",
    };
    items.set(a.id, merged);
    redraw();
  });
  live.on("alert_action", (message) => {
    const a = items.get(message.alert_id);
    if (!a) return;
    if (message.action === "ack") {
      a.acked_at = message.at;
      a.acked_by = message.by;
    } else if (message.action === "snooze") {
      a.snoozed_until = message.until;
    }
    redraw();
  });
  await load();
}

export async function renderAlert(container, { params, stale }) {
  const id = params.id;
  const status = notice();
  const body = el("div");
  container.append(el("p", { class: "crumbs" }, link("/alerts", "Alerts"), " / alert"), el("h1", {}, "Alert"), status, body);

  async function load() {
    const a = await api(`/alerts/${id}`);
    if (stale()) return;
    container.querySelector("h1").textContent = `${a.rule_name || a.rule_id} on ${a.machine}`;
    const facts = el(
      "dl",
      { class: "facts" },
      el("dt", {}, "State"),
      el("dd", { class: "state" }, stateText(a)),
      el("dt", {}, "Severity"),
      el("dd", {}, a.severity),
      el("dt", {}, "Machine"),
      el("dd", {}, link(`/machines/${encodeURIComponent(a.machine)}`, a.machine)),
      el("dt", {}, "Detector"),
      el("dd", {}, `${a.detector} on ${a.metric}`),
      el("dt", {}, "Observed"),
      el("dd", {}, `${num(a.observed)} (expected ${num(a.expected)}; score ${num(a.score, 2)} of limit ${num(a.limit, 2)})`),
      el("dt", {}, "Why"),
      el("dd", {}, a.explanation || "—"),
      el("dt", {}, "Acknowledged"),
      el("dd", {}, a.acked_at ? `${when(a.acked_at)} by ${a.acked_by}` : "no"),
      el("dt", {}, "Notifications"),
      el("dd", {}, a.notification ? `${a.notification.state}${a.notification.policy ? ` (${a.notification.policy})` : ""}` : "—"),
    );
    const timeline = el(
      "ol",
      { class: "timeline", "aria-label": "History" },
      (a.history || []).map((h) =>
        el(
          "li",
          { "data-kind": h.kind },
          el("time", { datetime: h.at }, when(h.at)),
          " ",
          el("strong", {}, h.kind),
          h.details?.explanation ? ` — ${h.details.explanation}` : "",
          h.details?.by ? ` by ${h.details.by}` : "",
          h.details?.until ? ` until ${when(h.details.until)}` : "",
        ),
      ),
    );
    const parts = [facts];
    if (a.contributions?.length) {
      parts.push(
        table(
          "What contributed",
          ["Feature", "Score (−log10 of how often)"],
          a.contributions.map((c) => el("tr", {}, el("td", {}, c.feature ?? c[0]), el("td", {}, num(c.score ?? c[1], 2)))),
        ),
      );
    }
    parts.push(el("h2", {}, "History"), timeline);
    if (session.canOperate) parts.push(actions(a));
    body.replaceChildren(...parts);
  }

  function actions(a) {
    const section = el("section", { "aria-labelledby": "actions-title" }, el("h2", { id: "actions-title" }, "Actions"));
    if (a.state === "open" && !a.acked_at) {
      section.append(
        el(
          "button",
          {
            type: "button",
            "data-write": "",
            onclick: async () => {
              try {
                await ack(id);
                status.set("Acknowledged.");
              } catch (error) {
                status.error(`Could not acknowledge: ${error.message}`);
              }
            },
          },
          "Acknowledge",
        ),
      );
    }
    if (a.state === "open") {
      const until = el("input", { type: "datetime-local", name: "until", required: true, value: localInput(new Date(Date.now() + 3600_000)) });
      const form = el("form", { class: "inline", "aria-label": "Snooze" }, field("Snooze until", until), el("button", { type: "submit", "data-write": "" }, "Snooze"));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          await api(`/alerts/${id}/snooze`, { method: "POST", body: { until: new Date(until.value).toISOString() } });
          status.set(`Snoozed until ${when(new Date(until.value))}.`);
        } catch (error) {
          status.error(`Could not snooze: ${error.message}`);
        }
      });
      section.append(form);
    }
    section.append(
      el("p", {}, link(`/work-orders/new?alert=${id}&machine=${encodeURIComponent(a.machine)}`, "Create a work order from this alert", { "data-write": "", class: "button" })),
    );
    return section;
  }

  live.follow("*", { readings: false });
  const refresh = (message) => {
    if (message.alert?.id === id || message.alert_id === id) setTimeout(() => load().catch(() => {}), 500);
  };
  live.on("alert", refresh);
  live.on("alert_action", refresh);
  await load();
}
