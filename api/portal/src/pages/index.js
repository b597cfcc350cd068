// The portal's routes: a pattern of path segments (":name" takes one) and the page that renders it.
// `admin: true` pages are for administrators only (the navigation hides them from other roles too).

import { renderFleet } from "./fleet.js";
import { renderMachine } from "./machine.js";
import { renderAlert, renderAlerts } from "./alerts.js";
import { renderWorkOrder, renderWorkOrders, renderNewWorkOrder } from "./work-orders.js";
import { renderRule, renderRules } from "./rules.js";
import { renderPredictions } from "./predictions.js";
import { renderReports } from "./reports.js";
import { renderApiKeys, renderSettings, renderUsers } from "./admin.js";

function route(pattern, render, options = {}) {
  const segments = pattern.split("/").filter(Boolean);
  return {
    ...options,
    render,
    matches: (parts) => parts.length === segments.length && segments.every((s, i) => s.startsWith(":") || s === parts[i]),
    params: (parts) => Object.fromEntries(segments.map((s, i) => [s.slice(1), parts[i]]).filter(([, v], i) => segments[i].startsWith(":") && v)),
  };
}

export const routes = [
  route("/fleet", renderFleet),
  route("/machines/:name", renderMachine),
  route("/alerts", renderAlerts),
  route("/alerts/:id", renderAlert),
  route("/work-orders", renderWorkOrders),
  route("/work-orders/new", renderNewWorkOrder),
  route("/work-orders/:id", renderWorkOrder),
  route("/rules", renderRules),
  route("/rules/new", renderRule),
  route("/rules/:id", renderRule),
  route("/predictions", renderPredictions),
  route("/reports", renderReports),
  route("/admin/users", renderUsers, { admin: true }),
  route("/admin/api-keys", renderApiKeys, { admin: true }),
  route("/admin/settings", renderSettings, { admin: true }),
];
