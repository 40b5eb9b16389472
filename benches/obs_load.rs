//! S3 (object store) load generator for kmsim and its peers (a `harness = false` bench target).
//!
//! Every request is a path-style S3 request (`http://HOST:PORT/bucket/key`), SigV4-signed for
//! service `s3` (access key `test`/`test`, `us-east-1`) with `x-amz-content-sha256:
//! UNSIGNED-PAYLOAD`. Bodies are streamed from a repeating pseudo-random buffer of 1,048,573 bytes
//! (a period that is not a power of two, so a byte at the wrong offset shows), so the client never
//! holds an object in memory; GET bodies are counted (and, where said, compared with the pattern)
//! and discarded. Each mode prints JSON lines on stdout:
//!
//! - `throughput --endpoint URL [--size BYTES] [--rounds N] [--server-pid PID] [--target NAME]`:
//!   one bucket, one connection; per round a PUT and a GET of a SIZE-byte object with SSE-KMS
//!   (`x-amz-server-side-encryption: aws:kms`) and of one without, the order alternating between
//!   rounds. Round 0 is a warm-up whose GET bodies are checked byte by byte; it is not printed.
//!   One line per operation: bytes, seconds, MiB/s and the server's CPU seconds.
//! - `small-put --endpoint URL [--size BYTES] [--seconds N] [--warmup S] [--connections C]
//!   [--no-sse] [--server-pid PID] [--target NAME]`: C workers, each with its own keep-alive
//!   connection (a new one whenever the server closes it), PUT SIZE-byte objects under fresh keys
//!   for N seconds after S seconds of warm-up. One line: calls/s, errors, latency percentiles,
//!   server CPU per call. `--versioned` turns the bucket's versioning on first; `--overwrite`
//!   has each worker PUT one key of its own again and again instead of fresh keys, `--one-key`
//!   has every worker PUT the same key.
//! - `big-put --endpoint URL [--size BYTES] --server-pid PID [--target NAME] [--get-back]`: one
//!   SSE-KMS PUT of SIZE bytes; reports the server's `VmHWM` (peak RSS) from
//!   `/proc/PID/status` before and after (start a fresh server so the peak is this upload's), and
//!   with `--get-back` downloads and checks the object and reports the peak again. Deletes it.
//! - `range --endpoint URL [--size BYTES] [--range-size BYTES] [--requests N] [--server-pid PID]
//!   [--target NAME]`: PUTs a SIZE-byte and a RANGE-SIZE-byte SSE-KMS object, then alternates N
//!   times a `Range: bytes=SIZE-RANGE_SIZE-(SIZE-1)` GET of the big one and a whole GET of the
//!   small one (after 3 uncounted of each), each answer checked byte by byte. One line: median and
//!   p90 latency of each and their ratio. Deletes both.
//! - `list-versions --endpoint URL [--versions N] [--requests R] [--connections C]
//!   [--server-pid PID] [--target NAME]`: fills a versioned bucket with N versions (N/2 keys,
//!   two empty versions each, C connections), then alternates R times a ListObjectVersions page of
//!   1,000 (`key-marker`) and a ListObjectsV2 page of 1,000 (`start-after`) from the same key
//!   (after 3 uncounted of each), each answer checked to hold 1,000 entries. One line: median and
//!   p90 latency of each and their ratio.
//!
//! `scripts/bench-obs` and `scripts/bench-versioning` start the servers and run the modes. Unknown flags (cargo passes
//! `--bench`) are ignored.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth::sigv4::{self, SigningParams, UriEncoding};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use support::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, Target};

mod support;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// The period of the body pattern: close to 1 MiB, not a power of two.
const PATTERN_PERIOD: usize = 1_048_573;
/// Size of the frames the client sends.
const FRAME: usize = 256 * 1024;

/// Which keys the small PUTs write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// A fresh key every time.
    Fresh,
    /// One key per worker, overwritten.
    PerWorker,
    /// One key for every worker, overwritten.
    One,
}

impl Keys {
    fn name(self) -> &'static str {
        match self {
            Keys::Fresh => "fresh",
            Keys::PerWorker => "per-connection",
            Keys::One => "one",
        }
    }
}

/// Command-line options; every mode reads the ones it needs.
#[derive(Debug, Clone)]
struct Options {
    mode: String,
    endpoint: String,
    size: Option<u64>,
    range_size: u64,
    rounds: usize,
    requests: usize,
    seconds: f64,
    warmup: f64,
    connections: usize,
    sse: bool,
    versioned: bool,
    keys: Keys,
    versions: usize,
    get_back: bool,
    server_pid: Option<u32>,
    target: Option<String>,
}

fn parse_args() -> Options {
    let mut opts = Options {
        mode: String::new(),
        endpoint: String::new(),
        size: None,
        range_size: MIB,
        rounds: 3,
        requests: 30,
        seconds: 10.0,
        warmup: 1.0,
        connections: 16,
        sse: true,
        versioned: false,
        keys: Keys::Fresh,
        versions: 100_000,
        get_back: false,
        server_pid: None,
        target: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let value = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| die(&format!("{} needs a value", args[*i - 1])))
    };
    while i < args.len() {
        match args[i].as_str() {
            "throughput" | "small-put" | "big-put" | "range" | "list-versions" if opts.mode.is_empty() => {
                opts.mode = args[i].clone()
            }
            "--endpoint" => opts.endpoint = value(&mut i),
            "--size" => opts.size = Some(num(&value(&mut i))),
            "--range-size" => opts.range_size = num::<u64>(&value(&mut i)).max(1),
            "--rounds" => opts.rounds = num::<usize>(&value(&mut i)).max(1),
            "--requests" => opts.requests = num::<usize>(&value(&mut i)).max(1),
            "--seconds" => opts.seconds = num(&value(&mut i)),
            "--warmup" => opts.warmup = num(&value(&mut i)),
            "--connections" => opts.connections = num::<usize>(&value(&mut i)).max(1),
            "--no-sse" => opts.sse = false,
            "--versioned" => opts.versioned = true,
            "--overwrite" => opts.keys = Keys::PerWorker,
            "--one-key" => opts.keys = Keys::One,
            "--versions" => opts.versions = num::<usize>(&value(&mut i)).max(2),
            "--get-back" => opts.get_back = true,
            "--server-pid" => opts.server_pid = Some(num(&value(&mut i))),
            "--target" => opts.target = Some(value(&mut i)),
            _ => {} // `--bench` from cargo, and anything else we do not know.
        }
        i += 1;
    }
    opts
}

fn num<T: std::str::FromStr>(text: &str) -> T {
    text.parse().unwrap_or_else(|_| die(&format!("not a number: {text}")))
}

const USAGE: &str = "usage: obs_load throughput --endpoint URL [--size BYTES] [--rounds N] [--server-pid PID] [--target NAME]
       obs_load small-put --endpoint URL [--size BYTES] [--seconds N] [--warmup S] [--connections C] [--no-sse]
                          [--versioned] [--overwrite | --one-key] [--server-pid PID] [--target NAME]
       obs_load list-versions --endpoint URL [--versions N] [--requests R] [--connections C] [--server-pid PID]
                          [--target NAME]
       obs_load big-put --endpoint URL [--size BYTES] --server-pid PID [--get-back] [--target NAME]
       obs_load range --endpoint URL [--size BYTES] [--range-size BYTES] [--requests N] [--server-pid PID] [--target NAME]
(scripts/bench-obs starts the servers and runs them all)";

fn die(message: &str) -> ! {
    eprintln!("obs_load: {message}");
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn main() {
    let opts = parse_args();
    if opts.mode.is_empty() {
        // `cargo bench` with no arguments: nothing to measure without a server.
        eprintln!("obs_load: needs a running server; use scripts/bench-obs\n{USAGE}");
        return;
    }
    if opts.endpoint.is_empty() {
        die(&format!("{} needs --endpoint", opts.mode));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    runtime.block_on(async move {
        match opts.mode.as_str() {
            "throughput" => throughput(opts).await,
            "small-put" => small_put(opts).await,
            "big-put" => big_put(opts).await,
            "range" => range(opts).await,
            "list-versions" => list_versions(opts).await,
            other => die(&format!("unknown mode {other}")),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// /proc

/// CPU seconds of the server, when its pid is known.
fn server_cpu(pid: Option<u32>) -> Option<f64> {
    pid.and_then(support::process_cpu)
}

/// A `kB` field of `/proc/PID/status` (`VmHWM`, `VmRSS`), in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kb: u64 = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

fn json_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("null".into(), |v| format!("{v:.decimals$}"))
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// The repeating pseudo-random pattern, stored with one extra frame so that any frame starting
/// anywhere in a period is one contiguous slice.
#[derive(Debug, Clone)]
struct Pattern(Bytes);

impl Pattern {
    fn new() -> Self {
        let mut data = vec![0u8; PATTERN_PERIOD + FRAME];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for chunk in data[..PATTERN_PERIOD].chunks_mut(8) {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        data.copy_within(..FRAME, PATTERN_PERIOD);
        Pattern(Bytes::from(data))
    }

    /// Up to `FRAME` bytes of the object at `offset`.
    fn slice(&self, offset: u64, len: usize) -> Bytes {
        let start = (offset % PATTERN_PERIOD as u64) as usize;
        self.0.slice(start..start + len.min(FRAME))
    }

    /// Whether `data` is what the object holds at `offset`.
    fn matches(&self, mut offset: u64, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let n = data.len().min(FRAME);
            if self.slice(offset, n) != data[..n] {
                return false;
            }
            offset += n as u64;
            data = &data[n..];
        }
        true
    }
}

/// A request body: `len` bytes of the pattern from object offset 0, sent in `FRAME`-byte frames.
#[derive(Debug)]
struct PatternBody {
    pattern: Pattern,
    offset: u64,
    len: u64,
    /// Sent instead of the pattern (a small XML document).
    fixed: Option<Bytes>,
}

impl PatternBody {
    fn new(pattern: &Pattern, len: u64) -> Self {
        PatternBody { pattern: pattern.clone(), offset: 0, len, fixed: None }
    }

    fn fixed(pattern: &Pattern, bytes: &'static [u8]) -> Self {
        PatternBody {
            pattern: pattern.clone(),
            offset: 0,
            len: bytes.len() as u64,
            fixed: Some(Bytes::from_static(bytes)),
        }
    }

    fn empty(pattern: &Pattern) -> Self {
        Self::new(pattern, 0)
    }
}

impl hyper::body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.offset >= this.len {
            return Poll::Ready(None);
        }
        if let Some(fixed) = this.fixed.take() {
            this.offset = this.len;
            return Poll::Ready(Some(Ok(Frame::data(fixed))));
        }
        let n = (this.len - this.offset).min(FRAME as u64) as usize;
        let data = this.pattern.slice(this.offset, n);
        this.offset += n as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.offset)
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

type Sender = hyper::client::conn::http1::SendRequest<PatternBody>;

/// One keep-alive connection, reopened when the server closes it.
struct Conn {
    target: Target,
    sender: Option<Sender>,
    opened: u64,
    /// Keep whole answer bodies (`Answer::body`).
    keep_bodies: bool,
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Body bytes received.
    bytes: u64,
    /// `Some(false)` if the body was checked against the pattern and differs.
    matched: Option<bool>,
    /// The start of the body of an answer that is not 2xx.
    error_body: String,
    /// The whole body, when the connection keeps bodies.
    body: Vec<u8>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status) && self.matched != Some(false)
    }

    fn describe(&self) -> String {
        if self.matched == Some(false) {
            format!("HTTP {}: body differs from what was written ({} bytes)", self.status, self.bytes)
        } else {
            format!("HTTP {}: {}", self.status, self.error_body)
        }
    }
}

impl Conn {
    fn new(target: &Target) -> Self {
        Conn { target: target.clone(), sender: None, opened: 0, keep_bodies: false }
    }

    async fn connect(&mut self) -> Result<&mut Sender, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.target.authority)
                .await
                .map_err(|e| format!("connect {}: {e}", self.target.authority))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.opened += 1;
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just connected"))
    }

    /// Sends a request and reads the whole answer; with `check_from`, the body is compared with
    /// the pattern as the object bytes from that offset.
    async fn send(
        &mut self,
        request: hyper::Request<PatternBody>,
        check_from: Option<(&Pattern, u64)>,
    ) -> Result<Answer, String> {
        let result = self.send_inner(request, check_from).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn send_inner(
        &mut self,
        request: hyper::Request<PatternBody>,
        check_from: Option<(&Pattern, u64)>,
    ) -> Result<Answer, String> {
        let sender = self.connect().await?;
        sender.ready().await.map_err(|e| format!("connection: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let close = response
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
            || response.version() == hyper::Version::HTTP_10;
        let success = (200..300).contains(&status);
        let mut body = response.into_body();
        let mut bytes = 0u64;
        let mut matched = check_from.map(|_| true);
        let mut error_body = Vec::new();
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                if let Some((pattern, start)) = check_from
                    && success
                    && matched == Some(true)
                    && !pattern.matches(start + bytes, &data)
                {
                    matched = Some(false);
                }
                if !success && error_body.len() < 300 {
                    error_body.extend_from_slice(&data[..data.len().min(300 - error_body.len())]);
                }
                if self.keep_bodies {
                    kept.extend_from_slice(&data);
                }
                bytes += data.len() as u64;
            }
        }
        if close {
            self.sender = None;
        }
        Ok(Answer { status, bytes, matched, error_body: String::from_utf8_lossy(&error_body).into_owned(), body: kept })
    }
}

/// Builds and signs one S3 request (`path` is `/bucket[/key]`, plain ASCII).
fn s3_request(
    target: &Target,
    method: &str,
    path: &str,
    extra: &[(&'static str, String)],
    body: PatternBody,
) -> hyper::Request<PatternBody> {
    s3_request_with_query(target, method, path, "", extra, body)
}

/// [`s3_request`] with a query (already URL-encoded).
fn s3_request_with_query(
    target: &Target,
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&'static str, String)],
    body: PatternBody,
) -> hyper::Request<PatternBody> {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert("host", target.host_header.clone());
    headers.insert("x-amz-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
    if method == "PUT" || body.len > 0 {
        headers.insert("content-length", HeaderValue::from(body.len));
    }
    for (name, value) in extra {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap_or_else(|_| die(&format!("bad header value {value}"))),
        );
    }
    let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let params = SigningParams {
        access_key_id: ACCESS_KEY_ID,
        secret_access_key: SECRET_ACCESS_KEY,
        region: REGION,
        service: "s3",
        time,
    };
    sigv4::sign(method, path, query, &mut headers, "UNSIGNED-PAYLOAD", UriEncoding::Single, &params)
        .unwrap_or_else(|e| die(&format!("sign: {e}")));
    let uri = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    let mut request = hyper::Request::builder().method(method).uri(uri).body(body).expect("a valid request");
    *request.headers_mut() = headers;
    request
}

fn sse_headers(sse: bool) -> Vec<(&'static str, String)> {
    if sse { vec![("x-amz-server-side-encryption", "aws:kms".to_owned())] } else { Vec::new() }
}

/// Sends a request that must succeed.
async fn must(
    conn: &mut Conn,
    what: &str,
    request: hyper::Request<PatternBody>,
    check: Option<(&Pattern, u64)>,
) -> Answer {
    let answer = conn.send(request, check).await.unwrap_or_else(|e| die(&format!("{what}: {e}")));
    if !answer.ok() {
        die(&format!("{what}: {}", answer.describe()));
    }
    answer
}

/// A bucket name unique to this run and mode.
fn bucket_name(mode: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("obs-load-{mode}-{}-{nanos}", std::process::id())
}

async fn create_bucket(conn: &mut Conn, pattern: &Pattern, bucket: &str) {
    let request = s3_request(&conn.target.clone(), "PUT", &format!("/{bucket}"), &[], PatternBody::empty(pattern));
    must(conn, &format!("CreateBucket {bucket}"), request, None).await;
}

async fn enable_versioning(conn: &mut Conn, pattern: &Pattern, bucket: &str) {
    const CONFIG: &[u8] = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    let target = conn.target.clone();
    let body = PatternBody::fixed(pattern, CONFIG);
    let request = s3_request_with_query(&target, "PUT", &format!("/{bucket}"), "versioning=", &[], body);
    must(conn, &format!("PutBucketVersioning {bucket}"), request, None).await;
}

async fn put_object(conn: &mut Conn, pattern: &Pattern, path: &str, size: u64, sse: bool) -> Answer {
    let request = s3_request(&conn.target.clone(), "PUT", path, &sse_headers(sse), PatternBody::new(pattern, size));
    must(conn, &format!("PUT {path}"), request, None).await
}

async fn get_object(conn: &mut Conn, pattern: &Pattern, path: &str, range: Option<(u64, u64)>, check: bool) -> Answer {
    let extra = range.map(|(first, last)| vec![("range", format!("bytes={first}-{last}"))]).unwrap_or_default();
    let request = s3_request(&conn.target.clone(), "GET", path, &extra, PatternBody::empty(pattern));
    let start = range.map_or(0, |r| r.0);
    must(conn, &format!("GET {path}"), request, check.then_some((pattern, start))).await
}

async fn delete(conn: &mut Conn, pattern: &Pattern, path: &str) {
    let request = s3_request(&conn.target.clone(), "DELETE", path, &[], PatternBody::empty(pattern));
    must(conn, &format!("DELETE {path}"), request, None).await;
}

fn name(opts: &Options) -> serde_json::Value {
    serde_json::Value::from(opts.target.clone().unwrap_or_else(|| opts.endpoint.clone()))
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 0.5)
}

/// Nearest-rank percentile; sorts `values`.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    values[((n as f64 * p).ceil() as usize).clamp(1, n) - 1]
}

// ---------------------------------------------------------------------------------------------
// throughput

async fn throughput(opts: Options) {
    let size = opts.size.unwrap_or(256 * MIB);
    let pattern = Pattern::new();
    let target = support::parse_endpoint(&opts.endpoint).unwrap_or_else(|e| die(&e));
    let mut conn = Conn::new(&target);
    let bucket = bucket_name("tp");
    create_bucket(&mut conn, &pattern, &bucket).await;
    let path = |sse: bool| format!("/{bucket}/{}", if sse { "object-kms" } else { "object-plain" });
    for round in 0..=opts.rounds {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for op in ["put", "get"] {
            for sse in order {
                let cpu_start = server_cpu(opts.server_pid);
                let start = Instant::now();
                let answer = if op == "put" {
                    put_object(&mut conn, &pattern, &path(sse), size, sse).await
                } else {
                    // The warm-up round checks every byte; measured rounds only count them.
                    let answer = get_object(&mut conn, &pattern, &path(sse), None, round == 0).await;
                    if answer.bytes != size {
                        die(&format!("GET {} returned {} bytes, not {size}", path(sse), answer.bytes));
                    }
                    answer
                };
                let seconds = start.elapsed().as_secs_f64();
                let cpu = server_cpu(opts.server_pid).zip(cpu_start).map(|(b, a)| b - a);
                let _ = answer;
                if round == 0 {
                    continue;
                }
                println!(
                    "{{\"bench\":\"throughput\",\"target\":{},\"op\":\"{op}\",\"sse\":\"{}\",\"round\":{round},\"bytes\":{size},\
                     \"seconds\":{seconds:.4},\"mib_per_s\":{:.1},\"server_cpu_seconds\":{},\"server_cpu_s_per_gib\":{}}}",
                    name(&opts),
                    if sse { "aws:kms" } else { "none" },
                    size as f64 / MIB as f64 / seconds,
                    json_opt(cpu, 2),
                    json_opt(cpu.map(|c| c * GIB as f64 / size as f64), 3),
                );
            }
        }
    }
    for sse in [true, false] {
        delete(&mut conn, &pattern, &path(sse)).await;
    }
    delete(&mut conn, &pattern, &format!("/{bucket}")).await;
}

// ---------------------------------------------------------------------------------------------
// small-put

/// What one worker saw during the measured window.
#[derive(Debug, Default)]
struct WorkerStats {
    calls: u64,
    errors: u64,
    connections: u64,
    first_error: Option<String>,
    latencies_us: Vec<f64>,
}

async fn small_put(opts: Options) {
    let size = opts.size.unwrap_or(4096);
    let pattern = Pattern::new();
    let target = support::parse_endpoint(&opts.endpoint).unwrap_or_else(|e| die(&e));
    let bucket: Arc<str> = bucket_name("small").into();
    {
        let mut conn = Conn::new(&target);
        create_bucket(&mut conn, &pattern, &bucket).await;
        if opts.versioned {
            enable_versioning(&mut conn, &pattern, &bucket).await;
        }
        // One check outside the load: a PUT is accepted and reads back.
        let path = format!("/{bucket}/check");
        put_object(&mut conn, &pattern, &path, size, opts.sse).await;
        let answer = get_object(&mut conn, &pattern, &path, None, true).await;
        if answer.bytes != size {
            die(&format!("GET {path} returned {} bytes, not {size}", answer.bytes));
        }
    }

    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(opts.warmup);
    let measure_end = measure_start + Duration::from_secs_f64(opts.seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let extra = Arc::new(sse_headers(opts.sse));
    let mut workers = Vec::with_capacity(opts.connections);
    for worker in 0..opts.connections {
        let (target, pattern, bucket, stop, extra) =
            (target.clone(), pattern.clone(), bucket.clone(), stop.clone(), extra.clone());
        let keys = opts.keys;
        workers.push(tokio::spawn(async move {
            let mut stats = WorkerStats { latencies_us: Vec::with_capacity(1 << 14), ..Default::default() };
            let mut conn = Conn::new(&target);
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let path = match keys {
                    Keys::Fresh => format!("/{bucket}/w{worker}/{n}"),
                    Keys::PerWorker => format!("/{bucket}/w{worker}"),
                    Keys::One => format!("/{bucket}/one"),
                };
                n += 1;
                // Latency covers a new connection when the server closed the last one.
                let sent = Instant::now();
                let request = s3_request(&target, "PUT", &path, &extra, PatternBody::new(&pattern, size));
                let result = conn.send(request, None).await;
                let done = Instant::now();
                if done >= measure_end {
                    break;
                }
                let counted = sent >= measure_start;
                match result {
                    Ok(answer) if answer.ok() => {
                        if counted {
                            stats.calls += 1;
                            stats.latencies_us.push((done - sent).as_secs_f64() * 1e6);
                        }
                    }
                    Ok(answer) => {
                        stats.errors += u64::from(counted);
                        stats.first_error.get_or_insert_with(|| answer.describe());
                    }
                    Err(e) => {
                        stats.errors += u64::from(counted);
                        stats.first_error.get_or_insert(e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            stats.connections = conn.opened;
            stats
        }));
    }

    tokio::time::sleep_until(measure_start.into()).await;
    let server_cpu_start = server_cpu(opts.server_pid);
    let client_cpu_start = support::proc_stat_cpu("/proc/self/stat", true);
    tokio::time::sleep_until(measure_end.into()).await;
    let server_cpu = server_cpu(opts.server_pid).zip(server_cpu_start).map(|(b, a)| b - a);
    let client_cpu = support::proc_stat_cpu("/proc/self/stat", true).zip(client_cpu_start).map(|(b, a)| b - a);
    stop.store(true, Ordering::Relaxed);

    let mut total = WorkerStats::default();
    for worker in workers {
        let stats = worker.await.unwrap_or_else(|e| die(&format!("worker: {e}")));
        total.calls += stats.calls;
        total.errors += stats.errors;
        total.connections += stats.connections;
        if total.first_error.is_none() {
            total.first_error = stats.first_error;
        }
        total.latencies_us.extend(stats.latencies_us);
    }
    let rate = total.calls as f64 / opts.seconds;
    let per_call_us = |cpu: Option<f64>| cpu.filter(|_| total.calls > 0).map(|c| c * 1e6 / total.calls as f64);
    let p50 = percentile(&mut total.latencies_us, 0.50);
    let p99 = percentile(&mut total.latencies_us, 0.99);
    println!(
        "{{\"bench\":\"small_put\",\"target\":{},\"sse\":\"{}\",\"versioned\":{},\"overwrite\":{},\"keys\":\"{}\",\"size\":{size},\"calls\":{},\"seconds\":{},\"rate\":{rate:.1},\
         \"errors\":{},\"connections_opened\":{},\"p50_us\":{p50:.0},\"p99_us\":{p99:.0},\"connections\":{},\
         \"server_cpu_seconds\":{},\"server_cpu_us_per_call\":{},\"client_cpu_seconds\":{},\"client_cpu_us_per_call\":{},\
         \"first_error\":{}}}",
        name(&opts),
        if opts.sse { "aws:kms" } else { "none" },
        opts.versioned,
        opts.keys != Keys::Fresh,
        opts.keys.name(),
        total.calls,
        opts.seconds,
        total.errors,
        total.connections,
        opts.connections,
        json_opt(server_cpu, 2),
        json_opt(per_call_us(server_cpu), 1),
        json_opt(client_cpu, 2),
        json_opt(per_call_us(client_cpu), 1),
        total.first_error.map_or(serde_json::Value::Null, serde_json::Value::from),
    );
}

// ---------------------------------------------------------------------------------------------
// big-put

async fn big_put(opts: Options) {
    let size = opts.size.unwrap_or(2 * GIB);
    let pid = opts.server_pid.unwrap_or_else(|| die("big-put needs --server-pid"));
    let hwm = |what: &str| proc_status_bytes(pid, "VmHWM").unwrap_or_else(|| die(&format!("no VmHWM for {what}")));
    let rss = || proc_status_bytes(pid, "VmRSS").unwrap_or(0);
    let pattern = Pattern::new();
    let target = support::parse_endpoint(&opts.endpoint).unwrap_or_else(|e| die(&e));
    let mut conn = Conn::new(&target);
    let bucket = bucket_name("big");
    create_bucket(&mut conn, &pattern, &bucket).await;
    let path = format!("/{bucket}/object-kms");
    let hwm_before = hwm("before");
    let rss_before = rss();
    let cpu_start = server_cpu(opts.server_pid);
    let start = Instant::now();
    put_object(&mut conn, &pattern, &path, size, true).await;
    let put_seconds = start.elapsed().as_secs_f64();
    let put_cpu = server_cpu(opts.server_pid).zip(cpu_start).map(|(b, a)| b - a);
    let hwm_after_put = hwm("after the PUT");
    let rss_after_put = rss();
    let mut get = String::from("null");
    if opts.get_back {
        let start = Instant::now();
        let answer = get_object(&mut conn, &pattern, &path, None, true).await;
        if answer.bytes != size {
            die(&format!("GET {path} returned {} bytes, not {size}", answer.bytes));
        }
        get = format!(
            "{{\"seconds\":{:.3},\"vm_hwm_after_bytes\":{},\"vm_rss_after_bytes\":{},\"checked\":true}}",
            start.elapsed().as_secs_f64(),
            hwm("after the GET"),
            rss(),
        );
    }
    delete(&mut conn, &pattern, &path).await;
    delete(&mut conn, &pattern, &format!("/{bucket}")).await;
    println!(
        "{{\"bench\":\"big_put\",\"target\":{},\"sse\":\"aws:kms\",\"bytes\":{size},\"put_seconds\":{put_seconds:.3},\
         \"put_mib_per_s\":{:.1},\"server_cpu_seconds\":{},\"vm_hwm_before_bytes\":{hwm_before},\"vm_rss_before_bytes\":{rss_before},\
         \"vm_hwm_after_put_bytes\":{hwm_after_put},\"vm_rss_after_put_bytes\":{rss_after_put},\"get\":{get}}}",
        name(&opts),
        size as f64 / MIB as f64 / put_seconds,
        json_opt(put_cpu, 2),
    );
}

// ---------------------------------------------------------------------------------------------
// range

async fn range(opts: Options) {
    let size = opts.size.unwrap_or(GIB);
    let range_size = opts.range_size.min(size);
    let pattern = Pattern::new();
    let target = support::parse_endpoint(&opts.endpoint).unwrap_or_else(|e| die(&e));
    let mut conn = Conn::new(&target);
    let bucket = bucket_name("range");
    create_bucket(&mut conn, &pattern, &bucket).await;
    let big = format!("/{bucket}/big-kms");
    let small = format!("/{bucket}/small-kms");
    put_object(&mut conn, &pattern, &big, size, true).await;
    put_object(&mut conn, &pattern, &small, range_size, true).await;
    let tail = (size - range_size, size - 1);
    let mut range_ms = Vec::with_capacity(opts.requests);
    let mut whole_ms = Vec::with_capacity(opts.requests);
    let (mut range_cpu, mut whole_cpu) = (0.0, 0.0);
    const WARMUP: usize = 3;
    for i in 0..WARMUP + opts.requests {
        // Alternate which goes first.
        let order = if i % 2 == 0 { [true, false] } else { [false, true] };
        for is_range in order {
            let cpu_start = server_cpu(opts.server_pid);
            let start = Instant::now();
            let answer = if is_range {
                get_object(&mut conn, &pattern, &big, Some(tail), true).await
            } else {
                get_object(&mut conn, &pattern, &small, None, true).await
            };
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let cpu = server_cpu(opts.server_pid).zip(cpu_start).map_or(0.0, |(b, a)| b - a);
            if answer.bytes != range_size || (is_range && answer.status != 206) {
                die(&format!(
                    "{} answered {} with {} bytes, expected {range_size}",
                    if is_range { "range GET" } else { "GET" },
                    answer.status,
                    answer.bytes
                ));
            }
            if i < WARMUP {
                continue;
            }
            if is_range {
                range_ms.push(ms);
                range_cpu += cpu;
            } else {
                whole_ms.push(ms);
                whole_cpu += cpu;
            }
        }
    }
    delete(&mut conn, &pattern, &big).await;
    delete(&mut conn, &pattern, &small).await;
    delete(&mut conn, &pattern, &format!("/{bucket}")).await;
    let n = opts.requests as f64;
    let range_median = median(&mut range_ms);
    let whole_median = median(&mut whole_ms);
    let cpu_known = opts.server_pid.is_some();
    println!(
        "{{\"bench\":\"range\",\"target\":{},\"sse\":\"aws:kms\",\"object_bytes\":{size},\"range_bytes\":{range_size},\
         \"range\":\"bytes={}-{}\",\"requests\":{},\"range_p50_ms\":{range_median:.3},\"range_p90_ms\":{:.3},\
         \"whole_p50_ms\":{whole_median:.3},\"whole_p90_ms\":{:.3},\"ratio_p50\":{:.3},\
         \"range_server_cpu_ms_per_request\":{},\"whole_server_cpu_ms_per_request\":{},\"checked\":true}}",
        name(&opts),
        tail.0,
        tail.1,
        opts.requests,
        percentile(&mut range_ms, 0.9),
        percentile(&mut whole_ms, 0.9),
        range_median / whole_median,
        json_opt(cpu_known.then_some(range_cpu * 1e3 / n), 2),
        json_opt(cpu_known.then_some(whole_cpu * 1e3 / n), 2),
    );
}

// ---------------------------------------------------------------------------------------------
// list-versions

async fn list_versions(opts: Options) {
    const PAGE: usize = 1000;
    let pattern = Pattern::new();
    let target = support::parse_endpoint(&opts.endpoint).unwrap_or_else(|e| die(&e));
    let bucket: Arc<str> = bucket_name("versions").into();
    let keys = opts.versions / 2;
    if keys < 2 * PAGE {
        die("list-versions needs --versions of at least 4000");
    }
    let mut conn = Conn::new(&target);
    create_bucket(&mut conn, &pattern, &bucket).await;
    enable_versioning(&mut conn, &pattern, &bucket).await;
    let key = |i: usize| format!("k{i:08}");
    let fill_start = Instant::now();
    let mut fillers = Vec::with_capacity(opts.connections);
    for worker in 0..opts.connections {
        let (target, pattern, bucket, connections) =
            (target.clone(), pattern.clone(), bucket.clone(), opts.connections);
        fillers.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            for i in (worker..keys).step_by(connections) {
                for _ in 0..2 {
                    put_object(&mut conn, &pattern, &format!("/{bucket}/{}", key(i)), 0, false).await;
                }
            }
        }));
    }
    for filler in fillers {
        filler.await.unwrap_or_else(|e| die(&format!("filler: {e}")));
    }
    let fill_seconds = fill_start.elapsed().as_secs_f64();

    conn.keep_bodies = true;
    let mut versions_ms = Vec::with_capacity(opts.requests);
    let mut objects_ms = Vec::with_capacity(opts.requests);
    const WARMUP: usize = 3;
    for i in 0..WARMUP + opts.requests {
        // Pages from places spread over the bucket, each read both ways.
        let from = key(i * 7919 % (keys - PAGE));
        let order = if i % 2 == 0 { [true, false] } else { [false, true] };
        for versions in order {
            let (query, entry) = match versions {
                true => (format!("versions=&max-keys={PAGE}&key-marker={from}"), "<Version>"),
                false => (format!("list-type=2&max-keys={PAGE}&start-after={from}"), "<Contents>"),
            };
            let request =
                s3_request_with_query(&target, "GET", &format!("/{bucket}"), &query, &[], PatternBody::empty(&pattern));
            let start = Instant::now();
            let answer = must(&mut conn, &format!("GET ?{query}"), request, None).await;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let body = String::from_utf8_lossy(&answer.body);
            let entries = body.matches(entry).count();
            if entries != PAGE {
                die(&format!("GET ?{query} listed {entries} entries, not {PAGE}"));
            }
            if i >= WARMUP {
                if versions { versions_ms.push(ms) } else { objects_ms.push(ms) }
            }
        }
    }
    let versions_median = median(&mut versions_ms);
    let objects_median = median(&mut objects_ms);
    println!(
        "{{\"bench\":\"list_versions\",\"target\":{},\"versions\":{},\"keys\":{keys},\"page\":{PAGE},\"requests\":{},\
         \"fill_seconds\":{fill_seconds:.1},\"list_versions_p50_ms\":{versions_median:.3},\"list_versions_p90_ms\":{:.3},\
         \"list_objects_v2_p50_ms\":{objects_median:.3},\"list_objects_v2_p90_ms\":{:.3},\"ratio_p50\":{:.3},\"checked\":true}}",
        name(&opts),
        2 * keys,
        opts.requests,
        percentile(&mut versions_ms, 0.9),
        percentile(&mut objects_ms, 0.9),
        versions_median / objects_median,
    );
}
