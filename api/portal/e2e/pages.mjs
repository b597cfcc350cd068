// Drives every page of the portal in headless Chromium as an administrator, then as an operator and a
// viewer. Checks: a reading posted through the ingest API appears on the machine's live chart within 2 s;
// a rule made in the editor is previewed on the machine's history; an alert raised by posted readings
// appears in the inbox without a reload, is acknowledged there and the API shows the acknowledgement; a
// work order made from the alert goes through its lifecycle; admin pages work; an operator sees no admin
// pages and a viewer no write controls. Every page is screenshot into the artefacts folder and checked
// with axe-core (serious or critical violations fail).
//
// Usage: node e2e/pages.mjs '<json>' with {url, key, machine, admin: {email, password}, operator: {...},
// viewer: {...}, artefacts}. Prints `alert <id>` and `work_order <id>` lines for the caller to check, and
// exits non-zero with the reasons on any failure.
import { mkdirSync } from "node:fs";
import { check, client, launch, open, signIn, until, watchedPage } from "./lib.mjs";

const config = JSON.parse(process.argv[2] || "{}");
const { url, key, machine, admin, operator, viewer, artefacts } = config;
if (!artefacts) {
  console.error("usage: pages.mjs '{\"url\", \"key\", \"machine\", \"admin\", \"operator\", \"viewer\", \"artefacts\"}'");
  process.exit(2);
}
mkdirSync(artefacts, { recursive: true });
const call = client(url);
const problems = [];
let lastTs = 0;

/** Posts one reading of `metric` through the ingest API (with the API key), at a time after the last. */
async function ingest(metric, value) {
  lastTs = Math.max(Date.now(), lastTs + 1);
  const answer = await call("POST", "/ingest", { key, body: { readings: [{ machine, metric, ts: lastTs, value }] } });
  if (answer.status !== 202) throw new Error(`ingest answered ${answer.status}: ${JSON.stringify(answer.body)}`);
}

async function asAdmin(page) {
  await signIn(page, url, admin.email, admin.password);
  await page.getByText("Live", { exact: true }).waitFor({ timeout: 15_000 });
  await check(page, artefacts, "fleet", problems);
  const token = await page.evaluate(() => sessionStorage.getItem("haltless.token"));

  // The machine page: its live chart takes a posted reading within 2 s.
  await page.getByRole("link", { name: machine, exact: true }).click();
  await page.getByRole("heading", { level: 1, name: machine }).waitFor();
  const chart = (value) => page.locator(`figure[data-metric="temp"][data-last="${value}"]`);
  // The first readings may reach the socket's feed before it reads the partitions: post until one shows.
  let warm = 20;
  await until(
    "a first reading on the live chart",
    async () => {
      warm += 0.25;
      await ingest("temp", warm);
      return (await chart(warm).count()) > 0 || (await page.locator('figure[data-metric="temp"]').count()) > 0;
    },
    30_000,
  );
  for (let i = 0; i < 3; i += 1) {
    warm += 0.25;
    await ingest("temp", warm);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  // The socket sends at most one value per series per second: the measured reading comes after a pause, so
  // that what is measured is the way from ingest to chart, not that interval.
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  const value = 42.125;
  const posted = Date.now();
  await ingest("temp", value);
  await chart(value).waitFor({ timeout: 10_000 });
  const latency = Date.now() - posted;
  console.log(`live chart: the reading posted appeared after ${latency} ms`);
  if (latency > 2_000) problems.push(`the posted reading took ${latency} ms to reach the live chart (more than 2 s)`);
  const points = Number(await page.locator('figure[data-metric="temp"]').getAttribute("data-points"));
  if (points < 2) problems.push(`the live chart holds ${points} points`);
  await check(page, artefacts, "machine", problems);

  // A history range through the bucketed readings API.
  await page.getByLabel("Range", { exact: true }).selectOption("3600");
  await page.getByText(/buckets of 9 s/).waitFor({ timeout: 10_000 });

  // A rule made in the editor, previewed on the machine's history before it is saved.
  await open(page, "/rules/new", "New rule");
  await page.getByLabel("Name", { exact: true }).fill("Overheating");
  await page.getByLabel("Severity").selectOption("critical");
  await page.getByLabel("Condition (JSON)").fill(JSON.stringify({ metric: "temp", detector: "above", value: 90 }));
  await page.getByRole("checkbox", { name: machine }).check();
  if ((await page.getByLabel("Machine", { exact: true }).inputValue()) !== machine) problems.push("the preview does not follow the machine ticked");
  await page.getByLabel("History", { exact: true }).selectOption("86400");
  await page.getByRole("button", { name: "Preview on history" }).click();
  const summary = page.locator(".preview-summary");
  await summary.waitFor({ timeout: 15_000 });
  if ((await summary.getAttribute("data-alerts")) !== "0") problems.push(`preview before the hot reading: ${await summary.textContent()}`);
  await check(page, artefacts, "rule-new", problems);
  await page.getByRole("button", { name: "Create rule" }).click();
  await page.waitForURL(/#\/rules\/(?!new)/, { timeout: 10_000 });
  await page.getByRole("heading", { level: 1, name: "Overheating" }).waitFor();
  const ruleRoute = new URL(page.url()).hash.slice(1);

  // The inbox, open before the alert exists: it arrives over the socket.
  await open(page, "/alerts", "Alerts");
  const rows = page.locator("tr[data-alert-id]");
  const before = await rows.count();
  await ingest("temp", 99);
  const row = page.locator("tr[data-alert-id]", { hasText: "Overheating" });
  await row.waitFor({ timeout: 30_000 });
  if ((await rows.count()) !== before + 1) problems.push(`the inbox holds ${await rows.count()} alerts, not ${before + 1}`);
  const alertId = await row.getAttribute("data-alert-id");
  console.log(`alert ${alertId}`);
  await check(page, artefacts, "alerts", problems);
  await row.getByRole("button", { name: /Acknowledge/ }).click();
  await row.locator(".state", { hasText: "acknowledged" }).waitFor({ timeout: 15_000 });
  await until("the API to show the acknowledgement", async () => {
    const answer = await call("GET", `/alerts/${alertId}`, { token });
    return answer.body?.acked_at ? answer.body : null;
  });

  // The alert's page: its history, then a work order from it through its lifecycle.
  await row.getByRole("link").first().click();
  await page.getByRole("heading", { level: 1, name: `Overheating on ${machine}` }).waitFor();
  await page.locator('.timeline li[data-kind="raised"]').waitFor({ timeout: 10_000 });
  await until("the acknowledgement in the alert's history", async () => {
    if ((await page.locator('.timeline li[data-kind="acked"]').count()) > 0) return true;
    await page.evaluate(() => dispatchEvent(new HashChangeEvent("hashchange")));
    await new Promise((resolve) => setTimeout(resolve, 750));
    return false;
  });
  // Snoozed from its page: the snooze joins the history.
  await page.getByRole("button", { name: "Snooze" }).click();
  await page.getByText(/^Snoozed until/).waitFor({ timeout: 10_000 });
  await until("the snooze in the alert's history", async () => {
    if ((await page.locator('.timeline li[data-kind="snoozed"]').count()) > 0) return true;
    await page.evaluate(() => dispatchEvent(new HashChangeEvent("hashchange")));
    await new Promise((resolve) => setTimeout(resolve, 750));
    return false;
  });
  await check(page, artefacts, "alert", problems);
  await page.getByRole("link", { name: "Create a work order from this alert" }).click();
  await page.getByRole("heading", { level: 1, name: "New work order" }).waitFor();
  await page.getByLabel("Assignee").selectOption({ label: admin.email });
  await check(page, artefacts, "work-order-new", problems);
  await page.getByRole("button", { name: "Create work order" }).click();
  await page.getByRole("heading", { level: 1, name: `Overheating on ${machine}` }).waitFor();
  const orderId = new URL(page.url()).hash.split("/").pop();
  console.log(`work_order ${orderId}`);
  await page.getByLabel("Note for the history (optional)").fill("on it");
  await page.getByRole("button", { name: "Start work" }).click();
  await page.locator("dd.wo-status", { hasText: "in_progress" }).waitFor();
  await page.getByRole("button", { name: "Mark done" }).click();
  await page.locator("dd.wo-status", { hasText: "done" }).waitFor();
  await check(page, artefacts, "work-order", problems);
  await open(page, "/work-orders", "Work orders");
  await page.locator(`tr[data-work-order="${orderId}"]`).waitFor();
  await check(page, artefacts, "work-orders", problems);

  // The saved rule's preview now finds the alert in the machine's history.
  await page.evaluate((r) => {
    location.hash = `#${r}`;
  }, ruleRoute);
  await page.getByRole("heading", { level: 1, name: "Overheating" }).waitFor();
  await page.getByLabel("History", { exact: true }).selectOption("86400");
  await page.getByRole("button", { name: "Preview on history" }).click();
  await page.locator('.preview-summary:not([data-alerts="0"])').waitFor({ timeout: 15_000 });
  await check(page, artefacts, "rule", problems);
  // Edited: a new version.
  await page.getByLabel("Hold (seconds the condition must last)").fill("5");
  await page.getByRole("button", { name: "Save a new version" }).click();
  await page.getByText("Saved version 2.").waitFor({ timeout: 10_000 });
  const rules = await call("GET", "/rules", { token });
  const saved = rules.body?.rules?.find((r) => r.rule.name === "Overheating");
  if (saved?.version !== 2 || saved?.rule?.hold?.secs !== 5) problems.push(`the edited rule: ${JSON.stringify(saved)}`);
  await open(page, "/rules", "Rules");
  await check(page, artefacts, "rules", problems);

  // The machine page again, now with its alert and work order.
  await open(page, `/machines/${machine}`, machine);
  await page.locator(`section tr[data-alert-id="${alertId}"]`).waitFor({ timeout: 10_000 });
  await page.getByRole("link", { name: `Overheating on ${machine}` }).waitFor();

  await open(page, "/predictions", "Predictions");
  await check(page, artefacts, "predictions", problems);
  await open(page, "/reports", "Reports");
  await page.getByRole("button", { name: "Download Alerts as CSV" }).click();
  await page.getByText(/Downloaded alerts\.csv \(\d/).waitFor({ timeout: 10_000 });
  await check(page, artefacts, "reports", problems);

  // Administration.
  await open(page, "/admin/users", "Users");
  await page.locator(`tr[data-user="${viewer.email}"]`).waitFor();
  await check(page, artefacts, "users", problems);
  await open(page, "/admin/api-keys", "API keys");
  await page.getByLabel("Name", { exact: true }).fill("line-3 gateway");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.locator(".secret code").waitFor();
  await page.locator('tr[data-key="line-3 gateway"]').waitFor();
  await check(page, artefacts, "api-keys", problems);
  await open(page, "/admin/settings", "Settings");
  await page.getByLabel("Silent after (minutes without a reading)").fill("20");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Settings saved.").waitFor();
  const settings = await call("GET", "/settings", { token });
  if (settings.body?.settings?.silent_after_minutes !== 20) problems.push(`settings after saving: ${JSON.stringify(settings.body)}`);
  await check(page, artefacts, "settings", problems);
  const writes = await page.locator("[data-write]").count();
  if (!writes) problems.push("the admin sees no write controls on the settings page");
}

const PAGES = [
  ["/fleet", "Fleet"],
  [`/machines/${machine}`, machine],
  ["/alerts", "Alerts"],
  ["/work-orders", "Work orders"],
  ["/rules", "Rules"],
  ["/predictions", "Predictions"],
  ["/reports", "Reports"],
];

/** An operator: write controls, but no admin pages. */
async function asOperator(page) {
  await signIn(page, url, operator.email, operator.password);
  const nav = page.getByRole("navigation", { name: "Main" });
  for (const name of ["Users", "API keys", "Settings"]) {
    if (await nav.getByRole("link", { name }).count()) problems.push(`the operator's navigation offers ${name}`);
  }
  await open(page, "/rules", "Rules");
  if (!(await page.getByRole("link", { name: "New rule" }).count())) problems.push("the operator cannot make rules");
  await open(page, "/admin/users", "Not available");
  await check(page, artefacts, "operator-admin-refused", problems);
}

/** A viewer: every page, no write control anywhere. */
async function asViewer(page) {
  await signIn(page, url, viewer.email, viewer.password);
  const nav = page.getByRole("navigation", { name: "Main" });
  for (const name of ["Users", "API keys", "Settings"]) {
    if (await nav.getByRole("link", { name }).count()) problems.push(`the viewer's navigation offers ${name}`);
  }
  const visit = [...PAGES];
  const alerts = await call("GET", `/alerts?machine=${machine}`, { key });
  const alert = alerts.body?.alerts?.[0];
  if (alert) visit.push([`/alerts/${alert.id}`, `Overheating on ${machine}`]);
  const rules = await call("GET", "/rules", { key });
  const rule = rules.body?.rules?.[0];
  if (rule) visit.push([`/rules/${rule.id}`, rule.rule.name || rule.id]);
  const orders = await call("GET", "/work-orders", { key });
  const order = orders.body?.work_orders?.[0];
  if (order) visit.push([`/work-orders/${order.id}`, order.title]);
  for (const [route, heading] of visit) {
    await open(page, route, heading);
    // Let the page finish loading its sections.
    await page.waitForLoadState("networkidle").catch(() => {});
    const writes = await page.locator("[data-write]").count();
    const buttons = await page.getByRole("button", { name: /Acknowledge|Snooze|Create|Save|Delete|Start work|Mark done|Cancel order|Revoke/ }).count();
    if (writes || buttons) problems.push(`the viewer sees ${writes + buttons} write control(s) on ${route}`);
  }
  if (!alert || !rule || !order) problems.push("the viewer's tour lacked an alert, a rule or a work order");
  await open(page, "/fleet", "Fleet");
  await check(page, artefacts, "viewer-fleet", problems);
  await open(page, `/alerts/${alert?.id}`, `Overheating on ${machine}`);
  await check(page, artefacts, "viewer-alert", problems);
}

const browser = await launch();
try {
  for (const [who, run] of [
    ["admin", asAdmin],
    ["operator", asOperator],
    ["viewer", asViewer],
  ]) {
    const page = await watchedPage(browser.context, url, problems);
    try {
      await run(page);
    } catch (error) {
      problems.push(`${who}: ${error.message.split("\n").slice(0, 4).join(" | ")}`);
      await page.screenshot({ path: `${artefacts}/failure-${who}.png`, fullPage: true }).catch(() => {});
      break;
    } finally {
      await page.close();
    }
  }
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("portal pages: admin, operator and viewer tours ok");
