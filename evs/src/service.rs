//! The volume service's core (`Evs`): volumes and their files, snapshots in the object store, jobs, and attach /
//! detach, which decrypts a volume's data key through the KMS and exports the volume over NBD. No HTTP here.
//!
//! Keys: an encrypted volume gets a fresh data key from the KMS under the customer's CMK. The EVS service uses
//! the CMK as its own principal ([`SERVICE_PRINCIPAL`], in its own account), only through a grant named
//! [`AGENCY_GRANT`] that the project gives it on its first encrypted volume with that key — what the
//! `EVSAccessKMS` agency amounts to in the real cloud. Revoking that grant stops EVS from creating or attaching
//! volumes under the key; disabling the key stops new attaches while attached volumes keep working (their
//! master key is in memory until detach).
//!
//! At rest: `volumes/<id>.json` (the record, written durably) and `volumes/<id>.img`, a sparse file — a LUKS1
//! container whose passphrase is the hex of the data key for an encrypted volume, raw otherwise — continued in
//! `<id>.img.1`, `<id>.img.2`, ... for a volume longer than an extent ([`crate::extents`]). Snapshots are
//! copies of that file in the object store (`snapshots/<id>.img`, without the file's trailing zeros; record
//! `snapshots/<id>.json`); restoring one keeps the volume file sparse.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use auth::AccessKey;
use faults::{Call as FaultCall, Faults, Fired, Service};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use shared::entropy::{Entropy, Purpose};
use shared::key_service::{DataKey, EncryptionContext, KeyService, KeyServiceError};
use shared::{Caller, Clock};
use zeroize::Zeroizing;

use crate::device::VolumeDevice;
use crate::error::{EvsError, KeyProblem, Result, SizeProblem, VolumeAction};
use crate::extents::{Extents, Layout};
use crate::faulty::FaultyDevice;
use crate::luks;
use crate::model::{
    self, Attachment, CMK_ID_KEY, ENCRYPTED_KEY, GIB, Job, JobStatus, RECORD_FORMAT, SnapshotRecord, SnapshotStatus,
    VolumeEncryption, VolumeRecord, VolumeStatus,
};
use crate::nbd::{BlockDevice, Exports};

/// The account the EVS service acts in when it calls the KMS (reserved: no customer account may use it).
pub const SERVICE_ACCOUNT_ID: &str = "999999999999";
/// The principal the EVS service calls the KMS as; customers' CMKs reach it only through a grant.
pub const SERVICE_PRINCIPAL: &str = "arn:aws:iam::999999999999:role/evs-service";
/// The name of the grant a project gives the EVS service on a CMK (the `EVSAccessKMS` agency).
pub const AGENCY_GRANT: &str = "EVSAccessKMS";
/// The alias of the project's default volume key, used when a volume asks for encryption without naming a CMK.
pub const DEFAULT_KEY_ALIAS: &str = "alias/evs/default";
/// The encryption-context entry binding a volume's data key to the volume it was made for.
pub const CONTEXT_KEY: &str = "evs:volume_id";
/// PBKDF2 iterations of a volume's LUKS key slot and digest (the LUKS1 minimum: attaching stays fast, and the
/// passphrase is a random 256-bit key, not a password).
pub const LUKS_ITERATIONS: u32 = 1000;
/// Jobs kept before finished ones older than [`JOB_RETENTION_MILLIS`] are dropped.
const MAX_JOBS: usize = 10_000;
/// How long a finished job stays visible.
const JOB_RETENTION_MILLIS: i64 = 3_600_000;
/// Data-disk sizes the API accepts, in GiB.
pub const SIZE_RANGE: std::ops::RangeInclusive<u64> = 10..=32768;
/// Volume types the API accepts.
pub const VOLUME_TYPES: &[&str] = &["SATA", "SAS", "SSD", "GPSSD", "ESSD", "GPSSD2", "ESSD2"];

/// Who asks: the authenticated access key and the region the project lives in.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The access key that signed the request.
    pub key: Arc<AccessKey>,
    /// The caller as the KMS knows it.
    pub caller: Caller,
}

impl Requester {
    /// The requester of `key` in `region`.
    pub fn new(key: Arc<AccessKey>, region: &str) -> Self {
        let caller = key.caller(region);
        Requester { key, caller }
    }

    fn project(&self) -> &str {
        &self.key.project_id
    }
}

/// What a volume is created with.
#[derive(Debug, Clone, Default)]
pub struct CreateVolume {
    /// Name (a suffix `-0001`, ... is added when `count` > 1).
    pub name: String,
    /// Description.
    pub description: String,
    /// GiB; with a snapshot, at least the snapshot's size (defaults to it).
    pub size_gb: Option<u64>,
    /// Volume type.
    pub volume_type: String,
    /// Availability zone.
    pub availability_zone: String,
    /// How many volumes (1–100).
    pub count: u32,
    /// Metadata, including `__system__encrypted` and `__system__cmkid`.
    pub metadata: BTreeMap<String, String>,
    /// Source snapshot.
    pub snapshot_id: Option<String>,
}

/// Filters and pagination of a volume listing.
#[derive(Debug, Clone, Default)]
pub struct VolumeFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Status (`available`, `in-use`, ...).
    pub status: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Volume type.
    pub volume_type: Option<String>,
    /// Metadata entries that must all be present.
    pub metadata: BTreeMap<String, String>,
    /// Only volumes whose id sorts after this one.
    pub marker: Option<String>,
    /// Skip this many.
    pub offset: usize,
    /// At most this many (default 1000).
    pub limit: usize,
}

/// Where volume files and records live.
#[derive(Debug)]
enum VolumeDir {
    /// Under the data dir; survives restarts.
    Durable(PathBuf),
    /// A private temporary directory removed when the service is dropped (`--in-memory`).
    Temporary(PathBuf),
}

impl VolumeDir {
    fn path(&self) -> &Path {
        match self {
            VolumeDir::Durable(p) | VolumeDir::Temporary(p) => p,
        }
    }
}

impl Drop for VolumeDir {
    fn drop(&mut self) {
        if let VolumeDir::Temporary(dir) = self
            && let Err(e) = std::fs::remove_dir_all(&*dir)
        {
            tracing::warn!(error = %e, dir = %dir.display(), "removing the temporary volume directory");
        }
    }
}

#[derive(Debug, Default)]
struct State {
    volumes: BTreeMap<String, VolumeRecord>,
    snapshots: BTreeMap<String, SnapshotRecord>,
    jobs: HashMap<String, Job>,
}

impl State {
    /// Whether volumes are being created from snapshot `id` (which must not go away meanwhile).
    fn creating_from(&self, id: &str) -> bool {
        self.volumes.values().any(|v| v.status == VolumeStatus::Creating && v.snapshot_id.as_deref() == Some(id))
    }
}

/// The volume service.
pub struct Evs {
    dir: VolumeDir,
    objects: Arc<dyn ObjectStore>,
    /// The local root of `objects` when it is a local file system, for fsyncs.
    objects_root: Option<PathBuf>,
    keys: Arc<dyn KeyService>,
    state: Mutex<State>,
    /// Held across every change of a volume's record, from reading it to publishing it after it is durable: two
    /// requests on one volume cannot both pass a status check, nor write its record file at the same time.
    record_writes: tokio::sync::Mutex<()>,
    /// Open (attached) volumes by id: what the NBD server exports.
    open: Mutex<HashMap<String, Arc<VolumeDevice>>>,
    /// Records found at start that were not read (damaged, or of another format), for health reports.
    set_aside: AtomicUsize,
    /// Every operation that changes volumes, snapshots or their files holds a read guard from its start to the end
    /// of its job ([`Admission`]); [`Evs::reset`] and [`Evs::shutdown`] take the write side, so they wait for
    /// (and exclude) every one of them.
    gate: Arc<tokio::sync::RwLock<()>>,
    /// Set by [`Evs::shutdown`]: no operation is admitted any more.
    stopping: AtomicBool,
    /// What the admitted operations are, for the log line of a shutdown that gives up on them.
    running: Arc<Mutex<BTreeMap<u64, String>>>,
    /// Numbers the entries of `running`.
    admitted: AtomicU64,
    /// The fault rules in force (`/_sim/faults`), once the stack plugged them in.
    faults: OnceLock<Arc<Faults>>,
    /// Where volume, snapshot, job and attachment ids, request ids and LUKS keys come from: the stack's once plugged
    /// in ([`Evs::use_entropy`]), else the OS.
    entropy: OnceLock<Arc<Entropy>>,
    /// What volumes, snapshots, attachments and jobs are stamped by: the stack's simulated clock once plugged in
    /// ([`Evs::use_clock`]), else the wall clock.
    clock: OnceLock<Arc<Clock>>,
    /// The runtime the service was opened on, where volume jobs run: they outlive the request that started them (and
    /// its connection's thread, see `kmsim::serve`), and [`Evs::shutdown`] waits for them.
    runtime: tokio::runtime::Handle,
}

/// An admitted operation (and its job, which takes it over): a read guard of [`Evs::gate`] and its entry in
/// [`Evs::running`], both released when it is dropped.
struct Admission {
    _guard: tokio::sync::OwnedRwLockReadGuard<()>,
    id: u64,
    running: Arc<Mutex<BTreeMap<u64, String>>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl std::fmt::Debug for Evs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evs").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Keeps `jobs` below `max` before one more is added. Jobs are kept for an hour after they end, as the real service
/// forgets them too; when more than `max` ended within the hour (or the clock stands still, `--deterministic`), the
/// ones that ended first go. Running jobs stay: each holds a volume operation, which volumes bound.
fn make_room_for_a_job(jobs: &mut HashMap<String, Job>, now_millis: i64, max: usize) {
    if jobs.len() < max {
        return;
    }
    let cutoff = now_millis.saturating_sub(JOB_RETENTION_MILLIS);
    jobs.retain(|_, j| j.end_time == 0 || j.end_time > cutoff);
    let excess = (jobs.len() + 1).saturating_sub(max);
    if excess > 0 {
        let mut ended: Vec<(i64, String)> =
            jobs.iter().filter(|(_, j)| j.end_time != 0).map(|(id, j)| (j.end_time, id.clone())).collect();
        ended.sort_unstable();
        for (_, id) in ended.into_iter().take(excess) {
            jobs.remove(&id);
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The caller the EVS service is when it calls the KMS for a customer's volume.
fn service_caller(region: &str) -> Caller {
    Caller {
        account_id: SERVICE_ACCOUNT_ID.to_owned(),
        region: region.to_owned(),
        access_key_id: "evs-service".to_owned(),
        principal_arn: SERVICE_PRINCIPAL.to_owned(),
        via_service: Some("evs".to_owned()),
        peer: None,
        decisions: Default::default(),
    }
}

/// EVS's answer to a KMS refusal while creating or attaching an encrypted volume.
/// The failure a fault rule decided by [`Evs::job_fault`] injects, after the delay it adds; `None` when no rule
/// fired (or it only adds a delay). Called where the job's own work would fail, so the volume ends as it does
/// after a real failure of that job.
async fn job_failure(fired: Option<Fired>) -> Option<EvsError> {
    let fired = fired?;
    if !fired.delay_before.is_zero() {
        tokio::time::sleep(fired.delay_before).await;
    }
    let injected = fired.error?;
    Some(EvsError::Injected { code: injected.code, status: injected.status, message: injected.message })
}

fn key_error(e: KeyServiceError) -> EvsError {
    match e {
        KeyServiceError::Disabled(m) | KeyServiceError::InvalidState(m) => {
            EvsError::KeyUnusable { problem: KeyProblem::Disabled, detail: m }
        }
        KeyServiceError::NotFound(m) => EvsError::KeyUnusable { problem: KeyProblem::NotFound, detail: m },
        KeyServiceError::AccessDenied(m) => EvsError::KeyUnusable { problem: KeyProblem::AccessDenied, detail: m },
        KeyServiceError::InvalidCiphertext(m) => EvsError::internal(format!("the volume's data key: {m}")),
        other => EvsError::internal(format!("KMS: {other}")),
    }
}

impl Evs {
    /// Opens the service: volume records and files under `data_dir/volumes` (a temporary directory when `None`),
    /// snapshots in `objects` (whose local root, if any, is `objects_root`), keys from `keys`. Volumes that were
    /// attached stay attached: their data keys are decrypted again (each call audited) and they are exported.
    pub async fn open(
        data_dir: Option<&Path>,
        objects: Arc<dyn ObjectStore>,
        objects_root: Option<PathBuf>,
        keys: Arc<dyn KeyService>,
    ) -> Result<Evs> {
        let dir = match data_dir {
            Some(dir) => VolumeDir::Durable(dir.join("volumes")),
            None => VolumeDir::Temporary(std::env::temp_dir().join(format!("kmsim-volumes-{}", new_id()))),
        };
        std::fs::create_dir_all(dir.path()).map_err(|e| EvsError::io("creating the volume directory", e))?;
        let evs = Evs {
            dir,
            objects,
            objects_root,
            keys,
            state: Mutex::new(State::default()),
            record_writes: tokio::sync::Mutex::new(()),
            open: Mutex::new(HashMap::new()),
            set_aside: AtomicUsize::new(0),
            gate: Arc::new(tokio::sync::RwLock::new(())),
            stopping: AtomicBool::new(false),
            running: Arc::new(Mutex::new(BTreeMap::new())),
            admitted: AtomicU64::new(0),
            faults: OnceLock::new(),
            entropy: OnceLock::new(),
            clock: OnceLock::new(),
            runtime: tokio::runtime::Handle::current(),
        };
        evs.load().await?;
        Ok(evs)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn volume_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.img"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.json"))
    }

    /// Admits an operation (`what`, for the log), waiting while a reset runs; refused once a shutdown began.
    async fn admit(&self, what: impl Into<String>) -> Result<Admission> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(EvsError::ShuttingDown);
        }
        let guard = Arc::clone(&self.gate).read_owned().await;
        // A shutdown that began while this waited (behind it, or behind a reset).
        if self.stopping.load(Ordering::SeqCst) {
            return Err(EvsError::ShuttingDown);
        }
        let id = self.admitted.fetch_add(1, Ordering::Relaxed);
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id, what.into());
        Ok(Admission { _guard: guard, id, running: Arc::clone(&self.running) })
    }

    /// How many volume and snapshot records the last start (or reset) did not read: damaged ones and ones of a
    /// record format this build does not read ([`model::parse_record`]), including volume records set aside by an
    /// earlier start (`<id>.json.unreadable`). Their data is kept.
    pub fn set_aside_records(&self) -> usize {
        self.set_aside.load(Ordering::Relaxed)
    }

    /// Reads the records back; volumes caught mid-operation by a crash settle into a stable status.
    /// Files no record refers to (a creation, deletion or rollback cut short by a crash) are removed. A record
    /// that cannot be read, or whose `format` is not [`RECORD_FORMAT`], is set aside with a log line (volumes:
    /// renamed `<id>.json.unreadable`; snapshots: left in place and skipped), and its data is kept for whoever
    /// repairs it: data is never removed for want of a readable record.
    async fn load(&self) -> Result<()> {
        let mut volumes = Vec::new();
        let mut files = Vec::new();
        // Ids whose record is unreadable: their files stay.
        let mut set_aside = Vec::new();
        let entries =
            std::fs::read_dir(self.dir.path()).map_err(|e| EvsError::io("reading the volume directory", e))?;
        for entry in entries {
            let path = entry.map_err(|e| EvsError::io("reading the volume directory", e))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                files.push(path);
                continue;
            };
            if let Some(id) = name.strip_suffix(".json.unreadable") {
                set_aside.push(id.to_owned());
            } else if let Some(id) = name.strip_suffix(".json") {
                let text = std::fs::read(&path).map_err(|e| EvsError::io("reading a volume record", e))?;
                // A size no API call can give (say from an altered state archive) would overflow the byte sizes.
                let parsed = model::parse_record::<VolumeRecord>(&text).and_then(|record| match record.size_gb {
                    gb if SIZE_RANGE.contains(&gb) => Ok(record),
                    gb => Err(model::RecordError::Invalid(format!("a size of {gb} GB is outside {SIZE_RANGE:?}"))),
                });
                match parsed {
                    Ok(record) => volumes.push(record),
                    // One damaged record (or one of a format this build does not read) must not keep every other
                    // volume offline: set it aside, say so.
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "setting aside a volume record");
                        std::fs::rename(&path, path.with_extension("json.unreadable"))
                            .and_then(|()| std::fs::File::open(self.dir.path())?.sync_all())
                            .map_err(|e| EvsError::io("setting aside a volume record", e))?;
                        set_aside.push(id.to_owned());
                    }
                }
            } else {
                files.push(path);
            }
        }
        for path in files {
            // Extent files (`<id>.img`, `<id>.img.<k>`) of a volume with a record, read or set aside.
            let volume = path.file_name().and_then(|name| name.to_str()).and_then(Layout::volume_of);
            let referenced = volume.is_some_and(|id| {
                volumes.iter().any(|v| v.id.as_str() == id) || set_aside.iter().any(|kept| kept == id)
            });
            if !referenced {
                tracing::info!(path = %path.display(), "removing a volume file no record refers to");
                remove_if_exists(&path).map_err(|e| EvsError::io("removing an orphan volume file", e))?;
            }
        }
        let mut snapshots = Vec::new();
        let mut unreadable = Vec::new();
        let mut data = Vec::new();
        let mut listing = self.objects.list(Some(&StorePath::from("snapshots")));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| EvsError::internal(format!("listing snapshots: {e}")))?;
            if meta.location.extension() == Some("json") {
                let bytes = self.objects.get(&meta.location).await.map_err(EvsError::store)?.bytes().await;
                let bytes = bytes.map_err(EvsError::store)?;
                match model::parse_record::<SnapshotRecord>(&bytes) {
                    Ok(record) => snapshots.push(record),
                    Err(e) => {
                        tracing::error!(path = %meta.location, error = %e, "setting aside a snapshot record");
                        let id = meta.location.filename().and_then(|name| name.strip_suffix(".json"));
                        unreadable.extend(id.map(str::to_owned));
                    }
                }
            } else {
                data.push(meta.location);
            }
        }
        self.set_aside.store(set_aside.len() + unreadable.len(), Ordering::Relaxed);
        // Data of a snapshot whose record never became durable (a crash while taking it) or was deleted first.
        for location in data {
            let referenced = location
                .filename()
                .and_then(|name| name.strip_suffix(".img"))
                .is_some_and(|id| snapshots.iter().any(|s| s.id == id) || unreadable.iter().any(|kept| kept == id));
            if !referenced {
                tracing::info!(path = %location, "removing snapshot data no record refers to");
                match self.objects.delete(&location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(EvsError::store(e)),
                }
            }
        }
        let mut reopen = Vec::new();
        {
            let mut state = self.state();
            for mut record in volumes {
                record.status = match record.status {
                    VolumeStatus::InUse
                    | VolumeStatus::Attaching
                    | VolumeStatus::Detaching
                    | VolumeStatus::Extending
                        if !record.attachments.is_empty() =>
                    {
                        reopen.push(record.id.clone());
                        VolumeStatus::InUse
                    }
                    VolumeStatus::Creating | VolumeStatus::Deleting => VolumeStatus::Error,
                    VolumeStatus::Error => VolumeStatus::Error,
                    _ => VolumeStatus::Available,
                };
                state.volumes.insert(record.id.clone(), record);
            }
            for mut record in snapshots {
                if record.status != SnapshotStatus::Available {
                    record.status = SnapshotStatus::Error;
                }
                state.snapshots.insert(record.id.clone(), record);
            }
        }
        for id in reopen {
            let record = self.state().volumes.get(&id).cloned();
            let Some(record) = record else { continue };
            let region = self.region_of(&record);
            match self.open_device(&record, &region).await {
                Ok(device) => {
                    self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Arc::new(device));
                }
                Err(e) => tracing::error!(volume = %id, error = %e, "re-opening an attached volume at start"),
            }
        }
        Ok(())
    }

    /// The region of a volume's key (from its ARN) — where the EVS service calls the KMS.
    fn region_of(&self, record: &VolumeRecord) -> String {
        record
            .encryption
            .as_ref()
            .and_then(|e| e.key_arn.split(':').nth(3).map(str::to_owned))
            .unwrap_or_else(|| shared::caller::DEFAULT_REGION.to_owned())
    }

    async fn save_volume(&self, record: &VolumeRecord) -> Result<()> {
        let path = self.record_path(&record.id);
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| EvsError::internal(e.to_string()))?;
        blocking("writing a volume record", move || shared::secret_file::write_durably(&path, &bytes, 0o600)).await
    }

    /// Changes a volume's record: durably on disk first, then in memory (a failed write changes nothing).
    async fn update_volume_record(&self, id: &str, change: impl FnOnce(&mut VolumeRecord)) -> Result<VolumeRecord> {
        let _writing = self.record_writes.lock().await;
        let mut record = self.state().volumes.get(id).cloned().ok_or_else(|| EvsError::volume_not_found(id))?;
        if record.status == VolumeStatus::Deleting {
            return Err(EvsError::VolumeBeingDeleted { id: id.to_owned() });
        }
        change(&mut record);
        record.updated_at = self.now_millis();
        if let Err(e) = self.save_volume(&record).await {
            // The durable record is as it was. A volume in a passing status (the job that moved it there is
            // failing to record its end) does not stay in it until a restart: it is in use again if it is
            // attached (a detach can be tried again), in error (deletable) otherwise.
            if let Some(v) = self.state().volumes.get_mut(id) {
                use VolumeStatus::*;
                if matches!(v.status, Creating | Attaching | Detaching | Extending | Restoring) {
                    v.status = if v.attachments.is_empty() { Error } else { InUse };
                }
            }
            return Err(e);
        }
        self.state().volumes.insert(id.to_owned(), record.clone());
        Ok(record)
    }

    // ---- jobs ------------------------------------------------------------------------------------

    /// From now on, fails jobs and volumes' I/O as the rules of `faults` say. Set once: false if already set.
    pub fn use_faults(&self, faults: Arc<Faults>) -> bool {
        self.faults.set(faults).is_ok()
    }

    /// From now on, draws ids, request ids and LUKS keys from `entropy` (the stack's; seeded under
    /// `--deterministic`). Set once: false (and nothing changes) if an entropy was already plugged in.
    pub fn use_entropy(&self, entropy: Arc<Entropy>) -> bool {
        self.entropy.set(entropy).is_ok()
    }

    /// The source of ids and keys.
    pub(crate) fn entropy(&self) -> Arc<Entropy> {
        self.entropy.get_or_init(|| Arc::new(Entropy::os())).clone()
    }

    /// Stamps volumes, snapshots, attachments and jobs by `clock` (the stack's simulated clock, shared with the
    /// KMS) from now on. Plugged in once; `false` if a clock was already in use.
    pub fn use_clock(&self, clock: Arc<Clock>) -> bool {
        self.clock.set(clock).is_ok()
    }

    /// The simulated time in Unix milliseconds.
    fn now_millis(&self) -> i64 {
        self.clock.get_or_init(|| Arc::new(Clock::wall())).now_millis()
    }

    /// A fresh volume, snapshot or attachment id (a UUID).
    fn new_id(&self) -> String {
        self.entropy().uuid(Purpose::VolumeId).to_string()
    }

    /// The fault rule that fires on job `job_type` of `requester` on `volume_id`: decided when the job is made,
    /// where the caller is known (a rule may name its principal or access key), and applied by [`job_failure`]
    /// when the job runs.
    fn job_fault(&self, requester: &Requester, job_type: &str, volume_id: &str) -> Option<Fired> {
        let faults = self.faults.get().filter(|f| f.active(Service::Evs))?;
        let call = FaultCall {
            dialect: "evs",
            operation: job_type,
            principal: &requester.caller.principal_arn,
            access_key: &requester.caller.access_key_id,
            region: Some(&requester.caller.region),
            volume: Some(volume_id),
            ..FaultCall::default()
        };
        faults.check(Service::Evs, &call, &|_| None)
    }

    fn new_job(&self, requester: &Requester, job_type: &str, volume_id: Option<&str>, server_id: Option<&str>) -> Job {
        let job = Job {
            id: self.entropy().uuid(Purpose::VolumeId).simple().to_string(),
            project_id: requester.project().to_owned(),
            job_type: job_type.to_owned(),
            status: JobStatus::Init,
            volume_id: volume_id.map(str::to_owned),
            volume_ids: volume_id.iter().map(|v| v.to_string()).collect(),
            server_id: server_id.map(str::to_owned),
            begin_time: self.now_millis(),
            end_time: 0,
            failure: None,
        };
        let now = self.now_millis();
        let mut state = self.state();
        make_room_for_a_job(&mut state.jobs, now, MAX_JOBS);
        state.jobs.insert(job.id.clone(), job.clone());
        job
    }

    fn set_job(&self, id: &str, status: JobStatus, error: Option<&EvsError>) {
        if let Some(job) = self.state().jobs.get_mut(id) {
            job.status = status;
            if matches!(status, JobStatus::Success | JobStatus::Fail) {
                job.end_time = self.now_millis();
            }
            if let Some(e) = error {
                job.failure = Some(e.clone());
            }
        }
    }

    /// Runs `work` as job `job_id` in the background: RUNNING, then SUCCESS or FAIL. The job holds the operation's
    /// admission until it ends.
    fn run_job<F>(self: &Arc<Self>, job_id: String, admission: Admission, work: F)
    where
        F: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let evs = Arc::clone(self);
        self.running.lock().unwrap_or_else(|e| e.into_inner()).entry(admission.id).and_modify(|what| {
            what.push_str(" (job ");
            what.push_str(&job_id);
            what.push(')');
        });
        self.runtime.spawn(async move {
            let _admission = admission;
            evs.set_job(&job_id, JobStatus::Running, None);
            match work.await {
                Ok(()) => evs.set_job(&job_id, JobStatus::Success, None),
                Err(e) => {
                    if matches!(e, EvsError::Internal { .. }) {
                        tracing::error!(job = %job_id, error = %e, "job failed");
                    } else {
                        tracing::warn!(job = %job_id, error = %e, "job failed");
                    }
                    evs.set_job(&job_id, JobStatus::Fail, Some(&e));
                }
            }
        });
    }

    /// A job of the requester's project.
    pub fn job(&self, requester: &Requester, job_id: &str) -> Result<Job> {
        self.state()
            .jobs
            .get(job_id)
            .filter(|j| j.project_id == requester.project())
            .cloned()
            .ok_or_else(|| EvsError::JobNotFound { id: job_id.to_owned() })
    }

    // ---- volumes ---------------------------------------------------------------------------------

    /// A volume of the requester's project.
    pub fn volume(&self, requester: &Requester, id: &str) -> Result<VolumeRecord> {
        self.state()
            .volumes
            .get(id)
            .filter(|v| v.project_id == requester.project())
            .cloned()
            .ok_or_else(|| EvsError::volume_not_found(id))
    }

    /// Every volume of every project, by id: for the console, which shows them all.
    pub fn all_volumes(&self) -> Vec<VolumeRecord> {
        let mut volumes: Vec<VolumeRecord> = self.state().volumes.values().cloned().collect();
        volumes.sort_by(|a, b| a.id.cmp(&b.id));
        volumes
    }

    /// The LUKS1 header of an encrypted volume's container, read from its file (it holds no secret); `None` for a
    /// volume without one or whose file cannot be read.
    pub async fn luks_header(&self, id: &str) -> Option<crate::luks::Header> {
        let path = self.volume_path(id);
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let extents = Layout::of(&path)?.open_read(crate::luks::PHDR_LEN as u64)?;
            let mut header = vec![0u8; crate::luks::PHDR_LEN];
            extents.read_exact_at(&mut header, 0)?;
            Ok(header)
        });
        let bytes = read.await.ok()?.ok()?;
        crate::luks::Header::parse(&bytes).ok()
    }

    /// The requester's volumes matching `filter`, and how many matched before pagination.
    pub fn volumes(&self, requester: &Requester, filter: &VolumeFilter) -> (Vec<VolumeRecord>, usize) {
        let state = self.state();
        let matching: Vec<&VolumeRecord> = state
            .volumes
            .values()
            .filter(|v| v.project_id == requester.project())
            .filter(|v| filter.name.as_ref().is_none_or(|n| &v.name == n))
            .filter(|v| filter.status.as_ref().is_none_or(|s| v.status.as_str() == s))
            .filter(|v| filter.availability_zone.as_ref().is_none_or(|z| &v.availability_zone == z))
            .filter(|v| filter.volume_type.as_ref().is_none_or(|t| &v.volume_type == t))
            .filter(|v| filter.metadata.iter().all(|(k, val)| v.metadata.get(k) == Some(val)))
            .collect();
        let total = matching.len();
        let page = matching
            .into_iter()
            .filter(|v| filter.marker.as_ref().is_none_or(|m| v.id.as_str() > m.as_str()))
            .skip(filter.offset)
            .take(if filter.limit == 0 { 1000 } else { filter.limit })
            .cloned()
            .collect();
        (page, total)
    }

    /// Creates `count` volumes; answers with the job, whose entities name the volumes.
    pub async fn create_volumes(self: &Arc<Self>, requester: &Requester, input: CreateVolume) -> Result<Job> {
        let admission = self.admit("createVolume").await?;
        if !(1..=100).contains(&input.count) {
            return Err(EvsError::InvalidCount { count: input.count });
        }
        check_name(&input.name)?;
        check_description(&input.description)?;
        let snapshot = match &input.snapshot_id {
            Some(id) => {
                let snapshot =
                    self.snapshot(requester, id).map_err(|_| EvsError::SourceSnapshotNotFound { id: id.clone() })?;
                if snapshot.status != SnapshotStatus::Available {
                    return Err(EvsError::SnapshotNotAvailable { id: id.clone() });
                }
                Some(snapshot)
            }
            None => None,
        };
        let wants_encryption = input.metadata.get(ENCRYPTED_KEY).map(String::as_str);
        let cmk_id = input.metadata.get(CMK_ID_KEY).cloned();
        if snapshot.is_some() && (wants_encryption.is_some() || cmk_id.is_some()) {
            return Err(EvsError::EncryptionWithSnapshot);
        }
        let volume_type = match &snapshot {
            Some(s) if input.volume_type.is_empty() => s.volume_type.clone(),
            _ => input.volume_type.clone(),
        };
        if !VOLUME_TYPES.contains(&volume_type.as_str()) {
            return Err(EvsError::InvalidVolumeType { volume_type });
        }
        if input.availability_zone.is_empty() {
            return Err(EvsError::MissingAvailabilityZone);
        }
        let size_gb = match (&snapshot, input.size_gb) {
            (Some(s), None) => s.size_gb,
            (Some(s), Some(size)) if size < s.size_gb => {
                let problem = SizeProblem::BelowSnapshot { size_gb: size, snapshot_gb: s.size_gb };
                return Err(EvsError::InvalidSize { problem });
            }
            (_, Some(size)) => size,
            (None, None) => return Err(EvsError::InvalidSize { problem: SizeProblem::Missing }),
        };
        if !SIZE_RANGE.contains(&size_gb) {
            return Err(EvsError::InvalidSize { problem: SizeProblem::OutOfRange { size_gb } });
        }
        // Encryption: either inherited from the snapshot, or asked for with a CMK the EVS service may use.
        // The key's ARN and id: the customer's CMK, or the project's default key `evs/default` (created on first use)
        // when `__system__encrypted` comes without a CMK. The project's grant to the EVS service is made through
        // the EVS service, so it is audited as a call via `evs`.
        let via_evs = Caller { via_service: Some("evs".to_owned()), peer: None, ..requester.caller.clone() };
        let key = match (wants_encryption, cmk_id.as_deref()) {
            (None | Some("0"), None) => None,
            (Some("1"), Some(cmk)) if !cmk.is_empty() => {
                let arn = self
                    .keys
                    .grant_service_access(&via_evs, cmk, SERVICE_PRINCIPAL, AGENCY_GRANT)
                    .await
                    .map_err(key_error)?;
                Some((arn, cmk.to_owned()))
            }
            (Some("1"), None) => {
                let default = self.keys.service_managed_key(&via_evs, DEFAULT_KEY_ALIAS).await.map_err(key_error)?;
                let arn = self
                    .keys
                    .grant_service_access(&via_evs, &default, SERVICE_PRINCIPAL, AGENCY_GRANT)
                    .await
                    .map_err(key_error)?;
                let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
                Some((arn, id))
            }
            _ => {
                return Err(EvsError::InvalidEncryption);
            }
        };
        let now = self.now_millis();
        let mut records = Vec::new();
        for n in 0..input.count {
            let name = if input.count > 1 { format!("{}-{:04}", input.name, n + 1) } else { input.name.clone() };
            let mut metadata = input.metadata.clone();
            if let Some((_, cmk)) = &key {
                metadata.insert(CMK_ID_KEY.to_owned(), cmk.clone());
            }
            if let Some(s) = &snapshot
                && let Some(enc) = &s.encryption
            {
                metadata.insert(ENCRYPTED_KEY.to_owned(), "1".to_owned());
                metadata.insert(CMK_ID_KEY.to_owned(), enc.cmk_id.clone());
            }
            records.push(VolumeRecord {
                format: RECORD_FORMAT,
                id: self.new_id(),
                account: requester.caller.account_id.clone(),
                project_id: requester.project().to_owned(),
                name,
                description: input.description.clone(),
                size_gb,
                volume_type: volume_type.clone(),
                availability_zone: input.availability_zone.clone(),
                status: VolumeStatus::Creating,
                created_at: now,
                updated_at: now,
                metadata,
                encryption: snapshot.as_ref().and_then(|s| s.encryption.clone()),
                snapshot_id: input.snapshot_id.clone(),
                attachments: Vec::new(),
            });
        }
        // The data keys come before the job, so that a key the EVS service cannot use refuses the request (EVS.2040
        // when it is not enabled), as the real service does.
        let region = requester.caller.region.clone();
        let mut data_keys = Vec::new();
        if let Some((arn, cmk)) = &key {
            for record in &records {
                let context = EncryptionContext::from([(CONTEXT_KEY.to_owned(), record.id.clone())]);
                let data_key =
                    self.keys.generate_data_key(&service_caller(&region), arn, &context).await.map_err(key_error)?;
                let encryption = VolumeEncryption {
                    cmk_id: cmk.clone(),
                    key_arn: data_key.key_arn.clone(),
                    dek_ciphertext: hex::encode(&data_key.ciphertext_blob),
                    context,
                };
                data_keys.push((data_key, encryption));
            }
        }
        {
            // The source snapshot is still there, and cannot be deleted while volumes are created from it.
            let _writing = self.record_writes.lock().await;
            let mut state = self.state();
            if let Some(source) = &snapshot
                && state.snapshots.get(&source.id).is_none_or(|s| s.status != SnapshotStatus::Available)
            {
                return Err(EvsError::SnapshotNotAvailable { id: source.id.clone() });
            }
            for record in &records {
                state.volumes.insert(record.id.clone(), record.clone());
            }
        }
        let job = self.new_job(requester, "batchCreateVolume", None, None);
        {
            let mut state = self.state();
            if let Some(job) = state.jobs.get_mut(&job.id) {
                job.volume_id = records.first().map(|r| r.id.clone());
                job.volume_ids = records.iter().map(|r| r.id.clone()).collect();
                if records.len() == 1 {
                    job.job_type = "createVolume".to_owned();
                }
            }
        }
        let evs = Arc::clone(self);
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let faults: Vec<_> = ids.iter().map(|id| self.job_fault(requester, "createVolume", id)).collect();
        self.run_job(job.id.clone(), admission, async move {
            let mut failure = None;
            let mut data_keys = data_keys.into_iter();
            for (record, fault) in records.into_iter().zip(faults) {
                let id = record.id.clone();
                let data_key = data_keys.next();
                let created = match job_failure(fault).await {
                    Some(injected) => Err(injected),
                    None => evs.create_volume_file(record, data_key, snapshot.as_ref()).await,
                };
                if let Err(e) = created {
                    tracing::warn!(volume = %id, error = %e, "creating a volume failed");
                    if let Err(e) = evs.update_volume_record(&id, |v| v.status = VolumeStatus::Error).await {
                        tracing::error!(volume = %id, error = %e, "recording a failed creation");
                    }
                    failure.get_or_insert(e);
                }
            }
            match failure {
                Some(e) => Err(e),
                None => Ok(()),
            }
        });
        let mut job = job;
        job.volume_id = ids.first().cloned();
        job.volume_ids = ids;
        Ok(job)
    }

    /// Creates one volume's file (formatting LUKS under its fresh data key, or copying the snapshot), then makes the
    /// volume available.
    async fn create_volume_file(
        &self,
        mut record: VolumeRecord,
        data_key: Option<(DataKey, VolumeEncryption)>,
        snapshot: Option<&SnapshotRecord>,
    ) -> Result<()> {
        let path = self.volume_path(&record.id);
        if let Some(snapshot) = snapshot {
            let len = volume_file_len(record.encryption.is_some(), record.size_gb);
            self.copy_from_snapshot(&snapshot.id, &path, len).await.map_err(Restore::into_error)?;
        } else if let Some((data_key, encryption)) = data_key {
            let passphrase = Zeroizing::new(hex::encode(&data_key.plaintext[..]));
            let size = record.size_gb * GIB;
            let (path2, entropy) = (path.clone(), self.entropy());
            tokio::task::spawn_blocking(move || -> Result<()> {
                let (area, _master_key, header) = luks::format(passphrase.as_bytes(), LUKS_ITERATIONS, &entropy)
                    .map_err(|e| EvsError::internal(format!("formatting LUKS: {e}")))?;
                Layout::new(&path2)
                    .create(&area, header.payload_offset_bytes() + size)
                    .map_err(|e| EvsError::io("creating a volume file", e))
            })
            .await
            .map_err(|e| EvsError::internal(e.to_string()))??;
            record.encryption = Some(encryption);
        } else {
            let size = record.size_gb * GIB;
            let path2 = path.clone();
            blocking("creating a volume file", move || Layout::new(&path2).create(&[], size)).await?;
        }
        // Publish through the record as it is now (a rename while creating is kept).
        let encryption = record.encryption.take();
        self.update_volume_record(&record.id, |v| {
            v.status = VolumeStatus::Available;
            v.encryption = encryption;
        })
        .await?;
        Ok(())
    }

    /// Renames or re-describes a volume.
    pub async fn update_volume(
        &self,
        requester: &Requester,
        id: &str,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<VolumeRecord> {
        let _admission = self.admit(format!("updateVolume {id}")).await?;
        self.volume(requester, id)?;
        if name.is_none() && description.is_none() {
            return Err(EvsError::NothingToUpdate);
        }
        if let Some(name) = &name {
            check_name(name)?;
        }
        if let Some(description) = &description {
            check_description(description)?;
        }
        self.update_volume_record(id, |v| {
            if let Some(name) = name {
                v.name = name;
            }
            if let Some(description) = description {
                v.description = description;
            }
        })
        .await
    }

    /// Replaces (`replace`) or merges user metadata; the `__system__` keys cannot be changed.
    pub async fn set_metadata(
        &self,
        requester: &Requester,
        id: &str,
        metadata: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>> {
        let _admission = self.admit(format!("setMetadata {id}")).await?;
        let current = self.volume(requester, id)?;
        if metadata.keys().any(|k| k.starts_with("__system__") && current.metadata.get(k) != metadata.get(k)) {
            return Err(EvsError::SystemMetadata);
        }
        let record = self
            .update_volume_record(id, |v| {
                if replace {
                    v.metadata.retain(|k, _| k.starts_with("__system__"));
                }
                v.metadata.extend(metadata);
            })
            .await?;
        Ok(record.metadata)
    }

    /// Deletes one metadata entry.
    pub async fn delete_metadata(&self, requester: &Requester, id: &str, key: &str) -> Result<()> {
        let _admission = self.admit(format!("deleteMetadata {id}")).await?;
        let current = self.volume(requester, id)?;
        if key.starts_with("__system__") {
            return Err(EvsError::SystemMetadata);
        }
        if !current.metadata.contains_key(key) {
            return Err(EvsError::MetadataKeyNotFound { key: key.to_owned() });
        }
        self.update_volume_record(id, |v| {
            v.metadata.remove(key);
        })
        .await
        .map(|_| ())
    }

    /// Moves a volume from `from` to `to` if it is in `from` (in memory: these are the passing statuses that a
    /// restart settles); the error names the status it is in. A volume a snapshot is being taken of or rolled
    /// back from is busy.
    async fn transition(
        &self,
        id: &str,
        from: &[VolumeStatus],
        to: VolumeStatus,
        action: VolumeAction,
    ) -> Result<VolumeRecord> {
        self.transition_if(id, from, to, action, |_| Ok(())).await
    }

    /// [`Evs::transition`], once `check` has passed: it runs under the same lock, after the status check, so
    /// what it checks (and may change, in `State`) cannot change before the volume has moved.
    async fn transition_if(
        &self,
        id: &str,
        from: &[VolumeStatus],
        to: VolumeStatus,
        action: VolumeAction,
        check: impl FnOnce(&mut State) -> Result<()>,
    ) -> Result<VolumeRecord> {
        let _writing = self.record_writes.lock().await;
        let mut state = self.state();
        let busy = state
            .snapshots
            .values()
            .any(|s| s.volume_id == id && matches!(s.status, SnapshotStatus::Creating | SnapshotStatus::Rollbacking));
        if busy {
            return Err(EvsError::VolumeLocked { id: id.to_owned() });
        }
        let status = state.volumes.get(id).ok_or_else(|| EvsError::volume_not_found(id))?.status;
        if !from.contains(&status) {
            return Err(EvsError::VolumeStatusForbids { id: id.to_owned(), status, action });
        }
        check(&mut state)?;
        let record = state.volumes.get_mut(id).ok_or_else(|| EvsError::volume_not_found(id))?;
        record.status = to;
        Ok(record.clone())
    }

    /// Deletes an available (or failed) volume (job); with `cascade`, its snapshots first, else it must have
    /// none.
    pub async fn delete_volume(self: &Arc<Self>, requester: &Requester, id: &str, cascade: bool) -> Result<Job> {
        let admission = self.admit(format!("deleteVolume {id}")).await?;
        self.volume(requester, id)?;
        let deletable = [VolumeStatus::Available, VolumeStatus::Error];
        let mut snapshots = Vec::new();
        self.transition_if(id, &deletable, VolumeStatus::Deleting, VolumeAction::Delete, |state| {
            snapshots =
                state.snapshots.values().filter(|s| s.volume_id == id).map(|s| (s.id.clone(), s.status)).collect();
            if snapshots.is_empty() {
                return Ok(());
            }
            if !cascade {
                return Err(EvsError::VolumeHasSnapshots { id: id.to_owned() });
            }
            let busy = snapshots.iter().any(|(sid, status)| {
                !matches!(status, SnapshotStatus::Available | SnapshotStatus::Error) || state.creating_from(sid)
            });
            if busy {
                return Err(EvsError::VolumeSnapshotBusy { id: id.to_owned() });
            }
            for (sid, _) in &snapshots {
                if let Some(s) = state.snapshots.get_mut(sid) {
                    s.status = SnapshotStatus::Deleting;
                }
            }
            Ok(())
        })
        .await?;
        let job = self.new_job(requester, "deleteVolume", Some(id), None);
        let fault = self.job_fault(requester, "deleteVolume", id);
        let evs = Arc::clone(self);
        let id = id.to_owned();
        self.run_job(job.id.clone(), admission, async move {
            // A failure before the files go: the snapshots from `untouched` on stay as they were (a snapshot whose
            // removal failed is in error), and the volume is in error (in memory: it can be deleted again; a
            // restart finds its record as it was).
            let fail = |untouched: usize, e: EvsError| {
                let mut state = evs.state();
                for (rest, status) in &snapshots[untouched..] {
                    if let Some(s) = state.snapshots.get_mut(rest) {
                        s.status = *status;
                    }
                }
                if let Some(v) = state.volumes.get_mut(&id) {
                    v.status = VolumeStatus::Error;
                }
                e
            };
            if let Some(injected) = job_failure(fault).await {
                return Err(fail(0, injected));
            }
            for (n, (sid, _)) in snapshots.iter().enumerate() {
                if let Err(e) = evs.remove_snapshot(sid).await {
                    return Err(fail(n + 1, e));
                }
            }
            // No record change (a rename, say) may land between the record's removal and the volume's.
            let _writing = evs.record_writes.lock().await;
            let (image, record) = (evs.volume_path(&id), evs.record_path(&id));
            let removed = blocking("deleting a volume", move || {
                remove_if_exists(&record)?;
                Layout::of(&image)?.remove()?;
                if let Some(dir) = record.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            })
            .await;
            match removed {
                Ok(()) => {
                    evs.state().volumes.remove(&id);
                    Ok(())
                }
                Err(e) => {
                    // The record may be gone already; the volume stays listed, in error, and can be deleted again.
                    if let Some(v) = evs.state().volumes.get_mut(&id) {
                        v.status = VolumeStatus::Error;
                    }
                    Err(e)
                }
            }
        });
        Ok(job)
    }

    /// Grows an available or in-use volume to `new_size_gb` (job). An attached volume stays exported; NBD
    /// connections made from then on see the new size (one made before keeps the size it negotiated, as a
    /// guest sees a grown disk only after a rescan).
    pub async fn extend_volume(self: &Arc<Self>, requester: &Requester, id: &str, new_size_gb: u64) -> Result<Job> {
        let admission = self.admit(format!("extendVolume {id}")).await?;
        let current = self.volume(requester, id)?;
        if new_size_gb <= current.size_gb {
            return Err(EvsError::SizeNotGreater { new_gb: new_size_gb, old_gb: current.size_gb });
        }
        if !SIZE_RANGE.contains(&new_size_gb) {
            return Err(EvsError::InvalidSize { problem: SizeProblem::OutOfRange { size_gb: new_size_gb } });
        }
        let (mut previous, mut encrypted) = (VolumeStatus::Available, false);
        let extendable = [VolumeStatus::Available, VolumeStatus::InUse];
        // Checked again under the lock: another extend may have grown the volume since.
        self.transition_if(id, &extendable, VolumeStatus::Extending, VolumeAction::Extend, |state| {
            let volume = state.volumes.get(id).ok_or_else(|| EvsError::volume_not_found(id))?;
            if new_size_gb <= volume.size_gb {
                return Err(EvsError::SizeNotGreater { new_gb: new_size_gb, old_gb: volume.size_gb });
            }
            (previous, encrypted) = (volume.status, volume.encryption.is_some());
            Ok(())
        })
        .await?;
        let job = self.new_job(requester, "extendVolume", Some(id), None);
        let fault = self.job_fault(requester, "extendVolume", id);
        let evs = Arc::clone(self);
        let id = id.to_owned();
        self.run_job(job.id.clone(), admission, async move {
            let path = evs.volume_path(&id);
            let len = volume_file_len(encrypted, new_size_gb);
            let mut grown = match job_failure(fault).await {
                Some(injected) => Err(injected),
                None => blocking("resizing a volume", move || Layout::of(&path)?.set_len(len)).await,
            };
            let device = evs.open.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned();
            if let (Ok(()), Some(device)) = (&grown, device) {
                // A new extent the attached volume cannot open: the extend fails, the volume keeps its size.
                grown = blocking("opening a grown volume", move || device.grow(new_size_gb * GIB)).await;
            }
            evs.update_volume_record(&id, |v| {
                if grown.is_ok() {
                    v.size_gb = new_size_gb;
                }
                v.status = previous;
            })
            .await?;
            grown
        });
        Ok(job)
    }

    // ---- attach / detach -------------------------------------------------------------------------

    /// Opens a volume's file for I/O: for an encrypted volume, decrypts its data key through the KMS (as the EVS
    /// service) and unlocks the LUKS header with it.
    async fn open_device(&self, record: &VolumeRecord, region: &str) -> Result<VolumeDevice> {
        let path = self.volume_path(&record.id);
        let size = record.size_gb * GIB;
        match &record.encryption {
            None => blocking("opening a volume", move || VolumeDevice::plain(Layout::of(&path)?, size)).await,
            Some(enc) => {
                let blob = hex::decode(&enc.dek_ciphertext)
                    .map_err(|_| EvsError::internal("a volume record holds a malformed data key ciphertext"))?;
                let data_key =
                    self.keys.decrypt(&service_caller(region), &blob, &enc.context).await.map_err(key_error)?;
                let passphrase = Zeroizing::new(hex::encode(&data_key[..]));
                tokio::task::spawn_blocking(move || {
                    let layout = Layout::of(&path).map_err(|e| EvsError::io("opening an encrypted volume", e))?;
                    VolumeDevice::encrypted(layout, size, passphrase.as_bytes())
                })
                .await
                .map_err(|e| EvsError::internal(e.to_string()))?
            }
        }
    }

    /// Attaches a volume to a server (job): available → attaching → in-use, exported over NBD under its id.
    pub async fn attach(
        self: &Arc<Self>,
        requester: &Requester,
        server_id: &str,
        volume_id: &str,
        device: Option<String>,
    ) -> Result<Job> {
        let admission = self.admit(format!("attachVolume {volume_id}")).await?;
        self.volume(requester, volume_id)?;
        let record = self
            .transition(volume_id, &[VolumeStatus::Available], VolumeStatus::Attaching, VolumeAction::Attach)
            .await?;
        let job = self.new_job(requester, "attachVolume", Some(volume_id), Some(server_id));
        let fault = self.job_fault(requester, "attachVolume", volume_id);
        let evs = Arc::clone(self);
        let region = requester.caller.region.clone();
        let (server_id, volume_id) = (server_id.to_owned(), volume_id.to_owned());
        self.run_job(job.id.clone(), admission, async move {
            let opened = match job_failure(fault).await {
                Some(injected) => Err(injected),
                None => evs.open_device(&record, &region).await,
            };
            match opened {
                Ok(opened) => {
                    let attachment = Attachment {
                        attachment_id: evs.new_id(),
                        server_id,
                        device: device.unwrap_or_else(|| "/dev/vdb".to_owned()),
                        attached_at: evs.now_millis(),
                    };
                    // Durably in-use first, then exported: a crash in between re-opens the volume at start.
                    evs.update_volume_record(&volume_id, |v| {
                        v.status = VolumeStatus::InUse;
                        v.attachments = vec![attachment];
                    })
                    .await?;
                    evs.open.lock().unwrap_or_else(|e| e.into_inner()).insert(volume_id.clone(), Arc::new(opened));
                    Ok(())
                }
                Err(e) => {
                    evs.update_volume_record(&volume_id, |v| v.status = VolumeStatus::Available).await?;
                    Err(e)
                }
            }
        });
        Ok(job)
    }

    /// Detaches a volume from a server (job): in-use → detaching → available; its export goes away and its
    /// master key is dropped (wiped).
    pub async fn detach(self: &Arc<Self>, requester: &Requester, server_id: &str, volume_id: &str) -> Result<Job> {
        let admission = self.admit(format!("detachVolume {volume_id}")).await?;
        self.volume(requester, volume_id)?;
        self.transition_if(volume_id, &[VolumeStatus::InUse], VolumeStatus::Detaching, VolumeAction::Detach, |state| {
            let attached =
                state.volumes.get(volume_id).is_some_and(|v| v.attachments.iter().any(|a| a.server_id == server_id));
            if !attached {
                let (volume_id, server_id) = (volume_id.to_owned(), server_id.to_owned());
                return Err(EvsError::NotAttached { volume_id, server_id });
            }
            Ok(())
        })
        .await?;
        let job = self.new_job(requester, "detachVolume", Some(volume_id), Some(server_id));
        let fault = self.job_fault(requester, "detachVolume", volume_id);
        let evs = Arc::clone(self);
        let volume_id = volume_id.to_owned();
        self.run_job(job.id.clone(), admission, async move {
            // A failed detach leaves the volume attached and in use, still exported.
            if let Some(injected) = job_failure(fault).await {
                evs.update_volume_record(&volume_id, |v| v.status = VolumeStatus::InUse).await?;
                return Err(injected);
            }
            let device = evs.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&volume_id);
            let flushed = match device {
                // Closing waits for the I/O under way; then everything written is made durable.
                Some(device) => {
                    blocking("flushing a volume", move || {
                        device.close();
                        device.flush()
                    })
                    .await
                }
                None => Ok(()),
            };
            evs.update_volume_record(&volume_id, |v| {
                v.status = if flushed.is_ok() { VolumeStatus::Available } else { VolumeStatus::Error };
                v.attachments.clear();
            })
            .await?;
            flushed
        });
        Ok(job)
    }

    // ---- snapshots -------------------------------------------------------------------------------

    /// A snapshot of the requester's project.
    pub fn snapshot(&self, requester: &Requester, id: &str) -> Result<SnapshotRecord> {
        self.state()
            .snapshots
            .get(id)
            .filter(|s| s.project_id == requester.project())
            .cloned()
            .ok_or_else(|| EvsError::snapshot_not_found(id))
    }

    /// The requester's snapshots, optionally of one volume.
    pub fn snapshots(&self, requester: &Requester, volume_id: Option<&str>) -> Vec<SnapshotRecord> {
        self.state()
            .snapshots
            .values()
            .filter(|s| s.project_id == requester.project() && volume_id.is_none_or(|v| s.volume_id == v))
            .cloned()
            .collect()
    }

    async fn save_snapshot(&self, record: &SnapshotRecord) -> Result<()> {
        let path = StorePath::from(format!("snapshots/{}.json", record.id));
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| EvsError::internal(e.to_string()))?;
        self.objects.put(&path, bytes.into()).await.map_err(EvsError::store)?;
        self.sync_object(&path).await
    }

    /// Makes the removal of a local object durable (its directory).
    async fn sync_object_dir(&self, path: &StorePath) -> Result<()> {
        match &self.objects_root {
            Some(root) => sync_dir_of(&root.join(path.as_ref())).await,
            None => Ok(()),
        }
    }

    /// Makes a local object durable (file and directory).
    async fn sync_object(&self, path: &StorePath) -> Result<()> {
        let Some(root) = &self.objects_root else { return Ok(()) };
        let file = root.join(path.as_ref());
        blocking("syncing a snapshot", move || {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
    }

    /// Takes a snapshot: copies the volume's file (ciphertext, for an encrypted volume) into the object store, in a
    /// task of its own (a client that goes away does not cut it short). The snapshot answers `creating`, then
    /// `available`; meanwhile the volume is busy (no attach, detach, extend, delete or rollback), so the copy is
    /// the volume as it was. An attached volume needs `force`; its writes so far are flushed first, and it stays
    /// writable, so that copy is crash-consistent only.
    pub async fn create_snapshot(
        self: &Arc<Self>,
        requester: &Requester,
        volume_id: &str,
        name: String,
        description: String,
        force: bool,
        metadata: BTreeMap<String, String>,
    ) -> Result<SnapshotRecord> {
        let admission = self.admit(format!("createSnapshot of {volume_id}")).await?;
        check_name(&name)?;
        check_description(&description)?;
        let volume = self.volume(requester, volume_id)?;
        if volume.status == VolumeStatus::InUse && force {
            let device = self.open.lock().unwrap_or_else(|e| e.into_inner()).get(volume_id).cloned();
            if let Some(device) = device {
                blocking("flushing a volume", move || device.flush()).await?;
            }
        }
        let record = {
            let _writing = self.record_writes.lock().await;
            let mut state = self.state();
            // The volume as it is now (an extend or a creation may have ended since it was first read).
            let volume = state.volumes.get(volume_id).cloned().ok_or_else(|| EvsError::volume_not_found(volume_id))?;
            match volume.status {
                VolumeStatus::Available => {}
                VolumeStatus::InUse if force => {}
                VolumeStatus::InUse => {
                    return Err(EvsError::VolumeInUse { id: volume_id.to_owned() });
                }
                status => return Err(EvsError::VolumeNotSnapshottable { id: volume_id.to_owned(), status }),
            }
            if state.snapshots.values().any(|s| s.volume_id == volume_id && s.status == SnapshotStatus::Creating) {
                return Err(EvsError::SnapshotInProgress { volume_id: volume_id.to_owned() });
            }
            let now = self.now_millis();
            let record = SnapshotRecord {
                format: RECORD_FORMAT,
                id: self.new_id(),
                account: volume.account.clone(),
                project_id: volume.project_id.clone(),
                volume_id: volume_id.to_owned(),
                name,
                description,
                size_gb: volume.size_gb,
                status: SnapshotStatus::Creating,
                created_at: now,
                updated_at: now,
                metadata,
                encryption: volume.encryption.clone(),
                volume_type: volume.volume_type.clone(),
            };
            state.snapshots.insert(record.id.clone(), record.clone());
            record
        };
        let evs = Arc::clone(self);
        let (id, volume_id) = (record.id.clone(), record.volume_id.clone());
        let taking = record.clone();
        self.runtime.spawn(async move {
            let record = taking;
            let _admission = admission;
            let len = volume_file_len(record.encryption.is_some(), record.size_gb);
            let copied = evs.copy_to_snapshot(&evs.volume_path(&volume_id), len, &id).await;
            if let Err(e) = &copied {
                tracing::error!(snapshot = %id, error = %e, "taking a snapshot failed");
            }
            let status = if copied.is_ok() { SnapshotStatus::Available } else { SnapshotStatus::Error };
            // The record as it is now (it may have been renamed meanwhile), with its final status.
            let _writing = evs.record_writes.lock().await;
            let Some(mut taken) = evs.state().snapshots.get(&id).cloned() else { return };
            taken.status = status;
            taken.updated_at = evs.now_millis();
            if let Err(e) = evs.save_snapshot(&taken).await {
                tracing::error!(snapshot = %id, error = %e, "recording a snapshot failed");
                taken.status = SnapshotStatus::Error;
            }
            evs.state().snapshots.insert(id, taken);
        });
        Ok(record)
    }

    /// Renames or re-describes a snapshot (not one being deleted). The record is written with the status a
    /// restart should find: a snapshot rolling a volume back is available; one still being taken stays
    /// `creating` (which a restart turns into `error`) until its copy ends and records it.
    pub async fn update_snapshot(
        &self,
        requester: &Requester,
        id: &str,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<SnapshotRecord> {
        let _admission = self.admit(format!("updateSnapshot {id}")).await?;
        if let Some(name) = &name {
            check_name(name)?;
        }
        if let Some(description) = &description {
            check_description(description)?;
        }
        let _writing = self.record_writes.lock().await;
        let mut record = self.snapshot(requester, id)?;
        if record.status == SnapshotStatus::Deleting {
            return Err(EvsError::snapshot_not_found(id));
        }
        if let Some(name) = name {
            record.name = name;
        }
        if let Some(description) = description {
            record.description = description;
        }
        record.updated_at = self.now_millis();
        let mut durable = record.clone();
        if durable.status == SnapshotStatus::Rollbacking {
            durable.status = SnapshotStatus::Available;
        }
        self.save_snapshot(&durable).await?;
        self.state().snapshots.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    /// Deletes an available (or failed) snapshot: its record first (durably), then its data — data no record
    /// refers to is removed at the next start, should a crash come in between.
    pub async fn delete_snapshot(&self, requester: &Requester, id: &str) -> Result<()> {
        let _admission = self.admit(format!("deleteSnapshot {id}")).await?;
        {
            let _writing = self.record_writes.lock().await;
            let mut state = self.state();
            let in_use = state.creating_from(id);
            let snapshot = state
                .snapshots
                .get_mut(id)
                .filter(|s| s.project_id == requester.project())
                .ok_or_else(|| EvsError::snapshot_not_found(id))?;
            if !matches!(snapshot.status, SnapshotStatus::Available | SnapshotStatus::Error) {
                return Err(EvsError::SnapshotNotDeletable { id: id.to_owned(), status: snapshot.status });
            }
            if in_use {
                return Err(EvsError::SnapshotInUse { id: id.to_owned() });
            }
            snapshot.status = SnapshotStatus::Deleting;
        }
        self.remove_snapshot(id).await
    }

    /// Removes a snapshot marked `deleting`: its record (durably), then its data; on failure it is in error.
    async fn remove_snapshot(&self, id: &str) -> Result<()> {
        let record = StorePath::from(format!("snapshots/{id}.json"));
        let deleted = match self.objects.delete(&record).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => self.sync_object_dir(&record).await,
            Err(e) => Err(EvsError::store(e)),
        };
        if let Err(e) = deleted {
            if let Some(s) = self.state().snapshots.get_mut(id) {
                s.status = SnapshotStatus::Error;
            }
            return Err(e);
        }
        self.state().snapshots.remove(id);
        match self.objects.delete(&StorePath::from(format!("snapshots/{id}.img"))).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(snapshot = %id, error = %e, "snapshot data left for the next start to remove"),
        }
        Ok(())
    }

    /// Rolls a volume (available, the snapshot's source) back to the snapshot, in a task of its own: the volume
    /// answers `restoring-backup`, then `available`.
    pub async fn rollback_snapshot(
        self: &Arc<Self>,
        requester: &Requester,
        id: &str,
        volume_id: Option<&str>,
    ) -> Result<VolumeRecord> {
        let admission = self.admit(format!("rollbackSnapshot {id}")).await?;
        let snapshot = self.snapshot(requester, id)?;
        let volume_id = volume_id.unwrap_or(&snapshot.volume_id).to_owned();
        if volume_id != snapshot.volume_id {
            return Err(EvsError::RollbackTarget { snapshot_id: id.to_owned(), volume_id });
        }
        self.volume(requester, &volume_id)?;
        // The snapshot must still be available when the volume moves (not being deleted meanwhile).
        let before = self
            .transition_if(
                &volume_id,
                &[VolumeStatus::Available],
                VolumeStatus::Restoring,
                VolumeAction::Rollback,
                |state| match state.snapshots.get_mut(id) {
                    Some(s) if s.status == SnapshotStatus::Available => {
                        s.status = SnapshotStatus::Rollbacking;
                        Ok(())
                    }
                    Some(_) => Err(EvsError::SnapshotNotAvailable { id: id.to_owned() }),
                    None => Err(EvsError::snapshot_not_found(id)),
                },
            )
            .await?;
        let evs = Arc::clone(self);
        let id = id.to_owned();
        let restoring = before.clone();
        self.runtime.spawn(async move {
            let _admission = admission;
            let path = evs.volume_path(&restoring.id);
            let len = volume_file_len(restoring.encryption.is_some(), restoring.size_gb);
            let restored = evs.copy_from_snapshot(&id, &path, len).await;
            // The volume file is replaced whole or not at all: a copy that failed before leaves it as it was.
            let status = match &restored {
                Ok(()) => VolumeStatus::Available,
                Err(Restore::Untouched(e)) => {
                    tracing::error!(volume = %restoring.id, snapshot = %id, error = %e, "rolling back a volume failed");
                    VolumeStatus::Available
                }
                Err(Restore::Unknown(e)) => {
                    tracing::error!(volume = %restoring.id, snapshot = %id, error = %e, "rolling back a volume failed");
                    VolumeStatus::Error
                }
            };
            if let Err(e) = evs.update_volume_record(&restoring.id, |v| v.status = status).await {
                tracing::error!(volume = %restoring.id, error = %e, "recording a rollback failed");
            }
            // Under the lock, so that a rename of the snapshot cannot put `rollbacking` back.
            let _writing = evs.record_writes.lock().await;
            if let Some(s) = evs.state().snapshots.get_mut(&id) {
                s.status = SnapshotStatus::Available;
            }
        });
        Ok(before)
    }

    // ---- reset and shutdown ------------------------------------------------------------------

    /// Empties the service: detaches every volume (I/O under way ends, keys are wiped, NBD clients of the volumes
    /// get errors from then on), deletes every volume (records and files, including records set aside), every
    /// snapshot (everything under `snapshots/` in the object store, and nothing else there) and every job. It waits
    /// for the operations and jobs under way to end first, and operations that arrive meanwhile wait for it, so a
    /// creation cannot leave a file behind it. Records go before data, so a crash half-way leaves only data no
    /// record refers to, which the next start removes. On failure, what is left is served as a start would.
    pub async fn reset(&self) -> Result<(), EvsError> {
        let _exclusive = self.gate.write().await;
        let devices: Vec<Arc<VolumeDevice>> =
            self.open.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, device)| device).collect();
        if !devices.is_empty() {
            blocking("detaching volumes", move || {
                devices.iter().for_each(|device| device.close());
                Ok(())
            })
            .await?;
        }
        let emptied = self.remove_everything().await;
        *self.state() = State::default();
        self.set_aside.store(0, Ordering::Relaxed);
        if let Err(e) = emptied {
            if let Err(reload) = self.load().await {
                tracing::error!(error = %reload, "reloading the volume service after a failed reset");
            }
            return Err(e);
        }
        tracing::info!("volume service reset");
        Ok(())
    }

    /// Removes every record and file of the volume directory (records first), then every object under
    /// `snapshots/` (records first).
    async fn remove_everything(&self) -> Result<()> {
        let dir = self.dir.path().to_owned();
        blocking("emptying the volume directory", move || {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                entries.push(entry?.path());
            }
            let is_record = |path: &PathBuf| path.to_str().is_some_and(|p| p.ends_with(".json"));
            for records_first in [true, false] {
                for path in entries.iter().filter(|path| is_record(path) == records_first) {
                    if path.is_dir() {
                        std::fs::remove_dir_all(path)?;
                    } else {
                        remove_if_exists(path)?;
                    }
                }
                std::fs::File::open(&dir)?.sync_all()?;
            }
            Ok(())
        })
        .await?;
        let mut locations = Vec::new();
        let mut listing = self.objects.list(Some(&StorePath::from("snapshots")));
        while let Some(meta) = listing.next().await {
            locations.push(meta.map_err(|e| EvsError::internal(format!("listing snapshots: {e}")))?.location);
        }
        locations.sort_by_key(|location| location.extension() != Some("json"));
        for location in &locations {
            match self.objects.delete(location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(EvsError::store(e)),
            }
        }
        if let Some(location) = locations.first() {
            self.sync_object_dir(location).await?;
        }
        Ok(())
    }

    // ---- state fixtures ----------------------------------------------------------------------------

    /// Whether the service holds no volume and no snapshot.
    pub fn is_empty(&self) -> bool {
        let state = self.state();
        state.volumes.is_empty() && state.snapshots.is_empty()
    }

    /// The directory of the volume records and files (`volumes/` in the data dir, or a temporary one).
    pub fn volume_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits for every operation and job under way and keeps new ones waiting until the guard is dropped (as a
    /// reset does): the volume directory and the snapshots are then one consistent cut, for a state export or
    /// import. Volumes attached meanwhile still take NBD writes: see [`Evs::attached`].
    pub async fn exclusive(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        Arc::clone(&self.gate).write_owned().await
    }

    /// The ids of the attached volumes (their files change under NBD writes).
    pub fn attached(&self) -> Vec<String> {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// Reads the records and files a state import put in the volume directory and under `snapshots/`, as a start
    /// does. Call with the guard of [`Evs::exclusive`] held, on a service that was empty.
    pub async fn reload(&self) -> Result<()> {
        *self.state() = State::default();
        self.set_aside.store(0, Ordering::Relaxed);
        self.load().await
    }

    /// Stops the service before the process exits: no operation is admitted from now on (they fail with a 503),
    /// then it waits — at most `deadline` in all — for the operations and jobs under way, and for the NBD I/O under
    /// way on each attached volume, which it then closes and flushes (NBD clients get errors from then on). What
    /// is still running when the deadline passes is logged and left. Records are not changed: attached volumes
    /// are re-opened at the next start. Stop the NBD server first (complete its shutdown and await
    /// [`crate::nbd::serve`]) so that its clients get their last replies.
    pub async fn shutdown(&self, deadline: std::time::Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let until = tokio::time::Instant::now() + deadline;
        let exclusive = tokio::time::timeout_at(until, Arc::clone(&self.gate).write_owned()).await;
        if exclusive.is_err() {
            let running: Vec<String> =
                self.running.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            tracing::warn!(?running, "volume service shutdown: operations still running at the deadline");
        }
        let devices: Vec<(String, Arc<VolumeDevice>)> =
            self.open.lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
        for (id, device) in devices {
            let closed = tokio::task::spawn_blocking(move || {
                device.close();
                device.flush()
            });
            match tokio::time::timeout_at(until, closed).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::error!(volume = %id, error = %e, "flushing a volume at shutdown"),
                Ok(Err(e)) => tracing::error!(volume = %id, error = %e, "closing a volume at shutdown"),
                Err(_) => tracing::warn!(volume = %id, "volume service shutdown: I/O still under way at the deadline"),
            }
        }
    }

    /// Streams a volume's data (`len` bytes, in the extents whose first file is `file`) into
    /// `snapshots/<id>.img`, without its trailing zeros (the unwritten end of a sparse volume): restoring gives the
    /// volume its full length again. Holes are skipped without reading them (`SEEK_DATA` / `SEEK_HOLE`), but the
    /// zeros between two data ranges are uploaded: a snapshot costs what the volume holds up to its last data.
    async fn copy_to_snapshot(&self, file: &Path, len: u64, snapshot_id: &str) -> Result<()> {
        let path = StorePath::from(format!("snapshots/{snapshot_id}.img"));
        let mut upload =
            object_store::WriteMultipart::new(self.objects.put_multipart(&path).await.map_err(EvsError::store)?);
        let file = file.to_owned();
        let source = blocking("reading a volume", move || Layout::of(&file)?.open_read(len)).await?;
        let source = Arc::new(source);
        let mut buffer = vec![0u8; 8 << 20];
        let zeros = Arc::new(vec![0u8; buffer.len()]);
        // Zeros (holes, or zero chunks read) not uploaded yet: they are, once data follows them.
        let mut zeros_pending = 0u64;
        let mut position = 0u64;
        loop {
            let (zeros2, source2) = (Arc::clone(&zeros), Arc::clone(&source));
            let read = tokio::task::spawn_blocking(move || {
                let chunk = next_chunk(&source2, position, &mut buffer, &zeros2)?;
                Ok::<_, std::io::Error>((buffer, chunk))
            });
            let chunk;
            (buffer, chunk) = read
                .await
                .map_err(|e| EvsError::internal(e.to_string()))?
                .map_err(|e| EvsError::io("reading a volume", e))?;
            match chunk {
                Chunk::End => break,
                Chunk::Zeros(n) => {
                    zeros_pending += n;
                    position += n;
                }
                Chunk::Data(n) => {
                    while zeros_pending > 0 {
                        let k = zeros_pending.min(zeros.len() as u64) as usize;
                        upload.wait_for_capacity(4).await.map_err(EvsError::store)?;
                        upload.write(&zeros[..k]);
                        zeros_pending -= k as u64;
                    }
                    upload.wait_for_capacity(4).await.map_err(EvsError::store)?;
                    upload.write(&buffer[..n]);
                    position += n as u64;
                }
            }
        }
        // The reads are over: the files can be closed before the upload ends.
        drop(source);
        upload.finish().await.map_err(EvsError::store)?;
        self.sync_object(&path).await
    }

    /// Replaces a volume's data (its extents, whose first file is `file`) with `snapshots/<id>.img`, given its full
    /// length `len` (the snapshot leaves out the trailing zeros): written to temporary files (`<id>.restoring`,
    /// `<id>.restoring.1`, ...), fsynced, renamed over the volume's, and the directory fsynced. A volume of one
    /// extent is replaced whole or not at all; one of several is replaced extent by extent.
    async fn copy_from_snapshot(&self, snapshot_id: &str, file: &Path, len: u64) -> std::result::Result<(), Restore> {
        let file2 = file.to_owned();
        let layout = blocking("writing a volume", move || Layout::of(&file2)).await.map_err(Restore::Untouched)?;
        let tmp = layout.moved_to(&file.with_extension("restoring"));
        let written = self.restore_into(snapshot_id, &tmp, len).await;
        let remove_tmp = |tmp: Layout| async move {
            if let Err(e) = blocking("removing a restore", move || tmp.remove()).await {
                tracing::error!(error = %e, "removing a restore left behind");
            }
        };
        if let Err(e) = written {
            remove_tmp(tmp).await;
            return Err(Restore::Untouched(e));
        }
        let (tmp2, layout2) = (tmp.clone(), layout.clone());
        match blocking("writing a volume", move || tmp2.rename_over(&layout2, len)).await {
            Ok(()) => Ok(()),
            Err(e) if layout.count(len) == 1 => {
                remove_tmp(tmp).await;
                Err(Restore::Untouched(e))
            }
            Err(e) => Err(Restore::Unknown(e)),
        }
    }

    /// Writes `snapshots/<id>.img` into new extents `tmp` of `len` bytes in all, durably. Zero ranges stay holes:
    /// the volume is as sparse as the one the snapshot was taken of.
    async fn restore_into(&self, snapshot_id: &str, tmp: &Layout, len: u64) -> Result<()> {
        /// Bytes of the snapshot written at a time.
        const BATCH: usize = 4 << 20;
        let path = StorePath::from(format!("snapshots/{snapshot_id}.img"));
        let mut stream = self.objects.get(&path).await.map_err(EvsError::store)?.into_stream();
        let tmp = tmp.clone();
        let out = blocking("writing a volume", move || {
            tmp.remove()?;
            tmp.create(&[], len)?;
            tmp.open(len)
        })
        .await?;
        let out = Arc::new(out);
        let (mut batch, mut batch_at, mut length) = (Vec::with_capacity(BATCH), 0u64, 0u64);
        loop {
            let chunk = stream.next().await.transpose().map_err(EvsError::store)?;
            if let Some(chunk) = &chunk {
                length += chunk.len() as u64;
                if length > len {
                    return Err(EvsError::internal(format!("snapshot {snapshot_id} is longer than its volume")));
                }
                batch.extend_from_slice(chunk);
            }
            if batch.len() >= BATCH || (chunk.is_none() && !batch.is_empty()) {
                let out2 = Arc::clone(&out);
                let at = batch_at;
                batch_at += batch.len() as u64;
                batch = blocking("writing a volume", move || {
                    write_skipping_zeros(&out2, &batch, at)?;
                    Ok(batch)
                })
                .await?;
                batch.clear();
            }
            if chunk.is_none() {
                break;
            }
        }
        blocking("writing a volume", move || out.sync_all()).await
    }
}

/// Writes `data` at `position`, leaving holes where a 64 KiB piece is all zeros.
fn write_skipping_zeros(out: &Extents, data: &[u8], position: u64) -> std::io::Result<()> {
    const PIECE: usize = 64 * 1024;
    for (i, piece) in data.chunks(PIECE).enumerate() {
        if piece.iter().any(|&b| b != 0) {
            out.write_all_at(piece, position + (i * PIECE) as u64)?;
        }
    }
    Ok(())
}

/// How a rollback failed: before the volume file was replaced (it is as it was), or after (its durability is
/// unknown).
enum Restore {
    Untouched(EvsError),
    Unknown(EvsError),
}

impl Restore {
    fn into_error(self) -> EvsError {
        match self {
            Restore::Untouched(e) | Restore::Unknown(e) => e,
        }
    }
}

/// The length of a volume file: the LUKS header area of an encrypted volume (kmsim's volumes all have the same
/// payload offset), then `size_gb`.
fn volume_file_len(encrypted: bool, size_gb: u64) -> u64 {
    let header = if encrypted { luks::PAYLOAD_OFFSET_SECTORS * luks::SECTOR as u64 } else { 0 };
    header + size_gb * GIB
}

impl Exports for Evs {
    fn get(&self, name: &str) -> Option<Arc<dyn BlockDevice>> {
        let device = self.open.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()?;
        let device = device as Arc<dyn BlockDevice>;
        Some(match self.faults.get() {
            Some(faults) => Arc::new(FaultyDevice::new(device, name, faults.clone())),
            None => device,
        })
    }

    fn list(&self) -> Vec<String> {
        let mut names: Vec<String> = self.open.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }
}

/// Refuses a volume or snapshot name longer than the API allows.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.chars().count() > 64 {
        return Err(EvsError::InvalidName);
    }
    Ok(())
}

fn check_description(description: &str) -> Result<()> {
    if description.chars().count() > 255 {
        return Err(EvsError::InvalidDescription);
    }
    Ok(())
}

/// What comes next in a volume file, for a snapshot.
enum Chunk {
    /// `n` bytes of data, in the buffer.
    Data(usize),
    /// `n` bytes of zeros (a hole, or data that is all zeros), not read.
    Zeros(u64),
    /// The end of the file, or only holes up to it.
    End,
}

/// Reads the chunk of the volume at `position`: holes are skipped without reading them, so a snapshot of a mostly
/// empty volume costs what its data costs.
fn next_chunk(source: &Extents, position: u64, buffer: &mut [u8], zeros: &[u8]) -> std::io::Result<Chunk> {
    Ok(match source.next_run(position, buffer.len() as u64)? {
        None => Chunk::End,
        Some((false, n)) => Chunk::Zeros(n),
        Some((true, n)) => {
            let len = n as usize;
            source.read_exact_at(&mut buffer[..len], position)?;
            if buffer[..len] == zeros[..len] { Chunk::Zeros(n) } else { Chunk::Data(len) }
        }
    })
}

/// Runs blocking file work (`doing`, for the error) on the blocking pool.
async fn blocking<T: Send + 'static>(
    doing: &'static str,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| EvsError::internal(e.to_string()))?
        .map_err(|e| EvsError::io(doing, e))
}

async fn sync_dir_of(path: &Path) -> Result<()> {
    let Some(dir) = path.parent().map(Path::to_owned) else { return Ok(()) };
    blocking("syncing the volume directory", move || std::fs::File::open(dir)?.sync_all()).await
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, end_time: i64) -> (String, Job) {
        let status = if end_time == 0 { JobStatus::Running } else { JobStatus::Success };
        let job = Job {
            id: id.to_owned(),
            project_id: "p".to_owned(),
            job_type: "createVolume".to_owned(),
            status,
            volume_id: None,
            volume_ids: Vec::new(),
            server_id: None,
            begin_time: 0,
            end_time,
            failure: None,
        };
        (id.to_owned(), job)
    }

    #[test]
    fn jobs_stay_below_the_bound_even_when_all_ended_within_the_hour() {
        let now = 10 * JOB_RETENTION_MILLIS;
        // Full of jobs that ended just now (a frozen clock): the earliest ended go, running ones stay.
        let mut jobs: HashMap<String, Job> =
            [job("running", 0), job("a", now - 3), job("b", now - 2), job("c", now - 1)].into_iter().collect();
        make_room_for_a_job(&mut jobs, now, 3);
        let mut left: Vec<&str> = jobs.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["c", "running"]);
        // Jobs that ended over an hour ago go first, and only as many as needed.
        let mut jobs: HashMap<String, Job> =
            [job("old", now - JOB_RETENTION_MILLIS - 1), job("new", now - 1)].into_iter().collect();
        make_room_for_a_job(&mut jobs, now, 2);
        assert_eq!(jobs.keys().collect::<Vec<_>>(), ["new"]);
        make_room_for_a_job(&mut jobs, now, 5);
        assert_eq!(jobs.len(), 1, "below the bound nothing goes");
    }
}
