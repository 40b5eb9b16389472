// The Seed flow view: envelope encryption by hand over the OTC KMS API, as OTC's "Using KMS for Encryption" shows it.

import { fromHex, otc, otcError, s3, s3Path, toHex } from "./api.js";
import { busy, byId, code, describeError, fill, formatBytes, h, say, saveFile } from "./dom.js";
import { listBuckets } from "./transfer.js";

/** The guide asks for a 512-bit data key; AES-256 takes its first 32 bytes. */
const DATAKEY_BITS = 512;
const AES_KEY_BYTES = 32;
const IV_BYTES = 12;
/** What the flow encrypts when no file was chosen. */
const SAMPLE_TEXT = "Hello from kmsim's seed flow: envelope encryption by hand.\n";

let app;
/**
 * What the flow holds between steps. `dek` is the plaintext data key while it exists (step 2 to 4, and 6 to 7);
 * everything else is public or ciphertext.
 */
let flow = {};

const STEPS = [
  {
    title: "create-key: a customer master key (CMK) in KMS",
    explain: "The CMK never leaves KMS: it only wraps and unwraps data keys.",
    run: createKey,
  },
  {
    title: "create-datakey: a data key (DEK), in plaintext and wrapped",
    explain: `KMS makes a random ${DATAKEY_BITS}-bit DEK and answers it twice: in plaintext, and wrapped by the CMK.`,
    run: createDatakey,
  },
  {
    title: "Encrypt the file in this browser (WebCrypto AES-256-GCM)",
    explain:
      `AES-256 takes a 32-byte key: the first ${AES_KEY_BYTES} bytes of the ${DATAKEY_BITS / 8}-byte DEK. ` +
      `A random ${IV_BYTES}-byte IV goes in front of the ciphertext; GCM appends a 16-byte tag.`,
    run: encryptFile,
  },
  {
    title: "Forget the plaintext DEK",
    explain: "The page overwrites the DEK's bytes with zeros and drops every reference to it and to its AES key.",
    run: forgetDek,
  },
  {
    title: "Upload the ciphertext file and the ciphertext DEK to OBS",
    explain: "Two presigned PUTs to the object store. What is stored is useless without KMS.",
    run: uploadBoth,
  },
  {
    title: "Later: decrypt-datakey",
    explain: "Read the ciphertext DEK back from OBS and ask KMS to unwrap it; KMS answers the DEK and its SHA-256.",
    run: decryptDatakey,
  },
  {
    title: "Decrypt the file in this browser",
    explain: "Read the ciphertext file from OBS, split off the IV, decrypt and check it (AES-256-GCM), forget the DEK.",
    run: decryptFile,
  },
];

export function init(shared) {
  app = shared;
  byId("seed-alias").value = `seed-flow-${toHex(crypto.getRandomValues(new Uint8Array(3)))}`;
  byId("seed-bucket").value = "seed-flow";
  fill(byId("seed-steps"), STEPS.map(stepCard));
  byId("seed-run-all").addEventListener("click", (event) => busy(event.currentTarget, null, runAll));
  reset();
}

export function show() {}

function stepCard(step, index) {
  const button = h("button", { type: "button", id: `seed-step-${index + 1}`, disabled: true }, `Run step ${index + 1}`);
  button.addEventListener("click", () => runStep(index));
  return h(
    "li",
    { class: "card step", id: `seed-card-${index + 1}` },
    h("h3", {}, h("span", { class: "step-number" }, `${index + 1}`), " ", step.title),
    h("p", { class: "muted" }, step.explain),
    button,
    h("p", { class: "status", id: `seed-status-${index + 1}`, role: "status", "aria-live": "polite" }),
    h("div", { class: "exchanges", id: `seed-exchanges-${index + 1}` }),
    h("p", { class: "where", id: `seed-where-${index + 1}` }),
  );
}

/** Starts over: forgets everything, clears the cards, enables step 1. */
function reset() {
  flow.dek?.fill(0);
  flow = { done: 0 };
  STEPS.forEach((_, i) => {
    fill(byId(`seed-status-${i + 1}`));
    fill(byId(`seed-exchanges-${i + 1}`));
    fill(byId(`seed-where-${i + 1}`));
  });
  enableSteps();
}

function enableSteps() {
  STEPS.forEach((_, i) => (byId(`seed-step-${i + 1}`).disabled = i !== flow.done));
}

/** Runs step `index`; answers whether it succeeded. */
async function runStep(index) {
  if (index === 0) {
    reset();
  }
  const number = index + 1;
  const status = byId(`seed-status-${number}`);
  byId(`seed-step-${number}`).disabled = true;
  say(status, "busy", "Running…");
  try {
    const { result, where } = await STEPS[index].run(byId(`seed-exchanges-${number}`));
    say(status, "ok", result);
    fill(byId(`seed-where-${number}`), h("strong", {}, "What now exists where: "), where);
    flow.done = number;
    return true;
  } catch (error) {
    say(status, "error", describeError(error));
    return false;
  } finally {
    enableSteps();
  }
}

async function runAll() {
  for (let i = 0; i < STEPS.length; i++) {
    if (!(await runStep(i))) {
      return;
    }
  }
}

// ---- showing requests and answers -------------------------------------------------------------------------------

/** Shortens signatures, so a request can be shown without its full proof. */
function shorten(text) {
  return text.replace(/(Signature=)([0-9a-f]{12})[0-9a-f]+/gi, "$1$2…");
}

function showExchange(container, { title, method, url, headers, body, status, answer }) {
  const headerLines = Object.entries(headers ?? {}).map(([name, value]) => `${name}: ${shorten(value)}`);
  container.append(
    h(
      "div",
      { class: "exchange" },
      h("h4", {}, title),
      h("div", { class: "exchange-side" }, h("span", { class: "label" }, "Request"),
        h("pre", { class: "request" }, [`${method} ${shorten(url)}`, ...headerLines, "", body].join("\n").trim())),
      h("div", { class: "exchange-side" }, h("span", { class: "label" }, `Answer: HTTP ${status}`),
        h("pre", { class: "answer" }, answer)),
    ),
  );
}

/** Calls an OTC KMS verb, shows the exchange, answers the JSON (or throws the OTC error). */
async function otcStep(container, verb, body) {
  const answer = await otc(app.principal.project_id, verb, body);
  showExchange(container, {
    title: `OTC KMS ${verb}`,
    method: answer.signed.method,
    url: answer.signed.url,
    headers: answer.signed.headers,
    body: JSON.stringify(body, null, 2),
    status: answer.status,
    answer: JSON.stringify(answer.json, null, 2),
  });
  if (!answer.ok) {
    throw otcError(answer);
  }
  return answer.json;
}

/** Sends an S3 request, shows the exchange (the body summarised), answers S3's answer. */
async function s3Step(container, title, method, path, options, bodySummary) {
  const answer = await s3(method, path, options);
  const etag = answer.headers.get("etag");
  showExchange(container, {
    title,
    method: answer.signed.method,
    url: answer.signed.url,
    headers: answer.signed.headers,
    body: bodySummary,
    status: answer.status,
    answer: method === "GET" ? `(${formatBytes(answer.body.size)})` : etag ? `ETag: ${etag}` : "(empty)",
  });
  return answer;
}

/** Replaces a plaintext DEK shown in step `number`'s answer (JSON field `field`) once the page forgot it. */
function hideShownKey(number, field) {
  for (const pre of byId(`seed-exchanges-${number}`).querySelectorAll("pre.answer")) {
    pre.textContent = pre.textContent.replace(new RegExp(`("${field}": ")[0-9a-fA-F]+"`), '$1— forgotten —"');
  }
}

// ---- the steps --------------------------------------------------------------------------------------------------

async function createKey(container) {
  const alias = byId("seed-alias").value.trim();
  const body = { key_alias: alias, key_description: "the console's seed flow" };
  const answer = await otcStep(container, "create-key", body);
  flow.keyId = answer.key_info.key_id;
  flow.alias = alias;
  app.keysChanged();
  return {
    result: `KMS made the CMK ${flow.keyId} (alias ${alias}).`,
    where: [h("b", {}, "KMS"), " holds the CMK; its key material never leaves KMS."],
  };
}

async function createDatakey(container) {
  const body = { key_id: flow.keyId, datakey_length: String(DATAKEY_BITS) };
  const answer = await otcStep(container, "create-datakey", body);
  flow.dek = fromHex(answer.plain_text);
  flow.cipherDek = answer.cipher_text;
  return {
    result: `A ${flow.dek.length}-byte DEK: plain_text and cipher_text (hex, ${flow.cipherDek.length / 2} bytes).`,
    where: [h("b", {}, "This browser"), " holds the plaintext DEK and its ciphertext; ", h("b", {}, "KMS"),
      " keeps neither."],
  };
}

async function encryptFile(container) {
  const chosen = byId("seed-file").files[0];
  const file = chosen ?? new File([SAMPLE_TEXT], "sample.txt", { type: "text/plain" });
  flow.fileName = file.name;
  flow.original = new Uint8Array(await file.arrayBuffer());
  // A view of the DEK's first 32 bytes (no copy): overwriting the DEK overwrites it too.
  const aesKeyBytes = flow.dek.subarray(0, AES_KEY_BYTES);
  const aesKey = await crypto.subtle.importKey("raw", aesKeyBytes, "AES-GCM", false, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, aesKey, flow.original));
  flow.sealed = new Uint8Array(IV_BYTES + ciphertext.length);
  flow.sealed.set(iv);
  flow.sealed.set(ciphertext, IV_BYTES);
  container.append(
    h("pre", { class: "request" }, `crypto.subtle.encrypt({name: "AES-GCM", iv: ${toHex(iv)}}, ` +
      `key = first ${AES_KEY_BYTES} bytes of the DEK, ${file.name})`),
  );
  return {
    result:
      (chosen ? "" : "No file chosen: encrypted a small sample text instead. ") +
      `${file.name}: ${flow.original.length} bytes in, ${flow.sealed.length} bytes out ` +
      `(${IV_BYTES} IV + ${ciphertext.length - 16} ciphertext + 16 tag).`,
    where: [h("b", {}, "This browser"), " holds the file, its ciphertext, the plaintext DEK and the ciphertext DEK."],
  };
}

async function forgetDek(container) {
  flow.dek.fill(0);
  flow.dek = null;
  hideShownKey(2, "plain_text");
  container.append(h("pre", { class: "request" }, "dek.fill(0); dek = null;  // the AES key made from it goes too"));
  return {
    result: "The plaintext DEK is gone from this page.",
    where: ["Only ciphertexts remain: the encrypted file and the ciphertext DEK. ", h("b", {}, "KMS"),
      " alone can unwrap the DEK."],
  };
}

async function uploadBoth(container) {
  const bucket = byId("seed-bucket").value.trim();
  const buckets = await listBuckets();
  if (!buckets.some((b) => b.name === bucket)) {
    await s3Step(container, `Create bucket ${bucket}`, "PUT", s3Path(bucket), { as: "none" }, "");
  }
  flow.bucket = bucket;
  flow.fileKey = `${flow.fileName}.encrypted`;
  flow.dekKey = `${flow.fileName}.dek`;
  const metadata = { "x-amz-meta-kms-key-id": flow.keyId, "x-amz-meta-encryption": "AES-256-GCM, 12-byte IV in front" };
  await s3Step(container, `Upload ${flow.fileKey}`, "PUT", s3Path(bucket, flow.fileKey), {
    headers: { "content-type": "application/octet-stream", ...metadata },
    body: flow.sealed,
    as: "none",
  }, `(${flow.sealed.length} bytes of ciphertext)`);
  await s3Step(container, `Upload ${flow.dekKey}`, "PUT", s3Path(bucket, flow.dekKey), {
    headers: { "content-type": "text/plain", "x-amz-meta-kms-key-id": flow.keyId },
    body: flow.cipherDek,
    as: "none",
  }, flow.cipherDek);
  flow.sealed = null;
  flow.cipherDek = null;
  return {
    result: `Stored ${bucket}/${flow.fileKey} and ${bucket}/${flow.dekKey}.`,
    where: [h("b", {}, "OBS"), " holds the ciphertext file and the ciphertext DEK; ", h("b", {}, "KMS"),
      " holds the CMK; ",
      "the plaintext exists only on your disk. (OBS also encrypts both at rest with the bucket's default.)"],
  };
}

async function decryptDatakey(container) {
  const path = s3Path(flow.bucket, flow.dekKey);
  const stored = await s3Step(container, `Read ${flow.dekKey}`, "GET", path, { as: "blob" }, "");
  const cipherText = (await stored.body.text()).trim();
  const answer = await otcStep(container, "decrypt-datakey", {
    key_id: flow.keyId,
    cipher_text: cipherText,
    datakey_cipher_length: String(DATAKEY_BITS / 8),
  });
  flow.dek = fromHex(answer.data_key);
  const digest = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", flow.dek)));
  const digestOk = digest === String(answer.datakey_dgst).toLowerCase();
  return {
    result: `KMS unwrapped the DEK (${flow.dek.length} bytes); ` +
      `its SHA-256 ${digestOk ? "matches" : "does NOT match"} datakey_dgst.`,
    where: [h("b", {}, "This browser"), " holds the plaintext DEK again, for as long as the decryption takes."],
  };
}

async function decryptFile(container) {
  const path = s3Path(flow.bucket, flow.fileKey);
  const stored = await s3Step(container, `Read ${flow.fileKey}`, "GET", path, { as: "blob" }, "");
  const sealed = new Uint8Array(await stored.body.arrayBuffer());
  const aesKeyBytes = flow.dek.subarray(0, AES_KEY_BYTES);
  const aesKey = await crypto.subtle.importKey("raw", aesKeyBytes, "AES-GCM", false, ["decrypt"]);
  flow.dek.fill(0);
  flow.dek = null;
  hideShownKey(6, "data_key");
  let plaintext;
  try {
    const iv = sealed.subarray(0, IV_BYTES);
    plaintext = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv }, aesKey, sealed.subarray(IV_BYTES)));
  } catch {
    throw new Error("AES-GCM refused the ciphertext: its authentication tag does not match");
  }
  const same = plaintext.length === flow.original.length && plaintext.every((b, i) => b === flow.original[i]);
  const save = h("button", { type: "button", id: "seed-save", class: "primary" }, `Save ${flow.fileName}`);
  const blob = new Blob([plaintext]);
  const name = flow.fileName;
  save.addEventListener("click", () => saveFile(blob, name));
  container.append(h("p", {}, save));
  return {
    result: `Decrypted ${plaintext.length} bytes: ${same ? "identical to" : "DIFFERENT from"} the file you chose.`,
    where: [h("b", {}, "This browser"), " holds the decrypted file (the DEK is forgotten again); ", h("b", {}, "OBS"),
      " still holds only ciphertexts: ", code(`${flow.bucket}/${flow.fileKey}`), ", ",
      code(`${flow.bucket}/${flow.dekKey}`), "."],
  };
}
