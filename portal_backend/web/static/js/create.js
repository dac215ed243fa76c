/* Create flow: the template's parameter pages as a multi-page JSON-Schema form
 * (json-editor renders the fields; this script says what is wrong in words, at the field,
 * once the field was touched), live GPU sizing from the server's own check, a review page
 * in the form's words that the server checks before Create, and server errors at their
 * fields. */
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("form-config").textContent);
  const pages = Array.from(document.querySelectorAll("[data-page]"));
  const review = document.getElementById("review");
  const reviewStatus = document.getElementById("review-status");
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
      show_errors: "never",  // shown by this script, in words
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
  const touched = editors.map(() => new Set());   // field paths the user has left or changed
  const showAll = editors.map(() => false);       // after Next/Create: every error shows
  const serverErrors = editors.map(() => ({}));   // path -> message from the server
  let sizing = null;                              // the server's last sizing verdict

  function values() {
    const merged = {};
    editors.forEach((ed) => Object.assign(merged, ed.getValue()));
    return merged;
  }

  // ---------------------------------------------------------------- field errors in words
  function schemaAt(i, path) {
    const ed = editors[i].getEditor(path);
    return ed ? ed.schema || {} : {};
  }
  function titleOf(schema, key) {
    return (schema && schema.title) || key.replace(/_/g, " ");
  }
  function custom(schema, keyword) {
    const m = schema && schema.errorMessage;
    if (typeof m === "string") return m;
    return m && typeof m[keyword] === "string" ? m[keyword] : null;
  }
  function words(schema, keyword, fallback) {
    const own = custom(schema, keyword);
    if (own) return own;
    const title = titleOf(schema, "this field");
    switch (keyword) {
      case "required": return (schema.enum ? "Choose " : "Give ") + title.toLowerCase() + ".";
      case "pattern": return schema.description ? "Not in the expected form: " + schema.description : "Not in the expected form.";
      case "minLength": return `At least ${schema.minLength} character${schema.minLength === 1 ? "" : "s"}.`;
      case "maxLength": return `At most ${schema.maxLength} characters.`;
      case "minimum": return `At least ${schema.minimum}.`;
      case "maximum": return `At most ${schema.maximum}.`;
      case "exclusiveMinimum": return `More than ${schema.exclusiveMinimum}.`;
      case "exclusiveMaximum": return `Less than ${schema.exclusiveMaximum}.`;
      case "type": return schema.type === "integer" ? "A whole number." : schema.type === "number" ? "A number." : fallback;
      case "enum": return "Choose one of the options.";
      case "format": return schema.format === "url" || schema.format === "uri" ? "A URL, e.g. https://example.com/page." : fallback;
      case "uniqueItems": return "Each entry only once.";
      case "minItems": return `At least ${schema.minItems} entr${schema.minItems === 1 ? "y" : "ies"}.`;
      default: return fallback;
    }
  }
  // json-editor's errors -> [{path, message}] with a human message at the field's path.
  function pageErrors(i) {
    const out = [];
    // validate() without a value answers from a cache kept by json-editor's (later)
    // change event: validate what the fields hold now.
    editors[i].validate(editors[i].getValue()).forEach((e) => {
      if (e.property === "required") {
        const parent = schemaAt(i, e.path);
        const props = parent.properties || {};
        const key = Object.keys(props).find((k) => e.message.includes(`'${titleOf(props[k], k)}'`))
          || Object.keys(props).find((k) => e.message.includes(`'${k}'`));
        if (!key) { out.push({ path: e.path, message: e.message }); return; }
        const path = `${e.path}.${key}`;
        out.push({ path, message: words(props[key] || {}, "required", e.message) });
        return;
      }
      out.push({ path: e.path, message: words(schemaAt(i, e.path), e.property, e.message) });
    });
    // One message per field: the first is the one to act on.
    const seen = new Set();
    return out.filter((e) => (seen.has(e.path) ? false : (seen.add(e.path), true)));
  }
  // json-editor builds a second, hidden copy of a page's fields for its if/then branch:
  // the field a person sees is the one no hidden ancestor (below its page) holds.
  function inUse(el) {
    for (let node = el; node && !node.hasAttribute("data-page"); node = node.parentElement) {
      if (node.style && node.style.display === "none") return false;
    }
    return true;
  }
  function fieldBox(path) {
    const boxes = Array.from(document.querySelectorAll(`[data-schemapath="${CSS.escape(path)}"]`));
    return boxes.find(inUse) || boxes[0] || null;
  }
  function controlsOf(box) {
    return box ? Array.from(box.querySelectorAll("input, select, textarea")).filter((el) =>
      el.closest("[data-schemapath]") === box) : [];
  }
  function errorId(path) { return "err-" + path.replace(/[^a-zA-Z0-9_-]/g, "-"); }
  function clearFieldErrors(i) {
    pages[i].querySelectorAll(".field-error[data-for]").forEach((el) => el.remove());
    pages[i].querySelectorAll("[aria-invalid]").forEach((el) => {
      el.removeAttribute("aria-invalid");
      const ids = (el.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && !id.startsWith("err-"));
      if (ids.length) el.setAttribute("aria-describedby", ids.join(" ")); else el.removeAttribute("aria-describedby");
    });
  }
  function showField(path, message) {
    const box = fieldBox(path);
    if (!box) return false;
    const p = document.createElement("p");
    p.className = "field-error";
    p.id = errorId(path);
    p.dataset.for = path;
    p.textContent = message;
    const controls = controlsOf(box);
    const anchor = controls.length ? controls[controls.length - 1] : null;
    if (anchor && anchor.parentElement) anchor.parentElement.insertBefore(p, anchor.nextSibling);
    else box.appendChild(p);
    controls.forEach((el) => {
      el.setAttribute("aria-invalid", "true");
      const ids = new Set((el.getAttribute("aria-describedby") || "").split(" ").filter(Boolean));
      ids.add(p.id);
      el.setAttribute("aria-describedby", Array.from(ids).join(" "));
    });
    return true;
  }
  // The errors a person should see now: touched fields (or all, after Next), and the server's.
  function visibleErrors(i) {
    const errs = pageErrors(i).filter((e) => showAll[i] || isTouched(i, e.path));
    const shown = new Set(errs.map((e) => e.path));
    Object.entries(serverErrors[i]).forEach(([path, message]) => {
      if (!shown.has(path)) errs.push({ path, message, server: true });
    });
    return errs;
  }
  function isTouched(i, path) {
    for (const t of touched[i]) if (path === t || path.startsWith(t + ".") || t.startsWith(path + ".")) return true;
    return false;
  }
  function refreshErrors(i) {
    clearFieldErrors(i);
    const errs = visibleErrors(i);
    const unplaced = errs.filter((e) => !showField(e.path, e.message));
    return { errs, unplaced };
  }

  function labelOf(path) {
    const i = Number((path.match(/^p(\d+)/) || [0, 0])[1]);
    const key = path.split(".").slice(1).join(".");
    const schema = schemaAt(i, path);
    return schema.title || key.replace(/_/g, " ") || "The form";
  }
  // The banner names the fields to fix (links that focus them); the words are at the fields.
  function setBanner(intro, items) {
    banner.innerHTML = "";
    if (!intro) { banner.hidden = true; return; }
    const p = document.createElement("p");
    p.textContent = intro;
    banner.appendChild(p);
    if (items && items.length) {
      const ul = document.createElement("ul");
      items.forEach((item) => {
        const li = document.createElement("li");
        if (item.path && fieldBox(item.path)) {
          const a = document.createElement("a");
          a.href = "#" + errorId(item.path);
          a.textContent = item.label;
          a.addEventListener("click", (ev) => { ev.preventDefault(); focusField(item.path); });
          li.appendChild(a);
        } else {
          li.textContent = item.label + (item.message ? ": " + item.message : "");
        }
        ul.appendChild(li);
      });
      banner.appendChild(ul);
    }
    banner.hidden = false;
  }
  function focusField(path) {
    const control = controlsOf(fieldBox(path))[0];
    if (control) control.focus();
  }
  function bannerFor(errs) {
    if (!errs.length) { setBanner(null); return; }
    const n = errs.length;
    setBanner(`${n} field${n === 1 ? " needs" : "s need"} attention:`,
      errs.map((e) => ({ path: e.path, label: labelOf(e.path), message: fieldBox(e.path) ? "" : e.message })));
  }

  editors.forEach((ed, i) => {
    const root = document.getElementById("editor-" + i);
    const touch = (ev) => {
      // Only what the person did: json-editor fires change events of its own.
      if (!ev.isTrusted || !ev.target.matches || !ev.target.matches("input, select, textarea")) return;
      const box = ev.target.closest("[data-schemapath]");
      if (!box) return;
      touched[i].add(box.dataset.schemapath);
      delete serverErrors[i][box.dataset.schemapath];
      setTimeout(() => refreshErrors(i), 0);  // after json-editor took the new value
    };
    root.addEventListener("focusout", touch);
    root.addEventListener("change", touch);
    // json-editor takes a new value after the DOM's change event: say what is wrong then.
    ed.on("change", () => { if (touched[i].size || showAll[i]) refreshErrors(i); });
  });

  // ---------------------------------------------------------------- pages
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
    else refreshErrors(index);
    const heading = index < pages.length ? pages[index].querySelector("h2") : review.querySelector("h2");
    if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
  }

  next.addEventListener("click", () => {
    showAll[current] = true;
    // What the browser can tell stops here; the server's verdict (e.g. the sizing) is
    // said at its field and again on the review page.
    const errs = refreshErrors(current).errs.filter((e) => !e.server);
    bannerFor(errs);
    if (errs.length) { focusField(errs[0].path); return; }
    show(current + 1);
  });
  back.addEventListener("click", () => { setBanner(null); if (current > 0) show(current - 1); });

  // ---------------------------------------------------------------- review, in the form's words
  function enumTitle(schema, value) {
    const titles = (schema.options && schema.options.enum_titles) || schema.enumNames;
    const at = (schema.enum || []).indexOf(value);
    return at >= 0 && titles && titles[at] !== undefined ? String(titles[at]) : null;
  }
  function formatted(schema, value) {
    if (value === undefined || value === null || value === "") return "—";
    if (typeof value === "boolean") return value ? "Yes" : "No";
    const title = enumTitle(schema, value);
    if (title !== null) return title;
    if (Array.isArray(value)) {
      if (!value.length) return "None";
      const ul = document.createElement("ul");
      value.forEach((item) => {
        const li = document.createElement("li");
        const text = formatted(schema.items || {}, item);
        if (text instanceof Node) li.appendChild(text); else li.textContent = text;
        ul.appendChild(li);
      });
      return ul;
    }
    if (typeof value === "object") {
      const props = schema.properties || {};
      const parts = Object.keys(value).filter((k) => value[k] !== undefined && value[k] !== "")
        .map((k) => `${titleOf(props[k] || {}, k)}: ${formattedText(props[k] || {}, value[k])}`);
      return parts.length ? parts.join(" · ") : "—";
    }
    if (typeof value === "number") return value.toLocaleString("en-US");
    return String(value);
  }
  function formattedText(schema, value) {
    const out = formatted(schema, value);
    return out instanceof Node ? out.textContent : out;
  }
  function applies(i, key) {
    const ed = editors[i].getEditor(`p${i}.${key}`);
    return !(ed && (ed.dependenciesFulfilled === false || (ed.options && ed.options.hidden)));
  }
  function renderReview() {
    const holder = document.getElementById("review-values");
    holder.innerHTML = "";
    const v = values();
    cfg.pages.forEach((page, i) => {
      const props = (page.schema && page.schema.properties) || {};
      const order = (k) => (props[k] && props[k].propertyOrder) || 1000;
      const h = document.createElement("h3");
      h.textContent = page.title;
      const dl = document.createElement("dl");
      dl.className = "review-list";
      holder.append(h, dl);
      Object.keys(props).sort((a, b) => order(a) - order(b)).forEach((key) => {
        if (!applies(i, key)) return;
        const dt = document.createElement("dt");
        dt.textContent = titleOf(props[key], key);
        const dd = document.createElement("dd");
        dd.dataset.field = key;
        const shown = formatted(props[key], v[key]);
        if (shown instanceof Node) dd.appendChild(shown); else dd.textContent = shown;
        dl.append(dt, dd);
      });
    });
    checkAll();
  }

  // ---------------------------------------------------------------- the server's verdict
  async function check(actions) {
    const body = { values: values() };
    if (actions) body.actions = actions;
    const response = await fetch(cfg.checkUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`the portal answered ${response.status}`);
    return response.json();
  }
  // "values.a.0.b" (schema errors) or "parameters.a" (action prechecks) -> "a.0.b"
  function fieldOf(path) { return String(path || "").replace(/^(values|parameters)(\.|$)/, ""); }
  function pageOf(rel) {
    const top = rel.split(".")[0];
    return cfg.pages.findIndex((p) => p.schema.properties && top in p.schema.properties);
  }
  // The server's errors at their fields; returns the ones no field holds.
  function placeServerErrors(errors) {
    editors.forEach((_, i) => { serverErrors[i] = {}; });
    const unplaced = [];
    errors.forEach((d) => {
      const rel = fieldOf(d.path);
      const i = pageOf(rel);
      if (i < 0) { unplaced.push(d); return; }
      const path = `p${i}.${rel}`;
      serverErrors[i][path] = shortMessage(rel, d.message);
    });
    editors.forEach((_, i) => refreshErrors(i));
    return unplaced;
  }
  // A sizing refusal is long arithmetic: the field says the verdict, the panel the rest.
  function shortMessage(rel, message) {
    if (sizing && !sizing.fits && sizing.field === rel && sizing.summary) return sizing.summary + " See GPU sizing for what fits.";
    return message;
  }
  function firstPageWithErrors() {
    return serverErrors.findIndex((errs) => Object.keys(errs).length);
  }
  let reviewSeq = 0;
  async function checkAll() {
    const seq = ++reviewSeq;
    reviewStatus.textContent = "Checking these values with the server…";
    reviewStatus.className = "muted";
    let report;
    try { report = await check(null); } catch (e) {
      if (seq === reviewSeq) reviewStatus.textContent = "Could not check the values: " + e.message + ". You can still create.";
      return;
    }
    if (seq !== reviewSeq) return;
    const unplaced = placeServerErrors(report.errors);
    const problems = report.errors.map((e) => ({ path: `p${pageOf(fieldOf(e.path))}.${fieldOf(e.path)}`, label: labelOf(`p${pageOf(fieldOf(e.path))}.${fieldOf(e.path)}`), message: "" }))
      .filter((p) => !p.path.startsWith("p-1"));
    unplaced.forEach((d) => problems.push({ label: fieldOf(d.path) || "Form", message: d.message }));
    report.conflicts.forEach((message) => problems.push({ label: "Already taken", message: message + ". " + CONFLICT_HINT }));
    if (!problems.length) {
      reviewStatus.textContent = "Ready to create: the server accepts these values.";
      reviewStatus.className = "alert ok";
      setBanner(null);
    } else {
      reviewStatus.textContent = "The server would refuse these values; fix what is listed above.";
      reviewStatus.className = "alert warn";
      setBanner(`${problems.length} thing${problems.length === 1 ? "" : "s"} to fix before creating:`, problems);
    }
  }
  const CONFLICT_HINT = "Choose another name, or delete the old service from its page (Delete service, archiving or removing its repository) to reuse it.";

  submit.addEventListener("click", async () => {
    for (let i = 0; i < editors.length; i++) {
      showAll[i] = true;
      const { errs } = refreshErrors(i);
      if (errs.filter((e) => !e.server).length) { show(i); bannerFor(errs); focusField(errs[0].path); return; }
    }
    submit.disabled = true;
    submit.textContent = "Creating…";
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
      const details = error.details || [];
      if (details.length) {
        const unplaced = placeServerErrors(details);
        const first = firstPageWithErrors();
        const items = details.map((d) => {
          const rel = fieldOf(d.path);
          const i = pageOf(rel);
          return i >= 0 ? { path: `p${i}.${rel}`, label: labelOf(`p${i}.${rel}`) } : { label: rel || "Form", message: d.message };
        });
        setBanner(`The server refused: ${items.length} field${items.length === 1 ? " needs" : "s need"} attention:`, items);
        if (first >= 0) { show(first); focusField(Object.keys(serverErrors[first])[0]); }
        void unplaced;
      } else if (response.status === 409) {
        setBanner((error.message || "Already taken") + ". " + CONFLICT_HINT);
      } else {
        setBanner(error.message || `The server answered ${response.status}.`);
      }
    } catch (e) {
      setBanner("Could not reach the portal: " + e);
    }
    submit.disabled = false;
    submit.textContent = "Create";
  });

  // ---------------------------------------------------------------- live GPU sizing
  const sizingBox = document.getElementById("sizing");
  let sizingSeq = 0;
  function gb(x) { return `${Number(x).toFixed(1)} GB`; }
  function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
  async function updateSizing() {
    if (!sizingBox || !cfg.sizing) return;
    const seq = ++sizingSeq;
    let report;
    try { report = await check(["rag:sizing"]); } catch (e) {
      if (seq === sizingSeq) sizingBox.textContent = "Sizing unavailable: " + e.message;
      return;
    }
    if (seq !== sizingSeq) return;  // a newer request is on its way
    const result = Object.values(report.previews).find((p) => p && "fits" in p) || null;
    const errors = report.errors;
    const v = values();
    sizingBox.innerHTML = "";
    if (!result) {
      sizing = null;
      sizingBox.append(el("p", "Cannot size this yet:"));
      const ul = el("ul");
      errors.forEach((e) => ul.appendChild(el("li", `${labelOf("p0." + fieldOf(e.path))}: ${e.message}`)));
      sizingBox.appendChild(ul);
      return;
    }
    // The server's verdict: the precheck's errors decide, as they will at Create.
    const fits = !errors.length && result.fits;
    const reason = String(result.reason || "");
    const needed = Number((reason.match(/needed ([\d.]+) GB/) || [])[1]
      || Number(result.weights_gb) + Number(result.kv_cache_gb) + Number(result.lora_gb || 0));
    const on = Number((reason.match(/does not fit on (\d+) x/) || [])[1] || v.max_gpus || result.gpus);
    const summary = fits
      ? `Fits: ${result.gpus} × ${result.gpu} per replica (tensor parallel ${result.tensor_parallel_size}).`
      : `Does not fit on ${on} × ${result.gpu}: needs ${gb(needed)}, ${on} × ${result.gpu} give ${gb(on * result.usable_gb_per_gpu)}.`;
    sizing = { fits, field: errors.length ? fieldOf(errors[0].path) : cfg.sizing.gpu, summary };
    sizingBox.appendChild(el("p", summary, "sizing-verdict " + (fits ? "fits" : "no-fit")));
    const dl = el("dl"); dl.className = "kv";
    [["Weights", gb(result.weights_gb)], ["KV cache", gb(result.kv_cache_gb)],
     ["Usable per GPU", gb(result.usable_gb_per_gpu)], ["Max context", Number(result.max_model_len).toLocaleString("en-US") + " tokens"]]
      .forEach(([k, val]) => dl.append(el("dt", k), el("dd", val)));
    sizingBox.appendChild(dl);
    if (!fits && result.alternatives && result.alternatives.length) {
      sizingBox.appendChild(el("p", "What would fit:"));
      const ul = el("ul");
      const maxGpus = Number(v.max_gpus || 8);
      result.alternatives.slice(0, 5).forEach((a) => {
        let text = `${a.gpus} × ${a.gpu}, ${a.quantization}`;
        if (a.gpu === result.gpu && a.quantization === result.quantization && a.gpus > maxGpus) text += " (raise “GPUs per model replica, at most”)";
        ul.appendChild(el("li", text));
      });
      sizingBox.appendChild(ul);
    }
    const details = el("details");
    details.appendChild(el("summary", "Details: how this was computed"));
    const steps = el("ul");
    reason.split("; ").forEach((part) => steps.appendChild(el("li", part)));
    details.appendChild(steps);
    sizingBox.appendChild(details);
    // The verdict at its field, as the server will give it (once the user changed sizing).
    const i = pageOf(sizing.field);
    if (i >= 0) {
      const path = `p${i}.${sizing.field}`;
      if (!fits) serverErrors[i][path] = sizing.summary + " See GPU sizing for what fits.";
      else delete serverErrors[i][path];
      refreshErrors(i);
    }
  }
  let sizingTimer = null;
  editors.forEach((ed) => ed.on("change", () => {
    clearTimeout(sizingTimer);
    sizingTimer = setTimeout(updateSizing, 250);
  }));

  // ---------------------------------------------------------------- LoRA adapters from the catalog
  // A list marked ui:field LoraAdapterPicker (forms.py: options.lora_picker) gets a select
  // of the catalog's lora-adapter versions trained on the chosen model
  // (GET /api/rag/models/{model}/adapters); choosing one adds an entry filled from it
  // (name = the adapter's family, its source, its rank's slot, the version's ref), in
  // place of an entry of the same family. The server checks the version at Create.
  const loraPickers = [];
  function adapterFamily(e) {
    const spec = e.spec || {};
    if (spec.family) return String(spec.family);
    const suffix = "-v" + spec.version;
    const name = String(e.metadata.name);
    return name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
  }
  function adapterRef(e) { return `resource:${e.metadata.namespace || "default"}/${e.metadata.name}`; }
  // The smallest of the list's rank slots (its items' rank enum) that holds ``rank``.
  function slotRank(slots, rank) { return slots.find((r) => r >= rank) || slots[slots.length - 1]; }
  function setupLoraPicker(i, key, opts, slots) {
    const box = fieldBox(`p${i}.${key}`);
    if (!box || !opts.modelField) return;
    const picker = { i, key, opts, seq: 0, items: [], model: null };
    const id = `lora-picker-${i}-${key}`;
    const wrap = el("div", undefined, "lora-picker");
    const label = el("label", "Add an adapter from the catalog");
    label.htmlFor = id;
    const select = el("select");
    select.id = id;
    select.dataset.loraPicker = key;
    const status = el("p", "", "muted");
    status.id = id + "-status";
    status.setAttribute("aria-live", "polite");
    select.setAttribute("aria-describedby", status.id);
    wrap.append(label, select, status);
    box.parentNode.insertBefore(wrap, box.nextSibling);
    picker.modelOf = () => {
      const v = values();
      const chosen = v[opts.modelField];
      return chosen === "custom" && opts.customModelField ? v[opts.customModelField] : chosen;
    };
    picker.refresh = async () => {
      const model = picker.modelOf();
      picker.model = model;
      const seq = ++picker.seq;
      select.innerHTML = "";
      if (!model) { select.disabled = true; status.textContent = "Choose a model first."; return; }
      let items;
      try {
        const response = await fetch(`/api/rag/models/${encodeURIComponent(model)}/adapters`, {
          headers: { "Accept": "application/json" }, credentials: "same-origin",
        });
        if (!response.ok) throw new Error(`the portal answered ${response.status}`);
        items = (await response.json()).items || [];
      } catch (e) {
        if (seq === picker.seq) { select.disabled = true; status.textContent = "The catalog's adapters are unavailable: " + e.message; }
        return;
      }
      if (seq !== picker.seq) return;  // the model changed meanwhile
      picker.items = items;
      select.append(new Option(items.length ? "Choose an adapter version…" : "None for this model", ""));
      items.slice().reverse().forEach((e) => {  // newest first
        const spec = e.spec || {};
        select.append(new Option(`${adapterFamily(e)} v${spec.version} (rank ${spec.rank}) ${adapterRef(e)}`, adapterRef(e)));
      });
      select.disabled = !items.length;
      status.textContent = items.length
        ? `${items.length} adapter version${items.length === 1 ? "" : "s"} trained on ${model} in the catalog.`
        : `The catalog has no adapter trained on ${model}; add one by hand below.`;
    };
    select.addEventListener("change", () => {
      const e = picker.items.find((x) => adapterRef(x) === select.value);
      if (!e) return;
      const list = editors[i].getEditor(`p${i}.${key}`);
      const spec = e.spec || {};
      const family = adapterFamily(e);
      const rows = (list.getValue() || []).filter((row) => row.name !== family);
      rows.push({ name: family, source: String(spec.source || ""), rank: slotRank(slots, Number(spec.rank) || 16), version: adapterRef(e) });
      list.setValue(rows);
      touched[i].add(`p${i}.${key}`);
      status.textContent = `Added ${adapterRef(e)} as “${family}”.`;
      select.value = "";
    });
    loraPickers.push(picker);
    picker.refresh();
  }
  function setupLoraPickers() {
    cfg.pages.forEach((page, i) => {
      const props = (page.schema && page.schema.properties) || {};
      Object.keys(props).forEach((key) => {
        const opts = props[key].options && props[key].options.lora_picker;
        const rank = ((props[key].items || {}).properties || {}).rank || {};
        const slots = (rank.enum || [16]).map(Number).sort((a, b) => a - b);
        if (opts) setupLoraPicker(i, key, opts, slots);
      });
    });
    editors.forEach((ed) => ed.on("change", () => {
      loraPickers.forEach((p) => { if (p.modelOf() !== p.model) p.refresh(); });
    }));
  }

  // json-editor builds asynchronously; start once every page is ready.
  let ready = 0;
  editors.forEach((ed) => ed.on("ready", () => {
    ready += 1;
    if (ready !== editors.length) return;
    document.getElementById("wizard").hidden = false;
    document.getElementById("nojs").hidden = true;
    show(0);
    updateSizing();
    setupLoraPickers();
    document.getElementById("wizard").dataset.ready = "true";
  }));
})();
