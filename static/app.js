// claude-bridge dashboard: the roster and the channels, kept live by the relay-wide stream
// /events/relay (no polling: /api/state and /api/agents are read when that stream says
// `ready`, at start and after each reconnect), a live feed of the selected channel over
// /events/channel/…, an inspector and a composer. Plain JS, no build step, nothing fetched
// from outside the relay. Untrusted text is only ever put in the page with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  channel: null, events: null, selected: null, lastId: null, pendingWarning: null, online: false,
  channels: new Map(), roster: new Map(), feed: null, up: null, drawing: null,
};

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

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
  showApp(s.data && s.data.auth_required, s.data && s.data.agent);
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
    showApp(true, r.data && r.data.agent);
  } else {
    $("login-error").textContent = "That token was refused.";
  }
});

$("signout").addEventListener("click", async () => {
  await api("DELETE", "/api/session");
  location.reload();
});

function showApp(authRequired, agent) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("app").classList.add("no-inspector");
  if (authRequired) {
    $("who").textContent = agent ? `signed in as ${agent}` : "signed in";
    $("signout").hidden = false;
  }
  // An agent sends as itself only.
  if (agent) { $("sender").value = agent; $("sender").readOnly = true; }
  openFeed();
  setInterval(showUptime, 1000);
}

// ---- the relay-wide stream ----------------------------------------------------------------

function openFeed() {
  const es = new EventSource("/events/relay");
  state.feed = es;
  es.onopen = () => setOnline(true);
  es.onerror = () => {
    setOnline(false);
    // EventSource reconnects by itself after a dropped connection, but gives up on a refusal
    // (the login ended): look why, then try again.
    if (es.readyState === EventSource.CLOSED) {
      refresh();
      setTimeout(() => { if (state.feed === es) openFeed(); }, 2000);
    }
  };
  es.addEventListener("ready", () => { refresh(); loadRoster(); });
  es.addEventListener("channel", (ev) => {
    const d = JSON.parse(ev.data);
    const [group, name] = d.channel.includes(":") ? [d.channel.slice(0, d.channel.indexOf(":")), d.channel.slice(d.channel.indexOf(":") + 1)] : ["", d.channel];
    state.channels.set(d.channel, { id: d.channel, group, name, count: d.count, last_ts: d.last_ts, last_ts_full: d.last_ts_full, senders: d.senders });
    showChannelsSoon();
  });
  es.addEventListener("cleared", (ev) => {
    const d = JSON.parse(ev.data);
    state.channels.delete(d.channel);
    showChannelsSoon();
  });
  es.addEventListener("presence", (ev) => {
    const d = JSON.parse(ev.data);
    if (d.removed) state.roster.delete(d.name);
    else state.roster.set(d.name, d);
    renderRoster();
  });
}

async function loadRoster() {
  let r;
  try { r = await api("GET", "/api/agents"); } catch (_) { return; }
  if (r.status !== 200 || !r.data) return;
  state.roster = new Map(r.data.roster.map((e) => [e.name, e]));
  renderRoster();
}

function renderRoster() {
  const list = $("roster");
  const entries = [...state.roster.values()].sort((a, b) => a.name.localeCompare(b.name));
  if (!entries.length) { list.replaceChildren(el("li", "muted", "Nobody seen yet.")); return; }
  list.replaceChildren(...entries.map((e) => {
    const li = el("li", "agent");
    li.dataset.name = e.name;
    li.dataset.online = e.online ? "yes" : "no";
    const head = el("div");
    head.append(el("span", "dot" + (e.online ? " on" : "")), el("span", "name", e.name));
    li.append(head);
    const seen = e.online ? "online" : (e.last_seen ? "last seen " + localTime(e.last_seen) : "never seen");
    li.append(el("span", "sub seen", seen));
    const c = e.card || {};
    const where = [c.machine, c.repo || c.directory].filter(Boolean).join(" · ");
    if (where) li.append(el("span", "sub card", where));
    if (c.task) li.append(el("span", "sub task", c.task));
    return li;
  }));
  fillSenders();
}

function showUptime() {
  if (!state.up) return;
  const up = state.up.seconds + Math.floor((Date.now() - state.up.at) / 1000);
  const two = (n) => String(n).padStart(2, "0");
  $("uptime").textContent = `up ${two(Math.floor(up / 3600))}:${two(Math.floor(up / 60) % 60)}:${two(up % 60)}`;
}

// ---- channels and status -------------------------------------------------------------------

async function refresh() {
  let r;
  try { r = await api("GET", "/api/state"); } catch (_) { setOnline(false); return; }
  if (r.status === 401) { location.reload(); return; }
  if (r.status !== 200 || !r.data) { setOnline(false); return; }
  setOnline(true);
  const s = r.data;
  state.up = { seconds: s.uptime_seconds, at: Date.now() };
  showUptime();
  state.channels = new Map(s.channels.map((c) => [c.id, c]));
  showChannels();
}

// The sidebar, the totals, the selected channel's count and the sender suggestions, from the
// channels as last heard.
function showChannels() {
  const channels = [...state.channels.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const total = channels.reduce((n, c) => n + c.count, 0);
  $("totals").textContent = `${plural(total, "message")} · ${plural(channels.length, "channel")}`;
  showCount();
  renderChannels(channels);
  fillSenders();
}

// A busy relay sends many channel events: draw the sidebar at most ten times a second.
function showChannelsSoon() {
  if (state.drawing) return;
  state.drawing = setTimeout(() => { state.drawing = null; showChannels(); }, 100);
}

function fillSenders() {
  const senders = new Set(state.roster.keys());
  state.channels.forEach((c) => c.senders.forEach((x) => senders.add(x)));
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
      b.append(el("span", "sub", `${plural(c.count, "message")} · ${localTime(c.last_ts_full)}`));
      b.append(el("span", "sub", c.senders.join(", ")));
      b.addEventListener("click", () => selectChannel(c.id));
      parts.push(b);
    }
  }
  nav.replaceChildren(...parts);
}

function showCount() {
  if (!state.channel) return;
  const c = state.channels.get(state.channel);
  $("channel-info").textContent = plural(c ? c.count : 0, "message");
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
  });
  es.addEventListener("clear", () => { $("feed").replaceChildren(); closeInspector(); });
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
  if (channel !== state.channel) selectChannel(channel);
});

$("clear").addEventListener("click", async () => {
  const ch = state.channel;
  if (!ch || !confirm(`Delete every message in ${ch}? This cannot be undone.`)) return;
  const r = await api("POST", "/api/clear", { channel: ch });
  if (r.status === 200) { $("feed").replaceChildren(); closeInspector(); }
});

start();
