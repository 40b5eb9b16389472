//! The console: a web page at `/_sim/console/` in which a person watches envelope encryption happen
//! (`docs/console.md`). The page talks to kmsim's real APIs: this module *signs* each request for the principal
//! the person picked and the page sends it itself. What no public API shows is answered here: the principals, how
//! an object is stored (read from the stored message header, never by decrypting), the volumes' LUKS facts, the
//! live audit stream, and one console-only fault (corrupt a stored byte).
//!
//! Nested in the admin router, so the admin guard (loopback `Host`, own `Origin`, JSON bodies, authentication)
//! runs first; a browser authenticates with the cookie [`login`] sets from the admin token.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use auth::accounts::AccessKey;
use auth::sdk_hmac;
use auth::sigv4::{self, SigningParams, UriEncoding};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use kms::audit::{AuditEvent, AuditQuery};
use obs::envelope::{ALGORITHM_SUITE_ID, Header as MessageHeader};
use obs::model::{ObjectRecord, SseRecord, VersionSel};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use crate::admin::Admin;

/// The cookie [`login`] sets: the admin token, for the browser's later requests under `/_sim`.
pub const COOKIE: &str = "kmsim_console";

/// The console's security headers: a strict Content-Security-Policy (no inline script or style, requests to
/// kmsim's own origin only), no MIME sniffing, no referrer, no caching, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Live audit streams open at once, at most.
const MAX_STREAMS: usize = 16;
/// Events a new audit stream starts with.
const RECENT_EVENTS: usize = 100;
/// Longest validity of a presigned URL (S3's own limit: 7 days).
const MAX_PRESIGN_SECS: u32 = 604_800;

/// The characters SigV4 leaves unencoded in a query component.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

mod assets {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// What the console reaches: the admin API's services, and what it needs besides.
#[derive(Debug, Clone)]
pub struct Console {
    admin: Arc<Admin>,
    streams: Arc<Semaphore>,
}

/// The console's routes, to be nested under `/_sim/console` (inside the admin guard); the page itself is
/// [`page_router`]'s.
pub fn router(admin: Arc<Admin>) -> Router {
    let console = Console { admin, streams: Arc::new(Semaphore::new(MAX_STREAMS)) };
    Router::new()
        .route("/", get(to_page))
        .route("/login", get(login))
        .route("/api/session", get(session))
        .route("/api/sign", post(sign))
        .route("/api/envelope", get(envelope))
        .route("/api/corrupt", post(corrupt))
        .route("/api/volumes", get(volumes))
        .route("/api/audit/stream", get(audit_stream))
        .route("/{file}", get(asset))
        .layer(axum::middleware::map_response(secure))
        .with_state(console)
}

/// Adds the security headers to every console response.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A refusal: its status, and its message answered as `{"error": "..."}`.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal(status, message.into())
}

// ---- the page -------------------------------------------------------------------------------------

/// The page at `/console/` (under `/_sim`; a nested router's own routes cannot end in `/`), so that its files
/// resolve beside it.
pub fn page_router() -> Router {
    Router::new().route("/console/", get(page)).layer(axum::middleware::map_response(secure))
}

async fn page() -> Response {
    serve_asset("index.html")
}

/// `/_sim/console` → `/_sim/console/`.
async fn to_page() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, "/_sim/console/")]).into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    serve_asset(&file)
}

fn serve_asset(name: &str) -> Response {
    match assets::ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], Body::from(*bytes)).into_response()
        }
        None => refuse(StatusCode::NOT_FOUND, format!("the console has no file {name:?}")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

/// `GET /_sim/console/login?token=T`: with the admin token, sets the console cookie and sends the browser to the
/// page (the URL `kmsim` prints, to be opened once). The admin guard lets this path through unauthenticated.
async fn login(State(console): State<Console>, Query(query): Query<LoginQuery>) -> Response {
    let Some(token) = query.token.filter(|t| console.admin.token.matches(t)) else {
        return refuse(StatusCode::UNAUTHORIZED, "open the console with the URL kmsim printed at start")
            .into_response();
    };
    let cookie = format!("{COOKIE}={token}; Path=/_sim; HttpOnly; SameSite=Strict");
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/_sim/console/"));
    match HeaderValue::from_str(&cookie) {
        Ok(value) => headers.insert(header::SET_COOKIE, value),
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "the token is not valid in a cookie").into_response(),
    };
    response
}

// ---- session and principals -----------------------------------------------------------------------

/// `GET /api/session`: the endpoint, region, clock and every principal the page may act as.
async fn session(State(console): State<Console>, headers: HeaderMap) -> Json<Value> {
    let admin = &console.admin;
    let accounts = admin.verifier.accounts();
    let mut keys = accounts.long_term_keys();
    // The default key first, then the accounts' roots, then users.
    keys.sort_by_key(|key| {
        (key.access_key_id != auth::accounts::DEFAULT_ACCESS_KEY_ID, !key.principal_arn.ends_with(":root"))
    });
    let principals: Vec<Value> = keys
        .iter()
        .map(|key| {
            json!({
                "access_key_id": key.access_key_id,
                "arn": key.principal_arn,
                "account": key.account_id,
                "kind": if key.principal_arn.ends_with(":root") { "root" } else { "user" },
                "project_id": key.project_id,
                "default": key.access_key_id == auth::accounts::DEFAULT_ACCESS_KEY_ID,
            })
        })
        .collect();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    Json(json!({
        "endpoint": format!("{}://{host}", if admin.secure { "https" } else { "http" }),
        "region": admin.region,
        "data_dir": admin.persistent,
        "clock": crate::admin::clock_json(&admin.kms),
        "principals": principals,
    }))
}

/// The long-term access key `id` (a session's key cannot be used: its token is not the console's).
fn principal(console: &Console, id: &str) -> Result<Arc<AccessKey>, Refusal> {
    console
        .admin
        .verifier
        .accounts()
        .get(id)
        .filter(|key| key.session.is_none())
        .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, format!("no principal has the access key {id:?}")))
}

// ---- signing --------------------------------------------------------------------------------------

/// Which API a request to sign is for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Api {
    /// The AWS KMS JSON API: SigV4 in headers, service `kms`.
    Kms,
    /// The OTC / Huawei Cloud KMS API: SDK-HMAC-SHA256 in headers.
    Otc,
    /// S3: a SigV4 presigned URL.
    S3,
}

/// `POST /api/sign` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignRequest {
    principal: String,
    api: Api,
    method: String,
    path: String,
    #[serde(default)]
    query: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    expires: Option<u32>,
}

/// `POST /api/sign`: signs one request for a principal; the page sends it unchanged (docs/console.md).
async fn sign(
    State(console): State<Console>,
    headers: HeaderMap,
    Json(request): Json<SignRequest>,
) -> Result<Json<Value>, Refusal> {
    signed(&console, &headers, &request).map(Json)
}

fn signed(console: &Console, incoming: &HeaderMap, request: &SignRequest) -> Result<Value, Refusal> {
    let bad = |message: String| refuse(StatusCode::BAD_REQUEST, message);
    let key = principal(console, &request.principal)?;
    let method = request.method.to_ascii_uppercase();
    if !matches!(method.as_str(), "GET" | "HEAD" | "PUT" | "POST" | "DELETE") {
        return Err(bad(format!("method {method} is not one the console signs")));
    }
    let path = &request.path;
    if !path.starts_with('/') || path.parse::<axum::http::uri::PathAndQuery>().is_err() || path.contains('?') {
        return Err(bad(format!("{path:?} is not a request path")));
    }
    let query = request
        .query
        .iter()
        .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, UNRESERVED), utf8_percent_encode(v, UNRESERVED)))
        .collect::<Vec<_>>()
        .join("&");
    let host =
        incoming.get(header::HOST).cloned().ok_or_else(|| bad("the console request has no Host header".into()))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| bad(format!("{name:?} is not a header name")))?;
        if matches!(name.as_str(), "host" | "authorization" | "x-amz-date" | "x-sdk-date") {
            return Err(bad(format!("the console sets {name} itself")));
        }
        let value = HeaderValue::from_str(value).map_err(|_| bad(format!("the value of {name} is not valid")))?;
        headers.insert(name, value);
    }
    headers.insert(header::HOST, host);
    let region = console.admin.region.as_str();
    let now = shared::time::now_unix();
    let params = SigningParams {
        access_key_id: &key.access_key_id,
        secret_access_key: &key.secret_access_key,
        region,
        service: "kms",
        time: now,
    };
    let failed = |e: auth::AuthError| bad(format!("the request cannot be signed: {e}"));
    let url = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
    let url = match request.api {
        Api::Kms => {
            let payload = sigv4::payload_sha256(request.body.as_bytes());
            sigv4::sign(&method, path, &query, &mut headers, &payload, UriEncoding::Double, &params).map_err(failed)?;
            url
        }
        Api::Otc => {
            let credentials =
                sdk_hmac::Credentials { access_key_id: &key.access_key_id, secret_access_key: &key.secret_access_key };
            sdk_hmac::sign(&method, path, &query, &mut headers, request.body.as_bytes(), credentials, now)
                .map_err(failed)?;
            url
        }
        Api::S3 => {
            let expires = request.expires.unwrap_or(900).clamp(1, MAX_PRESIGN_SECS);
            let params = SigningParams { service: "s3", ..params };
            let signed_query = sigv4::presign(&method, path, &query, &headers, expires, UriEncoding::Single, &params)
                .map_err(failed)?;
            format!("{path}?{signed_query}")
        }
    };
    headers.remove(header::HOST);
    let headers: BTreeMap<&str, &str> =
        headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))).collect();
    Ok(json!({ "method": method, "url": url, "headers": headers }))
}

// ---- how an object is stored ----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ObjectQuery {
    bucket: String,
    key: String,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
}

/// The record of the object a query names, or the 404 to answer.
fn object_record(console: &Console, query: &ObjectQuery) -> Result<Arc<ObjectRecord>, Refusal> {
    let version = match &query.version_id {
        None => None,
        Some(text) => Some(
            VersionSel::parse(text)
                .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, format!("{text:?} is not a version id")))?,
        ),
    };
    let store = console.admin.obs.store();
    let not_found = || refuse(StatusCode::NOT_FOUND, format!("no object {}/{}", query.bucket, query.key));
    let record = store.find(&query.bucket, &query.key, version.as_ref()).map_err(|_| not_found())?;
    if record.delete_marker {
        return Err(not_found());
    }
    Ok(record)
}

/// `GET /api/envelope?bucket=B&key=K[&versionId=V]`: how the object is stored, from its record and the stored
/// message header.
async fn envelope(State(console): State<Console>, Query(query): Query<ObjectQuery>) -> Result<Json<Value>, Refusal> {
    let record = object_record(&console, &query)?;
    let (encryption, key_arn) = match &record.sse {
        SseRecord::None => ("none", None),
        SseRecord::S3 => ("AES256", None),
        SseRecord::Customer { .. } => ("SSE-C", None),
        SseRecord::Kms { key_arn, .. } => ("aws:kms", Some(key_arn.to_string())),
    };
    let message = match record.envelope_header_len {
        None => Value::Null,
        Some(header_len) => message_json(&read_header(&console, &record, header_len).await?, record.size),
    };
    let stored_path = console.admin.persistent.then(|| format!("objects/{}", record.blob));
    Ok(Json(json!({
        "bucket": query.bucket,
        "key": record.key,
        "version_id": record.version_id.as_deref(),
        "encryption": encryption,
        "key_arn": key_arn,
        "plaintext_bytes": record.size,
        "stored_bytes": record.stored_size,
        "stored_path": stored_path,
        "multipart_parts": record.part_sizes.len(),
        "message": message,
    })))
}

async fn read_header(console: &Console, record: &ObjectRecord, header_len: u64) -> Result<MessageHeader, Refusal> {
    let failed = |message: String| refuse(StatusCode::INTERNAL_SERVER_ERROR, message);
    let bytes = console
        .admin
        .obs
        .store()
        .read_head(&record.blob, header_len)
        .await
        .map_err(|e| failed(format!("reading the stored message: {e}")))?;
    MessageHeader::parse(&bytes).map_err(|e| failed(format!("the stored message header does not parse: {e}")))
}

fn message_json(header: &MessageHeader, plaintext_bytes: u64) -> Value {
    let frame_length = header.frame_length();
    let keys: Vec<Value> = header
        .encrypted_data_keys()
        .iter()
        .map(|key| {
            json!({
                "provider_id": key.provider_id,
                "provider_info": key.provider_info,
                "ciphertext_hex": hex::encode(&key.ciphertext),
                "ciphertext_bytes": key.ciphertext.len(),
            })
        })
        .collect();
    json!({
        "format": "AWS Encryption SDK message, version 2",
        "algorithm_suite": format!("0x{ALGORITHM_SUITE_ID:04X}"),
        "algorithm": "AES-256-GCM, HKDF-SHA512 key derivation, key commitment, no signature",
        "message_id": hex::encode(header.message_id()),
        "encryption_context": header.encryption_context(),
        "encrypted_data_keys": keys,
        "content_type": "framed",
        "frame_length": frame_length,
        // Every message ends with a final frame, empty when the plaintext fills its regular frames exactly.
        "frames": plaintext_bytes / u64::from(frame_length.max(1)) + 1,
        "header_bytes": header.serialized_len(),
    })
}

/// `POST /api/corrupt {"bucket", "key"}`: flips one bit of a byte in the middle of the object's stored body,
/// after the message header, durably. The next read fails its authentication check.
async fn corrupt(State(console): State<Console>, Json(query): Json<ObjectQuery>) -> Result<Json<Value>, Refusal> {
    let record = object_record(&console, &query)?;
    let Some(header_len) = record.envelope_header_len else {
        return Err(refuse(
            StatusCode::CONFLICT,
            "the object is stored in the clear: there is nothing to authenticate",
        ));
    };
    // The middle of what follows the header: a frame's content, IV or tag, all of which are authenticated.
    let offset = header_len + record.stored_size.saturating_sub(header_len) / 2;
    let (before, after) = console
        .admin
        .obs
        .store()
        .flip_bit(&record.blob, offset)
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("corrupting the object failed: {e}")))?;
    Ok(Json(json!({ "offset": offset, "before": format!("{before:02x}"), "after": format!("{after:02x}") })))
}

// ---- volumes --------------------------------------------------------------------------------------

/// `GET /api/volumes`: every volume, with its LUKS header facts and NBD URL.
async fn volumes(State(console): State<Console>, headers: HeaderMap) -> Json<Value> {
    let admin = &console.admin;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':').map(|(name, _)| name).or(Some(h)))
        .unwrap_or("127.0.0.1")
        .to_owned();
    let nbd_port = admin.nbd_addr.map(|addr| addr.port());
    let mut out = Vec::new();
    for volume in admin.evs.all_volumes() {
        let luks = match &volume.encryption {
            Some(_) => admin.evs.luks_header(&volume.id).await.map(|h| {
                json!({
                    "version": 1,
                    "cipher": "aes-xts-plain64",
                    "hash": "sha256",
                    "key_bytes": evs::luks::KEY_BYTES,
                    "payload_offset_sectors": h.payload_offset_sectors,
                    "active_key_slots": h.active_key_slots(),
                    "mk_digest_iterations": h.mk_digest_iterations(),
                    "uuid": h.uuid,
                })
            }),
            None => None,
        };
        out.push(json!({
            "id": volume.id,
            "name": volume.name,
            "size_gb": volume.size_gb,
            "status": volume.status.as_str(),
            "encrypted": volume.encryption.is_some(),
            "key_id": volume.encryption.as_ref().map(|e| e.cmk_id.clone()),
            "key_arn": volume.encryption.as_ref().map(|e| e.key_arn.clone()),
            "attached": !volume.attachments.is_empty(),
            "nbd_url": nbd_port.map(|port| format!("nbd://{host}:{port}/{}", volume.id)),
            "luks": luks,
            "encrypted_data_key_hex": volume.encryption.as_ref().map(|e| e.dek_ciphertext.clone()),
        }));
    }
    Json(Value::Array(out))
}

// ---- the live audit -------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct StreamQuery {
    key: Option<String>,
    operation: Option<String>,
    outcome: Option<String>,
}

/// `GET /api/audit/stream`: server-sent events, the last [`RECENT_EVENTS`] matching events then each new one. A
/// reader that falls behind skips events (an `event: lagged` says how many); at most [`MAX_STREAMS`] at once.
async fn audit_stream(State(console): State<Console>, Query(filter): Query<StreamQuery>) -> Response {
    let Ok(permit) = console.streams.clone().try_acquire_owned() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("at most {MAX_STREAMS} audit streams at once"))
            .into_response();
    };
    let empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let query = AuditQuery {
        key: empty(filter.key),
        operation: empty(filter.operation),
        outcome: empty(filter.outcome),
        ..AuditQuery::default()
    };
    let (recent, receiver) = console.admin.kms.audit.subscribe(&query, RECENT_EVENTS);
    Sse::new(events(recent, receiver, query, permit)).keep_alive(KeepAlive::default()).into_response()
}

/// The stream of one reader: the recent events, then the live ones that match.
fn events(
    recent: Vec<AuditEvent>,
    receiver: broadcast::Receiver<Arc<AuditEvent>>,
    query: AuditQuery,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = (recent.into_iter(), receiver, query, permit);
    futures::stream::unfold(state, |(mut recent, mut receiver, query, permit)| async move {
        if let Some(event) = recent.next() {
            return Some((Ok(event_of(&event)), (recent, receiver, query, permit)));
        }
        loop {
            match receiver.recv().await {
                Ok(event) if query.matches(&event) => {
                    return Some((Ok(event_of(&event)), (recent, receiver, query, permit)));
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    let lagged = Event::default().event("lagged").data(skipped.to_string());
                    return Some((Ok(lagged), (recent, receiver, query, permit)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

fn event_of(event: &AuditEvent) -> Event {
    Event::default().data(serde_json::to_string(event).unwrap_or_else(|_| "{}".into()))
}
