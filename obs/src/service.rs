//! The object store's core: buckets, and objects streamed in and out through server-side
//! encryption. No HTTP here: the S3 front end (`http`) parses requests into these calls.
//!
//! A PUT streams the payload through its digests (MD5, SHA-256, flexible checksum) and, for
//! SSE-KMS, through an AWS Encryption SDK encryptor keyed by a fresh data key from the KMS, into a
//! new body in the backend; only when every check passed and the body is durable is the object's
//! record committed. A GET asks the KMS to decrypt the stored data key (so key state and grants
//! apply at every read) and decrypts only the frames the requested range needs.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest as _, Md5};
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, WriteMultipart};
use shared::Caller;
use shared::KeyService;
use shared::RequestContext;
use shared::entropy::{Entropy, Purpose};
use shared::identity::{AccountWide, Identities};
use zeroize::Zeroizing;

use crate::access::{self, Resource};
use crate::acl::{self, AclRequest, Grant, Grantee, ObjectOwnership, Permission, PublicAccessBlock, canonical_user_id};
use crate::checksum::{self, Algorithm, Checksummer};
use crate::chunked::ChunkedDecoder;
use crate::cors::CorsRule;
use crate::envelope::{self, EncryptedDataKey};
use crate::error::{Error, Result};
use crate::model::{
    BucketEncryption, BucketRecord, ObjectRecord, RECORD_FORMAT, SseRecord, Tag, VersionSel, Versioning, WriteCondition,
};
use crate::sse::{CustomerKey, OBS_MANAGED_ALIAS, S3_ARN_CONTEXT_KEY, S3_MANAGED_ALIAS, SseRequest};
use crate::sse_s3::{self, SseS3Key};
use crate::store::{Deleted, Store, VersionCursor, VersionEntry};

/// The service principal S3 calls the KMS as, recorded as `via_service` in the KMS audit log.
pub const S3_SERVICE_PRINCIPAL: &str = "s3.amazonaws.com";
/// Provider id of KMS-wrapped data keys in an AWS Encryption SDK message.
pub const KMS_PROVIDER_ID: &str = "aws-kms";
/// Stored bytes decrypted at a time on reads (sixteen frames, about 1 MiB).
const DECRYPT_PIECE: usize = 2 * (envelope::FRAME_LENGTH as usize + 32);
/// Decrypted pieces a read may hold ready before the client has taken them.
const DECRYPT_AHEAD: usize = 4;
/// Times a read looks a key up again when the record it found went stale before its body opened.
pub const MAX_STALE_READS: usize = 16;
/// Records a listing reads from the index at a time.
const LIST_BATCH: usize = 1000;
/// Size of the parts the backend writes a body in.
const WRITE_CHUNK: usize = 5 * 1024 * 1024;

/// Everything a PUT says about the object besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct PutInput {
    /// The encryption asked for (after the bucket default).
    pub sse: SseRequest,
    /// The time of the write, Unix milliseconds.
    pub now_millis: i64,
    /// The ETag to give the object instead of one computed from its bytes (multipart).
    pub etag: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Other stored headers by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// User metadata by lowercase name without `x-amz-meta-`.
    pub metadata: BTreeMap<String, String>,
    /// The `Content-MD5` the client sent, decoded.
    pub content_md5: Option<[u8; 16]>,
    /// The hex SHA-256 the client signed, if it signed the payload.
    pub payload_sha256: Option<String>,
    /// A checksum from a header: algorithm and value.
    pub checksum: Option<(Algorithm, String)>,
    /// A checksum announced for the trailer (`x-amz-trailer`).
    pub trailer_checksum: Option<Algorithm>,
    /// `x-amz-decoded-content-length` of an aws-chunked body.
    pub decoded_length: Option<u64>,
    /// What must hold of the key for the write to commit.
    pub condition: WriteCondition,
    /// The object's tags (checked against S3's limits by the caller, [`crate::tagging`]).
    pub tags: Vec<Tag>,
    /// The plaintext sizes of the parts a multipart upload completes with.
    pub part_sizes: Vec<u64>,
    /// The ACL the write asks for (`x-amz-acl`, `x-amz-grant-*`, a form's `acl` field); none: the
    /// private default.
    pub acl: Option<AclRequest>,
    /// The account that writes the object when it is not the request's caller: the initiator of a
    /// multipart upload being completed.
    pub writer: Option<String>,
    /// For CompleteMultipartUpload: the parts' checksums (see `ObjectRecord::part_checksums`).
    pub part_checksums: Vec<String>,
    /// CreateMultipartUpload's `x-amz-checksum-algorithm`; for CompleteMultipartUpload, the
    /// composite checksum the object gets (header name, `base64-N`).
    pub checksum_algorithm: Option<Algorithm>,
    /// The object's checksum when it is computed from parts rather than from its bytes.
    pub composite_checksum: Option<(String, String)>,
    /// CreateMultipartUpload's `x-amz-checksum-type: FULL_OBJECT`.
    pub full_object_checksum: bool,
    /// A checksum to compute over the body and keep, with no value to check it against (the
    /// whole-object checksum of a FULL_OBJECT multipart upload whose completion named none).
    pub compute_checksum: Option<Algorithm>,
}

/// One page of a listing (objects, or versions), with common prefixes rolled up.
#[derive(Debug)]
pub struct ListPage<T: Listed = Arc<ObjectRecord>> {
    /// The entries of the page, in order.
    pub objects: Vec<T>,
    /// The common prefixes of the page, in order.
    pub prefixes: Vec<String>,
    /// Where the next page starts (after the last entry or prefix of this one), if more follow.
    pub next: Option<T::Cursor>,
}

/// An entry of a listing: it has a key, and a listing can resume after it.
pub trait Listed: Clone {
    /// Where a listing resumes.
    type Cursor: Clone;
    /// The entry's key.
    fn key(&self) -> &str;
    /// The place just after this entry.
    fn cursor(&self) -> Self::Cursor;
    /// The place after every entry of `key`.
    fn after_key(key: String) -> Self::Cursor;
    /// The key a place is at.
    fn cursor_key(cursor: &Self::Cursor) -> &str;
}

impl Listed for Arc<ObjectRecord> {
    type Cursor = String;

    fn key(&self) -> &str {
        &self.key
    }

    fn cursor(&self) -> String {
        self.key.clone()
    }

    fn after_key(key: String) -> String {
        key
    }

    fn cursor_key(cursor: &String) -> &str {
        cursor
    }
}

impl Listed for VersionEntry {
    type Cursor = VersionCursor;

    fn key(&self) -> &str {
        &self.record.key
    }

    fn cursor(&self) -> VersionCursor {
        VersionCursor { key: self.record.key.clone(), version: Some(self.record.version_str().to_owned()) }
    }

    fn after_key(key: String) -> VersionCursor {
        VersionCursor { key, version: None }
    }

    fn cursor_key(cursor: &VersionCursor) -> &str {
        &cursor.key
    }
}

/// What a read makes of the record it found ([`Obs::read_latest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlan {
    /// Open the body: all of it, or this plaintext range.
    Open(Option<Range<u64>>),
    /// Stop at the record (a HEAD, or a GET answered from the record alone).
    RecordOnly,
}

/// A stored object and how to read a range of it.
pub struct GetOutput {
    /// The object's record.
    pub record: Arc<ObjectRecord>,
    /// The plaintext range being returned, if a range was asked for.
    pub range: Option<Range<u64>>,
    /// The plaintext bytes.
    pub body: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
}

impl std::fmt::Debug for GetOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetOutput").field("record", &self.record).field("range", &self.range).finish_non_exhaustive()
    }
}

/// Largest bucket policy S3 takes ("Bucket policies are limited to 20 KB in size").
const MAX_BUCKET_POLICY_BYTES: usize = 20 * 1024;

/// The object store.
#[derive(Debug)]
pub struct Obs {
    store: Arc<Store>,
    /// Where data keys, message ids, salts and ids come from (shared with the other services).
    pub(crate) entropy: Arc<Entropy>,
    keys: Arc<dyn KeyService>,
    bucket_keys: crate::bucket_keys::BucketKeys,
    /// Replaced only when a state archive is imported into an empty store ([`Obs::import_sse_s3_key`]).
    sse_s3: std::sync::RwLock<Arc<SseS3Key>>,
    /// Recently completed multipart uploads, so that a repeated CompleteMultipartUpload answers
    /// as S3 does (the same result) rather than NoSuchUpload.
    completed: crate::multipart::Completed,
    /// Whose identity policies apply to a caller ([`AccountWide`] unless kmsim's IAM is plugged in).
    pub(crate) identities: Arc<dyn Identities>,
    /// The runtime the service was made on, if any, where a GET decrypts ahead of its socket: a multi-thread one
    /// lets that run on another core than the connection (whose thread serves only it and its neighbours).
    runtime: Option<tokio::runtime::Handle>,
}

impl Obs {
    /// An object store on `store`, getting SSE-KMS data keys from `keys` and wrapping SSE-S3 data
    /// keys with `sse_s3`.
    pub fn new(store: Store, keys: Arc<dyn KeyService>, sse_s3: SseS3Key) -> Self {
        Obs {
            store: Arc::new(store),
            entropy: Arc::new(Entropy::os()),
            keys,
            bucket_keys: Default::default(),
            sse_s3: std::sync::RwLock::new(Arc::new(sse_s3)),
            completed: Default::default(),
            identities: Arc::new(AccountWide::default()),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// The same object store asking `identities` for callers' identity policies (by default every principal's
    /// identity policies allow everything, [`AccountWide`], so that bucket policies and ACLs alone restrict access).
    pub fn with_identities(mut self, identities: Arc<dyn Identities>) -> Self {
        self.identities = identities;
        self
    }

    /// The same object store drawing its ids, data keys, salts and message ids from `entropy` (the stack's;
    /// seeded under `--deterministic`) instead of the OS.
    pub fn with_entropy(mut self, entropy: Arc<Entropy>) -> Self {
        // A builder step: nothing else holds the store yet.
        Arc::get_mut(&mut self.store).expect("the store is not shared while the service is built").entropy =
            entropy.clone();
        self.entropy = entropy;
        self
    }

    /// The same object store ageing its bucket keys by `clock` (the stack's simulated clock), so that a frozen
    /// clock (`--deterministic`) makes the same calls reuse the same bucket keys however long a run takes.
    pub fn with_clock(mut self, clock: Arc<shared::Clock>) -> Self {
        self.bucket_keys = crate::bucket_keys::BucketKeys::new(clock);
        self
    }

    /// The recently completed multipart uploads.
    pub(crate) fn completed(&self) -> &crate::multipart::Completed {
        &self.completed
    }

    /// The persistence layer.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// How many records were found unusable at start (unreadable, or of an unknown format) and set
    /// aside beside the others as `*.json.unreadable`, their bodies kept.
    pub fn set_aside_records(&self) -> usize {
        self.store.set_aside_records()
    }

    /// Empties the object store: every bucket, object, upload and body (volume snapshots stay),
    /// and the cached bucket keys. Waits for the writes in progress; a write still streaming its
    /// body fails with NoSuchBucket and leaves nothing behind.
    pub async fn reset(&self) -> std::result::Result<(), crate::error::StoreError> {
        self.store.reset().await?;
        self.bucket_keys.clear();
        Ok(())
    }

    /// The service key of SSE-S3.
    pub fn sse_s3_key(&self) -> Arc<SseS3Key> {
        self.sse_s3.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `key` the service key of SSE-S3: for a state import into an empty store, whose SSE-S3 objects were
    /// written under the archive's key.
    pub fn import_sse_s3_key(&self, key: SseS3Key) {
        *self.sse_s3.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }

    /// The caller as the KMS sees a call S3 makes on its behalf.
    fn via_s3(caller: &Caller) -> Caller {
        Caller { via_service: Some(S3_SERVICE_PRINCIPAL.to_owned()), peer: None, ..caller.clone() }
    }

    /// `caller` via S3 in the region of `key_arn` (`arn:aws:kms:REGION:...`): a stored data key is
    /// decrypted where its key lives, whatever region the reading request was signed for.
    fn via_s3_for_key(caller: &Caller, key_arn: &str) -> Caller {
        let mut via = Self::via_s3(caller);
        if let Some(region) = key_arn.split(':').nth(3).filter(|r| !r.is_empty()) {
            region.clone_into(&mut via.region);
        }
        via
    }

    // ---- buckets -------------------------------------------------------------------------------

    /// The bucket `name` if the request may do `action` with it ([`access::authorize`]):
    /// NoSuchBucket, or AccessDenied.
    pub fn bucket_for(&self, request: &RequestContext, name: &str, action: &str) -> Result<Arc<BucketRecord>> {
        let bucket = self.store.bucket(name).ok_or_else(|| Error::no_such_bucket(name))?;
        access::authorize(&*self.identities, request, action, &Resource::Bucket(&bucket))?;
        Ok(bucket)
    }

    /// The bucket of `key` if the request may do `action` (a write or a delete) with the key: the
    /// bucket decides, whoever owns what the key holds.
    pub fn key_for(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        action: &str,
    ) -> Result<Arc<BucketRecord>> {
        let record = self.store.bucket(bucket).ok_or_else(|| Error::no_such_bucket(bucket))?;
        access::authorize(&*self.identities, request, action, &Resource::Key { bucket: &record, key })?;
        Ok(record)
    }

    /// CreateBucket, with the ownership setting and ACL the request asks for (`settings`). A new
    /// bucket blocks public access (all four settings, as S3's since April 2023), so a public ACL
    /// is refused (AccessDenied); under `BucketOwnerEnforced` any ACL but the private one is
    /// InvalidBucketAclWithObjectOwnership. Unsigned requests create nothing.
    pub async fn create_bucket(
        &self,
        request: &RequestContext,
        name: &str,
        region: &str,
        now_millis: i64,
        settings: NewBucket,
    ) -> Result<()> {
        let caller = &request.caller;
        if access::is_anonymous(caller) {
            return Err(Error::AccessDenied);
        }
        access::authorize_account(&*self.identities, request, "s3:CreateBucket", &format!("arn:aws:s3:::{name}"))?;
        validate_bucket_name(name)?;
        let public_access_block = settings.public_access_block;
        let acl = bucket_acl(&caller.account_id, settings.ownership, public_access_block.as_ref(), settings.acl)?;
        let record = BucketRecord {
            format: RECORD_FORMAT,
            name: name.to_owned(),
            account: caller.account_id.clone(),
            region: region.to_owned(),
            created_millis: now_millis,
            encryption: None,
            cors: Vec::new(),
            tags: Vec::new(),
            versioning: None,
            ownership: Some(settings.ownership),
            acl,
            public_access_block,
            policy: None,
            compiled_policy: Default::default(),
        };
        match self.store.create_bucket(record).await? {
            Ok(()) => Ok(()),
            Err(existing) if existing.account == caller.account_id => {
                Err(Error::BucketAlreadyOwnedByYou { bucket: name.to_owned() })
            }
            Err(_) => Err(Error::BucketAlreadyExists { bucket: name.to_owned() }),
        }
    }

    /// Resets the ACL of a bucket the caller re-creates where S3 answers that with 200 (its legacy
    /// region): to the ACL the request asks for, or the private one, checked as a new bucket's ACL is
    /// against the bucket's ownership setting and Block Public Access.
    pub async fn reset_bucket_acl(&self, request: &RequestContext, name: &str, acl: Option<AclRequest>) -> Result<()> {
        let bucket = self.bucket_for(request, name, "s3:CreateBucket")?;
        if acl.is_none() && bucket.acl.is_none() {
            // Private already: nothing to write.
            return Ok(());
        }
        let account = bucket.account.clone();
        self.store
            .update_bucket(name, |record| {
                let ownership = record.object_ownership();
                record.acl = bucket_acl(&account, ownership, record.public_access_block.as_ref(), acl)?;
                Ok(())
            })
            .await
    }

    /// DeleteBucket (only when empty).
    pub async fn delete_bucket(&self, request: &RequestContext, name: &str) -> Result<()> {
        self.bucket_for(request, name, "s3:DeleteBucket")?;
        if !self.store.delete_bucket(name).await? {
            return Err(Error::BucketNotEmpty { bucket: name.to_owned() });
        }
        Ok(())
    }

    /// ListBuckets: the caller's buckets (an unsigned request has none to list: AccessDenied).
    pub fn list_buckets(&self, request: &RequestContext) -> Result<Vec<Arc<BucketRecord>>> {
        let caller = &request.caller;
        if access::is_anonymous(caller) {
            return Err(Error::AccessDenied);
        }
        access::authorize_account(&*self.identities, request, "s3:ListAllMyBuckets", "*")?;
        Ok(self.store.buckets().into_iter().filter(|b| b.account == caller.account_id).collect())
    }

    /// PutBucketEncryption / DeleteBucketEncryption (`None`).
    pub async fn set_bucket_encryption(
        &self,
        request: &RequestContext,
        name: &str,
        encryption: Option<BucketEncryption>,
    ) -> Result<()> {
        self.bucket_for(request, name, "s3:PutEncryptionConfiguration")?;
        self.store
            .update_bucket(name, |record| {
                record.encryption = encryption;
                Ok(())
            })
            .await
    }

    /// PutBucketCors (valid `rules`, see [`crate::cors::validate`]) and DeleteBucketCors (no rules).
    pub async fn set_bucket_cors(&self, request: &RequestContext, name: &str, rules: Vec<CorsRule>) -> Result<()> {
        self.bucket_for(request, name, "s3:PutBucketCORS")?;
        self.store
            .update_bucket(name, |record| {
                record.cors = rules;
                Ok(())
            })
            .await
    }

    /// PutObjectTagging (valid `tags`) and DeleteObjectTagging (none), of the current object or
    /// of one version: the record is rewritten with its body untouched.
    pub async fn set_object_tags(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
        tags: Vec<Tag>,
    ) -> Result<Arc<ObjectRecord>> {
        let bucket_record = self.store.bucket(bucket).ok_or_else(|| Error::no_such_bucket(bucket))?;
        let action = match version {
            None => "s3:PutObjectTagging",
            Some(_) => "s3:PutObjectVersionTagging",
        };
        crate::tagging::validate(&tags, crate::tagging::MAX_OBJECT_TAGS)?;
        // The body's tags are the request's (`s3:RequestObjectTag/<key>`).
        let tagged;
        let request = if tags.is_empty() {
            request
        } else {
            let mut with_tags = request.clone();
            with_tags.conditions.extend(crate::tagging::request_condition_keys(&tags));
            tagged = with_tags;
            &tagged
        };
        let check = |record: &ObjectRecord| {
            access::authorize(
                &*self.identities,
                request,
                action,
                &Resource::Object { bucket: &bucket_record, object: record },
            )
        };
        let updated =
            self.store.update_object(bucket, key, version, check, |record| record.tags = tags.into_boxed_slice()).await;
        updated.map_err(|e| self.hide_missing(request, &bucket_record, e))
    }

    /// PutObjectAcl of the current object or of one version: its ACL becomes `acl` (a canned ACL's
    /// grants for the object's owner), its record is rewritten with its body untouched. Refused with
    /// AccessControlListNotSupported while ACLs are disabled, and with AccessDenied when the ACL is
    /// public and Block Public Access blocks public ACLs.
    pub async fn set_object_acl(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
        acl: AclRequest,
    ) -> Result<Arc<ObjectRecord>> {
        let bucket_record = self.store.bucket(bucket).ok_or_else(|| Error::no_such_bucket(bucket))?;
        let action = match version {
            None => "s3:PutObjectAcl",
            Some(_) => "s3:PutObjectVersionAcl",
        };
        let bucket_owner_id = canonical_user_id(&bucket_record.account);
        let grants_of = |record: &ObjectRecord| {
            acl.object_grants(&canonical_user_id(record.owner_account(&bucket_record)), &bucket_owner_id)
        };
        let check = |record: &ObjectRecord| {
            access::authorize(
                &*self.identities,
                request,
                action,
                &Resource::Object { bucket: &bucket_record, object: record },
            )?;
            if !bucket_record.acls_enabled() {
                return Err(Error::AccessControlListNotSupported);
            }
            if acl::is_public(&grants_of(record)) && bucket_record.blocks_public_acls() {
                return Err(Error::AccessDenied);
            }
            Ok(())
        };
        let change = |record: &mut ObjectRecord| {
            let owner = record.owner_account(&bucket_record).to_owned();
            record.acl = stored_grants(&owner, grants_of(record)).map(Vec::into_boxed_slice);
        };
        let updated = self.store.update_object(bucket, key, version, check, change).await;
        updated.map_err(|e| self.hide_missing(request, &bucket_record, e))
    }

    /// PutBucketAcl: the bucket's ACL becomes `acl`. Refused with AccessControlListNotSupported while
    /// ACLs are disabled, and with AccessDenied when the ACL is public and Block Public Access blocks
    /// public ACLs.
    pub async fn set_bucket_acl(&self, request: &RequestContext, name: &str, acl: AclRequest) -> Result<()> {
        let bucket = self.bucket_for(request, name, "s3:PutBucketAcl")?;
        let owner = bucket.account.clone();
        self.store
            .update_bucket(name, |record| {
                if !record.acls_enabled() {
                    return Err(Error::AccessControlListNotSupported);
                }
                let grants = acl.bucket_grants(&canonical_user_id(&owner));
                if acl::is_public(&grants) && record.blocks_public_acls() {
                    return Err(Error::AccessDenied);
                }
                record.acl = stored_grants(&owner, grants);
                Ok(())
            })
            .await
    }

    /// PutBucketOwnershipControls and DeleteBucketOwnershipControls (`None`). Disabling ACLs
    /// (`BucketOwnerEnforced`) needs a bucket ACL that grants nobody but the bucket's owner
    /// (InvalidBucketAclWithObjectOwnership otherwise); objects' ACLs stay stored, out of force.
    pub async fn set_bucket_ownership(
        &self,
        request: &RequestContext,
        name: &str,
        ownership: Option<ObjectOwnership>,
    ) -> Result<()> {
        let bucket = self.bucket_for(request, name, "s3:PutBucketOwnershipControls")?;
        let owner_id = canonical_user_id(&bucket.account);
        self.store
            .update_bucket(name, |record| {
                let only_owner =
                    record.acl.iter().flatten().all(|g| g.grantee == Grantee::CanonicalUser(owner_id.clone()));
                if ownership == Some(ObjectOwnership::BucketOwnerEnforced) && !only_owner {
                    return Err(Error::InvalidBucketAclWithObjectOwnership);
                }
                record.ownership = ownership;
                Ok(())
            })
            .await
    }

    /// PutPublicAccessBlock and DeletePublicAccessBlock (`None`).
    pub async fn set_public_access_block(
        &self,
        request: &RequestContext,
        name: &str,
        block: Option<PublicAccessBlock>,
    ) -> Result<()> {
        self.bucket_for(request, name, "s3:PutBucketPublicAccessBlock")?;
        self.store
            .update_bucket(name, |record| {
                record.public_access_block = block;
                Ok(())
            })
            .await
    }

    /// The bucket `name` for a bucket policy operation: its owner account's root user may always get, put and
    /// delete the policy ("even if the policy explicitly denies"); anyone else as the policies and ACLs say.
    fn bucket_for_policy(&self, request: &RequestContext, name: &str, action: &str) -> Result<Arc<BucketRecord>> {
        let bucket = self.store.bucket(name).ok_or_else(|| Error::no_such_bucket(name))?;
        if request.caller.principal_arn != shared::caller::root_principal(&bucket.account) {
            access::authorize(&*self.identities, request, action, &Resource::Bucket(&bucket))?;
        }
        Ok(bucket)
    }

    /// PutBucketPolicy (a policy document) and DeleteBucketPolicy (`None`). A document is checked by the policy
    /// grammar (MalformedPolicy with S3's message), must name only this bucket and its objects as resources, and
    /// is refused (AccessDenied) when it is public and Block Public Access blocks public policies.
    pub async fn set_bucket_policy(
        &self,
        request: &RequestContext,
        name: &str,
        document: Option<String>,
    ) -> Result<()> {
        let action = if document.is_some() { "s3:PutBucketPolicy" } else { "s3:DeleteBucketPolicy" };
        let bucket = self.bucket_for_policy(request, name, action)?;
        if let Some(text) = &document {
            if text.len() > MAX_BUCKET_POLICY_BYTES {
                return Err(Error::MalformedPolicy("Policies must be less than 20 KB in size.".into()));
            }
            let parsed = policy::Policy::parse(text, policy::PolicyKind::Resource)
                .map_err(|e| Error::MalformedPolicy(e.s3_message()))?;
            let bucket_arn = format!("arn:aws:s3:::{name}");
            if !resources_within(text, &bucket_arn) {
                return Err(Error::MalformedPolicy("Policy has invalid resource".into()));
            }
            if bucket.public_access_block.is_some_and(|b| b.block_public_policy) && parsed.is_public() {
                return Err(Error::PolicyDenied(format!(
                    "User: {} is not authorized to perform: s3:PutBucketPolicy on resource: \"{bucket_arn}\" because public policies are blocked by the BlockPublicPolicy block public access setting.",
                    request.caller.principal_arn
                )));
            }
        }
        self.store
            .update_bucket(name, |record| {
                record.set_policy(document);
                Ok(())
            })
            .await
    }

    /// GetBucketPolicy: the document as stored (NoSuchBucketPolicy without one).
    pub fn bucket_policy(&self, request: &RequestContext, name: &str) -> Result<String> {
        let bucket = self.bucket_for_policy(request, name, "s3:GetBucketPolicy")?;
        bucket.policy.clone().ok_or_else(|| Error::NoSuchBucketPolicy { bucket: name.to_owned() })
    }

    /// GetBucketPolicyStatus: whether the bucket policy makes the bucket public (S3's "meaning of public").
    pub fn bucket_policy_is_public(&self, request: &RequestContext, name: &str) -> Result<bool> {
        let bucket = self.bucket_for(request, name, "s3:GetBucketPolicyStatus")?;
        match bucket.bucket_policy() {
            Some(policy) => Ok(policy.is_public()),
            None => Err(Error::NoSuchBucketPolicy { bucket: name.to_owned() }),
        }
    }

    /// PutBucketVersioning.
    pub async fn set_bucket_versioning(
        &self,
        request: &RequestContext,
        name: &str,
        versioning: Versioning,
    ) -> Result<()> {
        self.bucket_for(request, name, "s3:PutBucketVersioning")?;
        self.store
            .update_bucket(name, |record| {
                record.versioning = Some(versioning);
                Ok(())
            })
            .await
    }

    /// PutBucketTagging (valid `tags`) and DeleteBucketTagging (none).
    pub async fn set_bucket_tags(&self, request: &RequestContext, name: &str, tags: Vec<Tag>) -> Result<()> {
        crate::tagging::validate(&tags, crate::tagging::MAX_BUCKET_TAGS)?;
        self.bucket_for(request, name, "s3:PutBucketTagging")?;
        self.store
            .update_bucket(name, |record| {
                record.tags = tags;
                Ok(())
            })
            .await
    }

    /// A bucket's record whoever asks, for what S3 decides before authorization: the CORS headers
    /// (a preflight carries no credentials) and the region a request must be signed for.
    pub fn bucket_record(&self, name: &str) -> Option<Arc<BucketRecord>> {
        self.store.bucket(name)
    }

    /// How S3 answers a read of a key or version that is not there: as it is to a caller who may
    /// list the bucket, AccessDenied to any other (who must not learn what the bucket holds).
    fn hide_missing(&self, request: &RequestContext, bucket: &BucketRecord, error: Error) -> Error {
        let missing =
            matches!(error, Error::NoSuchKey { .. } | Error::NoSuchVersion { .. } | Error::DeleteMarker { .. });
        if missing && access::authorize(&*self.identities, request, "s3:ListBucket", &Resource::Bucket(bucket)).is_err()
        {
            return Error::AccessDenied;
        }
        error
    }

    // ---- objects -------------------------------------------------------------------------------

    /// PutObject: streams `body` in, encrypting as `input.sse` says, and commits the object, owned and
    /// with the ACL the bucket's ownership setting makes of `input.acl` ([`written_object_acl`]),
    /// all checked before the first byte is read.
    pub async fn put_object<S, E>(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        input: PutInput,
        decoder: Option<ChunkedDecoder>,
        body: S,
    ) -> Result<Arc<ObjectRecord>>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let caller = &request.caller;
        let bucket_record = self.key_for(request, bucket, key, "s3:PutObject")?;
        validate_key(key)?;
        let writer = input.writer.as_deref().unwrap_or(&caller.account_id);
        let WrittenAcl { owner, grants: acl } = written_object_acl(&bucket_record, writer, input.acl.as_ref())?;
        refuse_anonymous_kms(caller, &input.sse)?;
        if input.condition != WriteCondition::None {
            let current = self.store.object(bucket, key);
            if !input.condition.holds(current.as_deref()) {
                return Err(input.condition.refusal(key, current.as_deref()));
            }
        }
        let (encryptor, sse_record) = self.start_encryption(caller, bucket, key, &input.sse).await?;
        let written = self.write_body(bucket, &input, encryptor, decoder, body).await?;
        let etag = match (&input.etag, &sse_record) {
            (Some(etag), _) => etag.clone(),
            (None, SseRecord::None | SseRecord::S3) => format!("\"{}\"", hex::encode(written.md5)),
            // S3's ETag of an SSE-KMS object is not the MD5 of the data; this is the MD5 of what is stored.
            (None, SseRecord::Kms { .. } | SseRecord::Customer { .. }) => {
                // Not the MD5 of the data (as S3's ETags of such objects are not): derived from it
                // and the body's unique path, so no second pass over the stored bytes is needed.
                let mut etag = Md5::new();
                etag.update(written.md5);
                etag.update(written.blob.as_ref().as_bytes());
                format!("\"{}\"", hex::encode(etag.finalize()))
            }
        };
        let record = ObjectRecord {
            format: RECORD_FORMAT,
            key: key.to_owned(),
            size: written.size,
            etag,
            last_modified_millis: input.now_millis,
            content_type: input.content_type,
            headers: input.headers,
            metadata: input.metadata,
            sse: sse_record,
            blob: written.blob.to_string(),
            stored_size: written.stored_size,
            envelope_header_len: written.header_len,
            checksum: input.composite_checksum.or(written.checksum),
            tags: input.tags.into_boxed_slice(),
            part_sizes: input.part_sizes.into_boxed_slice(),
            part_checksums: input.part_checksums.into_boxed_slice(),
            version_id: None,
            sequence: 0,
            delete_marker: false,
            owner,
            acl,
        };
        self.store.commit_object_since(bucket, record, written.resets, &input.condition).await
    }

    /// Streams a body into a new, durable blob of `bucket`, checking every digest the client
    /// gave; on any failure nothing is left behind.
    pub(crate) async fn write_body<S, E>(
        &self,
        bucket: &str,
        input: &PutInput,
        mut encryptor: Option<envelope::Encryptor>,
        decoder: Option<ChunkedDecoder>,
        body: S,
    ) -> Result<Written>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let resets = self.store.resets();
        let blob = self.store.new_blob_path(bucket).await;
        let upload = self.store.backend().put_multipart(&blob).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, WRITE_CHUNK);
        let mut pipeline = Pipeline::new(input);
        let trailers = match pump(body, decoder, &mut pipeline, encryptor.as_mut(), &mut writer).await {
            Ok(trailers) => trailers,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        let encrypted = encryptor.is_some();
        if let Some(encryptor) = encryptor {
            let mut tail = Vec::new();
            if let Err(e) = encryptor.finish(&mut tail) {
                let _ = writer.abort().await;
                return Err(Error::internal(e));
            }
            pipeline.stored(&tail);
            writer.write(&tail);
        }
        let checksum = match pipeline.check(input, &trailers) {
            Ok(checksum) => checksum,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        writer.finish().await?;
        self.store.sync(&blob).await?;
        Ok(Written {
            resets,
            blob,
            size: pipeline.size,
            stored_size: pipeline.stored_size,
            md5: pipeline.md5.finalize().into(),
            header_len: encrypted.then_some(pipeline.header_len),
            checksum,
        })
    }

    /// Gets a data key for a new SSE-KMS object and starts its message.
    async fn start_encryption(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        sse: &SseRequest,
    ) -> Result<(Option<envelope::Encryptor>, SseRecord)> {
        match sse {
            SseRequest::None => return Ok((None, SseRecord::None)),
            SseRequest::Customer(customer) => {
                let object_arn = format!("arn:aws:s3:::{bucket}/{key}");
                let (data_key, entry) = SseS3Key::new(&customer.key).new_data_key(&object_arn, &self.entropy);
                let context = BTreeMap::from([(S3_ARN_CONTEXT_KEY.to_owned(), object_arn)]);
                let edk = EncryptedDataKey {
                    provider_id: SSE_C_PROVIDER_ID.to_owned(),
                    provider_info: sse_s3::PROVIDER_INFO.to_owned(),
                    ciphertext: entry,
                };
                let encryptor =
                    envelope::Encryptor::new(&data_key, &context, &[edk], envelope::FRAME_LENGTH, &self.entropy)
                        .map_err(Error::internal)?;
                return Ok((Some(encryptor), customer_record(customer, &self.entropy)));
            }
            SseRequest::S3 => {
                let object_arn = format!("arn:aws:s3:::{bucket}/{key}");
                let (data_key, entry) = self.sse_s3_key().new_data_key(&object_arn, &self.entropy);
                let context = BTreeMap::from([(S3_ARN_CONTEXT_KEY.to_owned(), object_arn)]);
                let edk = EncryptedDataKey {
                    provider_id: sse_s3::PROVIDER_ID.to_owned(),
                    provider_info: sse_s3::PROVIDER_INFO.to_owned(),
                    ciphertext: entry,
                };
                let encryptor =
                    envelope::Encryptor::new(&data_key, &context, &[edk], envelope::FRAME_LENGTH, &self.entropy)
                        .map_err(Error::internal)?;
                return Ok((Some(encryptor), SseRecord::S3));
            }
            SseRequest::Kms { bucket_key: true, .. } => {
                return self.start_bucket_key_encryption(caller, bucket, key, sse).await;
            }
            SseRequest::Kms { .. } => {}
        }
        let (data_key, record) = self.new_data_key(caller, bucket, key, sse).await?;
        let SseRecord::Kms { context, .. } = &record else {
            return Err(Error::internal("SSE-KMS without a context"));
        };
        let edk = EncryptedDataKey {
            provider_id: KMS_PROVIDER_ID.to_owned(),
            provider_info: data_key.key_arn.clone(),
            ciphertext: data_key.ciphertext_blob.clone(),
        };
        let encryptor = envelope::Encryptor::new(
            &data_key.plaintext,
            &context.to_map(),
            &[edk],
            envelope::FRAME_LENGTH,
            &self.entropy,
        )
        .map_err(Error::internal)?;
        Ok((Some(encryptor), record))
    }

    /// Starts the message of an object written with an S3 Bucket Key: its data key is derived from
    /// the bucket key, which the KMS is asked for only when the cached one has expired.
    async fn start_bucket_key_encryption(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        sse: &SseRequest,
    ) -> Result<(Option<envelope::Encryptor>, SseRecord)> {
        let SseRequest::Kms { key_id, user_context, .. } = sse else {
            return Err(Error::internal("a bucket key for an unencrypted write"));
        };
        let via = Self::via_s3(caller);
        let key_id = self.write_key_id(&via, key_id.as_deref()).await?;
        let user: BTreeMap<String, String> = user_context.as_ref().map(|(m, _)| m.clone()).unwrap_or_default();
        let mut bucket_context = user.clone();
        bucket_context.insert(S3_ARN_CONTEXT_KEY.to_owned(), format!("arn:aws:s3:::{bucket}"));
        let object_arn = format!("arn:aws:s3:::{bucket}/{key}");
        let object_key = self
            .bucket_keys
            .object_key(self.keys.as_ref(), &via, &key_id, &bucket_context, &object_arn, &self.entropy)
            .await?;
        let mut object_context = user;
        object_context.insert(S3_ARN_CONTEXT_KEY.to_owned(), object_arn);
        let edk = EncryptedDataKey {
            provider_id: crate::bucket_keys::PROVIDER_ID.to_owned(),
            provider_info: object_key.key_arn.clone(),
            ciphertext: object_key.entry,
        };
        let encryptor = envelope::Encryptor::new(
            &object_key.plaintext,
            &object_context,
            &[edk],
            envelope::FRAME_LENGTH,
            &self.entropy,
        )
        .map_err(Error::internal)?;
        let record = SseRecord::Kms {
            key_arn: object_key.key_arn.into(),
            context: bucket_context.into(),
            user_context: user_context.as_ref().map(|(_, raw)| raw.clone()),
            bucket_key: true,
        };
        Ok((Some(encryptor), record))
    }

    /// The data key of a stored SSE-KMS object, from the KMS: the object's own data key, or its
    /// bucket key from which the object's key is derived.
    async fn object_data_key(
        &self,
        caller: &Caller,
        bucket: &str,
        record: &ObjectRecord,
        header: &envelope::Header,
        customer: Option<&CustomerKey>,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let object_arn = format!("arn:aws:s3:::{bucket}/{}", record.key);
        if let SseRecord::Customer { .. } = &record.sse {
            let customer = verify_customer_key(&record.sse, customer)?;
            let edk = header
                .encrypted_data_keys()
                .iter()
                .find(|k| k.provider_id == SSE_C_PROVIDER_ID)
                .ok_or_else(|| corrupted(record, "no SSE-C data key"))?;
            return SseS3Key::new(&customer.key).unwrap(&edk.ciphertext, &object_arn);
        }
        if record.sse == SseRecord::S3 {
            let edk = header
                .encrypted_data_keys()
                .iter()
                .find(|k| k.provider_id == sse_s3::PROVIDER_ID)
                .ok_or_else(|| corrupted(record, "no SSE-S3 data key"))?;
            return self.sse_s3_key().unwrap(&edk.ciphertext, &object_arn);
        }
        let SseRecord::Kms { key_arn, context, .. } = &record.sse else {
            return Err(Error::internal("not an encrypted object"));
        };
        let context = &context.to_map();
        for edk in header.encrypted_data_keys() {
            if edk.provider_id == KMS_PROVIDER_ID {
                return self.decrypt_data_key(caller, key_arn, &edk.ciphertext, context).await;
            }
            if edk.provider_id == crate::bucket_keys::PROVIDER_ID {
                let (salt, blob) = crate::bucket_keys::split_entry(&edk.ciphertext)
                    .ok_or_else(|| corrupted(record, "short bucket key entry"))?;
                let bucket_key = self.decrypt_data_key(caller, key_arn, blob, context).await?;
                return crate::bucket_keys::derive(&bucket_key, salt, &object_arn);
            }
        }
        Err(corrupted(record, "no data key the KMS can decrypt"))
    }

    /// A fresh data key from the KMS for an SSE-KMS write of `bucket`/`key`, and the record of the
    /// encryption (key ARN and context).
    pub(crate) async fn new_data_key(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        sse: &SseRequest,
    ) -> Result<(shared::key_service::DataKey, SseRecord)> {
        let SseRequest::Kms { key_id, user_context, bucket_key } = sse else {
            return Err(Error::internal("a data key for an unencrypted write"));
        };
        let via = Self::via_s3(caller);
        let key_id = self.write_key_id(&via, key_id.as_deref()).await?;
        let mut context: BTreeMap<String, String> = user_context.as_ref().map(|(m, _)| m.clone()).unwrap_or_default();
        context.insert(S3_ARN_CONTEXT_KEY.to_owned(), format!("arn:aws:s3:::{bucket}/{key}"));
        let data_key = self.keys.generate_data_key(&via, &key_id, &context).await.map_err(Error::Kms)?;
        let record = SseRecord::Kms {
            key_arn: data_key.key_arn.clone().into(),
            context: context.into(),
            user_context: user_context.as_ref().map(|(_, raw)| raw.clone()),
            bucket_key: *bucket_key,
        };
        Ok((data_key, record))
    }

    /// The KMS key an SSE-KMS write uses: the one named, else S3's service-managed key. The
    /// service-managed keys (`alias/aws/s3`, and OBS's `alias/obs/default` that OBS requests name)
    /// are created on first use.
    async fn write_key_id(&self, via: &Caller, key_id: Option<&str>) -> Result<String> {
        let managed = match key_id {
            None => S3_MANAGED_ALIAS,
            Some(OBS_MANAGED_ALIAS) => OBS_MANAGED_ALIAS,
            Some(id) => return Ok(id.to_owned()),
        };
        self.keys.service_managed_key(via, managed).await.map_err(Error::Kms)
    }

    /// Asks the KMS to decrypt a stored data key under `key_arn`, on behalf of `caller` via S3, in
    /// the key's region.
    pub(crate) async fn decrypt_data_key(
        &self,
        caller: &Caller,
        key_arn: &str,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let via = Self::via_s3_for_key(caller, key_arn);
        let plain = self.keys.decrypt(&via, blob, context).await.map_err(Error::Kms)?;
        to_data_key(&plain).ok_or_else(|| Error::internal("a data key of the wrong size"))
    }

    /// The record of an object (the key's current one, or `version`) if the request may do `action`
    /// with it (HeadObject, GetObjectTagging, GetObjectAttributes, GetObjectAcl): its owner's
    /// account, or a grant of its ACL ([`access::authorize`]). A key or version that is not there is
    /// NoSuchKey or NoSuchVersion to a caller who may list the bucket, AccessDenied to any other.
    pub fn object_for(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
        action: &str,
    ) -> Result<(Arc<BucketRecord>, Arc<ObjectRecord>)> {
        let bucket_record = self.store.bucket(bucket).ok_or_else(|| Error::no_such_bucket(bucket))?;
        let record =
            self.store.find(bucket, key, version).map_err(|e| self.hide_missing(request, &bucket_record, e))?;
        access::authorize(
            &*self.identities,
            request,
            action,
            &Resource::Object { bucket: &bucket_record, object: &record },
        )?;
        Ok((bucket_record, record))
    }

    /// HeadObject: the record of an object (the key's current one, or `version`) the request may
    /// read (`s3:GetObject`, `s3:GetObjectVersion`; see [`Obs::object_for`]).
    pub fn head_object(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
    ) -> Result<Arc<ObjectRecord>> {
        let action = if version.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
        let (_, record) = self.object_for(request, bucket, key, version, action)?;
        // Reading an SSE-KMS object needs the KMS on someone's behalf.
        if access::is_anonymous(&request.caller) && matches!(record.sse, SseRecord::Kms { .. }) {
            return Err(Error::KmsNeedsSignature);
        }
        Ok(record)
    }

    /// GetObject of `range` (plaintext bytes; `None` for all of it) of the object `record`
    /// describes (found by a read the request was allowed). A record that went stale meanwhile (its
    /// body deleted by an overwrite or a DELETE) is an error here: readers that can start over use
    /// [`Obs::read_object`].
    async fn get_object(
        &self,
        caller: &Caller,
        bucket: &str,
        record: Arc<ObjectRecord>,
        range: Option<Range<u64>>,
        customer: Option<&CustomerKey>,
    ) -> Result<GetOutput> {
        let key = record.key.clone();
        match self.read_object(caller, bucket, record, range, customer).await? {
            Some(output) => Ok(output),
            None => Err(Error::ObjectChanged { key }),
        }
    }

    /// Reads the object at `key` (or its `version`) as it is now: looks it up, lets `plan` check the record and say
    /// what to read of it, and opens its body. A record can go stale between its lookup and the
    /// opening of its body (an overwrite or a DELETE removed the body): the key is then looked up
    /// again, and the new object (or NoSuchKey) answered; after [`MAX_STALE_READS`] lookups,
    /// ObjectChanged. `plan`'s errors are the caller's own (a front end's wire error). The request
    /// must be allowed to read the object ([`Obs::head_object`]).
    pub async fn read_latest<E: From<Error>>(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
        customer: Option<&CustomerKey>,
        mut plan: impl FnMut(&Arc<ObjectRecord>) -> std::result::Result<ReadPlan, E>,
    ) -> std::result::Result<(Arc<ObjectRecord>, Option<GetOutput>), E> {
        let caller = &request.caller;
        let mut attempts = 0;
        loop {
            let record = self.head_object(request, bucket, key, version)?;
            let range = match plan(&record)? {
                ReadPlan::RecordOnly => return Ok((record, None)),
                ReadPlan::Open(range) => range,
            };
            attempts += 1;
            if attempts < MAX_STALE_READS {
                if let Some(output) = self.read_object(caller, bucket, record.clone(), range, customer).await? {
                    return Ok((record, Some(output)));
                }
            } else {
                let output = self.get_object(caller, bucket, record.clone(), range, customer).await?;
                return Ok((record, Some(output)));
            }
        }
    }

    /// GetObject of `range` of the object `record` describes, or `None` if the record is stale:
    /// an overwrite or DELETE removed its body after the record was looked up. The caller then
    /// looks the key up again (the new object, or 404). Once the body is open, it is read to the
    /// end whatever happens to the key: an open file outlives its unlinking, and the other
    /// backends hand out the bytes or a stream of the object as it was when opened. `record` must come
    /// from a read the caller was allowed ([`Obs::read_latest`]).
    async fn read_object(
        &self,
        caller: &Caller,
        bucket: &str,
        record: Arc<ObjectRecord>,
        range: Option<Range<u64>>,
        customer: Option<&CustomerKey>,
    ) -> Result<Option<GetOutput>> {
        match self.open_object(caller, bucket, &record, range.clone(), customer).await {
            Ok(body) => Ok(Some(GetOutput { record, range, body })),
            Err(Opening::Failed(e)) => Err(e),
            Err(Opening::Gone(e)) => {
                let version = match &record.version_id {
                    None => VersionSel::Null,
                    Some(id) => VersionSel::Id(id.to_string()),
                };
                let current = self.store.version(bucket, &record.key, &version);
                if current.is_some_and(|c| c.blob == record.blob) {
                    // The index still points at the body: it is really missing.
                    return Err(corrupted(&record, format!("its body is missing: {e}")));
                }
                Ok(None)
            }
        }
    }

    async fn open_object(
        &self,
        caller: &Caller,
        bucket: &str,
        record: &ObjectRecord,
        range: Option<Range<u64>>,
        customer: Option<&CustomerKey>,
    ) -> std::result::Result<futures::stream::BoxStream<'static, std::io::Result<Bytes>>, Opening> {
        check_customer_key(record, customer)?;
        let blob = StorePath::from(record.blob.as_str());
        let backend = self.store.backend().clone();
        let body = match &record.sse {
            SseRecord::None => {
                if record.stored_size != record.size {
                    return Err(corrupted(record, "its size and stored size differ").into());
                }
                let stored = range.clone().unwrap_or(0..record.size);
                if stored.is_empty() {
                    // Nothing to read, but the body must still be there and whole.
                    let meta = backend.head(&blob).await.map_err(Opening::from_store)?;
                    check_stored_size(record, meta.size)?;
                    futures::stream::empty().boxed()
                } else {
                    read_stored(&backend, &blob, stored, record).await?
                }
            }
            SseRecord::Kms { .. } | SseRecord::S3 | SseRecord::Customer { .. } => {
                let header_len = record
                    .envelope_header_len
                    .ok_or_else(|| Error::internal("encrypted object without header length"))?;
                let header = read_header(&backend, &blob, header_len).await.map_err(|e| match e {
                    ReadHeader::Store(e) => Opening::from_store(e),
                    ReadHeader::Parse(e) => corrupted(record, e).into(),
                })?;
                // The message's framing is the authority on the plaintext's length: the record's
                // size must give exactly the stored length, or the record lies.
                let expected = envelope::ciphertext_len(header_len, header.frame_length(), record.size);
                if expected != record.stored_size {
                    return Err(corrupted(
                        record,
                        format!(
                            "a message of {} plaintext bytes is {expected} bytes long, the record says {}",
                            record.size, record.stored_size
                        ),
                    )
                    .into());
                }
                let data_key = self.object_data_key(caller, bucket, record, &header, customer).await?;
                match &range {
                    Some(r) => {
                        let plan = envelope::plan_range(header_len, header.frame_length(), record.size, r.clone())
                            .map_err(|e| corrupted(record, e))?;
                        let decryptor = envelope::RangeDecryptor::new(&header, &data_key, &plan)
                            .map_err(|e| corrupted(record, e))?;
                        let stored = read_stored(&backend, &blob, plan.stored.clone(), record).await?;
                        decrypt_stream(self.runtime.as_ref(), stored, Decrypting::Range(decryptor), r.end - r.start)
                    }
                    None => {
                        let decryptor =
                            envelope::Decryptor::new(&header, &data_key).map_err(|e| corrupted(record, e))?;
                        let stored = read_stored(&backend, &blob, header_len..record.stored_size, record).await?;
                        decrypt_stream(self.runtime.as_ref(), stored, Decrypting::Whole(decryptor), record.size)
                    }
                }
            }
        };
        Ok(body)
    }

    /// DeleteObject (no error for a missing key or version): of `version` for good, else of the
    /// key's object (a delete marker in a versioned bucket).
    pub async fn delete_object(
        &self,
        request: &RequestContext,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
        now_millis: i64,
    ) -> Result<Deleted> {
        let action = if version.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
        self.key_for(request, bucket, key, action)?;
        match version {
            Some(version) => self.store.delete_version(bucket, key, version).await,
            None => self.store.delete_object(bucket, key, now_millis).await,
        }
    }

    /// ListObjects / ListObjectsV2: one page of at most `max_keys` objects and common prefixes
    /// (keys starting with `prefix`, rolled up at the first `delimiter` after it) after
    /// `start_after`.
    pub fn list_page(
        &self,
        request: &RequestContext,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<ListPage> {
        page_of(prefix, delimiter, start_after.map(str::to_owned), max_keys, |after, limit| {
            self.list_objects(request, bucket, prefix, after.map(String::as_str), limit)
        })
    }

    /// ListObjectVersions: one page of at most `max_keys` versions, delete markers and common
    /// prefixes, by key and then newest first, after `after`.
    pub fn list_versions_page(
        &self,
        request: &RequestContext,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<VersionCursor>,
        max_keys: usize,
    ) -> Result<ListPage<VersionEntry>> {
        self.bucket_for(request, bucket, "s3:ListBucketVersions")?;
        page_of(prefix, delimiter, after, max_keys, |after, limit| {
            self.store.list_versions(bucket, prefix, after, limit).ok_or_else(|| Error::no_such_bucket(bucket))
        })
    }

    /// The objects of a bucket after `after` with keys starting with `prefix`, at most `limit`.
    pub fn list_objects(
        &self,
        request: &RequestContext,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<ObjectRecord>>> {
        self.bucket_for(request, bucket, "s3:ListBucket")?;
        self.store.list(bucket, prefix, after, limit).ok_or_else(|| Error::no_such_bucket(bucket))
    }
}

/// One page of a listing of at most `max_keys` entries and common prefixes (keys starting with
/// `prefix`, rolled up at the first `delimiter` after it) after `start_after`, from `fetch`, which
/// gives the entries after a place in batches.
fn page_of<T: Listed>(
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<T::Cursor>,
    max_keys: usize,
    mut fetch: impl FnMut(Option<&T::Cursor>, usize) -> Result<Vec<T>>,
) -> Result<ListPage<T>> {
    let mut page = ListPage { objects: Vec::new(), prefixes: Vec::new(), next: None };
    let mut after = start_after;
    loop {
        let batch = fetch(after.as_ref(), LIST_BATCH)?;
        if batch.is_empty() {
            return Ok(page);
        }
        for entry in &batch {
            let rest = &entry.key()[prefix.len()..];
            let common = delimiter
                .and_then(|d| rest.find(d).map(|i| (i, d.len())))
                .map(|(i, len)| format!("{prefix}{}", &rest[..i + len]));
            // An entry rolled up into the last common prefix, or into one an earlier page returned,
            // adds nothing: it neither fills the page nor makes it truncated.
            if let Some(common) = &common
                && (page.prefixes.last() == Some(common)
                    || after
                        .as_ref()
                        .map(T::cursor_key)
                        .is_some_and(|a| a >= common.as_str() && a.starts_with(common.as_str())))
            {
                continue;
            }
            if page.objects.len() + page.prefixes.len() == max_keys {
                // The page ends at its last entry or prefix, whichever comes later.
                let last_entry = page.objects.last();
                page.next = match (last_entry, page.prefixes.last()) {
                    (Some(e), Some(p)) if p.as_str() > e.key() => Some(T::after_key(p.clone())),
                    (Some(e), _) => Some(e.cursor()),
                    (None, p) => p.map(|p| T::after_key(p.clone())),
                };
                return Ok(page);
            }
            match common {
                Some(common) => page.prefixes.push(common),
                None => page.objects.push(entry.clone()),
            }
        }
        after = batch.last().map(Listed::cursor);
        // Skip the rest of a rolled-up prefix at once.
        if let (Some(last_prefix), Some(a)) = (page.prefixes.last(), &after)
            && T::cursor_key(a).starts_with(last_prefix.as_str())
        {
            after = Some(T::after_key(format!("{last_prefix}\u{10FFFF}")));
        }
    }
}

/// What CreateBucket asks for besides the bucket's name and region.
#[derive(Debug, Clone)]
pub struct NewBucket {
    /// `x-amz-object-ownership`, or the dialect's default (S3: `BucketOwnerEnforced`).
    pub ownership: ObjectOwnership,
    /// `x-amz-acl` or `x-amz-grant-*`, if any.
    pub acl: Option<AclRequest>,
    /// The Block Public Access the bucket starts with (S3 gives a new bucket all four settings).
    pub public_access_block: Option<PublicAccessBlock>,
}

/// The ACL to store for a bucket of `account` that asks for `acl` under `ownership` and `block`:
/// none for the private default (and for any ACL while ACLs are disabled), the grants else.
/// InvalidBucketAclWithObjectOwnership for an ACL that grants anyone but the owner while ACLs are
/// disabled; AccessDenied for a public ACL that Block Public Access blocks.
fn bucket_acl(
    account: &str,
    ownership: ObjectOwnership,
    block: Option<&PublicAccessBlock>,
    acl: Option<AclRequest>,
) -> Result<Option<Vec<Grant>>> {
    let Some(acl) = acl else { return Ok(None) };
    let owner_id = canonical_user_id(account);
    let grants = acl.bucket_grants(&owner_id);
    if ownership == ObjectOwnership::BucketOwnerEnforced {
        let only_owner = grants.iter().all(|g| g.grantee == Grantee::CanonicalUser(owner_id.clone()));
        return if only_owner { Ok(None) } else { Err(Error::InvalidBucketAclWithObjectOwnership) };
    }
    if acl::is_public(&grants) && block.is_some_and(|b| b.block_public_acls) {
        return Err(Error::AccessDenied);
    }
    Ok(stored_grants(account, grants))
}

/// `grants` as a record keeps them: none when they are the private default of `owner` (its
/// FULL_CONTROL alone).
fn stored_grants(owner: &str, grants: Vec<Grant>) -> Option<Vec<Grant>> {
    let private = grants.len() == 1 && grants[0] == Grant::user(canonical_user_id(owner), Permission::FullControl);
    (!private).then_some(grants)
}

/// The owner and the ACL of a new object, as its record keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WrittenAcl {
    /// The owning account when it is not the bucket's owner (`ObjectRecord::owner`).
    pub owner: Option<Box<str>>,
    /// The grants when they are not the private default (`ObjectRecord::acl`).
    pub grants: Option<Box<[Grant]>>,
}

/// The owner and ACL of an object that `writer` (an account id, `""` for an unsigned request)
/// writes to `bucket` asking for `acl` (none: private), as a record keeps them (none for the
/// bucket's owner and for the private default), as the bucket's ownership setting decides:
///
/// - `BucketOwnerEnforced`: the bucket's owner owns it; the write may ask for no ACL or for one that
///   gives the bucket's owner FULL_CONTROL and nobody else anything
///   ([`acl::gives_bucket_owner_full_control`]), else AccessControlListNotSupported.
/// - `BucketOwnerPreferred`: the bucket's owner owns it when the write asks for the
///   `bucket-owner-full-control` canned ACL, the writer else.
/// - `ObjectWriter` (and no ownership controls): the writer owns it.
///
/// With ACLs enabled, a public ACL is refused (AccessDenied) while Block Public Access blocks public
/// ACLs. A canned ACL grants as asked by the writer (`bucket-owner-full-control`: the writer's and
/// the bucket owner's FULL_CONTROL).
pub fn written_object_acl(bucket: &BucketRecord, writer: &str, acl: Option<&AclRequest>) -> Result<WrittenAcl> {
    let bucket_owner_id = canonical_user_id(&bucket.account);
    let writer_id = canonical_user_id(writer);
    let grants = acl.map(|acl| acl.object_grants(&writer_id, &bucket_owner_id));
    let ownership = bucket.object_ownership();
    if ownership == ObjectOwnership::BucketOwnerEnforced {
        if grants.is_some_and(|g| !acl::gives_bucket_owner_full_control(&g, &bucket_owner_id, &writer_id)) {
            return Err(Error::AccessControlListNotSupported);
        }
        return Ok(WrittenAcl::default());
    }
    if grants.as_deref().is_some_and(acl::is_public) && bucket.blocks_public_acls() {
        return Err(Error::AccessDenied);
    }
    let to_bucket_owner =
        ownership == ObjectOwnership::BucketOwnerPreferred && acl.is_some_and(AclRequest::is_bucket_owner_full_control);
    let owner = if to_bucket_owner { bucket.account.as_str() } else { writer };
    let grants = grants.and_then(|g| stored_grants(owner, g)).map(Vec::into_boxed_slice);
    Ok(WrittenAcl { owner: (owner != bucket.account).then(|| owner.into()), grants })
}

/// A write of SSE-KMS data needs the KMS on someone's behalf: an unsigned request is refused, as
/// S3 refuses it.
pub(crate) fn refuse_anonymous_kms(caller: &Caller, sse: &SseRequest) -> Result<()> {
    if access::is_anonymous(caller) && matches!(sse, SseRequest::Kms { .. }) {
        return Err(Error::KmsNeedsSignature);
    }
    Ok(())
}

/// Provider id of the encrypted data key entry of an SSE-C object (the data key wrapped by the
/// customer's key, with the object ARN as AAD).
pub const SSE_C_PROVIDER_ID: &str = "kmsim-sse-c";

/// A read of an SSE-C object must carry the customer's key, and a read of another object must not.
pub fn check_customer_key(record: &ObjectRecord, customer: Option<&CustomerKey>) -> Result<()> {
    match (&record.sse, customer) {
        (SseRecord::Customer { .. }, None) => Err(Error::CustomerKeyRequired),
        (SseRecord::Customer { .. }, Some(_)) | (_, None) => Ok(()),
        (_, Some(_)) => Err(Error::EncryptionNotApplicable),
    }
}

/// The SSE-C record of a new object or upload: a random salt and the HMAC of the key under it.
pub(crate) fn customer_record(customer: &CustomerKey, entropy: &Entropy) -> SseRecord {
    let salt: [u8; 16] = entropy.bytes(Purpose::Nonce);
    let key_hmac = auth::sigv4::hmac(customer.key.as_ref(), &salt);
    SseRecord::Customer { key_salt: hex::encode(salt), key_hmac: hex::encode(key_hmac) }
}

/// Checks that `customer` is the key an SSE-C object or upload was written with (constant time).
pub(crate) fn verify_customer_key<'a>(sse: &SseRecord, customer: Option<&'a CustomerKey>) -> Result<&'a CustomerKey> {
    let SseRecord::Customer { key_salt, key_hmac } = sse else { return Err(Error::internal("not an SSE-C record")) };
    let customer = customer.ok_or(Error::CustomerKeyRequired)?;
    let salt = hex::decode(key_salt).map_err(Error::internal)?;
    let expected = hex::decode(key_hmac).map_err(Error::internal)?;
    let computed = auth::sigv4::hmac(customer.key.as_ref(), &salt);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(computed.as_slice(), expected.as_slice())) {
        return Err(Error::AccessDenied);
    }
    Ok(customer)
}

fn to_data_key(plain: &Zeroizing<Vec<u8>>) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return None;
    }
    key.copy_from_slice(plain);
    Some(key)
}

/// A stored object that does not decrypt: tampered with or damaged at rest. Never wrong bytes.
fn corrupted(record: &ObjectRecord, detail: impl std::fmt::Display) -> Error {
    Error::internal(format!("stored object {} does not decrypt: {detail}", record.key))
}

/// A body written by [`Obs::write_body`].
pub(crate) struct Written {
    /// [`Store::resets`] when the body's writing began.
    pub(crate) resets: u64,
    pub(crate) blob: StorePath,
    pub(crate) size: u64,
    pub(crate) stored_size: u64,
    pub(crate) md5: [u8; 16],
    pub(crate) header_len: Option<u64>,
    pub(crate) checksum: Option<(String, String)>,
}

/// The digests and counters a PUT keeps as the payload streams through.
struct Pipeline {
    md5: Md5,
    sha256: Option<sha2::Sha256>,
    checksum: Option<(Algorithm, Checksummer)>,
    size: u64,
    stored_size: u64,
    header_len: u64,
}

impl Pipeline {
    fn new(input: &PutInput) -> Self {
        let algorithm = input.checksum.as_ref().map(|(a, _)| *a).or(input.trailer_checksum).or(input.compute_checksum);
        Pipeline {
            md5: Md5::new(),
            sha256: input.payload_sha256.as_ref().map(|_| sha2::Digest::new()),
            checksum: algorithm.map(|a| (a, Checksummer::new(a))),
            size: 0,
            stored_size: 0,
            header_len: 0,
        }
    }

    fn payload(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(h) = &mut self.sha256 {
            sha2::Digest::update(h, data);
        }
        if let Some((_, c)) = &mut self.checksum {
            c.update(data);
        }
        self.size += data.len() as u64;
    }

    fn stored(&mut self, data: &[u8]) {
        self.stored_size += data.len() as u64;
    }

    /// Every digest the client gave must match before the object is committed. Returns the
    /// flexible checksum (header name and value), if one was given.
    fn check(&mut self, input: &PutInput, trailers: &crate::chunked::Trailers) -> Result<Option<(String, String)>> {
        if let Some(expected) = input.decoded_length
            && expected != self.size
        {
            return Err(Error::DecodedLengthMismatch);
        }
        if let Some(expected) = &input.content_md5
            && self.md5.clone().finalize().as_slice() != expected
        {
            return Err(Error::ContentMd5Mismatch);
        }
        if let (Some(expected), Some(h)) = (&input.payload_sha256, self.sha256.take())
            && !hex::encode(sha2::Digest::finalize(h)).eq_ignore_ascii_case(expected)
        {
            return Err(Error::ContentSha256Mismatch);
        }
        if let Some((algorithm, c)) = self.checksum.take() {
            let computed = c.finish();
            let claimed = match &input.checksum {
                Some((_, value)) => Some(value.clone()),
                None => trailers.values.get(algorithm.header_name()).cloned(),
            };
            match claimed {
                Some(claimed) => {
                    checksum::check(algorithm, &computed, &claimed)?;
                    return Ok(Some((algorithm.header_name().to_owned(), computed)));
                }
                None if input.compute_checksum == Some(algorithm) => {
                    return Ok(Some((algorithm.header_name().to_owned(), computed)));
                }
                None => {
                    return Err(Error::TrailerMissing { header: algorithm.header_name() });
                }
            }
        }
        Ok(None)
    }
}

/// Why a body stream failed: the core's own error when the body is made of stored bytes (the
/// parts of CompleteMultipartUpload), else the request body broke off.
fn body_error(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    let error = error.into();
    let reason = error.to_string();
    let error = match error.downcast::<std::io::Error>() {
        Ok(io) => match io.into_inner() {
            Some(inner) => inner,
            None => return Error::BodyInterrupted { reason },
        },
        Err(other) => other,
    };
    match error.downcast::<Error>() {
        Ok(error) => Error::SourceFailed { error },
        Err(_) => Error::BodyInterrupted { reason },
    }
}

/// Moves the request body through decoding, digests and encryption into the writer.
async fn pump<S, E>(
    mut body: S,
    mut decoder: Option<ChunkedDecoder>,
    pipeline: &mut Pipeline,
    mut encryptor: Option<&mut envelope::Encryptor>,
    writer: &mut WriteMultipart,
) -> Result<crate::chunked::Trailers>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // The encryptor writes the message header with its first output.
    if let Some(encryptor) = encryptor.as_deref() {
        pipeline.header_len = encryptor.header().serialized_len() as u64;
    }
    let mut pieces = Vec::new();
    let mut sealed = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(body_error)?;
        pieces.clear();
        match &mut decoder {
            Some(decoder) => decoder.push(&chunk, &mut pieces)?,
            None => pieces.push(chunk),
        }
        for piece in &pieces {
            pipeline.payload(piece);
            match encryptor.as_deref_mut() {
                Some(encryptor) => {
                    sealed.clear();
                    encryptor.push(piece, &mut sealed).map_err(Error::internal)?;
                    pipeline.stored(&sealed);
                    writer.write(&sealed);
                }
                None => {
                    pipeline.stored(piece);
                    writer.write(piece);
                }
            }
        }
        writer.wait_for_capacity(2).await?;
    }
    match decoder {
        Some(decoder) => decoder.finish(),
        None => Ok(crate::chunked::Trailers::default()),
    }
}

/// Why a stored object could not be opened for reading.
enum Opening {
    /// Its body is not in the store (deleted by an overwrite or a DELETE, if the record is stale).
    Gone(object_store::Error),
    /// Any other failure, as the client gets it.
    Failed(Error),
}

impl Opening {
    fn from_store(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Opening::Gone(e),
            e => Opening::Failed(e.into()),
        }
    }
}

impl From<Error> for Opening {
    fn from(e: Error) -> Self {
        Opening::Failed(e)
    }
}

enum ReadHeader {
    Store(object_store::Error),
    Parse(envelope::EnvelopeError),
}

/// Reads and parses the message header at the start of a stored body.
async fn read_header(
    backend: &Arc<dyn object_store::ObjectStore>,
    blob: &StorePath,
    header_len: u64,
) -> std::result::Result<envelope::Header, ReadHeader> {
    let bytes = backend.get_range(blob, 0..header_len).await.map_err(ReadHeader::Store)?;
    envelope::Header::parse(&bytes).map_err(ReadHeader::Parse)
}

/// The stored body must be exactly as long as the record says.
fn check_stored_size(record: &ObjectRecord, actual: u64) -> std::result::Result<(), Opening> {
    if actual != record.stored_size {
        return Err(
            corrupted(record, format!("its body is {actual} bytes, the record says {}", record.stored_size)).into()
        );
    }
    Ok(())
}

/// The plaintext of a whole stored body: as stored, or decrypted with `data_key` when the body is
/// a message (`header_len` set).
pub(crate) async fn open_body(
    backend: &Arc<dyn object_store::ObjectStore>,
    blob: &str,
    stored_size: u64,
    header_len: Option<u64>,
    data_key: Option<&[u8; 32]>,
) -> Result<futures::stream::BoxStream<'static, std::io::Result<Bytes>>> {
    let path = StorePath::from(blob);
    match (header_len, data_key) {
        (None, _) if stored_size == 0 => Ok(futures::stream::empty().boxed()),
        (None, _) => read_range(backend, &path, 0..stored_size).await,
        (Some(header_len), Some(data_key)) => {
            let header = read_header(backend, &path, header_len).await.map_err(|e| match e {
                ReadHeader::Store(e) => Error::from(e),
                ReadHeader::Parse(e) => Error::internal(format!("part {blob} does not decrypt: {e}")),
            })?;
            let decryptor = envelope::Decryptor::new(&header, data_key).map_err(Error::internal)?;
            let stored = read_range(backend, &path, header_len..stored_size).await?;
            Ok(decrypt_stream(None, stored, Decrypting::Whole(decryptor), u64::MAX))
        }
        (Some(_), None) => Err(Error::internal("an encrypted body without its data key")),
    }
}

/// Streams stored bytes `range` of a body.
async fn read_range(
    backend: &Arc<dyn object_store::ObjectStore>,
    blob: &StorePath,
    range: Range<u64>,
) -> Result<futures::stream::BoxStream<'static, std::io::Result<Bytes>>> {
    let options = GetOptions { range: Some(GetRange::Bounded(range)), ..GetOptions::default() };
    let result = backend.get_opts(blob, options).await?;
    Ok(result.into_stream().map(|r| r.map_err(std::io::Error::other)).boxed())
}

/// Streams stored bytes `range` of an object's body, once the body is open and as long as its
/// record says.
async fn read_stored(
    backend: &Arc<dyn object_store::ObjectStore>,
    blob: &StorePath,
    range: Range<u64>,
    record: &ObjectRecord,
) -> std::result::Result<futures::stream::BoxStream<'static, std::io::Result<Bytes>>, Opening> {
    let options = GetOptions { range: Some(GetRange::Bounded(range)), ..GetOptions::default() };
    let result = backend.get_opts(blob, options).await.map_err(Opening::from_store)?;
    check_stored_size(record, result.meta.size)?;
    Ok(result.into_stream().map(|r| r.map_err(std::io::Error::other)).boxed())
}

enum Decrypting {
    Whole(envelope::Decryptor),
    Range(envelope::RangeDecryptor),
}

/// Decrypts a stream of stored frames, releasing each frame's plaintext only once it verified;
/// a failure ends the stream with an error (the client sees a cut-off body, never wrong bytes).
///
/// Decryption runs in its own task, up to [`DECRYPT_AHEAD`] pieces ahead of the socket, so that
/// on a multi-core machine the next piece is decrypted while the last one is being sent: on `runtime`
/// (the runtime the service was made on) when given, else on the caller's.
///
/// `expected` is the plaintext length the caller announced (`u64::MAX` if none): the framing
/// decides how much plaintext there is, and a stream that would give more or fewer bytes ends
/// with an error instead.
fn decrypt_stream(
    runtime: Option<&tokio::runtime::Handle>,
    stored: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
    decrypting: Decrypting,
    expected: u64,
) -> futures::stream::BoxStream<'static, std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(DECRYPT_AHEAD);
    let mut plaintext = decrypt_in_pieces(stored, decrypting);
    let mut released = 0u64;
    let length_error = move |released: u64| {
        tracing::error!(released, expected, "a stored object's framing disagrees with its record's size");
        std::io::Error::other(format!("the object's framing holds {released}+ bytes, its record says {expected}"))
    };
    let decrypting = async move {
        while let Some(mut item) = plaintext.next().await {
            if let Ok(bytes) = &item {
                released = released.saturating_add(bytes.len() as u64);
                if released > expected {
                    item = Err(length_error(released));
                }
            }
            let failed = item.is_err();
            // A closed receiver means the client went away: stop reading and decrypting.
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
        if expected != u64::MAX && released != expected {
            let _ = tx.send(Err(length_error(released))).await;
        }
    };
    match runtime {
        Some(runtime) => drop(runtime.spawn(decrypting)),
        None => drop(tokio::spawn(decrypting)),
    }
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// The decryption behind [`decrypt_stream`], one piece of at most [`DECRYPT_PIECE`] stored bytes at a time.
fn decrypt_in_pieces(
    stored: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
    decrypting: Decrypting,
) -> futures::stream::BoxStream<'static, std::io::Result<Bytes>> {
    // Decrypt in pieces of a few frames, whatever size the backend hands out (an in-memory store
    // gives the whole range at once): plaintext is released as it verifies and memory stays bounded.
    let stored = stored
        .flat_map(|item| {
            let pieces: Vec<std::io::Result<Bytes>> = match item {
                Ok(bytes) => (0..bytes.len())
                    .step_by(DECRYPT_PIECE)
                    .map(|at| Ok(bytes.slice(at..(at + DECRYPT_PIECE).min(bytes.len()))))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(pieces)
        })
        .boxed();
    futures::stream::unfold(Some((stored, decrypting)), |state| async move {
        let (mut stored, mut decrypting) = state?;
        loop {
            match stored.next().await {
                Some(Ok(bytes)) => {
                    let mut out = Vec::with_capacity(bytes.len());
                    let pushed = match &mut decrypting {
                        Decrypting::Whole(d) => d.push(&bytes, &mut out),
                        Decrypting::Range(d) => d.push(&bytes, &mut out),
                    };
                    if let Err(e) = pushed {
                        tracing::error!(error = %e, "a stored object failed authentication while streaming");
                        return Some((Err(std::io::Error::other(e)), None));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), Some((stored, decrypting))));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    let finished = match decrypting {
                        Decrypting::Whole(d) => d.finish(),
                        Decrypting::Range(d) => d.finish(),
                    };
                    return match finished {
                        Ok(()) => None,
                        Err(e) => {
                            tracing::error!(error = %e, "a stored object is truncated");
                            Some((Err(std::io::Error::other(e)), None))
                        }
                    };
                }
            }
        }
    })
    .boxed()
}

/// Bucket names: 3–63 of lowercase letters, digits, `-` and `.`, starting and ending with a letter
/// or digit, not an IP address.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let valid = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    if !valid {
        return Err(Error::InvalidBucketName { bucket: name.to_owned() });
    }
    Ok(())
}

/// Object keys: 1–1024 bytes.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 1024 {
        return Err(Error::KeyTooLong);
    }
    Ok(())
}

/// Parses a `Range: bytes=a-b` header against an object of `size` bytes. `Ok(None)` means the
/// whole object (no header, or a form S3 ignores).
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<Range<u64>>> {
    let Some(header) = header else { return Ok(None) };
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else { return Ok(None) };
    let invalid = || Error::InvalidRange { range: header.to_owned(), size };
    let range = match (start.trim(), end.trim()) {
        ("", "") => return Ok(None),
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| invalid())?;
            if n == 0 || size == 0 {
                return Err(invalid());
            }
            size.saturating_sub(n)..size
        }
        (start, "") => {
            let start: u64 = start.parse().map_err(|_| invalid())?;
            if start >= size {
                return Err(invalid());
            }
            start..size
        }
        (start, end) => {
            let (start, end): (u64, u64) = match (start.parse(), end.parse()) {
                (Ok(s), Ok(e)) => (s, e),
                _ => return Ok(None),
            };
            if start > end {
                return Ok(None);
            }
            if start >= size {
                return Err(invalid());
            }
            start..end.min(size - 1) + 1
        }
    };
    Ok(Some(range))
}

/// The ETag and last-modified conditions of a GET or HEAD.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`, Unix seconds.
    pub if_modified_since: Option<i64>,
    /// `If-Unmodified-Since`, Unix seconds.
    pub if_unmodified_since: Option<i64>,
}

/// What the conditions say about an object: serve it, 304, or 412.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Serve,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

impl Conditions {
    /// Evaluates the conditions as S3 does (RFC 7232 with S3's precedence).
    pub fn evaluate(&self, record: &ObjectRecord) -> Verdict {
        let etag_matches = |list: &str| crate::model::etag_matches(list, &record.etag);
        let modified = record.last_modified_millis / 1000;
        if let Some(list) = &self.if_match {
            if !etag_matches(list) {
                return Verdict::PreconditionFailed;
            }
        } else if self.if_unmodified_since.is_some_and(|t| modified > t) {
            return Verdict::PreconditionFailed;
        }
        if let Some(list) = &self.if_none_match {
            if etag_matches(list) {
                return Verdict::NotModified;
            }
        } else if self.if_modified_since.is_some_and(|t| modified <= t) {
            return Verdict::NotModified;
        }
        Verdict::Serve
    }
}

/// Whether every `Resource` of a bucket policy (`text`, already parsed as a policy) is the bucket `bucket_arn` or
/// within it, as S3 requires of a bucket's policy.
fn resources_within(text: &str, bucket_arn: &str) -> bool {
    let Ok(document) = serde_json::from_str::<serde_json::Value>(text) else { return false };
    let statements = match document.get("Statement") {
        Some(serde_json::Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(single) => vec![single],
        None => Vec::new(),
    };
    let within =
        |arn: &str| arn == bucket_arn || arn.strip_prefix(bucket_arn).is_some_and(|rest| rest.starts_with('/'));
    statements.iter().filter_map(|statement| statement.get("Resource")).all(|resource| match resource {
        serde_json::Value::String(arn) => within(arn),
        serde_json::Value::Array(list) => list.iter().all(|arn| arn.as_str().is_some_and(within)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_keep_the_core_error_of_a_stored_source() {
        let stored = body_error(std::io::Error::other(Error::internal("part p does not decrypt")));
        assert!(matches!(stored, Error::SourceFailed { error } if matches!(*error, Error::Internal { .. })));
        let cut = body_error(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        assert!(matches!(cut, Error::BodyInterrupted { reason } if reason == "connection closed"));
    }

    #[test]
    fn ranges_follow_s3() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100).unwrap(), Some(0..10));
        assert_eq!(parse_range(Some("bytes=90-200"), 100).unwrap(), Some(90..100));
        assert_eq!(parse_range(Some("bytes=-10"), 100).unwrap(), Some(90..100));
        assert_eq!(parse_range(Some("bytes=-1000"), 100).unwrap(), Some(0..100));
        assert_eq!(parse_range(Some("bytes=50-"), 100).unwrap(), Some(50..100));
        assert!(matches!(parse_range(Some("bytes=100-"), 100), Err(Error::InvalidRange { size: 100, .. })));
        assert!(matches!(parse_range(Some("bytes=200-300"), 100), Err(Error::InvalidRange { size: 100, .. })));
        assert_eq!(parse_range(Some("bytes=5-2"), 100).unwrap(), None);
        assert_eq!(parse_range(Some("items=1-2"), 100).unwrap(), None);
        assert_eq!(parse_range(None, 100).unwrap(), None);
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.1", "a".repeat(63).as_str()] {
            validate_bucket_name(ok).unwrap();
        }
        for bad in ["ab", "Upper", "-start", "end-", "a..b", "192.168.1.1", "under_score", &"a".repeat(64)] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_policy_resources_must_be_the_bucket_or_within_it() {
        let bucket = "arn:aws:s3:::b";
        let cases = [
            (r#"{"Statement":{"Resource":"arn:aws:s3:::b/*"}}"#, true),
            (r#"{"Statement":[{"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/x/*"]}]}"#, true),
            (r#"{"Statement":[{"NotResource":"arn:aws:s3:::other/*"}]}"#, true),
            (r#"{"Statement":[{"Resource":"arn:aws:s3:::bb/*"}]}"#, false),
            (r#"{"Statement":[{"Resource":"arn:aws:s3:::other/*"}]}"#, false),
            (r#"{"Statement":[{"Resource":"*"}]}"#, false),
        ];
        for (document, within) in cases {
            assert_eq!(resources_within(document, bucket), within, "{document}");
        }
    }
}
