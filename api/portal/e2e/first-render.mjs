// Measures the fleet page's first render in headless Chromium: signs in, then loads the page afresh (the
// session stays in the tab) and reports the time from navigation start to the fleet table drawn with every
// machine, and how long `/api/v1/fleet/status` took within it. A measurement, not a pass/fail threshold.
//
// Usage: node e2e/first-render.mjs <url> <email> <password> <machines expected> <artefacts dir>
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { client, launch, signIn, watchedPage } from "./lib.mjs";

const [url, email, password, expected, artefacts] = process.argv.slice(2);
if (!artefacts) {
  console.error("usage: first-render.mjs <url> <email> <password> <machines> <artefacts dir>");
  process.exit(2);
}
mkdirSync(artefacts, { recursive: true });
const problems = [];
const browser = await launch();
const runs = [];
const call = client(url);
const login = await call("POST", "/auth/login", { body: { email, password } });
const apiTimes = [];
for (let i = 0; i < 3; i += 1) {
  const started = Date.now();
  const answer = await call("GET", "/fleet/status?limit=10000", { token: login.body.access_token });
  apiTimes.push(Date.now() - started);
  if (answer.body?.machines?.length !== Number(expected)) problems.push(`fleet/status lists ${answer.body?.machines?.length} machines`);
}
console.log(`GET /api/v1/fleet/status with ${expected} machines: ${apiTimes.join(", ")} ms`);
try {
  const page = await watchedPage(browser.context, url, problems);
  await signIn(page, url, email, password, 120_000);
  for (let i = 0; i < 3; i += 1) {
    const started = Date.now();
    await page.reload();
    await page.locator(`tr[data-machine]`).nth(Number(expected) - 1).waitFor({ timeout: 120_000 });
    console.log(`load ${i + 1}: the table had every machine after ${Date.now() - started} ms (wall clock, the test's side)`);
    const rows = await page.locator("tr[data-machine]").count();
    if (rows !== Number(expected)) problems.push(`the fleet shows ${rows} rows, not ${expected}`);
    runs.push(
      await page.evaluate(() => {
        const rendered = performance.getEntriesByName("haltless:fleet-rendered")[0]?.startTime;
        const status = performance.getEntriesByType("resource").find((r) => r.name.includes("/api/v1/fleet/status"));
        return { rendered: Math.round(rendered), status: Math.round(status?.duration ?? NaN) };
      }),
    );
  }
  await page.screenshot({ path: join(artefacts, `fleet-${expected}.png`) });
} catch (error) {
  problems.push(String(error));
  for (const p of browser.context.pages()) await p.screenshot({ path: join(artefacts, "failure-first-render.png") }).catch(() => {});
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
const line = `GET /api/v1/fleet/status: ${apiTimes.join(", ")} ms; first render of the fleet with ${expected} machines: ${runs.map((r) => r.rendered).join(", ")} ms from navigation start (fleet/status answered in ${runs.map((r) => r.status).join(", ")} ms)`;
writeFileSync(join(artefacts, `first-render-${expected}.txt`), `${line}\n`);
console.log(line);
