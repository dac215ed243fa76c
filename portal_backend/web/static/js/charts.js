/* Entity page charts (Chart.js); the numbers are also in the page as text and tables. */
(function () {
  "use strict";
  function data(id) { const el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; }
  const cost = data("cost-data");
  if (cost && document.getElementById("cost-chart")) {
    new Chart(document.getElementById("cost-chart"), {
      type: "bar",
      data: { labels: cost.map((d) => d.day), datasets: [{ label: "Cost (USD)", data: cost.map((d) => d.usd), backgroundColor: "#1f5fbf" }] },
      options: { maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true } } },
    });
  }
  const sla = data("sla-data");
  if (sla && document.getElementById("sla-chart")) {
    new Chart(document.getElementById("sla-chart"), {
      type: "line",
      data: {
        labels: sla.map((p) => p.t),
        datasets: [
          { label: "p95 latency (ms)", data: sla.map((p) => p.p95_ms), borderColor: "#1f5fbf", yAxisID: "ms" },
          { label: "success rate (%)", data: sla.map((p) => p.success_rate), borderColor: "#1d7a3a", yAxisID: "pct" },
        ],
      },
      options: { maintainAspectRatio: false, animation: false,
        scales: { ms: { position: "left", beginAtZero: true }, pct: { position: "right", min: 0, max: 100 } } },
    });
  }
  document.querySelectorAll("canvas").forEach((c) => c.setAttribute("data-rendered", "true"));
})();
