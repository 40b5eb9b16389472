//! KMS load generator for kmsim and its peers: data keys and signatures (a `harness = false` bench target).
//!
//! Two modes, each printing one JSON line on stdout:
//!
//! - `http --endpoint URL [--operation data-key|sign-ecc|sign-rsa] [--dialect aws|otc] [--seconds N]
//!   [--connections C] [--threads T] [--warmup S] [--server-pid PID] [--target NAME] [--rate R] [--key-id ID]
//!   [--wrk-script FILE]`: creates a key (or uses `--key-id`'s), then repeats one call over HTTP/1.1 from C workers, each with its own keep-alive connection,
//!   every request signed when it is sent (access key `test`/`test`, the current time). The operation picks the call:
//!   - `data-key` (default): 256-bit data keys. The dialect picks the API:
//!     - `aws` (default): `TrentService.CreateKey`, then `TrentService.GenerateDataKey`
//!       (`KeySpec: AES_256`), SigV4-signed for `us-east-1`;
//!     - `otc`: `POST /v1.0/{project_id}/kms/create-key`, then `POST /v1.0/{project_id}/kms/create-datakey`
//!       (`datakey_length: "256"`), SDK-HMAC-SHA256-signed (`Access=` form, `host` and
//!       `content-type: application/json` signed, as Huawei's SDKs do), project id `--project-id`
//!       (default: the default account's, 32 zeros).
//!   - `sign-ecc` / `sign-rsa` (AWS dialect only): `TrentService.CreateKey` with `KeySpec: ECC_NIST_P256` /
//!     `RSA_2048` and `KeyUsage: SIGN_VERIFY`, then `TrentService.Sign` of [`MESSAGE`] (`MessageType: RAW`)
//!     with `ECDSA_SHA_256` / `RSASSA_PKCS1_V1_5_SHA_256`, SigV4-signed for `us-east-1`.
//!
//!   Every operation runs the same workers; an answer counts as a call only if it is a 200 whose body has
//!   what the call returns as non-empty strings (`Plaintext` and `CiphertextBlob`, `plain_text` and
//!   `cipher_text`, or `Signature`). After a warm-up of S seconds (default 1) it counts, for N
//!   seconds, the calls that came back, the other answers and transport failures (`errors`), and
//!   the latency percentiles. With
//!   `--server-pid` it also reports the server's CPU time over the measured window (from
//!   `/proc/PID/stat`, children included), so the server's cost per call is known even though the
//!   client shares the machine. With `--rate R` the workers send R calls per second in all, each call due at a
//!   fixed time and its latency counted from then (a constant-rate, coordinated-omission-free measurement, as
//!   `wrk2` makes); p99.9 is reported too. With `--wrk-script FILE` it creates the key, checks one call, writes
//!   a `wrk` Lua script replaying that call signed once to FILE, and loads nothing (`scripts/bench-wrk`).
//! - `inprocess [--operation data-key|sign-ecc|sign-rsa|verify-ecc|verify-rsa] [--via kms|aws-lc-rs|aws-lc-rs-parsed]
//!   [--seconds N]`: one operation in a loop on this thread; the rate is per core.
//!   - `--via kms` (default): `kms::Kms::in_memory()`, one key, and `generate_data_key` (32 bytes, empty
//!     context), or `Kms::sign` / `Kms::verify` of [`MESSAGE`] (`RAW`) under an `ECC_NIST_P256` key with
//!     `ECDSA_SHA_256` or an `RSA_2048` key with `RSASSA_PKCS1_V1_5_SHA_256` (verify checks one signature
//!     made by `Kms::sign`);
//!   - `--via aws-lc-rs` (sign and verify only): the same operation straight on `aws-lc-rs`, the library under
//!     `kms::crypto`, with a key of the same type: `EcdsaKeyPair::sign` / `RsaKeyPair::sign`, and
//!     `UnparsedPublicKey::verify` (which parses the public key on every call, as `kms::crypto` does);
//!   - `--via aws-lc-rs-parsed` (verify only): `ParsedPublicKey::verify_sig`, the public key parsed once.
//!   - `--via aws-api` (data-key only): `kms::AwsApi::handle` of a SigV4-signed `GenerateDataKey`, all of kmsim's
//!     own work for a call without the transport; `--via sigv4`: the signature check of that request alone.
//!
//! The same client drives kmsim and `moto_server`; `scripts/bench-kms` runs both for data keys and compares the
//! two dialects on one kmsim, `scripts/bench-sign` runs both for signatures and compares `Kms` with `aws-lc-rs`
//! in-process. Unknown flags (cargo passes `--bench`) are ignored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth::sdk_hmac;
use auth::sigv4::{self, SigningParams, UriEncoding};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self as lc_signature, EcdsaKeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue};
use hyper_util::rt::TokioIo;
use kms::crypto::SignInput;
use kms::spec::{KeySpec, KeyUsage, MessageType, SigningAlgorithm};
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
    operation: Operation,
    via: Via,
    /// Who signs the measured calls (`--caller ID:SECRET`; default the default account's root, test/test).
    caller: Credentials,
    /// The key policy of the key the run uses (`--key-policy FILE`; default the default key policy).
    key_policy: Option<String>,
    /// `--wrk-script FILE`: write a `wrk` script replaying one signed request to FILE, and load nothing.
    wrk_script: Option<String>,
    /// `--key-id ID`: call with this key instead of creating one (for a server that only answers, such as
    /// benches/edge_floor.rs).
    key_id: Option<String>,
    /// `--rate R`: send R calls per second in all (a constant rate, latency counted from when each call was due)
    /// instead of each connection sending its next call as soon as the last is answered.
    rate: Option<f64>,
}

/// An access key pair that signs requests.
#[derive(Debug, Clone)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
}

impl Credentials {
    /// The default account's root (`test` / `test`), which creates the run's key.
    fn root() -> Credentials {
        Credentials { access_key_id: ACCESS_KEY_ID.to_owned(), secret_access_key: SECRET_ACCESS_KEY.to_owned() }
    }
}

/// What Sign and Verify sign: 64 bytes, sent as a `RAW` message (moto_server takes no other), about the size of a
/// small JWT's signing input.
const MESSAGE: &[u8; 64] = b"kmsim sign benchmark: a 64-byte RAW message, signed on each call";

/// The call a run repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// GenerateDataKey (OTC: create-datakey), 256 bits.
    DataKey,
    /// Sign with an `ECC_NIST_P256` key, `ECDSA_SHA_256`.
    SignEcc,
    /// Sign with an `RSA_2048` key, `RSASSA_PKCS1_V1_5_SHA_256`.
    SignRsa,
    /// Verify with an `ECC_NIST_P256` key, `ECDSA_SHA_256` (in-process only).
    VerifyEcc,
    /// Verify with an `RSA_2048` key, `RSASSA_PKCS1_V1_5_SHA_256` (in-process only).
    VerifyRsa,
}

impl Operation {
    /// The name on the command line and in the results.
    fn name(self) -> &'static str {
        match self {
            Operation::DataKey => "data-key",
            Operation::SignEcc => "sign-ecc",
            Operation::SignRsa => "sign-rsa",
            Operation::VerifyEcc => "verify-ecc",
            Operation::VerifyRsa => "verify-rsa",
        }
    }

    /// The key type, and the algorithm, of a Sign or Verify operation; `None` for data keys.
    fn signing(self) -> Option<(KeySpec, SigningAlgorithm)> {
        match self {
            Operation::DataKey => None,
            Operation::SignEcc | Operation::VerifyEcc => Some((KeySpec::EccNistP256, SigningAlgorithm::EcdsaSha256)),
            Operation::SignRsa | Operation::VerifyRsa => {
                Some((KeySpec::Rsa2048, SigningAlgorithm::RsassaPkcs1V15Sha256))
            }
        }
    }

    /// Whether the operation verifies (rather than makes) a signature.
    fn is_verify(self) -> bool {
        matches!(self, Operation::VerifyEcc | Operation::VerifyRsa)
    }
}

/// What performs an in-process operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `kms::Kms`, the core behind both dialects.
    Kms,
    /// `aws-lc-rs` directly, as `kms::crypto` calls it.
    AwsLc,
    /// `aws-lc-rs` verifying with a public key parsed once.
    AwsLcParsed,
    /// `kms::AwsApi::handle`, the AWS front end, of a SigV4-signed request: all of kmsim's own work for a call.
    AwsApi,
    /// `Verifier::verify_sigv4` of a signed request (with the SHA-256 of its payload): the signature check alone.
    SigV4,
}

impl Via {
    /// The name on the command line, and the `target` of the results.
    fn name(self) -> &'static str {
        match self {
            Via::Kms => "in-process",
            Via::AwsLc => "aws-lc-rs",
            Via::AwsLcParsed => "aws-lc-rs-parsed",
            Via::AwsApi => "aws-api",
            Via::SigV4 => "sigv4",
        }
    }
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
        operation: Operation::DataKey,
        via: Via::Kms,
        caller: Credentials::root(),
        key_policy: None,
        wrk_script: None,
        rate: None,
        key_id: None,
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
            "--wrk-script" => opts.wrk_script = Some(value(&mut i)),
            "--key-id" => opts.key_id = Some(value(&mut i)),
            "--rate" => opts.rate = Some(num::<f64>(&value(&mut i))).filter(|r| *r > 0.0),
            "--dialect" => {
                opts.dialect = match value(&mut i).as_str() {
                    "aws" => Dialect::Aws,
                    "otc" => Dialect::Otc,
                    other => die(&format!("unknown dialect {other} (aws or otc)")),
                }
            }
            "--project-id" => opts.project_id = value(&mut i),
            "--caller" => {
                let pair = value(&mut i);
                let (id, secret) = pair.split_once(':').unwrap_or_else(|| die("--caller takes ACCESS_KEY_ID:SECRET"));
                opts.caller = Credentials { access_key_id: id.to_owned(), secret_access_key: secret.to_owned() };
            }
            "--key-policy" => {
                let path = value(&mut i);
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| die(&format!("reading {path}: {e}")));
                opts.key_policy = Some(text);
            }
            "--operation" => {
                let name = value(&mut i);
                opts.operation = [
                    Operation::DataKey,
                    Operation::SignEcc,
                    Operation::SignRsa,
                    Operation::VerifyEcc,
                    Operation::VerifyRsa,
                ]
                .into_iter()
                .find(|o| o.name() == name)
                .unwrap_or_else(|| die(&format!("unknown operation {name}")));
            }
            "--via" => {
                opts.via = match value(&mut i).as_str() {
                    "kms" => Via::Kms,
                    "aws-lc-rs" => Via::AwsLc,
                    "aws-lc-rs-parsed" => Via::AwsLcParsed,
                    "aws-api" => Via::AwsApi,
                    "sigv4" => Via::SigV4,
                    other => {
                        die(&format!("unknown --via {other} (kms, aws-api, sigv4, aws-lc-rs or aws-lc-rs-parsed)"))
                    }
                }
            }
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
        "usage: kms_load http --endpoint URL [--operation data-key|sign-ecc|sign-rsa] [--dialect aws|otc] \
         [--project-id ID] [--seconds N] [--connections C] [--threads T] [--warmup S] [--server-pid PID] \
         [--target NAME] [--rate R] [--key-id ID] [--wrk-script FILE]\n       kms_load inprocess [--operation data-key|sign-ecc|sign-rsa|verify-ecc|verify-rsa] \
         [--via kms|aws-api|sigv4|aws-lc-rs|aws-lc-rs-parsed] [--seconds N] [--warmup S]"
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
            if opts.operation.is_verify() {
                die("over HTTP the operation is data-key, sign-ecc or sign-rsa");
            }
            if opts.operation != Operation::DataKey && opts.dialect != Dialect::Aws {
                die("sign-ecc and sign-rsa speak the AWS dialect only");
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
    match (opts.via, opts.operation.signing()) {
        (Via::Kms, None) => inprocess_data_key(opts),
        (Via::Kms, Some((spec, algorithm))) => inprocess_kms_signing(opts, spec, algorithm),
        (Via::AwsLc | Via::AwsLcParsed, Some((spec, _))) => inprocess_aws_lc(opts, spec),
        (Via::AwsApi | Via::SigV4, None) => inprocess_front_end(opts),
        (Via::AwsApi | Via::SigV4, Some(_)) => die("--via aws-api and sigv4 are for the data-key operation"),
        (_, None) => die("--via aws-lc-rs is for the sign and verify operations"),
    }
}

/// The caller of the in-process runs: the default account's root, in `us-east-1`.
fn inprocess_caller() -> shared::Caller {
    auth::AccessKey::new("test", "test", "000000000000", None).caller(REGION)
}

/// `Kms::generate_data_key` on one key of an in-memory `Kms`.
fn inprocess_data_key(opts: &Options) {
    let kms = kms::Kms::in_memory().unwrap_or_else(|e| die(&format!("Kms::in_memory: {e}")));
    let caller = inprocess_caller();
    let key = kms
        .create_key(&caller, kms::service::CreateKeyInput::default())
        .unwrap_or_else(|e| die(&format!("create_key: {e}")));
    let context = BTreeMap::new();
    measure(opts, 256, || {
        let data_key = kms
            .generate_data_key(&caller, &key.id, 32, &context, true)
            .unwrap_or_else(|e| die(&format!("generate_data_key: {e}")));
        std::hint::black_box(data_key);
    });
}

/// A GenerateDataKey request as kmsim's edge hands it to the AWS front end, SigV4-signed now by the default
/// credentials: what `--via aws-api` and `--via sigv4` repeat.
fn front_end_request(key_id: &str) -> (http::request::Parts, Bytes) {
    let body = Bytes::from(format!(r#"{{"KeyId":"{key_id}","KeySpec":"AES_256"}}"#));
    let payload_hash = sigv4::payload_sha256(&body);
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert("host", HeaderValue::from_static("127.0.0.1:4566"));
    headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    headers.insert("x-amz-target", HeaderValue::from_static("TrentService.GenerateDataKey"));
    let params = SigningParams {
        access_key_id: ACCESS_KEY_ID,
        secret_access_key: SECRET_ACCESS_KEY,
        region: REGION,
        service: "kms",
        time: unix_now(),
    };
    sigv4::sign("POST", "/", "", &mut headers, &payload_hash, UriEncoding::Double, &params)
        .unwrap_or_else(|e| die(&format!("sign: {e}")));
    let mut request = http::Request::builder().method("POST").uri("/").body(()).expect("a valid request");
    *request.headers_mut() = headers;
    (request.into_parts().0, body)
}

/// `--via aws-api`: `AwsApi::handle` of a signed GenerateDataKey on an in-memory `Kms` (verification, parsing, the
/// core, the audit event in memory, the JSON answer), each request rebuilt from its parts as the edge would hand it
/// over, on a current-thread runtime. `--via sigv4`: only the signature check of that request, with the SHA-256 of
/// its payload, as `AwsApi::handle` makes it.
fn inprocess_front_end(opts: &Options) {
    let kms = Arc::new(kms::Kms::in_memory().unwrap_or_else(|e| die(&format!("Kms::in_memory: {e}"))));
    let key = kms
        .create_key(&inprocess_caller(), kms::service::CreateKeyInput::default())
        .unwrap_or_else(|e| die(&format!("create_key: {e}")));
    let verifier = Arc::new(auth::Verifier::new(Arc::new(auth::Accounts::with_defaults())));
    let (parts, body) = front_end_request(&key.id);
    if opts.via == Via::SigV4 {
        let request = auth::RequestParts { method: "POST", path: "/", query: "", headers: &parts.headers };
        measure(opts, 256, || {
            let hash = sigv4::payload_sha256(&body);
            let verified = verifier
                .verify_sigv4(&request, &hash, "kms", UriEncoding::Double, unix_now())
                .unwrap_or_else(|e| die(&format!("verify_sigv4: {e}")));
            std::hint::black_box(verified);
        });
        return;
    }
    let api = kms::AwsApi::new(kms, verifier);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    measure(opts, 256, || {
        let mut request = http::Request::new(axum::body::Body::from(body.clone()));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.headers_mut() = parts.headers.clone();
        let response = runtime.block_on(api.handle(request));
        if response.status() != http::StatusCode::OK {
            die(&format!("AwsApi::handle answered {}", response.status()));
        }
        std::hint::black_box(response);
    });
}

/// `Kms::sign` or `Kms::verify` of [`MESSAGE`] on one key of `spec` of an in-memory `Kms`.
fn inprocess_kms_signing(opts: &Options, spec: KeySpec, algorithm: SigningAlgorithm) {
    let kms = kms::Kms::in_memory().unwrap_or_else(|e| die(&format!("Kms::in_memory: {e}")));
    let caller = inprocess_caller();
    let input = kms::service::CreateKeyInput { spec, usage: KeyUsage::SignVerify, ..Default::default() };
    let key = kms.create_key(&caller, input).unwrap_or_else(|e| die(&format!("create_key: {e}")));
    let input = SignInput { bytes: MESSAGE, message_type: MessageType::Raw };
    let sign = || kms.sign(&caller, &key.id, input, algorithm).unwrap_or_else(|e| die(&format!("Kms::sign: {e}")));
    if opts.operation.is_verify() {
        let signature = sign().signature;
        measure(opts, 16, || {
            let arn = kms
                .verify(&caller, &key.id, input, algorithm, &signature)
                .unwrap_or_else(|e| die(&format!("Kms::verify: {e}")));
            std::hint::black_box(arn);
        });
    } else {
        measure(opts, 16, || {
            std::hint::black_box(sign());
        });
    }
}

/// The same Sign or Verify straight on `aws-lc-rs`, with a fresh key of `spec`: the library's own speed.
fn inprocess_aws_lc(opts: &Options, spec: KeySpec) {
    let rng = SystemRandom::new();
    let parsed = opts.via == Via::AwsLcParsed;
    if parsed && !opts.operation.is_verify() {
        die("--via aws-lc-rs-parsed is for the verify operations");
    }
    let verify_with = |verification: &'static dyn lc_signature::VerificationAlgorithm, public: &[u8], sig: &[u8]| {
        if parsed {
            let key = ParsedPublicKey::new(verification, public).unwrap_or_else(|_| die("ParsedPublicKey::new"));
            measure(opts, 16, || {
                key.verify_sig(MESSAGE, sig).unwrap_or_else(|_| die("verify_sig"));
            });
        } else {
            let key = UnparsedPublicKey::new(verification, public);
            measure(opts, 16, || {
                key.verify(MESSAGE, sig).unwrap_or_else(|_| die("UnparsedPublicKey::verify"));
            });
        }
    };
    match spec {
        KeySpec::EccNistP256 => {
            let pair = EcdsaKeyPair::generate(&lc_signature::ECDSA_P256_SHA256_ASN1_SIGNING)
                .unwrap_or_else(|_| die("EcdsaKeyPair::generate"));
            let sign = || pair.sign(&rng, MESSAGE).unwrap_or_else(|_| die("EcdsaKeyPair::sign"));
            if opts.operation.is_verify() {
                let signature = sign();
                verify_with(&lc_signature::ECDSA_P256_SHA256_ASN1, pair.public_key().as_ref(), signature.as_ref());
            } else {
                measure(opts, 16, || {
                    std::hint::black_box(sign());
                });
            }
        }
        KeySpec::Rsa2048 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap_or_else(|_| die("RsaKeyPair::generate"));
            let mut signature = vec![0u8; pair.public_modulus_len()];
            let sign = |signature: &mut [u8]| {
                pair.sign(&lc_signature::RSA_PKCS1_SHA256, &rng, MESSAGE, signature)
                    .unwrap_or_else(|_| die("RsaKeyPair::sign"));
            };
            if opts.operation.is_verify() {
                sign(&mut signature);
                verify_with(&lc_signature::RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref(), &signature);
            } else {
                measure(opts, 16, || {
                    sign(&mut signature);
                    std::hint::black_box(&signature);
                });
            }
        }
        other => die(&format!("no aws-lc-rs baseline for {other:?}")),
    }
}

/// Runs `call` in batches of `batch` on this thread, for the warm-up and then for the measured seconds, and prints
/// the result line.
fn measure(opts: &Options, batch: u64, mut call: impl FnMut()) {
    // Warm-up: caches, allocator, branch predictors.
    let warm_end = Instant::now() + Duration::from_secs_f64(opts.warmup.min(opts.seconds));
    while Instant::now() < warm_end {
        for _ in 0..batch {
            call();
        }
    }
    let cpu_start = self_thread_cpu();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(opts.seconds);
    let mut calls: u64 = 0;
    loop {
        for _ in 0..batch {
            call();
        }
        calls += batch;
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
        "{{\"target\":\"{}\",\"operation\":\"{}\",\"calls\":{calls},\"seconds\":{elapsed:.3},\"rate_per_core\":{rate:.0},\
         \"thread_cpu_seconds\":{},\"rate_per_cpu_second\":{}}}",
        opts.via.name(),
        opts.operation.name(),
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
fn signed_request(
    target: &Target,
    credentials: &Credentials,
    operation: &str,
    body: &Bytes,
    payload_hash: &str,
) -> hyper::Request<Full<Bytes>> {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert("host", target.host_header.clone());
    headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    let amz_target = match operation {
        "GenerateDataKey" => HeaderValue::from_static("TrentService.GenerateDataKey"),
        "CreateKey" => HeaderValue::from_static("TrentService.CreateKey"),
        "Sign" => HeaderValue::from_static("TrentService.Sign"),
        other => HeaderValue::from_str(&format!("TrentService.{other}")).expect("an operation name"),
    };
    headers.insert("x-amz-target", amz_target);
    let params = SigningParams {
        access_key_id: &credentials.access_key_id,
        secret_access_key: &credentials.secret_access_key,
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
struct Call {
    dialect: Dialect,
    /// The AWS operation (`GenerateDataKey`, `Sign`).
    operation: &'static str,
    /// The answer's fields that must be non-empty strings.
    fields: &'static [&'static str],
    target: Target,
    /// Who signs (AWS).
    credentials: Credentials,
    body: Bytes,
    /// SigV4's payload hash of `body` (AWS).
    payload_hash: String,
    /// The request path (OTC).
    path: String,
}

impl Call {
    /// One freshly signed request.
    fn request(&self) -> hyper::Request<Full<Bytes>> {
        match self.dialect {
            Dialect::Aws => {
                signed_request(&self.target, &self.credentials, self.operation, &self.body, &self.payload_hash)
            }
            Dialect::Otc => otc_request(&self.target, &self.path, &self.body),
        }
    }

    /// Whether a 200 answer carries what the call returns (both halves of a data key, or a signature) as
    /// non-empty JSON strings.
    fn is_answer(&self, body: &[u8]) -> bool {
        self.fields.iter().all(|field| has_string_field(body, field))
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

/// A `wrk` script (Lua) that replays `request`, signed once, on every connection: what a user's load test with a
/// generic HTTP tool sends. Every value goes in a Lua long string, which needs no escaping.
fn wrk_script(request: &hyper::Request<Full<Bytes>>, body: &Bytes) -> String {
    let long = |text: &str| format!("[==[{text}]==]");
    let mut script =
        format!("wrk.method = {}\nwrk.path = {}\n", long(request.method().as_str()), long(&request.uri().to_string()));
    for (name, value) in request.headers() {
        let value = value.to_str().unwrap_or_else(|_| die("a header that is not text"));
        // Title case, as wrk looks for `Host` before adding one of its own (two would break the signature).
        let name: Vec<String> = name
            .as_str()
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or(String::new(), |first| first.to_ascii_uppercase().to_string() + chars.as_str())
            })
            .collect();
        // A space after `[`: `[[` would open a Lua long string.
        script += &format!("wrk.headers[ {} ] = {}\n", long(&name.join("-")), long(value));
    }
    let body = std::str::from_utf8(body).unwrap_or_else(|_| die("a body that is not text"));
    script += &format!("wrk.body = {}\n", long(body));
    // No `response` callback: it would cost wrk CPU on every answer. wrk reports the answers that are not 2xx or
    // 3xx ("Non-2xx or 3xx responses"), which the bench script requires to be absent.
    script
}

/// Creates the key of a run in its dialect; its id.
async fn create_key(target: &Target, opts: &Options) -> String {
    let mut sender = connect(target).await.unwrap_or_else(|e| die(&e));
    let (request, what) = match opts.dialect {
        Dialect::Aws => {
            let mut input = match opts.operation.signing() {
                None => serde_json::json!({}),
                Some((spec, _)) => serde_json::json!({"KeySpec": spec.as_str(), "KeyUsage": "SIGN_VERIFY"}),
            };
            if let Some(policy) = &opts.key_policy {
                input["Policy"] = serde_json::json!(policy);
            }
            let body = Bytes::from(input.to_string());
            let root = Credentials::root();
            (signed_request(target, &root, "CreateKey", &body, &sigv4::payload_sha256(&body)), "CreateKey")
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
    let key_id = match &opts.key_id {
        Some(id) => id.clone(),
        None => create_key(&target, &opts).await,
    };
    let call = Arc::new(match (opts.dialect, opts.operation.signing()) {
        (Dialect::Aws, None) => {
            let body = Bytes::from(format!("{{\"KeyId\":\"{key_id}\",\"KeySpec\":\"AES_256\"}}"));
            let payload_hash = sigv4::payload_sha256(&body);
            Call {
                dialect: opts.dialect,
                operation: "GenerateDataKey",
                fields: &["Plaintext", "CiphertextBlob"],
                target: target.clone(),
                credentials: opts.caller.clone(),
                body,
                payload_hash,
                path: "/".into(),
            }
        }
        (Dialect::Aws, Some((_, algorithm))) => {
            let body = Bytes::from(format!(
                "{{\"KeyId\":\"{key_id}\",\"Message\":\"{}\",\"MessageType\":\"RAW\",\"SigningAlgorithm\":\"{}\"}}",
                BASE64.encode(MESSAGE),
                algorithm.as_str()
            ));
            let payload_hash = sigv4::payload_sha256(&body);
            Call {
                dialect: opts.dialect,
                operation: "Sign",
                fields: &["Signature"],
                target: target.clone(),
                credentials: opts.caller.clone(),
                body,
                payload_hash,
                path: "/".into(),
            }
        }
        (Dialect::Otc, _) => {
            let body = Bytes::from(format!("{{\"key_id\":\"{key_id}\",\"datakey_length\":\"256\"}}"));
            let path = format!("/v1.0/{}/kms/create-datakey", opts.project_id);
            Call {
                dialect: opts.dialect,
                operation: "create-datakey",
                fields: &["plain_text", "cipher_text"],
                target: target.clone(),
                credentials: opts.caller.clone(),
                body,
                payload_hash: String::new(),
                path,
            }
        }
    });

    // One check outside the load: the answer is a data key, or a signature.
    {
        let mut sender = connect(&target).await.unwrap_or_else(|e| die(&e));
        let (status, body, _) =
            send(&mut sender, call.request()).await.unwrap_or_else(|e| die(&format!("first {}: {e}", call.operation)));
        if status != 200 || !call.is_answer(&body) {
            die(&format!("the first {} request answered {status}: {}", call.operation, String::from_utf8_lossy(&body)));
        }
    }
    if let Some(path) = &opts.wrk_script {
        let script = wrk_script(&call.request(), &call.body);
        std::fs::write(path, script).unwrap_or_else(|e| die(&format!("writing {path}: {e}")));
        return;
    }

    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(opts.warmup);
    let measure_end = measure_start + Duration::from_secs_f64(opts.seconds);
    let stop = Arc::new(AtomicBool::new(false));

    let mut workers = Vec::with_capacity(opts.connections);
    // At a constant rate, call k is due at start + k / rate and goes to worker k mod C: its latency counts from when it
    // was due, so a slow answer is not hidden by the calls it delayed (no coordinated omission).
    let mut paced: Vec<Option<tokio::sync::mpsc::UnboundedReceiver<Instant>>> =
        (0..opts.connections).map(|_| None).collect();
    if let Some(rate) = opts.rate {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..opts.connections).map(|_| tokio::sync::mpsc::unbounded_channel()).unzip();
        paced = receivers.into_iter().map(Some).collect();
        std::thread::spawn(move || pace(rate, start, measure_end, &senders));
    }
    for mut paced in paced {
        let target = target.clone();
        let call = call.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut stats = WorkerStats { latencies_us: Vec::with_capacity(1 << 14), ..Default::default() };
            let mut sender: Option<Sender> = None;
            while !stop.load(Ordering::Relaxed) {
                // One attempt: a new connection if the last one was closed (moto_server closes
                // every connection after one answer), then the request. Latency covers both.
                let sent = match paced.as_mut() {
                    Some(due) => match due.recv().await {
                        Some(due) => due,
                        None => break,
                    },
                    None => Instant::now(),
                };
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
                    Ok((200, body, _)) if call.is_answer(&body) => {
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
        "{{\"target\":{},\"dialect\":\"{}\",\"operation\":\"{}\",\"calls\":{},\"seconds\":{},\"rate\":{rate:.1},\"errors\":{},\"reconnects\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"fixed_rate\":{},\
         \"connections\":{},\"client_threads\":{},\"server_cpu_seconds\":{},\"server_cpu_us_per_call\":{},\
         \"client_cpu_seconds\":{},\"client_cpu_us_per_call\":{},\"first_error\":{}}}",
        serde_json::Value::from(name),
        match opts.dialect {
            Dialect::Aws => "aws",
            Dialect::Otc => "otc",
        },
        opts.operation.name(),
        total.calls,
        opts.seconds,
        total.errors,
        total.reconnects,
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
        opts.rate.map_or("null".into(), |r| format!("{r:.0}")),
        opts.connections,
        opts.threads,
        opt_secs(server_cpu),
        per_call_us(server_cpu),
        opt_secs(client_cpu),
        per_call_us(client_cpu),
        total.first_error.map_or(serde_json::Value::Null, serde_json::Value::from),
    );
}

/// Hands each call of a constant-rate run to its worker when it is due (call k at `start + k / rate`, to worker k mod
/// C), until `end`. A thread of its own sleeping to each due time: tokio's timer has a resolution of a millisecond,
/// which would add up to one to every latency and release each millisecond's calls in one burst.
fn pace(rate: f64, start: Instant, end: Instant, workers: &[tokio::sync::mpsc::UnboundedSender<Instant>]) {
    for k in 0u64.. {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= end {
            return;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let worker = (k % workers.len() as u64) as usize;
        if workers[worker].send(due).is_err() {
            return;
        }
    }
}
