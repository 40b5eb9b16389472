// The Volumes view: EVS volumes (GET /api/volumes) with their LUKS facts, encrypted data key and NBD URL.

import { consoleCall } from "./api.js";
import { busy, byId, code, copyButton, describeError, facts, fill, fillRows, h, say } from "./dom.js";

/** Statuses that end by themselves: while a volume has one, the view reads the list again every second. */
const SETTLED = new Set(["available", "in-use", "error", "error_restoring", "error_extending", "error_deleting"]);
const POLL_MS = 1000;

let timer = null;

export function init() {
  byId("volumes-refresh").addEventListener("click", (event) =>
    busy(event.currentTarget, byId("volumes-status"), refresh));
}

export function show() {
  refresh().catch((error) => say(byId("volumes-status"), "error", describeError(error)));
}

async function refresh() {
  clearTimeout(timer);
  const volumes = await consoleCall("GET", "volumes");
  if (volumes.some((v) => !SETTLED.has(v.status)) && !byId("view-volumes").hidden) {
    timer = setTimeout(() => refresh().catch(() => {}), POLL_MS);
  }
  fillRows(
    byId("volumes-table").tBodies[0],
    volumes.map((v) => [
      [h("div", {}, v.name || "(no name)"), code(v.id)],
      `${v.size_gb} GB`,
      v.status,
      v.encrypted ? "LUKS1, key from KMS" : "none",
      v.key_id ? code(v.key_id) : "—",
      v.attached ? "yes" : "no",
      v.nbd_url ? [code(v.nbd_url), " ", copyButton(v.nbd_url, "Copy")] : "—",
    ]),
    7,
    "No volumes. Create one with the EVS API (see the README); it shows up here.",
  );
  fill(byId("volumes-details"), volumes.filter((v) => v.encrypted).map(details));
  say(byId("volumes-status"), "info", `${volumes.length} volume${volumes.length === 1 ? "" : "s"}.`);
}

function details(volume) {
  const luks = volume.luks;
  return h(
    "div",
    { class: "card" },
    h("h3", {}, `How ${volume.name || volume.id} is stored`),
    facts([
      ["Key", volume.key_arn ? code(volume.key_arn) : code(volume.key_id)],
      ["LUKS header", luks ? `LUKS${luks.version}, ${luks.cipher}, ${luks.hash}, ${luks.key_bytes}-byte key` : "—"],
      luks ? ["Payload offset", `${luks.payload_offset_sectors} sectors (${luks.payload_offset_sectors * 512} bytes)`]
        : null,
      luks ? ["Active key slots", luks.active_key_slots.join(", ")] : null,
      luks?.mk_digest_iterations ? ["PBKDF2 iterations", String(luks.mk_digest_iterations)] : null,
      luks ? ["UUID", code(luks.uuid)] : null,
      ["NBD URL", volume.nbd_url ? code(volume.nbd_url) : "—"],
    ]),
    h("p", { class: "muted" },
      "Key slot 0's passphrase is a data key from KMS (in hex); kmsim stores only the data key's encrypted form:"),
    h("pre", { class: "hex" }, volume.encrypted_data_key_hex ?? "—"),
    volume.encrypted_data_key_hex ? copyButton(volume.encrypted_data_key_hex, "Copy hex") : null,
  );
}
