/* Task page: live log over the scaffolder's SSE event stream; steps refresh via htmx. */
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("task-config").textContent);
  const log = document.getElementById("log");
  const seen = new Set(Array.from(log.querySelectorAll("[data-event]")).map((el) => el.dataset.event));
  if (cfg.terminal) return;
  const source = new EventSource(`/api/scaffolder/v2/tasks/${encodeURIComponent(cfg.id)}/eventstream`);
  let timer = null;
  function refreshSteps() {
    clearTimeout(timer);
    timer = setTimeout(() => document.body.dispatchEvent(new Event("refresh")), 150);
  }
  function handle(message) {
    let event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    const id = String(event.id ?? "");
    if (id && seen.has(id)) return;
    if (id) seen.add(id);
    const body = event.body || {};
    const line = document.createElement("span");
    line.dataset.event = id;
    const when = (event.createdAt || "").replace("T", " ").slice(0, 16) + (event.createdAt ? " UTC" : "");
    line.textContent = `${when} ${body.stepId ? "[" + body.stepId + "] " : ""}${body.message || event.type}\n`;
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
    refreshSteps();
    if (event.type === "completion" || event.type === "cancelled") source.close();
  }
  source.onmessage = handle;
  ["log", "completion", "cancelled", "recovered"].forEach((type) => source.addEventListener(type, handle));
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) refreshSteps(); };
})();
