/* Create flow: the template's parameter pages as a multi-page JSON-Schema form
 * (json-editor), live GPU sizing, a review page, submit to the scaffolder API, and
 * server-side errors shown at their fields. */
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("form-config").textContent);
  const pages = Array.from(document.querySelectorAll("[data-page]"));
  const review = document.getElementById("review");
  const progress = document.getElementById("progress");
  const banner = document.getElementById("form-errors");
  const back = document.getElementById("back");
  const next = document.getElementById("next");
  const submit = document.getElementById("submit");
  let current = 0;

  JSONEditor.defaults.options.theme = "html";
  JSONEditor.defaults.options.iconlib = null;
  const editors = cfg.pages.map((page, i) =>
    new JSONEditor(document.getElementById("editor-" + i), {
      schema: page.schema,
      form_name_root: "p" + i,
      show_errors: "interaction",
      disable_collapse: true,
      disable_edit_json: true,
      disable_properties: true,
      disable_array_delete_all_rows: true,
      disable_array_delete_last_row: true,
      prompt_before_delete: false,
      remove_empty_properties: true,
      required_by_default: false,
    })
  );

  function values() {
    const merged = {};
    editors.forEach((ed) => Object.assign(merged, ed.getValue()));
    return merged;
  }

  function show(index) {
    current = index;
    pages.forEach((el, i) => { el.hidden = i !== index; });
    review.hidden = index !== pages.length;
    back.disabled = index === 0;
    next.hidden = index >= pages.length;
    submit.hidden = index !== pages.length;
    const title = index < pages.length ? cfg.pages[index].title : "Review";
    progress.textContent = `Step ${index + 1} of ${pages.length + 1}: ${title}`;
    if (index === pages.length) renderReview();
    const heading = index < pages.length ? pages[index].querySelector("h2") : review.querySelector("h2");
    if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
  }

  function pageErrors(i) {
    // validate() without an argument returns a cached result from the last change.
    const errs = editors[i].validate(editors[i].getValue());
    if (errs.length) {
      editors[i].setOption("show_errors", "always");
      editors[i].root.showValidationErrors(errs);
    }
    return errs;
  }

  function describe(errs) {
    return errs.map((e) => `${e.path.replace(/^p\d+\.?/, "") || "form"}: ${e.message}`);
  }

  function setBanner(lines) {
    banner.innerHTML = "";
    if (!lines.length) { banner.hidden = true; return; }
    const p = document.createElement("p");
    p.textContent = "Please fix the highlighted fields:";
    const ul = document.createElement("ul");
    lines.forEach((line) => { const li = document.createElement("li"); li.textContent = line; ul.appendChild(li); });
    banner.append(p, ul);
    banner.hidden = false;
  }

  function focusFirstInvalid(container) {
    const err = container.querySelector(".errmsg:not([style*='display: none'])");
    const input = err && err.parentElement.querySelector("input, select, textarea");
    if (input) input.focus();
  }

  next.addEventListener("click", () => {
    const errs = pageErrors(current);
    setBanner(describe(errs));
    if (errs.length) { focusFirstInvalid(pages[current]); return; }
    show(current + 1);
  });
  back.addEventListener("click", () => { setBanner([]); if (current > 0) show(current - 1); });

  function renderReview() {
    const dl = document.getElementById("review-values");
    dl.innerHTML = "";
    const v = values();
    cfg.pages.forEach((page, i) => {
      const props = (page.schema && page.schema.properties) || {};
      const order = (k) => (props[k] && props[k].propertyOrder) || 1000;
      Object.keys(props).sort((a, b) => order(a) - order(b)).forEach((key) => {
        if (!(key in v)) return;
        const prop = page.schema.properties[key];
        const dt = document.createElement("dt");
        dt.textContent = prop.title || key;
        const dd = document.createElement("dd");
        const value = v[key];
        dd.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
        dd.dataset.field = key;
        dl.append(dt, dd);
      });
    });
  }

  // "values.a.0.b" (schema errors) or "parameters.a" (action prechecks) -> "a.0.b"
  function fieldOf(path) { return String(path || "").replace(/^(values|parameters)(\.|$)/, ""); }

  // Map the server's error details (values.a.b) onto the page and field that hold them.
  function showServerErrors(details) {
    const perPage = cfg.pages.map(() => []);
    const unplaced = [];
    details.forEach((d) => {
      const rel = fieldOf(d.path);
      const top = rel.split(".")[0];
      const i = cfg.pages.findIndex((p) => p.schema.properties && top in p.schema.properties);
      // json-editor paths start with the page's form_name_root ("p2.gpu_class").
      if (i >= 0) perPage[i].push({ path: `p${i}.${rel}`, property: "server", message: d.message });
      else unplaced.push(d);
    });
    let first = -1;
    perPage.forEach((errs, i) => {
      if (!errs.length) return;
      if (first < 0) first = i;
      // Set the option directly: setOption() would re-validate and wipe these at once.
      editors[i].options.show_errors = "always";
      editors[i].root.showValidationErrors(errs);
    });
    setBanner(details.map((d) => `${fieldOf(d.path) || "form"}: ${d.message}`));
    if (first >= 0) { show(first); focusFirstInvalid(pages[first]); }
    return unplaced;
  }

  submit.addEventListener("click", async () => {
    for (let i = 0; i < editors.length; i++) {
      const errs = pageErrors(i);
      if (errs.length) { setBanner(describe(errs)); show(i); focusFirstInvalid(pages[i]); return; }
    }
    submit.disabled = true;
    submit.textContent = "Submitting…";
    try {
      const response = await fetch("/api/scaffolder/v2/tasks", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ templateRef: cfg.templateRef, values: values() }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok && body.id) { window.location.assign("/create/tasks/" + encodeURIComponent(body.id)); return; }
      const error = body.error || {};
      if (error.details && error.details.length) showServerErrors(error.details);
      else setBanner([error.message || `The server answered ${response.status}.`]);
    } catch (e) {
      setBanner(["Could not reach the portal: " + e]);
    }
    submit.disabled = false;
    submit.textContent = "Create";
  });

  // Live GPU sizing: ask the sizing API whenever model, quantization or GPU change.
  const sizingBox = document.getElementById("sizing");
  let sizingSeq = 0;
  async function updateSizing() {
    if (!sizingBox || !cfg.sizing) return;
    const v = values();
    const q = new URLSearchParams();
    for (const [param, field] of Object.entries(cfg.sizing)) {
      if (v[field] !== undefined && v[field] !== "") q.set(param, v[field]);
    }
    if (!q.get("model") || !q.get("gpu") || !q.get("quantization")) {
      sizingBox.textContent = "Choose a model, quantization and GPU class to see the sizing.";
      return;
    }
    const seq = ++sizingSeq;
    const response = await fetch("/api/rag/sizing?" + q.toString(), { credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    if (seq !== sizingSeq) return;  // a newer request is on its way
    sizingBox.innerHTML = "";
    if (!response.ok) {
      sizingBox.textContent = (body.error && body.error.message) || "Sizing unavailable.";
      return;
    }
    const status = document.createElement("p");
    status.className = "badge " + (body.fits ? "ok" : "breached");
    status.textContent = body.fits ? "Fits" : "Does not fit";
    const dl = document.createElement("dl");
    dl.className = "kv";
    [["GPUs per replica", body.gpus], ["Tensor parallel", body.tensor_parallel_size],
     ["Weights", body.weights_gb + " GB"], ["KV cache", body.kv_cache_gb + " GB"],
     ["Max model length", body.max_model_len], ["KV cache dtype", body.kv_cache_dtype]].forEach(([k, val]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = val;
      dl.append(dt, dd);
    });
    const reason = document.createElement("p");
    reason.textContent = body.reason || "";
    sizingBox.append(status, dl, reason);
    if (body.alternatives && body.alternatives.length) {
      const alt = document.createElement("p");
      alt.className = "muted";
      alt.textContent = "Alternatives: " + body.alternatives.map((a) => `${a.gpus}× ${a.gpu} ${a.quantization}`).join(", ");
      sizingBox.append(alt);
    }
  }
  let sizingTimer = null;
  editors.forEach((ed) => ed.on("change", () => {
    clearTimeout(sizingTimer);
    sizingTimer = setTimeout(updateSizing, 200);
  }));

  // json-editor builds asynchronously; start once every page is ready.
  let ready = 0;
  editors.forEach((ed) => ed.on("ready", () => {
    ready += 1;
    if (ready !== editors.length) return;
    document.getElementById("wizard").hidden = false;
    document.getElementById("nojs").hidden = true;
    show(0);
    updateSizing();
    document.getElementById("wizard").dataset.ready = "true";
  }));
})();
