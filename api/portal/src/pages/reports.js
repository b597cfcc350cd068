// Report downloads: machines, alerts and work orders as CSV or PDF, and the fleet summary PDF, over a window.

import { download } from "../api.js";
import { el, field, localInput, notice } from "../dom.js";

const REPORTS = [
  ["machines", "Machines", ["csv", "pdf"]],
  ["alerts", "Alerts", ["csv", "pdf"]],
  ["work-orders", "Work orders", ["csv", "pdf"]],
  ["fleet", "Fleet summary (KPIs)", ["pdf"]],
];

export async function renderReports(container) {
  const status = notice();
  const now = new Date();
  const from = el("input", { type: "datetime-local", name: "from", value: localInput(new Date(now - 30 * 86400_000)) });
  const to = el("input", { type: "datetime-local", name: "to", value: localInput(now) });
  const rows = REPORTS.map(([name, title, formats]) =>
    el(
      "li",
      {},
      el("span", { class: "report-name" }, title),
      formats.map((format) =>
        el(
          "button",
          {
            type: "button",
            "data-report": `${name}.${format}`,
            "aria-label": `Download ${title} as ${format.toUpperCase()}`,
            onclick: async () => {
              const windowed = name === "alerts" || name === "fleet";
              const query = windowed ? `?from=${encodeURIComponent(new Date(from.value).toISOString())}&to=${encodeURIComponent(new Date(to.value).toISOString())}` : "";
              try {
                status.set(`Preparing ${title} (${format.toUpperCase()})…`);
                const bytes = await download(`/reports/${name}.${format}${query}`, `${name}.${format}`);
                status.set(`Downloaded ${name}.${format} (${bytes.toLocaleString()} bytes).`);
              } catch (error) {
                status.error(`Could not download: ${error.message}`);
              }
            },
          },
          format.toUpperCase(),
        ),
      ),
    ),
  );
  container.append(
    el("h1", {}, "Reports"),
    el("form", { class: "inline", "aria-label": "Report window" }, field("Alerts and fleet KPIs from", from), field("to", to)),
    el("ul", { class: "reports" }, rows),
    status,
  );
}
