//! Durability of EVS volumes over NBD: `kill -9` at random points of volume writes, then restart. What a FLUSH
//! covered reads back exactly (I1); what was not flushed reads back as the old or the new content of each block,
//! never as anything else — no torn or garbled encrypted sectors (I2); the volume is exported again after a
//! restart without re-attaching; the plaintext never reaches a file under the data dir.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::common::{RawResponse, evs_raw, raw_request_to, spawn_binary_line};

const PROJECT: &str = "00000000000000000000000000000000";
const BLOCK: usize = 4096;
/// Blocks the random writes land in (the first 1 MiB of the volume); the marker block follows them.
const BLOCKS: usize = 256;

/// A running `kmsim` binary, killed if the test fails half-way (so no server outlives the test).
struct Kmsim(std::process::Child);

impl Kmsim {
    /// `kill -9`, and reaps it.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Kmsim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `kmsim` binary on port 0 with a data dir: its edge and NBD addresses (read from its JSON line) and how long
/// it took to print them.
fn spawn(dir: &Path) -> (Kmsim, SocketAddr, SocketAddr, Duration) {
    let started = Instant::now();
    let (child, line) = spawn_binary_line(dir);
    let edge = line["endpoint"].as_str().unwrap().trim_start_matches("http://").parse().unwrap();
    let nbd = line["nbd"].as_str().unwrap().trim_start_matches("nbd://").parse().unwrap();
    (Kmsim(child), edge, nbd, started.elapsed())
}

/// An SDK-HMAC-signed request to the edge port.
fn call(edge: SocketAddr, method: &str, path: &str, body: &Value) -> RawResponse {
    evs_raw(edge, method, path, body)
}

fn ok(edge: SocketAddr, method: &str, path: &str, body: Value) -> Value {
    let response = call(edge, method, path, &body);
    assert!((200..300).contains(&response.status), "{method} {path} {body}: {} {}", response.status, response.body);
    serde_json::from_str(&response.body).unwrap_or(Value::Null)
}

/// Snapshots a volume and waits until the snapshot is available; returns its id.
fn snapshot_of(edge: SocketAddr, volume_id: &str) -> String {
    let snapshot =
        ok(edge, "POST", &format!("/v2/{PROJECT}/cloudsnapshots"), json!({"snapshot": {"volume_id": volume_id}}));
    let snapshot_id = snapshot["snapshot"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok(edge, "GET", &format!("/v2/{PROJECT}/cloudsnapshots/{snapshot_id}"), Value::Null)["snapshot"]["status"]
        != "available"
    {
        assert!(Instant::now() < deadline, "snapshot {snapshot_id} never became available");
        std::thread::sleep(Duration::from_millis(10));
    }
    snapshot_id
}

/// Polls a job until it succeeds; returns its `entities`.
fn wait_for_job(edge: SocketAddr, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = ok(edge, "GET", &format!("/v1/{PROJECT}/jobs/{job_id}"), Value::Null);
        match job["status"].as_str().unwrap_or_default() {
            "SUCCESS" => return job["entities"].clone(),
            "FAIL" => panic!("job {job_id} failed: {job}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "job {job_id} still not done: {job}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A minimal NBD client: fixed newstyle handshake, `NBD_OPT_GO`, simple replies.
struct Nbd {
    stream: TcpStream,
    size: u64,
    next_handle: u64,
}

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_C_FIXED_NEWSTYLE: u32 = 1;
const FLAG_C_NO_ZEROES: u32 = 2;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const INFO_EXPORT: u16 = 0;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const FLAG_SEND_FLUSH: u16 = 1 << 2;

fn read_u16(stream: &mut TcpStream) -> u16 {
    let mut b = [0; 2];
    stream.read_exact(&mut b).unwrap();
    u16::from_be_bytes(b)
}

fn read_u32(stream: &mut TcpStream) -> u32 {
    let mut b = [0; 4];
    stream.read_exact(&mut b).unwrap();
    u32::from_be_bytes(b)
}

fn read_u64(stream: &mut TcpStream) -> u64 {
    let mut b = [0; 8];
    stream.read_exact(&mut b).unwrap();
    u64::from_be_bytes(b)
}

impl Nbd {
    /// Connects to `addr` and negotiates `export` with `NBD_OPT_GO`.
    fn connect(addr: SocketAddr, export: &str) -> Nbd {
        let mut stream = TcpStream::connect(addr).expect("NBD connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(read_u64(&mut stream), NBDMAGIC);
        assert_eq!(read_u64(&mut stream), IHAVEOPT);
        assert_ne!(read_u16(&mut stream) & FLAG_FIXED_NEWSTYLE, 0, "the server speaks fixed newstyle");
        let mut hello = Vec::new();
        hello.extend_from_slice(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes());
        hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
        hello.extend_from_slice(&OPT_GO.to_be_bytes());
        hello.extend_from_slice(&(4 + export.len() as u32 + 2).to_be_bytes());
        hello.extend_from_slice(&(export.len() as u32).to_be_bytes());
        hello.extend_from_slice(export.as_bytes());
        hello.extend_from_slice(&0u16.to_be_bytes()); // no information requests
        stream.write_all(&hello).unwrap();
        let mut size = None;
        loop {
            assert_eq!(read_u64(&mut stream), OPTION_REPLY_MAGIC);
            assert_eq!(read_u32(&mut stream), OPT_GO);
            let reply = read_u32(&mut stream);
            let mut data = vec![0; read_u32(&mut stream) as usize];
            stream.read_exact(&mut data).unwrap();
            match reply {
                REP_ACK => break,
                REP_INFO if data[..2] == INFO_EXPORT.to_be_bytes() => {
                    size = Some(u64::from_be_bytes(data[2..10].try_into().unwrap()));
                    let flags = u16::from_be_bytes(data[10..12].try_into().unwrap());
                    assert_ne!(flags & FLAG_SEND_FLUSH, 0, "the export takes FLUSH");
                }
                REP_INFO => {}
                error => panic!("NBD_OPT_GO {export}: reply {error:#x} {}", String::from_utf8_lossy(&data)),
            }
        }
        Nbd { stream, size: size.expect("NBD_INFO_EXPORT"), next_handle: 1 }
    }

    /// Sends a request (and a WRITE's payload) without waiting for the reply; returns its handle.
    fn send(&mut self, command: u16, offset: u64, len: u32, payload: &[u8]) -> u64 {
        let handle = self.next_handle;
        self.next_handle += 1;
        let mut request = Vec::with_capacity(28 + payload.len());
        request.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        request.extend_from_slice(&0u16.to_be_bytes());
        request.extend_from_slice(&command.to_be_bytes());
        request.extend_from_slice(&handle.to_be_bytes());
        request.extend_from_slice(&offset.to_be_bytes());
        request.extend_from_slice(&len.to_be_bytes());
        request.extend_from_slice(payload);
        self.stream.write_all(&request).unwrap();
        handle
    }

    /// Reads one simple reply header: `(handle, error)`.
    fn reply(&mut self) -> (u64, u32) {
        assert_eq!(read_u32(&mut self.stream), SIMPLE_REPLY_MAGIC);
        let error = read_u32(&mut self.stream);
        (read_u64(&mut self.stream), error)
    }

    /// One request, answered before the next is sent.
    fn request(&mut self, command: u16, offset: u64, len: u32, payload: &[u8]) {
        let handle = self.send(command, offset, len, payload);
        assert_eq!(self.reply(), (handle, 0), "NBD command {command} at {offset}+{len}");
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.request(CMD_WRITE, offset, data.len() as u32, data);
    }

    fn flush(&mut self) {
        self.request(CMD_FLUSH, 0, 0, &[]);
    }

    fn read(&mut self, offset: u64, len: usize) -> Vec<u8> {
        let handle = self.send(CMD_READ, offset, len as u32, &[]);
        assert_eq!(self.reply(), (handle, 0), "NBD READ at {offset}+{len}");
        let mut data = vec![0; len];
        self.stream.read_exact(&mut data).unwrap();
        data
    }

    fn disconnect(mut self) {
        self.send(CMD_DISC, 0, 0, &[]);
    }
}

fn random_block(rng: &mut StdRng) -> Vec<u8> {
    let mut block = vec![0; BLOCK];
    rng.fill(&mut block[..]);
    block
}

/// Reads the whole region back and checks every block against what it may hold: exactly the flushed content, or
/// one of the contents written since (or before) that were never flushed. Each block then holds what was read.
/// Returns how many blocks hold content that was never flushed.
fn verify(nbd: &mut Nbd, candidates: &mut [Vec<Vec<u8>>], iteration: usize) -> usize {
    let data = nbd.read(0, BLOCKS * BLOCK);
    let mut unflushed = 0;
    for (index, (block, possible)) in data.chunks_exact(BLOCK).zip(candidates.iter_mut()).enumerate() {
        if !possible.iter().any(|c| c == block) {
            let flushed = possible.len() == 1;
            panic!(
                "iteration {iteration}: block {index} holds none of its {} possible contents ({}); first bytes {:02x?}",
                possible.len(),
                if flushed { "a flushed block lost its content" } else { "torn or garbled" },
                &block[..16],
            );
        }
        unflushed += usize::from(possible[0] != block);
        *possible = vec![block.to_vec()];
    }
    unflushed
}

/// The files under `dir` that contain `needle`, by GNU grep, which skips the holes of sparse files: reading the
/// 10 GiB volume file through its holes takes 10 to 30 s here and fills the page cache with zeros.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let out = std::process::Command::new("grep")
        .env("LC_ALL", "C")
        .args(["-rlF", "--", needle])
        .arg(dir)
        .output()
        .expect("grep runs");
    match out.status.code() {
        Some(0) => String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect(),
        Some(1) => Vec::new(),
        _ => panic!("grep {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr)),
    }
}

/// `kill -9` at random points of writes to an encrypted volume, 100 times, restarting on the same data dir each
/// time: every flushed block reads back exactly (I1), every unflushed one as its old or new content (I2); the
/// volume is exported again at each start; no plaintext reaches the disk.
#[test]
fn kill_9_during_volume_writes_loses_nothing_flushed() {
    let total = Instant::now();
    let dir = crate::common::private_dir();
    let iterations: usize = std::env::var("KMSIM_KILL_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let seed: u64 = std::env::var("KMSIM_EVS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    println!("evs_durability: seed {seed} (KMSIM_EVS_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);

    let (mut child, edge, nbd_addr, _) = spawn(dir.path());
    let kms = format!("/v1.0/{PROJECT}/kms/create-key");
    let key_id = ok(edge, "POST", &kms, json!({"key_alias": "evs-durability"}))["key_info"]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let volume = json!({"volume": {
        "size": 10, "volume_type": "SSD", "availability_zone": "az1", "name": "durable",
        "metadata": {"__system__encrypted": "1", "__system__cmkid": key_id},
    }});
    let job = ok(edge, "POST", &format!("/v2/{PROJECT}/cloudvolumes"), volume);
    let volume_id = wait_for_job(edge, job["job_id"].as_str().unwrap())["volume_id"].as_str().unwrap().to_owned();
    let attach = json!({"volumeAttachment": {"volumeId": volume_id}});
    let job = ok(edge, "POST", &format!("/v1/{PROJECT}/cloudservers/srv/attachvolume"), attach);
    wait_for_job(edge, job["job_id"].as_str().unwrap());

    // Known contents everywhere in the region, and a plaintext marker after it; all flushed.
    let mut nbd = Nbd::connect(nbd_addr, &volume_id);
    assert_eq!(nbd.size, 10 << 30);
    let mut candidates: Vec<Vec<Vec<u8>>> = (0..BLOCKS).map(|_| vec![random_block(&mut rng)]).collect();
    nbd.write(0, &candidates.concat().concat());
    let marker = format!("kmsim-evs-plaintext-marker-{:016x}", rng.r#gen::<u64>());
    let marker_block: Vec<u8> = marker.bytes().cycle().take(BLOCK).collect();
    nbd.write((BLOCKS * BLOCK) as u64, &marker_block);
    nbd.flush();

    let mut startups = Vec::new();
    let (mut flushed_writes, mut unflushed_writes, mut partial_writes, mut survived) = (0, 0, 0, 0);
    for iteration in 0..iterations {
        // A few writes to distinct blocks, each answered, then a FLUSH: from its reply on, they are durable.
        let count = rng.gen_range(1..=8);
        let blocks: BTreeSet<usize> = (0..count).map(|_| rng.gen_range(0..BLOCKS)).collect();
        for &index in &blocks {
            let content = random_block(&mut rng);
            nbd.write((index * BLOCK) as u64, &content);
            candidates[index] = vec![content];
        }
        nbd.flush();
        flushed_writes += blocks.len();

        // More writes, pipelined and never flushed (some may hit the blocks just flushed); then kill -9 right
        // away, after some of their replies, or in the middle of one more request.
        let unflushed = rng.gen_range(0..=24);
        for _ in 0..unflushed {
            let index = rng.gen_range(0..BLOCKS);
            let content = random_block(&mut rng);
            nbd.send(CMD_WRITE, (index * BLOCK) as u64, BLOCK as u32, &content);
            candidates[index].push(content);
        }
        unflushed_writes += unflushed;
        match rng.gen_range(0..3) {
            0 => {}
            1 => {
                for _ in 0..rng.gen_range(0..=unflushed) {
                    assert_eq!(nbd.reply().1, 0, "an unflushed WRITE failed");
                }
            }
            _ => {
                // A WRITE whose payload never arrives in full must not be applied at all: its content is not
                // among the candidates.
                let index = rng.gen_range(0..BLOCKS);
                let content = random_block(&mut rng);
                let mut request = Vec::new();
                request.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
                request.extend_from_slice(&0u16.to_be_bytes());
                request.extend_from_slice(&CMD_WRITE.to_be_bytes());
                request.extend_from_slice(&u64::MAX.to_be_bytes());
                request.extend_from_slice(&((index * BLOCK) as u64).to_be_bytes());
                request.extend_from_slice(&(BLOCK as u32).to_be_bytes());
                request.extend_from_slice(&content);
                let cut = rng.gen_range(1..request.len());
                nbd.stream.write_all(&request[..cut]).unwrap();
                partial_writes += 1;
            }
        }
        child.kill();
        drop(nbd);

        // Restart: the volume is exported again (on a new NBD port) without re-attaching.
        let (next, next_edge, next_nbd, startup) = spawn(dir.path());
        child = next;
        startups.push(startup);
        nbd = Nbd::connect(next_nbd, &volume_id);
        survived += verify(&mut nbd, &mut candidates, iteration);
        assert_eq!(nbd.read((BLOCKS * BLOCK) as u64, BLOCK), marker_block, "iteration {iteration}: the marker");
        if iteration + 1 == iterations {
            let shown = ok(next_edge, "GET", &format!("/v2/{PROJECT}/cloudvolumes/{volume_id}"), Value::Null);
            assert_eq!(shown["volume"]["status"], "in-use", "{shown}");
            assert_eq!(shown["volume"]["attachments"][0]["server_id"], "srv", "{shown}");
        }
    }
    nbd.disconnect();
    child.kill();

    // The plaintext never reached the disk, and no temporary files remain beside the volume.
    let scan = Instant::now();
    let leaked = files_containing(dir.path(), &marker);
    let scan_time = scan.elapsed();
    assert!(leaked.is_empty(), "the plaintext marker is in {leaked:?}");
    // The search does see data past a hole: the marker after 1 GiB of hole in a sparse file is found.
    let control = crate::common::private_dir();
    let sparse = std::fs::File::create(control.path().join("sparse")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &marker_block, 1 << 30).unwrap();
    assert_eq!(files_containing(control.path(), &marker).len(), 1, "the marker search finds a planted marker");
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [format!("{volume_id}.img"), format!("{volume_id}.json")]);

    startups.sort();
    let ms = |d: Duration| d.as_millis();
    println!(
        "evs_durability: {iterations} kills; {flushed_writes} flushed, {unflushed_writes} unflushed, {partial_writes} \
         partial writes; {survived} blocks kept unflushed content; restart to JSON line min {} / median {} / max {} \
         ms; marker scan {:.1} s; total {:.1} s",
        startups.first().copied().map_or(0, ms),
        startups.get(startups.len() / 2).copied().map_or(0, ms),
        startups.last().copied().map_or(0, ms),
        scan_time.as_secs_f64(),
        total.elapsed().as_secs_f64(),
    );
}

/// A volume record and a snapshot record that no longer parse (damage, or a record format a later version cannot
/// read) are set aside at start-up — the volume and the snapshot are no longer listed — but their data is kept,
/// across further restarts too: data is never removed for want of a readable record.
#[test]
fn unreadable_records_keep_their_data() {
    set_aside_at_start(|volume_record, snapshot_record| {
        std::fs::write(volume_record, b"{\"id\": damaged").unwrap();
        std::fs::write(snapshot_record, b"[damaged").unwrap();
    });
}

/// Records that parse but carry a `format` this build does not read (here 2, as a later version might write) are
/// set aside like damaged ones, not read as if they were format 1.
#[test]
fn records_of_an_unknown_format_are_set_aside_and_their_data_kept() {
    set_aside_at_start(|volume_record, snapshot_record| {
        for path in [volume_record, snapshot_record] {
            let mut record: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            assert_eq!(record["format"], 1, "{record}");
            record["format"] = json!(2);
            std::fs::write(path, serde_json::to_vec(&record).unwrap()).unwrap();
        }
    });
}

/// A volume record whose size no API call can give (an altered record, or an altered state archive) is set aside
/// at start-up rather than opened: its size in bytes would overflow.
#[test]
fn a_volume_record_of_an_impossible_size_is_set_aside() {
    set_aside_at_start(|volume_record, snapshot_record| {
        let mut record: Value = serde_json::from_slice(&std::fs::read(volume_record).unwrap()).unwrap();
        record["size_gb"] = json!(1_000_000_000_000_000u64);
        std::fs::write(volume_record, serde_json::to_vec(&record).unwrap()).unwrap();
        std::fs::write(snapshot_record, b"[damaged").unwrap();
    });
}

/// Creates a volume and a snapshot of it, stops the server, applies `damage` to their record files, then checks
/// over two restarts that both are set aside (not listed) and that their data is kept.
fn set_aside_at_start(damage: impl Fn(&Path, &Path)) {
    let dir = crate::common::private_dir();
    let (mut child, edge, _, _) = spawn(dir.path());
    let volume = json!({"volume": {"size": 10, "volume_type": "SSD", "availability_zone": "az1", "name": "kept"}});
    let job = ok(edge, "POST", &format!("/v2/{PROJECT}/cloudvolumes"), volume);
    let volume_id = wait_for_job(edge, job["job_id"].as_str().unwrap())["volume_id"].as_str().unwrap().to_owned();
    let snapshot_id = snapshot_of(edge, &volume_id);
    child.kill();

    let volume_file = dir.path().join(format!("volumes/{volume_id}.img"));
    let snapshot_file = dir.path().join(format!("objects/snapshots/{snapshot_id}.img"));
    assert!(volume_file.exists() && snapshot_file.exists());
    damage(
        &dir.path().join(format!("volumes/{volume_id}.json")),
        &dir.path().join(format!("objects/snapshots/{snapshot_id}.json")),
    );

    for start in 0..2 {
        let (mut child, edge, _, _) = spawn(dir.path());
        let volume = call(edge, "GET", &format!("/v2/{PROJECT}/cloudvolumes/{volume_id}"), &Value::Null);
        assert_eq!(volume.status, 404, "start {start}: {}", volume.body);
        let snapshot = call(edge, "GET", &format!("/v2/{PROJECT}/cloudsnapshots/{snapshot_id}"), &Value::Null);
        assert_eq!(snapshot.status, 404, "start {start}: {}", snapshot.body);
        assert!(volume_file.exists(), "start {start}: the volume's data was removed");
        assert!(snapshot_file.exists(), "start {start}: the snapshot's data was removed");
        assert!(dir.path().join(format!("volumes/{volume_id}.json.unreadable")).exists());
        child.kill();
    }
}

/// A job whose closing record write fails (here: a directory where the record's temporary file goes) leaves the
/// volume in error — deletable — not in its passing status until a restart; its durable record is unchanged.
#[test]
fn a_failed_record_write_leaves_the_volume_in_error_not_stuck() {
    let dir = crate::common::private_dir();
    let (_child, edge, _, _) = spawn(dir.path());
    let volume = json!({"volume": {"size": 10, "volume_type": "SSD", "availability_zone": "az1", "name": "stuck"}});
    let job = ok(edge, "POST", &format!("/v2/{PROJECT}/cloudvolumes"), volume);
    let volume_id = wait_for_job(edge, job["job_id"].as_str().unwrap())["volume_id"].as_str().unwrap().to_owned();

    let blocker = dir.path().join(format!("volumes/{volume_id}.tmp"));
    std::fs::create_dir(&blocker).unwrap();
    let extend = json!({"os-extend": {"new_size": 20}});
    let job = ok(edge, "POST", &format!("/v2/{PROJECT}/cloudvolumes/{volume_id}/action"), extend);
    let job_id = job["job_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = ok(edge, "GET", &format!("/v1/{PROJECT}/jobs/{job_id}"), Value::Null);
        if matches!(job["status"].as_str(), Some("SUCCESS" | "FAIL")) {
            break job;
        }
        assert!(Instant::now() < deadline, "job {job_id} still not done: {job}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(job["status"], "FAIL", "{job}");
    let shown = ok(edge, "GET", &format!("/v2/{PROJECT}/cloudvolumes/{volume_id}"), Value::Null);
    assert_eq!((shown["volume"]["status"].as_str(), shown["volume"]["size"].as_u64()), (Some("error"), Some(10)));
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("volumes/{volume_id}.json"))).unwrap()).unwrap();
    assert_eq!(record["size_gb"], 10, "{record}");

    std::fs::remove_dir(&blocker).unwrap();
    let job = ok(edge, "DELETE", &format!("/v2/{PROJECT}/cloudvolumes/{volume_id}"), Value::Null);
    wait_for_job(edge, job["job_id"].as_str().unwrap());
    let gone = call(edge, "GET", &format!("/v2/{PROJECT}/cloudvolumes/{volume_id}"), &Value::Null);
    assert_eq!(gone.status, 404, "{}", gone.body);
}

/// `POST /_sim/reset` on a data dir resets every service at once: keys, buckets and objects, volumes
/// (attached ones too) and snapshots, the audit; nothing is left on disk that refers to a key that is gone,
/// and a restart finds the same empty state.
#[test]
fn a_confirmed_reset_empties_every_service_on_disk_too() {
    let dir = crate::common::private_dir();
    let (child, line) = spawn_binary_line(dir.path());
    let mut child = Kmsim(child);
    let edge: SocketAddr = line["endpoint"].as_str().unwrap().trim_start_matches("http://").parse().unwrap();
    let token = line["admin_token"].as_str().unwrap().to_owned();
    let kms = format!("/v1.0/{PROJECT}/kms/create-key");
    let key_id =
        ok(edge, "POST", &kms, json!({"key_alias": "before-reset"}))["key_info"]["key_id"].as_str().unwrap().to_owned();
    let volume = json!({"volume": {
        "size": 10, "volume_type": "SSD", "availability_zone": "az1", "name": "before-reset",
        "metadata": {"__system__encrypted": "1", "__system__cmkid": key_id},
    }});
    let job = ok(edge, "POST", &format!("/v2/{PROJECT}/cloudvolumes"), volume);
    let volume_id = wait_for_job(edge, job["job_id"].as_str().unwrap())["volume_id"].as_str().unwrap().to_owned();
    snapshot_of(edge, &volume_id);
    let attach = json!({"volumeAttachment": {"volumeId": volume_id}});
    let job = ok(edge, "POST", &format!("/v1/{PROJECT}/cloudservers/srv/attachvolume"), attach);
    wait_for_job(edge, job["job_id"].as_str().unwrap());
    // A bucket and an SSE-KMS object under the key, through the OBS dialect's bucket creation by S3 path.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let endpoint = format!("http://{edge}");
    runtime.block_on(async {
        let s3 = crate::common::s3_client_at(&endpoint);
        s3.create_bucket().bucket("before-reset").send().await.unwrap();
        s3.put_object()
            .bucket("before-reset")
            .key("object")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"data"))
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .ssekms_key_id(&key_id)
            .send()
            .await
            .unwrap();
    });

    let head = |extra: &[(&str, &str)]| {
        let mut head =
            vec![("host".to_owned(), edge.to_string()), ("authorization".to_owned(), format!("Bearer {token}"))];
        head.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        head
    };
    let json = [("content-type", "application/json")];
    let refused = raw_request_to(edge, "POST", "/_sim/reset", &head(&json), b"{}");
    assert_eq!(refused.status, 400, "{}", refused.body);
    let reset = raw_request_to(edge, "POST", "/_sim/reset", &head(&json), br#"{"confirm":"delete-everything"}"#);
    assert_eq!(reset.status, 200, "{}", reset.body);

    let assert_empty = |edge: SocketAddr| {
        let volumes = ok(edge, "GET", &format!("/v2/{PROJECT}/cloudvolumes/detail"), Value::Null);
        assert_eq!(volumes["volumes"], json!([]), "{volumes}");
        let snapshots = ok(edge, "GET", &format!("/v2/{PROJECT}/cloudsnapshots/detail"), Value::Null);
        assert_eq!(snapshots["snapshots"], json!([]), "{snapshots}");
        let keys = ok(edge, "POST", &format!("/v1.0/{PROJECT}/kms/list-keys"), json!({}));
        assert_eq!(keys["keys"], json!([]), "{keys}");
        let endpoint = format!("http://{edge}");
        let buckets = runtime.block_on(crate::common::s3_client_at(&endpoint).list_buckets().send()).unwrap();
        assert!(buckets.buckets().is_empty(), "{buckets:?}");
        let files: Vec<String> = walk(&dir.path().join("volumes")).chain(walk(&dir.path().join("objects"))).collect();
        assert!(files.is_empty(), "files left after the reset: {files:?}");
    };
    assert_empty(edge);
    let audit = raw_request_to(edge, "GET", "/_sim/audit", &head(&[]), b"");
    let events: Value = serde_json::from_str(&audit.body).unwrap();
    // The list-keys and list-buckets calls just made are the only events since the reset.
    assert!(events["events"].as_array().unwrap().iter().all(|e| e["operation"] == "list-keys"), "{events}");
    child.kill();

    let (child, line) = spawn_binary_line(dir.path());
    let _child = Kmsim(child);
    assert_empty(line["endpoint"].as_str().unwrap().trim_start_matches("http://").parse().unwrap());
}

/// Every file below `dir` (none when it does not exist).
fn walk(dir: &Path) -> Box<dyn Iterator<Item = String>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Box::new(std::iter::empty()) };
    Box::new(entries.flat_map(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() { walk(&path) } else { Box::new(std::iter::once(path.display().to_string())) }
    }))
}
