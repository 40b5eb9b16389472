//! `/_sim/state`: `GET` streams a state archive of the running kmsim (`docs/testing.md`, "State fixtures");
//! `PUT` (or `POST`) imports one into a kmsim that holds nothing yet. The passphrase travels in the
//! [`PASSPHRASE_HEADER`] header, never in the URL.

use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::{Admin, internal, refuse};
use crate::state::archive::{ArchiveError, KdfParams, Passphrase};
use crate::state::{self, StateError, StateServices};

/// The header that carries the archive's passphrase.
pub const PASSPHRASE_HEADER: &str = "x-kmsim-state-passphrase";
/// The media type of a state archive.
pub const ARCHIVE_MEDIA_TYPE: &str = "application/octet-stream";
/// The largest archive `PUT /_sim/state` takes (it is spooled to a temporary file first).
pub const MAX_ARCHIVE_BYTES: u64 = 16 << 30;
/// How much of the archive file a response reads at a time.
const CHUNK: usize = 256 * 1024;

fn services(admin: &Admin) -> StateServices {
    StateServices {
        kms: admin.kms.clone(),
        identities: admin.iam.clone(),
        obs: admin.obs.clone(),
        evs: admin.evs.clone(),
        data_dir: admin.data_dir.clone(),
        gate: admin.gate.clone(),
    }
}

/// The passphrase from its header; the refusal's message when it is missing or empty.
fn passphrase(headers: &HeaderMap) -> Result<Passphrase, String> {
    let value = headers
        .get(PASSPHRASE_HEADER)
        .ok_or_else(|| format!("send the archive's passphrase in the {PASSPHRASE_HEADER} header"))?;
    Passphrase::new(value.as_bytes()).map_err(|e| e.to_string())
}

/// Why a `/_sim/state` call stopped before it began.
enum Refusal {
    /// The request lacks something (400).
    BadRequest(String),
    /// kmsim failed (500, logged).
    Internal(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::BadRequest(message) => refuse(StatusCode::BAD_REQUEST, &message),
            Refusal::Internal(detail) => internal(detail),
        }
    }
}

/// The passphrase, and the temporary file (unnamed: gone when closed) the archive is written to or spooled into.
async fn prepare(headers: &HeaderMap) -> Result<(Passphrase, std::fs::File), Refusal> {
    let passphrase = passphrase(headers).map_err(Refusal::BadRequest)?;
    let temporary = |e: String| Refusal::Internal(format!("a temporary file for the state archive: {e}"));
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| temporary(e.to_string()))?
        .map_err(|e| temporary(e.to_string()))?;
    Ok((passphrase, file))
}

/// How a failed export or import is answered: the archive's and the state's problems in plain words, a service's
/// failure as an internal error (logged once).
fn error_response(error: StateError) -> Response {
    match error {
        StateError::NotEmpty(message) | StateError::Busy(message) => refuse(StatusCode::CONFLICT, &message),
        StateError::Archive(ArchiveError::Io(e)) => internal(format!("state archive I/O: {e}")),
        StateError::Archive(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        StateError::Failed(detail) => internal(detail),
    }
}

/// `GET /_sim/state`: the archive, streamed from a temporary file written under the state gate.
pub(super) async fn export(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    let (passphrase, file) = match prepare(&headers).await {
        Ok(prepared) => prepared,
        Err(refusal) => return refusal.into_response(),
    };
    let (mut file, summary) = match state::export(&services(&admin), file, passphrase, KdfParams::default()).await {
        Ok(done) => done,
        Err(e) => return error_response(e),
    };
    let length = match file.seek(SeekFrom::End(0)).and_then(|len| file.seek(SeekFrom::Start(0)).map(|_| len)) {
        Ok(length) => length,
        Err(e) => return internal(format!("reading the state archive back: {e}")),
    };
    tracing::info!(?summary, bytes = length, "state exported");
    let file = tokio::fs::File::from_std(file);
    let stream = futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, ARCHIVE_MEDIA_TYPE.to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"kmsim-state.kmsim\"".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `PUT` / `POST /_sim/state`: spools the archive to a temporary file (at most [`MAX_ARCHIVE_BYTES`]), then imports
/// it; 409 when the kmsim already holds state, 400 for a wrong passphrase or a bad archive.
pub(super) async fn import(State(admin): State<Arc<Admin>>, headers: HeaderMap, body: Body) -> Response {
    let (passphrase, file) = match prepare(&headers).await {
        Ok(prepared) => prepared,
        Err(refusal) => return refusal.into_response(),
    };
    let mut spool = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("reading the state archive: {e}")),
        };
        received += chunk.len() as u64;
        if received > MAX_ARCHIVE_BYTES {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("a state archive sent to /_sim/state is at most {MAX_ARCHIVE_BYTES} bytes"),
            );
        }
        if let Err(e) = spool.write_all(&chunk).await {
            return internal(format!("spooling the state archive: {e}"));
        }
    }
    let mut file = spool.into_std().await;
    if let Err(e) = file.seek(SeekFrom::Start(0)) {
        return internal(format!("spooling the state archive: {e}"));
    }
    match state::import(&services(&admin), file, passphrase).await {
        Ok(summary) => {
            tracing::info!(?summary, "state imported");
            Json(json!({ "imported": summary })).into_response()
        }
        Err(e) => error_response(e),
    }
}
