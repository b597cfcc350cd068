// Administrators' pages: users (add, invite, change role, deactivate), API keys (create with the secret
// shown once, revoke) and the tenant's settings.

import { api } from "../api.js";
import { el, field, group, notice, select, table, when } from "../dom.js";

const ROLES = ["viewer", "operator", "admin"];

export async function renderUsers(container, { stale }) {
  const status = notice();
  const body = el("div");
  const email = el("input", { type: "email", name: "email", required: true, autocomplete: "off" });
  const role = select({ name: "role" }, ROLES, "viewer");
  const password = el("input", { type: "password", name: "password", autocomplete: "new-password", minlength: "8" });
  const form = el(
    "form",
    { class: "inline", "aria-label": "Add a user" },
    field("Email", email),
    field("Role", role),
    field("Password (empty: send an invitation)", password),
    el("button", { type: "submit", "data-write": "" }, "Add user"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const user = await api("/users", { method: "POST", body: { email: email.value, role: role.value, ...(password.value ? { password: password.value } : {}) } });
      status.set(user.invite_token ? `Invited ${user.email}. Give them this one-time invitation token: ${user.invite_token}` : `Added ${user.email}.`);
      form.reset();
      await load();
    } catch (error) {
      status.error(`Could not add the user: ${error.message}`);
    }
  });
  container.append(el("h1", {}, "Users"), el("h2", {}, "Add a user"), form, status, el("h2", {}, "Users of this tenant"), body);

  async function change(user, patch, what) {
    try {
      await api(`/users/${user.id}`, { method: "PATCH", body: patch });
      status.set(`${user.email}: ${what}.`);
      await load();
    } catch (error) {
      status.error(`Could not change ${user.email}: ${error.message}`);
      await load();
    }
  }

  async function load() {
    const answer = await api("/users");
    if (stale()) return;
    const rows = answer.users.map((u) => {
      const roleSelect = select({ "aria-label": `Role of ${u.email}`, "data-write": "" }, ROLES, u.role);
      roleSelect.addEventListener("change", () => change(u, { role: roleSelect.value }, `role ${roleSelect.value}`));
      const toggle = el(
        "button",
        { type: "button", "data-write": "", "aria-label": `${u.active ? "Deactivate" : "Reactivate"} ${u.email}` },
        u.active ? "Deactivate" : "Reactivate",
      );
      toggle.addEventListener("click", () => change(u, { active: !u.active }, u.active ? "deactivated" : "reactivated"));
      return el(
        "tr",
        { "data-user": u.email },
        el("th", { scope: "row" }, u.email),
        el("td", {}, roleSelect),
        el("td", {}, u.active ? (u.invitation_pending ? "invited" : "active") : "deactivated"),
        el("td", {}, when(u.created_at)),
        el("td", {}, toggle),
      );
    });
    body.replaceChildren(table("Users", ["Email", "Role", "State", "Added", "Actions"], rows));
  }
  await load();
}

export async function renderApiKeys(container, { stale }) {
  const status = notice();
  const body = el("div");
  const secret = el("div", { "aria-live": "polite" });
  const name = el("input", { name: "name", required: true, maxlength: "200" });
  const ingest = el("input", { type: "checkbox", name: "scope", value: "ingest", checked: true });
  const read = el("input", { type: "checkbox", name: "scope", value: "read" });
  const machines = el("input", { name: "machines", "aria-describedby": "key-machines-help" });
  const form = el(
    "form",
    { class: "inline", "aria-label": "Create an API key" },
    field("Name", name),
    group("Scopes", el("label", { class: "check" }, ingest, "ingest"), el("label", { class: "check" }, read, "read")),
    field("Machines (comma-separated; empty: every machine)", machines),
    el("button", { type: "submit", "data-write": "" }, "Create key"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const scopes = [ingest, read].filter((c) => c.checked).map((c) => c.value);
    const list = machines.value.split(",").map((m) => m.trim()).filter(Boolean);
    try {
      const key = await api("/api-keys", { method: "POST", body: { name: name.value, scopes, ...(list.length ? { machines: list } : {}) } });
      secret.replaceChildren(
        el("p", { class: "secret" }, `The key ${key.name}: `, el("code", {}, key.secret ?? key.key ?? ""), ". Copy it now: it is not shown again."),
      );
      form.reset();
      await load();
    } catch (error) {
      status.error(`Could not create the key: ${error.message}`);
    }
  });
  container.append(
    el("h1", {}, "API keys"),
    el("h2", {}, "Create a key"),
    form,
    el("p", { id: "key-machines-help", class: "hint" }, "A key restricted to machines sees and feeds only those."),
    secret,
    status,
    el("h2", {}, "Keys"),
    body,
  );

  async function load() {
    const answer = await api("/api-keys");
    if (stale()) return;
    const rows = answer.api_keys.map((k) => {
      const actions = el("td", {});
      if (!k.revoked_at) {
        actions.append(
          el(
            "button",
            {
              type: "button",
              "data-write": "",
              "aria-label": `Revoke ${k.name}`,
              onclick: async () => {
                if (!confirm(`Revoke the key ${k.name}? Whatever uses it is refused at once.`)) return;
                try {
                  await api(`/api-keys/${k.id}`, { method: "DELETE" });
                  status.set(`Revoked ${k.name}.`);
                  await load();
                } catch (error) {
                  status.error(`Could not revoke: ${error.message}`);
                }
              },
            },
            "Revoke",
          ),
        );
      }
      return el(
        "tr",
        { "data-key": k.name },
        el("th", { scope: "row" }, k.name),
        el("td", {}, el("code", {}, `${k.prefix}…`)),
        el("td", {}, k.scopes.join(", ")),
        el("td", {}, k.machines ? k.machines.join(", ") : "every machine"),
        el("td", {}, k.revoked_at ? `revoked ${when(k.revoked_at)}` : `created ${when(k.created_at)}`),
        actions,
      );
    });
    body.replaceChildren(rows.length ? table("API keys", ["Name", "Prefix", "Scopes", "Machines", "State", "Actions"], rows) : el("p", {}, "No keys."));
  }
  await load();
}

export async function renderSettings(container, { stale }) {
  const answer = await api("/settings");
  if (stale()) return;
  const s = answer.settings;
  const status = notice();
  const number = (name, value, min, max, step = "any") => el("input", { type: "number", name, value, min, max, step, required: true });
  const checkbox = (name, checked) => el("input", { type: "checkbox", name, checked });
  const controls = {
    silent: number("silent_after_minutes", s.silent_after_minutes, 1, 10080, 1),
    oneIn: number("one_in", s.detection.one_in, 100, 1e12),
    rest: number("rest_readings", s.detection.rest_readings, 1, 10000, 1),
    profile: checkbox("profile", s.detection.features.profile),
    transitions: checkbox("transitions", s.detection.features.transitions),
    rate: checkbox("rate", s.detection.features.rate),
    drift: checkbox("drift", s.detection.drift),
    severity: select({ name: "severity" }, ["info", "warning", "critical"], s.detection.severity),
    unit: select({ name: "horizon_unit" }, ["cycles", "hours", "days"], s.ai.horizon_unit),
    alertBelow: number("alert_below_cycles", s.ai.alert_below_cycles, 0, 100000),
  };
  const form = el(
    "form",
    { class: "stack", "aria-label": "Settings" },
    group(
      "Fleet",
      field("Silent after (minutes without a reading)", controls.silent),
    ),
    group(
      "Default detectors",
      field("Alert when a reading is as unusual as one in", controls.oneIn),
      field("Readings with nothing unusual before an alert resolves", controls.rest),
      field("Time-of-day profile", controls.profile),
      field("Value transitions (level changes never seen before)", controls.transitions),
      field("Rate of change", controls.rate),
      field("Drift (slow degradation)", controls.drift),
      field("Severity of their alerts", controls.severity),
    ),
    group(
      "Predictions",
      field("Remaining life shown in", controls.unit),
      field("Alert below (cycles; 0: never)", controls.alertBelow),
    ),
    el("button", { type: "submit", "data-write": "" }, "Save settings"),
    status,
    el("p", { class: "hint" }, `Last changed ${when(answer.updated_at)}${answer.updated_by ? ` by ${answer.updated_by}` : ""}.`),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      silent_after_minutes: Number(controls.silent.value),
      detection: {
        one_in: Number(controls.oneIn.value),
        rest_readings: Number(controls.rest.value),
        features: { profile: controls.profile.checked, transitions: controls.transitions.checked, rate: controls.rate.checked },
        drift: controls.drift.checked,
        severity: controls.severity.value,
      },
      ai: { ...s.ai, horizon_unit: controls.unit.value, alert_below_cycles: Number(controls.alertBelow.value) },
    };
    try {
      await api("/settings", { method: "PUT", body });
      status.set("Settings saved.");
    } catch (error) {
      const fields = error.details?.fields;
      status.error(`Could not save: ${error.message}${fields ? ` (${JSON.stringify(fields)})` : ""}`);
    }
  });
  container.append(el("h1", {}, "Settings"), form);
}
