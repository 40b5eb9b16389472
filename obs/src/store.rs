//! Persistence of buckets and objects on an `object_store` backend, with an in-memory index.
//!
//! Layout under the backend's root:
//!
//! ```text
//! buckets/<bucket>.json              BucketRecord
//! meta/<bucket>/<sha256(key)>.json   ObjectRecord of the key's null version (the key itself is
//!                                    inside): every object of an unversioned bucket
//! meta/<bucket>/<sha256(key)>.<version id>.json
//!                                    ObjectRecord of a version with an id of its own (a delete
//!                                    marker is a record without a body)
//! uploads/<bucket>/<upload id>.json  UploadRecord of a multipart upload, with its parts
//! data/<bucket>/<uuid>               a body (object or part): an AWS Encryption SDK message, or
//!                                    plain bytes
//! ```
//!
//! An object becomes visible only when its record is written, after its body: a crash in between
//! leaves an unreferenced body, which [`Store::open`] sweeps. On the local file system every
//! write is followed by an fsync of the file and of its directory, so an acknowledged object
//! survives a power cut. The index (buckets and their sorted keys) is rebuilt from the records at
//! start (the versions of a key ordered by their records' `sequence`); listing never touches the
//! backend. A record that cannot be used at start (unreadable,
//! or of a `format` this build does not read) is set aside as `<name>.json.unreadable` with its
//! body kept, and counted ([`Store::set_aside_records`]); [`Store::reset`] empties the store except
//! `snapshots/`, which belongs to the volume service.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};
use shared::entropy::{Entropy, Purpose};

use crate::error::{Error, Result, StoreError};
use crate::model::{BucketRecord, ObjectRecord, UploadRecord, VersionSel, Versioning, WriteCondition};

/// How many records a state import writes at once.
const IMPORT_WRITES: usize = 32;
/// Number of commit slots: each serializes the record commits of the (bucket, key)s that hash to it.
const COMMIT_SLOTS: usize = 64;
/// Suffix of a record set aside at start (unreadable, or of an unknown format); it stays beside
/// the records for whoever repairs it, and its body is kept.
pub const SET_ASIDE_SUFFIX: &str = ".unreadable";
/// The prefixes the object store owns under its root (`snapshots/` belongs to the volume service).
const OWN_PREFIXES: [&str; 4] = ["buckets", "meta", "uploads", "data"];

/// Every record of the object store, as a state archive holds it ([`Store::export_state`]).
#[derive(Debug, Default)]
pub struct StoreState {
    /// Every bucket (its policy, versioning, encryption, CORS, ACL, ... inside).
    pub buckets: Vec<BucketRecord>,
    /// Every version of every object (delete markers too), with the name of its bucket.
    pub objects: Vec<(String, ObjectRecord)>,
    /// Every multipart upload in progress, with its parts.
    pub uploads: Vec<UploadRecord>,
}

impl StoreState {
    /// The bodies the records refer to (objects' and parts'), by path in the backend.
    pub fn bodies(&self) -> Vec<String> {
        let objects = self.objects.iter().map(|(_, r)| r.blob.clone());
        let parts = self.uploads.iter().flat_map(|u| u.parts.values().map(|p| p.blob.clone()));
        objects.chain(parts).filter(|b| !b.is_empty()).collect()
    }
}

/// One bucket in the index.
#[derive(Debug, Clone)]
pub struct IndexedBucket {
    /// The bucket record.
    pub record: Arc<BucketRecord>,
    /// The current object of each key (not a delete marker), ordered by key (the key is the
    /// record's own: not stored twice). What reads without a version id and listings see.
    pub objects: BTreeSet<ByKey>,
    /// Once the bucket's versioning is configured: every version of every key, oldest first,
    /// delete markers included (the newest is the key's current object unless it is a marker).
    /// Empty for a bucket whose versioning never was: there `objects` is every version there is.
    pub versions: BTreeMap<Box<str>, Vec<Arc<ObjectRecord>>>,
}

impl IndexedBucket {
    fn new(record: BucketRecord) -> Self {
        IndexedBucket { record: Arc::new(record), objects: BTreeSet::new(), versions: BTreeMap::new() }
    }

    fn versioned(&self) -> bool {
        self.record.versioning.is_some()
    }

    /// The newest version of `key`, delete marker or not.
    fn latest(&self, key: &str) -> Option<&Arc<ObjectRecord>> {
        match self.versioned() {
            true => self.versions.get(key)?.last(),
            false => self.objects.get(key).map(|o| &o.0),
        }
    }

    /// Version `version` of `key`.
    fn version(&self, key: &str, version: &VersionSel) -> Option<&Arc<ObjectRecord>> {
        match self.versioned() {
            true => self.versions.get(key)?.iter().rev().find(|r| version.names(r)),
            false => self.objects.get(key).map(|o| &o.0).filter(|r| version.names(r)),
        }
    }

    /// Makes `record` the newest version of its key; gives back the version it replaces: the
    /// object of an unversioned bucket, or the null version when `record` is one.
    fn put(&mut self, record: Arc<ObjectRecord>) -> Option<Arc<ObjectRecord>> {
        if !self.versioned() {
            return self.objects.replace(ByKey(record)).map(|old| old.0);
        }
        // An overwrite finds its key's versions without making a copy of the key; a new key's
        // list is made for one version (most keys never get a second).
        let stack = match self.versions.get_mut(record.key.as_str()) {
            Some(stack) => stack,
            None => self.versions.entry(record.key.as_str().into()).or_insert_with(|| Vec::with_capacity(1)),
        };
        let replaced = match record.version_id {
            None => stack.iter().position(|r| r.version_id.is_none()).map(|i| stack.remove(i)),
            Some(_) => None,
        };
        stack.push(record.clone());
        match record.delete_marker {
            true => self.objects.remove(record.key.as_str()),
            false => self.objects.replace(ByKey(record)).is_some(),
        };
        replaced
    }

    /// Takes version `version` of `key` out; the next newest becomes current (unless a marker).
    fn remove(&mut self, key: &str, version: &VersionSel) -> Option<Arc<ObjectRecord>> {
        if !self.versioned() {
            self.objects.get(key).filter(|o| version.names(&o.0))?;
            return self.objects.take(key).map(|o| o.0);
        }
        let stack = self.versions.get_mut(key)?;
        let at = stack.iter().rposition(|r| version.names(r))?;
        let removed = stack.remove(at);
        if at == stack.len() {
            self.objects.remove(key);
            if let Some(next) = stack.last().filter(|r| !r.delete_marker) {
                self.objects.insert(ByKey(next.clone()));
            }
        }
        if stack.is_empty() {
            self.versions.remove(key);
        }
        Some(removed)
    }

    /// Replaces the version `record` is (same key and version id) by it.
    fn replace(&mut self, record: Arc<ObjectRecord>) {
        if let Some(stack) = self.versions.get_mut(record.key.as_str())
            && let Some(slot) = stack.iter_mut().find(|r| r.version_id == record.version_id)
        {
            *slot = record.clone();
        }
        if self.objects.get(record.key.as_str()).is_some_and(|o| o.0.version_id == record.version_id) {
            self.objects.replace(ByKey(record));
        }
    }

    /// Current objects with keys starting with `prefix` after `after`, in key order, at most
    /// `limit` of them.
    fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<Arc<ObjectRecord>> {
        let objects = &self.objects;
        let start = match after {
            Some(after) if after >= prefix => std::ops::Bound::Excluded(after),
            _ => std::ops::Bound::Included(prefix),
        };
        objects
            .range::<str, _>((start, std::ops::Bound::Unbounded))
            .take_while(|o| o.0.key.starts_with(prefix))
            .take(limit)
            .map(|o| o.0.clone())
            .collect()
    }

    /// Whether the bucket holds no object, version or delete marker.
    fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.versions.is_empty()
    }

    /// Every body its records refer to.
    fn blobs(&self) -> impl Iterator<Item = &str> {
        let current = self.objects.iter().map(|o| o.0.blob.as_str());
        let versions = self.versions.values().flatten().map(|r| r.blob.as_str());
        current.chain(versions).filter(|b| !b.is_empty())
    }
}

/// One entry of a ListObjectVersions page: a version or a delete marker, and whether it is the
/// newest of its key.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    /// The version.
    pub record: Arc<ObjectRecord>,
    /// Whether it is its key's newest.
    pub latest: bool,
}

/// Where a listing of versions resumes: after this key, or after this version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionCursor {
    /// The key (`key-marker`).
    pub key: String,
    /// The version (`version-id-marker`); none for "after every version of the key".
    pub version: Option<String>,
}

/// What a DeleteObject did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The version deleted or the delete marker made, as the wire names it; none for an
    /// unversioned bucket.
    pub version_id: Option<String>,
    /// Whether a delete marker was made, or the version deleted was one.
    pub delete_marker: bool,
}

/// An object record in the index, ordered and looked up by its key.
#[derive(Debug, Clone)]
pub struct ByKey(pub Arc<ObjectRecord>);

impl std::borrow::Borrow<str> for ByKey {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.key.cmp(&other.0.key)
    }
}

/// The object store's persistence.
///
/// Locks, always taken in this order: `reset` (shared by every mutation, exclusive for
/// [`Store::reset`]), then the bucket's lock (shared by object and upload commits, exclusive for
/// creating, updating and deleting the bucket), then the commit slot of the (bucket, key). An
/// object commit waits for its slot with its request's reset and bucket locks held, and is
/// committed in a batch with the others waiting for the slot ([`Store::commit_object_since`]).
#[derive(Debug)]
pub struct Store {
    backend: Arc<dyn ObjectStore>,
    /// Where version ids and body paths come from (the OS unless [`crate::Obs::with_entropy`] says otherwise).
    pub(crate) entropy: Arc<Entropy>,
    /// Set for the local file system, whose writes are fsynced.
    local_root: Option<PathBuf>,
    /// How many resets the store went through (a body written across a reset is not committed).
    resets: AtomicU64,
    /// Where the store is, for messages.
    location: String,
    index: RwLock<HashMap<String, IndexedBucket>>,
    /// Multipart uploads in progress, by upload id.
    uploads: RwLock<HashMap<String, Arc<UploadRecord>>>,
    slots: Vec<CommitSlot>,
    /// Per bucket name: shared by commits into the bucket, exclusive for its creation and deletion,
    /// so that no object is committed into a bucket being deleted.
    bucket_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::RwLock<()>>>>,
    /// The KMS key ARNs of the indexed records, each held once.
    key_arns: std::sync::Mutex<std::collections::HashSet<Arc<str>>>,
    /// Shared by every mutation, exclusive for a reset.
    reset_lock: Arc<tokio::sync::RwLock<()>>,
    /// Records found set aside at start (unreadable or of an unknown format).
    set_aside: AtomicUsize,
    /// The next `sequence` a version gets (above every stored one).
    next_sequence: AtomicU64,
    /// Whether object records are written to the backend. Not for [`Store::in_memory`]: nothing
    /// ever reads them back there (the index is the only reader until the process ends), and a
    /// copy of each record's JSON would more than double the memory an object costs.
    persist_object_records: bool,
}

/// The locks a commit into a bucket holds.
struct BucketGuard {
    _reset: tokio::sync::OwnedRwLockReadGuard<()>,
    _bucket: BucketLockGuard,
}

/// One commit slot: the lock of the (bucket, key)s that hash to it, and the object commits
/// waiting for it.
#[derive(Default)]
struct CommitSlot {
    lock: tokio::sync::Mutex<()>,
    waiting: std::sync::Mutex<Vec<WaitingCommit>>,
}

impl std::fmt::Debug for CommitSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("CommitSlot").field("waiting", &waiting).finish_non_exhaustive()
    }
}

/// An object commit waiting for its slot, holding the locks its request took.
struct WaitingCommit {
    bucket: String,
    record: ObjectRecord,
    resets: u64,
    condition: WriteCondition,
    reply: tokio::sync::oneshot::Sender<Result<Arc<ObjectRecord>>>,
    guard: BucketGuard,
}

/// An object commit of a batch that passed its checks: stamped, compacted, not yet durable.
struct AcceptedCommit {
    bucket: String,
    record: Arc<ObjectRecord>,
    reply: tokio::sync::oneshot::Sender<Result<Arc<ObjectRecord>>>,
    _guard: BucketGuard,
}

enum BucketLockGuard {
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
    Exclusive(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
}

impl Store {
    /// A store on the local file system under `root` (created if missing).
    pub async fn local(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::CreateDir { path: root.to_owned(), source })?;
        let backend = LocalFileSystem::new_with_prefix(root)
            .map_err(|source| StoreError::Backend { location: root.display().to_string(), source })?;
        Self::open(Arc::new(backend), Some(root.to_owned())).await
    }

    /// A store on any S3-compatible service (a cluster a user moved to): `url` is
    /// `s3://<bucket>[/<prefix>]`; `options` are `object_store`'s S3 settings
    /// (`aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_allow_http`, ...). Durability is the remote service's.
    pub async fn s3(url: &str, options: &[(String, String)]) -> Result<Self, StoreError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| StoreError::BadUrl { url: url.to_owned() })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::BadUrl { url: url.to_owned() });
        }
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in options {
            let key: object_store::aws::AmazonS3ConfigKey = key
                .parse()
                .map_err(|e: object_store::Error| StoreError::BadOption { key: key.clone(), reason: e.to_string() })?;
            builder = builder.with_config(key, value);
        }
        let remote: Arc<dyn ObjectStore> =
            Arc::new(builder.build().map_err(|source| StoreError::Backend { location: url.to_owned(), source })?);
        let backend: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
            "" => remote,
            prefix => Arc::new(object_store::prefix::PrefixStore::new(remote, prefix)),
        };
        Self::open_at(backend, None, url.to_owned()).await
    }

    /// A store that lives in memory only.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let mut store = Self::open_at(Arc::new(InMemory::new()), None, "memory".to_owned()).await?;
        store.persist_object_records = false;
        Ok(store)
    }

    /// Opens a store on any backend: loads the index, sets aside records it cannot use, and
    /// sweeps bodies no record refers to.
    pub async fn open(backend: Arc<dyn ObjectStore>, local_root: Option<PathBuf>) -> Result<Self, StoreError> {
        let location = match &local_root {
            Some(root) => root.display().to_string(),
            None => backend.to_string(),
        };
        Self::open_at(backend, local_root, location).await
    }

    async fn open_at(
        backend: Arc<dyn ObjectStore>,
        local_root: Option<PathBuf>,
        location: String,
    ) -> Result<Self, StoreError> {
        let store = Store {
            backend,
            entropy: Arc::new(Entropy::os()),
            local_root,
            resets: AtomicU64::new(0),
            location,
            index: RwLock::new(HashMap::new()),
            uploads: RwLock::new(HashMap::new()),
            slots: (0..COMMIT_SLOTS).map(|_| CommitSlot::default()).collect(),
            bucket_locks: std::sync::Mutex::new(HashMap::new()),
            key_arns: std::sync::Mutex::new(std::collections::HashSet::new()),
            reset_lock: Arc::new(tokio::sync::RwLock::new(())),
            set_aside: AtomicUsize::new(0),
            next_sequence: AtomicU64::new(1),
            persist_object_records: true,
        };
        let kept = store.load().await?;
        store.sweep_orphans(&kept).await?;
        Ok(store)
    }

    /// How many records were found unusable at start and set aside (`*.json.unreadable` beside the
    /// records), their bodies kept.
    pub fn set_aside_records(&self) -> usize {
        self.set_aside.load(Ordering::Relaxed)
    }

    /// How many times the store was reset; read before writing a body, for
    /// [`Store::commit_object_since`].
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::SeqCst)
    }

    fn io_error(&self, action: &'static str, path: &StorePath, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Io { action, path: path.to_string(), location: self.location.clone(), reason: reason.to_string() }
    }

    /// Reads one record at start; `None` when it was set aside (or had been at an earlier start).
    async fn load_record<T: crate::model::Record>(
        &self,
        path: &StorePath,
        kept: &mut Kept,
    ) -> Result<Option<T>, StoreError> {
        if path.as_ref().ends_with(SET_ASIDE_SUFFIX) {
            self.set_aside.fetch_add(1, Ordering::Relaxed);
            kept.keep_record_bodies(path, &self.read_raw(path).await?);
            return Ok(None);
        }
        let bytes = self.read_raw(path).await?;
        match crate::model::parse_record::<T>(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(reason) => {
                // One damaged record must not keep every other object offline: set it aside, say so.
                let aside = StorePath::from(format!("{path}{SET_ASIDE_SUFFIX}"));
                tracing::error!(
                    path = %path,
                    set_aside_as = %aside,
                    location = %self.location,
                    %reason,
                    "setting aside an object store record that cannot be used; its body is kept"
                );
                self.backend.rename(path, &aside).await.map_err(|e| self.io_error("set aside", path, e))?;
                self.sync(&aside).await.map_err(|e| self.io_error("fsync", &aside, e))?;
                self.set_aside.fetch_add(1, Ordering::Relaxed);
                kept.keep_record_bodies(path, &bytes);
                Ok(None)
            }
        }
    }

    async fn read_raw(&self, path: &StorePath) -> Result<Bytes, StoreError> {
        let read = async { self.backend.get(path).await?.bytes().await };
        read.await.map_err(|e| self.io_error("read", path, e))
    }

    async fn load(&self) -> Result<Kept, StoreError> {
        let mut kept = Kept::default();
        let mut buckets = Vec::new();
        for path in self.list_paths("buckets").await? {
            if let Some(record) = self.load_record::<BucketRecord>(&path, &mut kept).await? {
                buckets.push(record);
            }
        }
        let mut objects = Vec::new();
        for path in self.list_paths("meta").await? {
            let Some(record) = self.load_record::<ObjectRecord>(&path, &mut kept).await? else { continue };
            let bucket = path.parts().nth(1).map(|p| p.as_ref().to_owned()).unwrap_or_default();
            objects.push((bucket, record));
        }
        let mut uploads = Vec::new();
        for path in self.list_paths("uploads").await? {
            if let Some(record) = self.load_record::<UploadRecord>(&path, &mut kept).await? {
                uploads.push(record);
            }
        }
        for orphan in self.install(buckets, objects, uploads) {
            tracing::warn!(bucket = %orphan.0, key = %orphan.1.key, "object record of a missing bucket; its body is kept");
            kept.blobs.insert(orphan.1.blob);
        }
        let set_aside = self.set_aside_records();
        if set_aside > 0 {
            tracing::warn!(set_aside, location = %self.location, "object store records are set aside (*.json.unreadable)");
        }
        Ok(kept)
    }

    /// Builds the index from records (each object record with the name of its bucket) and makes it the store's;
    /// gives back the object records whose bucket is not among `buckets`.
    fn install(
        &self,
        buckets: Vec<BucketRecord>,
        objects: Vec<(String, ObjectRecord)>,
        uploads: Vec<UploadRecord>,
    ) -> Vec<(String, ObjectRecord)> {
        let mut index: HashMap<String, IndexedBucket> =
            buckets.into_iter().map(|record| (record.name.clone(), IndexedBucket::new(record))).collect();
        let mut orphans = Vec::new();
        let mut max_sequence = 0;
        for (bucket, record) in objects {
            max_sequence = max_sequence.max(record.sequence);
            match index.get_mut(&bucket) {
                Some(b) if b.versioned() => {
                    let record = Arc::new(self.compact(record));
                    b.versions.entry(record.key.as_str().into()).or_default().push(record);
                }
                Some(b) => {
                    b.objects.replace(ByKey(Arc::new(self.compact(record))));
                }
                None => orphans.push((bucket, record)),
            }
        }
        // The versions of each key in the order they were written; the newest is current.
        for bucket in index.values_mut() {
            let IndexedBucket { objects, versions, .. } = bucket;
            for stack in versions.values_mut() {
                stack.sort_by_key(|r| r.sequence);
                if let Some(current) = stack.last().filter(|r| !r.delete_marker) {
                    objects.insert(ByKey(current.clone()));
                }
            }
        }
        self.next_sequence.store(max_sequence.saturating_add(1), Ordering::SeqCst);
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        let uploads = uploads.into_iter().map(|record| (record.upload_id.clone(), Arc::new(record))).collect();
        *self.uploads.write().unwrap_or_else(|e| e.into_inner()) = uploads;
        orphans
    }

    /// The directory of a store on the local file system (where its paths are files).
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Whether the store holds no bucket and no upload.
    pub fn is_empty(&self) -> bool {
        self.index.read().unwrap_or_else(|e| e.into_inner()).is_empty()
            && self.uploads.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Waits for the mutations in progress and keeps new ones waiting until the guard is dropped (the store-wide
    /// reset lock, exclusive): what a state export reads meanwhile is one consistent cut.
    pub async fn exclusive(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.reset_lock.write().await
    }

    /// Every record of the store: buckets, every version of every object (delete markers too) and uploads in
    /// progress. Their bodies are at the paths [`StoreState::bodies`] lists.
    pub fn export_state(&self) -> StoreState {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut state = StoreState::default();
        for (name, bucket) in index.iter() {
            state.buckets.push((*bucket.record).clone());
            let records: Box<dyn Iterator<Item = &Arc<ObjectRecord>>> = match bucket.versioned() {
                true => Box::new(bucket.versions.values().flatten()),
                false => Box::new(bucket.objects.iter().map(|o| &o.0)),
            };
            state.objects.extend(records.map(|r| (name.clone(), (**r).clone())));
        }
        let uploads = self.uploads.read().unwrap_or_else(|e| e.into_inner());
        state.uploads.extend(uploads.values().map(|u| (**u).clone()));
        state
    }

    /// Writes the records of `state` (their bodies must be in place already) and makes them the store's index.
    /// For an empty store. The writes are not fsynced one by one: the paths written are given back, and the caller
    /// makes them durable (all at once) before it reports success.
    pub async fn import_state(&self, state: StoreState) -> Result<Vec<StorePath>, StoreError> {
        let _exclusive = self.reset_lock.write().await;
        let mut records: Vec<(StorePath, serde_json::Result<Vec<u8>>)> = Vec::new();
        records.extend(state.buckets.iter().map(|r| (bucket_path(&r.name), serde_json::to_vec(r))));
        if self.persist_object_records {
            records.extend(state.objects.iter().map(|(bucket, r)| (record_path(bucket, r), serde_json::to_vec(r))));
        }
        records.extend(state.uploads.iter().map(|r| (upload_path(&r.bucket, &r.upload_id), serde_json::to_vec(r))));
        let mut written = Vec::with_capacity(records.len());
        let mut puts = Vec::with_capacity(records.len());
        for (path, bytes) in records {
            let bytes = bytes.map_err(|e| self.io_error("encode", &path, e))?;
            written.push(path.clone());
            puts.push(async move {
                self.backend.put(&path, PutPayload::from(bytes)).await.map_err(|e| self.io_error("write", &path, e))
            });
        }
        // Many at once: on the local file system each is a file created and renamed on the blocking pool.
        futures::stream::iter(puts).buffer_unordered(IMPORT_WRITES).try_collect::<Vec<_>>().await?;
        let orphans = self.install(state.buckets, state.objects, state.uploads);
        if let Some((bucket, record)) = orphans.first() {
            return Err(self.io_error(
                "import",
                &record_path(bucket, record),
                format!("the record of object {} names bucket {bucket}, which the state does not hold", record.key),
            ));
        }
        Ok(written)
    }

    /// Deletes bodies that no record refers to (left by a crash between body and record), and the
    /// staging files of interrupted local writes. Bodies a set-aside record may refer to stay.
    async fn sweep_orphans(&self, kept: &Kept) -> Result<(), StoreError> {
        let mut referenced: std::collections::HashSet<String> = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            index.values().flat_map(|b| b.blobs().map(str::to_owned)).collect()
        };
        {
            let uploads = self.uploads.read().unwrap_or_else(|e| e.into_inner());
            referenced.extend(uploads.values().flat_map(|u| u.parts.values().map(|p| p.blob.clone())));
        }
        let mut swept = 0;
        for path in self.list_paths("data").await? {
            let bucket = path.parts().nth(1).map(|p| p.as_ref().to_owned()).unwrap_or_default();
            if referenced.contains(path.as_ref())
                || kept.blobs.contains(path.as_ref())
                || kept.buckets.contains(&bucket)
            {
                continue;
            }
            self.backend.delete(&path).await.map_err(|e| self.io_error("delete", &path, e))?;
            swept += 1;
        }
        if let Some(root) = &self.local_root {
            swept += sweep_staging_files(root);
        }
        if swept > 0 {
            tracing::info!(swept, "removed bodies of unfinished writes");
        }
        Ok(())
    }

    /// A record as the index keeps it: no spare string capacity, and its KMS key ARN shared with
    /// the other records under the same key.
    fn compact(&self, mut record: ObjectRecord) -> ObjectRecord {
        record.shrink_to_fit();
        if let crate::model::SseRecord::Kms { key_arn, .. } = &mut record.sse {
            let mut arns = self.key_arns.lock().unwrap_or_else(|e| e.into_inner());
            match arns.get(key_arn.as_str()) {
                Some(shared) => *key_arn = shared.clone().into(),
                None => {
                    arns.insert(key_arn.shared().clone());
                }
            }
        }
        record
    }

    /// The lock of a bucket name (made on first use).
    fn bucket_lock(&self, bucket: &str) -> Arc<tokio::sync::RwLock<()>> {
        let mut locks = self.bucket_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(bucket.to_owned()).or_default().clone()
    }

    /// The locks of a commit into `bucket` (shared with other commits).
    async fn commit_into(&self, bucket: &str) -> BucketGuard {
        let reset = self.reset_lock.clone().read_owned().await;
        let lock = self.bucket_lock(bucket);
        BucketGuard { _reset: reset, _bucket: BucketLockGuard::Shared(lock.read_owned().await) }
    }

    /// The locks of a change to `bucket` itself (exclusive).
    async fn change_bucket(&self, bucket: &str) -> BucketGuard {
        let reset = self.reset_lock.clone().read_owned().await;
        let lock = self.bucket_lock(bucket);
        BucketGuard { _reset: reset, _bucket: BucketLockGuard::Exclusive(lock.write_owned().await) }
    }

    /// Deletes every bucket, object record, upload and body, set-aside records included, and
    /// empties the index: a consistent empty store. Waits for the mutations in progress; a body
    /// being written meanwhile is deleted when its commit finds its bucket gone. Volume snapshots
    /// (`snapshots/`) are not the object store's and stay.
    pub async fn reset(&self) -> Result<(), StoreError> {
        let _reset = self.reset_lock.write().await;
        self.resets.fetch_add(1, Ordering::SeqCst);
        for prefix in OWN_PREFIXES {
            for path in self.list_paths(prefix).await? {
                match self.backend.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.io_error("delete", &path, e)),
                }
            }
            if let Some(root) = &self.local_root {
                remove_empty_dirs(&root.join(prefix));
            }
        }
        self.index.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.uploads.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.bucket_locks.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.key_arns.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.set_aside.store(0, Ordering::Relaxed);
        // Version ids carry the sequence: after a reset they start again as in a new store.
        self.next_sequence.store(1, Ordering::SeqCst);
        tracing::info!(location = %self.location, "object store reset");
        Ok(())
    }

    async fn list_paths(&self, prefix: &str) -> Result<Vec<StorePath>, StoreError> {
        let prefix = StorePath::from(prefix);
        let mut stream = self.backend.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            out.push(meta.map_err(|e| self.io_error("list", &prefix, e))?.location);
        }
        Ok(out)
    }

    /// Writes `bytes` at `path` durably.
    async fn put_durably(&self, path: &StorePath, bytes: Bytes) -> Result<()> {
        self.backend.put(path, PutPayload::from(bytes)).await?;
        self.sync(path).await
    }

    /// On the local file system, fsyncs the file at `path` and its directory.
    pub async fn sync(&self, path: &StorePath) -> Result<()> {
        self.sync_all(std::slice::from_ref(path)).await
    }

    /// On the local file system, fsyncs the files at `paths`, then their directories (each once).
    async fn sync_all(&self, paths: &[StorePath]) -> Result<()> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let files: Vec<PathBuf> = paths.iter().map(|p| root.join(p.as_ref())).collect();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut dirs = BTreeSet::new();
            for file in &files {
                std::fs::File::open(file)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
                dirs.extend(file.parent());
            }
            for dir in dirs {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
            }
            Ok(())
        })
        .await
        .map_err(Error::internal)?
        .map_err(|e| Error::internal(format!("fsync {e}")))
    }

    /// Flips the lowest bit of the byte at `offset` of the body `blob`, durably (a fault for the console: the next
    /// read fails its authentication check); returns the byte before and after. On the local file system the byte
    /// is rewritten in place and fsynced; elsewhere the body is rewritten whole.
    pub async fn flip_bit(&self, blob: &str, offset: u64) -> Result<(u8, u8)> {
        let path = StorePath::from(blob);
        if let Some(root) = &self.local_root {
            let file = root.join(path.as_ref());
            return tokio::task::spawn_blocking(move || -> std::io::Result<(u8, u8)> {
                use std::os::unix::fs::FileExt;
                let handle = std::fs::OpenOptions::new().read(true).write(true).open(&file)?;
                let mut byte = [0u8; 1];
                handle.read_exact_at(&mut byte, offset)?;
                let before = byte[0];
                handle.write_all_at(&[before ^ 1], offset)?;
                handle.sync_all()?;
                Ok((before, before ^ 1))
            })
            .await
            .map_err(Error::internal)?
            .map_err(|e| Error::internal(format!("corrupting {blob}: {e}")));
        }
        let mut bytes = self.backend.get(&path).await?.bytes().await?.to_vec();
        let at = usize::try_from(offset).ok().filter(|at| *at < bytes.len());
        let at = at.ok_or_else(|| Error::internal(format!("offset {offset} is past the end of {blob}")))?;
        let before = bytes[at];
        bytes[at] ^= 1;
        self.put_durably(&path, Bytes::from(bytes)).await?;
        Ok((before, before ^ 1))
    }

    /// The first `len` bytes of the body `blob` (fewer if it is shorter).
    pub async fn read_head(&self, blob: &str, len: u64) -> Result<Bytes> {
        let path = StorePath::from(blob);
        let size = self.backend.head(&path).await?.size;
        let end = len.min(size);
        Ok(self.backend.get_range(&path, 0..end).await?)
    }

    /// The backend (for streaming bodies in and out).
    pub fn backend(&self) -> &Arc<dyn ObjectStore> {
        &self.backend
    }

    // ---- buckets -------------------------------------------------------------------------------

    /// A bucket's record.
    pub fn bucket(&self, name: &str) -> Option<Arc<BucketRecord>> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).get(name).map(|b| b.record.clone())
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> Vec<Arc<BucketRecord>> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = index.values().map(|b| b.record.clone()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Creates a bucket; `Err` with the existing record if the name is taken.
    pub async fn create_bucket(&self, record: BucketRecord) -> Result<std::result::Result<(), Arc<BucketRecord>>> {
        let _lock = self.change_bucket(&record.name).await;
        if let Some(existing) = self.bucket(&record.name) {
            return Ok(Err(existing));
        }
        self.put_bucket_record(&record).await?;
        self.index.write().unwrap_or_else(|e| e.into_inner()).insert(record.name.clone(), IndexedBucket::new(record));
        Ok(Ok(()))
    }

    /// Changes a bucket's record (its encryption configuration, CORS rules, tags, versioning,
    /// ownership controls, ACL, Block Public Access): `change` is applied to the record as it is under
    /// the bucket's exclusive lock, so that two changes of different settings never undo each other,
    /// and may refuse the change by the record as it is (nothing is written then). Versioning, once
    /// configured, stays configured (S3 can only suspend it).
    pub async fn update_bucket(&self, name: &str, change: impl FnOnce(&mut BucketRecord) -> Result<()>) -> Result<()> {
        let _lock = self.change_bucket(name).await;
        let Some(current) = self.bucket(name) else { return Err(Error::no_such_bucket(name)) };
        let mut record = (*current).clone();
        change(&mut record)?;
        record.versioning = record.versioning.or(current.versioning);
        self.put_bucket_record(&record).await?;
        if let Some(bucket) = self.index.write().unwrap_or_else(|e| e.into_inner()).get_mut(&record.name) {
            // Versioning configured for the first time: each object becomes its key's null version.
            if !bucket.versioned() && record.versioning.is_some() {
                bucket.versions = bucket.objects.iter().map(|o| (o.0.key.as_str().into(), vec![o.0.clone()])).collect();
            }
            bucket.record = Arc::new(record);
        }
        Ok(())
    }

    async fn put_bucket_record(&self, record: &BucketRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(Error::internal)?;
        self.put_durably(&bucket_path(&record.name), bytes.into()).await
    }

    /// Deletes an empty bucket; `false` if it has objects, versions or delete markers.
    pub async fn delete_bucket(&self, name: &str) -> Result<bool> {
        let _lock = self.change_bucket(name).await;
        let empty = self.index.read().unwrap_or_else(|e| e.into_inner()).get(name).is_none_or(IndexedBucket::is_empty);
        if !empty {
            return Ok(false);
        }
        self.backend.delete(&bucket_path(name)).await?;
        self.index.write().unwrap_or_else(|e| e.into_inner()).remove(name);
        Ok(true)
    }

    // ---- objects -------------------------------------------------------------------------------

    /// The current object of a key (none when its newest version is a delete marker).
    pub fn object(&self, bucket: &str, key: &str) -> Option<Arc<ObjectRecord>> {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(bucket)
            .and_then(|b| b.objects.get(key).map(|o| o.0.clone()))
    }

    /// The newest version of a key, delete marker or not.
    pub fn latest(&self, bucket: &str, key: &str) -> Option<Arc<ObjectRecord>> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).get(bucket).and_then(|b| b.latest(key).cloned())
    }

    /// One version of a key (a delete marker too).
    pub fn version(&self, bucket: &str, key: &str, version: &VersionSel) -> Option<Arc<ObjectRecord>> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).get(bucket).and_then(|b| b.version(key, version).cloned())
    }

    /// The versions and delete markers of a bucket's keys starting with `prefix`, by key and then
    /// newest first, after `after`, at most `limit` of them. `None` if the bucket does not exist.
    /// In a bucket whose versioning was never configured, each object is its key's only version.
    pub fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&VersionCursor>,
        limit: usize,
    ) -> Option<Vec<VersionEntry>> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let b = index.get(bucket)?;
        if !b.versioned() {
            let after = after.map(|c| c.key.as_str());
            let objects = b.list(prefix, after, limit);
            return Some(objects.into_iter().map(|record| VersionEntry { record, latest: true }).collect());
        }
        let start = match after {
            Some(cursor) if cursor.key.as_str() >= prefix => cursor.key.as_str(),
            _ => prefix,
        };
        let mut out = Vec::new();
        for (key, stack) in b.versions.range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded)) {
            if !key.starts_with(prefix) || out.len() == limit {
                break;
            }
            let newest_first = stack.iter().rev().enumerate();
            let skip = match after.filter(|c| *c.key == **key) {
                None => 0,
                // After one version of the key: the older ones, found by the version's sequence
                // (a position, even if the version was deleted since: a client emptying a bucket
                // deletes each page before asking for the next). A null version that is gone has no
                // position left: the key is listed again from its newest (a version listed twice
                // does less harm than one never listed).
                Some(VersionCursor { version: Some(id), .. }) => {
                    let after = match id.as_str() {
                        "null" => stack.iter().find(|r| r.version_id.is_none()).map(|r| r.sequence),
                        id => crate::model::version_sequence(id),
                    };
                    after.map_or(0, |after| stack.iter().rev().take_while(|r| r.sequence >= after).count())
                }
                Some(VersionCursor { version: None, .. }) => stack.len(),
            };
            for (i, record) in newest_first.skip(skip).take(limit - out.len()) {
                out.push(VersionEntry { record: record.clone(), latest: i == 0 });
            }
        }
        Some(out)
    }

    /// Objects of a bucket whose keys start with `prefix` and sort after `after`, in key order,
    /// at most `limit` of them. `None` if the bucket does not exist.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Vec<Arc<ObjectRecord>>> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        Some(index.get(bucket)?.list(prefix, after, limit))
    }

    /// A fresh path for a body in `bucket`. A seeded stream may draw a path a state made in an earlier run holds
    /// (an archive carried by a kmsim that was not seeded loses the generation it was drawn in): the next draw
    /// then, never another object's body overwritten. The OS's draws are not looked up.
    pub async fn new_blob_path(&self, bucket: &str) -> StorePath {
        loop {
            let path = StorePath::from(format!("data/{bucket}/{}", self.entropy.uuid(Purpose::ObjectId)));
            if !self.entropy.is_deterministic() || self.backend.head(&path).await.is_err() {
                return path;
            }
        }
    }

    /// Makes an object visible: writes its record durably (its body must already be durable),
    /// updates the index, and deletes the body of the object it replaces. Gives back the record as
    /// committed (with its version id in a versioned bucket).
    pub async fn commit_object(self: &Arc<Self>, bucket: &str, record: ObjectRecord) -> Result<Arc<ObjectRecord>> {
        self.commit_object_since(bucket, record, self.resets(), &WriteCondition::None).await
    }

    /// [`Store::commit_object`] of a body whose writing began when [`Store::resets`] was `resets`:
    /// if the store was reset since, the body may be gone with everything else, and the object is
    /// refused (NoSuchBucket) even if a bucket of the same name was created again. A conditional
    /// write commits only if its `condition` still holds under the key's lock (else
    /// ConditionalRequestConflict, and its body is deleted).
    ///
    /// The bucket's versioning decides what the object replaces: in a bucket whose versioning was
    /// never configured, the key's object; with versioning enabled, nothing (the object is a new
    /// version with an id of its own); with it suspended, the key's null version.
    ///
    /// Group commit: the object waits for its commit slot with the others that hash to it, and
    /// whichever commit takes the slot first commits every one waiting, in the order they came
    /// ([`Store::commit_batch`]), so that PUTs overwriting one key share one record write and one
    /// fsync instead of queueing for one each. The batch runs in a task of its own: a client that
    /// goes away stops waiting for its answer but cannot cut a batch short.
    pub async fn commit_object_since(
        self: &Arc<Self>,
        bucket: &str,
        record: ObjectRecord,
        resets: u64,
        condition: &WriteCondition,
    ) -> Result<Arc<ObjectRecord>> {
        let guard = self.commit_into(bucket).await;
        let slot = lock_slot(bucket, &record.key);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let waiting =
            WaitingCommit { bucket: bucket.to_owned(), record, resets, condition: condition.clone(), reply, guard };
        self.slots[slot].waiting.lock().unwrap_or_else(|e| e.into_inner()).push(waiting);
        tokio::spawn(self.clone().commit_waiting(slot));
        answer.await.map_err(|_| Error::internal("an object commit ended without an answer"))?
    }

    /// Takes commit slot `slot` and commits the objects waiting for it, if an earlier holder has
    /// not.
    async fn commit_waiting(self: Arc<Self>, slot: usize) {
        let _slot = self.slots[slot].lock.lock().await;
        let batch = std::mem::take(&mut *self.slots[slot].waiting.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            self.commit_batch(batch).await;
        }
    }

    /// Commits objects waiting for one slot (which the caller holds), in the order they came. Each
    /// is checked (its bucket; its condition, against the objects before it in the batch too) and
    /// stamped; the records are written — of several at one path (overwrites of one key in an
    /// unversioned bucket, or of one null version) only the last, the others being replaced
    /// before anyone could read them — and fsynced together, files then directories; then the
    /// index takes them in order, the bodies they replace are deleted, and each commit is answered.
    async fn commit_batch(&self, batch: Vec<WaitingCommit>) {
        let mut accepted: Vec<AcceptedCommit> = Vec::with_capacity(batch.len());
        // What the batch has made of each key so far, for the conditions of the commits after (kept only when
        // a commit of the batch has a condition).
        let conditional = batch.iter().any(|w| w.condition != WriteCondition::None);
        let mut current: HashMap<(String, String), Arc<ObjectRecord>> = HashMap::new();
        for waiting in batch {
            let WaitingCommit { bucket, mut record, resets, condition, reply, guard } = waiting;
            let Some(bucket_record) = self.bucket(&bucket).filter(|_| self.resets() == resets) else {
                self.delete_blob(&record.blob).await;
                let _ = reply.send(Err(Error::no_such_bucket(&bucket)));
                continue;
            };
            if condition != WriteCondition::None {
                let now = match current.get(&(bucket.clone(), record.key.clone())) {
                    Some(batched) => Some(batched.clone()).filter(|r| !r.delete_marker),
                    None => self.object(&bucket, &record.key),
                };
                if !condition.holds(now.as_deref()) {
                    self.delete_blob(&record.blob).await;
                    let _ = reply.send(Err(Error::ConditionalRequestConflict { key: record.key }));
                    continue;
                }
            }
            self.stamp_version(&mut record, bucket_record.versioning);
            let record = Arc::new(self.compact(record));
            if conditional {
                current.insert((bucket.clone(), record.key.clone()), record.clone());
            }
            accepted.push(AcceptedCommit { bucket, record, reply, _guard: guard });
        }
        if let Err(e) = self.write_records(&accepted).await {
            let reason = e.to_string();
            for commit in accepted {
                let _ = commit.reply.send(Err(Error::internal(&reason)));
            }
            return;
        }
        let replaced: Vec<Arc<ObjectRecord>> = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            accepted.iter().filter_map(|c| index.get_mut(&c.bucket).and_then(|b| b.put(c.record.clone()))).collect()
        };
        for old in replaced {
            self.delete_blob(&old.blob).await;
        }
        for commit in accepted {
            let _ = commit.reply.send(Ok(commit.record));
        }
    }

    /// Writes the records of a batch durably: the last of those at each path.
    async fn write_records(&self, accepted: &[AcceptedCommit]) -> Result<()> {
        if !self.persist_object_records || accepted.is_empty() {
            return Ok(());
        }
        let mut last: HashMap<StorePath, &ObjectRecord> = HashMap::with_capacity(accepted.len());
        for commit in accepted {
            last.insert(record_path(&commit.bucket, &commit.record), &commit.record);
        }
        let mut paths = Vec::with_capacity(last.len());
        for (path, record) in last {
            let bytes = serde_json::to_vec(record).map_err(Error::internal)?;
            self.backend.put(&path, PutPayload::from(bytes)).await?;
            paths.push(path);
        }
        self.sync_all(&paths).await
    }

    /// Gives a record written under `versioning` its version id and sequence.
    fn stamp_version(&self, record: &mut ObjectRecord, versioning: Option<Versioning>) {
        (record.version_id, record.sequence) = match versioning {
            None => (None, 0),
            Some(Versioning::Enabled) => {
                let sequence = self.next_sequence.fetch_add(1, Ordering::SeqCst);
                (Some(crate::model::new_version_id(sequence, &self.entropy)), sequence)
            }
            Some(Versioning::Suspended) => (None, self.next_sequence.fetch_add(1, Ordering::SeqCst)),
        };
    }

    /// Writes a stamped record durably and makes it its key's newest version, under the key's
    /// commit lock; deletes the body of the version it replaces.
    async fn publish(&self, bucket: &str, record: ObjectRecord) -> Result<Arc<ObjectRecord>> {
        if self.persist_object_records {
            let bytes = serde_json::to_vec(&record).map_err(Error::internal)?;
            self.put_durably(&record_path(bucket, &record), bytes.into()).await?;
        }
        let record = Arc::new(self.compact(record));
        let replaced = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            index.get_mut(bucket).and_then(|b| b.put(record.clone()))
        };
        if let Some(old) = replaced {
            self.delete_blob(&old.blob).await;
        }
        Ok(record)
    }

    /// Rewrites the record of an object (the current one, or `version`) with `change` applied,
    /// its body untouched (tags, ACL): durably, under the key's commit lock, so that it cannot undo a
    /// concurrent overwrite or delete. `check` sees the record first, under the same lock, and may
    /// refuse the change (nothing is written then). Gives back the record as rewritten.
    pub async fn update_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
        check: impl FnOnce(&ObjectRecord) -> Result<()>,
        change: impl FnOnce(&mut ObjectRecord),
    ) -> Result<Arc<ObjectRecord>> {
        let _bucket = self.commit_into(bucket).await;
        let _lock = self.slots[lock_slot(bucket, key)].lock.lock().await;
        let current = self.find(bucket, key, version)?;
        check(&current)?;
        let mut record = (*current).clone();
        change(&mut record);
        if self.persist_object_records {
            let bytes = serde_json::to_vec(&record).map_err(Error::internal)?;
            self.put_durably(&record_path(bucket, &record), bytes.into()).await?;
        }
        let record = Arc::new(self.compact(record));
        if let Some(b) = self.index.write().unwrap_or_else(|e| e.into_inner()).get_mut(bucket) {
            b.replace(record.clone());
        }
        Ok(record)
    }

    /// The object a read names: the key's current object, or one version of it. A key whose
    /// newest version is a delete marker is NoSuchKey (saying so); a version that is a marker is
    /// refused (MethodNotAllowed); a version that does not exist is NoSuchVersion.
    pub fn find(&self, bucket: &str, key: &str, version: Option<&VersionSel>) -> Result<Arc<ObjectRecord>> {
        let found = match version {
            None => self.latest(bucket, key),
            Some(version) => self.version(bucket, key, version),
        };
        match (found, version) {
            (Some(record), _) if !record.delete_marker => Ok(record),
            (Some(marker), version) => Err(Error::DeleteMarker {
                key: key.to_owned(),
                version_id: marker.version_str().to_owned(),
                last_modified_millis: marker.last_modified_millis,
                addressed: version.is_some(),
            }),
            (None, None) => Err(Error::NoSuchKey { key: key.to_owned() }),
            (None, Some(version)) => {
                Err(Error::NoSuchVersion { key: key.to_owned(), version_id: version.as_str().to_owned() })
            }
        }
    }

    /// Deletes a key's object (DeleteObject without a version id): in a bucket whose versioning
    /// was never configured, the object (no error if there is none); otherwise a delete marker
    /// becomes the key's newest version (with its own id, or as the null version while versioning
    /// is suspended, replacing the null version).
    pub async fn delete_object(&self, bucket: &str, key: &str, now_millis: i64) -> Result<Deleted> {
        let _bucket = self.commit_into(bucket).await;
        let _lock = self.slots[lock_slot(bucket, key)].lock.lock().await;
        let Some(bucket_record) = self.bucket(bucket) else { return Err(Error::no_such_bucket(bucket)) };
        if bucket_record.versioning.is_none() {
            self.remove_version(bucket, key, &VersionSel::Null).await?;
            return Ok(Deleted::default());
        }
        let mut marker = ObjectRecord::new_delete_marker(key, now_millis);
        self.stamp_version(&mut marker, bucket_record.versioning);
        let marker = self.publish(bucket, marker).await?;
        Ok(Deleted { version_id: Some(marker.version_str().to_owned()), delete_marker: true })
    }

    /// Deletes one version of a key for good (DeleteObject with a version id; no error if there
    /// is none): its record, then its body. The next newest version becomes current.
    pub async fn delete_version(&self, bucket: &str, key: &str, version: &VersionSel) -> Result<Deleted> {
        let _bucket = self.commit_into(bucket).await;
        let _lock = self.slots[lock_slot(bucket, key)].lock.lock().await;
        if self.bucket(bucket).is_none() {
            return Err(Error::no_such_bucket(bucket));
        }
        let removed = self.remove_version(bucket, key, version).await?;
        Ok(Deleted {
            version_id: Some(version.as_str().to_owned()),
            delete_marker: removed.is_some_and(|r| r.delete_marker),
        })
    }

    /// Removes a version (record, index entry, body), under the key's commit lock.
    async fn remove_version(&self, bucket: &str, key: &str, version: &VersionSel) -> Result<Option<Arc<ObjectRecord>>> {
        let Some(existing) = self.version(bucket, key, version) else { return Ok(None) };
        match self.backend.delete(&record_path(bucket, &existing)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(b) = self.index.write().unwrap_or_else(|e| e.into_inner()).get_mut(bucket) {
            b.remove(key, version);
        }
        self.delete_blob(&existing.blob).await;
        Ok(Some(existing))
    }

    // ---- multipart uploads ---------------------------------------------------------------------

    /// An upload in progress.
    pub fn upload(&self, upload_id: &str) -> Option<Arc<UploadRecord>> {
        self.uploads.read().unwrap_or_else(|e| e.into_inner()).get(upload_id).cloned()
    }

    /// The uploads in progress in a bucket, by key then initiation time.
    pub fn uploads(&self, bucket: &str) -> Vec<Arc<UploadRecord>> {
        let uploads = self.uploads.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = uploads.values().filter(|u| u.bucket == bucket).cloned().collect();
        out.sort_by(|a, b| (&a.key, a.initiated_millis, &a.upload_id).cmp(&(&b.key, b.initiated_millis, &b.upload_id)));
        out
    }

    /// Writes an upload's record durably and publishes it.
    pub async fn save_upload(&self, record: UploadRecord) -> Result<()> {
        let _bucket = self.commit_into(&record.bucket).await;
        let _lock = self.slots[lock_slot(&record.bucket, &record.upload_id)].lock.lock().await;
        if self.bucket(&record.bucket).is_none() {
            return Err(Error::no_such_bucket(&record.bucket));
        }
        self.put_upload(record).await
    }

    async fn put_upload(&self, record: UploadRecord) -> Result<()> {
        let bytes = serde_json::to_vec(&record).map_err(Error::internal)?;
        self.put_durably(&upload_path(&record.bucket, &record.upload_id), bytes.into()).await?;
        self.uploads.write().unwrap_or_else(|e| e.into_inner()).insert(record.upload_id.clone(), Arc::new(record));
        Ok(())
    }

    /// Adds a part to an upload (its body must be durable), replacing a part of the same number.
    /// If the upload is gone (completed, aborted, reset), the part's body is deleted.
    pub async fn commit_part(&self, upload_id: &str, part: crate::model::PartRecord) -> Result<()> {
        let Some(current) = self.upload(upload_id) else {
            self.delete_blob(&part.blob).await;
            return Err(no_such_upload(upload_id));
        };
        let _bucket = self.commit_into(&current.bucket).await;
        let _lock = self.slots[lock_slot(&current.bucket, upload_id)].lock.lock().await;
        // Re-read under the lock: another part may have been committed meanwhile.
        let Some(record) = self.upload(upload_id) else {
            self.delete_blob(&part.blob).await;
            return Err(no_such_upload(upload_id));
        };
        let mut record = (*record).clone();
        let replaced = record.parts.insert(part.number, part);
        self.put_upload(record).await?;
        if let Some(old) = replaced {
            self.delete_blob(&old.blob).await;
        }
        Ok(())
    }

    /// Ends an upload: removes its record and the bodies of its parts.
    pub async fn remove_upload(&self, upload_id: &str) -> Result<()> {
        let record = self.upload(upload_id).ok_or_else(|| no_such_upload(upload_id))?;
        let _bucket = self.commit_into(&record.bucket).await;
        let _lock = self.slots[lock_slot(&record.bucket, upload_id)].lock.lock().await;
        // Re-read under the lock: a racing completion or abort may have removed it.
        let record = self.upload(upload_id).ok_or_else(|| no_such_upload(upload_id))?;
        match self.backend.delete(&upload_path(&record.bucket, upload_id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.uploads.write().unwrap_or_else(|e| e.into_inner()).remove(upload_id);
        for part in record.parts.values() {
            self.delete_blob(&part.blob).await;
        }
        Ok(())
    }

    /// Deletes a body (gone already is fine; a delete marker has none); a failure leaves an orphan
    /// for the next sweep.
    pub async fn delete_blob(&self, blob: &str) {
        if blob.is_empty() {
            return;
        }
        match self.backend.delete(&StorePath::from(blob)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(blob, error = %e, "could not delete a body; the next start sweeps it");
            }
        }
    }
}

/// What the sweep must keep for the records set aside: their bodies when the record still names
/// one, else every body of their bucket.
#[derive(Debug, Default)]
struct Kept {
    blobs: std::collections::HashSet<String>,
    buckets: std::collections::HashSet<String>,
}

impl Kept {
    /// Keeps what a set-aside record at `path` (in `bucket`) may refer to.
    fn keep_record_bodies(&mut self, path: &StorePath, bytes: &[u8]) {
        let value: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
        let blob = value.as_ref().and_then(|v| v.get("blob")).and_then(|b| b.as_str());
        let mut parts = path.parts();
        let (kind, second) = (parts.next(), parts.next());
        let bucket = match kind.as_ref().map(|k| k.as_ref()) {
            // buckets/<name>.json[.unreadable]
            Some("buckets") => second.map(|name| {
                let name = name.as_ref();
                let name = name.strip_suffix(SET_ASIDE_SUFFIX).unwrap_or(name);
                name.strip_suffix(".json").unwrap_or(name).to_owned()
            }),
            // meta/<bucket>/..., uploads/<bucket>/...
            _ => second.map(|b| b.as_ref().to_owned()),
        };
        match (kind.as_ref().map(|k| k.as_ref()), blob) {
            (Some("meta"), Some(blob)) => {
                self.blobs.insert(blob.to_owned());
            }
            // A bucket or upload record, or an object record too damaged to name its body.
            _ => self.buckets.extend(bucket),
        }
    }
}

/// Removes the empty directories under `dir` (and `dir` itself if it ends up empty), best effort.
fn remove_empty_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn bucket_path(name: &str) -> StorePath {
    StorePath::from(format!("buckets/{name}.json"))
}

fn upload_path(bucket: &str, upload_id: &str) -> StorePath {
    StorePath::from(format!("uploads/{bucket}/{upload_id}.json"))
}

/// The upload does not exist (never did, or was completed or aborted).
pub fn no_such_upload(upload_id: &str) -> Error {
    Error::NoSuchUpload { upload_id: upload_id.to_owned() }
}

/// Where a version's record lives: the null version at the key's path (where every object of an
/// unversioned bucket is), each other version beside it under its id.
fn record_path(bucket: &str, record: &ObjectRecord) -> StorePath {
    let digest = hex::encode(Sha256::digest(record.key.as_bytes()));
    match &record.version_id {
        None => StorePath::from(format!("meta/{bucket}/{digest}.json")),
        Some(id) => StorePath::from(format!("meta/{bucket}/{digest}.{id}.json")),
    }
}

fn lock_slot(bucket: &str, key: &str) -> usize {
    let digest = Sha256::digest(format!("{bucket}/{key}").as_bytes());
    usize::from(digest[0]) % COMMIT_SLOTS
}

/// Removes the staging files (`<name>#<n>`) that `LocalFileSystem` leaves when a write is cut
/// short. Returns how many it removed.
fn sweep_staging_files(root: &Path) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains('#'))
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}
