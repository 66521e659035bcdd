// The help page's statements in a real browser (issue 17), run by services/e2e/tests/web_browser.rs
// against the real processes: headless Debian Chromium driven by playwright-core (no browser
// download), the page at APP_URL (http://app.test, resolved by Chromium to the web edge on
// WEB_PORT). Every step saves a screenshot in ARTIFACTS; axe-core checks each page for serious
// or critical accessibility violations. No sleeps: every wait is for an element or a state.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run through services/e2e/tests/web_browser.rs)`);
  return v;
};
const APP = env("APP_URL");
const WEB_PORT = env("WEB_PORT");
const SANDBOX = env("SANDBOX_URL");
const WS = env("RP_WORKSPACE");
const KEY = env("RP_API_KEY");
const OUT = env("ARTIFACTS");
const WAIT = 90_000;

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
mkdirSync(OUT, { recursive: true });

let browser;
let shotNo = 0;
const axeReport = [];

async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, locale: "en-US", timezoneId: "UTC" });
  // axe-core goes in through the DevTools protocol, so the page's CSP stays as it is.
  await context.addInitScript({ content: axeSource });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("console", (m) => m.type() === "error" && console.error(`[page console] ${m.text()}`));
  return page;
}

async function shot(page, name) {
  const path = `${OUT}/${String(++shotNo).padStart(2, "0")}-${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** axe-core on the page as it is: no serious or critical violation. */
async function axe(page, name) {
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  axeReport.push({ page: name, violations });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${name}: serious or critical accessibility violations`);
}

async function admin(method, path, body) {
  const res = await fetch(`${SANDBOX}/admin${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `sandbox admin ${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json().catch(() => null);
}

async function signIn(page) {
  await page.goto(`${APP}/`);
  await page.getByLabel("Workspace id").fill(WS);
  await page.getByLabel("API key").fill(KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Connections", level: 1 }).waitFor();
}

const card = (page, provider) => page.locator(`article[data-provider="${provider}"]`);
const field = (scope, name) => scope.locator(`[data-field="${name}"]`);
const nav = (page, name) => page.getByRole("navigation").getByRole("link", { name });

/** Marks the document, so that a later check can tell it was never reloaded. */
const mark = (page) => page.evaluate(() => (window.__sameDocument = true));
const sameDocument = (page) => page.evaluate(() => window.__sameDocument === true);

async function dealsNumber(page) {
  const n = page.locator('[data-metric="deals"] .number');
  await n.waitFor();
  return Number(await n.textContent());
}

let page; // the main tab
let hubspotId;

before(async () => {
  browser = await chromium.launch({
    executablePath: env("CHROMIUM"),
    headless: true,
    args: [`--host-resolver-rules=MAP app.test:80 127.0.0.1:${WEB_PORT}`],
  });
  page = await newPage();
});

after(async () => {
  writeFileSync(`${OUT}/axe.json`, JSON.stringify(axeReport, null, 2));
  await browser?.close();
});

test("signing in keeps the key out of the URL and shows the Connections page", async () => {
  await page.goto(`${APP}/`);
  await page.getByLabel("Workspace id").waitFor();
  await axe(page, "sign-in");
  await shot(page, "sign-in");
  await signIn(page);
  assert.ok(!page.url().includes(KEY), "the key is not in the URL");
  assert.equal(new URL(page.url()).pathname, "/workspace/connections");
  await page.getByRole("button", { name: "Connect HubSpot" }).waitFor();
  await axe(page, "connections-empty");
  await shot(page, "connections-empty");
});

test("Connect HubSpot goes through the sandbox's OAuth pages and comes back Connected", async () => {
  const visited = [];
  page.on("framenavigated", (f) => f === page.mainFrame() && visited.push(f.url()));
  await page.getByRole("button", { name: "Connect HubSpot" }).click();
  await field(page, "oauth-result").filter({ hasText: "HubSpot is connected" }).waitFor();
  // The callback connects nothing itself: it hands the page a single-use completion, which the
  // page completes with this workspace's key (CompleteConnect) and then drops from the address.
  assert.ok(visited.some((u) => u.startsWith(`${APP}/workspace/connections?status=authorized`) && u.includes("completion=")), `landed from the callback: ${visited}`);
  const hubspot = card(page, "hubspot");
  await field(hubspot, "status").filter({ hasText: "Connected" }).waitFor();
  assert.ok(!page.url().includes("status=") && !page.url().includes("completion="), "the OAuth result is not left in the address bar");
  hubspotId = (await hubspot.getAttribute("id")).replace("integration-", "");
  assert.match(await field(hubspot, "next-sync").textContent(), /\d/, "a next scheduled sync");
  assert.equal(await field(hubspot, "last-sync").textContent(), "never");
  await axe(page, "connections-connected");
  await shot(page, "hubspot-connected");
});

test("before the first sync the dashboard says why it has no numbers", async () => {
  await nav(page, "Dashboard").click();
  const error = field(page, "dashboard-error");
  await error.waitFor();
  assert.ok((await error.textContent()).length > 10, "the server's message");
  await shot(page, "dashboard-before-first-sync");
  await nav(page, "Connections").click();
});

test("Sync Now: the step changes live and the last sync time updates without a reload", async () => {
  const hubspot = card(page, "hubspot");
  await mark(page);
  // Every step the page shows while the sync runs.
  await page.evaluate(() => {
    window.__steps = [];
    const dd = document.querySelector('article[data-provider="hubspot"] [data-field="step"]');
    new MutationObserver(() => {
      const t = dd.textContent;
      if (t && window.__steps.at(-1) !== t) window.__steps.push(t);
    }).observe(dd, { childList: true, characterData: true, subtree: true });
  });
  // HubSpot answers a little slowly (as it does), so each step is on screen long enough to see.
  await admin("PUT", "/providers/hubspot/latency", { ms: 100 });
  await hubspot.getByRole("button", { name: "Sync Now" }).click();
  await field(hubspot, "message").filter({ hasText: "sync started" }).waitFor();
  await field(hubspot, "step").filter({ hasText: /\w/ }).waitFor();
  await shot(page, "sync-running");
  await page.waitForFunction(() => {
    const c = document.querySelector('article[data-provider="hubspot"]');
    return c.dataset.running === "no" && c.querySelector('[data-field="last-sync"]').textContent !== "never";
  }, null, { timeout: WAIT });
  await admin("PUT", "/providers/hubspot/latency", { ms: 0 });
  const steps = await page.evaluate(() => window.__steps);
  console.log(`steps shown while the sync ran: ${JSON.stringify(steps)}`);
  assert.ok(steps.length >= 2, `the current step changed while it ran: ${JSON.stringify(steps)}`);
  assert.match(await field(hubspot, "last-attempt").textContent(), /Completed/);
  assert.ok(await sameDocument(page), "no reload");
  await shot(page, "sync-completed");
});

test("the dashboard's number changes when a sync completes, without a reload", async () => {
  await nav(page, "Dashboard").click();
  const before = await dealsNumber(page);
  const asOf = await field(page, "as-of").textContent();
  await axe(page, "dashboard");
  await shot(page, "dashboard");
  await mark(page);
  await admin("POST", "/crm/deals", { name: "Browser test deal", amount: "1234.00", currency: "USD" });
  // A teammate clicks Sync Now in another tab; this one stays on the dashboard.
  const other = await newPage();
  await signIn(other);
  await card(other, "hubspot").getByRole("button", { name: "Sync Now" }).click();
  await page.locator('[data-metric="deals"] .number').filter({ hasText: String(before + 1) }).waitFor();
  assert.notEqual(await field(page, "as-of").textContent(), asOf, "a newer as-of time");
  assert.ok(await sameDocument(page), "no reload");
  await shot(page, "dashboard-after-sync");
  await other.context().close();
});

test("a HubSpot outage interrupts a sync: still Connected, the bell says it retries by itself, and the next sync resolves it", async () => {
  await nav(page, "Connections").click();
  const hubspot = card(page, "hubspot");
  await admin("PUT", "/providers/hubspot/outage", { mode: "503" });
  try {
    await hubspot.getByRole("button", { name: "Sync Now" }).click();
    await field(hubspot, "last-attempt").filter({ hasText: "Failed (provider outage)" }).waitFor();
  } finally {
    await admin("DELETE", "/providers/hubspot/outage");
  }
  assert.equal(await field(hubspot, "status").textContent(), "Connected", "an outage is not the user's to fix");
  const bell = page.getByRole("button", { name: /^Notifications, \d+ unread$/ });
  await bell.click();
  const panel = page.locator("#bell-panel");
  const item = panel.locator(`li[data-integration="${hubspotId}"]`).filter({ hasText: /interrupted/i }).first();
  await item.waitFor();
  assert.match(await item.textContent(), /HubSpot/);
  assert.match(await item.textContent(), /retry automatically/i);
  await shot(page, "bell-sync-interrupted");
  await bell.click();
  // The provider is back: Sync Now completes, and the bell says the interruption is over.
  await hubspot.getByRole("button", { name: "Sync Now" }).click();
  await field(hubspot, "last-attempt").filter({ hasText: "Completed" }).waitFor();
  await bell.click();
  await panel.locator(`li[data-integration="${hubspotId}"]`).filter({ hasText: /resumed/i }).first().waitFor();
  await shot(page, "bell-sync-resumed");
  await bell.click();
});

test("revoked in HubSpot: a sync shows Disconnected with what to do, and the bell's link lands on the integration", async () => {
  await nav(page, "Connections").click();
  const hubspot = card(page, "hubspot");
  await admin("POST", "/providers/hubspot/grants/revoke");
  await hubspot.getByRole("button", { name: "Sync Now" }).click();
  await field(hubspot, "status").filter({ hasText: "Disconnected" }).waitFor();
  assert.match(await field(hubspot, "reason").textContent(), /revoked|expired/i);
  assert.match(await field(hubspot, "todo").textContent(), /Reconnect/);
  assert.match(await field(hubspot, "next-sync").textContent(), /syncing has stopped/);
  await hubspot.getByRole("button", { name: "Reconnect" }).waitFor();
  await shot(page, "hubspot-disconnected");

  const bell = page.getByRole("button", { name: /^Notifications, \d+ unread$/ });
  await bell.waitFor();
  await bell.click();
  const panel = page.locator("#bell-panel");
  const item = panel.locator(`li[data-integration="${hubspotId}"]`).filter({ hasText: /disconnected/i }).first();
  await item.waitFor();
  await axe(page, "bell-open");
  await shot(page, "bell");
  const unreadBefore = Number(await field(page, "unread").textContent());
  await item.getByRole("button", { name: "Mark read" }).click();
  await page.getByRole("button", { name: unreadBefore - 1 > 0 ? `Notifications, ${unreadBefore - 1} unread` : "Notifications, none unread" }).waitFor();
  await item.getByRole("link", { name: /Open Connections/ }).click();
  await page.waitForURL(`${APP}/workspace/connections#integration-${hubspotId}`);
  await page.locator(`#integration-${hubspotId}.focused`).waitFor();
  await shot(page, "bell-link-landed");
});

test("Reconnect goes through OAuth again and HubSpot is Connected", async () => {
  const hubspot = card(page, "hubspot");
  await hubspot.getByRole("button", { name: "Reconnect" }).click();
  await field(page, "oauth-result").filter({ hasText: "connected again" }).waitFor();
  await field(card(page, "hubspot"), "status").filter({ hasText: "Connected" }).waitFor();
  await shot(page, "hubspot-reconnected");
});

test("changing the daily time moves the next sync", async () => {
  const hubspot = card(page, "hubspot");
  const nextBefore = await field(hubspot, "next-sync").textContent();
  const current = await field(hubspot, "schedule-time").inputValue();
  const time = current === "23:45" ? "22:15" : "23:45";
  await field(hubspot, "schedule-time").fill(time);
  await field(hubspot, "schedule-zone").fill("Europe/Berlin");
  await hubspot.getByRole("button", { name: "Save schedule" }).click();
  await field(hubspot, "message").filter({ hasText: `daily at ${time} (Europe/Berlin)` }).waitFor();
  const next = field(hubspot, "next-sync");
  await next.filter({ hasText: "Europe/Berlin" }).waitFor();
  const nextAfter = await next.textContent();
  assert.notEqual(nextAfter, nextBefore);
  const [hh, mm] = time.split(":").map(Number);
  const shown = `${((hh + 11) % 12) + 1}:${String(mm).padStart(2, "0")} ${hh < 12 ? "AM" : "PM"}`;
  assert.ok(nextAfter.includes(shown), `next sync at ${shown} Berlin time: ${nextAfter}`);
  await shot(page, "schedule-changed");
});

test("Disconnect asks first, stops syncing and keeps the dashboard's history", async () => {
  await nav(page, "Dashboard").click();
  const deals = await dealsNumber(page);
  await nav(page, "Connections").click();
  const hubspot = card(page, "hubspot");
  await hubspot.getByRole("button", { name: "Disconnect" }).click();
  const dialog = page.getByRole("dialog", { name: "Disconnect HubSpot?" });
  await dialog.waitFor();
  await axe(page, "disconnect-dialog");
  await shot(page, "disconnect-confirm");
  await dialog.getByRole("button", { name: "Cancel" }).click();
  assert.equal(await field(hubspot, "status").textContent(), "Connected", "Cancel changes nothing");
  await hubspot.getByRole("button", { name: "Disconnect" }).click();
  await dialog.getByRole("button", { name: "Disconnect HubSpot" }).click();
  await field(hubspot, "status").filter({ hasText: "Disconnected" }).waitFor();
  await shot(page, "hubspot-disconnected-by-user");
  await nav(page, "Dashboard").click();
  assert.equal(await dealsNumber(page), deals, "the data already synced stays");
  await shot(page, "dashboard-after-disconnect");
});

test("at phone width (390 px) the page fits and stays usable", async () => {
  const phone = await newPage({ width: 390, height: 844 });
  await signIn(phone);
  await card(phone, "hubspot").waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px too wide)`);
  await axe(phone, "connections-phone");
  await shot(phone, "phone-connections");
  await phone.getByRole("button", { name: /^Notifications/ }).click();
  await shot(phone, "phone-bell");
  await phone.context().close();
});

test("a connect link someone else started connects nothing, in their workspace or this one", async () => {
  // FORWARDED_URL is a Salesforce authorize link started in another workspace (the attacker's)
  // and sent to this person, who is signed in to their own workspace and clicks it (issue 15.8).
  const victim = await newPage();
  await signIn(victim);
  await card(victim, "hubspot").waitFor();
  await victim.goto(env("FORWARDED_URL"));
  const result = field(victim, "oauth-result").filter({ hasText: "Connecting did not complete" });
  await result.waitFor();
  assert.match(await result.textContent(), /someone sent you/, "it says what happened and what to do");
  assert.ok(!victim.url().includes("completion="), "the completion is not left in the address bar");
  assert.equal(await card(victim, "salesforce").count(), 0, "no Salesforce integration appeared here");
  await axe(victim, "forwarded-link-refused");
  await shot(victim, "forwarded-link-refused");
  await victim.context().close();
});
