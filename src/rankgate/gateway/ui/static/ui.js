// Draws the dashboard's charts from JSON blocks the server rendered (<script
// type="application/json">: data, never code), with the vendored Chart.js. Charts draw on a
// canvas, so model names and prompts in the data are never parsed as HTML.
(function () {
  "use strict";
  const palette = ["#2357c5", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f",
                   "#30638e", "#e07a5f", "#3d405b", "#81b29a"];

  function data(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function fmtTime(ts) {
    return new Date(ts * 1000).toISOString().slice(5, 16).replace("T", " ");
  }

  function mixChart() {
    const d = data("mix-data");
    const canvas = document.getElementById("mix-chart");
    if (!d || !canvas || !window.Chart) return;
    const index = new Map(d.buckets.map((b, i) => [b, i]));
    const datasets = d.models.map((m, i) => ({
      label: m, backgroundColor: palette[i % palette.length],
      data: new Array(d.buckets.length).fill(0),
    }));
    const byModel = new Map(d.models.map((m, i) => [m, datasets[i]]));
    for (const [b, m, n] of d.counts) byModel.get(m).data[index.get(b)] = n;
    new Chart(canvas, {
      type: "bar",
      data: { labels: d.buckets.map(fmtTime), datasets: datasets },
      options: { animation: false, maintainAspectRatio: false,
                 scales: { x: { stacked: true }, y: { stacked: true, title: { display: true,
                           text: "requests routed" } } } },
    });
  }

  function paretoChart() {
    const d = data("pareto-data");
    const canvas = document.getElementById("pareto-chart");
    if (!d || !canvas || !window.Chart) return;
    const point = (p) => ({ x: p.x, y: p.y, p: p });
    const frontier = d.filter((p) => p.pareto).sort((a, b) => a.x - b.x);
    new Chart(canvas, {
      type: "scatter",
      data: { datasets: [
        { label: "models", data: d.map(point), backgroundColor: "#2357c5", pointRadius: 6,
          pointHoverRadius: 9 },
        { label: "Pareto frontier", data: frontier.map(point), type: "line",
          borderColor: "#d1495b", backgroundColor: "#d1495b", pointRadius: 0,
          showLine: true, fill: false },
      ] },
      options: { animation: false, maintainAspectRatio: false,
        scales: { x: { type: "logarithmic", title: { display: true, text: "$ per 1,000 requests" } },
                  y: { title: { display: true, text: "accuracy" }, min: 0, max: 1 } },
        plugins: { tooltip: { callbacks: { label: (ctx) => {
          const p = ctx.raw.p;
          const ci = p.low == null ? "" : ` [${(p.low * 100).toFixed(1)}–${(p.high * 100).toFixed(1)}%]`;
          return `${p.model}: ${(p.y * 100).toFixed(1)}%${ci}, $${p.x.toPrecision(3)}/1k, n=${p.n}` +
                 (p.pareto ? " (on the frontier)" : "");
        } } } } },
    });
  }

  document.addEventListener("DOMContentLoaded", function () { mixChart(); paretoChart(); });
})();
