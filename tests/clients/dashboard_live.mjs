// The dashboard stays live without polling (issue 18): in headless Chromium, signed in with the
// admin token, a new agent is added and sends its first message to a new channel; both show
// within a second without a reload, the roster shows the agent online with its card, and the
// roster panel renders at phone width. /api/state is read once (when the relay-wide stream
// says `ready`), never on a timer.
// Usage: node dashboard_live.mjs <playwright-core dir> <base url> <artifacts dir> <admin token>
// Prints one JSON line of findings; exits non-zero on the first failed check.
import { createRequire } from "node:module";

const [, , pwDir, base, artifacts, token] = process.argv;
const require = createRequire(pwDir + "/");
const { chromium } = require("playwright-core");

const fail = (msg) => { console.log(JSON.stringify({ ok: false, error: msg })); process.exit(1); };
const check = (cond, msg) => { if (!cond) fail(msg); };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
const stateReads = [];
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => { if (new URL(r.url()).pathname === "/api/state") stateReads.push(Date.now()); });
  const call = async (method, path, bearer, body) => {
    const headers = { Authorization: "Bearer " + bearer };
    if (body) headers["Content-Type"] = "application/json";
    const r = await fetch(base + path, { method, headers, body: body && JSON.stringify(body) });
    return { status: r.status, data: await r.json().catch(() => null) };
  };

  await page.goto(base + "/");
  await page.waitForSelector("#login-form", { state: "visible" });
  await page.fill("#token", token);
  await page.click("#login-form button");
  await page.waitForSelector("#app", { state: "visible" });
  await page.waitForSelector("#conn.on");
  await page.waitForFunction(() => document.querySelector("#roster").textContent.includes("Nobody"));

  // A new agent, then its first message in a new channel.
  const added = await call("POST", "/api/agents", token, { name: "newbie", grants: ["live:*=write"] });
  check(added.status === 200, "adding the agent: " + JSON.stringify(added));
  const t0 = Date.now();
  const sent = await call("POST", "/api/send", added.data.token, { channel: "live:fresh", content: "my first message" });
  check(sent.status === 200, "the agent's send: " + JSON.stringify(sent));
  await page.waitForSelector('.chan[data-channel="live:fresh"]', { timeout: 5000 });
  const channelMs = Date.now() - t0;
  await page.waitForSelector('#roster .agent[data-name="newbie"][data-online="yes"]', { timeout: 5000 });
  const agentMs = Date.now() - t0;
  check(channelMs < 1000, `the new channel took ${channelMs} ms`);
  check(agentMs < 1000, `the new agent took ${agentMs} ms`);
  await page.waitForFunction(() => document.querySelector("#totals").textContent === "1 message · 1 channel");
  check((await page.textContent('.chan[data-channel="live:fresh"]')).includes("1 message ·"), "the channel's count is not singular");

  // Its card, set through the API, shows in the roster panel.
  const card = await call("POST", "/api/card", added.data.token, { machine: "build-box", repo: "github.com/acme/app", task: "fixing the tests" });
  check(card.status === 200, "setting the card: " + JSON.stringify(card));
  await page.waitForFunction(() => {
    const e = document.querySelector('#roster .agent[data-name="newbie"]');
    return e && e.textContent.includes("build-box") && e.textContent.includes("fixing the tests");
  }, null, { timeout: 5000 });

  // A second message moves the counts live too.
  await call("POST", "/api/send", added.data.token, { channel: "live:fresh", content: "second" });
  await page.waitForFunction(() => document.querySelector("#totals").textContent === "2 messages · 1 channel");
  await page.screenshot({ path: artifacts + "/dashboard-live-desktop.png", fullPage: true });

  // Phone width: the roster panel shows, nothing scrolls sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  check(await page.isVisible('#roster .agent[data-name="newbie"] .dot.on'), "the roster panel is not shown at phone width");
  const box = await page.locator("#roster-panel").boundingBox();
  check(box && box.width > 200 && box.x >= 0 && box.x + box.width <= 390, "roster panel box at 390 px: " + JSON.stringify(box));
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  check(widths[0] <= widths[1], `horizontal scroll at 390 px: ${widths}`);
  await page.screenshot({ path: artifacts + "/dashboard-live-phone.png", fullPage: true });

  // Revoked, the agent leaves the roster, live.
  const revoked = await call("DELETE", "/api/agents/newbie", token);
  check(revoked.status === 200, "revoking: " + JSON.stringify(revoked));
  await page.waitForFunction(() => !document.querySelector('#roster .agent[data-name="newbie"]'), null, { timeout: 5000 });

  // No polling: over more than the old 5 s period, /api/state was read only when the stream
  // said `ready` (once, at start).
  const since = Date.now();
  while (Date.now() - since < 5500) await page.waitForTimeout(500);
  check(stateReads.length === 1, `/api/state was read ${stateReads.length} times`);
  const unexpected = errors.filter((e) => !e.includes("status of 401"));
  check(unexpected.length === 0, "console errors: " + unexpected.join(" | "));
  console.log(JSON.stringify({ ok: true, channel_ms: channelMs, agent_ms: agentMs, state_reads: stateReads.length }));
} finally {
  await browser.close();
}
