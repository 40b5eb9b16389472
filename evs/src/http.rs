//! The EVS REST API (Open Telekom Cloud / Huawei Cloud shape) and the compute API's attach / detach paths, over
//! the [`Evs`] core, signed with SDK-HMAC-SHA256.
//!
//! A request is parsed into an [`EvsOperation`] (the list of what is served, with each operation's IAM action),
//! authenticated, checked against its project (an unknown path is refused only then) and dispatched by `match`; the core's answer is rendered here as
//! the SDKs read it (a job's body carries the fields of both the EVS and the compute SDK's job models). Query
//! parameters and bodies are read here, with the real service's code for each bad field.
//!
//! Errors are `{"error":{"code":"EVS.xxxx","message":...}}` (compute paths: `Ecs.xxxx`) with an `X-Request-Id`;
//! [`wire_error`] is the one place that names the core's errors in this dialect; an internal error is logged once,
//! in [`EvsApi::handle`], with the request id the client sees (a failed job's, when the job ends).

use std::collections::BTreeMap;
use std::sync::Arc;

use auth::{AuthError, RequestParts, Verifier, sdk_hmac};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared::{Api, Peer, RequestContext};

use crate::error::{EvsError, KeyProblem, SizeProblem, VolumeAction};
use crate::model::{Attachment, Job, SnapshotRecord, VolumeRecord};
use crate::operation::{EvsOperation, UnknownOperation};
use crate::service::{CreateVolume, Evs, Requester, VolumeFilter};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Resources under `/{version}/{project_id}/` that this front end serves.
const RESOURCES: &[&str] = &["cloudvolumes", "cloudsnapshots", "volumes", "jobs", "cloudservers"];

/// The real service's message for a volume or snapshot that does not exist (typo included).
const RESOURCE_NOT_FOUND: &str = "Resource(Volume, Snapshot, Backup .etc) cound not be found.";

/// The EVS API over an [`Evs`].
#[derive(Debug, Clone)]
pub struct EvsApi {
    evs: Arc<Evs>,
    /// Checks SDK-HMAC signatures.
    verifier: Arc<Verifier>,
    region: String,
}

impl EvsApi {
    /// A front end for `evs`, checking signatures with `verifier`; projects live in `region`.
    pub fn new(evs: Arc<Evs>, verifier: Arc<Verifier>, region: &str) -> Self {
        EvsApi { evs, verifier, region: region.to_owned() }
    }

    /// Whether a request is for this front end: an EVS or compute path, not signed the S3 way (so a bucket named
    /// `v2.1` stays an S3 bucket).
    pub fn accepts(path: &str, headers: &HeaderMap) -> bool {
        let mut segments = path.trim_start_matches('/').split('/');
        let version = segments.next().unwrap_or_default();
        let _project = segments.next();
        let resource = segments.next().unwrap_or_default();
        let s3_signed = headers.get(header::AUTHORIZATION).is_some_and(|v| {
            let v = v.as_bytes();
            v.starts_with(b"AWS4-") || v.starts_with(b"AWS ") || v.starts_with(b"OBS ")
        });
        matches!(version, "v1" | "v2" | "v2.1" | "v3") && RESOURCES.contains(&resource) && !s3_signed
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let result = async {
            let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| ApiError::TooLarge)?;
            let query = parts.uri.query().unwrap_or("");
            let path = parts.uri.path();
            // Parsed before authentication, refused after it (and after the project check), as it always was.
            let operation = EvsOperation::parse(parts.method.as_str(), path);
            let request_parts = RequestParts { method: parts.method.as_str(), path, query, headers: &parts.headers };
            let auth::Verified { caller, key, .. } = self
                .verifier
                .verify_sdk_hmac(&request_parts, &body, &self.region, shared::time::now_unix())
                .map_err(ApiError::Auth)?;
            let project = path.trim_start_matches('/').split('/').nth(1).unwrap_or_default();
            if project != key.project_id {
                return Err(ApiError::ProjectMismatch);
            }
            let operation = operation.map_err(|UnknownOperation| ApiError::UnknownOperation)?;
            let peer = parts.extensions.get::<Peer>().copied();
            let resource = operation.resource().urn(&self.region, &key.domain_id);
            let context = RequestContext::new(caller.clone(), peer, Api::Evs, operation.name(), operation.action())
                .with_resource(resource);
            context.log();
            let requester = Requester { key, caller };
            let call = Call { evs: &self.evs, requester, query, body: &body };
            call.run(&operation).await
        }
        .await;
        let request_id = self.evs.entropy().uuid(shared::Purpose::RequestId).simple().to_string();
        match result {
            Ok((status, value)) => json_response(status, &value, &request_id),
            Err(e) => {
                if let ApiError::Evs(EvsError::Internal { detail }) = &e {
                    tracing::error!(request_id = %request_id, %detail, "internal error in the volume service");
                }
                let wire = e.wire();
                let body = json!({"error": {"code": wire.code, "message": wire.message}});
                json_response(wire.status, &body, &request_id)
            }
        }
    }
}

/// An error on its way to the wire: from the core, or about the request itself.
#[derive(Debug)]
enum ApiError {
    /// From the core.
    Evs(EvsError),
    /// The request is not what the API expects (a malformed body, a bad parameter): 400 with the real service's
    /// code and message for that field.
    BadRequest {
        /// `EVS.xxxx` (`Ecs.xxxx` on the compute paths).
        code: &'static str,
        /// The message.
        message: String,
    },
    /// The body exceeds [`MAX_BODY_BYTES`].
    TooLarge,
    /// The signature was refused.
    Auth(AuthError),
    /// The project in the path is not the one of the access key.
    ProjectMismatch,
    /// No operation has this method and path.
    UnknownOperation,
}

impl From<EvsError> for ApiError {
    fn from(e: EvsError) -> Self {
        ApiError::Evs(e)
    }
}

impl ApiError {
    fn wire(&self) -> WireError {
        match self {
            ApiError::Evs(e) => wire_error(e),
            ApiError::BadRequest { code, message } => WireError::bad(code, message.clone()),
            ApiError::TooLarge => {
                WireError::new(StatusCode::PAYLOAD_TOO_LARGE, "EVS.5413", "The request body is too large.")
            }
            ApiError::Auth(e) => {
                WireError::new(StatusCode::UNAUTHORIZED, sdk_hmac::REFUSAL_CODE, sdk_hmac::refusal_message(e))
            }
            ApiError::ProjectMismatch => {
                WireError::bad("Common.0018", "The project ID in the URI does not match the credentials.")
            }
            ApiError::UnknownOperation => WireError::new(StatusCode::NOT_FOUND, "EVS.5404", RESOURCE_NOT_FOUND),
        }
    }
}

/// An error as the EVS API sends it: `{"error":{"code":"EVS.xxxx","message":...}}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The EVS error code (`Ecs.xxxx` for the compute API's paths, `Common.xxxx` for the shared ones).
    pub code: &'static str,
    /// The message sent to the client.
    pub message: String,
}

impl WireError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        WireError { status, code, message: message.into() }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

/// The wire form of a core error, with the status, code and message of the real service: the one place where
/// the EVS dialect names the core's errors (responses and the `error_code` / `fail_reason` of a failed job).
/// An internal error's detail is not sent; the caller logs it.
pub fn wire_error(error: &EvsError) -> WireError {
    use EvsError::*;
    match error {
        VolumeNotFound { .. } | SnapshotNotFound { .. } => {
            WireError::new(StatusCode::NOT_FOUND, "EVS.5404", RESOURCE_NOT_FOUND)
        }
        MetadataKeyNotFound { key } => {
            WireError::new(StatusCode::NOT_FOUND, "EVS.5404", format!("The metadata key {key} could not be found."))
        }
        JobNotFound { .. } => WireError::bad("Common.0011", "No jobs found."),
        SourceSnapshotNotFound { .. } => WireError::bad("EVS.2045", "invalid snapshot_id!"),
        SnapshotNotAvailable { .. } => {
            WireError::bad("EVS.2043", "The status of snapshot is not available or backing-up.")
        }
        InvalidCount { .. } => WireError::bad("EVS.1021", "the quantity of volume is invalid!"),
        InvalidName => WireError::bad("EVS.1003", "invalid volume name!"),
        InvalidDescription => WireError::bad("EVS.1004", "invalid volume description!"),
        InvalidSize { problem } => WireError::bad(
            "EVS.1010",
            match problem {
                SizeProblem::Missing => "invalid volume size!",
                SizeProblem::OutOfRange { .. } => "invalid volume size! A data disk has 10 to 32768 GB.",
                SizeProblem::BelowSnapshot { .. } => "invalid volume size! It must not be smaller than the snapshot's.",
            },
        ),
        SizeNotGreater { .. } => WireError::bad("EVS.1015", "new volume Size must be greater than old Size!"),
        InvalidVolumeType { .. } => WireError::bad("EVS.1020", "invalid volume type!"),
        MissingAvailabilityZone => WireError::bad("EVS.2083", "AZ and volume type must not be empty or null!"),
        EncryptionWithSnapshot => WireError::bad(
            "EVS.1043",
            "encrypt and cmk and passthrough in metadata is not support when create volume from snapshot or image!",
        ),
        InvalidEncryption => WireError::bad("EVS.2041", "The encrypt Param is invalid!"),
        KeyUnusable { problem, detail } => match problem {
            KeyProblem::Disabled => WireError::bad("EVS.2040", format!("The CMK is not enabled: {detail}")),
            KeyProblem::NotFound => WireError::bad("EVS.2041", format!("The encrypt Param is invalid! {detail}")),
            KeyProblem::AccessDenied => {
                WireError::bad("EVS.2055", format!("can not create encrypt volume because hasn't xrole. {detail}"))
            }
        },
        NothingToUpdate => WireError::bad("EVS.1007", "volume name and description can not both be empty!"),
        SystemMetadata => WireError::bad("EVS.2047", "the metadata Param is not allowed to be updated!"),
        VolumeBeingDeleted { id } => WireError::bad("EVS.2068", format!("The volume {id} is being deleted.")),
        VolumeLocked { .. } => {
            WireError::bad("EVS.2068", "operation failed because of volume be locked (a snapshot is in progress)")
        }
        VolumeStatusForbids { id, status, action } => {
            let code = match action {
                VolumeAction::Delete => "EVS.1046",
                VolumeAction::Extend => "EVS.1048",
                VolumeAction::Attach => "Ecs.0017",
                VolumeAction::Detach => "Ecs.0005",
                VolumeAction::Rollback => "EVS.2068",
            };
            let status = status.as_str();
            WireError::bad(code, format!("The volume {id} is {status}, which does not allow this operation."))
        }
        VolumeHasSnapshots { .. } => WireError::bad("EVS.1046", "The volume has snapshots; delete them first."),
        VolumeSnapshotBusy { .. } => WireError::bad("EVS.1046", "A snapshot of the volume is busy; try again later."),
        NotAttached { volume_id, server_id } => {
            WireError::bad("Ecs.0005", format!("The volume {volume_id} is not attached to {server_id}."))
        }
        VolumeInUse { .. } => WireError::bad("EVS.2068", "The volume is in use; set force to snapshot it anyway."),
        VolumeNotSnapshottable { status, .. } => {
            WireError::bad("EVS.2068", format!("The volume is {}.", status.as_str()))
        }
        SnapshotInProgress { .. } => WireError::bad("EVS.2068", "A snapshot of the volume is being taken."),
        SnapshotNotDeletable { .. } => {
            WireError::bad("EVS.1047", "snapshot status must be available or error when delete snapshot!")
        }
        SnapshotInUse { .. } => {
            WireError::bad("EVS.1047", "The snapshot is in use: volumes are being created from it.")
        }
        RollbackTarget { .. } => WireError::bad("EVS.5400", "A snapshot rolls back only onto its source volume."),
        ShuttingDown => {
            WireError::new(StatusCode::SERVICE_UNAVAILABLE, "EVS.5500", "The volume service is shutting down.")
        }
        Internal { .. } => WireError::new(StatusCode::INTERNAL_SERVER_ERROR, "EVS.5500", "Internal server error."),
        Injected { code, status, message } => WireError::new(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message.clone(),
        ),
    }
}

impl EvsError {
    /// The HTTP status the EVS API sends this error with (see [`wire_error`]).
    pub fn status(&self) -> StatusCode {
        wire_error(self).status
    }

    /// The EVS error code the API sends for this error (see [`wire_error`]).
    pub fn code(&self) -> &'static str {
        wire_error(self).code
    }
}

/// A 400 about the request itself.
fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest { code, message: message.into() }
}

fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response {
    let text = if body.is_null() { String::new() } else { body.to_string() };
    let mut response = (status, text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    headers.insert("x-request-id", HeaderValue::from_str(request_id).expect("hex is a valid header value"));
    response
}

/// One authenticated request.
struct Call<'a> {
    evs: &'a Arc<Evs>,
    requester: Requester,
    query: &'a str,
    body: &'a [u8],
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

type Answer = (StatusCode, Value);

fn ok(value: Value) -> Result<Answer> {
    Ok((StatusCode::OK, value))
}

fn accepted(value: Value) -> Result<Answer> {
    Ok((StatusCode::ACCEPTED, value))
}

impl Call<'_> {
    /// Runs one operation: reads its body and parameters, calls the core, renders the answer.
    async fn run(&self, operation: &EvsOperation) -> Result<Answer> {
        use EvsOperation::*;
        let evs = self.evs;
        let r = &self.requester;
        match operation {
            CreateVolume { .. } => {
                let input = self.create_volume_input()?;
                let job = evs.create_volumes(r, input).await?;
                ok(json!({"job_id": job.id, "volume_ids": job.volume_ids}))
            }
            ListVolumes { .. } => {
                let filter = self.volume_filter()?;
                let (volumes, count) = evs.volumes(r, &filter);
                let volumes: Vec<Value> = volumes.iter().map(|v| volume_json(v, r.key.project_id.as_str())).collect();
                ok(json!({"count": count, "volumes": volumes, "volumes_links": []}))
            }
            ShowVolume { volume_id: id, .. } => {
                let volume = evs.volume(r, id)?;
                ok(json!({"volume": volume_json(&volume, &r.key.project_id)}))
            }
            UpdateVolume { volume_id: id, .. } => {
                let body = self.json()?;
                let volume = object(&body, "volume", "EVS.1001", "null volume!")?;
                let name = optional_string(volume, "name", "EVS.1003", "invalid volume name!")?;
                let description = optional_string(volume, "description", "EVS.1004", "invalid volume description!")?;
                let record = evs.update_volume(r, id, name, description).await?;
                // The real API answers update with the volume's fields at the top level.
                ok(volume_json(&record, &r.key.project_id))
            }
            DeleteVolume { volume_id: id, .. } => {
                let cascade = match self.param("cascade").as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(_) => return Err(bad("EVS.5400", "cascade must be true or false.")),
                };
                let job = evs.delete_volume(r, id, cascade).await?;
                ok(json!({"job_id": job.id}))
            }
            ExtendVolume { volume_id: id, .. } => {
                let body = self.json()?;
                let extend = object(&body, "os-extend", "EVS.1011", "null extendVolumeReq!")?;
                let new_size = integer(extend.get("new_size"), "EVS.1010", "invalid volume size!")?
                    .ok_or_else(|| bad("EVS.1010", "invalid volume size!"))?;
                let job = evs.extend_volume(r, id, new_size).await?;
                ok(json!({"job_id": job.id}))
            }
            ShowVolumeMetadata { volume_id: id, .. } => ok(json!({"metadata": evs.volume(r, id)?.metadata})),
            SetVolumeMetadata { volume_id: id, replace, .. } => {
                let body = self.json()?;
                let metadata = string_map(object(&body, "metadata", "EVS.5400", "Malformed request body.")?)?;
                ok(json!({"metadata": evs.set_metadata(r, id, metadata, *replace).await?}))
            }
            ShowVolumeMetadataKey { volume_id: id, key, .. } => {
                let metadata = evs.volume(r, id)?.metadata;
                let value = metadata.get(key).ok_or_else(|| EvsError::MetadataKeyNotFound { key: key.clone() })?;
                ok(json!({"meta": {key: value}}))
            }
            UpdateVolumeMetadataKey { volume_id: id, key, .. } => {
                let body = self.json()?;
                let meta = string_map(object(&body, "meta", "EVS.5400", "Malformed request body.")?)?;
                if meta.len() != 1 || !meta.contains_key(key) {
                    return Err(bad("EVS.5400", "Request body and URI mismatch."));
                }
                evs.set_metadata(r, id, meta.clone(), false).await?;
                ok(json!({"meta": meta}))
            }
            DeleteVolumeMetadataKey { volume_id: id, key, .. } => {
                evs.delete_metadata(r, id, key).await?;
                ok(Value::Null)
            }
            CreateSnapshot { .. } => {
                let body = self.json()?;
                let snapshot = object(&body, "snapshot", "EVS.5400", "Malformed request body.")?;
                let volume_id = optional_string(snapshot, "volume_id", "EVS.5400", "Malformed request body.")?
                    .ok_or_else(|| bad("EVS.5400", "volume_id is required."))?;
                let name = optional_string(snapshot, "name", "EVS.1003", "invalid snapshot name!")?.unwrap_or_default();
                let description =
                    optional_string(snapshot, "description", "EVS.1004", "invalid snapshot description!")?
                        .unwrap_or_default();
                let force = match snapshot.get("force") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => s == "true",
                    Some(_) => return Err(bad("EVS.5400", "force must be a boolean.")),
                };
                let metadata = match snapshot.get("metadata") {
                    None | Some(Value::Null) => BTreeMap::new(),
                    Some(Value::Object(m)) => string_map(m)?,
                    Some(_) => return Err(bad("EVS.5400", "metadata must be an object.")),
                };
                let record = evs.create_snapshot(r, &volume_id, name, description, force, metadata).await?;
                accepted(json!({"snapshot": snapshot_json(&record)}))
            }
            ListSnapshots { .. } => {
                let volume_id = self.param("volume_id");
                let mut snapshots = evs.snapshots(r, volume_id.as_deref());
                for (field, wanted) in [("name", self.param("name")), ("status", self.param("status"))] {
                    if let Some(wanted) = wanted {
                        snapshots
                            .retain(|s| if field == "name" { s.name == wanted } else { s.status.as_str() == wanted });
                    }
                }
                let count = snapshots.len();
                let offset = self.usize_param("offset")?.unwrap_or(0);
                let limit = self.usize_param("limit")?.unwrap_or(1000);
                let page: Vec<Value> = snapshots.iter().skip(offset).take(limit).map(snapshot_json).collect();
                ok(json!({"count": count, "snapshots": page, "snapshots_links": []}))
            }
            ShowSnapshot { snapshot_id: id, .. } => ok(json!({"snapshot": snapshot_json(&evs.snapshot(r, id)?)})),
            UpdateSnapshot { snapshot_id: id, .. } => {
                let body = self.json()?;
                let snapshot = object(&body, "snapshot", "EVS.5400", "Malformed request body.")?;
                let name = optional_string(snapshot, "name", "EVS.1003", "invalid snapshot name!")?;
                let description =
                    optional_string(snapshot, "description", "EVS.1004", "invalid snapshot description!")?;
                let record = evs.update_snapshot(r, id, name, description).await?;
                ok(json!({"snapshot": snapshot_json(&record)}))
            }
            DeleteSnapshot { snapshot_id: id, .. } => {
                evs.delete_snapshot(r, id).await?;
                accepted(Value::Null)
            }
            RollbackSnapshot { snapshot_id: id, .. } => {
                let body = self.json()?;
                let rollback = object(&body, "rollback", "EVS.5400", "Malformed request body.")?;
                let volume_id = optional_string(rollback, "volume_id", "EVS.5400", "Malformed request body.")?;
                let name = optional_string(rollback, "name", "EVS.1003", "invalid volume name!")?;
                // Checked before the rollback starts: a refused request changes nothing.
                if let Some(name) = &name {
                    crate::service::check_name(name)?;
                }
                let mut volume = evs.rollback_snapshot(r, id, volume_id.as_deref()).await?;
                if let Some(name) = name {
                    volume = evs.update_volume(r, &volume.id, Some(name), None).await?;
                }
                accepted(json!({"rollback": {"volume_id": volume.id, "volume_name": volume.name}}))
            }
            ShowJob { job_id: id, .. } => ok(self.job_json(&evs.job(r, id)?)),
            AttachVolume { server_id, .. } => {
                let body = self.json().map_err(|_| bad("Ecs.0005", "request body is illegal."))?;
                let attachment = object(&body, "volumeAttachment", "Ecs.0005", "request body is illegal.")?;
                let volume_id = optional_string(attachment, "volumeId", "Ecs.0005", "request body is illegal.")?
                    .ok_or_else(|| bad("Ecs.0005", "volumeId is required."))?;
                let device = optional_string(attachment, "device", "Ecs.0005", "request body is illegal.")?;
                if body.get("dry_run") == Some(&Value::Bool(true)) {
                    evs.volume(r, &volume_id)?;
                    return ok(json!({}));
                }
                let job = evs.attach(r, server_id, &volume_id, device).await?;
                ok(json!({"job_id": job.id}))
            }
            DetachVolume { server_id, volume_id, .. } => {
                let job = evs.detach(r, server_id, volume_id).await?;
                ok(json!({"job_id": job.id}))
            }
            ListServerVolumeAttachments { server_id, .. } => {
                let (volumes, _) = evs.volumes(r, &VolumeFilter { limit: usize::MAX, ..VolumeFilter::default() });
                let attachments: Vec<Value> = volumes
                    .iter()
                    .flat_map(|v| v.attachments.iter().map(move |a| (v, a)))
                    .filter(|(_, a)| a.server_id == *server_id)
                    .map(|(v, a)| json!({"device": a.device, "id": v.id, "serverId": a.server_id, "volumeId": v.id}))
                    .collect();
                ok(json!({"volumeAttachments": attachments}))
            }
        }
    }

    fn json(&self) -> Result<Value> {
        match serde_json::from_slice::<Value>(self.body) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err(bad("EVS.5400", "Malformed request body.")),
        }
    }

    fn param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode(&v.replace('+', " ")))
            .filter(|v| !v.is_empty())
    }

    fn usize_param(&self, name: &str) -> Result<Option<usize>> {
        match self.param(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad("EVS.5400", format!("{name} param must be an integer."))),
        }
    }

    fn create_volume_input(&self) -> Result<CreateVolume> {
        let body = self.json()?;
        let volume = object(&body, "volume", "EVS.1008", "null createVolumeReq!")?;
        let text = |field: &str| optional_string(volume, field, "EVS.1009", "invalid volumeForCreate!");
        let metadata = match volume.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => string_map(m)?,
            Some(_) => return Err(bad("EVS.1009", "invalid volumeForCreate!")),
        };
        if volume.get("imageRef").is_some_and(|v| !v.is_null()) {
            return Err(bad("EVS.1016", "kmsim does not create volumes from images."));
        }
        let count = integer(volume.get("count"), "EVS.1021", "the quantity of volume is invalid!")?.unwrap_or(1);
        Ok(CreateVolume {
            name: text("name")?.unwrap_or_default(),
            description: text("description")?.unwrap_or_default(),
            size_gb: integer(volume.get("size"), "EVS.1010", "invalid volume size!")?,
            volume_type: text("volume_type")?.unwrap_or_default(),
            availability_zone: text("availability_zone")?.unwrap_or_default(),
            count: u32::try_from(count).unwrap_or(u32::MAX),
            metadata,
            snapshot_id: text("snapshot_id")?,
        })
    }

    fn volume_filter(&self) -> Result<VolumeFilter> {
        let limit = match self.usize_param("limit")? {
            None => 1000,
            Some(n @ 1..=1000) => n,
            Some(_) => return Err(bad("EVS.1023", "invalid filter limit!")),
        };
        let metadata = match self.param("metadata") {
            None => BTreeMap::new(),
            Some(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => string_map(&m).map_err(|_| bad("EVS.1058", "invalid metadata filter!"))?,
                _ => return Err(bad("EVS.1058", "invalid metadata filter!")),
            },
        };
        let marker = self.param("marker");
        if let Some(marker) = &marker
            && uuid::Uuid::parse_str(marker).is_err()
        {
            return Err(bad("EVS.1024", "invalid filter marker!"));
        }
        Ok(VolumeFilter {
            name: self.param("name"),
            status: self.param("status"),
            availability_zone: self.param("availability_zone"),
            volume_type: self.param("volume_type"),
            metadata,
            marker,
            offset: self.usize_param("offset")?.unwrap_or(0),
            limit,
        })
    }

    /// A job as both SDKs' job models read it (EVS: `entities.volume_id` / `sub_jobs`; ECS: `entities.server_id`).
    fn job_json(&self, job: &Job) -> Value {
        let time = |ms: i64| if ms == 0 { String::new() } else { shared::time::format_rfc3339_millis(ms) };
        let failure = job.failure.as_ref().map(wire_error);
        let error_code = failure.as_ref().map(|w| w.code);
        let fail_reason = failure.as_ref().map(|w| w.message.as_str());
        let mut entities = Map::new();
        if let Some(volume_id) = &job.volume_id {
            entities.insert("volume_id".into(), json!(volume_id));
            if let Ok(volume) = self.evs.volume(&self.requester, volume_id) {
                entities.insert("size".into(), json!(volume.size_gb));
                entities.insert("volume_type".into(), json!(volume.volume_type));
                entities.insert("name".into(), json!(volume.name));
            }
        }
        if let Some(server_id) = &job.server_id {
            entities.insert("server_id".into(), json!(server_id));
        }
        if job.volume_ids.len() > 1 {
            let sub_jobs: Vec<Value> = job
                .volume_ids
                .iter()
                .enumerate()
                .map(|(n, id)| {
                    json!({
                        "status": job.status.as_str(),
                        "job_id": format!("{}{n:02x}", &job.id[..30]),
                        "job_type": "createVolume",
                        "begin_time": time(job.begin_time),
                        "end_time": time(job.end_time),
                        "error_code": error_code,
                        "fail_reason": fail_reason,
                        "entities": {"volume_id": id},
                    })
                })
                .collect();
            entities.insert("sub_jobs".into(), Value::Array(sub_jobs));
        }
        json!({
            "status": job.status.as_str(),
            "job_id": job.id,
            "job_type": job.job_type,
            "begin_time": time(job.begin_time),
            "end_time": time(job.end_time),
            "error_code": error_code,
            "fail_reason": fail_reason,
            "entities": entities,
        })
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn object<'v>(body: &'v Value, field: &str, code: &'static str, message: &str) -> Result<&'v Map<String, Value>> {
    body.get(field).and_then(Value::as_object).ok_or_else(|| bad(code, message))
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
    code: &'static str,
    message: &str,
) -> Result<Option<String>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(code, message)),
    }
}

/// A JSON integer, or a string of one (the dialect's SDKs send either).
fn integer(value: Option<&Value>, code: &'static str, message: &str) -> Result<Option<u64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| bad(code, message)),
        Some(Value::String(s)) => {
            s.parse().map(Some).map_err(|_| bad("EVS.1018", "Type conversion error, parameter type is unexpected."))
        }
        Some(_) => Err(bad("EVS.1018", "Type conversion error, parameter type is unexpected.")),
    }
}

fn string_map(object: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
    object
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(bad("EVS.5400", "Metadata values must be strings.")),
        })
        .collect()
}

/// Cinder-style timestamps: `2026-11-29T21:06:08.123000`.
fn timestamp(ms: i64) -> String {
    let text = shared::time::format_rfc3339_millis(ms);
    format!("{}000", text.trim_end_matches('Z'))
}

fn attachment_json(volume: &VolumeRecord, attachment: &Attachment) -> Value {
    json!({
        "attached_at": timestamp(attachment.attached_at),
        "attachment_id": attachment.attachment_id,
        "device": attachment.device,
        "host_name": "",
        "id": volume.id,
        "server_id": attachment.server_id,
        "volume_id": volume.id,
    })
}

/// A volume as show and list answer it (booleans where the SDK wants booleans, strings where it wants strings).
fn volume_json(volume: &VolumeRecord, project_id: &str) -> Value {
    json!({
        "id": volume.id,
        "links": [{"href": format!("/v2/{project_id}/cloudvolumes/{}", volume.id), "rel": "self"}],
        "name": volume.name,
        "status": volume.status.as_str(),
        "attachments": volume.attachments.iter().map(|a| attachment_json(volume, a)).collect::<Vec<_>>(),
        "availability_zone": volume.availability_zone,
        "bootable": "false",
        "encrypted": volume.encryption.is_some(),
        "created_at": timestamp(volume.created_at),
        "updated_at": timestamp(volume.updated_at),
        "description": volume.description,
        "volume_type": volume.volume_type,
        "replication_status": "disabled",
        "source_volid": Value::Null,
        "snapshot_id": volume.snapshot_id,
        "metadata": volume.metadata,
        "size": volume.size_gb,
        "multiattach": false,
        "shareable": "false",
        "service_type": "EVS",
        "os-vol-tenant-attr:tenant_id": volume.project_id,
        "os-vol-host-attr:host": "kmsim",
        "user_id": "",
    })
}

fn snapshot_json(snapshot: &SnapshotRecord) -> Value {
    json!({
        "id": snapshot.id,
        "status": snapshot.status.as_str(),
        "name": snapshot.name,
        "description": snapshot.description,
        "created_at": timestamp(snapshot.created_at),
        "updated_at": timestamp(snapshot.updated_at),
        "volume_id": snapshot.volume_id,
        "size": snapshot.size_gb,
        "metadata": snapshot.metadata,
        "os-extended-snapshot-attributes:project_id": snapshot.project_id,
        "os-extended-snapshot-attributes:progress":
            if snapshot.status == crate::model::SnapshotStatus::Available { "100%" } else { "0%" },
        "service_type": "EVS",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SnapshotStatus, VolumeStatus};

    fn check(error: &ApiError, status: u16, code: &str, message: &str) {
        let wire = error.wire();
        assert_eq!((wire.status.as_u16(), wire.code, wire.message.as_str()), (status, code, message), "{error:?}");
    }

    /// Every core error keeps the status, code and message the front end sent before the core was typed (and a
    /// failed job shows the same code and message).
    #[test]
    fn core_errors_have_the_real_services_wire_form() {
        use EvsError::*;
        let id = || "v-1".to_owned();
        let size = |problem| InvalidSize { problem };
        let key = |problem| KeyUnusable { problem, detail: "Key 'k' is disabled.".into() };
        let forbids = |action| VolumeStatusForbids { id: id(), status: VolumeStatus::InUse, action };
        #[rustfmt::skip]
        let cases: Vec<(EvsError, u16, &str, &str)> = vec![
            (VolumeNotFound { id: id() }, 404, "EVS.5404", RESOURCE_NOT_FOUND),
            (SnapshotNotFound { id: id() }, 404, "EVS.5404", RESOURCE_NOT_FOUND),
            (MetadataKeyNotFound { key: "k 1".into() }, 404, "EVS.5404", "The metadata key k 1 could not be found."),
            (JobNotFound { id: id() }, 400, "Common.0011", "No jobs found."),
            (SourceSnapshotNotFound { id: id() }, 400, "EVS.2045", "invalid snapshot_id!"),
            (SnapshotNotAvailable { id: id() }, 400, "EVS.2043", "The status of snapshot is not available or backing-up."),
            (InvalidCount { count: 0 }, 400, "EVS.1021", "the quantity of volume is invalid!"),
            (InvalidName, 400, "EVS.1003", "invalid volume name!"),
            (InvalidDescription, 400, "EVS.1004", "invalid volume description!"),
            (size(SizeProblem::Missing), 400, "EVS.1010", "invalid volume size!"),
            (size(SizeProblem::OutOfRange { size_gb: 5 }), 400, "EVS.1010", "invalid volume size! A data disk has 10 to 32768 GB."),
            (size(SizeProblem::BelowSnapshot { size_gb: 10, snapshot_gb: 20 }), 400, "EVS.1010", "invalid volume size! It must not be smaller than the snapshot's."),
            (SizeNotGreater { new_gb: 10, old_gb: 10 }, 400, "EVS.1015", "new volume Size must be greater than old Size!"),
            (InvalidVolumeType { volume_type: "X".into() }, 400, "EVS.1020", "invalid volume type!"),
            (MissingAvailabilityZone, 400, "EVS.2083", "AZ and volume type must not be empty or null!"),
            (EncryptionWithSnapshot, 400, "EVS.1043", "encrypt and cmk and passthrough in metadata is not support when create volume from snapshot or image!"),
            (InvalidEncryption, 400, "EVS.2041", "The encrypt Param is invalid!"),
            (key(KeyProblem::Disabled), 400, "EVS.2040", "The CMK is not enabled: Key 'k' is disabled."),
            (key(KeyProblem::NotFound), 400, "EVS.2041", "The encrypt Param is invalid! Key 'k' is disabled."),
            (key(KeyProblem::AccessDenied), 400, "EVS.2055", "can not create encrypt volume because hasn't xrole. Key 'k' is disabled."),
            (NothingToUpdate, 400, "EVS.1007", "volume name and description can not both be empty!"),
            (SystemMetadata, 400, "EVS.2047", "the metadata Param is not allowed to be updated!"),
            (VolumeBeingDeleted { id: id() }, 400, "EVS.2068", "The volume v-1 is being deleted."),
            (VolumeLocked { id: id() }, 400, "EVS.2068", "operation failed because of volume be locked (a snapshot is in progress)"),
            (forbids(VolumeAction::Delete), 400, "EVS.1046", "The volume v-1 is in-use, which does not allow this operation."),
            (forbids(VolumeAction::Extend), 400, "EVS.1048", "The volume v-1 is in-use, which does not allow this operation."),
            (forbids(VolumeAction::Attach), 400, "Ecs.0017", "The volume v-1 is in-use, which does not allow this operation."),
            (forbids(VolumeAction::Detach), 400, "Ecs.0005", "The volume v-1 is in-use, which does not allow this operation."),
            (forbids(VolumeAction::Rollback), 400, "EVS.2068", "The volume v-1 is in-use, which does not allow this operation."),
            (VolumeHasSnapshots { id: id() }, 400, "EVS.1046", "The volume has snapshots; delete them first."),
            (VolumeSnapshotBusy { id: id() }, 400, "EVS.1046", "A snapshot of the volume is busy; try again later."),
            (NotAttached { volume_id: id(), server_id: "s-1".into() }, 400, "Ecs.0005", "The volume v-1 is not attached to s-1."),
            (VolumeInUse { id: id() }, 400, "EVS.2068", "The volume is in use; set force to snapshot it anyway."),
            (VolumeNotSnapshottable { id: id(), status: VolumeStatus::Extending }, 400, "EVS.2068", "The volume is extending."),
            (SnapshotInProgress { volume_id: id() }, 400, "EVS.2068", "A snapshot of the volume is being taken."),
            (SnapshotNotDeletable { id: id(), status: SnapshotStatus::Creating }, 400, "EVS.1047", "snapshot status must be available or error when delete snapshot!"),
            (SnapshotInUse { id: id() }, 400, "EVS.1047", "The snapshot is in use: volumes are being created from it."),
            (RollbackTarget { snapshot_id: id(), volume_id: "v-2".into() }, 400, "EVS.5400", "A snapshot rolls back only onto its source volume."),
            (ShuttingDown, 503, "EVS.5500", "The volume service is shutting down."),
            (EvsError::internal("disk on fire"), 500, "EVS.5500", "Internal server error."),
        ];
        for (error, status, code, message) in cases {
            assert_eq!((error.status().as_u16(), error.code()), (status, code), "{error:?}");
            check(&ApiError::Evs(error), status, code, message);
        }
    }

    /// Requests that reach no core operation keep the answers the string router gave.
    #[test]
    fn request_errors_have_the_real_services_wire_form() {
        check(&ApiError::UnknownOperation, 404, "EVS.5404", RESOURCE_NOT_FOUND);
        check(
            &ApiError::ProjectMismatch,
            400,
            "Common.0018",
            "The project ID in the URI does not match the credentials.",
        );
        check(&ApiError::TooLarge, 413, "EVS.5413", "The request body is too large.");
        check(&bad("EVS.5400", "Malformed request body."), 400, "EVS.5400", "Malformed request body.");
        assert_eq!(RESOURCE_NOT_FOUND, "Resource(Volume, Snapshot, Backup .etc) cound not be found.");
    }
}
