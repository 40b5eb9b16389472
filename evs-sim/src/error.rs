//! The volume service's error: an EVS error code, the HTTP status it travels with, and a message.

use axum::http::StatusCode;

/// Result of the volume service.
pub type Result<T, E = EvsError> = std::result::Result<T, E>;

/// An error as the EVS API sends it: `{"error":{"code":"EVS.xxxx","message":...}}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EvsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl EvsError {
    /// An error with its status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        EvsError { status, code, message: message.into() }
    }

    /// A 400 with `code`.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A volume or snapshot that does not exist in the caller's project (the real message, typo included).
    pub fn resource_not_found() -> Self {
        Self::not_found("EVS.5404", "Resource(Volume, Snapshot, Backup .etc) cound not be found.")
    }

    /// The service is shutting down and takes no more operations (503).
    pub fn shutting_down() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "EVS.5500", "The volume service is shutting down.")
    }

    /// An internal failure: logged with its detail, sent without it.
    pub fn internal(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        tracing::error!(%detail, "internal error in the volume service");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "EVS.5500", "Internal server error.")
    }

    /// An I/O failure while `doing` something.
    pub fn io(doing: &str, e: std::io::Error) -> Self {
        Self::internal(format!("{doing}: {e}"))
    }

    /// An object store failure (snapshots).
    pub fn store(e: object_store::Error) -> Self {
        Self::internal(format!("snapshot store: {e}"))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The EVS error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}
