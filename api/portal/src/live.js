// The dashboard socket (/api/v1/ws/dashboard): one per page, signed in with the access token as its first
// message. Pages say which machines they follow (`follow`) and listen to message types (`on`); the
// listeners of a page are dropped when the route changes (`reset`).

import { session, signOut } from "./api.js";

let socket = null;
let ready = false;
let following = null; // null: none, "*": all, or a list of names
let withReadings = true; // false: alerts, statuses and the rest, but no readings messages
let retry = null;
const handlers = new Map(); // type -> Set of functions, the current page's
const always = new Map(); // type -> Set of functions that outlive route changes
const state = { connected: false };

function emit(type, message) {
  for (const fn of always.get(type) || []) fn(message);
  for (const fn of handlers.get(type) || []) fn(message);
}

function sendFollow() {
  if (!socket || !ready) return;
  socket.send(JSON.stringify({ type: "unsubscribe", machines: "*" }));
  if (following === "*" || (Array.isArray(following) && following.length)) {
    socket.send(JSON.stringify({ type: "subscribe", machines: following, readings: withReadings }));
  }
}

/** Opens the socket (again) for the signed-in session. */
export function connect() {
  if (socket || !session.token) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws/dashboard`);
  socket = ws;
  ws.addEventListener("open", () => ws.send(session.token));
  ws.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "ready") {
      ready = true;
      state.connected = true;
      sendFollow();
    }
    emit(message.type, message);
  });
  ws.addEventListener("close", (event) => {
    if (socket === ws) {
      socket = null;
      ready = false;
      state.connected = false;
      emit("closed", event);
    }
    if (event.code === 4401) signOut("Your session ended; sign in again.");
    else if (session.token && socket === null) retry = setTimeout(connect, 2000);
  });
}

/** Closes the socket for good (sign-out). */
export function disconnect() {
  clearTimeout(retry);
  const ws = socket;
  socket = null;
  ready = false;
  state.connected = false;
  if (ws) ws.close();
}

/**
 * Follows the readings and alerts of `machines` (names, or "*"), instead of what was followed before;
 * `{ readings: false }` follows their alerts, actions and notifications without their values (an inbox).
 */
export function follow(machines, { readings = true } = {}) {
  following = machines;
  withReadings = readings;
  sendFollow();
}

/** Calls `fn(message)` for each server message of `type` until the next `reset` (or always, `keep`). */
export function on(type, fn, keep = false) {
  const map = keep ? always : handlers;
  if (!map.has(type)) map.set(type, new Set());
  map.get(type).add(fn);
}

/** Drops every page listener and follows nothing (a route change). */
export function reset() {
  handlers.clear();
  follow(null);
}

/** Whether the socket is signed in now. */
export function isLive() {
  return state.connected;
}
