// Small DOM helpers shared by the pages: element construction without HTML strings (nothing the server
// sends is ever parsed as markup), time formatting, and the page's status line.

/** Builds an element: `attrs` are attributes (`class`, `for`, `aria-*`, ...) or `on<event>` handlers. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "value") node.value = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

let fields = 0;

/**
 * A labelled form control: a label tied to the control by `for` (the control outside the label, so that
 * its value is not part of its accessible name).
 */
export function field(label, control) {
  if (!control.id) {
    fields += 1;
    control.id = `field-${fields}`;
  }
  return el("span", { class: "field" }, el("label", { for: control.id }, label), control);
}

/** A fieldset with its legend. */
export function group(legend, ...children) {
  return el("fieldset", {}, el("legend", {}, legend), ...children);
}

/** A select of `options` ([value, text] pairs or plain values), with `current` chosen. */
export function select(attrs, options, current = "") {
  const node = el("select", attrs);
  for (const option of options) {
    const [value, text] = Array.isArray(option) ? option : [option, option];
    const o = el("option", { value }, text);
    if (String(value) === String(current)) o.selected = true;
    node.append(o);
  }
  return node;
}

/** A table with a caption (its accessible name) and column headers. */
export function table(caption, headers, rows, attrs = {}) {
  return el(
    "table",
    attrs,
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows),
  );
}

/** An instant (RFC 3339 or epoch ms) as local date and time, or `—`. */
export function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** A number shown with at most `digits` decimals. */
export function num(value, digits = 3) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return "—";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** A message area that screen readers announce: `notice.set("Saved")`, `notice.error("...")`. */
export function notice() {
  const node = el("p", { class: "notice", role: "status", "aria-live": "polite" });
  node.set = (text) => {
    node.className = "notice";
    node.textContent = text;
  };
  node.error = (text) => {
    node.className = "notice error";
    node.textContent = text;
  };
  return node;
}

/** `<input type="datetime-local">` value for a Date, in local time. */
export function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A link into the portal's hash routes. */
export function link(route, text, attrs = {}) {
  return el("a", { href: `#${route}`, ...attrs }, text);
}

/**
 * `fn` run at most once per `ms`, after the calls that asked for it: a burst of socket messages (500
 * machines' statuses at once) redraws a page once, not once per message.
 */
export function coalesced(fn, ms = 100) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}
