// Predictions: the fleet ranked by remaining useful life, the shortest first.

import { api } from "../api.js";
import { el, link, num, table, when } from "../dom.js";

export async function renderPredictions(container, { stale }) {
  const answer = await api("/predictions");
  if (stale()) return;
  const rows = answer.machines.map((p, i) =>
    el(
      "tr",
      { "data-machine": p.machine },
      el("td", {}, String(i + 1)),
      el("th", { scope: "row" }, link(`/machines/${encodeURIComponent(p.machine)}`, p.machine)),
      el("td", {}, `${num(p.rul, 1)} ${p.unit}`),
      el("td", {}, `${num(p.lower, 1)} to ${num(p.upper, 1)} (${num(p.interval * 100, 0)} %)`),
      el("td", {}, num(p.health, 2)),
      el("td", {}, (p.contributors || []).slice(0, 3).map((c) => c.sensor).join(", ") || "—"),
      el("td", {}, when(p.at)),
    ),
  );
  container.append(
    el("h1", {}, "Predictions"),
    el("p", { class: "hint" }, "Each machine's newest estimate of its remaining useful life, the shortest first."),
    rows.length
      ? table("Fleet by remaining useful life", ["Rank", "Machine", "Remaining life", "Interval", "Health", "Main sensors", "Predicted"], rows)
      : el("p", {}, "No predictions yet: a remaining-life model serves no machine, or none has sent enough readings."),
  );
}
