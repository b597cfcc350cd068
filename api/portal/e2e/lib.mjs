// What the portal's browser tests share: Debian's Chromium through playwright-core (no browser is
// downloaded), a page that records requests to other origins and content-policy violations, sign-in,
// screenshots, and axe-core's accessibility check (serious and critical violations are failures).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/** Starts Chromium with a fresh profile; `close()` stops it and removes the profile. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "haltless-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.HALTLESS_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A new tab of `context` whose requests elsewhere, policy violations and script errors land in `problems`. */
export async function watchedPage(context, url, problems) {
  const page = await context.newPage();
  const ws = url.replace(/^http/, "ws");
  page.on("request", (request) => {
    const target = request.url();
    if (!target.startsWith(url) && !target.startsWith(ws) && !target.startsWith("blob:")) {
      problems.push(`request to another origin: ${target}`);
    }
  });
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`script error: ${error.message}`));
  return page;
}

/** Signs in through the form and waits for the fleet. */
export async function signIn(page, url, email, password, timeout = 15_000) {
  await page.goto(url);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("table", { name: "Fleet" }).waitFor({ timeout });
}

/** Opens a route (`/alerts`) and waits for its main heading. */
export async function open(page, route, heading) {
  await page.evaluate((r) => {
    location.hash = `#${r}`;
  }, route);
  await page.getByRole("heading", { level: 1, name: heading }).waitFor({ timeout: 15_000 });
}

/**
 * Writes `<name>.png` (the whole page) into `artefacts` and runs axe-core on the page: serious and
 * critical violations go into `problems`, every violation's count is returned.
 */
export async function check(page, artefacts, name, problems) {
  await page.screenshot({ path: join(artefacts, `${name}.png`), fullPage: true });
  // Evaluated through the DevTools protocol, which the page's content policy does not govern.
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  for (const v of violations) {
    if (v.impact === "serious" || v.impact === "critical") {
      problems.push(`axe on ${name}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(", ")}`);
    }
  }
  console.log(`page ${name}: screenshot ${name}.png, axe: ${violations.length ? violations.map((v) => `${v.id} (${v.impact})`).join(", ") : "no violations"}`);
  return violations.length;
}

/** Waits until `fn()` returns something truthy, asking every 250 ms, at most `ms`. */
export async function until(what, fn, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The REST API as a client outside the browser: `call("GET", "/alerts", {token | key})`. */
export function client(url) {
  return async (method, path, { token, key, body } = {}) => {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (key) headers["x-api-key"] = key;
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${url}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: response.status, body: json };
  };
}
