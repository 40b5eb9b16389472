//! The volume service's typed error: what went wrong, in the terms of volumes, snapshots and jobs. The core
//! knows no HTTP; the EVS front end maps each variant to its wire form (status, `EVS.xxxx` code, message) in one
//! place, its `wire_error`.

use crate::model::{SnapshotStatus, VolumeStatus};

/// Result of the volume service.
pub type Result<T, E = EvsError> = std::result::Result<T, E>;

/// Everything a volume service operation can refuse. The `Display` text names the problem for logs and startup
/// errors; the message sent to a client is the real service's, chosen by the front end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvsError {
    /// The volume does not exist in the caller's project (or is no longer known).
    #[error("volume {id} not found")]
    VolumeNotFound {
        /// The volume id asked for.
        id: String,
    },
    /// The snapshot does not exist in the caller's project (or is being deleted).
    #[error("snapshot {id} not found")]
    SnapshotNotFound {
        /// The snapshot id asked for.
        id: String,
    },
    /// The job does not exist in the caller's project (or has been forgotten).
    #[error("job {id} not found")]
    JobNotFound {
        /// The job id asked for.
        id: String,
    },
    /// The volume has no metadata entry with this key.
    #[error("metadata key {key} not found")]
    MetadataKeyNotFound {
        /// The key asked for.
        key: String,
    },
    /// The snapshot a volume is to be created from does not exist in the caller's project.
    #[error("snapshot {id} to create a volume from not found")]
    SourceSnapshotNotFound {
        /// The snapshot id given.
        id: String,
    },
    /// The snapshot is not available (being created, deleted or rolled back).
    #[error("snapshot {id} is not available")]
    SnapshotNotAvailable {
        /// The snapshot.
        id: String,
    },
    /// A batch creation asks for no volume, or for more than the service makes at once.
    #[error("cannot create {count} volumes at once")]
    InvalidCount {
        /// The number of volumes asked for.
        count: u32,
    },
    /// A volume or snapshot name is longer than 64 characters.
    #[error("name longer than 64 characters")]
    InvalidName,
    /// A volume or snapshot description is longer than 255 characters.
    #[error("description longer than 255 characters")]
    InvalidDescription,
    /// A volume size is missing or not allowed.
    #[error("invalid volume size: {problem}")]
    InvalidSize {
        /// What is wrong with it.
        problem: SizeProblem,
    },
    /// An extend that does not make the volume larger.
    #[error("new size {new_gb} GB is not greater than the volume's {old_gb} GB")]
    SizeNotGreater {
        /// The size asked for.
        new_gb: u64,
        /// The volume's size.
        old_gb: u64,
    },
    /// A volume type the service does not offer.
    #[error("invalid volume type {volume_type:?}")]
    InvalidVolumeType {
        /// The type asked for.
        volume_type: String,
    },
    /// No availability zone was given.
    #[error("no availability zone")]
    MissingAvailabilityZone,
    /// Encryption was asked for on a volume made from a snapshot (it inherits the snapshot's).
    #[error("encryption cannot be chosen for a volume made from a snapshot")]
    EncryptionWithSnapshot,
    /// The encryption metadata (`__system__encrypted`, `__system__cmkid`) is not a valid combination.
    #[error("invalid encryption parameters")]
    InvalidEncryption,
    /// The KMS refused the customer's key for the volume.
    #[error("the key cannot be used ({problem:?}): {detail}")]
    KeyUnusable {
        /// Why.
        problem: KeyProblem,
        /// The KMS's message.
        detail: String,
    },
    /// An update that changes neither name nor description.
    #[error("nothing to update")]
    NothingToUpdate,
    /// A change to a `__system__` metadata key.
    #[error("system metadata cannot be changed")]
    SystemMetadata,
    /// The volume is being deleted.
    #[error("volume {id} is being deleted")]
    VolumeBeingDeleted {
        /// The volume.
        id: String,
    },
    /// A snapshot of the volume is being taken or rolled back, which locks it.
    #[error("volume {id} is locked by a snapshot in progress")]
    VolumeLocked {
        /// The volume.
        id: String,
    },
    /// The volume's status does not allow the operation.
    #[error("volume {id} is {status:?}, which does not allow {action:?}")]
    VolumeStatusForbids {
        /// The volume.
        id: String,
        /// Its status.
        status: VolumeStatus,
        /// What was asked of it.
        action: VolumeAction,
    },
    /// The volume has snapshots, and the deletion does not cascade.
    #[error("volume {id} has snapshots")]
    VolumeHasSnapshots {
        /// The volume.
        id: String,
    },
    /// A snapshot of the volume is busy, so a cascading deletion cannot take them.
    #[error("a snapshot of volume {id} is busy")]
    VolumeSnapshotBusy {
        /// The volume.
        id: String,
    },
    /// The volume is not attached to the server a detach names.
    #[error("volume {volume_id} is not attached to {server_id}")]
    NotAttached {
        /// The volume.
        volume_id: String,
        /// The server.
        server_id: String,
    },
    /// A snapshot of an attached volume without `force`.
    #[error("volume {id} is in use")]
    VolumeInUse {
        /// The volume.
        id: String,
    },
    /// The volume's status does not allow a snapshot.
    #[error("volume {id} is {status:?}: no snapshot")]
    VolumeNotSnapshottable {
        /// The volume.
        id: String,
        /// Its status.
        status: VolumeStatus,
    },
    /// A snapshot of the volume is already being taken.
    #[error("a snapshot of volume {volume_id} is being taken")]
    SnapshotInProgress {
        /// The volume.
        volume_id: String,
    },
    /// The snapshot's status does not allow its deletion.
    #[error("snapshot {id} is {status:?}: not deleted")]
    SnapshotNotDeletable {
        /// The snapshot.
        id: String,
        /// Its status.
        status: SnapshotStatus,
    },
    /// Volumes are being created from the snapshot.
    #[error("snapshot {id} is in use")]
    SnapshotInUse {
        /// The snapshot.
        id: String,
    },
    /// A rollback onto a volume other than the snapshot's source.
    #[error("snapshot {snapshot_id} does not roll back onto volume {volume_id}")]
    RollbackTarget {
        /// The snapshot.
        snapshot_id: String,
        /// The volume named.
        volume_id: String,
    },
    /// The service is shutting down and takes no more operations.
    #[error("the volume service is shutting down")]
    ShuttingDown,
    /// Storage, the KMS or another internal failure; the detail is logged, never sent to a client.
    #[error("internal error: {detail}")]
    Internal {
        /// What failed.
        detail: String,
    },
    /// A failure a fault rule injected into a job (`/_sim/faults`).
    #[error("injected fault: {code}: {message}")]
    Injected {
        /// The EVS error code the job reports.
        code: &'static str,
        /// The HTTP status that code is answered with.
        status: u16,
        /// The job's `fail_reason`.
        message: String,
    },
}

/// What is wrong with a volume size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SizeProblem {
    /// None was given (and there is no snapshot to take it from).
    #[error("no size")]
    Missing,
    /// Outside 10–32768 GB.
    #[error("{size_gb} GB is outside 10 to 32768 GB")]
    OutOfRange {
        /// The size asked for.
        size_gb: u64,
    },
    /// Smaller than the snapshot the volume is made from.
    #[error("{size_gb} GB is smaller than the snapshot's {snapshot_gb} GB")]
    BelowSnapshot {
        /// The size asked for.
        size_gb: u64,
        /// The snapshot's size.
        snapshot_gb: u64,
    },
}

/// Why the KMS refused a customer's key for a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    /// The key is disabled or pending deletion.
    Disabled,
    /// The key does not exist.
    NotFound,
    /// The EVS service may not use the key.
    AccessDenied,
}

/// An operation that moves a volume out of a steady status, checked against the status it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeAction {
    /// Deleting the volume.
    Delete,
    /// Extending it.
    Extend,
    /// Attaching it to a server.
    Attach,
    /// Detaching it from a server.
    Detach,
    /// Rolling a snapshot back onto it.
    Rollback,
}

impl EvsError {
    /// An internal failure; its detail is logged where the error reaches a client or a job, never sent.
    pub fn internal(detail: impl Into<String>) -> Self {
        EvsError::Internal { detail: detail.into() }
    }

    /// An I/O failure while `doing` something.
    pub fn io(doing: &str, e: std::io::Error) -> Self {
        Self::internal(format!("{doing}: {e}"))
    }

    /// An object store failure (snapshots).
    pub fn store(e: object_store::Error) -> Self {
        Self::internal(format!("snapshot store: {e}"))
    }

    /// A volume that does not exist.
    pub(crate) fn volume_not_found(id: &str) -> Self {
        EvsError::VolumeNotFound { id: id.to_owned() }
    }

    /// A snapshot that does not exist.
    pub(crate) fn snapshot_not_found(id: &str) -> Self {
        EvsError::SnapshotNotFound { id: id.to_owned() }
    }
}
