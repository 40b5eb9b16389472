//! State fixtures: `kmsim state export` / `import` and `/_sim/state`. One archive ([`archive`], documented in
//! `docs/formats.md`) holds every service's state — KMS keys (material included) and aliases, grants and key
//! policies inside the keys; IAM users, roles, managed policies and access keys; buckets, every object version and
//! multipart upload with their bodies, the SSE-S3 service key; volumes, their files and snapshots.
//!
//! Secrets leave the services only re-wrapped under keys derived (once per archive) from the user's passphrase, and
//! enter the importing services re-wrapped under their own master key, `iam.key` and SSE-S3 key. Bodies and volume
//! files are copied as they are: they are ciphertext under KMS data keys (or what the client made them).
//!
//! Consistency: every request of the edge (and every admin call, and the key sweep) holds the [`StateGate`]
//! shared; an export or import holds it exclusive, then waits for the volume jobs under way
//! ([`evs::Evs::exclusive`]). So an export reads one cut with no request half-applied, and an import is seen
//! whole or not at all. An export is refused while a volume is attached (NBD writes do not pass the edge).

pub mod archive;
pub mod cli;

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use evs::Evs;
use futures::TryStreamExt;
use iam::Identities;
use kms::Kms;
use kms::material::{KeyMaterial, MasterKey};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use obs::Obs;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use zeroize::Zeroizing;

use archive::{ArchiveError, ArchiveKeys, KdfParams, Passphrase, Place, Reader, Record, Writer, tag};

/// The file of the SSE-S3 service key in a data dir.
pub const SSE_S3_KEY_FILE: &str = "sse-s3.key";
/// The purpose the SSE-S3 service key is sealed for in an archive.
const SSE_S3_PURPOSE: &str = "sse-s3 service key";
/// The most record bytes (JSON) an import holds in memory before it applies them.
const MAX_RECORD_BYTES: usize = 1 << 30;
/// Files of the object store up to this length are written in one piece; longer ones as multipart writes.
const ONE_PIECE: u64 = 8 << 20;

/// Shared by every request that may change state, exclusive for a state export or import.
#[derive(Debug, Clone, Default)]
pub struct StateGate(Arc<tokio::sync::RwLock<()>>);

impl StateGate {
    /// Held while a request may change state.
    pub async fn shared(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.0.clone().read_owned().await
    }

    /// Held by an export or import: waits for the requests in progress, keeps new ones waiting.
    pub async fn exclusive(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.0.clone().write_owned().await
    }
}

/// The services whose state an archive holds.
#[derive(Debug, Clone)]
pub struct StateServices {
    /// The KMS.
    pub kms: Arc<Kms>,
    /// The identity store.
    pub identities: Arc<Identities>,
    /// The object store.
    pub obs: Arc<Obs>,
    /// The volume service.
    pub evs: Arc<Evs>,
    /// The data dir (none in memory): the SSE-S3 key file lives there, and an import syncs its file system.
    pub data_dir: Option<PathBuf>,
    /// The gate every state-changing request holds shared.
    pub gate: StateGate,
}

/// Why an export or import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The archive cannot be read or written (wrong passphrase, newer format, truncated, corrupt, I/O).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// An import into services that already hold state.
    #[error("{0}")]
    NotEmpty(String),
    /// An export while volumes are attached.
    #[error("{0}")]
    Busy(String),
    /// A service failed.
    #[error("{0}")]
    Failed(String),
}

fn failed(what: &str) -> impl Fn(String) -> StateError + '_ {
    move |detail| StateError::Failed(format!("{what}: {detail}"))
}

/// What an archive held: counts for the log, the CLI and `/_sim/state`'s answer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// KMS keys (each multi-Region replica counts).
    pub keys: usize,
    /// Aliases.
    pub aliases: usize,
    /// IAM users.
    pub users: usize,
    /// IAM roles.
    pub roles: usize,
    /// IAM managed policies.
    pub policies: usize,
    /// IAM access keys.
    pub access_keys: usize,
    /// Buckets.
    pub buckets: usize,
    /// Object versions (delete markers included).
    pub objects: usize,
    /// Multipart uploads in progress.
    pub uploads: usize,
    /// Files (bodies, snapshots, volume records and files).
    pub files: usize,
    /// Bytes of file data.
    pub data_bytes: u64,
    /// The seed and generation of a deterministic exporter (docs/testing.md, "Deterministic runs").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deterministic: Option<EntropyRecord>,
}

impl StateServices {
    /// Whether every service is empty (what an import needs); the error names what is not.
    fn check_empty(&self) -> Result<(), StateError> {
        let mut held = Vec::new();
        if !self.kms.is_empty() {
            held.push("KMS keys or aliases");
        }
        if !self.identities.is_empty() {
            held.push("IAM users, roles or policies");
        }
        if !self.obs.store().is_empty() {
            held.push("buckets");
        }
        if !self.evs.is_empty() {
            held.push("volumes or snapshots");
        }
        match held.is_empty() {
            true => Ok(()),
            false => Err(StateError::NotEmpty(format!(
                "a state archive is imported only into an empty kmsim, and this one holds {}",
                held.join(", ")
            ))),
        }
    }
}

/// Writes an archive of the services' state to `out` under `passphrase`, as one consistent cut; gives back `out`
/// (flushed, not synced) and what it holds.
pub async fn export(
    services: &StateServices,
    out: File,
    passphrase: Passphrase,
    params: KdfParams,
) -> Result<(File, Summary), StateError> {
    let _gate = services.gate.exclusive().await;
    let _volumes = services.evs.exclusive().await;
    let attached = services.evs.attached();
    if !attached.is_empty() {
        return Err(StateError::Busy(format!(
            "volumes are attached ({}): their files change under NBD writes; detach them before exporting",
            attached.join(", ")
        )));
    }
    let services = services.clone();
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || export_blocking(&services, &handle, out, &passphrase, params))
        .await
        .map_err(|e| StateError::Failed(format!("the export task: {e}")))?
}

fn export_blocking(
    services: &StateServices,
    handle: &Handle,
    out: File,
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<(File, Summary), StateError> {
    let mut writer = Writer::create(BufWriter::with_capacity(1 << 20, out), passphrase, params)?;
    let mut summary = Summary::default();
    if let Some(record) = exported_entropy(services)? {
        writer.record(tag::ENTROPY, &to_json(&record)?)?;
        summary.deterministic = Some(record);
    }
    let kms = services.kms.export_state(&kms_key(writer.keys())).map_err(|e| failed("the KMS")(e.to_string()))?;
    for record in &kms.keys {
        writer.record(tag::KMS_KEY, &to_json(record)?)?;
    }
    for record in &kms.aliases {
        writer.record(tag::KMS_ALIAS, &to_json(record)?)?;
    }
    (summary.keys, summary.aliases) = (kms.keys.len(), kms.aliases.len());
    drop(kms);
    let iam = services
        .identities
        .export_state(&iam_box(writer.keys()))
        .map_err(|e| failed("the identity store")(e.to_string()))?;
    for record in &iam.policies {
        writer.record(tag::IAM_POLICY, &to_json(record)?)?;
    }
    for record in &iam.users {
        writer.record(tag::IAM_USER, &to_json(record)?)?;
    }
    for record in &iam.roles {
        writer.record(tag::IAM_ROLE, &to_json(record)?)?;
    }
    for record in &iam.access_keys {
        writer.record(tag::IAM_ACCESS_KEY, &to_json(record)?)?;
    }
    (summary.users, summary.roles, summary.policies, summary.access_keys) =
        (iam.users.len(), iam.roles.len(), iam.policies.len(), iam.access_keys.len());
    let sealed = writer.keys().seal(SSE_S3_PURPOSE, services.obs.sse_s3_key().bytes());
    writer.record(tag::SSE_S3_KEY, &sealed)?;
    let objects = services.obs.store().export_state();
    for record in &objects.buckets {
        writer.record(tag::OBS_BUCKET, &to_json(record)?)?;
    }
    for (bucket, record) in &objects.objects {
        writer.object(bucket, &to_json(record)?)?;
    }
    for record in &objects.uploads {
        writer.record(tag::OBS_UPLOAD, &to_json(record)?)?;
    }
    (summary.buckets, summary.objects, summary.uploads) =
        (objects.buckets.len(), objects.objects.len(), objects.uploads.len());
    // Bodies, then the volume service's snapshots (in the same backend) and volume directory.
    let backend = services.obs.store().backend().clone();
    let mut paths: Vec<String> = objects.bodies();
    drop(objects);
    let snapshots: Vec<_> = handle
        .block_on(backend.list(Some(&StorePath::from("snapshots"))).try_collect::<Vec<_>>())
        .map_err(|e| failed("listing snapshots")(e.to_string()))?;
    paths.extend(snapshots.into_iter().map(|meta| meta.location.to_string()));
    let mut seen = HashSet::new();
    for path in paths {
        if seen.insert(path.clone()) {
            export_object(&mut writer, handle, backend.as_ref(), &path, &mut summary)?;
        }
    }
    export_volume_dir(&mut writer, services.evs.volume_dir(), &mut summary)?;
    let out = writer.finish()?;
    let file = out.into_inner().map_err(|e| ArchiveError::Io(e.into_error()))?;
    Ok((file, summary))
}

fn to_json(record: &impl Serialize) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(record).map_err(|e| StateError::Failed(format!("encoding a record: {e}")))
}

/// The archive's KMS key, as a master key (material is wrapped under it bound to key id and version, as at rest).
fn kms_key(keys: &ArchiveKeys) -> MasterKey {
    MasterKey::new(&KeyMaterial::from_bytes(keys.kms.as_ref()))
}

fn iam_box(keys: &ArchiveKeys) -> iam::secrets::SecretBox {
    iam::secrets::SecretBox::new(&keys.iam)
}

/// Copies one body of the object store into the archive, a chunk at a time.
fn export_object(
    writer: &mut Writer<impl Write>,
    handle: &Handle,
    backend: &dyn ObjectStore,
    path: &str,
    summary: &mut Summary,
) -> Result<(), StateError> {
    let location = StorePath::from(path);
    let read_failed = |e: object_store::Error| StateError::Failed(format!("reading {path} of the object store: {e}"));
    let length = handle.block_on(backend.head(&location)).map_err(read_failed)?.size;
    writer.file(Place::Objects, path, length)?;
    let mut offset = 0u64;
    while offset < length {
        let end = length.min(offset + archive::DATA_CHUNK as u64);
        let bytes = handle.block_on(backend.get_range(&location, offset..end)).map_err(read_failed)?;
        writer.data(offset, &bytes)?;
        offset = end;
    }
    summary.files += 1;
    summary.data_bytes += length;
    Ok(())
}

/// Copies every file of the volume directory, records and volume files; volume files keep their holes (only the
/// ranges `SEEK_DATA` finds are copied).
fn export_volume_dir(writer: &mut Writer<impl Write>, dir: &Path, summary: &mut Summary) -> Result<(), StateError> {
    let io = |what: String| move |e: std::io::Error| StateError::Failed(format!("{what}: {e}"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))? {
        let entry = entry.map_err(io(format!("reading {}", dir.display())))?;
        if entry.file_type().map_err(io(format!("reading {}", dir.display())))?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let mut buffer = vec![0u8; archive::DATA_CHUNK];
    for name in names {
        let path = dir.join(&name);
        let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
        let length = file.metadata().map_err(io(format!("reading {}", path.display())))?.len();
        writer.file(Place::Volumes, &name, length)?;
        let mut position = 0u64;
        while position < length {
            let start = match rustix::fs::seek(&file, rustix::fs::SeekFrom::Data(position)) {
                Ok(start) => start,
                Err(rustix::io::Errno::NXIO) => break,
                Err(e) => return Err(io(format!("seeking in {}", path.display()))(e.into())),
            };
            let end = rustix::fs::seek(&file, rustix::fs::SeekFrom::Hole(start))
                .map_err(|e| io(format!("seeking in {}", path.display()))(e.into()))?
                .min(length);
            let mut offset = start;
            while offset < end {
                let n = (end - offset).min(buffer.len() as u64) as usize;
                file.read_exact_at(&mut buffer[..n], offset).map_err(io(format!("reading {}", path.display())))?;
                writer.data(offset, &buffer[..n])?;
                summary.data_bytes += n as u64;
                offset += n as u64;
            }
            position = end;
        }
        summary.files += 1;
    }
    Ok(())
}

/// Reads an archive from `input` under `passphrase` into services that hold nothing yet. Files are written as
/// they come; records are kept until the archive's authentication code verified, then stored, each service's in
/// one transaction, re-wrapped under its own keys; in a data dir every file written is fsynced before the answer.
/// On failure the services are left empty.
pub async fn import(services: &StateServices, input: File, passphrase: Passphrase) -> Result<Summary, StateError> {
    let _gate = services.gate.exclusive().await;
    let volumes = services.evs.exclusive().await;
    services.check_empty()?;
    let owned = services.clone();
    let handle = Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        let mut touched = false;
        let result = import_blocking(&owned, &handle, input, &passphrase, &mut touched);
        (result, touched)
    })
    .await;
    // A task that panicked may have stored part of the archive: emptied like any failed import.
    let (result, touched) = joined.unwrap_or_else(|e| (Err(StateError::Failed(format!("the import task: {e}"))), true));
    drop(volumes);
    if result.is_err() && touched {
        empty_services(services).await;
    }
    result
}

/// A deterministic exporter's draws (`tag::ENTROPY`): an importer of the same seed draws from `next_generation` on,
/// never again what made the archive's ids and keys (`shared::entropy`, "Generations").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntropyRecord {
    /// The seed's fingerprint (`Entropy::fingerprint`).
    pub seed_fingerprint: String,
    /// The first generation none of the archive's draws came from.
    pub next_generation: u64,
}

/// What the archive says of the exporter's entropy: a deterministic kmsim's seed and generation, or those recorded
/// in a deterministic data dir that `kmsim state export` opened without a seed.
fn exported_entropy(services: &StateServices) -> Result<Option<EntropyRecord>, StateError> {
    let entropy = &services.kms.entropy;
    if let (Some(fingerprint), Some(generation)) = (entropy.fingerprint(), entropy.generation()) {
        return Ok(Some(EntropyRecord { seed_fingerprint: fingerprint.to_owned(), next_generation: generation + 1 }));
    }
    let Some(dir) = &services.data_dir else { return Ok(None) };
    let recorded = crate::entropy_marker::recorded_generation(dir).map_err(|e| StateError::Failed(e.to_string()))?;
    Ok(recorded.map(|(seed_fingerprint, next_generation)| EntropyRecord { seed_fingerprint, next_generation }))
}

/// What an import keeps in memory until the archive verified.
#[derive(Default)]
struct Pending {
    entropy: Option<EntropyRecord>,
    keys: Vec<kms::model::KeyRecord>,
    aliases: Vec<kms::model::AliasRecord>,
    iam: iam::store::Contents,
    sse_s3: Option<Zeroizing<Vec<u8>>>,
    objects: obs::store::StoreState,
    record_bytes: usize,
}

/// The file being written.
enum Open {
    /// A file of the volume directory, or of an object store on the local file system, written in place.
    Local(File),
    /// A short object store file, collected then put whole.
    Whole { location: StorePath, bytes: Vec<u8> },
    /// A long one, written as a multipart upload.
    Multipart { location: StorePath, upload: object_store::WriteMultipart, written: u64 },
}

fn import_blocking(
    services: &StateServices,
    handle: &Handle,
    input: File,
    passphrase: &Passphrase,
    touched: &mut bool,
) -> Result<Summary, StateError> {
    let mut reader = Reader::open(BufReader::with_capacity(1 << 20, input), passphrase)?;
    // From the first file on, a failure leaves something to remove.
    *touched = true;
    let backend = services.obs.store().backend().clone();
    let volume_dir = services.evs.volume_dir().to_owned();
    let mut pending = Pending::default();
    let mut summary = Summary::default();
    let mut open: Option<Open> = None;
    let objects_root = services.obs.store().local_root().map(Path::to_owned);
    let mut written: Vec<PathBuf> = Vec::new();
    loop {
        let record = reader.next_record()?;
        if let Record::Plain(_, payload) | Record::Object { json: payload, .. } = &record {
            pending.record_bytes += payload.len();
            if pending.record_bytes > MAX_RECORD_BYTES {
                return Err(StateError::Failed(format!(
                    "the archive's records take more than {MAX_RECORD_BYTES} bytes, more than an import holds"
                )));
            }
        }
        match record {
            Record::Plain(tag, payload) => pending.add(tag, &payload, reader.keys())?,
            Record::Object { bucket, json } => {
                let record = parse_obs(&json)?;
                pending.objects.objects.push((bucket, record));
            }
            Record::File { place, name, length } => {
                finish(open.take(), handle, backend.as_ref())?;
                let root = objects_root.as_deref();
                open = Some(start_file(place, &name, length, &volume_dir, root, backend.as_ref(), handle)?);
                // A local file to make durable (a remote object store's durability is its own).
                match place {
                    Place::Volumes => written.push(volume_dir.join(&name)),
                    Place::Objects => written.extend(objects_root.as_ref().map(|root| root.join(&name))),
                }
                summary.files += 1;
            }
            Record::Data { offset, bytes } => {
                summary.data_bytes += bytes.len() as u64;
                write_data(open.as_mut(), offset, &bytes, handle)?;
            }
            Record::End => {
                finish(open.take(), handle, backend.as_ref())?;
                break;
            }
        }
    }
    // The archive verified: store it.
    let sse_s3 = pending.sse_s3.take().ok_or_else(|| corrupt("it holds no SSE-S3 service key"))?;
    let sse_s3: Zeroizing<[u8; 32]> =
        Zeroizing::new(sse_s3.as_slice().try_into().map_err(|_| corrupt("its SSE-S3 service key is not 32 bytes"))?);
    if let Some(dir) = &services.data_dir {
        let text = Zeroizing::new(format!("{}\n", hex::encode(sse_s3.as_ref())));
        shared::secret_file::write_durably(&dir.join(SSE_S3_KEY_FILE), text.as_bytes(), 0o600)
            .map_err(|e| StateError::Failed(format!("writing {SSE_S3_KEY_FILE}: {e}")))?;
    }
    services.obs.import_sse_s3_key(obs::sse_s3::SseS3Key::new(&sse_s3));
    // Bodies and files are durable before the records that refer to them.
    sync_files(services, written)?;
    (summary.keys, summary.aliases) = (pending.keys.len(), pending.aliases.len());
    let kms_state =
        kms::KmsState { keys: std::mem::take(&mut pending.keys), aliases: std::mem::take(&mut pending.aliases) };
    services.kms.import_state(kms_state, &kms_key(reader.keys())).map_err(|e| failed("the KMS")(e.to_string()))?;
    let iam = std::mem::take(&mut pending.iam);
    (summary.users, summary.roles, summary.policies, summary.access_keys) =
        (iam.users.len(), iam.roles.len(), iam.policies.len(), iam.access_keys.len());
    services
        .identities
        .import_state(iam, &iam_box(reader.keys()))
        .map_err(|e| failed("the identity store")(e.to_string()))?;
    let objects = std::mem::take(&mut pending.objects);
    (summary.buckets, summary.objects, summary.uploads) =
        (objects.buckets.len(), objects.objects.len(), objects.uploads.len());
    let records = handle
        .block_on(services.obs.store().import_state(objects))
        .map_err(|e| failed("the object store")(e.to_string()))?;
    handle.block_on(services.evs.reload()).map_err(|e| failed("the volume service")(e.to_string()))?;
    let records = records.iter().filter_map(|path| objects_root.as_ref().map(|root| root.join(path.as_ref())));
    sync_files(services, records.collect())?;
    next_generation(services, pending.entropy.as_ref())?;
    summary.deterministic = pending.entropy;
    Ok(summary)
}

/// A deterministic importer draws in a generation after the archive's and after its own, recorded in the data dir
/// for its next start: nothing it draws from now on can be an id or key the archive brought.
fn next_generation(services: &StateServices, archived: Option<&EntropyRecord>) -> Result<(), StateError> {
    let entropy = &services.kms.entropy;
    let Some(current) = entropy.generation() else { return Ok(()) };
    let archived = archived
        .filter(|record| entropy.fingerprint() == Some(record.seed_fingerprint.as_str()))
        .map_or(0, |record| record.next_generation);
    entropy.start_generation(archived.max(current.saturating_add(1)));
    match &services.data_dir {
        Some(dir) => {
            crate::entropy_marker::record_generation(dir, entropy).map_err(|e| StateError::Failed(e.to_string()))
        }
        None => Ok(()),
    }
}

fn corrupt(what: &str) -> StateError {
    StateError::Archive(ArchiveError::Corrupt(what.to_owned()))
}

fn parse_obs<T: obs::model::Record>(json: &[u8]) -> Result<T, StateError> {
    obs::model::parse_record(json).map_err(|e| corrupt(&format!("an object store record: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(json).map_err(|e| corrupt(&format!("a {what} record: {e}")))
}

impl Pending {
    fn add(&mut self, tag: u8, payload: &[u8], keys: &ArchiveKeys) -> Result<(), StateError> {
        match tag {
            tag::ENTROPY => self.entropy = Some(parse("entropy", payload)?),
            tag::KMS_KEY => self.keys.push(parse("KMS key", payload)?),
            tag::KMS_ALIAS => self.aliases.push(parse("KMS alias", payload)?),
            tag::IAM_USER => self.iam.users.push(parse("IAM user", payload)?),
            tag::IAM_ROLE => self.iam.roles.push(parse("IAM role", payload)?),
            tag::IAM_POLICY => self.iam.policies.push(parse("IAM policy", payload)?),
            tag::IAM_ACCESS_KEY => self.iam.access_keys.push(parse("IAM access key", payload)?),
            tag::SSE_S3_KEY => self.sse_s3 = Some(keys.open(SSE_S3_PURPOSE, payload)?),
            tag::OBS_BUCKET => self.objects.buckets.push(parse_obs(payload)?),
            tag::OBS_UPLOAD => self.objects.uploads.push(parse_obs(payload)?),
            other => return Err(corrupt(&format!("record tag {other:#04x} out of place"))),
        }
        Ok(())
    }
}

/// Checks a file's name for its place (the archive is not authenticated until its end: a name must not reach
/// outside the volume directory or the store's own prefixes) and opens it for writing.
fn start_file(
    place: Place,
    name: &str,
    length: u64,
    volume_dir: &Path,
    objects_root: Option<&Path>,
    backend: &dyn ObjectStore,
    handle: &Handle,
) -> Result<Open, StateError> {
    let bad_name = || corrupt(&format!("file name {name:?} is not one kmsim writes"));
    match place {
        Place::Volumes => {
            let plain = !name.is_empty()
                && !name.starts_with('.')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            if !plain {
                return Err(bad_name());
            }
            create_local(&volume_dir.join(name), length)
        }
        Place::Objects => {
            let location = StorePath::parse(name).map_err(|_| bad_name())?;
            let prefix = location.parts().next().map(|p| p.as_ref().to_owned());
            if location.as_ref() != name || !matches!(prefix.as_deref(), Some("data" | "snapshots")) {
                return Err(bad_name());
            }
            if let Some(root) = objects_root {
                // The backend's own layout: a path's parts are directories and the file under the root.
                return create_local(&root.join(name), length);
            }
            if length <= ONE_PIECE {
                return Ok(Open::Whole { location, bytes: Vec::with_capacity(length as usize) });
            }
            let upload = handle
                .block_on(backend.put_multipart(&location))
                .map_err(|e| StateError::Failed(format!("writing {name}: {e}")))?;
            Ok(Open::Multipart { location, upload: object_store::WriteMultipart::new(upload), written: 0 })
        }
    }
}

/// Creates a file of `length` bytes (mode 0600, its directories as needed) to write a file of the archive into.
fn create_local(path: &Path, length: u64) -> Result<Open, StateError> {
    let failed = |what: &str, e: std::io::Error| StateError::Failed(format!("{what} {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed("creating the directory of", e))?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed("creating", e))?;
    file.set_len(length).map_err(|e| failed("sizing", e))?;
    Ok(Open::Local(file))
}

fn write_data(open: Option<&mut Open>, offset: u64, bytes: &[u8], handle: &Handle) -> Result<(), StateError> {
    match open {
        None => Err(corrupt("file data outside a file")),
        Some(Open::Local(file)) => {
            file.write_all_at(bytes, offset).map_err(|e| StateError::Failed(format!("writing a file: {e}")))
        }
        Some(Open::Whole { bytes: collected, .. }) => {
            // Object store files are whole: their data comes in order, without holes.
            if offset != collected.len() as u64 {
                return Err(corrupt("object store file data with a hole"));
            }
            collected.extend_from_slice(bytes);
            Ok(())
        }
        Some(Open::Multipart { upload, written, location }) => {
            if offset != *written {
                return Err(corrupt("object store file data with a hole"));
            }
            handle
                .block_on(upload.wait_for_capacity(4))
                .map_err(|e| StateError::Failed(format!("writing {location}: {e}")))?;
            upload.write(bytes);
            *written += bytes.len() as u64;
            Ok(())
        }
    }
}

fn finish(open: Option<Open>, handle: &Handle, backend: &dyn ObjectStore) -> Result<(), StateError> {
    match open {
        None | Some(Open::Local(_)) => Ok(()),
        Some(Open::Whole { location, bytes }) => handle
            .block_on(backend.put(&location, PutPayload::from(bytes)))
            .map(drop)
            .map_err(|e| StateError::Failed(format!("writing {location}: {e}"))),
        Some(Open::Multipart { location, upload, .. }) => handle
            .block_on(upload.finish())
            .map(drop)
            .map_err(|e| StateError::Failed(format!("writing {location}: {e}"))),
    }
}

/// How many files are fsynced at once: the file system batches concurrent fsyncs into fewer journal commits.
const SYNC_THREADS: usize = 64;

/// In a data dir, makes `files` durable, then the directories that hold them (each once, up to the data dir's
/// parent, for the directories an import created): fsyncs of the files written, many at once, rather than a
/// `syncfs`, which would also wait for whatever else the machine is writing to the same file system.
fn sync_files(services: &StateServices, files: Vec<PathBuf>) -> Result<(), StateError> {
    let Some(data_dir) = &services.data_dir else { return Ok(()) };
    let top = data_dir.parent().unwrap_or(data_dir);
    let mut dirs = std::collections::BTreeSet::new();
    for file in &files {
        let mut dir = file.parent();
        while let Some(d) = dir {
            if !dirs.insert(d.to_owned()) || d == top || !d.starts_with(top) {
                break;
            }
            dir = d.parent();
        }
    }
    sync_all(&files)?;
    sync_all(&dirs.into_iter().collect::<Vec<_>>())
}

/// fsyncs every path (files or directories), [`SYNC_THREADS`] at a time.
fn sync_all(paths: &[PathBuf]) -> Result<(), StateError> {
    let chunk = paths.len().div_ceil(SYNC_THREADS).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    for path in part {
                        File::open(path)
                            .and_then(|f| f.sync_all())
                            .map_err(|e| StateError::Failed(format!("syncing {}: {e}", path.display())))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|_| Err(StateError::Failed("a sync thread panicked".into()))))
    })
}

/// After a failed import: every service emptied again (volumes, objects, identities, keys), as `/_sim/reset` does.
async fn empty_services(services: &StateServices) {
    if let Err(e) = services.evs.reset().await {
        tracing::error!(error = %e, "emptying the volume service after a failed import");
    }
    if let Err(e) = services.obs.reset().await {
        tracing::error!(error = %e, "emptying the object store after a failed import");
    }
    let (identities, kms) = (services.identities.clone(), services.kms.clone());
    let emptied = tokio::task::spawn_blocking(move || {
        identities.reset().map_err(|e| e.to_string())?;
        kms.reset().map_err(|e| e.to_string())
    })
    .await;
    if let Ok(Err(e)) = emptied {
        tracing::error!(error = %e, "emptying the identity store and the KMS after a failed import");
    }
}

/// Reads an archive file's passphrase from `path` (its content without the final line break).
pub fn passphrase_from_file(path: &Path) -> Result<Passphrase, String> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?);
    Passphrase::new(&bytes).map_err(|e| e.to_string())
}
