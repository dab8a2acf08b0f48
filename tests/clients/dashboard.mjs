// Drive the dashboard in headless Chromium (Debian's /usr/bin/chromium via playwright-core).
// Usage: node dashboard.mjs <playwright-core dir> <base url> <artifacts dir> [token]
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
const outside = [];
try {
  // (an https base uses a certificate made for the test; node's own fetch trusts it through
  // NODE_EXTRA_CA_CERTS)
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => { if (!r.url().startsWith(base)) outside.push(r.url()); });
  const api = async (path, body) => {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
    return r.status;
  };

  await page.goto(base + "/");
  if (token) {
    // Sign-in: a wrong token is refused, the right one is traded for the cookie.
    await page.waitForSelector("#login-form", { state: "visible" });
    await page.fill("#token", "wrong-" + token);
    await page.click("#login-form button");
    await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("refused"));
    check(await page.isHidden("#app"), "the app showed after a wrong token");
    await page.fill("#token", token);
    await page.click("#login-form button");
    await page.waitForSelector("#app", { state: "visible" });
    check((await page.textContent("#who")).includes("signed in"), "not shown as signed in");
    check(await page.isVisible("#signout"), "no sign-out");
    const stored = await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + location.href);
    check(!stored.includes(token), "the token was kept in storage or the URL");
    const cookies = await ctx.cookies();
    check(cookies.some((c) => c.name === "claude_bridge_session" && c.httpOnly), "no HttpOnly session cookie");
  }
  await page.waitForSelector("#conn.on");
  check((await page.textContent("#addr")) === new URL(base).host, "the relay's address is not shown");

  // A message sent through the API shows up live in the selected channel.
  check((await api("/api/send", { channel: "web:main", sender: "agent-a", content: "hello from the API" })) === 200, "send failed");
  await page.waitForSelector('.chan[data-channel="web:main"]', { timeout: 10000 });
  await page.click('.chan[data-channel="web:main"]');
  await page.waitForSelector(".msg");
  const t0 = Date.now();
  check((await api("/api/send", { channel: "web:main", sender: "agent-b", content: '{"type":"status","ok":true}' })) === 200, "send failed");
  await page.waitForFunction(() => [...document.querySelectorAll(".msg .sender")].some((e) => e.textContent === "agent-b"));
  const liveMs = Date.now() - t0;
  check(liveMs < 1000, `a live message took ${liveMs} ms`);
  check((await page.textContent(".msg:last-child .type")) === "status", "the JSON type is not shown");
  await page.waitForFunction(() => document.querySelector("#channel-info").textContent === "2 messages");

  // The composer: invalid JSON that looks like JSON is warned about, valid JSON is sent and
  // then shown pretty-printed in the inspector.
  await page.fill("#sender", "human");
  await page.fill("#content", '{"type": "note", broken');
  await page.press("#content", "Control+Enter");
  await page.waitForFunction(() => document.querySelector("#compose-warning").textContent.includes("JSON"));
  check((await page.$$(".msg")).length === 2, "invalid JSON was sent silently");
  await page.fill("#content", '{"type":"review.done","files":["a.rs","b.rs"],"ok":true}');
  await page.press("#content", "Control+Enter");
  await page.waitForFunction(() => [...document.querySelectorAll(".msg .sender")].some((e) => e.textContent === "human"));
  await page.click(".msg:last-child");
  await page.waitForSelector("#inspector", { state: "visible" });
  const detail = await page.textContent("#detail");
  check(detail.includes('"files": [\n    "a.rs"'), "the inspector does not pretty-print JSON: " + detail);
  check((await page.$$("#detail .j-key")).length >= 3, "no JSON highlighting");
  const meta = await page.textContent("#meta");
  check(meta.includes("human") && meta.includes("bytes") && meta.includes("seq"), "inspector metadata: " + meta);
  await page.screenshot({ path: artifacts + "/dashboard-desktop.png", fullPage: true });

  // Clear, behind a confirmation: dismissed keeps everything, accepted empties the channel.
  page.once("dialog", (d) => d.dismiss());
  await page.click("#clear");
  await page.waitForTimeout(300);
  check((await page.$$(".msg")).length === 3, "a dismissed confirmation still cleared");
  page.once("dialog", (d) => d.accept());
  await page.click("#clear");
  await page.waitForFunction(() => document.querySelectorAll(".msg").length === 0);

  // Phone width: no horizontal scroll.
  check((await api("/api/send", { channel: "web:phone-check", sender: "a-sender-with-a-long-name", content: "x".repeat(300) })) === 200, "send failed");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForSelector('.chan[data-channel="web:phone-check"]', { timeout: 10000 });
  await page.click('.chan[data-channel="web:phone-check"]');
  await page.waitForSelector(".msg");
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  check(widths[0] <= widths[1], `horizontal scroll at 390 px: ${widths}`);
  await page.screenshot({ path: artifacts + "/dashboard-phone.png", fullPage: true });

  if (token) {
    await page.click("#signout");
    await page.waitForSelector("#login-form", { state: "visible" });
  }
  // With a token, the browser logs the sign-in protocol's expected 401s (not signed in yet, the
  // wrong token, after sign-out) as failed loads; anything else is an error.
  const unexpected = errors.filter((e) => !(token && e.includes("status of 401")));
  check(unexpected.length === 0, "console errors: " + unexpected.join(" | "));
  check(outside.length === 0, "requests outside the relay: " + outside.join(" "));
  console.log(JSON.stringify({ ok: true, live_ms: liveMs }));
} finally {
  await browser.close();
}
