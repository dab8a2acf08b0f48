// claude-bridge dashboard: channels, a live feed over /events/channel/…, an inspector and a
// composer. Plain JS, no build step, nothing fetched from outside the relay. Untrusted text is
// only ever put in the page with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { channel: null, events: null, selected: null, lastId: null, pendingWarning: null, online: false, counts: {}, refreshing: null };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function hue(s) {
  let h = 0;
  for (const c of s) h = (h * 31 + c.codePointAt(0)) % 360;
  return h;
}

function localTime(ts) {
  const d = new Date(ts);
  return isNaN(d) ? ts : d.toLocaleString();
}

async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({}, headers || {}), credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  return { status: r.status, data };
}

function setOnline(on) {
  state.online = on;
  const c = $("conn");
  c.textContent = on ? "online" : "offline — reconnecting";
  c.className = "pill " + (on ? "on" : "off");
}

// ---- sign-in -------------------------------------------------------------------------------

async function start() {
  $("addr").textContent = location.host;
  const s = await api("GET", "/api/session").catch(() => ({ status: 0 }));
  if (s.status === 401) return showLogin();
  if (s.status !== 200) { setOnline(false); setTimeout(start, 2000); return; }
  showApp(s.data && s.data.auth_required);
}

function showLogin() {
  $("login").hidden = false;
  $("app").hidden = true;
  $("token").focus();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("token");
  const token = input.value.trim();
  input.value = ""; // never kept in the page
  const r = await api("POST", "/api/session", undefined, { Authorization: "Bearer " + token });
  if (r.status === 200) {
    $("login-error").textContent = "";
    $("login").hidden = true;
    showApp(true);
  } else {
    $("login-error").textContent = "That token was refused.";
  }
});

$("signout").addEventListener("click", async () => {
  await api("DELETE", "/api/session");
  location.reload();
});

function showApp(authRequired) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("app").classList.add("no-inspector");
  if (authRequired) {
    $("who").textContent = "signed in";
    $("signout").hidden = false;
  }
  refresh();
  setInterval(refresh, 5000);
}

// ---- channels and status -------------------------------------------------------------------

async function refresh() {
  let r;
  try { r = await api("GET", "/api/state"); } catch (_) { setOnline(false); return; }
  if (r.status === 401) { location.reload(); return; }
  if (r.status !== 200 || !r.data) { setOnline(false); return; }
  setOnline(true);
  const s = r.data;
  $("totals").textContent = `${s.total_messages} messages · ${s.channels.length} channels`;
  $("uptime").textContent = "up " + s.uptime_human;
  state.counts = Object.fromEntries(s.channels.map((c) => [c.id, c.count]));
  showCount();
  renderChannels(s.channels);
  const senders = new Set();
  s.channels.forEach((c) => c.senders.forEach((x) => senders.add(x)));
  const dl = $("senders");
  dl.replaceChildren(...[...senders].sort().map((x) => { const o = el("option"); o.value = x; return o; }));
}

function renderChannels(channels) {
  const nav = $("channels");
  if (!channels.length) { nav.replaceChildren(el("p", "muted", "No channels yet.")); return; }
  const groups = new Map();
  for (const c of channels) {
    const g = c.group || "(no project)";
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(c);
  }
  const parts = [];
  for (const [g, list] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
    parts.push(el("h3", null, g));
    for (const c of list) {
      const b = el("button", "chan" + (c.id === state.channel ? " active" : ""));
      b.type = "button";
      b.dataset.channel = c.id;
      b.append(el("span", "name", c.group ? c.name : c.id));
      b.append(el("span", "sub", `${c.count} · ${localTime(c.last_ts_full)}`));
      b.append(el("span", "sub", c.senders.join(", ")));
      b.addEventListener("click", () => selectChannel(c.id));
      parts.push(b);
    }
  }
  nav.replaceChildren(...parts);
}

function showCount() {
  if (!state.channel) return;
  const n = state.counts[state.channel] || 0;
  $("channel-info").textContent = `${n} message${n === 1 ? "" : "s"}`;
}

// A live message moves the sidebar's counts too; refresh at most every half second for that.
function refreshSoon() {
  if (state.refreshing) return;
  state.refreshing = setTimeout(() => { state.refreshing = null; refresh(); }, 500);
}

// ---- the feed --------------------------------------------------------------------------------

function messageType(content) {
  const t = content.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return null;
  try {
    const v = JSON.parse(t);
    return v && typeof v.type === "string" ? v.type : "json";
  } catch (_) { return null; }
}

function renderMessage(m) {
  const li = el("li", "msg");
  li.dataset.id = m.id;
  li.style.borderLeftColor = `hsl(${hue(m.sender)} 60% 45%)`;
  const head = el("div", "head");
  const who = el("span", "sender", m.sender);
  who.style.color = `hsl(${hue(m.sender)} 60% 35%)`;
  head.append(el("span", "seq", "#" + m.seq), who, el("span", "time", localTime(m.ts || m.timestamp)));
  const type = messageType(m.content);
  if (type) {
    const t = el("span", "type", type);
    t.style.background = `hsl(${hue(type)} 70% 90%)`;
    head.append(t);
  }
  li.append(head, el("div", "body", m.content));
  li.addEventListener("click", () => inspect(m.id, li));
  return li;
}

function append(m) {
  const feed = $("feed");
  if (feed.querySelector(`[data-id="${CSS.escape(m.id)}"]`)) return;
  feed.append(renderMessage(m));
  state.lastId = m.id;
  feed.scrollTop = feed.scrollHeight;
}

async function selectChannel(id) {
  if (state.events) { state.events.close(); state.events = null; }
  state.channel = id;
  state.lastId = null;
  $("channel-name").textContent = id;
  $("compose-channel").value = id;
  $("clear").disabled = false;
  $("feed").replaceChildren();
  document.querySelectorAll(".chan").forEach((b) => b.classList.toggle("active", b.dataset.channel === id));
  const r = await api("GET", `/api/messages?channel=${encodeURIComponent(id)}&full=true&limit=200`);
  if (r.status !== 200 || state.channel !== id) return;
  r.data.messages.forEach(append);
  showCount();
  follow(id);
}

function follow(id) {
  const q = state.lastId ? `?since_id=${encodeURIComponent(state.lastId)}` : "";
  const es = new EventSource(`/events/channel/${encodeURIComponent(id)}${q}`);
  state.events = es;
  es.onopen = () => setOnline(true);
  es.onerror = () => setOnline(false); // EventSource reconnects by itself, with Last-Event-ID
  es.addEventListener("message", (ev) => {
    const d = JSON.parse(ev.data);
    append({ id: ev.lastEventId || d.id, seq: d.seq, sender: d.sender, content: d.content, ts: d.timestamp });
    refreshSoon();
  });
  es.addEventListener("clear", () => { $("feed").replaceChildren(); closeInspector(); refresh(); });
  es.addEventListener("replay_truncated", () => { es.close(); follow(id); });
}

// ---- inspector --------------------------------------------------------------------------------

function highlight(value, indent) {
  // Pretty-printed JSON as DOM nodes (no HTML parsing of the content).
  const pad = "  ".repeat(indent);
  const frag = document.createDocumentFragment();
  const text = (s) => frag.append(document.createTextNode(s));
  const span = (cls, s) => frag.append(el("span", cls, s));
  if (Array.isArray(value)) {
    if (!value.length) { text("[]"); return frag; }
    text("[\n");
    value.forEach((v, i) => { text(pad + "  "); frag.append(highlight(v, indent + 1)); text(i + 1 < value.length ? ",\n" : "\n"); });
    text(pad + "]");
  } else if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) { text("{}"); return frag; }
    text("{\n");
    keys.forEach((k, i) => {
      text(pad + "  "); span("j-key", JSON.stringify(k)); text(": ");
      frag.append(highlight(value[k], indent + 1));
      text(i + 1 < keys.length ? ",\n" : "\n");
    });
    text(pad + "}");
  } else if (typeof value === "string") span("j-str", JSON.stringify(value));
  else if (typeof value === "number") span("j-num", String(value));
  else span("j-lit", String(value));
  return frag;
}

async function inspect(id, li) {
  document.querySelectorAll(".msg.selected").forEach((x) => x.classList.remove("selected"));
  li.classList.add("selected");
  const r = await api("GET", `/api/messages/${encodeURIComponent(id)}`);
  if (r.status !== 200) return;
  const m = r.data;
  const meta = $("meta");
  const rows = [["id", m.id], ["seq", m.seq], ["channel", m.channel], ["sender", m.sender],
    ["time", localTime(m.ts)], ["size", `${m.bytes} bytes`]];
  meta.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, String(v))]));
  const pre = $("detail");
  if (m.is_json && m.content_parsed !== undefined) pre.replaceChildren(highlight(m.content_parsed, 0));
  else pre.textContent = m.content;
  $("inspector").hidden = false;
  $("app").classList.remove("no-inspector");
}

function closeInspector() {
  $("inspector").hidden = true;
  $("app").classList.add("no-inspector");
}
$("close-inspector").addEventListener("click", closeInspector);

// ---- composer and clear ---------------------------------------------------------------------------

$("content").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    $("composer").requestSubmit();
  }
});
$("content").addEventListener("input", () => { $("compose-warning").textContent = ""; state.pendingWarning = null; });

$("composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const content = $("content").value;
  const channel = $("compose-channel").value.trim();
  const sender = $("sender").value.trim();
  const t = content.trim();
  if ((t.startsWith("{") || t.startsWith("[")) && state.pendingWarning !== content) {
    try { JSON.parse(t); } catch (e) {
      $("compose-warning").textContent = `This looks like JSON but does not parse (${e.message}). Send again to send it as text.`;
      state.pendingWarning = content;
      return;
    }
  }
  const r = await api("POST", "/api/send", { channel, sender, content });
  if (r.status !== 200) {
    $("compose-warning").textContent = (r.data && (r.data.message || r.data.error)) || `Send failed (${r.status}).`;
    return;
  }
  $("content").value = "";
  $("compose-warning").textContent = "";
  state.pendingWarning = null;
  if (channel !== state.channel) { await refresh(); selectChannel(channel); }
});

$("clear").addEventListener("click", async () => {
  const ch = state.channel;
  if (!ch || !confirm(`Delete every message in ${ch}? This cannot be undone.`)) return;
  const r = await api("POST", "/api/clear", { channel: ch });
  if (r.status === 200) { $("feed").replaceChildren(); closeInspector(); refresh(); }
});

start();
