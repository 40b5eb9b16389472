// The console's only way out: signs requests for the chosen principal (POST /api/sign), sends them, reads the answers.

/** Where the console's own API lives (this page is /_sim/console/). */
const CONSOLE_API = "/_sim/console/api/";

/** The access key id of the principal every signed request is made for; console.js sets it. */
let principal = "test";

export function setPrincipal(accessKeyId) {
  principal = accessKeyId;
}

/** A failed call: HTTP status, the service's error code and message, as the service answered them. */
export class ApiError extends Error {
  constructor(status, code, message, body = "") {
    super(code ? `${code}: ${message}` : message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = message;
    this.body = body;
  }
}

// ---- the console API --------------------------------------------------------------------------------------------

/** GET or POST (JSON) on the console API or the admin API; answers the parsed JSON or throws ApiError. */
export async function consoleCall(method, path, body) {
  const url = path.startsWith("/") ? path : CONSOLE_API + path;
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try {
      message = JSON.parse(text).error ?? text;
    } catch {
      // Not JSON: the text is the message.
    }
    throw new ApiError(response.status, "", message || `HTTP ${response.status}`, text);
  }
  return text ? JSON.parse(text) : null;
}

/**
 * Asks the backend to sign one request: {api, method, path, query, headers, body, expires}.
 * Answers {method, url, headers}: the request to send unchanged.
 */
function sign(request) {
  return consoleCall("POST", "sign", { principal, query: {}, headers: {}, body: "", ...request });
}

/** Signs and sends a request whose answer is JSON (the AWS KMS and OTC KMS APIs). */
async function sendJson(api, request) {
  const signed = await sign({ api, ...request });
  const response = await fetch(signed.url, {
    method: signed.method,
    headers: signed.headers,
    body: request.body || undefined,
    credentials: "omit",
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(response.status, "", text || `HTTP ${response.status}`, text);
  }
  return { signed, status: response.status, ok: response.ok, json, text };
}

// ---- AWS KMS (JSON 1.1, SigV4 in headers) -----------------------------------------------------------------------

/** Calls TrentService.<operation> with `params`; answers the JSON answer or throws ApiError. */
export async function kms(operation, params = {}) {
  const answer = await sendJson("kms", {
    method: "POST",
    path: "/",
    headers: { "x-amz-target": `TrentService.${operation}`, "content-type": "application/x-amz-json-1.1" },
    body: JSON.stringify(params),
  });
  if (!answer.ok) {
    const type = String(answer.json.__type ?? "").split("#").pop();
    throw new ApiError(answer.status, type, answer.json.message ?? answer.json.Message ?? answer.text, answer.text);
  }
  return answer.json;
}

// ---- OTC KMS (REST v1.0, SDK-HMAC-SHA256 in headers) ------------------------------------------------------------

/**
 * Calls POST /v1.0/{project_id}/kms/<verb>; answers {request, status, ok, json} whatever the outcome, so the seed flow
 * can show both sides of the exchange.
 */
export async function otc(projectId, verb, body) {
  const request = {
    method: "POST",
    path: `/v1.0/${projectId}/kms/${verb}`,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  };
  const answer = await sendJson("otc", request);
  return { ...answer, request };
}

/** The error an OTC answer carries: {"error": {"error_code", "error_msg"}}. */
export function otcError(answer) {
  const error = answer.json?.error ?? answer.json ?? {};
  return new ApiError(answer.status, error.error_code ?? "", error.error_msg ?? answer.text, answer.text);
}

// ---- S3 (presigned URLs) ----------------------------------------------------------------------------------------

/** An object key as S3 wants it in a path: each segment percent-encoded as SigV4 does, the slashes kept. */
function encodeKey(key) {
  return key
    .split("/")
    .map((segment) =>
      encodeURIComponent(segment).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase()),
    )
    .join("/");
}

/** `/bucket` or `/bucket/key`, encoded. */
export function s3Path(bucket, key) {
  return key === undefined ? `/${encodeURIComponent(bucket)}` : `/${encodeURIComponent(bucket)}/${encodeKey(key)}`;
}

/** A presigned S3 request: {method, url, headers} (the headers were signed and must be sent). */
export function presign(method, path, { query = {}, headers = {}, expires = 900 } = {}) {
  return sign({ api: "s3", method, path, query, headers, expires });
}

/**
 * Presigns and sends one S3 request with fetch. `body` is a string, Blob or ArrayBuffer; `as` is "text" (default),
 * "blob" or "none". Answers {status, headers, body, signed} (signed: the request sent); throws ApiError with S3's
 * Code and Message on failure.
 */
export async function s3(method, path, { query, headers, body, as = "text" } = {}) {
  const signed = await presign(method, path, { query, headers });
  const response = await fetch(signed.url, {
    method: signed.method,
    headers: signed.headers,
    body,
    credentials: "omit",
  });
  if (!response.ok) {
    throw s3Error(response.status, await response.text());
  }
  const read = { text: () => response.text(), blob: () => response.blob(), none: async () => null }[as];
  return { status: response.status, headers: response.headers, body: await read(), signed };
}

/** S3's error answer as an ApiError: <Error><Code>…</Code><Message>…</Message></Error>. */
export function s3Error(status, text) {
  const doc = text ? parseXml(text) : null;
  const code = (doc && xmlText(doc, "Code")) || `HTTP ${status}`;
  const message = (doc && xmlText(doc, "Message")) || (status === 0 ? "the request did not complete" : "");
  return new ApiError(status, code, message, text);
}

// ---- XML --------------------------------------------------------------------------------------------------------

/** Parses an XML answer; null when it is not XML. */
export function parseXml(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  return doc.getElementsByTagName("parsererror").length ? null : doc;
}

/** The text of the first element named `name` under `node` (namespaces ignored), or "". */
export function xmlText(node, name) {
  return xmlAll(node, name)[0]?.textContent ?? "";
}

/** Every element named `name` under `node`, namespaces ignored. */
export function xmlAll(node, name) {
  return Array.from(node.getElementsByTagNameNS("*", name));
}

/** Escapes text for an XML body. */
export function xmlEscape(text) {
  return String(text).replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ---- bytes ------------------------------------------------------------------------------------------------------

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(hex) {
  if (hex.length % 2 !== 0 || /[^0-9a-f]/i.test(hex)) {
    throw new Error("not a hex string");
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
  }
  return bytes;
}

export function toBase64(bytes) {
  let text = "";
  for (const b of bytes) {
    text += String.fromCharCode(b);
  }
  return btoa(text);
}
