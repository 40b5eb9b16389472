// The object store as the page uses it: listings, uploads (progress, multipart above 16 MiB, SSE-C keys), downloads.

import { ApiError, parseXml, presign, s3, s3Error, s3Path, toBase64, xmlAll, xmlEscape, xmlText } from "./api.js";
import { md5 } from "./md5.js";

/** Files larger than this go up in parts (S3's parts are at least 5 MiB but the last). */
export const MULTIPART_THRESHOLD = 16 * 1024 * 1024;
const PART_BYTES = 8 * 1024 * 1024;

/** SSE-C keys generated in this session, by "bucket/key": {key: base64, md5: base64}. S3 keeps no copy. */
const customerKeys = new Map();
const customerKeyListeners = [];

export function onCustomerKeysChanged(listener) {
  customerKeyListeners.push(listener);
}

/** [{object: "bucket/key", key, md5}] */
export function customerKeyList() {
  return Array.from(customerKeys, ([object, value]) => ({ object, ...value }));
}

function customerKeyFor(bucket, key) {
  return customerKeys.get(`${bucket}/${key}`);
}

/** A new random 256-bit SSE-C key: {key, md5} in base64, as S3's headers carry them. */
function newCustomerKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return { key: toBase64(bytes), md5: toBase64(md5(bytes)) };
}

function customerHeaders(customer) {
  return {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": customer.key,
    "x-amz-server-side-encryption-customer-key-md5": customer.md5,
  };
}

/**
 * The headers that ask S3 for an encryption: sse is {type: "aws:kms", keyId} | {type: "AES256"} |
 * {type: "SSE-C", customer} | {type: "none"}.
 */
function sseHeaders(sse) {
  switch (sse.type) {
    case "aws:kms":
      return {
        "x-amz-server-side-encryption": "aws:kms",
        ...(sse.keyId ? { "x-amz-server-side-encryption-aws-kms-key-id": sse.keyId } : {}),
      };
    case "AES256":
      return { "x-amz-server-side-encryption": "AES256" };
    case "SSE-C":
      return customerHeaders(sse.customer);
    default:
      return {};
  }
}

// ---- upload -----------------------------------------------------------------------------------------------------

/**
 * Uploads a Blob (a File) to bucket/key with the encryption asked for; onProgress(sentBytes, totalBytes).
 * Answers {etag, parts, header}: header(name) reads S3's answer to the last request.
 */
export async function upload(bucket, key, blob, sse, onProgress = () => {}) {
  if (sse.type === "SSE-C") {
    sse = { ...sse, customer: sse.customer ?? newCustomerKey() };
  }
  const contentType = blob.type || "application/octet-stream";
  const result =
    blob.size > MULTIPART_THRESHOLD
      ? await uploadInParts(bucket, key, blob, sse, contentType, onProgress)
      : await uploadWhole(bucket, key, blob, sse, contentType, onProgress);
  if (sse.type === "SSE-C") {
    customerKeys.set(`${bucket}/${key}`, sse.customer);
    customerKeyListeners.forEach((listener) => listener());
  }
  return result;
}

async function uploadWhole(bucket, key, blob, sse, contentType, onProgress) {
  const signed = await presign("PUT", s3Path(bucket, key), {
    headers: { "content-type": contentType, ...sseHeaders(sse) },
  });
  const answer = await send(signed, blob, (sent) => onProgress(sent, blob.size));
  onProgress(blob.size, blob.size);
  return { etag: answer.header("etag"), parts: 0, header: answer.header };
}

async function uploadInParts(bucket, key, blob, sse, contentType, onProgress) {
  const path = s3Path(bucket, key);
  const started = await s3("POST", path, {
    query: { uploads: "" },
    headers: { "content-type": contentType, ...sseHeaders(sse) },
  });
  const uploadId = xmlText(parseXml(started.body), "UploadId");
  const partHeaders = sse.type === "SSE-C" ? customerHeaders(sse.customer) : {};
  const etags = [];
  try {
    for (let offset = 0, number = 1; offset < blob.size; offset += PART_BYTES, number++) {
      const part = blob.slice(offset, offset + PART_BYTES);
      const signed = await presign("PUT", path, {
        query: { partNumber: String(number), uploadId },
        headers: partHeaders,
      });
      const answer = await send(signed, part, (sent) => onProgress(offset + sent, blob.size));
      etags.push(answer.header("etag"));
    }
    const body =
      "<CompleteMultipartUpload>" +
      etags.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEscape(etag)}</ETag></Part>`).join("") +
      "</CompleteMultipartUpload>";
    const done = await s3("POST", path, { query: { uploadId }, headers: { "content-type": "application/xml" }, body });
    // CompleteMultipartUpload may answer 200 with an error in its body.
    const doc = parseXml(done.body);
    if (doc?.documentElement.localName === "Error") {
      throw s3Error(200, done.body);
    }
    onProgress(blob.size, blob.size);
    return { etag: doc ? xmlText(doc, "ETag") : "", parts: etags.length, header: (name) => done.headers.get(name) };
  } catch (error) {
    await s3("DELETE", path, { query: { uploadId }, as: "none" }).catch(() => {});
    throw error;
  }
}

/** Sends a signed request with XMLHttpRequest, for its upload progress events. */
function send(signed, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(signed.method, signed.url);
    for (const [name, value] of Object.entries(signed.headers)) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve({ status: xhr.status, header: (name) => xhr.getResponseHeader(name), text: xhr.responseText });
      } else {
        reject(s3Error(xhr.status, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "NetworkError", "the upload did not complete")));
    xhr.send(body);
  });
}

// ---- download ---------------------------------------------------------------------------------------------------

/**
 * Downloads bucket/key (with its SSE-C key when the page made one). Answers {blob, encryption, keyId}; throws ApiError
 * with S3's Code and Message, or a "BodyCut" error when the answer broke off after its headers.
 */
export async function download(bucket, key) {
  const customer = customerKeyFor(bucket, key);
  const signed = await presign("GET", s3Path(bucket, key), { headers: customer ? customerHeaders(customer) : {} });
  const response = await fetch(signed.url, { headers: signed.headers, credentials: "omit", cache: "no-store" });
  if (!response.ok) {
    throw s3Error(response.status, await response.text());
  }
  let blob;
  try {
    blob = await response.blob();
  } catch {
    throw new ApiError(response.status, "BodyCut", "the answer broke off after its headers");
  }
  return {
    blob,
    encryption: response.headers.get("x-amz-server-side-encryption") ?? (customer ? "SSE-C" : "none"),
    keyId: response.headers.get("x-amz-server-side-encryption-aws-kms-key-id"),
  };
}

/** Deletes bucket/key (and forgets its SSE-C key). */
export async function remove(bucket, key) {
  await s3("DELETE", s3Path(bucket, key), { as: "none" });
  if (customerKeys.delete(`${bucket}/${key}`)) {
    customerKeyListeners.forEach((listener) => listener());
  }
}

// ---- buckets and listings ---------------------------------------------------------------------------------------

/** The principal's buckets: [{name, created}]. */
export async function listBuckets() {
  const answer = await s3("GET", "/");
  const doc = parseXml(answer.body);
  return xmlAll(doc, "Bucket").map((bucket) => ({
    name: xmlText(bucket, "Name"),
    created: xmlText(bucket, "CreationDate"),
  }));
}

/** Every object of a bucket (ListObjectsV2, all pages): [{key, size, modified}]. */
export async function listObjects(bucket) {
  const objects = [];
  let token;
  do {
    const query = { "list-type": "2", ...(token ? { "continuation-token": token } : {}) };
    const doc = parseXml((await s3("GET", s3Path(bucket), { query })).body);
    for (const item of xmlAll(doc, "Contents")) {
      objects.push({
        key: xmlText(item, "Key"),
        size: Number(xmlText(item, "Size")),
        modified: xmlText(item, "LastModified"),
      });
    }
    token = xmlText(doc, "IsTruncated") === "true" ? xmlText(doc, "NextContinuationToken") : "";
  } while (token);
  return objects;
}
