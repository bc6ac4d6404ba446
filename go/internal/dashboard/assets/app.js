// pgque's dashboard: a page over the HTTP API of `pgque serve` (docs/http.md),
// refreshed by polling.  Every value is put into the page as text, never as
// HTML, so names and payloads cannot inject markup.
"use strict";

const refreshMs = 2000;
const tokenKey = "pgque-token";
let selected = null;      // the queue shown in detail
let jobQuery = null;      // the last job lookup or list, redone on refresh

const $ = (sel) => document.querySelector(sel);

// api calls the HTTP API with the token the operator gave, if any; it
// throws the API's error message on a failure.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(tokenKey);
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = {}; }
  if (!resp.ok) {
    const e = data.error || {};
    throw new Error(`${method} ${path}: ${resp.status} ${e.code || ""} ${e.message || text}`.trim());
  }
  return data;
}

const enc = encodeURIComponent;

// el makes an element with text (or child nodes) and attributes.
function el(tag, content, attrs) {
  const e = document.createElement(tag);
  if (content instanceof Node) e.append(content);
  else if (Array.isArray(content)) e.append(...content);
  else if (content !== undefined && content !== null) e.textContent = String(content);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  return e;
}

function button(label, onclick, extra) {
  return el("button", label, Object.assign({ type: "button", onclick }, extra || {}));
}

function num(v) { return el("td", v === null || v === undefined ? "–" : Number(v).toLocaleString("en"), { class: "num" }); }

function secs(v) {
  if (v === null || v === undefined) return el("td", "–", { class: "num" });
  const s = Number(v);
  const t = s < 60 ? s.toFixed(1) + " s" : s < 3600 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h";
  return el("td", t, { class: "num" });
}

function bytes(v) {
  let n = Number(v), u = 0;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return el("td", (u ? n.toFixed(1) : n) + " " + units[u], { class: "num" });
}

function time(v) { return el("td", v ? new Date(v).toLocaleString() : "–"); }

// fill replaces a table's body with rows, or one row saying it is empty.
function fill(table, rows, empty) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const cols = table.tHead.rows[0].cells.length;
    body.append(el("tr", el("td", empty, { colspan: cols })));
  }
}

function status(text, error) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", !!error);
}

// act runs an operator's action, then refreshes; its error goes to the
// status line.
async function act(what, fn) {
  let msg, failed = false;
  try {
    await fn();
    msg = what + ": done";
  } catch (e) {
    msg = what + ": " + e.message;
    failed = true;
  }
  await refresh(true);
  status(msg, failed);
}

async function refreshQueues() {
  const { queues } = await api("GET", "/v1/queues");
  fill($("#queues"), queues.map((q) => {
    const name = el("a", q.name, { href: "#queue=" + enc(q.name) });
    const state = q.paused
      ? el("td", [el("span", "paused ", { class: "warn" }), button("Resume", () => act("resume " + q.name,
        () => api("POST", `/v1/queues/${enc(q.name)}/resume`)), { "aria-label": "Resume queue " + q.name })])
      : el("td", ["running ", button("Pause", () => act("pause " + q.name,
        () => api("POST", `/v1/queues/${enc(q.name)}/pause`)), { "aria-label": "Pause queue " + q.name })]);
    return el("tr", [el("th", name, { scope: "row" }), num(q.events_per_second), num(q.new_events), num(q.consumers),
      num(q.retry_pending), num(q.dead_letters), bytes(q.event_bytes), num(q.event_dead_tuples), state],
    { "data-queue": q.name });
  }), "No queues yet.");
  if (selected && !queues.some((q) => q.name === selected)) select(null);
}

async function refreshQueue() {
  if (!selected) return;
  const q = enc(selected);
  // Dead letters need the admin scope: a token without it still sees the
  // consumers, and the table says why it is empty.
  const [{ consumers }, dead] = await Promise.all([api("GET", `/v1/queues/${q}/consumers`),
    api("GET", `/v1/queues/${q}/dead-letters?limit=100`).then((r) => r.dead_letters, (e) => e)]);
  fill($("#consumers"), consumers.map((c) => el("tr", [
    el("th", button(c.name, () => showWorkers(c.name), { "aria-label": "Workers of " + c.name }), { scope: "row" }),
    num(c.pending_events), secs(c.lag_seconds), secs(c.batch_age_seconds),
    el("td", c.blocking_rotation ? "yes" : "no", c.blocking_rotation ? { class: "warn" } : {}),
    num(c.retry_pending), num(c.dead_letters), num(c.worker_batches)])), "No consumers.");
  if (dead instanceof Error) {
    fill($("#dead-letters"), [], "Dead letters cannot be shown: " + dead.message);
  } else fill($("#dead-letters"), dead.map((d) => el("tr", [
    el("th", String(d.id), { scope: "row" }), el("td", d.consumer), time(d.dead_at), el("td", d.reason ?? "–"),
    el("td", `#${d.message.msg_id} ${d.message.type}`),
    el("td", [
      button("Payload", () => showPayload(d), { "aria-label": "Show the payload of dead letter " + d.id }), " ",
      button("Replay", () => act("replay dead letter " + d.id, () => api("POST", `/v1/dead-letters/${d.id}/replay`)),
        { "aria-label": "Replay dead letter " + d.id })])],
  { "data-dead-letter": String(d.id) })), "No dead letters.");
  if (workersOf) await refreshWorkers();
  if (jobQuery) await jobQuery();
}

function showPayload(d) {
  const pre = $("#payload");
  pre.textContent = `dead letter ${d.id}, message ${d.message.msg_id} (${d.message.type}):\n` +
    JSON.stringify(d.message.payload, null, 2);
  pre.hidden = false;
  pre.focus();
}

let workersOf = null;
async function showWorkers(consumer) {
  workersOf = consumer;
  $("#workers-of").textContent = consumer;
  $("#workers").hidden = false;
  await refreshWorkers();
}

async function refreshWorkers() {
  const { workers } = await api("GET", `/v1/queues/${enc(selected)}/consumers/${enc(workersOf)}/workers`);
  fill($("#workers table"), workers.map((w) => el("tr", [el("th", w.name, { scope: "row" }), num(w.batch_id),
    secs(w.lease_left_seconds), secs(w.last_seen_seconds)])), "No workers.");
}

// jobRows shows message states, with a cancel button for those not done.
function jobRows(states) {
  fill($("#jobs"), states.map((s) => el("tr", [
    el("th", String(s.msg_id), { scope: "row" }), el("td", s.consumer || "–"), el("td", s.state),
    el("td", s.worker ?? "–"), num(s.retry_count), time(s.due_at), el("td", s.reason ?? "–"),
    el("td", ["done", "dead", "cancelled", "unknown"].includes(s.state) || !s.consumer ? "" :
      button("Cancel", () => act(`cancel message ${s.msg_id} for ${s.consumer}`,
        () => api("POST", `/v1/queues/${enc(selected)}/messages/${s.msg_id}/cancel?consumer=${enc(s.consumer)}`)),
      { "aria-label": `Cancel message ${s.msg_id} for ${s.consumer}` }))])), "No messages.");
}

async function refreshSchedules() {
  const { schedules } = await api("GET", "/v1/schedules");
  fill($("#schedules"), schedules.map((s) => el("tr", [el("th", s.name, { scope: "row" }), el("td", s.queue),
    el("td", s.type), el("td", s.cron ?? (s.every_seconds + " s")), time(s.next_run), num(s.runs)])), "No schedules.");
}

function select(name) {
  if (name !== selected) { jobQuery = null; workersOf = null; fill($("#jobs"), [], "Look up a message, or list by state."); }
  selected = name;
  $("#queue").hidden = !name;
  $("#queue-name").textContent = name || "";
  $("#workers").hidden = !workersOf;
  $("#payload").hidden = true;
}

// refresh reloads what the page shows; quiet leaves the status line to
// the caller (an action reports its own result).
let refreshing = null;
async function refresh(quiet) {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      await Promise.all([refreshQueues(), refreshSchedules()]);
      await refreshQueue();
      if (!quiet) status("Updated " + new Date().toLocaleTimeString());
    } catch (e) {
      status(e.message, true);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function fromHash() {
  const m = location.hash.match(/^#queue=(.+)$/);
  select(m ? decodeURIComponent(m[1]) : null);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token").value = sessionStorage.getItem(tokenKey) || "";
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("#token").value.trim();
    if (t) sessionStorage.setItem(tokenKey, t); else sessionStorage.removeItem(tokenKey);
    refresh();
  });
  $("#purge").addEventListener("click", () => {
    if (selected && confirm(`Delete every dead letter of ${selected}? They cannot be replayed afterwards.`)) {
      act("purge dead letters of " + selected, () => api("DELETE", `/v1/queues/${enc(selected)}/dead-letters`));
    }
  });
  $("#job-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("#job-id").value;
    jobQuery = async () => jobRows((await api("GET", `/v1/queues/${enc(selected)}/messages/${enc(id)}`)).consumers);
    act("look up message " + id, jobQuery);
  });
  $("#list-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const state = $("#list-state").value, consumer = $("#list-consumer").value.trim();
    const q = `state=${enc(state)}` + (consumer ? `&consumer=${enc(consumer)}` : "");
    jobQuery = async () => jobRows((await api("GET", `/v1/queues/${enc(selected)}/messages?${q}`)).messages);
    act(`list ${state} messages`, jobQuery);
  });
  window.addEventListener("hashchange", () => { fromHash(); refresh(); });
  fromHash();
  refresh();
  setInterval(refresh, refreshMs);
});
