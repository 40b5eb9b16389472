// The Buckets & objects view: buckets, their default encryption, uploads with a chosen encryption, downloads.

import { consoleCall, parseXml, s3, s3Path, toBase64, xmlEscape, xmlText } from "./api.js";
import { md5 } from "./md5.js";
import {
  busy, byId, code, copyButton, describeError, fill, fillRows, formatBytes, formatTime, h, say, saveFile,
} from "./dom.js";
import {
  MULTIPART_THRESHOLD, customerKeyList, download, listBuckets, listObjects, onCustomerKeysChanged, remove, upload,
} from "./transfer.js";

let app;
/** The file chosen for upload (picker or drop). */
let chosenFile = null;
/** Whether the key pickers need reloading before they are shown again. */
let keysStale = true;

export function init(shared) {
  app = shared;
  byId("bucket-create").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter ?? event.currentTarget, byId("bucket-status"), createBucket);
  });
  byId("buckets-refresh").addEventListener("click", (event) =>
    busy(event.currentTarget, byId("bucket-status"), () => refreshBuckets()));
  byId("bucket-select").addEventListener("change", () => openBucket());
  byId("bucket-encryption").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter ?? event.currentTarget, byId("bucket-status"), setDefaultEncryption);
  });
  byId("upload-file").addEventListener("change", (event) => choose(event.target.files[0]));
  setupDropZone(byId("drop-zone"));
  byId("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(byId("upload-button"), byId("upload-status"), uploadChosen);
  });
  onCustomerKeysChanged(showCustomerKeys);
}

export function show(params) {
  refreshBuckets(params.bucket).catch((error) => say(byId("bucket-status"), "error", describeError(error)));
  if (keysStale) {
    refreshKeyPickers().catch((error) => say(byId("upload-status"), "error", describeError(error)));
  }
}

/** keys.js changed a key: reload the pickers when this view is shown next. */
export function keysChanged() {
  keysStale = true;
}

function currentBucket() {
  return byId("bucket-select").value;
}

// ---- buckets ----------------------------------------------------------------------------------------------------

async function refreshBuckets(wanted) {
  const buckets = await listBuckets();
  const select = byId("bucket-select");
  const keep = wanted ?? select.value;
  fill(select, buckets.map((b) => h("option", { value: b.name }, b.name)));
  if (buckets.length === 0) {
    fill(select, h("option", { value: "" }, "no buckets yet"));
  } else if (buckets.some((b) => b.name === keep)) {
    select.value = keep;
  }
  await openBucket();
}

async function createBucket() {
  const name = byId("bucket-name").value.trim();
  await s3("PUT", s3Path(name), { as: "none" });
  byId("bucket-name").value = "";
  say(byId("bucket-status"), "ok", `Created bucket ${name}.`);
  await refreshBuckets(name);
}

async function openBucket() {
  const bucket = currentBucket();
  byId("objects-bucket").textContent = bucket || "—";
  if (!bucket) {
    fillRows(byId("objects-table").tBodies[0], [], 5, "Create a bucket first.");
    byId("bucket-default-now").textContent = "";
    return;
  }
  await Promise.all([showDefaultEncryption(bucket), refreshObjects(bucket)]);
}

async function showDefaultEncryption(bucket) {
  const answer = await s3("GET", s3Path(bucket), { query: { encryption: "" } });
  const doc = parseXml(answer.body);
  const algorithm = xmlText(doc, "SSEAlgorithm");
  const key = xmlText(doc, "KMSMasterKeyID");
  const now = algorithm === "aws:kms" ? `SSE-KMS under ${key || "aws/s3"}` : "SSE-S3 (AES256)";
  byId("bucket-default-now").textContent = `Now: ${now} for uploads that ask for nothing.`;
}

async function setDefaultEncryption() {
  const bucket = currentBucket();
  const algorithm = byId("bucket-default").value;
  const key = byId("bucket-default-key").value;
  const rule =
    `<SSEAlgorithm>${algorithm}</SSEAlgorithm>` +
    (algorithm === "aws:kms" && key ? `<KMSMasterKeyID>${xmlEscape(key)}</KMSMasterKeyID>` : "");
  const body =
    '<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Rule><ApplyServerSideEncryptionByDefault>${rule}</ApplyServerSideEncryptionByDefault></Rule>` +
    "</ServerSideEncryptionConfiguration>";
  // S3 wants the body's MD5 for this call.
  const contentMd5 = toBase64(md5(new TextEncoder().encode(body)));
  await s3("PUT", s3Path(bucket), {
    query: { encryption: "" },
    headers: { "content-type": "application/xml", "content-md5": contentMd5 },
    body,
    as: "none",
  });
  say(byId("bucket-status"), "ok", `Set the default encryption of ${bucket}.`);
  await showDefaultEncryption(bucket);
}

async function refreshKeyPickers() {
  const keys = await app.listKeys();
  const options = () => [
    ...keys.filter((k) => !k.managed).map((k) => h("option", { value: k.arn }, k.label)),
    h("option", { value: "" }, "aws/s3 (the AWS managed key)"),
  ];
  fill(byId("upload-kms-key"), options());
  fill(byId("bucket-default-key"), options());
  keysStale = false;
}

// ---- objects ----------------------------------------------------------------------------------------------------

async function refreshObjects(bucket) {
  const objects = await listObjects(bucket);
  const tbody = byId("objects-table").tBodies[0];
  fillRows(tbody, objects.map((object) => objectRow(bucket, object)), 5, "No objects: upload a file.");
  say(byId("objects-status"), "info", `${objects.length} object${objects.length === 1 ? "" : "s"}.`);
}

function objectRow(bucket, object) {
  const encryption = h("td", { class: "muted" }, "…");
  // How it is stored comes from the console API (S3 lists do not say).
  consoleCall("GET", `envelope?${new URLSearchParams({ bucket, key: object.key })}`)
    .then((envelope) => {
      encryption.className = "";
      encryption.dataset.encryption = envelope.encryption;
      fill(encryption, describeEncryption(envelope));
    })
    .catch(() => fill(encryption, "?"));
  const status = byId("objects-status");
  const action = (label, run, extra = {}) =>
    h("button", {
      type: "button", class: "small", "aria-label": `${label}: ${object.key}`, ...extra,
      onclick: (event) => busy(event.currentTarget, status, () => run(event.currentTarget)),
    }, label);
  return h(
    "tr",
    { dataset: { key: object.key } },
    h("td", {}, code(object.key)),
    h("td", { class: "num" }, formatBytes(object.size)),
    h("td", {}, formatTime(object.modified)),
    encryption,
    h(
      "td",
      { class: "actions" },
      action("Download", () => downloadObject(bucket, object.key)),
      action("Envelope", async () => app.go("envelope", { bucket, key: object.key })),
      action("Break it", async () => app.go("breakit", { bucket, key: object.key })),
      action("Delete", (button) => deleteObject(bucket, object.key, button), { class: "small danger" }),
    ),
  );
}

function describeEncryption(envelope) {
  switch (envelope.encryption) {
    case "aws:kms":
      return `SSE-KMS (${envelope.key_arn.split("/").pop().slice(0, 8)}…)`;
    case "AES256":
      return "SSE-S3";
    case "SSE-C":
      return "SSE-C";
    default:
      return "none";
  }
}

async function downloadObject(bucket, key) {
  const status = byId("objects-status");
  say(status, "busy", `Downloading ${key}…`);
  const got = await download(bucket, key);
  saveFile(got.blob, key.split("/").pop() || "object");
  say(status, "ok", `Downloaded ${key}: ${formatBytes(got.blob.size)}, stored with ${got.encryption}.`,
    got.encryption === "aws:kms" ? "S3 asked KMS to decrypt the object's data key, then decrypted the object." : null);
}

async function deleteObject(bucket, key, button) {
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Really delete?";
    return;
  }
  await remove(bucket, key);
  say(byId("objects-status"), "ok", `Deleted ${key}.`);
  await refreshObjects(bucket);
}

// ---- upload -----------------------------------------------------------------------------------------------------

function choose(file) {
  chosenFile = file ?? null;
  byId("upload-chosen").textContent = file
    ? `${file.name}, ${formatBytes(file.size)}${file.size > MULTIPART_THRESHOLD ? " — goes up in 8 MiB parts" : ""}`
    : "No file chosen.";
  if (file) {
    byId("upload-key").value = file.name;
  }
}

function setupDropZone(zone) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    choose(event.dataTransfer.files[0]);
  });
}

/** The encryption the form asks for. */
function chosenEncryption() {
  const type = new FormData(byId("upload-form")).get("sse");
  return type === "aws:kms" ? { type, keyId: byId("upload-kms-key").value } : { type };
}

async function uploadChosen() {
  const bucket = currentBucket();
  const status = byId("upload-status");
  const progress = byId("upload-progress");
  if (!chosenFile) {
    say(status, "error", "Choose a file first (or drop one on the box).");
    return;
  }
  if (!bucket) {
    say(status, "error", "Create a bucket first.");
    return;
  }
  const key = byId("upload-key").value.trim() || chosenFile.name;
  const sse = chosenEncryption();
  progress.hidden = false;
  progress.value = 0;
  say(status, "busy", `Uploading ${key}…`);
  try {
    const done = await upload(bucket, key, chosenFile, sse, (sent, total) => {
      progress.value = total ? sent / total : 1;
      say(status, "busy", `Uploading ${key}: ${formatBytes(sent)} of ${formatBytes(total)}`);
    });
    const answered = done.header("x-amz-server-side-encryption") ?? (sse.type === "SSE-C" ? "SSE-C" : "none");
    const keyId = done.header("x-amz-server-side-encryption-aws-kms-key-id");
    const parts = done.parts ? ` in ${done.parts} parts` : "";
    const under = keyId ? ` under ${keyId}` : "";
    say(status, "ok", `Uploaded ${key}${parts}: S3 stored it with ${answered}${under}.`, explainUpload(sse.type));
  } finally {
    progress.hidden = true;
  }
  await refreshObjects(bucket);
}

function explainUpload(type) {
  return {
    "aws:kms":
      "S3 asked KMS for a fresh data key, encrypted the file with it, and stored only the encrypted data key with it.",
    AES256: "S3 encrypted the file under a data key wrapped by S3's own key: KMS is not involved.",
    "SSE-C":
      "S3 used the key this page sent and kept only a salted hash of it: without the key the object is unreadable.",
    none: "S3 applied the bucket's default encryption.",
  }[type];
}

function showCustomerKeys() {
  const keys = customerKeyList();
  byId("ssec-card").hidden = keys.length === 0;
  fill(
    byId("ssec-keys"),
    keys.map((k) =>
      h("li", {}, h("span", { class: "object-name" }, k.object), " ", code(k.key), " ", copyButton(k.key, "Copy key")),
    ),
  );
}
