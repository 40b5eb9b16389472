// Small DOM helpers shared by the views: build elements, fill tables, show outcomes, copy text, save files.

/**
 * Builds an element: h("td", {class: "num"}, "12") or h("a", {href: "#", onclick: fn}, "text").
 * Attributes named on* become event listeners; children are nodes, strings, numbers, arrays or null.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (name.startsWith("on")) {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (Array.isArray(child)) {
      append(element, child);
    } else if (child instanceof Node) {
      element.append(child);
    } else if (child !== null && child !== undefined && child !== false) {
      element.append(String(child));
    }
  }
}

/** The element with this id (the views' markup is in index.html). */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) {
    throw new Error(`the page has no #${id}`);
  }
  return element;
}

/** Replaces an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Fills a <tbody> with rows (<tr> nodes, or arrays of cells: nodes or text), or one "empty" row spanning `columns`. */
export function fillRows(tbody, rows, columns, emptyText) {
  if (rows.length === 0) {
    fill(tbody, h("tr", {}, h("td", { colspan: columns, class: "empty" }, emptyText)));
    return;
  }
  const built = rows.map((cells) => (cells instanceof Node ? cells : h("tr", {}, cells.map((c) => h("td", {}, c)))));
  fill(tbody, built.map((row) => labelCells(tbody.parentElement, row)));
}

/** Gives each cell of a row its column's heading as data-label: narrow screens show rows as labelled blocks. */
export function labelCells(table, row) {
  const headings = Array.from(table.tHead?.rows[0]?.cells ?? []);
  Array.from(row.cells).forEach((cell, i) => {
    if (headings[i]) {
      cell.dataset.label = headings[i].textContent;
    }
  });
  return row;
}

/**
 * Shows an outcome in a status element: kind "ok", "error", "busy" or "info"; `text` is the line to show,
 * `detail` an optional second line (an explanation).
 */
export function say(element, kind, text, detail) {
  element.dataset.kind = kind;
  fill(
    element,
    h("span", { class: "status-text" }, text),
    detail ? h("span", { class: "status-detail" }, detail) : null,
  );
}

/** Runs an async action for a button: disables it meanwhile and reports failures in `status`. */
export async function busy(button, status, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (error) {
    if (status) {
      say(status, "error", describeError(error));
    }
    return undefined;
  } finally {
    button.disabled = false;
  }
}

/** One line for an error: the service's code and message when there are. */
export function describeError(error) {
  if (error?.name === "ApiError") {
    const what = error.code ? `${error.code} (HTTP ${error.status})` : `HTTP ${error.status}`;
    return `${what}: ${error.detail}`;
  }
  return String(error?.message ?? error);
}

/** A button that copies `text()` to the clipboard and says so. */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "small" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(typeof text === "function" ? text() : text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy by hand";
    }
    setTimeout(() => (button.textContent = label), 1500);
  });
  return button;
}

/** Offers bytes (a Blob) to the person as a file download. */
export function saveFile(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** 1234567 → "1.2 MiB". */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) {
    return "—";
  }
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A date (seconds, milliseconds, or text) as "2026-12-05 14:00:00 UTC". */
export function formatTime(value) {
  if (value === null || value === undefined || value === "") {
    return "—";
  }
  const date = typeof value === "number" ? new Date(value < 1e12 ? value * 1000 : value) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** A definition list of [term, description] pairs (descriptions are nodes or text). */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([term, description]) => [
      h("dt", {}, term),
      h("dd", { dataset: { fact: term.toLowerCase().replace(/[^a-z0-9]+/g, "-") } }, description ?? "—"),
    ]),
  );
}

/** Code text that may be long (hex, ARNs): wraps anywhere. */
export function code(text) {
  return h("code", { class: "wrap" }, text);
}

/** An encryption context as "k=v, k=v". */
export function formatContext(context) {
  const entries = Object.entries(context ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "—";
}
