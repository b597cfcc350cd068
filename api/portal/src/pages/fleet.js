// The fleet overview: every machine's status with counts, filters by site and tag, live through the
// socket's machine_status messages.

import { api } from "../api.js";
import { coalesced, el, link, select, table, when } from "../dom.js";
import * as live from "../live.js";

const filters = { site: "", tag: "" };

export async function renderFleet(container, { stale }) {
  const status = await api("/fleet/status", { query: { limit: 10000 } });
  if (stale()) return;
  const machines = status.machines;
  const body = el("div");
  const sites = [...new Set(machines.map((m) => m.site).filter(Boolean))].sort();
  const tags = [...new Set(machines.flatMap((m) => m.tags || []))].sort();
  const siteSelect = select({ "aria-label": "Site" }, [["", "Every site"], ...sites], filters.site);
  const tagSelect = select({ "aria-label": "Tag" }, [["", "Every tag"], ...tags], filters.tag);
  siteSelect.addEventListener("change", () => {
    filters.site = siteSelect.value;
    render();
  });
  tagSelect.addEventListener("change", () => {
    filters.tag = tagSelect.value;
    render();
  });
  container.append(el("h1", {}, "Fleet"), el("div", { class: "filters" }, siteSelect, tagSelect), body);

  function render() {
    const visible = machines.filter(
      (m) => (!filters.site || m.site === filters.site) && (!filters.tag || (m.tags || []).includes(filters.tag)),
    );
    const count = (s) => visible.filter((m) => m.status === s).length;
    const counts = el(
      "ul",
      { class: "counts", "aria-label": "Machines by status" },
      el("li", { "data-count": "total" }, el("strong", {}, String(visible.length)), "machines"),
      el("li", { "data-count": "running" }, el("strong", {}, String(count("running"))), "running"),
      el("li", { "data-count": "alerting" }, el("strong", {}, String(count("alerting"))), "alerting"),
      el("li", { "data-count": "silent" }, el("strong", {}, String(count("silent"))), "silent"),
    );
    const rows = visible.map((m) =>
      el(
        "tr",
        { "data-machine": m.name },
        el("th", { scope: "row" }, link(`/machines/${encodeURIComponent(m.name)}`, m.name)),
        el("td", {}, m.site || ""),
        el("td", {}, (m.tags || []).join(", ")),
        el("td", { class: `status status-${m.status}` }, m.status),
        el("td", {}, String(m.open_alerts ?? 0)),
        el("td", {}, when(m.last_reading_at) === "—" ? "never" : when(m.last_reading_at)),
      ),
    );
    body.replaceChildren(
      counts,
      table("Fleet", ["Machine", "Site", "Tags", "Status", "Open alerts", "Last reading"], rows),
    );
    performance.mark("haltless:fleet-rendered");
  }

  render();
  const redraw = coalesced(render);
  live.on("machine_status", (message) => {
    const machine = machines.find((m) => m.id === message.machine_id || m.name === message.machine);
    if (machine) {
      machine.status = message.status;
      machine.open_alerts = message.open_alerts;
      redraw();
    }
  });
}
