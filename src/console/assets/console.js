// The console's entry: reads the session (principals, clock), runs the tabs, and starts each view.

import { consoleCall, setPrincipal } from "./api.js";
import { byId, describeError, formatTime, h, say } from "./dom.js";
import * as keys from "./keys.js";
import * as objects from "./objects.js";
import * as envelope from "./envelope.js";
import * as breakit from "./breakit.js";
import * as seed from "./seed.js";
import * as audit from "./audit.js";
import * as volumes from "./volumes.js";

/** Each tab's view module: init(app) once, show(params) whenever its tab is opened. */
const VIEWS = { keys, objects, envelope, breakit, seed, audit, volumes };

/** The simulated clock: its time at `read` (performance.now()), so it can tick between reads. */
let clock = { now: 0, offsetSeconds: 0, read: 0 };

/** What the views share: the session, the chosen principal, navigation, the clock. */
const app = {
  session: null,
  /** The chosen principal: {access_key_id, arn, account, kind, project_id}. */
  principal: null,
  /** Opens a tab: go("audit", {key: arn}). */
  go: (view, params = {}) => {
    const query = new URLSearchParams(params).toString();
    const hash = `#${query ? `${view}?${query}` : view}`;
    if (location.hash === hash) {
      route();
    } else {
      location.hash = hash;
    }
  },
  /** Re-reads the simulated clock (after moving it). */
  refreshClock: async () => setClock(await consoleCall("GET", "/_sim/clock")),
  /** Keys and aliases for pickers: [{id, arn, label}]; keys.js answers it. */
  listKeys: () => keys.keyChoices(),
  /** Called by views that change keys, so pickers elsewhere refresh when shown. */
  keysChanged: () => VIEWS.objects.keysChanged?.(),
};

async function start() {
  const status = byId("page-status");
  try {
    app.session = await consoleCall("GET", "session");
  } catch (error) {
    say(status, "error", `The console could not read its session: ${describeError(error)}`,
      "Open the console with the URL kmsim printed at start (it signs you in).");
    return;
  }
  setClock(app.session.clock);
  setInterval(showClock, 1000);
  setupPrincipals(app.session.principals);
  setupTabs();
  for (const view of Object.values(VIEWS)) {
    view.init(app);
  }
  window.addEventListener("hashchange", route);
  route();
  document.body.dataset.ready = "true";
}

// ---- principal and clock ----------------------------------------------------------------------------------------

function setupPrincipals(principals) {
  const select = byId("principal");
  for (const principal of principals) {
    select.append(h("option", { value: principal.access_key_id }, `${principal.access_key_id} (${principal.kind})`));
  }
  const choose = () => {
    app.principal = principals.find((p) => p.access_key_id === select.value) ?? principals[0];
    setPrincipal(app.principal.access_key_id);
    byId("principal-arn").textContent = app.principal.arn;
  };
  select.value = (principals.find((p) => p.default) ?? principals[0]).access_key_id;
  select.addEventListener("change", () => {
    choose();
    // Another principal may see other keys and buckets: show the current view again, as it sees it.
    app.keysChanged();
    route();
  });
  choose();
}

function setClock(value) {
  clock = { now: value.now, offsetSeconds: value.offset_seconds, read: performance.now() };
  showClock();
}

function showClock() {
  const now = clock.now + (performance.now() - clock.read) / 1000;
  const element = byId("clock");
  const days = clock.offsetSeconds / 86400;
  element.dateTime = new Date(now * 1000).toISOString();
  const moved = days >= 0.01 ? ` (+${days.toFixed(days % 1 ? 2 : 0)} days)` : "";
  element.textContent = formatTime(Math.floor(now)) + moved;
}

// ---- tabs -------------------------------------------------------------------------------------------------------

function tabs() {
  return Array.from(document.querySelectorAll('[role="tab"]'));
}

function setupTabs() {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => app.go(tab.dataset.view));
  }
  // Arrow keys move between tabs (the WAI-ARIA tabs pattern); Tab leaves the tab list for the panel.
  byId("tabs").addEventListener("keydown", (event) => {
    const all = tabs();
    const index = all.indexOf(document.activeElement);
    if (index < 0) {
      return;
    }
    const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: all.length - 1 }[event.key];
    if (next === undefined) {
      return;
    }
    event.preventDefault();
    const tab = all[(next + all.length) % all.length];
    tab.focus();
    app.go(tab.dataset.view);
  });
}

/** Shows the view the address names (#keys, #audit?key=…). */
function route() {
  const [name, query = ""] = location.hash.replace(/^#/, "").split("?");
  const view = name in VIEWS ? name : "keys";
  for (const tab of tabs()) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    byId(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  document.body.dataset.view = view;
  VIEWS[view].show?.(Object.fromEntries(new URLSearchParams(query)));
}

start();
