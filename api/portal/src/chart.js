// Time-series charts with uPlot (npm `uplot`, bundled into the portal's assets): one chart per metric, its
// history as bucket averages with the buckets' minimum and maximum, and live readings appended as they come.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { el, num, when } from "./dom.js";

const AVG = "#1d5fbf";
const RANGE = "#8aa4c8";

/**
 * A chart of one metric in `container`: `{ node, setData(times, avg, min, max), append(ts, value), destroy() }`.
 * Times are epoch seconds. `node` is a figure whose caption names the metric and says its newest value.
 */
export function metricChart(metric, width) {
  const caption = el("figcaption", {}, el("span", { class: "metric-name" }, metric), " ", el("span", { class: "latest" }, "no readings yet"));
  const plotArea = el("div", { class: "plot", role: "img", "aria-label": `Chart of ${metric} over time` });
  const node = el("figure", { class: "chart", "data-metric": metric, "data-points": "0" }, caption, plotArea);
  const data = [[], [], [], []];
  // The time range shown (epoch seconds), or null for the data's own extent.
  let shown = null;
  const opts = {
    width,
    height: 220,
    scales: { x: { time: true, range: (_, min, max) => (shown ? [shown.from, Math.max(shown.to, max ?? shown.to)] : [min, max]) } },
    axes: [{ stroke: "#3b4450" }, { stroke: "#3b4450", size: 60 }],
    legend: { live: true },
    series: [
      { label: "time", value: (_, v) => (v == null ? "—" : when(v * 1000)) },
      { label: "avg", stroke: AVG, width: 2, value: (_, v) => num(v) },
      { label: "min", stroke: RANGE, width: 1, dash: [4, 4], value: (_, v) => num(v) },
      { label: "max", stroke: RANGE, width: 1, dash: [4, 4], value: (_, v) => num(v) },
    ],
  };
  const plot = new uPlot(opts, data, plotArea);

  function describe() {
    const n = data[0].length;
    node.dataset.points = String(n);
    if (n) {
      const last = data[1][n - 1];
      node.dataset.last = String(last);
      caption.querySelector(".latest").textContent = `${num(last)} at ${when(data[0][n - 1] * 1000)}`;
    } else {
      delete node.dataset.last;
      caption.querySelector(".latest").textContent = "no readings in this range";
    }
  }

  return {
    node,
    /** Shows `[from, to]` (epoch seconds) whatever the data covers. */
    setWindow(from, to) {
      shown = { from, to };
    },
    setData(times, avg, min, max) {
      data[0] = times;
      data[1] = avg;
      data[2] = min;
      data[3] = max;
      plot.setData(data);
      describe();
    },
    /** Adds a live reading (epoch seconds) in time order; one older than the newest point is dropped. */
    append(ts, value, keepFrom) {
      const n = data[0].length;
      if (n && ts <= data[0][n - 1]) return;
      data[0].push(ts);
      data[1].push(value);
      data[2].push(value);
      data[3].push(value);
      // A live window slides: points older than its start leave.
      if (keepFrom !== undefined) {
        shown = { from: keepFrom, to: Math.max(ts, Date.now() / 1000) };
        let drop = 0;
        while (drop < data[0].length - 1 && data[0][drop] < keepFrom) drop += 1;
        if (drop) for (const series of data) series.splice(0, drop);
      }
      plot.setData(data);
      describe();
    },
    resize(w) {
      plot.setSize({ width: w, height: 220 });
    },
    destroy() {
      plot.destroy();
    },
  };
}
