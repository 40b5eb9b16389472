//! Data-key load generator for kmsim and its peers (a `harness = false` bench target).
//!
//! Two modes, each printing one JSON line on stdout:
//!
//! - `http --endpoint URL [--dialect aws|otc] [--seconds N] [--connections C] [--threads T] [--warmup S]
//!   [--server-pid PID] [--target NAME]`: creates a key, then asks for 256-bit data keys over
//!   HTTP/1.1 from C workers, each with its own keep-alive connection, every request signed when it
//!   is sent (access key `test`/`test`, the current time). The dialect picks the API:
//!   - `aws` (default): `TrentService.CreateKey`, then `TrentService.GenerateDataKey`
//!     (`KeySpec: AES_256`), SigV4-signed for `us-east-1`;
//!   - `otc`: `POST /v1.0/{project_id}/kms/create-key`, then `POST /v1.0/{project_id}/kms/create-datakey`
//!     (`datakey_length: "256"`), SDK-HMAC-SHA256-signed (`Access=` form, `host` and
//!     `content-type: application/json` signed, as Huawei's SDKs do), project id `--project-id`
//!     (default: the default account's, 32 zeros).
//!
//!   Both dialects run the same workers; an answer counts as a call only if it is a 200 whose body
//!   has both halves of the data key as non-empty strings (`Plaintext` and `CiphertextBlob`, or
//!   `plain_text` and `cipher_text`). After a warm-up of S seconds (default 1) it counts, for N
//!   seconds, the calls that came back, the other answers and transport failures (`errors`), and
//!   the latency percentiles. With
//!   `--server-pid` it also reports the server's CPU time over the measured window (from
//!   `/proc/PID/stat`, children included), so the server's cost per call is known even though the
//!   client shares the machine.
//! - `inprocess [--seconds N]`: `kms::Kms::in_memory()`, one key, and `generate_data_key` (32 bytes,
//!   empty context) in a loop on this thread; the rate is per core.
//!
//! The same client drives kmsim and `moto_server`; `scripts/bench-kms` runs both and prints the
//! ratio, and compares the two dialects on one kmsim. Unknown flags (cargo passes `--bench`) are
//! ignored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth::sdk_hmac;
use auth::sigv4::{self, SigningParams, UriEncoding};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue};
use hyper_util::rt::TokioIo;
use support::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, Target, proc_stat_cpu, process_cpu};

mod support;

/// Command-line options; every mode reads the ones it needs.
#[derive(Debug, Clone)]
struct Options {
    mode: String,
    endpoint: String,
    seconds: f64,
    warmup: f64,
    connections: usize,
    threads: usize,
    server_pid: Option<u32>,
    target: Option<String>,
    dialect: Dialect,
    project_id: String,
}

/// The KMS API a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// AWS KMS JSON 1.1 (`TrentService.*`), SigV4.
    Aws,
    /// OTC / Huawei Cloud KMS REST v1.0, SDK-HMAC-SHA256.
    Otc,
}

fn parse_args() -> Options {
    let mut opts = Options {
        mode: String::new(),
        endpoint: String::new(),
        seconds: 10.0,
        warmup: 1.0,
        connections: 64,
        threads: 1,
        server_pid: None,
        target: None,
        dialect: Dialect::Aws,
        project_id: shared::caller::DEFAULT_PROJECT_ID.to_owned(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let value = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| die(&format!("{} needs a value", args[*i - 1])))
    };
    while i < args.len() {
        match args[i].as_str() {
            "http" | "inprocess" if opts.mode.is_empty() => opts.mode = args[i].clone(),
            "--endpoint" => opts.endpoint = value(&mut i),
            "--seconds" => opts.seconds = num(&value(&mut i)),
            "--warmup" => opts.warmup = num(&value(&mut i)),
            "--connections" => opts.connections = num::<usize>(&value(&mut i)).max(1),
            "--threads" => opts.threads = num::<usize>(&value(&mut i)).max(1),
            "--server-pid" => opts.server_pid = Some(num(&value(&mut i))),
            "--target" => opts.target = Some(value(&mut i)),
            "--dialect" => {
                opts.dialect = match value(&mut i).as_str() {
                    "aws" => Dialect::Aws,
                    "otc" => Dialect::Otc,
                    other => die(&format!("unknown dialect {other} (aws or otc)")),
                }
            }
            "--project-id" => opts.project_id = value(&mut i),
            _ => {} // `--bench` from cargo, and anything else we do not know.
        }
        i += 1;
    }
    opts
}

fn num<T: std::str::FromStr>(text: &str) -> T {
    text.parse().unwrap_or_else(|_| die(&format!("not a number: {text}")))
}

fn die(message: &str) -> ! {
    eprintln!("kms_load: {message}");
    eprintln!(
        "usage: kms_load http --endpoint URL [--dialect aws|otc] [--project-id ID] [--seconds N] [--connections C] \
         [--threads T] [--warmup S] [--server-pid PID] [--target NAME]\n       kms_load inprocess [--seconds N]"
    );
    std::process::exit(2)
}

fn main() {
    let opts = parse_args();
    match opts.mode.as_str() {
        "http" => {
            if opts.endpoint.is_empty() {
                die("http needs --endpoint");
            }
            let runtime = if opts.threads == 1 {
                tokio::runtime::Builder::new_current_thread().enable_all().build()
            } else {
                tokio::runtime::Builder::new_multi_thread().worker_threads(opts.threads).enable_all().build()
            }
            .unwrap_or_else(|e| die(&format!("runtime: {e}")));
            runtime.block_on(http(opts));
        }
        "inprocess" => inprocess(&opts),
        "" => {
            // `cargo bench` with no arguments: a short in-process run, so the target does something.
            inprocess(&Options { seconds: opts.seconds.min(3.0), ..opts });
        }
        other => die(&format!("unknown mode {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// In-process

fn inprocess(opts: &Options) {
    let kms = kms::Kms::in_memory().unwrap_or_else(|e| die(&format!("Kms::in_memory: {e}")));
    let caller = auth::AccessKey::new("test", "test", "000000000000", None).caller(REGION);
    let key = kms
        .create_key(&caller, kms::service::CreateKeyInput::default())
        .unwrap_or_else(|e| die(&format!("create_key: {e}")));
    let context = BTreeMap::new();
    let call = || {
        let data_key = kms
            .generate_data_key(&caller, &key.id, 32, &context, true)
            .unwrap_or_else(|e| die(&format!("generate_data_key: {e}")));
        std::hint::black_box(data_key);
    };
    // Warm-up: caches, allocator, branch predictors.
    let warm_end = Instant::now() + Duration::from_secs_f64(opts.warmup.min(opts.seconds));
    while Instant::now() < warm_end {
        for _ in 0..256 {
            call();
        }
    }
    let cpu_start = self_thread_cpu();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(opts.seconds);
    let mut calls: u64 = 0;
    loop {
        for _ in 0..256 {
            call();
        }
        calls += 256;
        if Instant::now() >= end {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = self_thread_cpu().zip(cpu_start).map(|(b, a)| b - a);
    let rate = calls as f64 / elapsed;
    // One thread: the wall-clock rate is the rate of one core, unless the core was shared; the
    // CPU-time rate is given too so a noisy machine shows.
    let rate_cpu = cpu.filter(|c| *c > 0.0).map(|c| calls as f64 / c);
    println!(
        "{{\"target\":\"in-process\",\"calls\":{calls},\"seconds\":{elapsed:.3},\"rate_per_core\":{rate:.0},\
         \"thread_cpu_seconds\":{},\"rate_per_cpu_second\":{}}}",
        cpu.map_or("null".into(), |c| format!("{c:.3}")),
        rate_cpu.map_or("null".into(), |r| format!("{r:.0}")),
    );
}

/// CPU time (user + system) of the calling thread, from `/proc/thread-self/stat`.
fn self_thread_cpu() -> Option<f64> {
    proc_stat_cpu("/proc/thread-self/stat", false)
}

// ---------------------------------------------------------------------------------------------
// Over HTTP

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(target: &Target) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("connect {}: {e}", target.authority))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The current time in Unix seconds: every request is signed when it is built.
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Builds and signs one AWS KMS JSON request.
fn signed_request(target: &Target, operation: &str, body: &Bytes, payload_hash: &str) -> hyper::Request<Full<Bytes>> {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert("host", target.host_header.clone());
    headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    let amz_target = match operation {
        "GenerateDataKey" => HeaderValue::from_static("TrentService.GenerateDataKey"),
        "CreateKey" => HeaderValue::from_static("TrentService.CreateKey"),
        other => HeaderValue::from_str(&format!("TrentService.{other}")).expect("an operation name"),
    };
    headers.insert("x-amz-target", amz_target);
    let params = SigningParams {
        access_key_id: ACCESS_KEY_ID,
        secret_access_key: SECRET_ACCESS_KEY,
        region: REGION,
        service: "kms",
        time: unix_now(),
    };
    sigv4::sign("POST", "/", "", &mut headers, payload_hash, UriEncoding::Double, &params)
        .unwrap_or_else(|e| die(&format!("sign: {e}")));
    let mut request =
        hyper::Request::builder().method("POST").uri("/").body(Full::new(body.clone())).expect("a valid request");
    *request.headers_mut() = headers;
    request
}

/// Builds and signs one OTC KMS request: `POST path` with a JSON body, SDK-HMAC-SHA256 in the `Access=` form.
fn otc_request(target: &Target, path: &str, body: &Bytes) -> hyper::Request<Full<Bytes>> {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert("host", target.host_header.clone());
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let credentials = sdk_hmac::Credentials { access_key_id: ACCESS_KEY_ID, secret_access_key: SECRET_ACCESS_KEY };
    sdk_hmac::sign("POST", path, "", &mut headers, body, credentials, unix_now())
        .unwrap_or_else(|e| die(&format!("sign: {e}")));
    let mut request =
        hyper::Request::builder().method("POST").uri(path).body(Full::new(body.clone())).expect("a valid request");
    *request.headers_mut() = headers;
    request
}

/// The request every worker repeats, in one dialect.
#[derive(Debug)]
struct DataKeyCall {
    dialect: Dialect,
    target: Target,
    body: Bytes,
    /// SigV4's payload hash of `body` (AWS).
    payload_hash: String,
    /// The request path (OTC).
    path: String,
}

impl DataKeyCall {
    /// One freshly signed request.
    fn request(&self) -> hyper::Request<Full<Bytes>> {
        match self.dialect {
            Dialect::Aws => signed_request(&self.target, "GenerateDataKey", &self.body, &self.payload_hash),
            Dialect::Otc => otc_request(&self.target, &self.path, &self.body),
        }
    }

    /// Whether a 200 answer carries a data key: both halves as non-empty JSON strings.
    fn is_data_key(&self, body: &[u8]) -> bool {
        let (plaintext, ciphertext) = match self.dialect {
            Dialect::Aws => ("Plaintext", "CiphertextBlob"),
            Dialect::Otc => ("plain_text", "cipher_text"),
        };
        has_string_field(body, plaintext) && has_string_field(body, ciphertext)
    }
}

/// Whether a JSON object's text has `"field": "<at least one character>"` (a byte scan: parsing every answer
/// would add client CPU to the measurement).
fn has_string_field(body: &[u8], field: &str) -> bool {
    let needle = format!("\"{field}\"");
    let needle = needle.as_bytes();
    let mut at = 0;
    while let Some(found) = body[at..].windows(needle.len()).position(|w| w == needle) {
        let mut rest = body[at + found + needle.len()..].iter().skip_while(|b| b.is_ascii_whitespace());
        if rest.next() == Some(&b':') {
            let mut rest = rest.skip_while(|b| b.is_ascii_whitespace());
            return rest.next() == Some(&b'"') && rest.next().is_some_and(|b| *b != b'"');
        }
        at += found + 1;
    }
    false
}

/// Creates the key of a run in its dialect; its id.
async fn create_key(target: &Target, opts: &Options) -> String {
    let mut sender = connect(target).await.unwrap_or_else(|e| die(&e));
    let (request, what) = match opts.dialect {
        Dialect::Aws => {
            let body = Bytes::from_static(b"{}");
            (signed_request(target, "CreateKey", &body, &sigv4::payload_sha256(&body)), "CreateKey")
        }
        Dialect::Otc => {
            // Aliases are unique: one per run.
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let body = Bytes::from(format!("{{\"key_alias\":\"bench-{}-{nanos}\"}}", std::process::id()));
            (otc_request(target, &format!("/v1.0/{}/kms/create-key", opts.project_id), &body), "create-key")
        }
    };
    let (status, body, _) = send(&mut sender, request).await.unwrap_or_else(|e| die(&format!("{what}: {e}")));
    if status != 200 {
        die(&format!("{what} answered {status}: {}", String::from_utf8_lossy(&body)));
    }
    let created: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| die(&format!("{what} answer is not JSON: {e}")));
    let id = match opts.dialect {
        Dialect::Aws => &created["KeyMetadata"]["KeyId"],
        Dialect::Otc => &created["key_info"]["key_id"],
    };
    id.as_str().unwrap_or_else(|| die(&format!("{what} answer has no key id: {created}"))).to_owned()
}

/// Sends one request; the status, the whole body, and whether the server closes the connection.
async fn send(sender: &mut Sender, request: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes, bool), String> {
    sender.ready().await.map_err(|e| format!("connection: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    let close =
        response.headers().get(hyper::header::CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
            || response.version() == hyper::Version::HTTP_10;
    let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
    Ok((status, body, close))
}

/// What one worker saw during the measured window.
#[derive(Debug, Default)]
struct WorkerStats {
    calls: u64,
    errors: u64,
    /// Connections opened after the first one (the server closed the previous one).
    reconnects: u64,
    connected: bool,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
}

async fn http(opts: Options) {
    let target = support::parse_endpoint(&opts.endpoint).unwrap_or_else(|e| die(&e));
    let name = opts.target.clone().unwrap_or_else(|| opts.endpoint.clone());

    // The key every worker uses, and the request they repeat.
    let key_id = create_key(&target, &opts).await;
    let call = Arc::new(match opts.dialect {
        Dialect::Aws => {
            let body = Bytes::from(format!("{{\"KeyId\":\"{key_id}\",\"KeySpec\":\"AES_256\"}}"));
            let payload_hash = sigv4::payload_sha256(&body);
            DataKeyCall { dialect: opts.dialect, target: target.clone(), body, payload_hash, path: "/".into() }
        }
        Dialect::Otc => {
            let body = Bytes::from(format!("{{\"key_id\":\"{key_id}\",\"datakey_length\":\"256\"}}"));
            let path = format!("/v1.0/{}/kms/create-datakey", opts.project_id);
            DataKeyCall { dialect: opts.dialect, target: target.clone(), body, payload_hash: String::new(), path }
        }
    });

    // One check outside the load: the answer is a data key.
    {
        let mut sender = connect(&target).await.unwrap_or_else(|e| die(&e));
        let (status, body, _) =
            send(&mut sender, call.request()).await.unwrap_or_else(|e| die(&format!("first data key: {e}")));
        if status != 200 || !call.is_data_key(&body) {
            die(&format!("the first data-key request answered {status}: {}", String::from_utf8_lossy(&body)));
        }
    }

    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(opts.warmup);
    let measure_end = measure_start + Duration::from_secs_f64(opts.seconds);
    let stop = Arc::new(AtomicBool::new(false));

    let mut workers = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections {
        let target = target.clone();
        let call = call.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut stats = WorkerStats { latencies_us: Vec::with_capacity(1 << 14), ..Default::default() };
            let mut sender: Option<Sender> = None;
            while !stop.load(Ordering::Relaxed) {
                // One attempt: a new connection if the last one was closed (moto_server closes
                // every connection after one answer), then the request. Latency covers both.
                let sent = Instant::now();
                let result = async {
                    let s = match sender.as_mut() {
                        Some(s) if !s.is_closed() => s,
                        _ => {
                            let fresh = connect(&target).await?;
                            stats.reconnects += u64::from(stats.connected);
                            stats.connected = true;
                            sender.insert(fresh)
                        }
                    };
                    match send(s, call.request()).await {
                        Ok(answer) => {
                            if answer.2 {
                                sender = None;
                            }
                            Ok(answer)
                        }
                        Err(e) => {
                            sender = None;
                            Err(e)
                        }
                    }
                }
                .await;
                let done = Instant::now();
                if done >= measure_end {
                    break;
                }
                let counted = sent >= measure_start;
                match result {
                    Ok((200, body, _)) if call.is_data_key(&body) => {
                        if counted {
                            stats.calls += 1;
                            stats.latencies_us.push((done - sent).as_micros().min(u32::MAX as u128) as u32);
                        }
                    }
                    Ok((status, body, _)) => {
                        if counted {
                            stats.errors += 1;
                        }
                        stats.first_error.get_or_insert_with(|| {
                            format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))
                        });
                    }
                    Err(e) => {
                        if counted {
                            stats.errors += 1;
                        }
                        stats.first_error.get_or_insert(e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            stats
        }));
    }

    // CPU accounting around the measured window.
    tokio::time::sleep_until(measure_start.into()).await;
    let server_cpu_start = opts.server_pid.and_then(process_cpu);
    let client_cpu_start = proc_stat_cpu("/proc/self/stat", false);
    tokio::time::sleep_until(measure_end.into()).await;
    let server_cpu = opts.server_pid.and_then(process_cpu).zip(server_cpu_start).map(|(b, a)| b - a);
    let client_cpu = proc_stat_cpu("/proc/self/stat", false).zip(client_cpu_start).map(|(b, a)| b - a);
    stop.store(true, Ordering::Relaxed);

    let mut total = WorkerStats::default();
    for worker in workers {
        let stats = worker.await.unwrap_or_else(|e| die(&format!("worker: {e}")));
        total.calls += stats.calls;
        total.errors += stats.errors;
        total.reconnects += stats.reconnects;
        if total.first_error.is_none() {
            total.first_error = stats.first_error;
        }
        total.latencies_us.extend(stats.latencies_us);
    }
    total.latencies_us.sort_unstable();
    let percentile = |p: f64| -> u32 {
        let n = total.latencies_us.len();
        if n == 0 {
            return 0;
        }
        total.latencies_us[((n as f64 * p).ceil() as usize).clamp(1, n) - 1]
    };
    let rate = total.calls as f64 / opts.seconds;
    let per_call_us = |cpu: Option<f64>| -> String {
        cpu.filter(|_| total.calls > 0).map_or("null".into(), |c| format!("{:.1}", c * 1e6 / total.calls as f64))
    };
    let opt_secs = |cpu: Option<f64>| cpu.map_or("null".into(), |c| format!("{c:.2}"));
    println!(
        "{{\"target\":{},\"dialect\":\"{}\",\"calls\":{},\"seconds\":{},\"rate\":{rate:.1},\"errors\":{},\"reconnects\":{},\"p50_us\":{},\"p99_us\":{},\
         \"connections\":{},\"client_threads\":{},\"server_cpu_seconds\":{},\"server_cpu_us_per_call\":{},\
         \"client_cpu_seconds\":{},\"client_cpu_us_per_call\":{},\"first_error\":{}}}",
        serde_json::Value::from(name),
        match opts.dialect {
            Dialect::Aws => "aws",
            Dialect::Otc => "otc",
        },
        total.calls,
        opts.seconds,
        total.errors,
        total.reconnects,
        percentile(0.50),
        percentile(0.99),
        opts.connections,
        opts.threads,
        opt_secs(server_cpu),
        per_call_us(server_cpu),
        opt_secs(client_cpu),
        per_call_us(client_cpu),
        total.first_error.map_or(serde_json::Value::Null, serde_json::Value::from),
    );
}
