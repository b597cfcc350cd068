// Rules: the list, and a rule's editor (new or a new version of an existing one) with a preview that runs
// the rule over a machine's stored history (POST /api/v1/rules/preview) before it is saved.

import { api, session } from "../api.js";
import { el, field, group, link, notice, num, select, table, when } from "../dom.js";

const SEVERITIES = ["info", "warning", "critical"];
const PREVIEW_RANGES = [
  ["86400", "Last 24 hours"],
  ["604800", "Last 7 days"],
  ["2592000", "Last 30 days"],
];
const EXAMPLE = { metric: "temp", detector: "above", value: 90, hysteresis: 5 };

function describeWhen(when) {
  if (when.all) return when.all.map(describeWhen).join(" and ");
  if (when.any) return `(${when.any.map(describeWhen).join(" or ")})`;
  if (when.detector === "above") return `${when.metric} > ${when.value}`;
  if (when.detector === "below") return `${when.metric} < ${when.value}`;
  return `${when.metric}: ${when.detector}`;
}

export async function renderRules(container, { stale }) {
  const answer = await api("/rules");
  if (stale()) return;
  const rows = answer.rules.map((r) =>
    el(
      "tr",
      { "data-rule": r.id },
      el("td", {}, link(`/rules/${encodeURIComponent(r.id)}`, r.rule.name || r.id)),
      el("td", {}, r.rule.severity),
      el("td", {}, describeWhen(r.rule.when)),
      el("td", {}, r.machines.length ? r.machines.join(", ") : "every machine"),
      el("td", {}, String(r.version)),
      el("td", {}, when(r.updated_at)),
    ),
  );
  container.append(
    el("h1", {}, "Rules"),
    el("p", { class: "hint" }, "Metrics that no rule names are watched by the default detectors."),
    session.canOperate ? el("p", {}, link("/rules/new", "New rule", { class: "button", "data-write": "" })) : "",
    rows.length ? table("Rules", ["Rule", "Severity", "Condition", "Machines", "Version", "Changed"], rows) : el("p", {}, "No rules yet."),
  );
}

export async function renderRule(container, { params, stale }) {
  const existing = params.id ? await api(`/rules/${encodeURIComponent(params.id)}`) : null;
  const fleet = await api("/fleet/status", { query: { limit: 10000 } });
  if (stale()) return;
  const names = fleet.machines.map((m) => m.name).sort();
  const rule = existing?.rule ?? { name: "", severity: "warning", when: EXAMPLE, hold: { secs: 0, readings: 0 } };
  const title = existing ? rule.name || rule.id : "New rule";
  container.append(el("p", { class: "crumbs" }, link("/rules", "Rules"), " / ", existing ? rule.id : "new"), el("h1", {}, title));
  const editable = session.canOperate;
  const status = notice();

  const name = el("input", { name: "name", value: rule.name, maxlength: "200", readonly: !editable });
  const severity = select({ name: "severity", disabled: !editable }, SEVERITIES, rule.severity);
  const holdSecs = el("input", { name: "hold_secs", type: "number", min: "0", value: rule.hold?.secs ?? 0, readonly: !editable });
  const condition = el("textarea", { name: "when", rows: "8", spellcheck: "false", class: "code", readonly: !editable, "aria-describedby": "when-help" });
  condition.value = JSON.stringify(rule.when, null, 2);
  const machineBoxes = names.map((m) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "machines", value: m, checked: existing?.machines?.includes(m), disabled: !editable }), m),
  );
  const form = el(
    "form",
    { class: "stack", "aria-label": "Rule" },
    field("Name", name),
    field("Severity", severity),
    field("Hold (seconds the condition must last)", holdSecs),
    field("Condition (JSON)", condition),
    el(
      "p",
      { id: "when-help", class: "hint" },
      'A condition on a metric: {"metric": "temp", "detector": "above", "value": 90}; detectors above, below, ewma, baseline, rate, context, drift; combine with {"all": [...]} or {"any": [...]}.',
    ),
    group("Machines (none ticked: every machine)", machineBoxes),
  );

  function definition() {
    let whenTree;
    try {
      whenTree = JSON.parse(condition.value);
    } catch (error) {
      throw new Error(`the condition is not JSON: ${error.message}`);
    }
    const body = { ...rule, name: name.value, severity: severity.value, when: whenTree, hold: { ...(rule.hold || {}), secs: Number(holdSecs.value) || 0 } };
    if (!existing) delete body.id;
    return body;
  }
  const chosen = () => machineBoxes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);

  // The preview: the rule over one machine's stored readings, nothing saved.
  const previewMachine = select({ name: "preview_machine" }, names, existing?.machines?.[0] ?? names[0] ?? "");
  const previewRange = select({ name: "preview_range" }, PREVIEW_RANGES, "604800");
  const previewResult = el("div", { class: "preview", "aria-live": "polite" });
  const previewForm = el(
    "form",
    { class: "inline", "aria-label": "Preview on history" },
    field("Machine", previewMachine),
    field("History", previewRange),
    el("button", { type: "submit" }, "Preview on history"),
  );
  // The preview follows the machines ticked: the first of them, unless one of them is chosen already.
  for (const box of machineBoxes) {
    box.querySelector("input").addEventListener("change", () => {
      const ticked = chosen();
      if (ticked.length && !ticked.includes(previewMachine.value)) previewMachine.value = ticked[0];
    });
  }
  previewForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    previewResult.replaceChildren(el("p", {}, "Running the rule over the history…"));
    try {
      const to = new Date();
      const from = new Date(to - Number(previewRange.value) * 1000);
      const answer = await api(`/machines/${encodeURIComponent(previewMachine.value)}/preview-rule`, {
        method: "POST",
        body: { rule: definition(), from: from.toISOString(), to: to.toISOString() },
      });
      const rows = answer.alerts.map((a) =>
        el(
          "tr",
          {},
          el("td", {}, when(a.raised_at)),
          el("td", {}, a.resolved_at ? when(a.resolved_at) : "still open"),
          el("td", {}, `${a.metric} ${num(a.observed)}`),
          el("td", {}, a.explanation),
        ),
      );
      previewResult.replaceChildren(
        el(
          "p",
          { class: "preview-summary", "data-alerts": answer.alerts.length },
          `${answer.alerts.length} alert${answer.alerts.length === 1 ? "" : "s"} over ${answer.readings.toLocaleString()} readings of ${answer.machine}${answer.truncated ? " (the oldest readings beyond the limit were left out)" : ""}.`,
        ),
        rows.length ? table("Alerts the rule would have raised", ["Raised", "Resolved", "Observed", "Why"], rows) : "",
      );
    } catch (error) {
      previewResult.replaceChildren(el("p", { class: "error" }, `Could not preview: ${error.message}`));
    }
  });

  container.append(form);
  if (editable) {
    const save = el("button", { type: "button", "data-write": "" }, existing ? "Save a new version" : "Create rule");
    save.addEventListener("click", async () => {
      try {
        const body = { rule: definition(), machines: chosen() };
        const saved = existing
          ? await api(`/rules/${encodeURIComponent(existing.id)}`, { method: "PUT", body })
          : await api("/rules", { method: "POST", body });
        status.set(`Saved version ${saved.version}.`);
        if (!existing) location.hash = `#/rules/${encodeURIComponent(saved.id)}`;
      } catch (error) {
        status.error(`Could not save: ${error.message}`);
      }
    });
    const actions = el("p", { class: "buttons" }, save);
    if (existing) {
      const remove = el("button", { type: "button", "data-write": "", class: "danger" }, "Delete rule");
      remove.addEventListener("click", async () => {
        if (!confirm(`Delete the rule ${existing.id}?`)) return;
        try {
          await api(`/rules/${encodeURIComponent(existing.id)}`, { method: "DELETE" });
          location.hash = "#/rules";
        } catch (error) {
          status.error(`Could not delete: ${error.message}`);
        }
      });
      actions.append(remove);
    }
    container.append(actions, status);
    container.append(
      el("section", { "aria-labelledby": "preview-title" }, el("h2", { id: "preview-title" }, "Preview on history"), el("p", { class: "hint" }, "Runs this rule, as edited, over a machine's stored readings: the alerts it would have raised. Nothing is saved."), previewForm, previewResult),
    );
  }
}
