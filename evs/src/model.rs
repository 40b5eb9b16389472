//! Persisted records of the volume service: volumes, snapshots and jobs, with the statuses the EVS API shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the record format, stored in every record. Changing the shape of a record bumps it; changing this
/// breaks stored data (records of another format are set aside at start, not read).
pub const RECORD_FORMAT: u32 = 1;

/// Why a stored record was not read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not JSON, or not the shape its format says.
    #[error("unreadable record: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// No `format` field: not a record of this service.
    #[error("the record has no format version")]
    NoFormat,
    /// A format this build does not read (written by another version of kmsim).
    #[error("record format {found} is not one this build reads (format {RECORD_FORMAT})")]
    UnknownFormat {
        /// The record's `format`.
        found: u64,
    },
    /// A value no API call can give (an altered record).
    #[error("the record is invalid: {0}")]
    Invalid(String),
}

/// Reads a volume or snapshot record, checking its `format` first: a record of another format is refused,
/// whether or not its fields happen to parse.
pub fn parse_record<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    #[derive(Deserialize)]
    struct Versioned {
        format: Option<serde_json::Value>,
    }
    let versioned: Versioned = serde_json::from_slice(bytes)?;
    match versioned.format {
        None => Err(RecordError::NoFormat),
        Some(format) if format.as_u64() == Some(u64::from(RECORD_FORMAT)) => Ok(serde_json::from_slice(bytes)?),
        Some(format) => Err(RecordError::UnknownFormat { found: format.as_u64().unwrap_or(u64::MAX) }),
    }
}

/// Bytes in one of the API's gigabytes (EVS sizes are GiB).
pub const GIB: u64 = 1 << 30;

/// Metadata key that marks a volume encrypted (`"1"`).
pub const ENCRYPTED_KEY: &str = "__system__encrypted";
/// Metadata key that names the CMK of an encrypted volume.
pub const CMK_ID_KEY: &str = "__system__cmkid";

/// A volume's lifecycle status, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeStatus {
    /// Being created (its job is running).
    Creating,
    /// Ready to attach, extend, snapshot or delete.
    Available,
    /// Attached to a server and exported over NBD.
    InUse,
    /// Its data key is being decrypted and the volume opened.
    Attaching,
    /// Being closed.
    Detaching,
    /// Growing.
    Extending,
    /// Being deleted.
    Deleting,
    /// Being rolled back to a snapshot.
    Restoring,
    /// Something failed; only deletion helps.
    Error,
}

impl VolumeStatus {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeStatus::Creating => "creating",
            VolumeStatus::Available => "available",
            VolumeStatus::InUse => "in-use",
            VolumeStatus::Attaching => "attaching",
            VolumeStatus::Detaching => "detaching",
            VolumeStatus::Extending => "extending",
            VolumeStatus::Deleting => "deleting",
            VolumeStatus::Restoring => "restoring-backup",
            VolumeStatus::Error => "error",
        }
    }
}

/// How an encrypted volume's key is kept: the KMS ciphertext of its data key, never the data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeEncryption {
    /// The CMK id the customer named (`__system__cmkid`).
    pub cmk_id: String,
    /// The CMK's ARN, by which the EVS service names it through its grant.
    pub key_arn: String,
    /// The data key encrypted under the CMK (a KMS ciphertext blob), hex.
    pub dek_ciphertext: String,
    /// The encryption context the data key is bound to.
    pub context: BTreeMap<String, String>,
}

/// One attachment of a volume to a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The attachment's id.
    pub attachment_id: String,
    /// The server (any id stands for a virtual server).
    pub server_id: String,
    /// The device name the server sees, e.g. `/dev/vdb`.
    pub device: String,
    /// When it was attached (ms since the epoch).
    pub attached_at: i64,
}

/// A volume, as persisted beside its data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// [`RECORD_FORMAT`] at the time of writing.
    pub format: u32,
    /// UUID.
    pub id: String,
    /// Owning account (the project's).
    pub account: String,
    /// The project the volume belongs to.
    pub project_id: String,
    /// Name, 0–64 characters.
    pub name: String,
    /// Description, 0–255 characters.
    pub description: String,
    /// Size in GiB.
    pub size_gb: u64,
    /// `SATA`, `SAS`, `SSD`, `GPSSD`, `ESSD`, ...
    pub volume_type: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Lifecycle status.
    pub status: VolumeStatus,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
    /// User and system metadata (`__system__encrypted`, `__system__cmkid`, ...).
    pub metadata: BTreeMap<String, String>,
    /// Present for an encrypted volume.
    pub encryption: Option<VolumeEncryption>,
    /// The snapshot the volume was created from.
    pub snapshot_id: Option<String>,
    /// Current attachments (at most one).
    pub attachments: Vec<Attachment>,
}

/// A snapshot's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotStatus {
    /// Being copied.
    Creating,
    /// Ready.
    Available,
    /// Being rolled back onto its volume.
    Rollbacking,
    /// Being deleted.
    Deleting,
    /// Failed.
    Error,
}

impl SnapshotStatus {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotStatus::Creating => "creating",
            SnapshotStatus::Available => "available",
            SnapshotStatus::Rollbacking => "rollbacking",
            SnapshotStatus::Deleting => "deleting",
            SnapshotStatus::Error => "error",
        }
    }
}

/// A snapshot: a point-in-time copy of a volume's file (ciphertext for an encrypted volume), kept in the object
/// store under `snapshots/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// [`RECORD_FORMAT`] at the time of writing.
    pub format: u32,
    /// UUID.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// The project.
    pub project_id: String,
    /// The source volume.
    pub volume_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Size of the source volume in GiB when taken.
    pub size_gb: u64,
    /// Lifecycle status.
    pub status: SnapshotStatus,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// The source volume's encryption (same data key, same CMK), inherited by volumes made from it.
    pub encryption: Option<VolumeEncryption>,
    /// The source volume's type, inherited by volumes made from it.
    pub volume_type: String,
}

/// A job's status, as the jobs API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Accepted, not started.
    Init,
    /// Running.
    Running,
    /// Done.
    Success,
    /// Failed; see the error code.
    Fail,
}

impl JobStatus {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Init => "INIT",
            JobStatus::Running => "RUNNING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Fail => "FAIL",
        }
    }
}

/// An asynchronous operation (create, delete, extend, attach, detach) and its outcome. Jobs live in memory only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Id (32 hex characters).
    pub id: String,
    /// The project.
    pub project_id: String,
    /// `createVolume`, `deleteVolume`, `extendVolume`, `attachVolume`, `detachVolume`, ...
    pub job_type: String,
    /// Status.
    pub status: JobStatus,
    /// The volume the job is about (the first of a batch).
    pub volume_id: Option<String>,
    /// Every volume a batch creation makes.
    pub volume_ids: Vec<String>,
    /// The server of an attach or detach.
    pub server_id: Option<String>,
    /// Begin time, ms since the epoch.
    pub begin_time: i64,
    /// End time, ms since the epoch (0 while running).
    pub end_time: i64,
    /// Why a failed job failed; the API shows it as the job's `error_code` (`EVS.2040`, ...) and `fail_reason`.
    pub failure: Option<crate::error::EvsError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_json(format: &str) -> String {
        format!(
            r#"{{"format":{format},"id":"s","account":"a","project_id":"p","volume_id":"v","name":"","description":"",
            "size_gb":10,"status":"available","created_at":0,"updated_at":0,"metadata":{{}},"encryption":null,
            "volume_type":"SSD"}}"#
        )
    }

    #[test]
    fn records_of_another_format_are_refused() {
        let record: SnapshotRecord = parse_record(snapshot_json("1").as_bytes()).expect("format 1 reads");
        assert_eq!(record.format, RECORD_FORMAT);
        for (format, expected) in [("2", Some(2)), ("0", Some(0)), ("\"1\"", None), ("1.5", None)] {
            match parse_record::<SnapshotRecord>(snapshot_json(format).as_bytes()) {
                Err(RecordError::UnknownFormat { found }) => assert_eq!(Some(found), expected.or(Some(u64::MAX))),
                other => panic!("format {format}: {other:?}"),
            }
        }
        let unversioned = snapshot_json("1").replace(r#""format":1,"#, "");
        assert!(matches!(parse_record::<SnapshotRecord>(unversioned.as_bytes()), Err(RecordError::NoFormat)));
        assert!(matches!(parse_record::<SnapshotRecord>(b"[damaged"), Err(RecordError::Unreadable(_))));
        let message = parse_record::<SnapshotRecord>(snapshot_json("7").as_bytes()).unwrap_err().to_string();
        assert!(message.contains("format 7") && message.contains("format 1"), "{message}");
    }
}
