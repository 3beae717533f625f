// vstream's front end: the Panel (view "panel") and the magic's live view (view "stream").
//
// Loaded by anywidget from the package (no build step). Model text, prompts and everything the
// kernel sends are inserted with textContent / createTextNode only, never as markup. While a
// stream runs the kernel sends deltas ({"type": "delta", "column", "text", "tokens", ...},
// see feed.py); they are appended to the DOM, so a selection or a hover survives the stream.

// --- small DOM helpers ----------------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key in el && key !== "list") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

function labelled(cls, label, control, tip) {
  return h("label", { class: `vstream-field ${cls}`, title: tip || undefined }, h("span", { class: "vstream-label", text: label }), control);
}

function show(el, visible) {
  el.style.display = visible ? "" : "none";
}

// --- logprob colouring ----------------------------------------------------------------------

// A token as Python writes it (the static render shows repr(token) too).
function pyRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of text) {
    if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (ch === quote) out += "\\" + ch;
    else out += ch;
  }
  return quote + out + quote;
}

function percent(logprob) {
  return (Math.exp(logprob) * 100).toFixed(1) + "%";
}

// Green for likely tokens through yellow to red for unlikely ones (p on a log scale, as render.py).
function probabilityColour(logprob) {
  const p = Math.exp(Math.max(logprob, -30));
  const position = Math.min(1, Math.max(0, (Math.log10(Math.max(p, 1e-4)) + 4) / 4));
  return `hsla(${Math.round(position * 120)}, 80%, 45%, 0.28)`;
}

function tokenSpan([text, logprob, top]) {
  const lines = [`${pyRepr(text)}: p = ${percent(logprob)}`];
  for (const [alt, lp] of top || []) lines.push(`${alt === text ? "▶ " : "  "}${pyRepr(alt)}: ${percent(lp)}`);
  const span = h("span", { class: "vstream-token", title: lines.join("\n") }, text);
  span.style.background = probabilityColour(logprob);
  return span;
}

// --- what the kernel sent, kept per model (views come and go; messages arrive once) ----------

function emptyColumn(title = null, logprobs = false, requestId = null) {
  return { title, logprobs, requestId, text: [], reasoning: [], tokens: [], thinking: null, status: "", done: false, error: false, note: null };
}

function columnFromResult(result) {
  return {
    ...emptyColumn(result.title, Array.isArray(result.tokens), result.request_id),
    text: result.text ? [result.text] : [],
    reasoning: result.reasoning ? [result.reasoning] : [],
    tokens: result.tokens || [],
    thinking: result.thinking,
    status: result.status || "",
    done: true,
    error: !!result.error,
    note: result.note,
  };
}

class Store {
  constructor(model) {
    this.columns = [];
    this.listeners = new Set();
    model.on("msg:custom", (msg) => this.receive(msg));
  }

  receive(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "start") {
      this.columns = msg.columns.map((c) => emptyColumn(c.title, !!msg.logprobs, c.request_id));
    } else if (msg.type === "clear") {
      this.columns = [];
    } else if (msg.type === "delta" || msg.type === "done") {
      const column = this.columns[msg.column];
      if (!column) return;
      if (msg.text) column.text.push(msg.text);
      if (msg.reasoning) column.reasoning.push(msg.reasoning);
      if (msg.tokens) column.tokens.push(...msg.tokens);
      if ("thinking" in msg) column.thinking = msg.thinking;
      if (msg.status !== undefined) column.status = msg.status;
      if (msg.type === "done") {
        column.done = true;
        column.error = !!msg.error;
        column.note = msg.note || null;
      }
    }
    for (const listener of this.listeners) listener(msg);
  }
}

const STORES = new Map(); // by the widget's id: every view of one model shares what arrived

// ``fromInitialize``: the store listens for as long as the model lives. A front end that calls
// no ``initialize`` gets one per view instead (its listener goes with the view).
function storeOf(model, fromInitialize = false) {
  const id = model.get("instance_id");
  let store = STORES.get(id);
  if (!store) {
    store = new Store(model);
    store.fromInitialize = fromInitialize;
    STORES.set(id, store);
    if (fromInitialize) model.on("destroy", () => STORES.delete(id));
  }
  return store;
}

// --- one column's output: title, thinking, text (or coloured tokens), note, status ----------

class ColumnView {
  constructor() {
    this.el = h("div", { class: "vstream-output" });
    this.hideThinking = false;
    this.state = null;
  }

  // Build the whole output from a column's state (a new view, a reopened notebook, a toggle).
  show(state) {
    this.state = state;
    this.el.replaceChildren();
    this.noteEl = null;
    if (!state) return;
    if (state.title) this.el.append(h("div", { class: "vstream-title", text: state.title }));
    this.thinkingEl = h("div", { class: "vstream-thinking-slot" });
    this.el.append(this.thinkingEl);
    this.renderThinking();
    this.body = h("pre", { class: state.logprobs ? "vstream-text vstream-logprobs" : "vstream-text" });
    this.cursor = h("span", { class: "vstream-cursor", text: "▌" });
    if (state.logprobs) for (const token of state.tokens) this.body.append(tokenSpan(token));
    else this.body.append(document.createTextNode(state.text.join("")));
    this.body.append(this.cursor);
    this.el.append(this.body);
    this.emptyNote = h("div", { class: "vstream-note vstream-empty-answer" });
    this.statusEl = h("div", { class: "vstream-status" });
    this.el.append(this.emptyNote, this.statusEl);
    this.refresh();
  }

  // Append what one message added; the rest of the DOM stays as it is.
  apply(msg) {
    const state = this.state;
    if (!state) return;
    if (state.logprobs) for (const token of msg.tokens || []) this.body.insertBefore(tokenSpan(token), this.cursor);
    else if (msg.text) this.body.insertBefore(document.createTextNode(msg.text), this.cursor);
    if (msg.reasoning && this.reasoningEl) this.reasoningEl.insertBefore(document.createTextNode(msg.reasoning), this.reasoningCursor);
    if ("thinking" in msg) this.renderThinking(msg.thinking);
    this.refresh();
  }

  refresh() {
    const state = this.state;
    const thinking = this.isThinking();
    show(this.cursor, !state.done && !thinking);
    if (this.reasoningCursor) show(this.reasoningCursor, thinking);
    this.statusEl.textContent = state.status;
    this.statusEl.classList.toggle("vstream-status-error", state.error);
    this.emptyNote.textContent = state.note ? `⚠ ${state.note}` : "";
    show(this.emptyNote, !!state.note);
  }

  isThinking() {
    const state = this.state;
    return !state.done && !!state.thinking && state.thinking.startsWith("Thinking");
  }

  // The reasoning as a collapsible block, open while the model thinks; hidden: its title only.
  renderThinking(changedTitle) {
    const state = this.state;
    const slot = this.thinkingEl;
    if (!state.thinking) {
      slot.replaceChildren();
      this.reasoningEl = this.reasoningCursor = this.summaryEl = null;
      return;
    }
    if (this.hideThinking) {
      slot.replaceChildren(h("div", { class: "vstream-thinking vstream-thinking-hidden", text: state.thinking }));
      this.reasoningEl = this.reasoningCursor = this.summaryEl = null;
      return;
    }
    if (this.summaryEl && changedTitle !== undefined) {
      const wasThinking = this.summaryEl.textContent.startsWith("Thinking");
      this.summaryEl.textContent = state.thinking;
      if (wasThinking && !this.isThinking()) this.detailsEl.open = false; // closed once the answer starts
      return;
    }
    this.summaryEl = h("summary", { text: state.thinking });
    this.reasoningCursor = h("span", { class: "vstream-cursor", text: "▌" });
    this.reasoningEl = h("pre", { class: "vstream-reasoning" }, state.reasoning.join("").replace(/^\s+/, ""), this.reasoningCursor);
    this.detailsEl = h("details", { class: "vstream-thinking", open: this.isThinking() }, this.summaryEl, this.reasoningEl);
    slot.replaceChildren(this.detailsEl);
  }

  setHideThinking(hidden) {
    if (hidden === this.hideThinking) return;
    this.hideThinking = hidden;
    if (this.state) {
      this.summaryEl = null;
      this.renderThinking();
      this.refresh();
    }
  }

  setNote(text) {
    if (!this.noteEl) {
      this.noteEl = h("div", { class: "vstream-note vstream-wait-note" });
      this.el.prepend(this.noteEl);
    }
    this.noteEl.textContent = text || "";
    show(this.noteEl, !!text);
  }
}

// Columns side by side, fed by the store and, where nothing streamed here, by ``results``.
class Outputs {
  constructor(model, store) {
    this.model = model;
    this.store = store;
    this.views = [];
    this.el = h("div", { class: "vstream-row" });
  }

  resize(count) {
    while (this.views.length > count) this.views.pop().el.remove();
    while (this.views.length < count) {
      const view = new ColumnView();
      view.setHideThinking(!this.model.get("show_thinking"));
      this.views.push(view);
    }
    return this.views;
  }

  // Show what arrived here, else the persisted results (a reopened notebook has no messages).
  showAll() {
    const results = this.model.get("results") || [];
    this.views.forEach((view, i) => {
      if (!this.store.columns[i] && results[i]) this.store.columns[i] = columnFromResult(results[i]);
      view.show(this.store.columns[i] || null);
    });
  }

  receive(msg) {
    if (msg.type === "start" || msg.type === "clear") this.showAll();
    else if (msg.type === "delta" || msg.type === "done") {
      const view = this.views[msg.column];
      if (view && view.state === this.store.columns[msg.column]) view.apply(msg);
      else this.showAll();
    }
  }

  // Final results replace a column only where they are news to this view: a stream that ran
  // here already shows them (redrawing would drop a selection made while it streamed).
  resultsChanged() {
    const results = this.model.get("results") || [];
    this.views.forEach((view, i) => {
      const result = results[i];
      const live = this.store.columns[i];
      if (!result || (live && !live.done && live.requestId !== result.request_id)) return;
      if (live && live.requestId === result.request_id && live.done) return;
      this.store.columns[i] = columnFromResult(result);
      view.show(this.store.columns[i]);
    });
  }

  setHideThinking(hidden) {
    for (const view of this.views) view.setHideThinking(hidden);
  }
}

// --- the panel's controls -------------------------------------------------------------------

function cssName(name) {
  return name.replace(/_/g, "-");
}

function numberOrNull(text, integer) {
  if (text === "" || text === null || text === undefined) return null;
  const value = Number(text);
  if (!Number.isFinite(value)) return text; // the kernel's check names the setting and its range
  return integer && Number.isInteger(value) ? value : value;
}

// One control built from its spec (controls.control_specs: a row of the option table).
// Returns {el, update(form)}; ``edit(changes)`` writes the column's form.
function buildControl(spec, edit) {
  const cls = `vstream-ctl vstream-ctl-${cssName(spec.name)}`;
  if (spec.kind === "slider") {
    const input = h("input", { type: "range", min: spec.low, max: spec.high, step: spec.step });
    const readout = h("span", { class: "vstream-readout" });
    const format = (v) => Number(v).toFixed(spec.decimals);
    input.addEventListener("input", () => (readout.textContent = format(input.value)));
    input.addEventListener("change", () => edit({ [spec.name]: Number(input.value) }));
    const el = labelled(cls, spec.label, h("span", { class: "vstream-slider" }, input, readout), spec.tip);
    return { el, update: (form) => { input.value = form[spec.name]; readout.textContent = format(form[spec.name]); } };
  }
  if (spec.kind === "number") {
    const input = h("input", { type: "number", step: 1, placeholder: "not set" });
    const send = () => edit({ [spec.name]: numberOrNull(input.value, true) });
    input.addEventListener("change", send);
    input.addEventListener("keydown", (e) => e.key === "Enter" && send());
    return { el: labelled(cls, spec.label, input, spec.tip), update: (form) => { if (document.activeElement !== input) input.value = form[spec.name] ?? ""; } };
  }
  if (spec.kind === "check") {
    const input = h("input", { type: "checkbox" });
    input.addEventListener("change", () => edit({ [spec.name]: input.checked }));
    return { el: labelled(cls, spec.label, input, spec.tip), update: (form) => (input.checked = !!form[spec.name]) };
  }
  if (spec.kind === "tristate") {
    const select = h("select", {}, h("option", { value: "auto", text: "auto" }), h("option", { value: "on", text: "on" }), h("option", { value: "off", text: "off" }));
    select.addEventListener("change", () => edit({ [spec.name]: { auto: null, on: true, off: false }[select.value] }));
    const update = (form) => (select.value = form[spec.name] === true ? "on" : form[spec.name] === false ? "off" : "auto");
    return { el: labelled(cls, spec.label, select, spec.tip), update };
  }
  if (spec.kind === "seed") {
    const mode = h("select", { class: "vstream-seed-mode" }, h("option", { value: "random", text: "random" }), h("option", { value: "fixed", text: "fixed" }));
    const input = h("input", { type: "number", step: 1, title: "used when the seed is fixed; shows the last random seed" });
    let form = {};
    mode.addEventListener("change", () => edit({ seed: mode.value === "fixed" ? numberOrNull(input.value, true) ?? 0 : null }));
    input.addEventListener("change", () => edit({ seed: numberOrNull(input.value, true) ?? 0 }));
    const update = (f) => {
      form = f;
      mode.value = form.seed === null || form.seed === undefined ? "random" : "fixed";
      if (document.activeElement !== input) input.value = form.seed ?? form.last_seed ?? "";
    };
    return { el: labelled(cls, spec.label, h("span", { class: "vstream-seed" }, mode, input), spec.tip), update };
  }
  if (spec.kind === "stop") {
    const input = h("input", { type: "text", placeholder: "comma-separated; \\n newline, \\, comma" });
    input.addEventListener("change", () => edit({ stop: input.value }));
    return { el: labelled(cls, spec.label, input, spec.tip), update: (form) => { if (document.activeElement !== input) input.value = form.stop || ""; } };
  }
  if (spec.kind === "format") {
    const select = h("select", {}, h("option", { value: "", text: "free text" }), ...spec.formats.map((f) => h("option", { value: f.name, text: f.label })));
    const area = h("textarea", { rows: 3, class: "vstream-format-spec" });
    select.addEventListener("change", () => edit({ output_format: select.value }));
    area.addEventListener("change", () => edit({ format_spec: area.value }));
    const wrap = h("div", { class: "vstream-format-spec-wrap" }, area);
    const update = (form) => {
      select.value = form.output_format || "";
      if (document.activeElement !== area) area.value = form.format_spec || "";
      const chosen = spec.formats.find((f) => f.name === select.value);
      area.placeholder = chosen ? chosen.hint : "";
      show(wrap, !!select.value);
    };
    const el = h("div", { class: `${cls} vstream-ctl-format-spec` }, labelled("vstream-ctl-output-format", spec.label, select, spec.tip), wrap);
    return { el, update };
  }
  return { el: h("div", { class: cls, text: `${spec.name}: no control of kind ${spec.kind}` }), update: () => {} };
}

// One column's settings: a preset choice, a control per spec, and saving a preset.
class SettingsView {
  constructor(model, index) {
    this.model = model;
    this.index = index;
    const edit = (changes) => this.edit(changes);
    this.preset = h("select", { class: "vstream-preset-select" });
    this.preset.addEventListener("change", () => {
      if (this.preset.value) model.send({ action: "preset", column: this.index, name: this.preset.value });
      else edit({});
    });
    this.controls = (model.get("controls") || []).map((spec) => buildControl(spec, edit));
    this.presetName = h("input", { type: "text", placeholder: "name", class: "vstream-preset-name" });
    const save = h("button", { class: "vstream-button vstream-save-preset", text: "save preset", onclick: () => {
      model.send({ action: "save_preset", column: this.index, name: this.presetName.value });
      this.presetName.value = "";
    } });
    this.notice = h("span", { class: "vstream-notice" });
    this.el = h("details", { class: "vstream-settings", open: true },
      h("summary", { text: "sampling" }),
      labelled("vstream-ctl vstream-ctl-preset", "preset", this.preset),
      ...this.controls.map((c) => c.el),
      h("div", { class: "vstream-preset-save" }, this.presetName, save, this.notice));
    this.update();
  }

  edit(changes) {
    const forms = [...(this.model.get("forms") || [])];
    forms[this.index] = { ...forms[this.index], ...changes, preset: "" }; // hand edits leave the preset
    this.model.set("forms", forms);
    this.model.save_changes();
  }

  update() {
    const form = (this.model.get("forms") || [])[this.index] || {};
    const names = this.model.get("preset_names") || [];
    this.preset.replaceChildren(h("option", { value: "", text: "(custom)" }), ...names.map((n) => h("option", { value: n, text: n })));
    this.preset.value = form.preset || "";
    for (const control of this.controls) control.update(form);
    const notice = (this.model.get("notices") || [])[this.index];
    this.notice.textContent = notice ? notice.text : "";
    this.notice.classList.toggle("vstream-notice-error", !!(notice && notice.error));
  }
}

// --- the panel ------------------------------------------------------------------------------

// The traits a generation reads (widget.py's GENERATE_READS, the same names).
const GENERATE_READS = ["prompt", "system", "chat", "column_count", "logprob_view", "logprob_k", "show_thinking", "forms"];

function renderPanel(model, el, store) {
  const on = (name, callback) => model.on(`change:${name}`, callback);
  const sync = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  const root = h("div", { class: "vstream-panel" });

  const status = h("div", { class: "vstream-engine-status" });
  const drawStatus = () => {
    const s = model.get("engine_status") || {};
    status.replaceChildren(h("span", { class: `vstream-sign vstream-tone-${s.tone || "muted"}`, text: s.sign || "○" }), " ", h("span", { class: "vstream-muted", text: s.text || "" }));
  };

  const textArea = (name, cls, placeholder, rows) => {
    const area = h("textarea", { placeholder, rows });
    area.addEventListener("input", () => sync(name, area.value));
    const update = () => { if (area.value !== model.get(name)) area.value = model.get(name); };
    on(name, update);
    update();
    return h("div", { class: cls }, area);
  };
  const checkbox = (name, cls, label) => {
    const input = h("input", { type: "checkbox" });
    input.addEventListener("change", () => sync(name, input.checked));
    const update = () => (input.checked = !!model.get(name));
    on(name, update);
    update();
    return h("label", { class: `vstream-check ${cls}` }, input, label);
  };

  const prompt = textArea("prompt", "vstream-prompt", "Prompt…", 3);
  const system = textArea("system", "vstream-system", "system prompt (optional)", 1);
  const columnCount = h("select", { class: "vstream-column-count" }, ...[1, 2, 3, 4].map((n) => h("option", { value: n, text: n })));
  columnCount.addEventListener("change", () => sync("column_count", Number(columnCount.value)));
  const k = h("input", { type: "number", min: 0, max: 20, step: 1, class: "vstream-logprob-k" });
  k.addEventListener("change", () => sync("logprob_k", Math.max(0, Math.min(20, Math.round(Number(k.value) || 0)))));
  const options = h("div", { class: "vstream-options" },
    checkbox("chat", "vstream-chat", "chat"),
    labelled("vstream-columns-choice", "columns", columnCount),
    checkbox("show_thinking", "vstream-show-thinking", "show thinking"),
    checkbox("logprob_view", "vstream-logprob-view", "colour by probability"),
    labelled("vstream-logprob-top", "top", k));

  const button = (cls, text, action, extra = {}) => h("button", { class: `vstream-button ${cls}`, text, onclick: () => model.send({ action }), ...extra });
  // Generate carries the settings it runs with: ipywidgets' front end holds a state update back
  // while an earlier one awaits the kernel's answer, but sends a custom message at once, so a
  // prompt typed just before the click could otherwise reach the kernel after the click.
  const generate = h("button", { class: "vstream-button vstream-generate vstream-primary", text: "Generate",
    onclick: () => model.send({ action: "generate", settings: Object.fromEntries(GENERATE_READS.map((n) => [n, model.get(n)])) }) });
  const stop = button("vstream-stop", "Stop", "stop");
  const clear = button("vstream-clear", "Clear", "clear");
  const showPrompt = h("button", { class: "vstream-button vstream-show-prompt", text: "rendered prompt", onclick: () => sync("show_prompt", !model.get("show_prompt")) });
  const exportKind = h("select", { class: "vstream-export-kind" }, h("option", { value: "%%vstream", text: "%%vstream" }), h("option", { value: "Python", text: "Python" }));
  exportKind.addEventListener("change", () => sync("export_kind", exportKind.value));
  const exportButton = button("vstream-export", "Export", "export");
  const toolbar = h("div", { class: "vstream-toolbar" }, generate, stop, clear, showPrompt, exportKind, exportButton);

  const error = h("div", { class: "vstream-error" });
  const rendered = h("div", { class: "vstream-rendered" });
  const codeArea = h("textarea", { rows: 8, readOnly: true });
  const code = h("div", { class: "vstream-code" }, codeArea);
  const history = h("div", { class: "vstream-history-view" });

  const outputs = new Outputs(model, store);
  const columnsEl = h("div", { class: "vstream-columns" });
  let settings = [];

  const drawColumns = () => {
    const count = (model.get("forms") || []).length;
    const views = outputs.resize(count);
    while (settings.length > count) settings.pop();
    while (settings.length < count) settings.push(new SettingsView(model, settings.length));
    columnsEl.classList.toggle("vstream-alone", count === 1);
    columnsEl.replaceChildren(...views.map((view, i) => h("div", { class: "vstream-column" }, view.el, settings[i].el)));
    outputs.showAll();
    drawNotes();
  };
  const drawSettings = () => {
    if (settings.length !== (model.get("forms") || []).length) drawColumns();
    else for (const s of settings) s.update();
  };
  const drawNotes = () => {
    const notes = model.get("notes") || [];
    outputs.views.forEach((view, i) => view.setNote(notes[i]));
  };
  const drawRunning = () => {
    const running = model.get("running");
    generate.disabled = running;
    generate.textContent = running ? "Generating…" : "Generate";
    stop.disabled = !running;
    columnCount.disabled = running;
  };
  const drawOptions = () => {
    columnCount.value = String(model.get("column_count"));
    k.value = model.get("logprob_k");
    exportKind.value = model.get("export_kind");
    showPrompt.classList.toggle("vstream-pressed", !!model.get("show_prompt"));
    const chat = !!model.get("chat");
    show(system, chat);
    show(history, chat && (model.get("chat_turns") || []).length > 0);
  };
  const drawError = () => {
    const message = model.get("error");
    error.replaceChildren(...(message ? [h("div", { class: "vstream-error-box", text: `⚠ ${message}` })] : []));
  };
  const drawRendered = () => {
    const r = model.get("rendered_prompt") || {};
    if (r.note) rendered.replaceChildren(h("div", { class: "vstream-muted", text: r.note }));
    else if (r.text !== undefined) rendered.replaceChildren(h("div", { class: "vstream-muted", text: `rendered prompt · ${r.tokens} tokens` }), h("pre", { class: "vstream-text", text: r.text }));
    else rendered.replaceChildren();
  };
  const drawCode = () => {
    codeArea.value = model.get("exported_code");
    show(code, !!model.get("exported_code"));
  };
  const drawHistory = () => {
    const labels = { user: "You", assistant: "Model", system: "System" };
    const turns = (model.get("chat_turns") || []).map((m) =>
      h("div", { class: `vstream-turn vstream-${m.role === "user" ? "user" : m.role === "assistant" ? "assistant" : "other"}` },
        h("b", { text: labels[m.role] || m.role }), h("pre", { class: "vstream-text", text: m.content })));
    history.replaceChildren(...(turns.length ? [h("div", { class: "vstream-history" }, ...turns)] : []));
    drawOptions();
  };

  on("engine_status", drawStatus);
  on("forms", drawSettings);
  on("preset_names", drawSettings);
  on("notices", drawSettings);
  on("notes", drawNotes);
  on("running", drawRunning);
  on("error", drawError);
  on("rendered_prompt", drawRendered);
  on("exported_code", drawCode);
  on("chat_turns", drawHistory);
  on("results", () => outputs.resultsChanged());
  on("show_thinking", () => outputs.setHideThinking(!model.get("show_thinking")));
  for (const name of ["column_count", "logprob_k", "export_kind", "show_prompt", "chat"]) on(name, drawOptions);

  root.append(status, prompt, system, options, toolbar, error, rendered, code, history, columnsEl);
  el.append(root);
  drawStatus(); drawColumns(); drawRunning(); drawOptions(); drawError(); drawRendered(); drawCode(); drawHistory();
  return outputs;
}

// The magic's live view: the same columns, nothing else.
function renderStream(model, el, store) {
  const outputs = new Outputs(model, store);
  const draw = () => {
    const count = Math.max(1, (model.get("results") || []).length, store.columns.length);
    outputs.resize(count);
    outputs.el.replaceChildren(...outputs.views.map((view) => h("div", { class: "vstream-card-live" }, view.el)));
    outputs.showAll();
  };
  model.on("change:results", () => outputs.resultsChanged());
  el.append(h("div", { class: "vstream-stream-view" }, outputs.el));
  draw();
  outputs.redraw = draw;
  return outputs;
}

export default {
  initialize({ model }) {
    storeOf(model, true); // from the model's first message on, whether or not a view exists yet
  },
  render({ model, el }) {
    const store = storeOf(model);
    const outputs = model.get("view") === "stream" ? renderStream(model, el, store) : renderPanel(model, el, store);
    const listener = (msg) => {
      if (msg.type === "start" && outputs.redraw) outputs.redraw();
      else outputs.receive(msg);
    };
    store.listeners.add(listener);
    return () => {
      store.listeners.delete(listener);
      if (!store.fromInitialize) STORES.delete(model.get("instance_id"));
    };
  },
};
