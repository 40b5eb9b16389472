// The Envelope view: how one object is stored (GET /api/envelope), read from its stored header, never decrypted.

import { consoleCall } from "./api.js";
import { byId, code, copyButton, describeError, facts, fill, formatBytes, h, say } from "./dom.js";
import { listBuckets } from "./transfer.js";

export function init() {
  byId("envelope-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showEnvelope(byId("envelope-bucket").value, byId("envelope-key").value.trim());
  });
}

export async function show(params) {
  try {
    await fillBuckets(byId("envelope-bucket"), params.bucket);
  } catch (error) {
    say(byId("envelope-status"), "error", describeError(error));
    return;
  }
  if (params.key) {
    byId("envelope-key").value = params.key;
    await showEnvelope(params.bucket ?? byId("envelope-bucket").value, params.key);
  }
}

/** Fills a bucket <select> with the principal's buckets, keeping `wanted` (or the current choice) selected. */
export async function fillBuckets(select, wanted) {
  const keep = wanted ?? select.value;
  const buckets = await listBuckets();
  fill(select, buckets.map((b) => h("option", { value: b.name }, b.name)));
  if (buckets.some((b) => b.name === keep)) {
    select.value = keep;
  }
}

async function showEnvelope(bucket, key) {
  const status = byId("envelope-status");
  const result = byId("envelope-result");
  say(status, "busy", `Reading how ${bucket}/${key} is stored…`);
  let envelope;
  try {
    envelope = await consoleCall("GET", `envelope?${new URLSearchParams({ bucket, key })}`);
  } catch (error) {
    fill(result);
    say(status, "error", describeError(error));
    return;
  }
  say(status, "ok", `${bucket}/${key}`, explain(envelope));
  fill(result, render(envelope));
}

function explain(envelope) {
  switch (envelope.encryption) {
    case "aws:kms":
      return (
        "To read it, S3 sends the encrypted data key below to KMS (Decrypt, with this encryption context), gets " +
        "the data key back, and decrypts the frames with it. Disable the key and that Decrypt fails."
      );
    case "AES256":
      return "SSE-S3: the data key is wrapped by S3's own key; KMS is not asked.";
    case "SSE-C":
      return "SSE-C: the data key is wrapped under the customer's key, which S3 does not keep; every read brings it.";
    default:
      return "Stored in the clear.";
  }
}

function render(envelope) {
  const message = envelope.message;
  const overhead = envelope.stored_bytes - envelope.plaintext_bytes;
  const object = facts([
    ["Object", code(`${envelope.bucket}/${envelope.key}`)],
    envelope.version_id ? ["Version", code(envelope.version_id)] : null,
    ["Encryption", h("strong", { class: "encryption" }, envelope.encryption)],
    ["Key ARN", envelope.key_arn ? keyLink(envelope.key_arn) : "—"],
    ["Plaintext bytes", `${envelope.plaintext_bytes} (${formatBytes(envelope.plaintext_bytes)})`],
    ["Bytes on disk", `${envelope.stored_bytes} (${overhead >= 0 ? "+" : ""}${overhead} bytes: header, IVs, tags)`],
    ["Stored file", envelope.stored_path ? code(envelope.stored_path) : "in memory (kmsim runs without a data dir)"],
    envelope.multipart_parts ? ["Uploaded in parts", String(envelope.multipart_parts)] : null,
  ]);
  if (!message) {
    return [h("h3", {}, "The object"), object];
  }
  const header = facts([
    ["Format", message.format],
    ["Algorithm suite", [code(message.algorithm_suite), " ", message.algorithm]],
    ["Message id", code(message.message_id)],
    ["Encryption context", contextTable(message.encryption_context)],
    ["Content", `${message.content_type}: ${plural(message.frames, "frame")} of up to ${message.frame_length} bytes`],
    ["Header bytes", String(message.header_bytes)],
  ]);
  const keys = message.encrypted_data_keys.map((key, i) =>
    h(
      "div",
      { class: "data-key" },
      h("h4", {}, `Encrypted data key ${message.encrypted_data_keys.length > 1 ? i + 1 : ""}`.trim()),
      facts([
        ["Provider", code(key.provider_id)],
        ["Provider info", code(key.provider_info)],
        ["Size", `${key.ciphertext_bytes} bytes`],
      ]),
      h("pre", { class: "hex", "data-role": "edk-hex" }, key.ciphertext_hex),
      copyButton(key.ciphertext_hex, "Copy hex"),
    ),
  );
  return [h("h3", {}, "The object"), object, h("h3", {}, "The stored message header"), header, keys];
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function keyLink(arn) {
  return [code(arn), " ", h("a", { href: `#audit?${new URLSearchParams({ key: arn })}` }, "audit trail")];
}

function contextTable(context) {
  const entries = Object.entries(context ?? {});
  if (entries.length === 0) {
    return "none";
  }
  return h(
    "table",
    { class: "context" },
    h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, code(k)), h("td", {}, code(v))))),
  );
}
