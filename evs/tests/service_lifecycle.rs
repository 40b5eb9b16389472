//! The volume service's lifecycle, in-process over raw NBD connections: `Evs::reset` (everything detached and
//! deleted, nothing else in the object store touched, no race with running jobs), `Evs::shutdown` (running jobs
//! and NBD I/O drained within its deadline, nothing admitted afterwards), `Evs::set_aside_records`, and volumes
//! larger than an extent file (`evs::extents`: up to 32,768 GB on ext4). The KMS is a stand-in ([`FakeKms`])
//! whose decryptions a test can hold up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth::AccessKey;
use evs::Evs;
use evs::model::{ENCRYPTED_KEY, Job, JobStatus, SnapshotStatus, VolumeStatus};
use evs::nbd::{self, Exports};
use evs::service::{CreateVolume, Requester, VolumeFilter};
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use rand::RngCore;
use shared::Caller;
use shared::key_service::{BoxFuture, DataKey, EncryptionContext, KeyService, KeyServiceError};
use zeroize::Zeroizing;

/// A stand-in KMS: data keys are random, their "ciphertexts" random handles remembered with the key and its
/// context. `decrypt` waits, while `hold` is set, until `release` gets permits: an attach job then stays running
/// for as long as a test wants.
#[derive(Debug)]
struct FakeKms {
    /// Data keys by their "ciphertext", with the context each is bound to.
    keys: Mutex<HashMap<Vec<u8>, BoundKey>>,
    hold: AtomicBool,
    release: tokio::sync::Semaphore,
}

/// A data key and the encryption context it was made for.
type BoundKey = ([u8; 32], EncryptionContext);

const KEY_ARN: &str = "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-00000000000a";

impl KeyService for FakeKms {
    fn generate_data_key<'a>(
        &'a self,
        _caller: &'a Caller,
        _key_id: &'a str,
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<DataKey, KeyServiceError>> {
        Box::pin(async move {
            let mut key = [0u8; 32];
            let mut handle = vec![0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut key);
            rand::rngs::OsRng.fill_bytes(&mut handle);
            self.keys.lock().unwrap().insert(handle.clone(), (key, context.clone()));
            Ok(DataKey { plaintext: Zeroizing::new(key), ciphertext_blob: handle, key_arn: KEY_ARN.to_owned() })
        })
    }

    fn decrypt<'a>(
        &'a self,
        _caller: &'a Caller,
        ciphertext_blob: &'a [u8],
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KeyServiceError>> {
        Box::pin(async move {
            if self.hold.load(Ordering::SeqCst) {
                let _ = self.release.acquire().await;
            }
            match self.keys.lock().unwrap().get(ciphertext_blob) {
                Some((key, bound)) if bound == context => Ok(Zeroizing::new(key.to_vec())),
                _ => Err(KeyServiceError::InvalidCiphertext("unknown data key".into())),
            }
        })
    }

    fn service_managed_key<'a>(
        &'a self,
        _caller: &'a Caller,
        _alias: &'a str,
    ) -> BoxFuture<'a, Result<String, KeyServiceError>> {
        Box::pin(async { Ok(KEY_ARN.to_owned()) })
    }

    fn grant_service_access<'a>(
        &'a self,
        _caller: &'a Caller,
        _key_id: &'a str,
        _grantee: &'a str,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<String, KeyServiceError>> {
        Box::pin(async { Ok(KEY_ARN.to_owned()) })
    }
}

/// A minimal NBD client on a raw socket: `NBD_OPT_EXPORT_NAME`, simple replies.
struct Nbd {
    stream: TcpStream,
    /// The export's size, as negotiated.
    size: u64,
    next_handle: u64,
}

impl Nbd {
    fn connect(addr: SocketAddr, export: &str) -> Nbd {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut greeting = [0; 18];
        stream.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting[..8], b"NBDMAGIC");
        let mut hello = Vec::new();
        hello.extend_from_slice(&3_u32.to_be_bytes());
        hello.extend_from_slice(&0x4948_4156_454f_5054_u64.to_be_bytes());
        hello.extend_from_slice(&1_u32.to_be_bytes());
        hello.extend_from_slice(&(export.len() as u32).to_be_bytes());
        hello.extend_from_slice(export.as_bytes());
        stream.write_all(&hello).unwrap();
        let mut answer = [0; 10];
        stream.read_exact(&mut answer).unwrap();
        let size = u64::from_be_bytes(answer[..8].try_into().unwrap());
        Nbd { stream, size, next_handle: 1 }
    }

    /// Sends one request (and a write's payload); returns its error, having read a successful read's data into
    /// `data`.
    fn call(&mut self, command: u16, offset: u64, len: u32, data: &mut [u8]) -> u32 {
        let handle = self.next_handle;
        self.next_handle += 1;
        let mut request = Vec::with_capacity(28);
        request.extend_from_slice(&0x2560_9513_u32.to_be_bytes());
        request.extend_from_slice(&0_u16.to_be_bytes());
        request.extend_from_slice(&command.to_be_bytes());
        request.extend_from_slice(&handle.to_be_bytes());
        request.extend_from_slice(&offset.to_be_bytes());
        request.extend_from_slice(&len.to_be_bytes());
        self.stream.write_all(&request).unwrap();
        if command == CMD_WRITE {
            self.stream.write_all(data).unwrap();
        }
        let mut reply = [0; 16];
        self.stream.read_exact(&mut reply).unwrap();
        assert_eq!(reply[..4], 0x6744_6698_u32.to_be_bytes());
        assert_eq!(u64::from_be_bytes(reply[8..].try_into().unwrap()), handle);
        let error = u32::from_be_bytes(reply[4..8].try_into().unwrap());
        if command == CMD_READ && error == 0 {
            self.stream.read_exact(data).unwrap();
        }
        error
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut data = data.to_vec();
        assert_eq!(self.call(CMD_WRITE, offset, data.len() as u32, &mut data), 0, "WRITE at {offset}");
    }

    fn read(&mut self, offset: u64, len: usize) -> Vec<u8> {
        let mut data = vec![0; len];
        assert_eq!(self.call(CMD_READ, offset, len as u32, &mut data), 0, "READ at {offset}");
        data
    }

    /// The error of one 4 KiB read (0: it worked).
    fn read_error(&mut self, offset: u64) -> u32 {
        self.call(CMD_READ, offset, 4096, &mut [0; 4096])
    }
}

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;

/// An `Evs` on a data dir, with a [`FakeKms`] and an NBD server on an ephemeral port.
struct Rig {
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    keys: Arc<FakeKms>,
    objects: Arc<dyn ObjectStore>,
    evs: Arc<Evs>,
    requester: Requester,
    nbd: SocketAddr,
    stop_nbd: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Rig {
    fn start() -> Rig {
        Self::start_in(tempfile::tempdir().unwrap(), |_| {})
    }

    /// Starts on `dir`, after `prepare` has had the volume directory.
    fn start_in(dir: tempfile::TempDir, prepare: impl FnOnce(&Path)) -> Rig {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let keys = Arc::new(FakeKms {
            keys: Mutex::new(HashMap::new()),
            hold: AtomicBool::new(false),
            release: tokio::sync::Semaphore::new(0),
        });
        std::fs::create_dir_all(dir.path().join("volumes")).unwrap();
        prepare(&dir.path().join("volumes"));
        let objects_root = dir.path().join("objects");
        std::fs::create_dir_all(&objects_root).unwrap();
        let objects: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&objects_root).unwrap());
        let evs = runtime.block_on(async {
            let keys: Arc<dyn KeyService> = keys.clone();
            Evs::open(Some(dir.path()), objects.clone(), Some(objects_root), keys).await.unwrap()
        });
        let evs = Arc::new(evs);
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let nbd = listener.local_addr().unwrap();
        let (stop_nbd, stopped) = tokio::sync::oneshot::channel::<()>();
        let exports: Arc<dyn Exports> = evs.clone();
        runtime.spawn(nbd::serve(listener, exports, async {
            let _ = stopped.await;
        }));
        let key = AccessKey::new("test", "test", shared::caller::DEFAULT_ACCOUNT_ID, None);
        let requester = Requester::new(Arc::new(key), shared::caller::DEFAULT_REGION);
        Rig { runtime, dir, keys, objects, evs, requester, nbd, stop_nbd: Some(stop_nbd) }
    }

    fn volumes_dir(&self) -> PathBuf {
        self.dir.path().join("volumes")
    }

    /// Waits (bounded) for a job to end.
    fn wait(&self, job: &Job) -> Job {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.evs.job(&self.requester, &job.id).unwrap();
            if matches!(job.status, JobStatus::Success | JobStatus::Fail) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {} still {:?}", job.id, job.status);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Creates a volume of `size_gb` (encrypted under the project's default key if `encrypted`); its id.
    fn create(&self, size_gb: u64, encrypted: bool) -> String {
        let job = self.runtime.block_on(self.evs.create_volumes(&self.requester, create_input(size_gb, encrypted)));
        let job = self.wait(&job.unwrap());
        assert_eq!(job.status, JobStatus::Success, "{job:?}");
        job.volume_id.unwrap()
    }

    fn attach(&self, id: &str) {
        let job = self.runtime.block_on(self.evs.attach(&self.requester, "server-1", id, None)).unwrap();
        assert_eq!(self.wait(&job).status, JobStatus::Success);
    }

    fn detach(&self, id: &str) {
        let job = self.runtime.block_on(self.evs.detach(&self.requester, "server-1", id)).unwrap();
        assert_eq!(self.wait(&job).status, JobStatus::Success);
    }

    fn extend(&self, id: &str, size_gb: u64) {
        let job = self.runtime.block_on(self.evs.extend_volume(&self.requester, id, size_gb)).unwrap();
        assert_eq!(self.wait(&job).status, JobStatus::Success);
    }

    /// The lengths of a volume's extent files, in order.
    fn extent_lens(&self, id: &str) -> Vec<u64> {
        let layout = evs::extents::Layout::new(&self.volumes_dir().join(format!("{id}.img")));
        (0..).map_while(|index| std::fs::metadata(layout.path(index)).ok().map(|m| m.len())).collect()
    }

    fn snapshot(&self, volume_id: &str) -> String {
        let evs = &self.evs;
        let created =
            evs.create_snapshot(&self.requester, volume_id, "s".into(), String::new(), false, BTreeMap::new());
        let id = self.runtime.block_on(created).unwrap().id;
        let deadline = Instant::now() + Duration::from_secs(60);
        while evs.snapshot(&self.requester, &id).unwrap().status != SnapshotStatus::Available {
            assert!(Instant::now() < deadline, "snapshot {id} never became available");
            std::thread::sleep(Duration::from_millis(10));
        }
        id
    }

    /// Files under `dir` (recursively), relative to it.
    fn files(dir: &Path) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(next) = stack.pop() {
            for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    stack.push(entry.path());
                } else {
                    found.insert(entry.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        found
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_nbd.take() {
            let _ = stop.send(());
        }
    }
}

fn create_input(size_gb: u64, encrypted: bool) -> CreateVolume {
    let mut metadata = BTreeMap::new();
    if encrypted {
        metadata.insert(ENCRYPTED_KEY.to_owned(), "1".to_owned());
    }
    CreateVolume {
        size_gb: Some(size_gb),
        volume_type: "SSD".into(),
        availability_zone: "az1".into(),
        count: 1,
        metadata,
        ..CreateVolume::default()
    }
}

#[test]
fn reset_detaches_and_deletes_every_volume_snapshot_and_job_and_nothing_else() {
    // A record of a later format, set aside at start.
    let dir = tempfile::tempdir().unwrap();
    let rig = Rig::start_in(dir, |volumes| {
        std::fs::write(volumes.join("0c0c0c0c-0000-0000-0000-000000000000.json"), br#"{"format": 9}"#).unwrap();
    });
    assert_eq!(rig.evs.set_aside_records(), 1);
    let keep = StorePath::from("data/kept-object");
    rig.runtime.block_on(rig.objects.put(&keep, b"not a snapshot".to_vec().into())).unwrap();

    let encrypted = rig.create(10, true);
    let plain = rig.create(10, false);
    let snapshot = rig.snapshot(&plain);
    let attach = rig.runtime.block_on(rig.evs.attach(&rig.requester, "server-1", &encrypted, None)).unwrap();
    rig.wait(&attach);
    let mut client = Nbd::connect(rig.nbd, &encrypted);
    assert_eq!(client.size, 10 << 30);
    client.write(0, &[0x42; 4096]);
    assert_eq!(client.read(0, 4096), vec![0x42; 4096]);

    rig.runtime.block_on(rig.evs.reset()).unwrap();

    assert_ne!(client.read_error(0), 0, "a detached volume still serves reads");
    assert!(rig.evs.list().is_empty(), "volumes still exported");
    let (volumes, total) = rig.evs.volumes(&rig.requester, &VolumeFilter::default());
    assert!(volumes.is_empty() && total == 0);
    assert!(rig.evs.snapshots(&rig.requester, None).is_empty());
    assert!(rig.evs.snapshot(&rig.requester, &snapshot).is_err());
    assert!(rig.evs.job(&rig.requester, &attach.id).is_err(), "jobs are forgotten");
    assert_eq!(rig.evs.set_aside_records(), 0);
    assert_eq!(Rig::files(&rig.volumes_dir()), BTreeSet::new());
    let objects = Rig::files(&rig.dir.path().join("objects"));
    assert_eq!(objects, BTreeSet::from(["data/kept-object".to_owned()]), "only snapshots/ is emptied");

    // A consistent empty service: it creates, attaches and serves again.
    let again = rig.create(10, false);
    rig.attach(&again);
    let mut client = Nbd::connect(rig.nbd, &again);
    client.write(4096, &[7; 4096]);
    assert_eq!(client.read(4096, 4096), vec![7; 4096]);
}

/// A reset waits for a job under way (here an attach held in the KMS) and the job does not outlive it: after the
/// reset nothing is left, not even the volume the job was attaching.
#[test]
fn reset_waits_for_running_jobs() {
    let rig = Rig::start();
    let volume = rig.create(10, true);
    rig.keys.hold.store(true, Ordering::SeqCst);
    let attach = rig.runtime.block_on(rig.evs.attach(&rig.requester, "server-1", &volume, None)).unwrap();
    let evs = rig.evs.clone();
    let reset = rig.runtime.spawn(async move { evs.reset().await });
    std::thread::sleep(Duration::from_millis(200));
    assert!(!reset.is_finished(), "the reset did not wait for the attach job");
    rig.keys.release.add_permits(1000);
    rig.runtime.block_on(reset).unwrap().unwrap();
    assert!(rig.evs.job(&rig.requester, &attach.id).is_err());
    assert!(rig.evs.list().is_empty(), "the attach job re-exported a volume after the reset");
    assert!(rig.evs.volume(&rig.requester, &volume).is_err());
    assert_eq!(Rig::files(&rig.volumes_dir()), BTreeSet::new());

    // Creations racing resets: whatever wins, every volume file left has its record, and every volume its file.
    rig.keys.hold.store(false, Ordering::SeqCst);
    for _ in 0..5 {
        let evs = rig.evs.clone();
        let requester = rig.requester.clone();
        let created = rig.runtime.spawn(async move {
            let input = CreateVolume { count: 3, ..create_input(10, false) };
            evs.create_volumes(&requester, input).await
        });
        rig.runtime.block_on(rig.evs.reset()).unwrap();
        // A creation admitted before the reset ended before it (and its job went with it); one admitted after
        // runs now.
        if let Ok(job) = rig.runtime.block_on(created).unwrap()
            && rig.evs.job(&rig.requester, &job.id).is_ok()
        {
            rig.wait(&job);
        }
        let (volumes, _) = rig.evs.volumes(&rig.requester, &VolumeFilter::default());
        assert!(volumes.iter().all(|v| v.status == VolumeStatus::Available), "{volumes:?}");
        let mut expected = BTreeSet::new();
        for v in &volumes {
            expected.insert(format!("{}.img", v.id));
            expected.insert(format!("{}.json", v.id));
        }
        assert_eq!(Rig::files(&rig.volumes_dir()), expected);
    }
}

#[test]
fn shutdown_waits_for_jobs_and_volume_io_within_its_deadline() {
    let rig = Rig::start();
    let volume = rig.create(10, false);
    rig.attach(&volume);
    let mut client = Nbd::connect(rig.nbd, &volume);
    client.write(65536, &[0x5a; 65536]);
    // A job that is quick: the shutdown waits for it.
    let created = rig.runtime.block_on(rig.evs.create_volumes(&rig.requester, create_input(10, false))).unwrap();
    // A job that does not end before the deadline: the shutdown gives up on it.
    let held = rig.create(10, true);
    rig.keys.hold.store(true, Ordering::SeqCst);
    let stuck = rig.runtime.block_on(rig.evs.attach(&rig.requester, "server-1", &held, None)).unwrap();

    let started = Instant::now();
    rig.runtime.block_on(rig.evs.shutdown(Duration::from_millis(500)));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(5), "shutdown took {took:?}");
    let created = rig.evs.job(&rig.requester, &created.id).unwrap();
    assert_eq!(created.status, JobStatus::Success, "the shutdown did not wait for a job: {created:?}");
    assert_eq!(rig.evs.job(&rig.requester, &stuck.id).unwrap().status, JobStatus::Running);

    // Nothing is admitted any more; the attached volume's I/O has ended, and what was written is in its file.
    let refused = rig.runtime.block_on(rig.evs.create_volumes(&rig.requester, create_input(10, false))).unwrap_err();
    assert_eq!((refused.status().as_u16(), refused.code()), (503, "EVS.5500"));
    let refused = rig.runtime.block_on(rig.evs.delete_volume(&rig.requester, &volume, false)).unwrap_err();
    assert_eq!(refused.status().as_u16(), 503);
    assert_ne!(client.read_error(0), 0, "the volume still serves I/O after the shutdown");
    let file = std::fs::File::open(rig.volumes_dir().join(format!("{volume}.img"))).unwrap();
    let mut written = vec![0; 65536];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut written, 65536).unwrap();
    assert!(written.iter().all(|&b| b == 0x5a));
    rig.keys.release.add_permits(1000);
    rig.wait(&stuck);

    // With nothing running, a shutdown returns at once.
    let rig = Rig::start();
    let started = Instant::now();
    rig.runtime.block_on(rig.evs.shutdown(Duration::from_secs(10)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

const GIB: u64 = 1 << 30;
const EXTENT: u64 = evs::extents::EXTENT_BYTES;
/// The LUKS header area before an encrypted volume's payload.
const HEADER: u64 = 2 << 20;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// The largest volume the API allows, encrypted: its data spans five extent files; the last sector and ranges
/// across extent boundaries are written and read back over NBD, and again after a detach and a re-attach.
#[test]
fn a_32768_gb_encrypted_volume_is_written_at_its_end_and_across_extents() {
    let rig = Rig::start();
    let id = rig.create(32768, true);
    let len = 32768 * GIB + HEADER;
    assert_eq!(rig.extent_lens(&id), [EXTENT, EXTENT, EXTENT, EXTENT, len - 4 * EXTENT]);
    rig.attach(&id);
    let mut client = Nbd::connect(rig.nbd, &id);
    assert_eq!(client.size, 32768 * GIB);
    let last = client.size - 4096;
    // Payload offsets where extents 1 and 3 begin (the header area comes first).
    let boundaries = [EXTENT - HEADER, 3 * EXTENT - HEADER];
    let writes: Vec<(u64, Vec<u8>)> = [(last, pattern(1, 4096))]
        .into_iter()
        .chain(boundaries.iter().enumerate().map(|(i, &at)| (at - 32768, pattern(2 + i as u8, 65536))))
        .collect();
    for (at, data) in &writes {
        client.write(*at, data);
    }
    for (at, data) in &writes {
        assert_eq!(&client.read(*at, data.len()), data, "at {at}");
    }
    // Ciphertext landed at the start of extent 1, not plaintext.
    let extent1 = std::fs::File::open(rig.volumes_dir().join(format!("{id}.img.1"))).unwrap();
    let mut stored = vec![0; 32768];
    std::os::unix::fs::FileExt::read_exact_at(&extent1, &mut stored, 0).unwrap();
    assert!(stored.iter().any(|&b| b != 0) && stored != writes[1].1[32768..]);
    drop(client);

    rig.detach(&id);
    rig.attach(&id);
    let mut client = Nbd::connect(rig.nbd, &id);
    for (at, data) in &writes {
        assert_eq!(&client.read(*at, data.len()), data, "after re-attaching, at {at}");
    }
    drop(client);
    // qemu-io, a real client, writes and verifies a pattern across the boundary of extents 3 and 4, and the
    // last 64 KiB.
    if std::process::Command::new("qemu-io").arg("--version").output().is_ok() {
        let url = format!("nbd://{}/{id}", rig.nbd);
        let across = 4 * EXTENT - HEADER - 32768;
        let end = 32768 * GIB - 65536;
        let mut commands = Vec::new();
        for at in [across, end] {
            commands.extend(["-c".to_owned(), format!("write -P 0xab {at} 64k")]);
            commands.extend(["-c".to_owned(), format!("read -P 0xab {at} 64k")]);
        }
        let output =
            std::process::Command::new("qemu-io").args(["-f", "raw"]).args(&commands).arg(&url).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && !text.contains("fail") && !text.contains("Pattern verification"), "{text}");
    } else {
        eprintln!("SKIPPED (qemu-io part): `qemu-io` is not installed (apt-get install qemu-utils)");
    }
    rig.detach(&id);
    let job = rig.runtime.block_on(rig.evs.delete_volume(&rig.requester, &id, false)).unwrap();
    assert_eq!(rig.wait(&job).status, JobStatus::Success);
    assert!(rig.extent_lens(&id).is_empty(), "extent files left behind");
}

/// A volume just below an extent keeps today's single file; extending it (attached) across the boundary adds
/// an extent, and new NBD connections write across it. A snapshot and a rollback of a multi-extent volume restore
/// its first extent and drop what was written after the snapshot in the next one; the start sweep removes extent
/// files no record refers to and keeps those of live volumes.
#[test]
fn volumes_extend_snapshot_and_roll_back_across_extents() {
    let rig = Rig::start();
    let small = (EXTENT - HEADER) / GIB - 1; // 8190 GB: header and payload below 8 TiB
    let id = rig.create(small, true);
    assert_eq!(rig.extent_lens(&id), [small * GIB + HEADER]);
    rig.attach(&id);
    let mut client = Nbd::connect(rig.nbd, &id);
    let old_last = small * GIB - 4096;
    client.write(old_last, &pattern(7, 4096));
    rig.extend(&id, small + 10);
    assert_eq!(rig.extent_lens(&id), [EXTENT, (small + 10) * GIB + HEADER - EXTENT]);
    let mut grown = Nbd::connect(rig.nbd, &id);
    assert_eq!(grown.size, (small + 10) * GIB);
    let across = EXTENT - HEADER - 8192;
    grown.write(across, &pattern(8, 16384));
    grown.write(grown.size - 4096, &pattern(9, 4096));
    assert_eq!(grown.read(across, 16384), pattern(8, 16384));
    assert_eq!(grown.read(old_last, 4096), pattern(7, 4096));
    assert_eq!(client.read(old_last, 4096), pattern(7, 4096), "the older connection goes on");
    drop((client, grown));
    rig.detach(&id);

    // Snapshot and rollback of an unencrypted two-extent volume, data at its start (a snapshot uploads the
    // volume up to its last data).
    let plain = rig.create(8200, false);
    assert_eq!(rig.extent_lens(&plain).len(), 2);
    rig.attach(&plain);
    let mut client = Nbd::connect(rig.nbd, &plain);
    client.write(0, &pattern(1, 65536));
    drop(client);
    rig.detach(&plain);
    let snapshot = rig.snapshot(&plain);
    rig.attach(&plain);
    let mut client = Nbd::connect(rig.nbd, &plain);
    client.write(0, &pattern(2, 65536));
    client.write(EXTENT, &pattern(3, 65536));
    drop(client);
    rig.detach(&plain);
    let rolled = rig.runtime.block_on(rig.evs.rollback_snapshot(&rig.requester, &snapshot, None)).unwrap();
    assert_eq!(rolled.status, VolumeStatus::Restoring);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rig.evs.volume(&rig.requester, &plain).unwrap().status != VolumeStatus::Available {
        assert!(Instant::now() < deadline, "the rollback never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rig.extent_lens(&plain), [EXTENT, 8200 * GIB - EXTENT]);
    rig.attach(&plain);
    let mut client = Nbd::connect(rig.nbd, &plain);
    assert_eq!(client.read(0, 65536), pattern(1, 65536));
    assert_eq!(client.read(EXTENT, 65536), vec![0; 65536], "data written after the snapshot survived");
    drop(client);

    // The start sweep: an extent of no volume goes, a live volume's extents stay.
    let stray = rig.volumes_dir().join("0d0d0d0d-0000-0000-0000-000000000000.img.2");
    std::fs::File::create(&stray).unwrap().set_len(1 << 20).unwrap();
    let reopened = rig.runtime.block_on(async {
        let keys: Arc<dyn KeyService> = rig.keys.clone();
        let root = rig.dir.path().join("objects");
        Evs::open(Some(rig.dir.path()), rig.objects.clone(), Some(root), keys).await.unwrap()
    });
    assert!(!stray.exists(), "an orphan extent file was kept");
    assert_eq!(rig.extent_lens(&id).len(), 2);
    assert_eq!(rig.extent_lens(&plain).len(), 2);
    assert!(reopened.volume(&rig.requester, &id).is_ok());
}
