/* Task page: the live log and the steps' states from the scaffolder's SSE event stream.
 * Each step event updates its badge at once; the server's view of the steps (outputs,
 * "skipped: no cluster", the finished time) is fetched again after every change. */
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("task-config").textContent);
  const log = document.getElementById("log");
  const seen = new Set(Array.from(log.querySelectorAll("[data-event]")).map((el) => el.dataset.event));
  if (cfg.terminal) return;
  const stateUrl = `/create/tasks/${encodeURIComponent(cfg.id)}/steps`;
  let finished = false;

  function when(iso) {
    return iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "";
  }
  async function refreshState() {
    const response = await fetch(stateUrl, { credentials: "same-origin" }).catch(() => null);
    if (!response || !response.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = await response.text();
    const fresh = holder.querySelector("#task-state");
    const old = document.getElementById("task-state");
    if (fresh && old) old.replaceWith(fresh);
    const done = document.getElementById("task-finished");
    if (fresh && fresh.dataset.finished && done) done.textContent = fresh.dataset.finished;
    if (fresh && fresh.dataset.terminal === "true") settle();
  }
  // The server's view can say the task ended before the stream has delivered its last
  // lines (the final log events and the completion): keep the stream a little longer,
  // its completion event closes it; close it anyway after a few seconds.
  let settling = null;
  function settle() {
    if (finished || settling) return;
    clearInterval(poll);
    settling = setTimeout(stop, 5000);
  }
  let timer = null;
  function refreshSoon() {
    clearTimeout(timer);
    timer = setTimeout(refreshState, 200);
  }
  function setStep(stepId, status) {
    const badge = document.querySelector(`[data-step="${CSS.escape(stepId)}"] [data-step-status]`);
    if (!badge) return;
    badge.textContent = status;
    badge.className = "badge " + status;
  }
  function finish(event) {
    const status = (event.body && event.body.status) || (event.type === "cancelled" ? "cancelled" : "");
    const badge = document.getElementById("task-status");
    if (badge && status) { badge.textContent = status; badge.className = "badge " + status; }
    const done = document.getElementById("task-finished");
    if (done) done.textContent = when(event.createdAt);
    refreshState();
    stop();
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
    line.textContent = `${when(event.createdAt)} ${body.stepId ? "[" + body.stepId + "] " : ""}${body.message || event.type}\n`;
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
    if (body.stepId && body.status) { setStep(body.stepId, body.status); refreshSoon(); }
    if (event.type === "completion" || event.type === "cancelled") finish(event);
  }
  const source = new EventSource(`/api/scaffolder/v2/tasks/${encodeURIComponent(cfg.id)}/eventstream`);
  source.onmessage = handle;
  ["log", "completion", "cancelled", "recovered"].forEach((type) => source.addEventListener(type, handle));
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) refreshState(); };
  // The stream can drop (proxies, a restarted portal): the server's view every 5 s too.
  const poll = setInterval(refreshState, 5000);
  function stop() {
    if (finished) return;
    finished = true;
    source.close();
    clearInterval(poll);
    clearTimeout(settling);
  }
})();
