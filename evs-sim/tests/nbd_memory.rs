//! Memory the NBD server holds for clients that do not collect their replies: bounded across all connections
//! while they are open (the shared byte budget), and given back to the operating system once they close. A test
//! binary of its own, so that the process's resident set is this test's alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evs_sim::nbd::{self, ExportTable, Exports, FileDevice};

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

#[test]
fn uncollected_reads_are_bounded_across_connections_and_their_memory_returns() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("volume");
    let device = FileDevice::create(&path, 64 * MIB).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&vec![0x5a; 64 * MIB as usize], 0).unwrap();
    }
    let exports = Arc::new(ExportTable::new());
    exports.insert("vol", Arc::new(device));
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served: Arc<dyn Exports> = exports;
    let server = runtime.spawn(nbd::serve(listener, served, async {
        let _ = stopped.await;
    }));

    let baseline = rss();
    let mut clients = Vec::new();
    for _ in 0..12 {
        let mut client = connect(addr, "vol");
        let mut burst = Vec::new();
        for handle in 0..4 {
            burst.extend(read_request(handle, (handle % 2) * 32 * MIB, 32 << 20));
        }
        client.write_all(&burst).unwrap();
        clients.push(client);
    }
    let peak = settled_rss(Duration::from_secs(10));
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = rss();
    while Instant::now() < deadline && after > baseline + 16 * MIB {
        std::thread::sleep(Duration::from_millis(50));
        after = rss();
    }
    eprintln!("RSS: baseline {} MiB, peak {} MiB, after close {} MiB", baseline / MIB, peak / MIB, after / MIB);
    let _ = stop.send(());
    runtime.block_on(server).unwrap();
    // The defaults: 256 MiB in flight across connections, 64 MiB of kept buffers; before the shared budget,
    // each connection held 64 MiB (12 connections: over 770 MiB).
    let bound = (nbd::DEFAULT_MAX_BYTES_IN_FLIGHT + nbd::DEFAULT_MAX_KEPT_BUFFER_BYTES) as u64 + 32 * MIB;
    assert!(peak <= baseline + bound, "{} MiB held for 12 connections", (peak - baseline) / MIB);
    assert!(after <= baseline + 16 * MIB, "memory kept after the connections closed: {} MiB", (after - baseline) / MIB);
}
