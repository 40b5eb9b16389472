//! Persistence of buckets and objects on an `object_store` backend, with an in-memory index.
//!
//! Layout under the backend's root:
//!
//! ```text
//! buckets/<bucket>.json              BucketRecord
//! meta/<bucket>/<sha256(key)>.json   ObjectRecord (the key itself is inside)
//! uploads/<bucket>/<upload id>.json  UploadRecord of a multipart upload, with its parts
//! data/<bucket>/<uuid>               a body (object or part): an AWS Encryption SDK message, or
//!                                    plain bytes
//! ```
//!
//! An object becomes visible only when its record is written, after its body: a crash in between
//! leaves an unreferenced body, which [`Store::open`] sweeps. On the local file system every
//! write is followed by an fsync of the file and of its directory, so an acknowledged object
//! survives a power cut. The index (buckets and their sorted keys) is rebuilt from the records at
//! start; listing never touches the backend.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

use crate::error::{Result, S3Error};
use crate::model::{BucketRecord, ObjectRecord, UploadRecord};

/// Number of locks that serialize record commits per (bucket, key).
const COMMIT_LOCKS: usize = 64;

/// One bucket in the index.
#[derive(Debug, Clone)]
pub struct IndexedBucket {
    /// The bucket record.
    pub record: Arc<BucketRecord>,
    /// Objects by key.
    pub objects: BTreeMap<String, Arc<ObjectRecord>>,
}

/// The object store's persistence.
#[derive(Debug)]
pub struct Store {
    backend: Arc<dyn ObjectStore>,
    /// Set for the local file system, whose writes are fsynced.
    local_root: Option<PathBuf>,
    index: RwLock<HashMap<String, IndexedBucket>>,
    /// Multipart uploads in progress, by upload id.
    uploads: RwLock<HashMap<String, Arc<UploadRecord>>>,
    commit_locks: Vec<tokio::sync::Mutex<()>>,
}

impl Store {
    /// A store on the local file system under `root` (created if missing).
    pub async fn local(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| S3Error::internal(format!("creating {}: {e}", root.display())))?;
        let backend = LocalFileSystem::new_with_prefix(root)?;
        Self::open(Arc::new(backend), Some(root.to_owned())).await
    }

    /// A store on any S3-compatible service (a cluster a user moved to): `url` is
    /// `s3://<bucket>[/<prefix>]`; `options` are `object_store`'s S3 settings
    /// (`aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_allow_http`, ...). Durability is the remote service's.
    pub async fn s3(url: &str, options: &[(String, String)]) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| S3Error::internal(format!("object store URL {url} is not s3://bucket[/prefix]")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in options {
            let key: object_store::aws::AmazonS3ConfigKey =
                key.parse().map_err(|e| S3Error::internal(format!("object store option {key}: {e}")))?;
            builder = builder.with_config(key, value);
        }
        let remote: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let backend: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
            "" => remote,
            prefix => Arc::new(object_store::prefix::PrefixStore::new(remote, prefix)),
        };
        Self::open(backend, None).await
    }

    /// A store that lives in memory only.
    pub async fn in_memory() -> Result<Self> {
        Self::open(Arc::new(InMemory::new()), None).await
    }

    /// Opens a store on any backend: loads the index and sweeps bodies no record refers to.
    pub async fn open(backend: Arc<dyn ObjectStore>, local_root: Option<PathBuf>) -> Result<Self> {
        let store = Store {
            backend,
            local_root,
            index: RwLock::new(HashMap::new()),
            uploads: RwLock::new(HashMap::new()),
            commit_locks: (0..COMMIT_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
        };
        store.load().await?;
        store.sweep_orphans().await?;
        Ok(store)
    }

    async fn load(&self) -> Result<()> {
        let mut index = HashMap::new();
        for path in self.list_paths("buckets").await? {
            let record: BucketRecord = self.read_json(&path).await?;
            index.insert(record.name.clone(), IndexedBucket { record: Arc::new(record), objects: BTreeMap::new() });
        }
        for path in self.list_paths("meta").await? {
            let record: ObjectRecord = self.read_json(&path).await?;
            let bucket = path.parts().nth(1).map(|p| p.as_ref().to_owned()).unwrap_or_default();
            match index.get_mut(&bucket) {
                Some(b) => {
                    b.objects.insert(record.key.clone(), Arc::new(record));
                }
                None => tracing::warn!(%path, "object record of a missing bucket"),
            }
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        let mut uploads = HashMap::new();
        for path in self.list_paths("uploads").await? {
            let record: UploadRecord = self.read_json(&path).await?;
            uploads.insert(record.upload_id.clone(), Arc::new(record));
        }
        *self.uploads.write().unwrap_or_else(|e| e.into_inner()) = uploads;
        Ok(())
    }

    /// Deletes bodies that no record refers to (left by a crash between body and record), and the
    /// staging files of interrupted local writes.
    async fn sweep_orphans(&self) -> Result<()> {
        let mut referenced: std::collections::HashSet<String> = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            index.values().flat_map(|b| b.objects.values().map(|o| o.blob.clone())).collect()
        };
        {
            let uploads = self.uploads.read().unwrap_or_else(|e| e.into_inner());
            referenced.extend(uploads.values().flat_map(|u| u.parts.values().map(|p| p.blob.clone())));
        }
        let mut swept = 0;
        for path in self.list_paths("data").await? {
            if !referenced.contains(path.as_ref()) {
                self.backend.delete(&path).await?;
                swept += 1;
            }
        }
        if let Some(root) = &self.local_root {
            swept += sweep_staging_files(root);
        }
        if swept > 0 {
            tracing::info!(swept, "removed bodies of unfinished writes");
        }
        Ok(())
    }

    async fn list_paths(&self, prefix: &str) -> Result<Vec<StorePath>> {
        let prefix = StorePath::from(prefix);
        let mut stream = self.backend.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            out.push(meta?.location);
        }
        Ok(out)
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, path: &StorePath) -> Result<T> {
        let bytes = self.backend.get(path).await?.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| S3Error::internal(format!("record {path} is unreadable: {e}")))
    }

    /// Writes `bytes` at `path` durably.
    async fn put_durably(&self, path: &StorePath, bytes: Bytes) -> Result<()> {
        self.backend.put(path, PutPayload::from(bytes)).await?;
        self.sync(path).await
    }

    /// On the local file system, fsyncs the file at `path` and its directory.
    pub async fn sync(&self, path: &StorePath) -> Result<()> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let file = root.join(path.as_ref());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(S3Error::internal)?
        .map_err(|e| S3Error::internal(format!("fsync {path}: {e}")))
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
        let _lock = self.commit_locks[0].lock().await;
        if let Some(existing) = self.bucket(&record.name) {
            return Ok(Err(existing));
        }
        self.put_bucket_record(&record).await?;
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.name.clone(), IndexedBucket { record: Arc::new(record), objects: BTreeMap::new() });
        Ok(Ok(()))
    }

    /// Replaces a bucket's record (e.g. its encryption configuration).
    pub async fn update_bucket(&self, record: BucketRecord) -> Result<()> {
        let _lock = self.commit_locks[0].lock().await;
        self.put_bucket_record(&record).await?;
        if let Some(bucket) = self.index.write().unwrap_or_else(|e| e.into_inner()).get_mut(&record.name) {
            bucket.record = Arc::new(record);
        }
        Ok(())
    }

    async fn put_bucket_record(&self, record: &BucketRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(S3Error::internal)?;
        self.put_durably(&bucket_path(&record.name), bytes.into()).await
    }

    /// Deletes an empty bucket; `false` if it has objects.
    pub async fn delete_bucket(&self, name: &str) -> Result<bool> {
        let _lock = self.commit_locks[0].lock().await;
        let empty = self.index.read().unwrap_or_else(|e| e.into_inner()).get(name).is_none_or(|b| b.objects.is_empty());
        if !empty {
            return Ok(false);
        }
        self.backend.delete(&bucket_path(name)).await?;
        self.index.write().unwrap_or_else(|e| e.into_inner()).remove(name);
        Ok(true)
    }

    // ---- objects -------------------------------------------------------------------------------

    /// An object's record.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Arc<ObjectRecord>> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).get(bucket).and_then(|b| b.objects.get(key).cloned())
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
        let objects = &index.get(bucket)?.objects;
        let start = match after {
            Some(after) if after >= prefix => std::ops::Bound::Excluded(after.to_owned()),
            _ => std::ops::Bound::Included(prefix.to_owned()),
        };
        Some(
            objects
                .range((start, std::ops::Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(limit)
                .map(|(_, v)| v.clone())
                .collect(),
        )
    }

    /// A fresh path for a body in `bucket`.
    pub fn new_blob_path(bucket: &str) -> StorePath {
        StorePath::from(format!("data/{bucket}/{}", uuid::Uuid::new_v4()))
    }

    /// Makes an object visible: writes its record durably (its body must already be durable),
    /// updates the index, and deletes the body of the object it replaces.
    pub async fn commit_object(&self, bucket: &str, record: ObjectRecord) -> Result<()> {
        let _lock = self.commit_locks[lock_slot(bucket, &record.key)].lock().await;
        if self.bucket(bucket).is_none() {
            self.backend.delete(&StorePath::from(record.blob.as_str())).await?;
            return Err(S3Error::no_such_bucket(bucket));
        }
        let bytes = serde_json::to_vec(&record).map_err(S3Error::internal)?;
        self.put_durably(&object_path(bucket, &record.key), bytes.into()).await?;
        let replaced = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            match index.get_mut(bucket) {
                Some(b) => b.objects.insert(record.key.clone(), Arc::new(record)),
                None => None,
            }
        };
        if let Some(old) = replaced {
            self.delete_blob(&old.blob).await;
        }
        Ok(())
    }

    /// Deletes an object (no error if it does not exist).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let _lock = self.commit_locks[lock_slot(bucket, key)].lock().await;
        let Some(existing) = self.object(bucket, key) else { return Ok(()) };
        match self.backend.delete(&object_path(bucket, key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(b) = self.index.write().unwrap_or_else(|e| e.into_inner()).get_mut(bucket) {
            b.objects.remove(key);
        }
        self.delete_blob(&existing.blob).await;
        Ok(())
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
        let _lock = self.commit_locks[lock_slot(&record.bucket, &record.upload_id)].lock().await;
        self.put_upload(record).await
    }

    async fn put_upload(&self, record: UploadRecord) -> Result<()> {
        let bytes = serde_json::to_vec(&record).map_err(S3Error::internal)?;
        self.put_durably(&upload_path(&record.bucket, &record.upload_id), bytes.into()).await?;
        self.uploads.write().unwrap_or_else(|e| e.into_inner()).insert(record.upload_id.clone(), Arc::new(record));
        Ok(())
    }

    /// Adds a part to an upload (its body must be durable), replacing a part of the same number.
    pub async fn commit_part(&self, upload_id: &str, part: crate::model::PartRecord) -> Result<()> {
        let current = self.upload(upload_id).ok_or_else(|| no_such_upload(upload_id))?;
        let _lock = self.commit_locks[lock_slot(&current.bucket, upload_id)].lock().await;
        // Re-read under the lock: another part may have been committed meanwhile.
        let mut record = (*self.upload(upload_id).ok_or_else(|| no_such_upload(upload_id))?).clone();
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
        let _lock = self.commit_locks[lock_slot(&record.bucket, upload_id)].lock().await;
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

    /// Deletes a body; a failure leaves an orphan for the next sweep.
    pub async fn delete_blob(&self, blob: &str) {
        if let Err(e) = self.backend.delete(&StorePath::from(blob)).await {
            tracing::warn!(blob, error = %e, "could not delete a replaced body; the next start sweeps it");
        }
    }
}

fn bucket_path(name: &str) -> StorePath {
    StorePath::from(format!("buckets/{name}.json"))
}

fn upload_path(bucket: &str, upload_id: &str) -> StorePath {
    StorePath::from(format!("uploads/{bucket}/{upload_id}.json"))
}

/// The upload does not exist (never did, or was completed or aborted).
pub fn no_such_upload(upload_id: &str) -> S3Error {
    S3Error::new(
        "NoSuchUpload",
        http::StatusCode::NOT_FOUND,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
    .with("UploadId", upload_id)
}

fn object_path(bucket: &str, key: &str) -> StorePath {
    StorePath::from(format!("meta/{bucket}/{}.json", hex::encode(Sha256::digest(key.as_bytes()))))
}

fn lock_slot(bucket: &str, key: &str) -> usize {
    let digest = Sha256::digest(format!("{bucket}/{key}").as_bytes());
    usize::from(digest[0]) % COMMIT_LOCKS
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
