// Work orders: the list (filter by status), a new order (from an alert: its machine and the alert linked,
// the title and description taken from it), and an order's page with its history and the moves its
// lifecycle allows (open → in_progress → done; open or in_progress → cancelled).

import { api, session } from "../api.js";
import { el, field, link, notice, select, table, when } from "../dom.js";

const STATUSES = [
  ["", "Every status"],
  ["open", "Open"],
  ["in_progress", "In progress"],
  ["done", "Done"],
  ["cancelled", "Cancelled"],
];
const MOVE_LABELS = { in_progress: "Start work", done: "Mark done", cancelled: "Cancel order" };

export async function renderWorkOrders(container, { query, stale }) {
  const filter = { status: query.status ?? "" };
  const body = el("div");
  const statusSelect = select({ name: "status" }, STATUSES, filter.status);
  statusSelect.addEventListener("change", () => {
    filter.status = statusSelect.value;
    load();
  });
  container.append(
    el("h1", {}, "Work orders"),
    session.canOperate ? el("p", {}, link("/work-orders/new", "New work order", { class: "button", "data-write": "" })) : "",
    el("form", { class: "filters", "aria-label": "Work order filters" }, field("Status", statusSelect)),
    body,
  );
  async function load() {
    const answer = await api("/work-orders", { query: { status: filter.status, limit: 500 } });
    if (stale()) return;
    const rows = answer.work_orders.map((w) =>
      el(
        "tr",
        { "data-work-order": w.id },
        el("td", {}, link(`/work-orders/${w.id}`, w.title)),
        el("td", { class: "wo-status" }, w.status),
        el("td", {}, w.machines.join(", ") || "—"),
        el("td", {}, w.assignee_email || "—"),
        el("td", {}, w.due_date || "—"),
        el("td", {}, when(w.updated_at)),
      ),
    );
    body.replaceChildren(
      rows.length ? table("Work orders", ["Title", "Status", "Machines", "Assignee", "Due", "Changed"], rows) : el("p", {}, "No work orders."),
    );
  }
  await load();
}

/** Users an order can be assigned to: admins may list them; others leave the assignee empty. */
async function assignees() {
  if (!session.isAdmin) return null;
  const answer = await api("/users");
  return answer.users.filter((u) => u.active);
}

export async function renderNewWorkOrder(container, { query, stale }) {
  container.append(el("p", { class: "crumbs" }, link("/work-orders", "Work orders"), " / new"), el("h1", {}, "New work order"));
  if (!session.canOperate) {
    container.append(el("p", {}, "Your role cannot create work orders."));
    return;
  }
  const alert = query.alert ? await api(`/alerts/${query.alert}`) : null;
  const [fleet, users] = await Promise.all([api("/fleet/status", { query: { limit: 10000 } }), assignees()]);
  if (stale()) return;
  const status = notice();
  const title = el("input", {
    name: "title",
    required: true,
    maxlength: "200",
    value: alert ? `${alert.rule_name || alert.metric} on ${alert.machine}` : "",
  });
  const description = el("textarea", { name: "description", rows: "4" });
  description.value = alert ? `${alert.explanation || ""}\nAlert raised ${alert.raised_at}.` : "";
  const due = el("input", { type: "date", name: "due_date" });
  const machine = select(
    { name: "machine" },
    [["", "No machine"], ...fleet.machines.map((m) => m.name).sort()],
    alert?.machine ?? query.machine ?? "",
  );
  const controls = [field("Title", title), field("Description", description), field("Machine", machine), field("Due date", due)];
  let assignee = null;
  if (users) {
    assignee = select({ name: "assignee" }, [["", "Nobody yet"], ...users.map((u) => [u.id, u.email])], "");
    controls.push(field("Assignee", assignee));
  }
  const form = el(
    "form",
    { class: "stack", "aria-label": "New work order" },
    alert ? el("p", {}, "Linked to the alert ", link(`/alerts/${alert.id}`, `${alert.rule_name || alert.metric} on ${alert.machine}`), ".") : "",
    ...controls,
    el("button", { type: "submit", "data-write": "" }, "Create work order"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const order = await api("/work-orders", {
        method: "POST",
        body: {
          title: title.value,
          description: description.value,
          ...(due.value ? { due_date: due.value } : {}),
          ...(assignee?.value ? { assignee: assignee.value } : {}),
          machines: machine.value ? [machine.value] : [],
          alerts: alert ? [alert.id] : [],
        },
      });
      location.hash = `#/work-orders/${order.id}`;
    } catch (error) {
      status.error(`Could not create it: ${error.message}`);
    }
  });
  container.append(form);
}

function describeChange(change) {
  if (change.created) return "created";
  return Object.entries(change)
    .filter(([k]) => k !== "note")
    .map(([k, v]) => (v && typeof v === "object" && "to" in v ? `${k}: ${v.from ?? "—"} → ${v.to ?? "—"}` : `${k}: ${JSON.stringify(v)}`))
    .join("; ");
}

export async function renderWorkOrder(container, { params, stale }) {
  const status = notice();
  const body = el("div");
  container.append(el("p", { class: "crumbs" }, link("/work-orders", "Work orders"), " / order"), el("h1", {}, "Work order"), status, body);

  async function load() {
    const w = await api(`/work-orders/${params.id}`);
    if (stale()) return;
    container.querySelector("h1").textContent = w.title;
    const parts = [
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Status"),
        el("dd", { class: "wo-status" }, w.status),
        el("dt", {}, "Machines"),
        el("dd", {}, w.machines.length ? w.machines.map((m) => link(`/machines/${encodeURIComponent(m)}`, m)) : "—"),
        el("dt", {}, "Alerts"),
        el("dd", {}, w.alerts.length ? w.alerts.map((a) => link(`/alerts/${a}`, "alert ")) : "—"),
        el("dt", {}, "Assignee"),
        el("dd", {}, w.assignee_email || "—"),
        el("dt", {}, "Due"),
        el("dd", {}, w.due_date || "—"),
        el("dt", {}, "Description"),
        el("dd", { class: "pre" }, w.description || "—"),
      ),
    ];
    if (session.canOperate && w.next_statuses?.length) {
      const note = el("input", { name: "note", maxlength: "2000" });
      const buttons = w.next_statuses.map((to) =>
        el(
          "button",
          {
            type: "button",
            "data-write": "",
            "data-move": to,
            onclick: async () => {
              try {
                await api(`/work-orders/${w.id}`, { method: "PATCH", body: { status: to, ...(note.value ? { note: note.value } : {}) } });
                status.set(`Moved to ${to.replace("_", " ")}.`);
                await load();
              } catch (error) {
                status.error(`Could not move it: ${error.message}`);
              }
            },
          },
          MOVE_LABELS[to] || to,
        ),
      );
      parts.push(
        el("section", { "aria-labelledby": "move-title" }, el("h2", { id: "move-title" }, "Move"), field("Note for the history (optional)", note), el("p", { class: "buttons" }, buttons)),
      );
    }
    parts.push(
      el("h2", {}, "History"),
      el(
        "ol",
        { class: "timeline", "aria-label": "History" },
        (w.history || []).map((h) => el("li", {}, el("time", { datetime: h.at }, when(h.at)), ` ${h.by}: ${describeChange(h.change)}`, h.change?.note ? ` (“${h.change.note}”)` : "")),
      ),
    );
    body.replaceChildren(...parts);
  }
  await load();
}
