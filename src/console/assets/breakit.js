// The Break it view: disable, re-enable or delete an object's key, or corrupt a stored byte, then download the object.

import { consoleCall, kms } from "./api.js";
import { busy, byId, code, describeError, fill, formatBytes, say } from "./dom.js";
import { fillBuckets } from "./envelope.js";
import { download } from "./transfer.js";

let app;
/** The object experimented on: {bucket, key, envelope}. */
let target = null;

/** Days the deletion window lasts, and how far the clock then moves. */
const WINDOW_DAYS = 7;
const ADVANCE_DAYS = WINDOW_DAYS + 1;

const EXPERIMENTS = {
  "break-disable": disableThenDownload,
  "break-enable": enableThenDownload,
  "break-corrupt": corruptThenDownload,
  "break-delete": deleteKeyThenDownload,
};

export function init(shared) {
  app = shared;
  byId("break-form").addEventListener("submit", (event) => {
    event.preventDefault();
    choose(byId("break-bucket").value, byId("break-key").value.trim());
  });
  for (const [id, experiment] of Object.entries(EXPERIMENTS)) {
    const result = byId(`${id}-result`);
    byId(id).addEventListener("click", (event) => busy(event.currentTarget, result, () => experiment(result)));
  }
}

export async function show(params) {
  try {
    await fillBuckets(byId("break-bucket"), params.bucket);
  } catch (error) {
    say(byId("break-disable-result"), "error", describeError(error));
    return;
  }
  if (params.key) {
    byId("break-key").value = params.key;
    await choose(params.bucket ?? byId("break-bucket").value, params.key);
  }
}

async function choose(bucket, key) {
  const line = byId("break-target");
  let envelope;
  try {
    envelope = await consoleCall("GET", `envelope?${new URLSearchParams({ bucket, key })}`);
  } catch (error) {
    target = null;
    line.textContent = describeError(error);
    enableExperiments();
    return;
  }
  const same = target?.bucket === bucket && target?.key === key;
  target = { bucket, key, envelope };
  fill(
    line,
    "Object ", code(`${bucket}/${key}`), `, ${envelope.encryption}`,
    envelope.key_arn ? [" under ", code(envelope.key_arn)] : "",
    envelope.encryption === "aws:kms" ? "." : ": the key experiments need an SSE-KMS object.",
  );
  if (!same) {
    for (const id of Object.keys(EXPERIMENTS)) {
      fill(byId(`${id}-result`));
    }
  }
  enableExperiments();
}

function enableExperiments() {
  const kmsObject = target?.envelope.encryption === "aws:kms";
  byId("break-disable").disabled = !kmsObject;
  byId("break-enable").disabled = !kmsObject;
  byId("break-delete").disabled = !kmsObject;
  byId("break-corrupt").disabled = !target?.envelope.message;
}

/** Downloads the target: {ok: true, bytes} or {ok: false, error}. */
async function tryDownload() {
  try {
    const got = await download(target.bucket, target.key);
    return { ok: true, bytes: got.blob.size };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Reports a download that should have failed. */
function reportFailure(result, outcome, explanation) {
  if (outcome.ok) {
    say(result, "error", `The download worked (${formatBytes(outcome.bytes)}) — it should not have.`);
  } else {
    say(result, "broken", `S3 answered ${describeError(outcome.error)}`, explanation);
  }
}

async function disableThenDownload(result) {
  await kms("DisableKey", { KeyId: target.envelope.key_arn });
  app.keysChanged();
  reportFailure(result, await tryDownload(),
    "S3 asked KMS to decrypt the object's data key; KMS refuses while the key is disabled, so S3 cannot decrypt " +
      "the object. Nothing is lost: enable the key and it reads again.");
}

async function enableThenDownload(result) {
  await kms("EnableKey", { KeyId: target.envelope.key_arn });
  app.keysChanged();
  const outcome = await tryDownload();
  if (outcome.ok) {
    say(result, "ok", `The download works again: ${formatBytes(outcome.bytes)}.`,
      "The key is enabled, so KMS decrypts the object's data key for S3 again; the stored bytes never changed.");
  } else {
    say(result, "error", `The download still fails: ${describeError(outcome.error)}`);
  }
}

async function corruptThenDownload(result) {
  const flipped = await consoleCall("POST", "corrupt", { bucket: target.bucket, key: target.key });
  reportFailure(result, await tryDownload(),
    `One bit of the stored byte at offset ${flipped.offset} changed (${flipped.before} → ${flipped.after}). ` +
      "Every frame carries an AES-GCM authentication tag: the check fails, so S3 returns an error instead of " +
      "wrong bytes.");
}

async function deleteKeyThenDownload(result) {
  const arn = target.envelope.key_arn;
  await kms("ScheduleKeyDeletion", { KeyId: arn, PendingWindowInDays: WINDOW_DAYS });
  await consoleCall("POST", "/_sim/clock", { advance_days: ADVANCE_DAYS });
  await app.refreshClock();
  app.keysChanged();
  reportFailure(result, await tryDownload(),
    `The deletion window (${WINDOW_DAYS} days) ended on the simulated clock, moved ${ADVANCE_DAYS} days ` +
      "forward, and kmsim deleted the key material: the object's data key can never be decrypted again.");
}
