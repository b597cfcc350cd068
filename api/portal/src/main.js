// The Haltless portal: sign-in and the fleet overview, live through the dashboard WebSocket.
// Talks to the same server only (REST under /api/v1, the socket at /api/v1/ws/dashboard).

const app = document.getElementById("app");
const who = document.getElementById("who");
const signoutButton = document.getElementById("signout");

const session = {
  get token() {
    return sessionStorage.getItem("haltless.token");
  },
  set token(value) {
    if (value) sessionStorage.setItem("haltless.token", value);
    else sessionStorage.removeItem("haltless.token");
  },
};

let socket = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const headers = { "content-type": "application/json", ...(options.headers || {}) };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    signedOut("Your session ended; sign in again.");
    throw new Error("signed out");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
  return body;
}

function signedOut(message) {
  session.token = null;
  if (socket) socket.close();
  socket = null;
  showSignIn(message);
}

function showSignIn(message = "") {
  who.textContent = "";
  signoutButton.hidden = true;
  const error = el("p", { class: "error", role: "alert" }, message);
  const form = el(
    "form",
    { class: "signin", "aria-label": "Sign in" },
    el("h2", {}, "Sign in"),
    el("label", {}, "Email", el("input", { name: "email", type: "email", autocomplete: "username", required: "" })),
    el(
      "label",
      {},
      "Password",
      el("input", { name: "password", type: "password", autocomplete: "current-password", required: "" }),
    ),
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
    const response = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        email: data.get("email"),
        password: data.get("password"),
        ...(data.get("tenant")?.trim() ? { tenant: data.get("tenant").trim() } : {}),
      }),
    });
    const body = await response.json();
    if (!response.ok) {
      error.textContent = body?.error?.message || "Sign-in failed";
      return;
    }
    session.token = body.access_token;
    showFleet();
  });
  app.replaceChildren(form);
}

const fleet = { machines: [], site: "", tag: "" };

function renderFleet() {
  const visible = fleet.machines.filter(
    (m) => (!fleet.site || m.site === fleet.site) && (!fleet.tag || (m.tags || []).includes(fleet.tag)),
  );
  const count = (s) => visible.filter((m) => m.status === s).length;
  const counts = el(
    "ul",
    { class: "counts", "aria-label": "Machines by status" },
    el("li", { "data-count": "total" }, el("strong", {}, String(visible.length)), "machines"),
    el("li", { "data-count": "running" }, el("strong", {}, String(count("running"))), "running"),
    el("li", { "data-count": "alerting" }, el("strong", {}, String(count("alerting"))), "alerting"),
    el("li", { "data-count": "silent" }, el("strong", {}, String(count("silent"))), "silent"),
  );
  const options = (values, current, label) => {
    const select = el("select", { "aria-label": label }, el("option", { value: "" }, `Every ${label.toLowerCase()}`));
    for (const v of values) {
      const option = el("option", { value: v }, v);
      if (v === current) option.selected = true;
      select.append(option);
    }
    return select;
  };
  const sites = [...new Set(fleet.machines.map((m) => m.site).filter(Boolean))].sort();
  const tags = [...new Set(fleet.machines.flatMap((m) => m.tags || []))].sort();
  const siteSelect = options(sites, fleet.site, "Site");
  const tagSelect = options(tags, fleet.tag, "Tag");
  siteSelect.addEventListener("change", () => {
    fleet.site = siteSelect.value;
    renderFleet();
  });
  tagSelect.addEventListener("change", () => {
    fleet.tag = tagSelect.value;
    renderFleet();
  });
  const rows = visible.map((m) =>
    el(
      "tr",
      { "data-machine": m.name },
      el("td", {}, m.name),
      el("td", {}, m.site || ""),
      el("td", {}, (m.tags || []).join(", ")),
      el("td", { class: `status status-${m.status}` }, m.status),
      el("td", {}, String(m.open_alerts ?? 0)),
      el("td", {}, m.last_reading_at || "never"),
    ),
  );
  const table = el(
    "table",
    { "aria-label": "Fleet" },
    el(
      "thead",
      {},
      el("tr", {}, ...["Machine", "Site", "Tags", "Status", "Open alerts", "Last reading"].map((h) => el("th", { scope: "col" }, h))),
    ),
    el("tbody", {}, ...rows),
  );
  const live = el("p", { class: "live", id: "live" }, socket && socket.readyState === 1 ? "Live" : "Connecting…");
  app.replaceChildren(el("h2", {}, "Fleet"), counts, el("div", { class: "filters" }, siteSelect, tagSelect), live, table);
}

function connectLive() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/v1/ws/dashboard`);
  socket.addEventListener("open", () => socket.send(session.token));
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      const liveNote = document.getElementById("live");
      if (liveNote) liveNote.textContent = "Live";
    } else if (message.type === "machine_status") {
      const machine = fleet.machines.find((m) => m.id === message.machine_id);
      if (machine) {
        machine.status = message.status;
        machine.open_alerts = message.open_alerts;
        renderFleet();
      }
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4401) signedOut("Your session ended; sign in again.");
    else if (session.token) setTimeout(connectLive, 2000);
  });
}

async function showFleet() {
  signoutButton.hidden = false;
  const me = await api("/api/v1/me");
  who.textContent = `${me.user?.email ?? ""} (${me.user?.role ?? ""})`;
  const status = await api("/api/v1/fleet/status");
  fleet.machines = status.machines;
  renderFleet();
  connectLive();
}

signoutButton.addEventListener("click", async () => {
  try {
    await api("/api/v1/auth/logout", { method: "POST" });
  } finally {
    signedOut("");
  }
});

if (session.token) showFleet().catch(() => {});
else showSignIn();
