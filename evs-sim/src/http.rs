//! The EVS REST API (Open Telekom Cloud / Huawei Cloud shape) and the compute API's attach / detach paths, over
//! the [`Evs`] core, signed with SDK-HMAC-SHA256.
//!
//! Routes (`{p}` is the caller's project id):
//! - `POST /v2/{p}/cloudvolumes` (also `/v2.1/`, `/v3/`) → a job; `GET /v1/{p}/jobs/{job_id}` (shared with the
//!   compute API: the body carries the fields of both SDKs' job models);
//! - `GET /v2/{p}/cloudvolumes[/detail]` (filters `name`, `status`, `availability_zone`, `volume_type`,
//!   `metadata` as JSON, `limit` 1–1000, `offset`, `marker`), `GET|PUT|DELETE /v2/{p}/cloudvolumes/{id}`,
//!   `POST /v2[.1]/{p}/cloudvolumes/{id}/action` with `os-extend`;
//! - volume metadata as Cinder has it: `GET|POST|PUT /v2/{p}/volumes/{id}/metadata`,
//!   `GET|PUT|DELETE /v2/{p}/volumes/{id}/metadata/{key}`;
//! - `POST /v2/{p}/cloudsnapshots`, `GET /v2/{p}/cloudsnapshots[/detail]`, `GET|PUT|DELETE
//!   /v2/{p}/cloudsnapshots/{id}`, `POST /v2/{p}/cloudsnapshots/{id}/rollback`;
//! - `POST /v1/{p}/cloudservers/{server_id}/attachvolume`, `DELETE
//!   /v1/{p}/cloudservers/{server_id}/detachvolume/{volume_id}`, `GET
//!   /v1/{p}/cloudservers/{server_id}/os-volume_attachments`.
//!
//! Errors are `{"error":{"code":"EVS.xxxx","message":...}}` (compute paths: `Ecs.xxxx`) with an `X-Request-Id`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared::Accounts;
use shared::sdk_hmac;
use shared::sigv4::{AuthError, RequestParts};

use crate::error::{EvsError, Result};
use crate::model::{Attachment, Job, SnapshotRecord, VolumeRecord};
use crate::service::{CreateVolume, Evs, Requester, VolumeFilter};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Resources under `/{version}/{project_id}/` that this front end serves.
const RESOURCES: &[&str] = &["cloudvolumes", "cloudsnapshots", "volumes", "jobs", "cloudservers"];

/// The EVS API over an [`Evs`].
#[derive(Debug, Clone)]
pub struct EvsApi {
    evs: Arc<Evs>,
    accounts: Arc<Accounts>,
    region: String,
}

impl EvsApi {
    /// A front end for `evs`; access keys from `accounts`; projects live in `region`.
    pub fn new(evs: Arc<Evs>, accounts: Arc<Accounts>, region: &str) -> Self {
        EvsApi { evs, accounts, region: region.to_owned() }
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
            let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
                EvsError::new(StatusCode::PAYLOAD_TOO_LARGE, "EVS.5413", "The request body is too large.")
            })?;
            let query = parts.uri.query().unwrap_or("");
            let path = parts.uri.path();
            let request_parts = RequestParts { method: parts.method.as_str(), path, query, headers: &parts.headers };
            let key = sdk_hmac::verify(&self.accounts, &request_parts, &body, shared::time::now_unix())
                .map_err(|e| auth_error(&e))?;
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (version, project) = (segments[0], segments.get(1).copied().unwrap_or_default());
            if project != key.project_id {
                return Err(EvsError::bad("Common.0018", "The project ID in the URI does not match the credentials."));
            }
            let requester = Requester::new(key, &self.region);
            let call = Call { evs: &self.evs, requester, query, body: &body };
            call.route(&parts.method, version, &segments[2..]).await
        }
        .await;
        match result {
            Ok((status, value)) => json_response(status, &value),
            Err(e) => json_response(e.status(), &json!({"error": {"code": e.code(), "message": e.message()}})),
        }
    }
}

fn auth_error(e: &AuthError) -> EvsError {
    EvsError::new(StatusCode::UNAUTHORIZED, sdk_hmac::REFUSAL_CODE, sdk_hmac::refusal_message(e))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let text = if body.is_null() { String::new() } else { body.to_string() };
    let mut response = (status, text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    let id = uuid::Uuid::new_v4().simple().to_string();
    headers.insert("x-request-id", HeaderValue::from_str(&id).expect("hex is a valid header value"));
    response
}

/// One authenticated request.
struct Call<'a> {
    evs: &'a Arc<Evs>,
    requester: Requester,
    query: &'a str,
    body: &'a [u8],
}

type Answer = (StatusCode, Value);

fn ok(value: Value) -> Result<Answer> {
    Ok((StatusCode::OK, value))
}

fn accepted(value: Value) -> Result<Answer> {
    Ok((StatusCode::ACCEPTED, value))
}

impl Call<'_> {
    async fn route(&self, method: &Method, version: &str, rest: &[&str]) -> Result<Answer> {
        let evs = self.evs;
        let r = &self.requester;
        match (method.as_str(), version, rest) {
            ("POST", "v2" | "v2.1" | "v3", ["cloudvolumes"]) => {
                let input = self.create_volume_input()?;
                let job = evs.create_volumes(r, input).await?;
                ok(json!({"job_id": job.id, "volume_ids": job.volume_ids}))
            }
            ("GET", "v2" | "v3", ["cloudvolumes", "detail"] | ["cloudvolumes"]) => {
                let filter = self.volume_filter()?;
                let (volumes, count) = evs.volumes(r, &filter);
                let volumes: Vec<Value> = volumes.iter().map(|v| volume_json(v, r.key.project_id.as_str())).collect();
                ok(json!({"count": count, "volumes": volumes, "volumes_links": []}))
            }
            ("GET", "v2" | "v3", ["cloudvolumes", id]) => {
                let volume = evs.volume(r, id)?;
                ok(json!({"volume": volume_json(&volume, &r.key.project_id)}))
            }
            ("PUT", "v2" | "v3", ["cloudvolumes", id]) => {
                let body = self.json()?;
                let volume = object(&body, "volume", "EVS.1001", "null volume!")?;
                let name = optional_string(volume, "name", "EVS.1003", "invalid volume name!")?;
                let description = optional_string(volume, "description", "EVS.1004", "invalid volume description!")?;
                let record = evs.update_volume(r, id, name, description).await?;
                // The real API answers update with the volume's fields at the top level.
                ok(volume_json(&record, &r.key.project_id))
            }
            ("DELETE", "v2" | "v3", ["cloudvolumes", id]) => {
                let cascade = match self.param("cascade").as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(_) => return Err(EvsError::bad("EVS.5400", "cascade must be true or false.")),
                };
                let job = evs.delete_volume(r, id, cascade).await?;
                ok(json!({"job_id": job.id}))
            }
            ("POST", "v2" | "v2.1" | "v3", ["cloudvolumes", id, "action"]) => {
                let body = self.json()?;
                let extend = object(&body, "os-extend", "EVS.1011", "null extendVolumeReq!")?;
                let new_size = integer(extend.get("new_size"), "EVS.1010", "invalid volume size!")?
                    .ok_or_else(|| EvsError::bad("EVS.1010", "invalid volume size!"))?;
                let job = evs.extend_volume(r, id, new_size).await?;
                ok(json!({"job_id": job.id}))
            }
            ("GET", "v2", ["volumes", id, "metadata"]) => ok(json!({"metadata": evs.volume(r, id)?.metadata})),
            ("POST" | "PUT", "v2", ["volumes", id, "metadata"]) => {
                let body = self.json()?;
                let metadata = string_map(object(&body, "metadata", "EVS.5400", "Malformed request body.")?)?;
                let replace = method == Method::PUT;
                ok(json!({"metadata": evs.set_metadata(r, id, metadata, replace).await?}))
            }
            ("GET", "v2", ["volumes", id, "metadata", key]) => {
                let key = decode(key);
                let metadata = evs.volume(r, id)?.metadata;
                let value = metadata.get(&key).ok_or_else(|| {
                    EvsError::not_found("EVS.5404", format!("The metadata key {key} could not be found."))
                })?;
                ok(json!({"meta": {key: value}}))
            }
            ("PUT", "v2", ["volumes", id, "metadata", key]) => {
                let key = decode(key);
                let body = self.json()?;
                let meta = string_map(object(&body, "meta", "EVS.5400", "Malformed request body.")?)?;
                if meta.len() != 1 || !meta.contains_key(&key) {
                    return Err(EvsError::bad("EVS.5400", "Request body and URI mismatch."));
                }
                evs.set_metadata(r, id, meta.clone(), false).await?;
                ok(json!({"meta": meta}))
            }
            ("DELETE", "v2", ["volumes", id, "metadata", key]) => {
                evs.delete_metadata(r, id, &decode(key)).await?;
                ok(Value::Null)
            }
            ("POST", "v2", ["cloudsnapshots"]) => {
                let body = self.json()?;
                let snapshot = object(&body, "snapshot", "EVS.5400", "Malformed request body.")?;
                let volume_id = optional_string(snapshot, "volume_id", "EVS.5400", "Malformed request body.")?
                    .ok_or_else(|| EvsError::bad("EVS.5400", "volume_id is required."))?;
                let name = optional_string(snapshot, "name", "EVS.1003", "invalid snapshot name!")?.unwrap_or_default();
                let description =
                    optional_string(snapshot, "description", "EVS.1004", "invalid snapshot description!")?
                        .unwrap_or_default();
                let force = match snapshot.get("force") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => s == "true",
                    Some(_) => return Err(EvsError::bad("EVS.5400", "force must be a boolean.")),
                };
                let metadata = match snapshot.get("metadata") {
                    None | Some(Value::Null) => BTreeMap::new(),
                    Some(Value::Object(m)) => string_map(m)?,
                    Some(_) => return Err(EvsError::bad("EVS.5400", "metadata must be an object.")),
                };
                let record = evs.create_snapshot(r, &volume_id, name, description, force, metadata).await?;
                accepted(json!({"snapshot": snapshot_json(&record)}))
            }
            ("GET", "v2", ["cloudsnapshots"] | ["cloudsnapshots", "detail"]) => {
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
            ("GET", "v2", ["cloudsnapshots", id]) => ok(json!({"snapshot": snapshot_json(&evs.snapshot(r, id)?)})),
            ("PUT", "v2", ["cloudsnapshots", id]) => {
                let body = self.json()?;
                let snapshot = object(&body, "snapshot", "EVS.5400", "Malformed request body.")?;
                let name = optional_string(snapshot, "name", "EVS.1003", "invalid snapshot name!")?;
                let description =
                    optional_string(snapshot, "description", "EVS.1004", "invalid snapshot description!")?;
                let record = evs.update_snapshot(r, id, name, description).await?;
                ok(json!({"snapshot": snapshot_json(&record)}))
            }
            ("DELETE", "v2", ["cloudsnapshots", id]) => {
                evs.delete_snapshot(r, id).await?;
                accepted(Value::Null)
            }
            ("POST", "v2", ["cloudsnapshots", id, "rollback"]) => {
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
            ("GET", "v1", ["jobs", id]) => ok(self.job_json(&evs.job(r, id)?)),
            ("POST", "v1", ["cloudservers", server_id, "attachvolume"]) => {
                let body = self.json().map_err(|_| EvsError::bad("Ecs.0005", "request body is illegal."))?;
                let attachment = object(&body, "volumeAttachment", "Ecs.0005", "request body is illegal.")?;
                let volume_id = optional_string(attachment, "volumeId", "Ecs.0005", "request body is illegal.")?
                    .ok_or_else(|| EvsError::bad("Ecs.0005", "volumeId is required."))?;
                let device = optional_string(attachment, "device", "Ecs.0005", "request body is illegal.")?;
                if body.get("dry_run") == Some(&Value::Bool(true)) {
                    evs.volume(r, &volume_id)?;
                    return ok(json!({}));
                }
                let job = evs.attach(r, server_id, &volume_id, device).await?;
                ok(json!({"job_id": job.id}))
            }
            ("DELETE", "v1", ["cloudservers", server_id, "detachvolume", volume_id]) => {
                let job = evs.detach(r, server_id, volume_id).await?;
                ok(json!({"job_id": job.id}))
            }
            ("GET", "v1", ["cloudservers", server_id, "os-volume_attachments"]) => {
                let (volumes, _) = evs.volumes(r, &VolumeFilter { limit: usize::MAX, ..VolumeFilter::default() });
                let attachments: Vec<Value> = volumes
                    .iter()
                    .flat_map(|v| v.attachments.iter().map(move |a| (v, a)))
                    .filter(|(_, a)| a.server_id == *server_id)
                    .map(|(v, a)| json!({"device": a.device, "id": v.id, "serverId": a.server_id, "volumeId": v.id}))
                    .collect();
                ok(json!({"volumeAttachments": attachments}))
            }
            _ => Err(EvsError::not_found("EVS.5404", "Resource(Volume, Snapshot, Backup .etc) cound not be found.")),
        }
    }

    fn json(&self) -> Result<Value> {
        match serde_json::from_slice::<Value>(self.body) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err(EvsError::bad("EVS.5400", "Malformed request body.")),
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
            Some(v) => {
                v.parse().map(Some).map_err(|_| EvsError::bad("EVS.5400", format!("{name} param must be an integer.")))
            }
        }
    }

    fn create_volume_input(&self) -> Result<CreateVolume> {
        let body = self.json()?;
        let volume = object(&body, "volume", "EVS.1008", "null createVolumeReq!")?;
        let text = |field: &str| optional_string(volume, field, "EVS.1009", "invalid volumeForCreate!");
        let metadata = match volume.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => string_map(m)?,
            Some(_) => return Err(EvsError::bad("EVS.1009", "invalid volumeForCreate!")),
        };
        if volume.get("imageRef").is_some_and(|v| !v.is_null()) {
            return Err(EvsError::bad("EVS.1016", "kmsim does not create volumes from images."));
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
            Some(_) => return Err(EvsError::bad("EVS.1023", "invalid filter limit!")),
        };
        let metadata = match self.param("metadata") {
            None => BTreeMap::new(),
            Some(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => {
                    string_map(&m).map_err(|_| EvsError::bad("EVS.1058", "invalid metadata filter!"))?
                }
                _ => return Err(EvsError::bad("EVS.1058", "invalid metadata filter!")),
            },
        };
        let marker = self.param("marker");
        if let Some(marker) = &marker
            && uuid::Uuid::parse_str(marker).is_err()
        {
            return Err(EvsError::bad("EVS.1024", "invalid filter marker!"));
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
                        "error_code": job.error_code,
                        "fail_reason": job.fail_reason,
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
            "error_code": job.error_code,
            "fail_reason": job.fail_reason,
            "entities": entities,
        })
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn object<'v>(body: &'v Value, field: &str, code: &'static str, message: &str) -> Result<&'v Map<String, Value>> {
    body.get(field).and_then(Value::as_object).ok_or_else(|| EvsError::bad(code, message))
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
        Some(_) => Err(EvsError::bad(code, message)),
    }
}

/// A JSON integer, or a string of one (the dialect's SDKs send either).
fn integer(value: Option<&Value>, code: &'static str, message: &str) -> Result<Option<u64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| EvsError::bad(code, message)),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| EvsError::bad("EVS.1018", "Type conversion error, parameter type is unexpected.")),
        Some(_) => Err(EvsError::bad("EVS.1018", "Type conversion error, parameter type is unexpected.")),
    }
}

fn string_map(object: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
    object
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(EvsError::bad("EVS.5400", "Metadata values must be strings.")),
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
