//! The admin API under `/_sim/` for test suites: health, reset, the audit log and the simulated
//! clock. It is unauthenticated (kmsim listens on loopback by default); `_` cannot start a
//! bucket name, so these paths never collide with the object store.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kms::Kms;
use kms::audit::AuditQuery;
use serde::Deserialize;
use serde_json::json;

/// The admin routes, to be nested under `/_sim`.
pub fn router(kms: Arc<Kms>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/reset", post(reset))
        .route("/audit", get(audit))
        .route("/clock", get(clock).post(advance_clock))
        .with_state(kms)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "services": {"kms": "running"}}))
}

async fn reset(State(kms): State<Arc<Kms>>) -> Response {
    match tokio::task::spawn_blocking(move || kms.reset()).await {
        Ok(Ok(())) => Json(json!({"reset": true})).into_response(),
        Ok(Err(e)) => internal(e.to_string()),
        Err(e) => internal(e.to_string()),
    }
}

async fn audit(State(kms): State<Arc<Kms>>, Query(query): Query<AuditQuery>) -> Json<serde_json::Value> {
    Json(json!({"events": kms.audit.query(&query)}))
}

async fn clock(State(kms): State<Arc<Kms>>) -> Json<serde_json::Value> {
    Json(clock_json(&kms))
}

fn clock_json(kms: &Kms) -> serde_json::Value {
    json!({
        "now": kms.clock.now(),
        "now_rfc3339": shared::time::format_rfc3339_millis(kms.clock.now_millis()),
        "offset_seconds": kms.clock.offset(),
    })
}

/// `POST /_sim/clock` body: how far to move the simulated clock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(default)]
    advance_seconds: i64,
    #[serde(default)]
    advance_days: i64,
}

/// Advances the clock, then runs the key sweep (deletions due, rotations due) before answering,
/// so a test sees the effects as soon as the call returns.
async fn advance_clock(
    State(kms): State<Arc<Kms>>,
    body: Result<Json<Advance>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(advance)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected {\"advance_seconds\": N} or {\"advance_days\": N}"})),
        )
            .into_response();
    };
    let Some(secs) = advance.advance_days.checked_mul(86_400).and_then(|d| d.checked_add(advance.advance_seconds))
    else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "advance out of range"}))).into_response();
    };
    kms.clock.advance(secs);
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
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "internal error"}))).into_response()
}
