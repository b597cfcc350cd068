// The REST client and the signed-in session: every call goes to this server under /api/v1 with the access
// token; a 401 signs the page out (the session ended elsewhere).

const listeners = new Set();

export const session = {
  get token() {
    return sessionStorage.getItem("haltless.token");
  },
  set token(value) {
    if (value) sessionStorage.setItem("haltless.token", value);
    else sessionStorage.removeItem("haltless.token");
  },
  /** The caller as `/api/v1/me` describes it, once signed in. */
  me: null,
  get role() {
    return this.me?.user?.role ?? "viewer";
  },
  /** Operators and admins change machines, rules, alerts and work orders. */
  get canOperate() {
    return this.role === "admin" || this.role === "operator";
  },
  /** Admins manage users, API keys and settings. */
  get isAdmin() {
    return this.role === "admin";
  },
};

/** Calls `fn(message)` when the session ends (a 401, a socket closed with 4401, or sign-out). */
export function onSignedOut(fn) {
  listeners.add(fn);
}

export function signOut(message = "") {
  session.token = null;
  session.me = null;
  for (const fn of listeners) fn(message);
}

/** An error answer of the API, with its code and details. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.details = body?.error?.details;
  }
}

/** `api("/machines", {method, body})`: JSON in, JSON out; throws ApiError on an error answer. */
export async function api(path, { method = "GET", body, query } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  let url = `/api/v1${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401 && session.token) {
    signOut("Your session ended; sign in again.");
    throw new ApiError(401, null);
  }
  const text = response.status === 204 ? "" : await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

/** Downloads a file the API serves (reports, CSV) with the access token, as a file the browser saves. */
export async function download(path, filename) {
  const response = await fetch(`/api/v1${path}`, { headers: { authorization: `Bearer ${session.token}` } });
  if (response.status === 401) {
    signOut("Your session ended; sign in again.");
    throw new ApiError(401, null);
  }
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return blob.size;
}
