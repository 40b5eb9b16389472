//! The admin API under `/_sim/` for test suites: health, reset, the audit log, the simulated
//! clock and fault rules. `_` cannot start a bucket name, so these paths never collide with the object store.
//!
//! Admin calls can destroy every key of a persistent data dir, so every request passes [`guard`]
//! first, in this order:
//!
//! 1. **Host**: the `Host` header must name a loopback address (`localhost`, `*.localhost`,
//!    `127.0.0.0/8`, `[::1]`) or one of the configured hosts: a web page that rebinds its own DNS
//!    name to 127.0.0.1 still sends its own name, and is refused (403).
//! 2. **Origin**: a request carrying an `Origin` other than kmsim's own (`http://` + its `Host`) is
//!    refused (403), so no other web page open in a local browser reaches the admin API.
//! 3. **Content type**: state-changing calls with a body (`POST`) accept only `application/json` (415): a
//!    cross-origin "simple request" (`text/plain`, forms) cannot be one, and is never sent without a
//!    CORS preflight that kmsim does not grant.
//! 4. **Authentication** (every route but `GET /_sim/health`, which reveals no state): either
//!    `Authorization: Bearer <admin token>` (the token kmsim generates at start, prints in its startup
//!    line and writes with mode 0600 to `admin.token` in the data dir), or a SigV4 signature
//!    (`AWS4-HMAC-SHA256`, any service name in the scope) by an access key of any configured account,
//!    e.g. `curl --aws-sigv4 aws:amz:us-east-1:kmsim --user test:test`. Otherwise 401.

use std::net::IpAddr;
use std::sync::Arc;

use auth::sigv4::{self, UriEncoding};
use auth::{RequestParts, Verifier};
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use evs::Evs;
use kms::Kms;
use kms::audit::AuditQuery;
use obs::Obs;
use serde::Deserialize;
use serde_json::json;
use shared::entropy::{Entropy, Purpose};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

mod state;

/// The largest admin request body read (the bodies are small JSON documents).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What `POST /_sim/reset` must carry on a persistent data dir.
pub const RESET_CONFIRMATION: &str = "delete-everything";

/// The bearer token that authenticates admin calls, generated at start.
#[derive(Clone)]
pub struct AdminToken(Arc<Zeroizing<String>>);

impl AdminToken {
    /// A fresh token: 32 bytes from `entropy` (the OS, or the seed under `--deterministic`), as 64 hex digits.
    pub fn generate(entropy: &Entropy) -> Self {
        let bytes = entropy.secret::<32>(Purpose::Admin);
        AdminToken(Arc::new(Zeroizing::new(hex::encode(bytes.as_ref()))))
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token (compared in constant time).
    pub fn matches(&self, given: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(given.as_bytes()))
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// Everything the admin API reaches.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The KMS (keys, audit, clock).
    pub kms: Arc<Kms>,
    /// The object store.
    pub obs: Arc<Obs>,
    /// The volume service.
    pub evs: Arc<Evs>,
    /// The identity store (IAM users, roles, policies, sessions).
    pub iam: Arc<iam::Identities>,
    /// Checks SigV4-signed admin calls against the configured access keys.
    pub verifier: Arc<Verifier>,
    /// The bearer token.
    pub token: AdminToken,
    /// Host names besides loopback ones that admin calls may arrive at (e.g. the `--host` address).
    pub extra_hosts: Vec<String>,
    /// Whether state lives in a data dir (reset then demands an explicit confirmation).
    pub persistent: bool,
    /// The edge's region (the console signs in it).
    pub region: String,
    /// Whether the edge speaks TLS.
    pub secure: bool,
    /// Where attached volumes are served over NBD.
    pub nbd_addr: Option<std::net::SocketAddr>,
    /// The data dir, if state lives in one (a state import syncs it and writes the SSE-S3 key there).
    pub data_dir: Option<std::path::PathBuf>,
    /// Held shared by every admin call but `/_sim/state`, which holds it exclusive (see [`crate::state`]).
    pub gate: crate::state::StateGate,
}

/// The admin routes, to be nested under `/_sim`.
pub fn router(admin: Admin) -> Router {
    let admin = Arc::new(admin);
    Router::new()
        .route("/health", get(health))
        .route("/reset", post(reset))
        .route("/audit", get(audit))
        .route("/clock", get(clock).post(advance_clock))
        .route("/faults", get(list_faults).post(add_faults).delete(clear_faults))
        .route("/faults/{id}", delete(delete_fault))
        .route("/state", get(state::export).put(state::import).post(state::import))
        .with_state(admin.clone())
        .merge(crate::console::page_router())
        .nest("/console", crate::console::router(admin.clone()))
        .layer(middleware::from_fn_with_state(admin, guard))
}

/// A refusal, as `{"error": "..."}`.
fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Checks Host, Origin, content type and authentication (see the module docs) before any handler.
async fn guard(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Some(host) = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return refuse(StatusCode::FORBIDDEN, "admin calls need a Host header naming a loopback address");
    };
    if !host_allowed(host, &admin.extra_hosts) {
        return refuse(
            StatusCode::FORBIDDEN,
            "admin calls are served only to loopback host names (or the configured host)",
        );
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let own = [format!("http://{host}"), format!("https://{host}")];
        if !origin.to_str().is_ok_and(|o| own.iter().any(|own| own.eq_ignore_ascii_case(o))) {
            return refuse(StatusCode::FORBIDDEN, "admin calls are refused from other origins");
        }
    }
    // DELETE needs no body: like any non-simple method, no other page can send it without a preflight.
    let changes_state = !matches!(parts.method, Method::GET | Method::HEAD | Method::DELETE);
    // A state archive arrives as `application/octet-stream` (not a CORS-safelisted type either), streamed.
    let state_route = parts.uri.path() == "/state";
    let archive_upload = state_route && changes_state;
    if archive_upload && !is_media_type(&parts.headers, state::ARCHIVE_MEDIA_TYPE) {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "a state archive is sent as application/octet-stream");
    }
    if changes_state && !archive_upload && !is_json(&parts.headers) {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "admin calls that change state take application/json");
    }
    let (body, payload) = if archive_upload {
        (body, None)
    } else {
        match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => (Body::from(bytes.clone()), Some(bytes)),
            Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "admin request bodies are at most 64 KiB"),
        }
    };
    // Health reveals no state; the console's login checks the token it is given itself.
    let open = parts.method == Method::GET && matches!(parts.uri.path(), "/health" | "/console/login");
    if !open && let Err(message) = authenticate(&admin, &parts, payload.as_ref()) {
        let mut response = refuse(StatusCode::UNAUTHORIZED, &message);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"kmsim admin\""));
        return response;
    }
    // `/_sim/state` takes the gate exclusive itself; every other call (reset, clock, ...) holds it shared.
    let _shared = match state_route {
        true => None,
        false => Some(admin.gate.shared().await),
    };
    next.run(Request::from_parts(parts, body)).await
}

/// Whether `host` (a `Host` header: name or address, optional port) is loopback or configured.
fn host_allowed(host: &str, extra: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((address, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) => address,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    extra.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

fn is_json(headers: &HeaderMap) -> bool {
    is_media_type(headers, "application/json")
}

fn is_media_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// Checks the bearer token or the SigV4 signature; the error says what is missing or wrong. A streamed body
/// (`payload` none: a state archive) is signed as `UNSIGNED-PAYLOAD`.
fn authenticate(admin: &Admin, parts: &axum::http::request::Parts, payload: Option<&Bytes>) -> Result<(), String> {
    if let Some(token) = console_cookie(&parts.headers) {
        return if admin.token.matches(token) { Ok(()) } else { Err("wrong admin token in the console cookie".into()) };
    }
    let Some(authorization) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(
            "admin calls need `Authorization: Bearer <admin token>` (printed at start) or a SigV4 signature".into()
        );
    };
    let text = authorization.to_str().map_err(|_| "the Authorization header is not valid text".to_owned())?;
    if let Some(token) = text.strip_prefix("Bearer ") {
        return if admin.token.matches(token.trim()) { Ok(()) } else { Err("wrong admin token".into()) };
    }
    let signed = sigv4::Authorization::parse(text).map_err(|e| format!("admin authentication failed: {e}"))?;
    let service = signed.service.to_owned();
    // Nested under `/_sim`, the request's own URI has lost that prefix; the client signed the whole path.
    let path = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.path(), |original| original.path());
    let request = RequestParts {
        method: parts.method.as_str(),
        path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
    };
    let payload = match payload {
        Some(body) => sigv4::payload_sha256(body),
        None => match parts.headers.get("x-amz-content-sha256").map(|v| v.as_bytes()) {
            Some(b"UNSIGNED-PAYLOAD") => "UNSIGNED-PAYLOAD".to_owned(),
            _ => {
                return Err("a streamed admin body is signed with `x-amz-content-sha256: UNSIGNED-PAYLOAD` \
                            (or send the admin token)"
                    .into());
            }
        },
    };
    admin
        .verifier
        .verify_sigv4(&request, &payload, &service, UriEncoding::Double, shared::time::now_unix())
        .map(drop)
        .map_err(|e| format!("admin authentication failed: {e}"))
}

/// The admin token the console's cookie carries, if the request has that cookie.
fn console_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(crate::console::COOKIE)?.strip_prefix('='))
}

/// `ok`, or `degraded` when the audit log cannot be written or records were set aside at start
/// (each service's figures say which).
async fn health(State(admin): State<Arc<Admin>>) -> Json<serde_json::Value> {
    let audit = admin.kms.audit.health();
    let volume_records_set_aside = admin.evs.set_aside_records();
    let object_records_set_aside = admin.obs.set_aside_records();
    let degraded = audit.degraded || volume_records_set_aside > 0 || object_records_set_aside > 0;
    Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "services": {
            "kms": {"status": "running", "audit": audit},
            "obs": {"status": "running", "records_set_aside": object_records_set_aside},
            "evs": {"status": "running", "records_set_aside": volume_records_set_aside},
        },
    }))
}

/// `POST /_sim/reset` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    /// Must be [`RESET_CONFIRMATION`] when state lives in a data dir.
    confirm: Option<String>,
}

/// Resets every service to a consistent empty state: volumes and snapshots first (they hold data
/// keys of the KMS), then buckets and objects, then identities (the configuration's come back), then keys,
/// aliases, audit and clock.
async fn reset(State(admin): State<Arc<Admin>>, body: Bytes) -> Response {
    let request: ResetRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("expected {{\"confirm\": \"...\"}}: {e}")),
    };
    if admin.persistent && request.confirm.as_deref() != Some(RESET_CONFIRMATION) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "this kmsim keeps its state in a data dir: reset deletes every key, object and volume there for good; \
             send {\"confirm\": \"delete-everything\"} to do it",
        );
    }
    if let Err(e) = admin.evs.reset().await {
        return internal(format!("resetting the volume service: {e}"));
    }
    if let Err(e) = admin.obs.reset().await {
        return internal(format!("resetting the object store: {e}"));
    }
    // Under --deterministic every stream starts again before the services seed themselves again, as at a start:
    // the same calls after a reset get the same answers as after a start. Not before the volumes and objects are
    // gone (their reset draws nothing): a failed reset must not leave their ids to be drawn again.
    admin.kms.entropy.restart();
    // Users, roles, policies and sessions; the configuration's identities come back.
    let identities = admin.iam.clone();
    match tokio::task::spawn_blocking(move || identities.reset()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return internal(format!("resetting the identity store: {e}")),
        Err(e) => return internal(format!("resetting the identity store: {e}")),
    }
    let kms = admin.kms.clone();
    match tokio::task::spawn_blocking(move || kms.reset()).await {
        Ok(Ok(())) => Json(json!({"reset": true})).into_response(),
        Ok(Err(e)) => internal(format!("resetting the KMS: {e}")),
        Err(e) => internal(format!("resetting the KMS: {e}")),
    }
}

/// The query parses the stored events, which can take a while over a full index: off the async workers.
async fn audit(State(admin): State<Arc<Admin>>, Query(query): Query<AuditQuery>) -> Response {
    let kms = admin.kms.clone();
    match tokio::task::spawn_blocking(move || kms.audit.query(&query)).await {
        Ok(events) => Json(json!({ "events": events })).into_response(),
        Err(e) => internal(format!("querying the audit log: {e}")),
    }
}

/// `GET /_sim/faults`: every rule with its counters.
async fn list_faults(State(admin): State<Arc<Admin>>) -> Json<serde_json::Value> {
    Json(json!({ "rules": admin.kms.faults.list() }))
}

/// `POST /_sim/faults`: one rule, an array of rules or `{"rules": [...]}`; all are added or none. Answers their ids.
async fn add_faults(State(admin): State<Arc<Admin>>, body: Bytes) -> Response {
    match admin.kms.faults.load(&String::from_utf8_lossy(&body)) {
        Ok(ids) => (StatusCode::CREATED, Json(json!({ "ids": ids }))).into_response(),
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `DELETE /_sim/faults/{id}`.
async fn delete_fault(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    match id.parse::<u64>() {
        Ok(id) if admin.kms.faults.delete(id) => StatusCode::NO_CONTENT.into_response(),
        _ => refuse(StatusCode::NOT_FOUND, &format!("no fault rule {id}")),
    }
}

/// `DELETE /_sim/faults`: every rule.
async fn clear_faults(State(admin): State<Arc<Admin>>) -> StatusCode {
    admin.kms.faults.clear();
    StatusCode::NO_CONTENT
}

async fn clock(State(admin): State<Arc<Admin>>) -> Json<serde_json::Value> {
    Json(clock_json(&admin.kms))
}

/// The simulated clock, as `GET /_sim/clock` answers it.
pub(crate) fn clock_json(kms: &Kms) -> serde_json::Value {
    json!({
        "now": kms.clock.now(),
        "now_rfc3339": shared::time::format_rfc3339_millis(kms.clock.now_millis()),
        "offset_seconds": kms.clock.offset(),
        "frozen": kms.clock.is_frozen(),
    })
}

/// `POST /_sim/clock` body: how far to move the simulated clock forward.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(default)]
    advance_seconds: i64,
    #[serde(default)]
    advance_days: i64,
}

/// Advances the clock, then runs the key sweep (deletions due, rotations due) before answering,
/// so a test sees the effects as soon as the call returns. The clock never goes back (keys would
/// see time run backwards) nor further than `shared::clock::MAX_OFFSET_SECS` ahead.
async fn advance_clock(State(admin): State<Arc<Admin>>, body: Bytes) -> Response {
    let Ok(advance) = serde_json::from_slice::<Advance>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"advance_seconds\": N} or {\"advance_days\": N}");
    };
    let Some(secs) = advance.advance_days.checked_mul(86_400).and_then(|d| d.checked_add(advance.advance_seconds))
    else {
        return refuse(StatusCode::BAD_REQUEST, "advance out of range");
    };
    if advance.advance_days < 0 || advance.advance_seconds < 0 {
        return refuse(StatusCode::BAD_REQUEST, "the simulated clock only moves forward");
    }
    let kms = admin.kms.clone();
    if let Err(e) = kms.clock.try_advance(secs) {
        return refuse(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let sweeper = kms.clone();
    match tokio::task::spawn_blocking(move || sweeper.sweep()).await {
        Ok(Ok((purged, rotated))) => {
            let mut body = clock_json(&kms);
            body["purged_keys"] = json!(purged);
            body["rotated_keys"] = json!(rotated);
            Json(body).into_response()
        }
        Ok(Err(e)) => internal(e.to_string()),
        Err(e) => internal(e.to_string()),
    }
}

fn internal(detail: String) -> Response {
    tracing::error!(%detail, "admin request failed");
    refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let extra = ["kmsim.internal".to_owned(), "10.1.2.3".to_owned()];
        for ok in [
            "localhost",
            "localhost:4566",
            "LOCALHOST.:80",
            "app.localhost:1",
            "127.0.0.1",
            "127.1.2.3:4566",
            "[::1]:4566",
            "[::1]",
            "kmsim.internal:4566",
            "10.1.2.3",
        ] {
            assert!(host_allowed(ok, &extra), "{ok} should be allowed");
        }
        for refused in [
            "evil.example",
            "evil.example:4566",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::2]:4566",
            "[::1]x",
            "localhost:port",
            "10.1.2.4",
            "0.0.0.0",
            "",
        ] {
            assert!(!host_allowed(refused, &extra), "{refused} should be refused");
        }
    }

    #[test]
    fn json_media_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert!(!is_json(&headers));
    }
}
