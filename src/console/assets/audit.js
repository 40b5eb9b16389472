// The Live audit view: every KMS call as it happens, from the server-sent events of /api/audit/stream.

import { byId, fillRows, formatContext, h, labelCells, say } from "./dom.js";

/** Rows kept in the table: the newest ones. */
const MAX_ROWS = 300;

let source = null;

export function init() {
  byId("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  byId("audit-clear").addEventListener("click", () => {
    for (const id of ["audit-key", "audit-operation", "audit-outcome"]) {
      byId(id).value = "";
    }
    connect();
  });
  window.addEventListener("pagehide", () => source?.close());
  connect();
}

export function show(params) {
  if (params.key !== undefined && params.key !== byId("audit-key").value) {
    byId("audit-key").value = params.key;
    connect();
  }
}

function filter() {
  const wanted = {
    key: byId("audit-key").value.trim(),
    operation: byId("audit-operation").value.trim(),
    outcome: byId("audit-outcome").value.trim(),
  };
  return Object.fromEntries(Object.entries(wanted).filter(([, value]) => value));
}

/** (Re)opens the stream with the current filter. It starts with the last 100 matching calls, then each new one. */
function connect() {
  source?.close();
  const status = byId("audit-status");
  const wanted = filter();
  const tbody = byId("audit-table").tBodies[0];
  const described = Object.entries(wanted).map(([k, v]) => `${k} ${v}`).join(", ");
  fillRows(tbody, [], 7, "No calls yet.");
  say(status, "busy", "Connecting…");

  source = new EventSource(`/_sim/console/api/audit/stream?${new URLSearchParams(wanted)}`);
  let count = 0;
  source.addEventListener("open", () => {
    // A reconnection replays the recent calls: start the table afresh.
    count = 0;
    fillRows(tbody, [], 7, "No calls yet.");
    say(status, "ok", `Live${described ? `, filtered by ${described}` : ""}.`);
  });
  source.addEventListener("message", (event) => {
    if (count === 0) {
      tbody.replaceChildren();
    }
    count++;
    tbody.prepend(labelCells(tbody.parentElement, row(JSON.parse(event.data))));
    while (tbody.rows.length > MAX_ROWS) {
      tbody.lastElementChild.remove();
    }
  });
  source.addEventListener("lagged", (event) => {
    const notice = `${event.data} calls skipped: this page fell behind.`;
    tbody.prepend(h("tr", { class: "lagged" }, h("td", { colspan: 7 }, notice)));
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      say(status, "error", "The audit stream closed. Reload the page to reconnect.");
    } else {
      say(status, "busy", "Reconnecting…");
    }
  });
}

function row(event) {
  const principal = event.principal.split(":").slice(4).join(":") || event.principal;
  const keyId = event.key_arn ? event.key_arn.split("/").pop() : "—";
  return h(
    "tr",
    { dataset: { operation: event.operation, outcome: event.outcome } },
    h("td", { class: "time" }, event.time.replace("T", " ").replace("Z", "")),
    h("td", { title: event.principal }, principal),
    h("td", {}, event.via_service ?? `direct (${event.dialect})`),
    h("td", {}, h("strong", {}, event.operation)),
    h("td", { title: event.key_arn ?? "" }, h("code", {}, keyId)),
    h("td", { class: "context-cell" }, formatContext(event.encryption_context)),
    h("td", {}, h("span", { class: event.outcome === "Success" ? "outcome-ok" : "outcome-error" }, event.outcome)),
  );
}
