// kmsim's S3 through the AWS SDK for JavaScript v3 with its default configuration: presigned URLs
// from @aws-sdk/s3-request-presigner (which add x-amz-checksum-* query parameters by default),
// multipart uploads through @aws-sdk/lib-storage, and S3's refusals of bad URLs.
//
//   node presigned.mjs <endpoint>
//
// Each check throws on failure (the process exits non-zero with the failed assertion);
// tests/clients/test_s3_js.py runs it against a kmsim on an ephemeral port.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";

import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const endpoint = process.argv[2];
assert.ok(endpoint, "usage: node presigned.mjs <endpoint>");
const credentials = { accessKeyId: "test", secretAccessKey: "test" };
// What a user writes: a region, the endpoint, path style; every other setting is the SDK's default.
const s3 = new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials });
const bucket = `js-${randomUUID().slice(0, 12)}`;

/** The `<Code>` of an S3 error document. */
const codeOf = (text) => /<Code>([^<]*)<\/Code>/.exec(text)?.[1];

/** CRC32 (IEEE) of bytes, base64 of its big-endian form, as S3's x-amz-checksum-crc32. */
function crc32Base64(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString("base64");
}

const checks = [];
const check = (name, run) => checks.push({ name, run });

check("default presigned PUT carries a CRC32 parameter, which is verified", async () => {
  const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket: bucket, Key: "empty" }), { expiresIn: 300 });
  const query = new URL(url).searchParams;
  assert.equal(query.get("x-amz-sdk-checksum-algorithm"), "CRC32");
  assert.equal(query.get("x-amz-checksum-crc32"), "AAAAAA==", "the SDK signs the CRC32 of an empty body");
  // The empty body it was presigned for is accepted ...
  let response = await fetch(url, { method: "PUT", body: new Uint8Array() });
  assert.equal(response.status, 200, await response.text());
  assert.equal(response.headers.get("x-amz-checksum-crc32"), "AAAAAA==");
  // ... any other body does not match the signed checksum: S3's BadDigest, nothing stored.
  response = await fetch(url, { method: "PUT", body: new TextEncoder().encode("not empty") });
  assert.equal(response.status, 400);
  assert.equal(codeOf(await response.text()), "BadDigest");
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "empty" }));
  assert.equal(head.ContentLength, 0);
});

check("presigned PUT with the body's CRC32 and SSE-KMS, then a presigned GET", async () => {
  const body = randomBytes(100_000);
  const put = new PutObjectCommand({
    Bucket: bucket,
    Key: "doc.bin",
    ChecksumCRC32: crc32Base64(body),
    ServerSideEncryption: "aws:kms",
  });
  const url = await getSignedUrl(s3, put, { expiresIn: 300 });
  // SSE headers are signed headers of the URL: the uploader must send them.
  let response = await fetch(url, { method: "PUT", body, headers: { "x-amz-server-side-encryption": "aws:kms" } });
  assert.equal(response.status, 200, await response.text());
  assert.equal(response.headers.get("x-amz-server-side-encryption"), "aws:kms");

  const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: "doc.bin" }), { expiresIn: 300 });
  assert.equal(new URL(getUrl).searchParams.get("x-amz-checksum-mode"), "ENABLED");
  response = await fetch(getUrl);
  assert.equal(response.status, 200);
  assert.deepEqual(Buffer.from(await response.arrayBuffer()), body);
  assert.equal(response.headers.get("x-amz-server-side-encryption"), "aws:kms");
  assert.equal(response.headers.get("x-amz-checksum-crc32"), crc32Base64(body));
});

check("with requestChecksumCalculation WHEN_REQUIRED the URL takes any body", async () => {
  const plain = new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  const url = await getSignedUrl(plain, new PutObjectCommand({ Bucket: bucket, Key: "any" }), { expiresIn: 300 });
  assert.equal(new URL(url).searchParams.get("x-amz-checksum-crc32"), null);
  const response = await fetch(url, { method: "PUT", body: new TextEncoder().encode("any body") });
  assert.equal(response.status, 200, await response.text());
});

check("presigned bucket listing", async () => {
  const url = await getSignedUrl(s3, new ListObjectsV2Command({ Bucket: bucket, Prefix: "doc" }), { expiresIn: 60 });
  const response = await fetch(url);
  const text = await response.text();
  assert.equal(response.status, 200, text);
  assert.match(text, /<Key>doc.bin<\/Key>/);
  assert.doesNotMatch(text, /<Key>empty<\/Key>/);
});

check("expired, tampered and foreign URLs are refused as S3 refuses them", async () => {
  const get = new GetObjectCommand({ Bucket: bucket, Key: "doc.bin" });
  const expired = await getSignedUrl(s3, get, { expiresIn: 60, signingDate: new Date(Date.now() - 3_600_000) });
  let response = await fetch(expired);
  let text = await response.text();
  assert.equal(response.status, 403);
  assert.equal(codeOf(text), "AccessDenied");
  assert.match(text, /Request has expired/);

  const url = new URL(await getSignedUrl(s3, get, { expiresIn: 60 }));
  const signature = url.searchParams.get("X-Amz-Signature");
  url.searchParams.set("X-Amz-Signature", (signature[0] === "0" ? "1" : "0") + signature.slice(1));
  response = await fetch(url);
  assert.equal(response.status, 403);
  assert.equal(codeOf(await response.text()), "SignatureDoesNotMatch");

  const stranger = new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: "AKIANOBODY", secretAccessKey: "x" },
  });
  response = await fetch(await getSignedUrl(stranger, get, { expiresIn: 60 }));
  assert.equal(response.status, 403);
  assert.equal(codeOf(await response.text()), "InvalidAccessKeyId");

  const tooLong = new URL(await getSignedUrl(s3, get, { expiresIn: 60 }));
  tooLong.searchParams.set("X-Amz-Expires", "604801");
  response = await fetch(tooLong);
  text = await response.text();
  assert.equal(response.status, 400);
  assert.equal(codeOf(text), "AuthorizationQueryParametersError");
});

check("multipart upload through lib-storage with SSE-KMS", async () => {
  const body = randomBytes(11 * 1024 * 1024 + 5);
  const upload = new Upload({
    client: s3,
    params: { Bucket: bucket, Key: "big.bin", Body: body, ServerSideEncryption: "aws:kms" },
    partSize: 5 * 1024 * 1024,
  });
  const result = await upload.done();
  assert.match(result.ETag, /-3"$/);
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "big.bin" }));
  assert.equal(got.ServerSideEncryption, "aws:kms");
  assert.deepEqual(Buffer.from(await got.Body.transformToByteArray()), body);
});

await s3.send(new CreateBucketCommand({ Bucket: bucket }));
for (const { name, run } of checks) {
  try {
    await run();
  } catch (error) {
    console.error(`FAILED: ${name}`);
    throw error;
  }
  console.log(`ok: ${name}`);
}
