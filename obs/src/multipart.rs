//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts and ListMultipartUploads.
//!
//! Encryption is chosen at CreateMultipartUpload, which asks the KMS for the upload's data key
//! (as S3 does); each UploadPart asks the KMS to decrypt it and stores the part as its own AWS
//! Encryption SDK message under it, so no plaintext touches the disk. Completion streams the
//! parts' plaintext into one new message under a fresh data key of the same KMS key — the stored
//! object is a single message whose frames number from 1, readable by any Encryption SDK.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use md5::{Digest as _, Md5};
use shared::{Caller, RequestContext};

use crate::access::{self, Resource};
use crate::chunked::ChunkedDecoder;
use crate::envelope::{self, EncryptedDataKey};
use crate::error::{Error, Result};
use crate::model::{BucketRecord, ObjectRecord, PartRecord, RECORD_FORMAT, SseRecord, UploadRecord, WriteCondition};
use crate::service::{KMS_PROVIDER_ID, Obs, PutInput, refuse_anonymous_kms, validate_key, written_object_acl};
use crate::sse::{CustomerKey, S3_ARN_CONTEXT_KEY, SseRequest};
use crate::store::no_such_upload;

/// What a CompleteMultipartUpload asks for besides its upload.
#[derive(Debug, Clone)]
pub struct CompleteRequest<'a> {
    /// The parts, by number and ETag, in the order given.
    pub parts: &'a [(u32, String)],
    /// The SSE-C key of an SSE-C upload.
    pub customer: Option<&'a CustomerKey>,
    /// `If-None-Match` / `If-Match`.
    pub condition: WriteCondition,
    /// The whole object's checksum as the client computed it (`x-amz-checksum-<algorithm>` of a
    /// FULL_OBJECT upload): checked against the body.
    pub checksum: Option<String>,
    /// When the object is written, Unix milliseconds.
    pub now_millis: i64,
}

/// Smallest part S3 accepts, except for the last one.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Highest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

impl Obs {
    /// CreateMultipartUpload: fixes the object's headers, encryption and ACL (checked now, and again
    /// against the bucket as it is when the upload completes), and (for SSE-KMS) gets the upload's
    /// data key.
    pub async fn create_multipart_upload(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        input: PutInput,
    ) -> Result<UploadRecord> {
        let caller = &request.caller;
        let bucket_record = self.key_for(request, bucket, key, "s3:PutObject")?;
        validate_key(key)?;
        written_object_acl(&bucket_record, &caller.account_id, input.acl.as_ref())?;
        refuse_anonymous_kms(caller, &input.sse)?;
        let (sse, data_key_blob) = match &input.sse {
            SseRequest::None => (SseRecord::None, None),
            SseRequest::Customer(customer) => {
                let object_arn = format!("arn:aws:s3:::{bucket}/{key}");
                let (_, entry) = crate::sse_s3::SseS3Key::new(&customer.key).new_data_key(&object_arn, &self.entropy);
                (crate::service::customer_record(customer, &self.entropy), Some(hex::encode(entry)))
            }
            SseRequest::S3 => {
                let (_, entry) = self.sse_s3_key().new_data_key(&format!("arn:aws:s3:::{bucket}/{key}"), &self.entropy);
                (SseRecord::S3, Some(hex::encode(entry)))
            }
            SseRequest::Kms { .. } => {
                let (data_key, record) = self.new_data_key(caller, bucket, key, &input.sse).await?;
                (record, Some(hex::encode(&data_key.ciphertext_blob)))
            }
        };
        let record = UploadRecord {
            format: RECORD_FORMAT,
            upload_id: self.entropy.uuid(shared::Purpose::ObjectId).simple().to_string(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            initiated_millis: input.now_millis,
            content_type: input.content_type,
            headers: input.headers,
            metadata: input.metadata,
            sse,
            data_key_blob,
            parts: BTreeMap::new(),
            tags: input.tags,
            checksum_algorithm: input.checksum_algorithm.map(|a| a.header_name().to_owned()),
            full_object_checksum: input.full_object_checksum,
            initiator: (caller.account_id != bucket_record.account).then(|| caller.account_id.clone()),
            acl: input.acl,
        };
        self.store().save_upload(record.clone()).await?;
        Ok(record)
    }

    /// ListMultipartUploads: the uploads of the caller's `bucket` whose keys start with `prefix`,
    /// in key order, at most `max`, and whether more follow.
    pub fn list_uploads(
        &self,
        request: &RequestContext,
        bucket: &str,
        prefix: &str,
        max: usize,
    ) -> Result<(Vec<Arc<UploadRecord>>, bool)> {
        self.bucket_for(request, bucket, "s3:ListBucketMultipartUploads")?;
        let mut uploads: Vec<_> =
            self.store().uploads(bucket).into_iter().filter(|u| u.key.starts_with(prefix)).collect();
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        Ok((uploads, truncated))
    }

    /// ListParts: the parts of an upload after part number `marker`, at most `max`, and whether
    /// more follow.
    pub fn list_parts(
        &self,
        request: &RequestContext,
        upload: UploadRef<'_>,
        marker: u32,
        max: usize,
    ) -> Result<(Vec<PartRecord>, bool)> {
        let (_, upload) = self.upload_for(request, upload, "s3:ListMultipartUploadParts")?;
        let after = (std::ops::Bound::Excluded(marker), std::ops::Bound::Unbounded);
        let mut parts: Vec<PartRecord> = upload.parts.range(after).map(|(_, p)| p.clone()).collect();
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok((parts, truncated))
    }

    /// The upload `upload_id` of `bucket`/`key` and its bucket, if the request may do `action` with
    /// it: UploadPart and CompleteMultipartUpload (`s3:PutObject`) are writes of the key, the bucket's
    /// to allow; ListParts and AbortMultipartUpload are the bucket owner's and the initiator's.
    pub fn upload_for(
        &self,
        request: &RequestContext,
        upload: UploadRef<'_>,
        action: &str,
    ) -> Result<(Arc<BucketRecord>, Arc<UploadRecord>)> {
        let UploadRef { bucket, key, upload_id } = upload;
        let bucket_record = match action {
            "s3:PutObject" => self.key_for(request, bucket, key, action)?,
            _ => self.bucket_record(bucket).ok_or_else(|| crate::error::Error::no_such_bucket(bucket))?,
        };
        let record = self
            .store()
            .upload(upload_id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(|| no_such_upload(upload_id))?;
        if action != "s3:PutObject" {
            access::authorize(
                &*self.identities,
                request,
                action,
                &Resource::Upload { bucket: &bucket_record, upload: &record },
            )?;
        }
        Ok((bucket_record, record))
    }

    /// The data key of an encrypted upload (from the KMS for SSE-KMS, so key state applies to
    /// parts), with the encrypted data key entry and the context its parts' messages carry.
    async fn upload_data_key(
        &self,
        caller: &Caller,
        upload: &UploadRecord,
        customer: Option<&CustomerKey>,
    ) -> Result<Option<UploadKey>> {
        let Some(blob) = &upload.data_key_blob else { return Ok(None) };
        let blob = hex::decode(blob).map_err(Error::internal)?;
        let object_arn = format!("arn:aws:s3:::{}/{}", upload.bucket, upload.key);
        match &upload.sse {
            SseRecord::None => Ok(None),
            SseRecord::Customer { .. } => {
                let customer = crate::service::verify_customer_key(&upload.sse, customer)?;
                let plaintext = crate::sse_s3::SseS3Key::new(&customer.key).unwrap(&blob, &object_arn)?;
                let edk = EncryptedDataKey {
                    provider_id: crate::service::SSE_C_PROVIDER_ID.to_owned(),
                    provider_info: crate::sse_s3::PROVIDER_INFO.to_owned(),
                    ciphertext: blob,
                };
                let context = BTreeMap::from([(S3_ARN_CONTEXT_KEY.to_owned(), object_arn)]);
                Ok(Some(UploadKey { plaintext, edk, context }))
            }
            SseRecord::S3 => {
                let plaintext = self.sse_s3_key().unwrap(&blob, &object_arn)?;
                let edk = EncryptedDataKey {
                    provider_id: crate::sse_s3::PROVIDER_ID.to_owned(),
                    provider_info: crate::sse_s3::PROVIDER_INFO.to_owned(),
                    ciphertext: blob,
                };
                let context = BTreeMap::from([(S3_ARN_CONTEXT_KEY.to_owned(), object_arn)]);
                Ok(Some(UploadKey { plaintext, edk, context }))
            }
            SseRecord::Kms { key_arn, context, .. } => {
                let context = context.to_map();
                let plaintext = self.decrypt_data_key(caller, key_arn, &blob, &context).await?;
                let edk = EncryptedDataKey {
                    provider_id: KMS_PROVIDER_ID.to_owned(),
                    provider_info: key_arn.to_string(),
                    ciphertext: blob,
                };
                Ok(Some(UploadKey { plaintext, edk, context }))
            }
        }
    }

    /// UploadPart: stores one part, encrypted under the upload's data key. For an SSE-C upload,
    /// `input.sse` carries the customer's key, which every part must repeat.
    pub async fn upload_part<S, E>(
        &self,
        request: &RequestContext,
        upload: UploadRef<'_>,
        part_number: u32,
        input: PutInput,
        decoder: Option<ChunkedDecoder>,
        body: S,
    ) -> Result<PartRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(Error::InvalidPartNumber { part_number });
        }
        let caller = &request.caller;
        let (_, upload_record) = self.upload_for(request, upload, "s3:PutObject")?;
        let UploadRef { bucket, upload_id, .. } = upload;
        let upload = upload_record;
        let customer = match &input.sse {
            SseRequest::Customer(customer) => Some(customer),
            _ => None,
        };
        let encryptor = match self.upload_data_key(caller, &upload, customer).await? {
            None => None,
            Some(key) => Some(
                envelope::Encryptor::new(
                    &key.plaintext,
                    &key.context,
                    &[key.edk],
                    envelope::FRAME_LENGTH,
                    &self.entropy,
                )
                .map_err(Error::internal)?,
            ),
        };
        let written = self.write_body(bucket, &input, encryptor, decoder, body).await?;
        let part = PartRecord {
            number: part_number,
            etag: format!("\"{}\"", hex::encode(written.md5)),
            size: written.size,
            blob: written.blob.to_string(),
            stored_size: written.stored_size,
            envelope_header_len: written.header_len,
            last_modified_millis: input.now_millis,
            checksum: written.checksum,
        };
        self.store().commit_part(upload_id, part.clone()).await?;
        Ok(part)
    }

    /// CompleteMultipartUpload: checks the part list, then writes the object from the parts.
    pub async fn complete_multipart_upload(
        &self,
        request: &RequestContext,
        upload: UploadRef<'_>,
        completion: CompleteRequest<'_>,
    ) -> Result<Arc<ObjectRecord>> {
        let caller = &request.caller;
        let CompleteRequest { parts, customer, condition, checksum, now_millis } = completion;
        let upload_ref = upload;
        let UploadRef { bucket, key, upload_id } = upload;
        let upload = match self.upload_for(request, upload_ref, "s3:PutObject") {
            Ok((_, upload)) => upload,
            // S3 answers a repeated completion (same upload, same parts) with the same result.
            Err(Error::NoSuchUpload { .. })
                if let Some(record) =
                    self.completed().repeat(upload_id, bucket, key, parts, |k| self.store().object(bucket, k)) =>
            {
                return Ok(record);
            }
            Err(e) => return Err(e),
        };
        if parts.is_empty() {
            return Err(Error::NoParts);
        }
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, (number, etag)) in parts.iter().enumerate() {
            if i > 0 && *number <= parts[i - 1].0 {
                return Err(Error::InvalidPartOrder);
            }
            let part =
                upload.parts.get(number).filter(|p| p.etag.trim_matches('"') == etag.trim_matches('"')).ok_or_else(
                    || Error::InvalidPart { upload_id: upload_id.to_owned(), part_number: *number, etag: etag.clone() },
                )?;
            chosen.push(part.clone());
        }
        if let Some(small) = chosen[..chosen.len() - 1].iter().find(|p| p.size < MIN_PART_SIZE) {
            return Err(Error::EntityTooSmall { size: small.size, min_size: MIN_PART_SIZE, part_number: small.number });
        }
        let etag = multipart_etag(&chosen);
        let part_sizes: Vec<u64> = chosen.iter().map(|part| part.size).collect();
        let part_checksums: Vec<String> = match &upload.checksum_algorithm {
            Some(header) => chosen
                .iter()
                .map(|part| part.checksum.as_ref().filter(|(name, _)| name == header).map(|(_, value)| value.clone()))
                .collect::<Option<Vec<_>>>()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let algorithm = upload.checksum_algorithm.as_deref().and_then(crate::checksum::Algorithm::from_header_name);
        // A FULL_OBJECT checksum is of the whole body, computed as it streams through (and checked
        // against the one the client computed, if it sent it); a composite one is of the parts'.
        let (composite, whole) = match (algorithm, upload.full_object_checksum) {
            (Some(algorithm), true) => (None, Some(algorithm)),
            _ => (upload.checksum_algorithm.as_deref().and_then(|header| composite_checksum(header, &chosen)), None),
        };
        let data_key = self.upload_data_key(caller, &upload, customer).await?.map(|key| key.plaintext);
        let body = self.parts_plaintext(chosen, data_key);
        let sse = match &upload.sse {
            SseRecord::None => SseRequest::None,
            SseRecord::S3 => SseRequest::S3,
            SseRecord::Customer { .. } => {
                SseRequest::Customer(crate::service::verify_customer_key(&upload.sse, customer)?.clone())
            }
            SseRecord::Kms { key_arn, context, user_context, bucket_key } => {
                let mut user = context.to_map();
                user.remove(S3_ARN_CONTEXT_KEY);
                SseRequest::Kms {
                    key_id: Some(key_arn.to_string()),
                    user_context: user_context.clone().map(|raw| (user, raw)),
                    bucket_key: *bucket_key,
                }
            }
        };
        let input = PutInput {
            sse,
            now_millis,
            etag: Some(etag),
            content_type: upload.content_type.clone(),
            headers: upload.headers.clone(),
            metadata: upload.metadata.clone(),
            tags: upload.tags.clone(),
            part_sizes,
            part_checksums,
            composite_checksum: composite,
            checksum: whole.zip(checksum.clone()),
            compute_checksum: whole,
            condition,
            acl: upload.acl.clone(),
            writer: upload.initiator.clone(),
            ..PutInput::default()
        };
        let record = self.put_object(request, bucket, key, input, None, body).await?;
        self.store().remove_upload(upload_id).await?;
        self.completed().remember(upload_id, bucket, key, parts, &record);
        Ok(record)
    }

    /// The plaintext of `parts` in order, decrypting each part's message.
    fn parts_plaintext(
        &self,
        parts: Vec<PartRecord>,
        data_key: Option<zeroize::Zeroizing<[u8; 32]>>,
    ) -> futures::stream::BoxStream<'static, std::io::Result<Bytes>> {
        let backend = self.store().backend().clone();
        let data_key = data_key.map(Arc::new);
        futures::stream::iter(parts)
            .then(move |part| {
                let backend = backend.clone();
                let data_key = data_key.clone();
                async move {
                    crate::service::open_body(
                        &backend,
                        &part.blob,
                        part.stored_size,
                        part.envelope_header_len,
                        data_key.as_deref().map(|k| &**k),
                    )
                    .await
                }
            })
            .map_err(std::io::Error::other)
            .try_flatten()
            .boxed()
    }

    /// AbortMultipartUpload.
    pub async fn abort_multipart_upload(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        self.upload_for(request, UploadRef { bucket, key, upload_id }, "s3:AbortMultipartUpload")?;
        self.store().remove_upload(upload_id).await
    }
}

/// Which upload a request is about.
#[derive(Debug, Clone, Copy)]
pub struct UploadRef<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The object key.
    pub key: &'a str,
    /// The upload id.
    pub upload_id: &'a str,
}

/// The data key of an encrypted upload.
struct UploadKey {
    plaintext: zeroize::Zeroizing<[u8; 32]>,
    edk: EncryptedDataKey,
    context: BTreeMap<String, String>,
}

/// The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, then `-<part count>`.
pub fn multipart_etag(parts: &[PartRecord]) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(hex::decode(part.etag.trim_matches('"')).unwrap_or_default());
    }
    format!("\"{}-{}\"", hex::encode(md5.finalize()), parts.len())
}

/// Completed uploads remembered at most (the oldest is forgotten first).
const COMPLETED_KEPT: usize = 4096;

/// What a completed upload was completed with.
#[derive(Debug)]
struct Completion {
    bucket: String,
    key: String,
    /// SHA-256 of the part list (numbers and ETags), so that memory stays small per upload.
    parts: [u8; 32],
    etag: String,
    /// The version the completion made (in a versioned bucket): a later write of the same bytes
    /// has the same ETag but is not this object.
    version_id: Option<Box<str>>,
}

/// A digest of a CompleteMultipartUpload part list: numbers and unquoted ETags.
fn parts_digest(parts: &[(u32, String)]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    for (number, etag) in parts {
        digest.update(number.to_be_bytes());
        digest.update(etag.trim_matches('"').as_bytes());
        digest.update([0]);
    }
    digest.finalize().into()
}

/// The most recently completed multipart uploads (in memory, bounded): a repeated
/// CompleteMultipartUpload of one of them, with the same parts, answers the same result while the
/// object it made is still the key's current object.
#[derive(Debug, Default)]
pub struct Completed {
    uploads: std::sync::Mutex<(HashMap<String, Completion>, std::collections::VecDeque<String>)>,
}

impl Completed {
    fn remember(&self, upload_id: &str, bucket: &str, key: &str, parts: &[(u32, String)], object: &ObjectRecord) {
        let mut guard = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if order.len() >= COMPLETED_KEPT
            && let Some(oldest) = order.pop_front()
        {
            map.remove(&oldest);
        }
        let completion = Completion {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            parts: parts_digest(parts),
            etag: object.etag.clone(),
            version_id: object.version_id.clone(),
        };
        if map.insert(upload_id.to_owned(), completion).is_none() {
            order.push_back(upload_id.to_owned());
        }
    }

    /// The object a repeated completion stands for, if `upload_id` was completed into
    /// `bucket`/`key` with `parts` and that object (looked up by `current`) is still there.
    fn repeat(
        &self,
        upload_id: &str,
        bucket: &str,
        key: &str,
        parts: &[(u32, String)],
        current: impl FnOnce(&str) -> Option<Arc<ObjectRecord>>,
    ) -> Option<Arc<ObjectRecord>> {
        let guard = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        let done = guard.0.get(upload_id)?;
        if done.bucket != bucket || done.key != key || done.parts != parts_digest(parts) {
            return None;
        }
        current(key).filter(|object| object.etag == done.etag && object.version_id == done.version_id)
    }
}

/// S3's composite checksum of a multipart object whose upload named an algorithm (`header`): the
/// checksum of the parts' raw checksums, concatenated, then `-<part count>`. `None` when a part
/// carries no checksum of that algorithm (copied parts, parts sent without one).
fn composite_checksum(header: &str, parts: &[PartRecord]) -> Option<(String, String)> {
    use base64::Engine;
    let algorithm = crate::checksum::Algorithm::from_header_name(header)?;
    let mut composite = crate::checksum::Checksummer::new(algorithm);
    for part in parts {
        let (name, value) = part.checksum.as_ref()?;
        if !name.eq_ignore_ascii_case(header) {
            return None;
        }
        composite.update(&base64::engine::general_purpose::STANDARD.decode(value).ok()?);
    }
    Some((header.to_owned(), format!("{}-{}", composite.finish(), parts.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_is_md5_of_md5s() {
        // Two parts "a" and "b": md5("a") = 0cc175b9c0f1b6a831c399e269772661, md5("b") = 92eb5ffee6ae2fec3ad71c777531578f.
        let part = |n, etag: &str| PartRecord {
            number: n,
            etag: format!("\"{etag}\""),
            size: 1,
            blob: String::new(),
            stored_size: 1,
            envelope_header_len: None,
            last_modified_millis: 0,
            checksum: None,
        };
        let etag =
            multipart_etag(&[part(1, "0cc175b9c0f1b6a831c399e269772661"), part(2, "92eb5ffee6ae2fec3ad71c777531578f")]);
        let mut md5 = Md5::new();
        md5.update(hex::decode("0cc175b9c0f1b6a831c399e269772661").unwrap());
        md5.update(hex::decode("92eb5ffee6ae2fec3ad71c777531578f").unwrap());
        assert_eq!(etag, format!("\"{}-2\"", hex::encode(md5.finalize())));
    }
}
