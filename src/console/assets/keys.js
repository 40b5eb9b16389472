// The Keys view: lists, creates and changes KMS keys through the AWS KMS JSON API.

import { kms } from "./api.js";
import { busy, byId, code, describeError, fillRows, formatTime, h, say } from "./dom.js";

let app;

export function init(shared) {
  app = shared;
  byId("key-create").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(byId("key-create-button"), byId("key-create-status"), createKey);
  });
  byId("keys-refresh").addEventListener("click", (event) => busy(event.currentTarget, byId("keys-status"), refresh));
}

export function show() {
  refresh().catch((error) => say(byId("keys-status"), "error", describeError(error)));
}

// ---- reading ----------------------------------------------------------------------------------------------------

/** Every key of the account with its aliases and rotation status. */
async function listKeys() {
  const ids = [];
  let marker;
  do {
    const page = await kms("ListKeys", marker ? { Marker: marker } : {});
    ids.push(...page.Keys.map((k) => k.KeyId));
    marker = page.Truncated ? page.NextMarker : undefined;
  } while (marker);

  const aliases = new Map();
  marker = undefined;
  do {
    const page = await kms("ListAliases", marker ? { Marker: marker } : {});
    for (const alias of page.Aliases) {
      if (alias.TargetKeyId) {
        aliases.set(alias.TargetKeyId, [...(aliases.get(alias.TargetKeyId) ?? []), alias.AliasName]);
      }
    }
    marker = page.Truncated ? page.NextMarker : undefined;
  } while (marker);

  const keys = await Promise.all(
    ids.map(async (id) => {
      const { KeyMetadata: metadata } = await kms("DescribeKey", { KeyId: id });
      const rotation = rotates(metadata) ? await kms("GetKeyRotationStatus", { KeyId: id }) : null;
      return { metadata, aliases: aliases.get(id) ?? [], rotation };
    }),
  );
  keys.sort((a, b) => b.metadata.CreationDate - a.metadata.CreationDate);
  return keys;
}

/** Whether KMS can rotate the key (symmetric, its own material, not pending deletion) — asking otherwise fails. */
function rotates(metadata) {
  return (
    metadata.KeySpec === "SYMMETRIC_DEFAULT" &&
    metadata.Origin === "AWS_KMS" &&
    metadata.KeyState !== "PendingDeletion" &&
    metadata.KeyState !== "PendingImport"
  );
}

/** Keys an object can be encrypted under, for pickers: [{id, arn, label}] (enabled symmetric keys). */
export async function keyChoices() {
  const keys = await listKeys();
  return keys
    .filter((k) => k.metadata.KeySpec === "SYMMETRIC_DEFAULT" && k.metadata.KeyUsage === "ENCRYPT_DECRYPT")
    .filter((k) => k.metadata.KeyState === "Enabled")
    .map((k) => ({
      id: k.metadata.KeyId,
      arn: k.metadata.Arn,
      label: k.aliases.length ? `${k.aliases[0]} (${k.metadata.KeyId.slice(0, 8)}…)` : k.metadata.KeyId,
      managed: k.metadata.KeyManager === "AWS",
    }));
}

async function refresh() {
  const keys = await listKeys();
  fillRows(byId("keys-table").tBodies[0], keys.map(keyRow), 7, "No keys yet: create one above.");
  say(byId("keys-status"), "info", `${keys.length} key${keys.length === 1 ? "" : "s"}.`);
}

function keyRow({ metadata, aliases, rotation }) {
  const name = aliases[0] ?? metadata.KeyId;
  const state =
    metadata.KeyState === "PendingDeletion"
      ? `PendingDeletion (deleted ${formatTime(metadata.DeletionDate)})`
      : metadata.KeyState;
  return h(
    "tr",
    { dataset: { keyId: metadata.KeyId } },
    h(
      "td",
      {},
      h("div", {}, code(metadata.KeyId)),
      aliases.map((alias) => h("div", { class: "alias" }, alias)),
      metadata.KeyManager === "AWS" ? h("div", { class: "muted" }, "AWS managed") : null,
    ),
    h("td", {}, metadata.KeySpec),
    h("td", {}, metadata.KeyUsage),
    h("td", {}, h("span", { class: `state state-${metadata.KeyState}` }, state)),
    h("td", {}, describeRotation(rotation)),
    h("td", {}, formatTime(metadata.CreationDate)),
    h("td", { class: "actions" }, actions(metadata, name)),
  );
}

function describeRotation(rotation) {
  if (!rotation) {
    return "n/a";
  }
  return rotation.KeyRotationEnabled ? `on, every ${rotation.RotationPeriodInDays ?? 365} days` : "off";
}

function actions(metadata, name) {
  const id = metadata.KeyId;
  const buttons = [];
  const action = (label, run) =>
    h("button", {
      type: "button",
      class: "small",
      "aria-label": `${label}: ${name}`,
      onclick: (event) => busy(event.currentTarget, byId("keys-status"), run),
    }, label);
  if (metadata.KeyManager === "CUSTOMER") {
    if (metadata.KeyState === "Enabled") {
      const done = `${name} is disabled: nothing it protects can be decrypted now.`;
      buttons.push(action("Disable", () => change("DisableKey", { KeyId: id }, done)));
    } else if (metadata.KeyState === "Disabled") {
      buttons.push(action("Enable", () => change("EnableKey", { KeyId: id }, `${name} is enabled again.`)));
    }
    if (metadata.KeyState === "PendingDeletion") {
      const done = `${name} will not be deleted; it is disabled until you enable it.`;
      buttons.push(action("Cancel deletion", () => change("CancelKeyDeletion", { KeyId: id }, done)));
    } else {
      buttons.push(action("Schedule deletion", () => scheduleDeletion(id, name)));
    }
    if (rotates(metadata) && metadata.KeyState === "Enabled") {
      const done = `${name} has new key material; older ciphertexts still decrypt.`;
      buttons.push(action("Rotate now", () => change("RotateKeyOnDemand", { KeyId: id }, done)));
    }
  }
  const trail = `#audit?${new URLSearchParams({ key: metadata.Arn })}`;
  buttons.push(h("a", { href: trail, class: "small-link", "aria-label": `Audit trail of ${name}` }, "Audit"));
  return buttons;
}

// ---- changing ---------------------------------------------------------------------------------------------------

async function change(operation, params, done) {
  await kms(operation, params);
  await refresh();
  say(byId("keys-status"), "ok", done);
  app.keysChanged();
}

async function scheduleDeletion(id, name) {
  const days = Number(byId("key-window").value);
  if (!(days >= 7 && days <= 30)) {
    say(byId("keys-status"), "error", "The deletion window is 7 to 30 days.");
    return;
  }
  const answer = await kms("ScheduleKeyDeletion", { KeyId: id, PendingWindowInDays: days });
  await refresh();
  say(byId("keys-status"), "ok", `${name} will be deleted ${formatTime(answer.DeletionDate)} (simulated clock).`,
    "Until then it can be cancelled; after that, everything it protects is lost.");
  app.keysChanged();
}

async function createKey() {
  const status = byId("key-create-status");
  const [spec, usage] = byId("key-spec").value.split("/");
  const description = byId("key-description").value.trim();
  const alias = byId("key-alias").value.trim().replace(/^alias\//, "");
  const { KeyMetadata: key } = await kms("CreateKey", { KeySpec: spec, KeyUsage: usage, Description: description });
  let name = key.KeyId;
  if (alias) {
    try {
      await kms("CreateAlias", { AliasName: `alias/${alias}`, TargetKeyId: key.KeyId });
      name = `alias/${alias}`;
    } catch (error) {
      say(status, "error", `The key ${key.KeyId} was made, but not its alias: ${describeError(error)}`);
      await refresh();
      return;
    }
  }
  byId("key-alias").value = "";
  byId("key-description").value = "";
  say(status, "ok", `Created ${name}.`);
  await refresh();
  app.keysChanged();
}
