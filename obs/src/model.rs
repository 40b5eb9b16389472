//! Buckets and objects as the object store keeps them: versioned JSON records beside the data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::acl::{AclRequest, Grant, ObjectOwnership, Permission, PublicAccessBlock, canonical_user_id};
use crate::cors::CorsRule;
use crate::error::Error;

/// Version of the persisted records. Changing their shape breaks stored objects: add a field with
/// a default, or bump this and migrate ([`Record::migrate_from_v1`]). Format 2 added ownership
/// controls, ACLs and Block Public Access.
pub const RECORD_FORMAT: u32 = 2;
/// The format before ownership controls and ACLs, which [`parse_record`] reads and migrates.
pub const FORMAT_BEFORE_ACLS: u32 = 1;

/// Bucket default encryption (`PUT /?encryption`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// `aws:kms` or `AES256`.
    pub algorithm: String,
    /// The KMS key for `aws:kms`; the service-managed key when absent.
    pub kms_key_id: Option<String>,
    /// Whether S3 Bucket Keys are on.
    pub bucket_key_enabled: bool,
}

/// A bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The bucket name.
    pub name: String,
    /// Owning account.
    pub account: String,
    /// Region the bucket was created in.
    pub region: String,
    /// Creation time, Unix milliseconds.
    pub created_millis: i64,
    /// Default encryption, if configured.
    pub encryption: Option<BucketEncryption>,
    /// The CORS rules (PutBucketCors); none when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors: Vec<CorsRule>,
    /// The bucket's tags (PutBucketTagging); none when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// The versioning state (PutBucketVersioning); `None` for a bucket whose versioning was never
    /// configured (it cannot go back to that state, only to `Suspended`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<Versioning>,
    /// S3 Object Ownership (PutBucketOwnershipControls, CreateBucket's `x-amz-object-ownership`);
    /// `None` for a bucket without ownership controls (one stored in format 1, or after
    /// DeleteBucketOwnershipControls), which behaves as `ObjectWriter`. Always written, so that a
    /// format 2 record says it.
    #[serde(default)]
    pub ownership: Option<ObjectOwnership>,
    /// The bucket's ACL (PutBucketAcl, CreateBucket's `x-amz-acl` / `x-amz-grant-*`); `None` for the
    /// private default, its owner's FULL_CONTROL. Kept while ACLs are disabled, in force again when
    /// they are enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<Grant>>,
    /// Block Public Access (PutPublicAccessBlock); `None` when the bucket has no configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// The bucket policy as PutBucketPolicy stored it (a JSON document, returned verbatim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The bucket policy compiled, on first use after the record was loaded or changed (a cache: construct it
    /// empty, `Default::default()`; [`BucketRecord::set_policy`] empties it).
    #[serde(skip)]
    pub compiled_policy: std::sync::OnceLock<Option<std::sync::Arc<policy::Policy>>>,
}

impl BucketRecord {
    /// The bucket policy, compiled (once per record). A stored policy that does not parse any more counts as none,
    /// with a warning: PutBucketPolicy only stores policies that parse.
    pub fn bucket_policy(&self) -> Option<&std::sync::Arc<policy::Policy>> {
        self.compiled_policy
            .get_or_init(|| {
                let text = self.policy.as_deref()?;
                match policy::Policy::parse(text, policy::PolicyKind::Resource) {
                    Ok(parsed) => Some(std::sync::Arc::new(parsed)),
                    Err(e) => {
                        tracing::warn!(bucket = %self.name, error = %e, "stored bucket policy does not parse; ignored");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Replaces the bucket policy (`None`: DeleteBucketPolicy).
    pub fn set_policy(&mut self, document: Option<String>) {
        self.policy = document;
        self.compiled_policy = std::sync::OnceLock::new();
    }

    /// The ownership setting in force: a bucket without ownership controls behaves as
    /// `ObjectWriter`.
    pub fn object_ownership(&self) -> ObjectOwnership {
        self.ownership.unwrap_or(ObjectOwnership::ObjectWriter)
    }

    /// Whether ACLs count for the bucket and its objects (not under `BucketOwnerEnforced`).
    pub fn acls_enabled(&self) -> bool {
        self.object_ownership() != ObjectOwnership::BucketOwnerEnforced
    }

    /// Whether Block Public Access refuses public ACLs.
    pub fn blocks_public_acls(&self) -> bool {
        self.public_access_block.is_some_and(|p| p.block_public_acls)
    }

    /// Whether Block Public Access ignores public grants.
    pub fn ignores_public_acls(&self) -> bool {
        self.public_access_block.is_some_and(|p| p.ignore_public_acls)
    }

    /// The ACL in force: its owner's FULL_CONTROL only while ACLs are disabled (as S3 answers
    /// GetBucketAcl then), else the stored grants or the private default.
    pub fn effective_grants(&self) -> Vec<Grant> {
        match (&self.acl, self.acls_enabled()) {
            (Some(grants), true) => grants.clone(),
            _ => vec![Grant::user(canonical_user_id(&self.account), Permission::FullControl)],
        }
    }
}

/// A bucket's versioning state, once configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Every write and delete adds a version with an id of its own.
    Enabled,
    /// Writes and deletes replace the `null` version; older versions stay.
    Suspended,
}

impl Versioning {
    /// The state as `<Status>` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Versioning::Enabled => "Enabled",
            Versioning::Suspended => "Suspended",
        }
    }
}

/// The version of a key a request names (`versionId`): the `null` version (written before
/// versioning was enabled or while it was suspended) or one with an id of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSel {
    /// `versionId=null`.
    Null,
    /// An id kmsim gave a version.
    Id(String),
}

/// Length of the version ids kmsim makes: base64url of 24 bytes (a sequence and 16 random bytes).
pub const VERSION_ID_LEN: usize = 32;

impl VersionSel {
    /// The version a `versionId` names; `None` for text that is no version id kmsim makes
    /// (S3 answers it 400 InvalidArgument "Invalid version id specified").
    pub fn parse(text: &str) -> Option<VersionSel> {
        if text == "null" {
            return Some(VersionSel::Null);
        }
        let well_formed =
            text.len() == VERSION_ID_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| VersionSel::Id(text.to_owned()))
    }

    /// Whether `record` is this version.
    pub fn names(&self, record: &ObjectRecord) -> bool {
        match self {
            VersionSel::Null => record.version_id.is_none(),
            VersionSel::Id(id) => record.version_id.as_deref() == Some(id.as_str()),
        }
    }

    /// The id as the wire says it.
    pub fn as_str(&self) -> &str {
        match self {
            VersionSel::Null => "null",
            VersionSel::Id(id) => id,
        }
    }
}

/// The id of the version written `sequence`-th: base64url (no padding) of the sequence (8 bytes,
/// big-endian) and 16 random bytes from `entropy`, [`VERSION_ID_LEN`] characters. The sequence makes an id a
/// position: a listing can resume after a version that was deleted since.
pub fn new_version_id(sequence: u64, entropy: &shared::Entropy) -> Box<str> {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&sequence.to_be_bytes());
    bytes[8..].copy_from_slice(&entropy.bytes::<16>(shared::Purpose::ObjectId));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).into_boxed_str()
}

/// The sequence a version id of [`new_version_id`] carries.
pub fn version_sequence(id: &str) -> Option<u64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).ok()?;
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// How an object is encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode")]
pub enum SseRecord {
    /// Stored as sent (no server-side encryption requested and no bucket default).
    None,
    /// SSE-S3 (`AES256`): an AWS Encryption SDK message whose data key the object store wrapped
    /// with its own service key.
    S3,
    /// SSE-C: an AWS Encryption SDK message whose data key is wrapped by the customer's key,
    /// which is never stored: only a salted HMAC of it, to recognise the right key on reads.
    Customer {
        /// Random salt, hex.
        key_salt: String,
        /// HMAC-SHA256(customer key, salt), hex.
        key_hmac: String,
    },
    /// SSE-KMS: an AWS Encryption SDK message whose data key the KMS made under `key_arn`.
    Kms {
        /// The KMS key.
        key_arn: KeyArn,
        /// The whole encryption context given to the KMS (and stored in the message header).
        context: Context,
        /// The user part of the context as the client sent it (base64 JSON), echoed on reads.
        user_context: Option<String>,
        /// Whether the object was written with an S3 Bucket Key.
        bucket_key: bool,
    },
}

/// An encryption context as records keep it: its pairs sorted by key in one allocation (a map of
/// one entry, the usual context, costs a whole B-tree node). Persisted as a JSON object, like the
/// map it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context(Box<[(Box<str>, Box<str>)]>);

impl Context {
    /// The context of `map`.
    pub fn from_map(map: BTreeMap<String, String>) -> Self {
        // `into_boxed_str` also gives back any spare capacity.
        Context(map.into_iter().map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str())).collect())
    }

    /// The context as the KMS and the envelope take it.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &*self.0[i].1)
    }
}

impl From<BTreeMap<String, String>> for Context {
    fn from(map: BTreeMap<String, String>) -> Self {
        Context::from_map(map)
    }
}

impl Serialize for Context {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            map.serialize_entry(&**k, &**v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(Context::from_map)
    }
}

/// A KMS key ARN in a record: shared text, since the index holds many objects under few keys
/// ([`crate::store::Store`] hands every record the one copy of its ARN). Persisted as a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyArn(std::sync::Arc<str>);

impl KeyArn {
    /// The ARN.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared text (for interning).
    pub fn shared(&self) -> &std::sync::Arc<str> {
        &self.0
    }
}

impl From<String> for KeyArn {
    fn from(arn: String) -> Self {
        KeyArn(arn.into())
    }
}

impl From<std::sync::Arc<str>> for KeyArn {
    fn from(arn: std::sync::Arc<str>) -> Self {
        KeyArn(arn)
    }
}

impl std::ops::Deref for KeyArn {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Serialize for KeyArn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyArn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(KeyArn::from)
    }
}

/// An object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The object key.
    pub key: String,
    /// Plaintext length in bytes.
    pub size: u64,
    /// The ETag, with quotes.
    pub etag: String,
    /// Last modification, Unix milliseconds.
    pub last_modified_millis: i64,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Other stored headers (`cache-control`, `content-disposition`, `content-encoding`,
    /// `content-language`, `expires`), by lowercase name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// User metadata (`x-amz-meta-*`), by lowercase name without the prefix.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Server-side encryption.
    pub sse: SseRecord,
    /// The store path of the body, relative to the store root.
    pub blob: String,
    /// Bytes stored (the message length for encrypted objects).
    pub stored_size: u64,
    /// For encrypted objects, the length of the message header within the body.
    pub envelope_header_len: Option<u64>,
    /// The flexible checksum the client sent and kmsim verified: header name
    /// (`x-amz-checksum-sha256`, ...) and base64 value.
    #[serde(default)]
    pub checksum: Option<(String, String)>,
    /// The object's tags (PutObjectTagging, `x-amz-tagging`), in the order given.
    #[serde(default, skip_serializing_if = "<[Tag]>::is_empty")]
    pub tags: Box<[Tag]>,
    /// The plaintext sizes of a multipart object's parts, in order (GetObject `?partNumber`,
    /// `x-amz-mp-parts-count`); empty for any other object.
    #[serde(default, skip_serializing_if = "<[u64]>::is_empty")]
    pub part_sizes: Box<[u64]>,
    /// The checksums of a multipart object's parts (base64, in the upload's algorithm), in order,
    /// when every part has one (GetObjectAttributes lists them); empty otherwise.
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    pub part_checksums: Box<[String]>,
    /// The version's id; `None` for the `null` version (every object of a bucket whose versioning
    /// was never configured, and those written while it is suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<Box<str>>,
    /// Order among the versions of a key (higher is newer), from the store's counter; 0 for an
    /// object written while versioning was never configured.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sequence: u64,
    /// A delete marker: a version with no body (its `blob` is empty) that hides the older ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    /// The account that owns the object when it is not the bucket's owner: written by another
    /// account under `ObjectWriter` or `BucketOwnerPreferred` (`""`, [`crate::acl::ANONYMOUS_OWNER`],
    /// for an unsigned request's write). `None`: the bucket's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Box<str>>,
    /// The object's ACL (PutObjectAcl, or the write's `x-amz-acl` / `x-amz-grant-*`); `None` for the
    /// private default, its owner's FULL_CONTROL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Box<[Grant]>>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One tag of an object or a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The tag's key.
    pub key: String,
    /// Its value.
    pub value: String,
}

impl ObjectRecord {
    /// The version id as the wire says it (`null` for the null version).
    pub fn version_str(&self) -> &str {
        self.version_id.as_deref().unwrap_or("null")
    }

    /// A delete marker for `key` made at `now_millis` (its version id and sequence are the
    /// store's to give).
    pub fn new_delete_marker(key: &str, now_millis: i64) -> ObjectRecord {
        ObjectRecord {
            format: RECORD_FORMAT,
            key: key.to_owned(),
            size: 0,
            etag: String::new(),
            last_modified_millis: now_millis,
            content_type: None,
            headers: BTreeMap::new(),
            metadata: BTreeMap::new(),
            sse: SseRecord::None,
            blob: String::new(),
            stored_size: 0,
            envelope_header_len: None,
            checksum: None,
            tags: Box::default(),
            part_sizes: Box::default(),
            part_checksums: Box::default(),
            version_id: None,
            sequence: 0,
            delete_marker: true,
            owner: None,
            acl: None,
        }
    }

    /// The account that owns the object in `bucket` (its record): the bucket's owner while ACLs are
    /// disabled, whoever wrote it, else.
    pub fn owner_account<'a>(&'a self, bucket: &'a BucketRecord) -> &'a str {
        match (&self.owner, bucket.acls_enabled()) {
            (Some(owner), true) => owner,
            _ => &bucket.account,
        }
    }

    /// The object's ACL in force in `bucket`: its owner's FULL_CONTROL only while ACLs are disabled,
    /// else the stored grants or the private default.
    pub fn effective_grants(&self, bucket: &BucketRecord) -> Vec<Grant> {
        match (&self.acl, bucket.acls_enabled()) {
            (Some(grants), true) => grants.to_vec(),
            _ => vec![Grant::user(canonical_user_id(self.owner_account(bucket)), Permission::FullControl)],
        }
    }

    /// Gives back the spare capacity of the record's strings (those built by `format!` or grown
    /// while streaming carry some): the index keeps every record for the life of the process.
    pub fn shrink_to_fit(&mut self) {
        for text in [&mut self.key, &mut self.etag, &mut self.blob] {
            text.shrink_to_fit();
        }
        for text in [&mut self.content_type].into_iter().flatten() {
            text.shrink_to_fit();
        }
        if let Some((name, value)) = &mut self.checksum {
            name.shrink_to_fit();
            value.shrink_to_fit();
        }
        if let SseRecord::Kms { user_context: Some(text), .. } = &mut self.sse {
            text.shrink_to_fit();
        }
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The upload id.
    pub upload_id: String,
    /// The bucket.
    pub bucket: String,
    /// The key the object will have.
    pub key: String,
    /// When the upload started, Unix milliseconds.
    pub initiated_millis: i64,
    /// `Content-Type` of the object to be.
    pub content_type: Option<String>,
    /// Stored headers of the object to be.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// User metadata of the object to be.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Encryption chosen at CreateMultipartUpload.
    pub sse: SseRecord,
    /// For SSE-KMS: the upload's data key, encrypted by the KMS (parts are encrypted with it).
    pub data_key_blob: Option<String>,
    /// Parts uploaded so far, by part number.
    #[serde(default)]
    pub parts: BTreeMap<u32, PartRecord>,
    /// The tags the object gets when the upload completes (`x-amz-tagging`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// The checksum algorithm of the upload (`x-amz-checksum-algorithm`), as its header name
    /// (`x-amz-checksum-crc32`): every part carries one, and the object gets their composite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// The object's checksum is of its whole body (`x-amz-checksum-type: FULL_OBJECT`), not the
    /// composite of its parts' checksums.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_object_checksum: bool,
    /// The account that started the upload when it is not the bucket's owner (`""` for an unsigned
    /// request); `None`: the bucket's owner. It may list and abort the upload, and writes the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// The ACL CreateMultipartUpload asked for (`x-amz-acl`, `x-amz-grant-*`), which the object gets
    /// when the upload completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<AclRequest>,
}

impl UploadRecord {
    /// The account that started the upload in `bucket` (owned by `bucket_owner`).
    pub fn initiator_account<'a>(&'a self, bucket_owner: &'a str) -> &'a str {
        self.initiator.as_deref().unwrap_or(bucket_owner)
    }
}

/// One uploaded part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part number, 1–10000.
    pub number: u32,
    /// The part's ETag, with quotes (MD5 of the part's bytes).
    pub etag: String,
    /// Plaintext bytes.
    pub size: u64,
    /// The store path of the part's body.
    pub blob: String,
    /// Bytes stored.
    pub stored_size: u64,
    /// For encrypted parts, the length of the message header.
    pub envelope_header_len: Option<u64>,
    /// When the part was uploaded, Unix milliseconds.
    pub last_modified_millis: i64,
    /// The part's verified flexible checksum: header name and base64 value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(String, String)>,
}

/// Why a persisted record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not JSON, or not the record's shape.
    #[error("unreadable record: {0}")]
    Unreadable(String),
    /// The record says it is in a format this build does not read.
    #[error("unknown record format {found} (this kmsim reads formats {FORMAT_BEFORE_ACLS} and {RECORD_FORMAT})")]
    UnknownFormat {
        /// The `format` the record carries.
        found: u64,
    },
}

/// A persisted record: read in its format, or migrated from the format before.
pub trait Record: serde::de::DeserializeOwned {
    /// Takes a record read in format 1 ([`FORMAT_BEFORE_ACLS`]) to [`RECORD_FORMAT`]: what format 1
    /// did not say is said explicitly, and the record says format 2 (and is written so when it next
    /// changes).
    fn migrate_from_v1(&mut self);
}

impl Record for BucketRecord {
    /// A bucket stored before ownership controls has none, as S3 treats its buckets made before
    /// April 2023: it behaves as `ObjectWriter`, with the private ACL (its owner's FULL_CONTROL) and
    /// no Block Public Access configuration. Nothing it allowed changes: every object in it was
    /// written by its owner and is private.
    fn migrate_from_v1(&mut self) {
        self.format = RECORD_FORMAT;
        self.ownership = None;
        self.acl = None;
        self.public_access_block = None;
    }
}

impl Record for ObjectRecord {
    /// An object stored in format 1 was written by its bucket's owner (nobody else could write) and
    /// is private.
    fn migrate_from_v1(&mut self) {
        self.format = RECORD_FORMAT;
        self.owner = None;
        self.acl = None;
    }
}

impl Record for UploadRecord {
    /// An upload started in format 1 was started by its bucket's owner and asked for no ACL.
    fn migrate_from_v1(&mut self) {
        self.format = RECORD_FORMAT;
        self.initiator = None;
        self.acl = None;
    }
}

/// Parses a persisted record, refusing any `format` but [`RECORD_FORMAT`] and
/// [`FORMAT_BEFORE_ACLS`] (migrated: [`Record::migrate_from_v1`]) before reading its shape (a newer
/// format may mean something else by the same fields).
pub fn parse_record<T: Record>(bytes: &[u8]) -> Result<T, RecordError> {
    #[derive(Deserialize)]
    struct Format {
        format: u64,
    }
    let Format { format } = serde_json::from_slice(bytes).map_err(|e| RecordError::Unreadable(e.to_string()))?;
    let parse = || serde_json::from_slice::<T>(bytes).map_err(|e| RecordError::Unreadable(e.to_string()));
    match format {
        f if f == u64::from(RECORD_FORMAT) => parse(),
        f if f == u64::from(FORMAT_BEFORE_ACLS) => {
            let mut record = parse()?;
            record.migrate_from_v1();
            Ok(record)
        }
        found => Err(RecordError::UnknownFormat { found }),
    }
}

/// The condition of a conditional write (PutObject, CompleteMultipartUpload): checked when the
/// write begins (412 PreconditionFailed) and again, atomically, when it commits (409
/// ConditionalRequestConflict if a concurrent write or delete changed the answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    /// Unconditional.
    #[default]
    None,
    /// `If-None-Match: *`: the key must not exist.
    Absent,
    /// `If-Match: <etag>`: the key must exist with this ETag.
    EtagIs(String),
}

impl WriteCondition {
    /// Whether the condition holds for the key's current object (`None` when there is none).
    pub fn holds(&self, current: Option<&ObjectRecord>) -> bool {
        match (self, current) {
            (WriteCondition::None, _) => true,
            (WriteCondition::Absent, current) => current.is_none(),
            (WriteCondition::EtagIs(etag), Some(current)) => etag_matches(etag, &current.etag),
            (WriteCondition::EtagIs(_), None) => false,
        }
    }

    /// The error of a condition that does not hold when a write begins: NoSuchKey for `If-Match`
    /// on no object, else PreconditionFailed naming the header.
    pub fn refusal(&self, key: &str, current: Option<&ObjectRecord>) -> Error {
        match (self, current) {
            (WriteCondition::EtagIs(_), None) => Error::NoSuchKey { key: key.to_owned() },
            (WriteCondition::EtagIs(_), Some(_)) => Error::PreconditionFailed { header: "If-Match" },
            _ => Error::PreconditionFailed { header: "If-None-Match" },
        }
    }
}

/// Whether an `If-Match` value (one ETag, quoted or not, or `*`) matches an object's ETag.
pub fn etag_matches(wanted: &str, etag: &str) -> bool {
    wanted.split(',').map(str::trim).any(|w| w == "*" || w.trim_matches('"') == etag.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_persist_as_maps() {
        let map = BTreeMap::from([("b".to_owned(), "2".to_owned()), ("a".to_owned(), "1".to_owned())]);
        let context = Context::from_map(map.clone());
        assert_eq!(serde_json::to_string(&context).unwrap(), r#"{"a":"1","b":"2"}"#);
        assert_eq!(serde_json::from_str::<Context>(r#"{"b":"2","a":"1"}"#).unwrap(), context);
        assert_eq!(context.to_map(), map);
        assert_eq!((context.get("a"), context.get("b"), context.get("c")), (Some("1"), Some("2"), None));
    }

    #[test]
    fn records_of_another_format_are_refused() {
        let bucket = r#"{"format":2,"name":"b","account":"a","region":"r","created_millis":0,"encryption":null,"ownership":"ObjectWriter"}"#;
        let read = parse_record::<BucketRecord>(bucket.as_bytes()).unwrap();
        assert_eq!((read.name.as_str(), read.ownership), ("b", Some(ObjectOwnership::ObjectWriter)));
        let newer = bucket.replace("\"format\":2", "\"format\":3");
        assert_eq!(
            parse_record::<BucketRecord>(newer.as_bytes()).unwrap_err(),
            RecordError::UnknownFormat { found: 3 }
        );
        let missing = bucket.replace("\"format\":2,", "");
        assert!(matches!(parse_record::<BucketRecord>(missing.as_bytes()), Err(RecordError::Unreadable(_))));
        assert!(matches!(parse_record::<BucketRecord>(b"{\"format\":2"), Err(RecordError::Unreadable(_))));
    }

    /// Records of format 1 (before ownership controls and ACLs) are read as format 2: a bucket without
    /// ownership controls (ObjectWriter, as S3's buckets made before April 2023), private, without
    /// Block Public Access; objects and uploads of the bucket's owner, private.
    #[test]
    fn format_1_records_migrate() {
        let bucket =
            r#"{"format":1,"name":"b","account":"111122223333","region":"r","created_millis":0,"encryption":null}"#;
        let bucket = parse_record::<BucketRecord>(bucket.as_bytes()).unwrap();
        assert_eq!(bucket.format, RECORD_FORMAT);
        assert_eq!((bucket.ownership, &bucket.acl, bucket.public_access_block), (None, &None, None));
        assert_eq!(bucket.object_ownership(), ObjectOwnership::ObjectWriter);
        assert!(bucket.acls_enabled() && !bucket.blocks_public_acls() && !bucket.ignores_public_acls());
        let owner_full = vec![Grant::user(canonical_user_id("111122223333"), Permission::FullControl)];
        assert_eq!(bucket.effective_grants(), owner_full);
        let written = serde_json::to_string(&bucket).unwrap();
        assert!(written.starts_with(r#"{"format":2,"#) && written.contains(r#""ownership":null"#), "{written}");

        let object = ObjectRecord { format: 1, ..ObjectRecord::new_delete_marker("k", 0) };
        let object = parse_record::<ObjectRecord>(&serde_json::to_vec(&object).unwrap()).unwrap();
        assert_eq!((object.format, &object.owner, &object.acl), (RECORD_FORMAT, &None, &None));
        assert_eq!(object.owner_account(&bucket), "111122223333");
        assert_eq!(object.effective_grants(&bucket), owner_full);

        let upload = r#"{"format":1,"upload_id":"u","bucket":"b","key":"k","initiated_millis":0,"content_type":null,"sse":{"mode":"None"},"data_key_blob":null}"#;
        let upload = parse_record::<UploadRecord>(upload.as_bytes()).unwrap();
        assert_eq!((upload.format, upload.initiator_account("111122223333"), &upload.acl), (2, "111122223333", &None));
    }

    /// While ACLs are disabled, the bucket's owner owns every object and holds the only grant.
    #[test]
    fn ownership_decides_owner_and_acl_in_force() {
        let mut bucket = parse_record::<BucketRecord>(
            br#"{"format":2,"name":"b","account":"111122223333","region":"r","created_millis":0,"encryption":null,"ownership":"ObjectWriter"}"#,
        )
        .unwrap();
        let public = vec![
            Grant::user(canonical_user_id("444455556666"), Permission::FullControl),
            Grant::group(crate::acl::Group::AllUsers, Permission::Read),
        ];
        let object = ObjectRecord {
            owner: Some("444455556666".into()),
            acl: Some(public.clone().into_boxed_slice()),
            ..ObjectRecord::new_delete_marker("k", 0)
        };
        assert_eq!((object.owner_account(&bucket), object.effective_grants(&bucket)), ("444455556666", public));
        bucket.ownership = Some(ObjectOwnership::BucketOwnerEnforced);
        assert_eq!(object.owner_account(&bucket), "111122223333");
        assert_eq!(
            object.effective_grants(&bucket),
            [Grant::user(canonical_user_id("111122223333"), Permission::FullControl)]
        );
    }

    #[test]
    fn version_ids_carry_their_sequence() {
        let id = new_version_id(7, &shared::Entropy::os());
        assert_eq!((id.len(), version_sequence(&id)), (VERSION_ID_LEN, Some(7)));
        assert_eq!(VersionSel::parse(&id), Some(VersionSel::Id(id.to_string())));
        assert_ne!(new_version_id(7, &shared::Entropy::os()), id, "16 random bytes follow the sequence");
        assert_eq!(VersionSel::parse("null"), Some(VersionSel::Null));
        for bad in ["", "nul", "a+b/cdefghijklmnopqrstuvwxyz01234", &"A".repeat(33)] {
            assert_eq!(VersionSel::parse(bad), None, "{bad}");
        }
        assert_eq!(version_sequence("not base64!"), None);
    }

    #[test]
    fn write_conditions() {
        let current = ObjectRecord {
            etag: "\"abc\"".into(),
            blob: "b".into(),
            delete_marker: false,
            ..ObjectRecord::new_delete_marker("k", 0)
        };
        assert!(WriteCondition::None.holds(None) && WriteCondition::None.holds(Some(&current)));
        assert!(WriteCondition::Absent.holds(None) && !WriteCondition::Absent.holds(Some(&current)));
        for wanted in ["\"abc\"", "abc", "*", "\"x\", \"abc\""] {
            assert!(WriteCondition::EtagIs(wanted.into()).holds(Some(&current)), "{wanted}");
        }
        assert!(!WriteCondition::EtagIs("\"abd\"".into()).holds(Some(&current)));
        assert!(!WriteCondition::EtagIs("*".into()).holds(None));
        assert!(matches!(WriteCondition::EtagIs("x".into()).refusal("k", None), Error::NoSuchKey { .. }));
        assert!(matches!(
            WriteCondition::Absent.refusal("k", Some(&current)),
            Error::PreconditionFailed { header: "If-None-Match" }
        ));
    }
}
