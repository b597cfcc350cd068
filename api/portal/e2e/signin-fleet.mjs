// Drives the portal in headless Chromium (Debian's /usr/bin/chromium through playwright-core; no browser
// is downloaded): signs in, checks that the fleet lists the expected machines with their counts, then that a
// logout elsewhere (the session revoked) signs the page out. Screenshots go to the artefacts folder.
//
// Usage: node e2e/signin-fleet.mjs <base url> <email> <password> <machine,machine,...> <artefacts dir>
// Exits non-zero, with the reason, on any failure. HALTLESS_CHROMIUM overrides the browser's path.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launch, watchedPage } from "./lib.mjs";

const [url, email, password, machineList, artefacts] = process.argv.slice(2);
if (!artefacts) {
  console.error("usage: signin-fleet.mjs <url> <email> <password> <machines> <artefacts dir>");
  process.exit(2);
}
const machines = machineList.split(",");
mkdirSync(artefacts, { recursive: true });
const browser = await launch();
const problems = [];
try {
  // Any request to another origin, or a content-policy violation, is a failure: the portal is self-contained.
  const page = await watchedPage(browser.context, url, problems);
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
  await page.getByText("Live", { exact: true }).waitFor({ timeout: 10_000 });
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
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("portal: sign-in, fleet and sign-out on revocation ok");
