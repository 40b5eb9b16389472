//! Memory the NBD server holds for clients that do not collect their replies: bounded across all connections
//! while they are open (the shared byte budget), and given back to the operating system once they close. A test
//! binary of its own, so that the process's resident set is this test's alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evs::nbd::{self, ExportTable, Exports, FileDevice};

const MIB: u64 = 1 << 20;

/// The process's resident set, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Connects and negotiates `export` with `NBD_OPT_EXPORT_NAME`.
fn connect(addr: SocketAddr, export: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut greeting = [0; 18];
    stream.read_exact(&mut greeting).unwrap();
    stream.write_all(&3_u32.to_be_bytes()).unwrap();
    let mut option = Vec::new();
    option.extend_from_slice(&0x4948_4156_454f_5054_u64.to_be_bytes());
    option.extend_from_slice(&1_u32.to_be_bytes());
    option.extend_from_slice(&(export.len() as u32).to_be_bytes());
    option.extend_from_slice(export.as_bytes());
    stream.write_all(&option).unwrap();
    let mut answer = [0; 10];
    stream.read_exact(&mut answer).unwrap();
    stream
}

fn read_request(handle: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut header = Vec::with_capacity(28);
    header.extend_from_slice(&0x2560_9513_u32.to_be_bytes());
    header.extend_from_slice(&0_u16.to_be_bytes());
    header.extend_from_slice(&0_u16.to_be_bytes());
    header.extend_from_slice(&handle.to_be_bytes());
    header.extend_from_slice(&offset.to_be_bytes());
    header.extend_from_slice(&len.to_be_bytes());
    header
}

/// Waits (bounded) until the resident set has not grown for a while; returns the highest value seen.
fn settled_rss(within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let (mut peak, mut since) = (rss(), Instant::now());
    while Instant::now() < deadline && since.elapsed() < Duration::from_millis(700) {
        std::thread::sleep(Duration::from_millis(50));
        let now = rss();
        if now > peak + MIB {
            (peak, since) = (now, Instant::now());
        }
    }
    peak
}

/// A server on an ephemeral port exporting `vol` (64 MiB of data) within `limits`.
struct Served {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(runtime: &tokio::runtime::Runtime, limits: nbd::Limits) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("volume");
        let device = FileDevice::create(&path, 64 * MIB).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[0x5a; 4096], 0).unwrap();
        let exports = Arc::new(ExportTable::new());
        exports.insert("vol", Arc::new(device));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served: Arc<dyn Exports> = exports;
        let task = runtime.spawn(nbd::serve_with(listener, served, limits, async {
            let _ = stopped.await;
        }));
        Served { addr, stop: Some(stop), task: Some(task), _dir: dir }
    }

    fn stop(&mut self, runtime: &tokio::runtime::Runtime) {
        let _ = self.stop.take().unwrap().send(());
        runtime.block_on(self.task.take().unwrap()).unwrap();
    }
}

/// 12 clients each ask for four 32 MiB reads and take none of the replies.
fn greedy_clients(addr: SocketAddr) -> Vec<TcpStream> {
    (0..12)
        .map(|_| {
            let mut client = connect(addr, "vol");
            let mut burst = Vec::new();
            for handle in 0..4 {
                burst.extend(read_request(handle, (handle % 2) * 32 * MIB, 32 << 20));
            }
            client.write_all(&burst).unwrap();
            client
        })
        .collect()
}

/// Waits (bounded) until the resident set is back within `slack` of `baseline`; returns it.
fn returned_rss(baseline: u64, slack: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut now = rss();
    while Instant::now() < deadline && now > baseline + slack {
        std::thread::sleep(Duration::from_millis(50));
        now = rss();
    }
    now
}

/// One test (this binary's only one), so that nothing else moves the resident set meanwhile.
#[test]
fn uncollected_reads_are_bounded_across_connections_and_their_memory_returns() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // Clients that close their connections.
    let mut server = Served::start(&runtime, nbd::Limits::default());
    let baseline = rss();
    let clients = greedy_clients(server.addr);
    let peak = settled_rss(Duration::from_secs(10));
    drop(clients);
    let after = returned_rss(baseline, 16 * MIB, Duration::from_secs(5));
    eprintln!("RSS: baseline {} MiB, peak {} MiB, after close {} MiB", baseline / MIB, peak / MIB, after / MIB);
    server.stop(&runtime);
    // The defaults: 256 MiB in flight across connections, 64 MiB of kept buffers; before the shared budget,
    // each connection held 64 MiB (12 connections: over 770 MiB).
    let bound = (nbd::DEFAULT_MAX_BYTES_IN_FLIGHT + nbd::DEFAULT_MAX_KEPT_BUFFER_BYTES) as u64 + 32 * MIB;
    assert!(peak <= baseline + bound, "{} MiB held for 12 connections", (peak - baseline) / MIB);
    assert!(after <= baseline + 16 * MIB, "memory kept after the connections closed: {} MiB", (after - baseline) / MIB);

    // Clients that stop sending (half-close) but keep their connections open and never read: dropped once
    // their replies have stalled for `reply_timeout`, and what they held is released.
    let limits = nbd::Limits { reply_timeout: Duration::from_secs(2), ..nbd::Limits::default() };
    let mut server = Served::start(&runtime, limits);
    let baseline = rss();
    let clients = greedy_clients(server.addr);
    for client in &clients {
        client.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let held = settled_rss(Duration::from_secs(10));
    assert!(held > baseline + 64 * MIB, "the stalled clients held only {} MiB", (held - baseline) / MIB);
    let after = returned_rss(baseline, 16 * MIB, Duration::from_secs(10));
    eprintln!(
        "RSS with half-closed clients: baseline {} MiB, held {} MiB, later {} MiB",
        baseline / MIB,
        held / MIB,
        after / MIB
    );
    assert!(after <= baseline + 16 * MIB, "memory held for stalled clients: {} MiB", (after - baseline) / MIB);
    drop(clients);
    server.stop(&runtime);
}
