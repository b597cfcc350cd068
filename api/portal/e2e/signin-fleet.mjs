// Drives the portal in headless Chromium (Debian's /usr/bin/chromium through playwright-core; no browser
// is downloaded): signs in, checks that the fleet lists the expected machines with their counts, then that a
// logout elsewhere (the session revoked) signs the page out. Screenshots go to the artefacts folder.
//
// Usage: node e2e/signin-fleet.mjs <base url> <email> <password> <machine,machine,...> <artefacts dir>
// Exits non-zero, with the reason, on any failure. HALTLESS_CHROMIUM overrides the browser's path.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, email, password, machineList, artefacts] = process.argv.slice(2);
if (!artefacts) {
  console.error("usage: signin-fleet.mjs <url> <email> <password> <machines> <artefacts dir>");
  process.exit(2);
}
const machines = machineList.split(",");
mkdirSync(artefacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "haltless-chromium-"));

// A fresh profile per run (playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.HALTLESS_CHROMIUM || "/usr/bin/chromium",
  headless: true,
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
const problems = [];
try {
  const page = await browser.newPage();
  // Any request to another origin, or a content-policy violation, is a failure: the portal is self-contained.
  page.on("request", (request) => {
    if (!request.url().startsWith(url) && !request.url().startsWith(url.replace("http", "ws"))) {
      problems.push(`request to another origin: ${request.url()}`);
    }
  });
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });

  await page.goto(url);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.screenshot({ path: join(artefacts, "signin.png") });
  await page.getByRole("button", { name: "Sign in" }).click();

  const table = page.getByRole("table", { name: "Fleet" });
  await table.waitFor({ timeout: 10_000 });
  for (const machine of machines) {
    await page.locator(`tr[data-machine="${machine}"]`).waitFor({ timeout: 10_000 });
  }
  const total = await page.locator('[data-count="total"] strong').textContent();
  if (Number(total) !== machines.length) problems.push(`the fleet counts ${total} machines, not ${machines.length}`);
  await page.getByText("Live").waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(artefacts, "fleet.png"), fullPage: true });

  // The session revoked elsewhere: the open page signs out by itself (its socket closes with 4401).
  const token = await page.evaluate(() => sessionStorage.getItem("haltless.token"));
  const logout = await fetch(`${url}/api/v1/auth/logout`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  if (logout.status !== 204) problems.push(`logout answered ${logout.status}`);
  await page.getByRole("form", { name: "Sign in" }).waitFor({ timeout: 5_000 });
  await page.screenshot({ path: join(artefacts, "signed-out.png") });
} catch (error) {
  problems.push(String(error));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("portal: sign-in, fleet and sign-out on revocation ok");
