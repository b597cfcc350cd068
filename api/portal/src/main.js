// The Haltless portal: sign-in, then pages routed by the URL's hash (#/fleet, #/machines/press-01,
// #/alerts, ...), live through the dashboard WebSocket. Talks to this server only (REST under /api/v1, the
// socket at /api/v1/ws/dashboard). Controls a role may not use are not drawn (see `session` in api.js).

import { api, onSignedOut, session, signOut } from "./api.js";
import { el } from "./dom.js";
import * as live from "./live.js";
import { routes } from "./pages/index.js";

const app = document.getElementById("app");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const liveBadge = document.getElementById("live");
const signoutButton = document.getElementById("signout");

/** The navigation: every page the role may open. */
function renderNav() {
  const items = [
    ["/fleet", "Fleet"],
    ["/alerts", "Alerts"],
    ["/work-orders", "Work orders"],
    ["/rules", "Rules"],
    ["/predictions", "Predictions"],
    ["/reports", "Reports"],
  ];
  if (session.isAdmin) items.push(["/admin/users", "Users"], ["/admin/api-keys", "API keys"], ["/admin/settings", "Settings"]);
  const current = location.hash.slice(1) || "/fleet";
  nav.replaceChildren(
    el(
      "ul",
      {},
      items.map(([route, text]) =>
        el("li", {}, el("a", { href: `#${route}`, "aria-current": current.startsWith(route) ? "page" : undefined }, text)),
      ),
    ),
  );
  nav.hidden = false;
}

function showLive(connected) {
  liveBadge.textContent = connected ? "Live" : "Connecting…";
  liveBadge.className = connected ? "live-badge on" : "live-badge";
}

let generation = 0;

/** Renders the page the hash names. */
async function route() {
  if (!session.token) return;
  if (!session.me) return;
  const mine = ++generation;
  live.reset();
  renderNav();
  const path = location.hash.slice(1) || "/fleet";
  const [pathname, queryString = ""] = path.split("?");
  const query = Object.fromEntries(new URLSearchParams(queryString));
  const parts = pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const match = routes.find((r) => r.matches(parts));
  const container = el("div", { class: "page" });
  app.replaceChildren(container);
  if (!match) {
    container.append(el("h1", {}, "Not found"), el("p", {}, "No page here. "), el("a", { href: "#/fleet" }, "Back to the fleet"));
    return;
  }
  if (match.admin && !session.isAdmin) {
    container.append(el("h1", {}, "Not available"), el("p", {}, "This page is for administrators."));
    return;
  }
  try {
    await match.render(container, { params: match.params(parts), query, stale: () => mine !== generation });
    if (mine === generation) document.title = `${container.querySelector("h1")?.textContent ?? ""} · Haltless`;
  } catch (error) {
    if (error.status === 401) return;
    if (mine !== generation) return;
    container.append(el("p", { class: "error", role: "alert" }, `Could not load this page: ${error.message}`));
  }
}

function showSignIn(message = "") {
  who.textContent = "";
  signoutButton.hidden = true;
  nav.hidden = true;
  liveBadge.textContent = "";
  document.title = "Sign in · Haltless";
  const error = el("p", { class: "error", role: "alert" }, message);
  const form = el(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    el("h1", { id: "signin-title" }, "Sign in"),
    el("label", {}, "Email", el("input", { name: "email", type: "email", autocomplete: "username", required: true })),
    el("label", {}, "Password", el("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    el(
      "label",
      {},
      "Tenant (when your address has accounts in several)",
      el("input", { name: "tenant", type: "text", autocomplete: "organization", maxlength: "200" }),
    ),
    el("button", { type: "submit" }, "Sign in"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const tenant = data.get("tenant")?.trim();
    const response = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: data.get("email"), password: data.get("password"), ...(tenant ? { tenant } : {}) }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      error.textContent = body?.error?.message || "Sign-in failed";
      return;
    }
    session.token = body.access_token;
    start();
  });
  app.replaceChildren(form);
}

async function start() {
  try {
    session.me = await api("/me");
  } catch {
    return;
  }
  who.textContent = `${session.me.user?.email ?? ""} (${session.role})`;
  signoutButton.hidden = false;
  showLive(false);
  live.connect();
  await route();
}

live.on("ready", () => showLive(true), true);
live.on("closed", () => showLive(false), true);

onSignedOut((message) => {
  live.disconnect();
  showSignIn(message);
});

signoutButton.addEventListener("click", async () => {
  try {
    await api("/auth/logout", { method: "POST" });
  } catch {
    // signed out below either way
  } finally {
    signOut("");
  }
});

// The skip link moves the focus to the page's content without touching the hash (the router's).
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  app.focus();
});

window.addEventListener("hashchange", () => {
  route();
});

if (session.token) start();
else showSignIn();
