//! Slow-client load on the edge listener (a `harness = false` bench target): many connections
//! trickling an endless request head, the server's memory, and whether others are still served.
//!
//! `edge_slow_clients [--kmsim PATH] [--label NAME] [--connections N] [--head-bytes B]
//! [--chunk B] [--interval-ms MS] [--seconds S] [--server-nofile N]` starts `PATH --in-memory
//! --port 0 --log warn` (default `target/release/kmsim`, with its default limits; under
//! `ulimit -n N` if given), reads its endpoint from the JSON line it prints, and then for S
//! seconds (default 15) runs N clients (default 2000). Each connects, sends `GET /_sim/health
//! HTTP/1.1`, `host` and an `x-pad:` header whose value grows by CHUNK bytes (default 4096) every
//! MS milliseconds (default 100) up to B bytes (default 307200, 300 KB), and never ends the head;
//! once B bytes are sent it holds the connection open (with B = 0 it sends nothing: an idle
//! connection). When the server answers (`431`) or closes, the client connects again. Meanwhile:
//!
//! - the server's `VmRSS` is read from `/proc/PID/status` every 50 ms (before: after one request;
//!   peak: the highest sample; `VmHWM` at the end);
//! - a client that opened a keep-alive connection before the load sends a health request every
//!   500 ms on it (reconnecting if the server closed it), and another client sends one every
//!   500 ms on a fresh connection (each waiting up to 60 s): their latencies and failures show
//!   whether established and new clients are still served.
//!
//! Prints one JSON line with the figures on stdout. Needs about N + 100 descriptors for itself
//! (`scripts/bench-edge` raises `ulimit -n`). Unknown flags (cargo passes `--bench`) are ignored.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

const HEALTH: &[u8] = b"GET /_sim/health HTTP/1.1\r\nhost: kmsim\r\n\r\n";
const MIB: f64 = (1 << 20) as f64;

#[derive(Debug, Clone)]
struct Options {
    kmsim: String,
    label: String,
    connections: usize,
    head_bytes: usize,
    chunk: usize,
    interval: Duration,
    seconds: u64,
    server_nofile: Option<u64>,
}

fn parse_args() -> Options {
    let mut opts = Options {
        kmsim: "target/release/kmsim".into(),
        label: "kmsim".into(),
        connections: 2000,
        head_bytes: 300 * 1024,
        chunk: 4096,
        interval: Duration::from_millis(100),
        seconds: 15,
        server_nofile: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = || value.parse::<u64>().unwrap_or_else(|_| panic!("{} needs a number", args[i]));
        match args[i].as_str() {
            "--kmsim" => opts.kmsim = value.clone(),
            "--label" => opts.label = value.clone(),
            "--connections" => opts.connections = number() as usize,
            "--head-bytes" => opts.head_bytes = number() as usize,
            "--chunk" => opts.chunk = number().max(1) as usize,
            "--interval-ms" => opts.interval = Duration::from_millis(number()),
            "--seconds" => opts.seconds = number(),
            "--server-nofile" => opts.server_nofile = Some(number()),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    opts
}

/// What the slow clients saw.
#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    open: AtomicU64,
    max_open: AtomicU64,
    refused_431: AtomicU64,
    closed: AtomicU64,
    bytes_sent: AtomicU64,
}

fn kib_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// (VmRSS, VmHWM) of `pid` in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (kib_field(&status, "VmRSS:").unwrap_or(0) * 1024, kib_field(&status, "VmHWM:").unwrap_or(0) * 1024)
}

fn start_server(opts: &Options) -> (Child, SocketAddr) {
    use std::io::BufRead;
    let mut command = match opts.server_nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.args(["-c", "ulimit -n \"$0\" && exec \"$@\"", &n.to_string(), &opts.kmsim]);
            c
        }
        None => Command::new(&opts.kmsim),
    };
    let mut child = command
        .args(["--in-memory", "--port", "0", "--log", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", opts.kmsim));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a JSON line");
    let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    let endpoint = value["endpoint"].as_str().expect("an endpoint");
    (child, endpoint.trim_start_matches("http://").parse().expect("host:port"))
}

/// Reads one response head and its `content-length` body; returns the status.
async fn read_response(stream: &mut TcpStream) -> std::io::Result<u16> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            let mut have = data.len() - end - 4;
            while have < length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                have += n;
            }
            return Ok(head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&chunk[..n]);
    }
}

async fn slow_client(addr: SocketAddr, opts: Arc<Options>, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let filler = vec![b'a'; opts.chunk];
    while !stop.load(Ordering::Relaxed) {
        let stream = match timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            _ => {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                sleep(opts.interval).await;
                continue;
            }
        };
        counters.connects.fetch_add(1, Ordering::Relaxed);
        let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
        counters.max_open.fetch_max(open, Ordering::Relaxed);
        let (mut reader, mut writer) = stream.into_split();
        let trickle = async {
            if opts.head_bytes > 0 {
                writer.write_all(b"GET /_sim/health HTTP/1.1\r\nhost: kmsim\r\nx-pad: ").await?;
            }
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                if sent < opts.head_bytes {
                    writer.write_all(&filler).await?;
                    sent += filler.len();
                    counters.bytes_sent.fetch_add(filler.len() as u64, Ordering::Relaxed);
                }
                sleep(opts.interval).await;
            }
            Ok::<(), std::io::Error>(())
        };
        let mut answer = [0u8; 16];
        tokio::select! {
            _ = trickle => {}
            read = reader.read(&mut answer) => match read {
                Ok(n) if answer[..n].starts_with(b"HTTP/1.1 431") => {
                    counters.refused_431.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    counters.closed.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
        counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some(sorted[at])
}

fn main() {
    let opts = Arc::new(parse_args());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (mut child, addr) = start_server(&opts);
    let pid = child.id();
    let result = runtime.block_on(run(addr, pid, opts.clone()));
    let _ = child.kill();
    let _ = child.wait();
    println!("{result}");
}

async fn run(addr: SocketAddr, pid: u32, opts: Arc<Options>) -> serde_json::Value {
    // One keep-alive client before the load; its first answer also warms the server.
    let mut established = TcpStream::connect(addr).await.expect("connect");
    established.write_all(HEALTH).await.expect("write");
    assert_eq!(read_response(&mut established).await.expect("a response"), 200);
    let (rss_before, _) = memory(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..opts.connections {
        clients.spawn(slow_client(addr, opts.clone(), stop.clone(), counters.clone()));
    }
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(memory(pid).0);
                sleep(Duration::from_millis(50)).await;
            }
            peak.max(memory(pid).0)
        })
    };
    let started = Instant::now();
    let end = started + Duration::from_secs(opts.seconds);
    // The two probes run side by side, each every 500 ms: a keep-alive connection opened before
    // the load (reopened if the server closes it), and a fresh connection each time.
    let kept_alive = tokio::spawn(async move {
        let (mut ms, mut failures) = (Vec::new(), 0u64);
        let mut established = Some(established);
        while Instant::now() < end {
            sleep(Duration::from_millis(500)).await;
            let t = Instant::now();
            let probe = async {
                let stream = match established.as_mut() {
                    Some(stream) => stream,
                    None => established.insert(TcpStream::connect(addr).await?),
                };
                stream.write_all(HEALTH).await?;
                read_response(stream).await
            };
            match timeout(Duration::from_secs(60), probe).await {
                Ok(Ok(200)) => ms.push(t.elapsed().as_secs_f64() * 1e3),
                _ => {
                    failures += 1;
                    established = None;
                }
            }
        }
        (ms, failures)
    });
    let fresh = tokio::spawn(async move {
        let (mut ms, mut failures) = (Vec::new(), 0u64);
        while Instant::now() < end {
            sleep(Duration::from_millis(500)).await;
            let t = Instant::now();
            let probe = async {
                let mut stream = TcpStream::connect(addr).await?;
                stream.write_all(HEALTH).await?;
                read_response(&mut stream).await
            };
            match timeout(Duration::from_secs(60), probe).await {
                Ok(Ok(200)) => ms.push(t.elapsed().as_secs_f64() * 1e3),
                _ => failures += 1,
            }
        }
        (ms, failures)
    });
    let (mut kept_alive_ms, kept_alive_failures) = kept_alive.await.expect("probe");
    let (mut fresh_ms, fresh_failures) = fresh.await.expect("probe");
    stop.store(true, Ordering::Relaxed);
    let rss_peak = sampler.await.expect("sampler");
    clients.shutdown().await;
    let (rss_after, hwm) = memory(pid);
    kept_alive_ms.sort_by(f64::total_cmp);
    fresh_ms.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "bench": "edge_slow_clients",
        "target": opts.label,
        "connections": opts.connections,
        "head_bytes": opts.head_bytes,
        "chunk_bytes": opts.chunk,
        "interval_ms": opts.interval.as_millis() as u64,
        "server_nofile": opts.server_nofile,
        "seconds": started.elapsed().as_secs_f64(),
        "rss_before_mib": rss_before as f64 / MIB,
        "rss_peak_mib": rss_peak as f64 / MIB,
        "rss_growth_mib": rss_peak.saturating_sub(rss_before) as f64 / MIB,
        "rss_after_mib": rss_after as f64 / MIB,
        "vm_hwm_mib": hwm as f64 / MIB,
        "slow_connects": counters.connects.load(Ordering::Relaxed),
        "slow_connect_failures": counters.connect_failures.load(Ordering::Relaxed),
        "slow_max_open": counters.max_open.load(Ordering::Relaxed),
        "slow_refused_431": counters.refused_431.load(Ordering::Relaxed),
        "slow_closed": counters.closed.load(Ordering::Relaxed),
        "slow_bytes_sent_mib": counters.bytes_sent.load(Ordering::Relaxed) as f64 / MIB,
        "kept_alive_answered": kept_alive_ms.len(),
        "kept_alive_failed": kept_alive_failures,
        "kept_alive_p50_ms": percentile(&kept_alive_ms, 0.5),
        "kept_alive_max_ms": kept_alive_ms.last(),
        "fresh_answered": fresh_ms.len(),
        "fresh_failed": fresh_failures,
        "fresh_p50_ms": percentile(&fresh_ms, 0.5),
        "fresh_max_ms": fresh_ms.last(),
    });
    eprintln!(
        "[{}] {} slow clients x {} B: RSS {:.1} -> peak {:.1} MiB (+{:.1}), {} connects, {} x 431, {} closed; \
         kept-alive client {}/{} answered (p50 {:?} ms), new connections {}/{} answered (p50 {:?} ms, max {:?} ms)",
        opts.label,
        opts.connections,
        opts.head_bytes,
        rss_before as f64 / MIB,
        rss_peak as f64 / MIB,
        rss_peak.saturating_sub(rss_before) as f64 / MIB,
        counters.connects.load(Ordering::Relaxed),
        counters.refused_431.load(Ordering::Relaxed),
        counters.closed.load(Ordering::Relaxed),
        kept_alive_ms.len(),
        kept_alive_ms.len() as u64 + kept_alive_failures,
        percentile(&kept_alive_ms, 0.5).map(|v| v.round()),
        fresh_ms.len(),
        fresh_ms.len() as u64 + fresh_failures,
        percentile(&fresh_ms, 0.5).map(|v| v.round()),
        fresh_ms.last().map(|v| v.round()),
    );
    out
}
