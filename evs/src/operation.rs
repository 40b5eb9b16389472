//! The EVS API operations kmsim serves (and the compute API's attach / detach paths), parsed from a request's
//! method and path into one typed [`EvsOperation`] that knows its IAM action, whether it mutates, and the
//! resource it acts on. The front end dispatches on it; `docs/api-coverage.md` lists the same operations.
//!
//! kmsim answers every EVS path it does not serve with the real service's "resource not found" (404,
//! `EVS.5404`), so there are no "not implemented" variants: [`EvsOperation::parse`] refuses such a path with
//! [`UnknownOperation`].

/// An EVS (or compute attach / detach) API operation with its path parameters. Every variant carries the project
/// id from the path; ids are as the path spells them, a metadata key is percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvsOperation {
    /// `POST /{v2,v2.1,v3}/{project_id}/cloudvolumes`: creates volumes (a job).
    CreateVolume {
        /// The project.
        project_id: String,
    },
    /// `GET /{v2,v3}/{project_id}/cloudvolumes[/detail]`: lists volumes.
    ListVolumes {
        /// The project.
        project_id: String,
    },
    /// `GET /{v2,v3}/{project_id}/cloudvolumes/{volume_id}`.
    ShowVolume {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
    },
    /// `PUT /{v2,v3}/{project_id}/cloudvolumes/{volume_id}`: renames or re-describes a volume.
    UpdateVolume {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
    },
    /// `DELETE /{v2,v3}/{project_id}/cloudvolumes/{volume_id}[?cascade=true]` (a job).
    DeleteVolume {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
    },
    /// `POST /{v2,v2.1,v3}/{project_id}/cloudvolumes/{volume_id}/action` with `os-extend` (a job).
    ExtendVolume {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
    },
    /// `GET /v2/{project_id}/volumes/{volume_id}/metadata`.
    ShowVolumeMetadata {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
    },
    /// `POST /v2/{project_id}/volumes/{volume_id}/metadata` (merge) or `PUT` (replace).
    SetVolumeMetadata {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
        /// `PUT`: the user metadata is replaced; `POST`: merged.
        replace: bool,
    },
    /// `GET /v2/{project_id}/volumes/{volume_id}/metadata/{key}`.
    ShowVolumeMetadataKey {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
        /// The key (percent-decoded).
        key: String,
    },
    /// `PUT /v2/{project_id}/volumes/{volume_id}/metadata/{key}`.
    UpdateVolumeMetadataKey {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
        /// The key (percent-decoded).
        key: String,
    },
    /// `DELETE /v2/{project_id}/volumes/{volume_id}/metadata/{key}`.
    DeleteVolumeMetadataKey {
        /// The project.
        project_id: String,
        /// The volume.
        volume_id: String,
        /// The key (percent-decoded).
        key: String,
    },
    /// `POST /v2/{project_id}/cloudsnapshots`.
    CreateSnapshot {
        /// The project.
        project_id: String,
    },
    /// `GET /v2/{project_id}/cloudsnapshots[/detail]`.
    ListSnapshots {
        /// The project.
        project_id: String,
    },
    /// `GET /v2/{project_id}/cloudsnapshots/{snapshot_id}`.
    ShowSnapshot {
        /// The project.
        project_id: String,
        /// The snapshot.
        snapshot_id: String,
    },
    /// `PUT /v2/{project_id}/cloudsnapshots/{snapshot_id}`.
    UpdateSnapshot {
        /// The project.
        project_id: String,
        /// The snapshot.
        snapshot_id: String,
    },
    /// `DELETE /v2/{project_id}/cloudsnapshots/{snapshot_id}`.
    DeleteSnapshot {
        /// The project.
        project_id: String,
        /// The snapshot.
        snapshot_id: String,
    },
    /// `POST /v2/{project_id}/cloudsnapshots/{snapshot_id}/rollback`.
    RollbackSnapshot {
        /// The project.
        project_id: String,
        /// The snapshot.
        snapshot_id: String,
    },
    /// `GET /v1/{project_id}/jobs/{job_id}` (shared by the EVS and compute APIs).
    ShowJob {
        /// The project.
        project_id: String,
        /// The job.
        job_id: String,
    },
    /// `POST /v1/{project_id}/cloudservers/{server_id}/attachvolume` (a job; the volume is named in the body).
    AttachVolume {
        /// The project.
        project_id: String,
        /// The server.
        server_id: String,
    },
    /// `DELETE /v1/{project_id}/cloudservers/{server_id}/detachvolume/{volume_id}` (a job).
    DetachVolume {
        /// The project.
        project_id: String,
        /// The server.
        server_id: String,
        /// The volume.
        volume_id: String,
    },
    /// `GET /v1/{project_id}/cloudservers/{server_id}/os-volume_attachments`.
    ListServerVolumeAttachments {
        /// The project.
        project_id: String,
        /// The server.
        server_id: String,
    },
}

/// A method and path that name no operation kmsim serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownOperation;

/// What an operation acts on, as an IAM policy's `Resource` would name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvsResource<'a> {
    /// The project as a whole (creations and listings).
    Project(&'a str),
    /// One volume.
    Volume(&'a str),
    /// One snapshot.
    Snapshot(&'a str),
    /// One job.
    Job(&'a str),
    /// One server of the compute API (attach, list attachments).
    Server(&'a str),
}

impl EvsResource<'_> {
    /// The resource's name as a Huawei Cloud / Open Telekom Cloud IAM policy writes it
    /// (`service:region:domain:type:id`): `evs:REGION:DOMAIN:volume:ID`, `...:snapshot:ID`, `...:job:ID`, a
    /// server as `ecs:REGION:DOMAIN:instance:ID`; `*` for the project as a whole (creations and listings).
    pub fn urn(self, region: &str, domain_id: &str) -> String {
        let (service, kind, id) = match self {
            EvsResource::Project(_) => return "*".to_owned(),
            EvsResource::Volume(id) => ("evs", "volume", id),
            EvsResource::Snapshot(id) => ("evs", "snapshot", id),
            EvsResource::Job(id) => ("evs", "job", id),
            EvsResource::Server(id) => ("ecs", "instance", id),
        };
        format!("{service}:{region}:{domain_id}:{kind}:{id}")
    }
}

impl EvsOperation {
    /// The operation a request names, from its method and path (the query does not change the operation); the
    /// path is `/{version}/{project_id}/...` as it comes, before percent-decoding.
    pub fn parse(method: &str, path: &str) -> Result<Self, UnknownOperation> {
        use EvsOperation::*;
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (version, project_id) = match segments.as_slice() {
            [version, project_id, ..] => (*version, (*project_id).to_owned()),
            _ => return Err(UnknownOperation),
        };
        let p = project_id;
        let id = |s: &str| s.to_owned();
        let operation = match (method, version, &segments[2..]) {
            ("POST", "v2" | "v2.1" | "v3", ["cloudvolumes"]) => CreateVolume { project_id: p },
            ("GET", "v2" | "v3", ["cloudvolumes"] | ["cloudvolumes", "detail"]) => ListVolumes { project_id: p },
            ("GET", "v2" | "v3", ["cloudvolumes", v]) => ShowVolume { project_id: p, volume_id: id(v) },
            ("PUT", "v2" | "v3", ["cloudvolumes", v]) => UpdateVolume { project_id: p, volume_id: id(v) },
            ("DELETE", "v2" | "v3", ["cloudvolumes", v]) => DeleteVolume { project_id: p, volume_id: id(v) },
            ("POST", "v2" | "v2.1" | "v3", ["cloudvolumes", v, "action"]) => {
                ExtendVolume { project_id: p, volume_id: id(v) }
            }
            ("GET", "v2", ["volumes", v, "metadata"]) => ShowVolumeMetadata { project_id: p, volume_id: id(v) },
            ("POST" | "PUT", "v2", ["volumes", v, "metadata"]) => {
                SetVolumeMetadata { project_id: p, volume_id: id(v), replace: method == "PUT" }
            }
            ("GET", "v2", ["volumes", v, "metadata", key]) => {
                ShowVolumeMetadataKey { project_id: p, volume_id: id(v), key: decode(key) }
            }
            ("PUT", "v2", ["volumes", v, "metadata", key]) => {
                UpdateVolumeMetadataKey { project_id: p, volume_id: id(v), key: decode(key) }
            }
            ("DELETE", "v2", ["volumes", v, "metadata", key]) => {
                DeleteVolumeMetadataKey { project_id: p, volume_id: id(v), key: decode(key) }
            }
            ("POST", "v2", ["cloudsnapshots"]) => CreateSnapshot { project_id: p },
            ("GET", "v2", ["cloudsnapshots"] | ["cloudsnapshots", "detail"]) => ListSnapshots { project_id: p },
            ("GET", "v2", ["cloudsnapshots", s]) => ShowSnapshot { project_id: p, snapshot_id: id(s) },
            ("PUT", "v2", ["cloudsnapshots", s]) => UpdateSnapshot { project_id: p, snapshot_id: id(s) },
            ("DELETE", "v2", ["cloudsnapshots", s]) => DeleteSnapshot { project_id: p, snapshot_id: id(s) },
            ("POST", "v2", ["cloudsnapshots", s, "rollback"]) => RollbackSnapshot { project_id: p, snapshot_id: id(s) },
            ("GET", "v1", ["jobs", j]) => ShowJob { project_id: p, job_id: id(j) },
            ("POST", "v1", ["cloudservers", server, "attachvolume"]) => {
                AttachVolume { project_id: p, server_id: id(server) }
            }
            ("DELETE", "v1", ["cloudservers", server, "detachvolume", v]) => {
                DetachVolume { project_id: p, server_id: id(server), volume_id: id(v) }
            }
            ("GET", "v1", ["cloudservers", server, "os-volume_attachments"]) => {
                ListServerVolumeAttachments { project_id: p, server_id: id(server) }
            }
            _ => return Err(UnknownOperation),
        };
        Ok(operation)
    }

    /// The operation's name, as the audit and logs give it (the variant's name).
    pub fn name(&self) -> &'static str {
        use EvsOperation::*;
        match self {
            CreateVolume { .. } => "CreateVolume",
            ListVolumes { .. } => "ListVolumes",
            ShowVolume { .. } => "ShowVolume",
            UpdateVolume { .. } => "UpdateVolume",
            DeleteVolume { .. } => "DeleteVolume",
            ExtendVolume { .. } => "ExtendVolume",
            ShowVolumeMetadata { .. } => "ShowVolumeMetadata",
            SetVolumeMetadata { .. } => "SetVolumeMetadata",
            ShowVolumeMetadataKey { .. } => "ShowVolumeMetadataKey",
            UpdateVolumeMetadataKey { .. } => "UpdateVolumeMetadataKey",
            DeleteVolumeMetadataKey { .. } => "DeleteVolumeMetadataKey",
            CreateSnapshot { .. } => "CreateSnapshot",
            ListSnapshots { .. } => "ListSnapshots",
            ShowSnapshot { .. } => "ShowSnapshot",
            UpdateSnapshot { .. } => "UpdateSnapshot",
            DeleteSnapshot { .. } => "DeleteSnapshot",
            RollbackSnapshot { .. } => "RollbackSnapshot",
            ShowJob { .. } => "ShowJob",
            AttachVolume { .. } => "AttachVolume",
            DetachVolume { .. } => "DetachVolume",
            ListServerVolumeAttachments { .. } => "ListServerVolumeAttachments",
        }
    }

    /// The IAM action a policy names to allow or deny the operation.
    ///
    /// Confirmed in Huawei Cloud's EVS and ECS permission tables ("Permissions Policies and Supported Actions"):
    /// `evs:volumes:{create,list,get,update,delete,extend}` (the newer identity-policy table calls extending
    /// `evs:volumes:resize`), `evs:snapshots:{create,list,get,update,delete,rollback}`,
    /// `ecs:cloudServers:{attach,detachVolume,listServerVolumeAttachments}`. Not found there, so kmsim's own
    /// choice: the Cinder-style volume metadata paths (`evs:volumes:get` to read, `evs:volumes:update` to change,
    /// as the snapshot metadata paths are documented) and the job query (`evs:jobs:get`).
    pub fn action(&self) -> &'static str {
        use EvsOperation::*;
        match self {
            CreateVolume { .. } => "evs:volumes:create",
            ListVolumes { .. } => "evs:volumes:list",
            ShowVolume { .. } | ShowVolumeMetadata { .. } | ShowVolumeMetadataKey { .. } => "evs:volumes:get",
            UpdateVolume { .. }
            | SetVolumeMetadata { .. }
            | UpdateVolumeMetadataKey { .. }
            | DeleteVolumeMetadataKey { .. } => "evs:volumes:update",
            DeleteVolume { .. } => "evs:volumes:delete",
            ExtendVolume { .. } => "evs:volumes:extend",
            CreateSnapshot { .. } => "evs:snapshots:create",
            ListSnapshots { .. } => "evs:snapshots:list",
            ShowSnapshot { .. } => "evs:snapshots:get",
            UpdateSnapshot { .. } => "evs:snapshots:update",
            DeleteSnapshot { .. } => "evs:snapshots:delete",
            RollbackSnapshot { .. } => "evs:snapshots:rollback",
            ShowJob { .. } => "evs:jobs:get",
            AttachVolume { .. } => "ecs:cloudServers:attach",
            DetachVolume { .. } => "ecs:cloudServers:detachVolume",
            ListServerVolumeAttachments { .. } => "ecs:cloudServers:listServerVolumeAttachments",
        }
    }

    /// Whether the operation changes state (reads and listings do not).
    pub fn is_mutation(&self) -> bool {
        use EvsOperation::*;
        !matches!(
            self,
            ListVolumes { .. }
                | ShowVolume { .. }
                | ShowVolumeMetadata { .. }
                | ShowVolumeMetadataKey { .. }
                | ListSnapshots { .. }
                | ShowSnapshot { .. }
                | ShowJob { .. }
                | ListServerVolumeAttachments { .. }
        )
    }

    /// The project the request is made in (from its path).
    pub fn project_id(&self) -> &str {
        use EvsOperation::*;
        match self {
            CreateVolume { project_id }
            | ListVolumes { project_id }
            | ShowVolume { project_id, .. }
            | UpdateVolume { project_id, .. }
            | DeleteVolume { project_id, .. }
            | ExtendVolume { project_id, .. }
            | ShowVolumeMetadata { project_id, .. }
            | SetVolumeMetadata { project_id, .. }
            | ShowVolumeMetadataKey { project_id, .. }
            | UpdateVolumeMetadataKey { project_id, .. }
            | DeleteVolumeMetadataKey { project_id, .. }
            | CreateSnapshot { project_id }
            | ListSnapshots { project_id }
            | ShowSnapshot { project_id, .. }
            | UpdateSnapshot { project_id, .. }
            | DeleteSnapshot { project_id, .. }
            | RollbackSnapshot { project_id, .. }
            | ShowJob { project_id, .. }
            | AttachVolume { project_id, .. }
            | DetachVolume { project_id, .. }
            | ListServerVolumeAttachments { project_id, .. } => project_id,
        }
    }

    /// The resource the operation acts on: the volume, snapshot, job or server in its path, else the project.
    pub fn resource(&self) -> EvsResource<'_> {
        use EvsOperation::*;
        match self {
            CreateVolume { project_id } | ListVolumes { project_id } => EvsResource::Project(project_id),
            CreateSnapshot { project_id } | ListSnapshots { project_id } => EvsResource::Project(project_id),
            ShowVolume { volume_id, .. }
            | UpdateVolume { volume_id, .. }
            | DeleteVolume { volume_id, .. }
            | ExtendVolume { volume_id, .. }
            | ShowVolumeMetadata { volume_id, .. }
            | SetVolumeMetadata { volume_id, .. }
            | ShowVolumeMetadataKey { volume_id, .. }
            | UpdateVolumeMetadataKey { volume_id, .. }
            | DeleteVolumeMetadataKey { volume_id, .. }
            | DetachVolume { volume_id, .. } => EvsResource::Volume(volume_id),
            ShowSnapshot { snapshot_id, .. }
            | UpdateSnapshot { snapshot_id, .. }
            | DeleteSnapshot { snapshot_id, .. }
            | RollbackSnapshot { snapshot_id, .. } => EvsResource::Snapshot(snapshot_id),
            ShowJob { job_id, .. } => EvsResource::Job(job_id),
            AttachVolume { server_id, .. } | ListServerVolumeAttachments { server_id, .. } => {
                EvsResource::Server(server_id)
            }
        }
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "8f9a3c2d1e0b4a5f9c8d7e6f5a4b3c2d";
    const VOLUME: &str = "6615a5ab-6f9b-4a53-8b2b-2e2e0d5ad6a0";
    const SNAPSHOT: &str = "f9faf7df-fdc1-4093-9ef3-5cba06eef995";
    const JOB: &str = "ff80808288d41e1b018a2b4a6f2c0ac9";
    const SERVER: &str = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6";

    /// `{project_id}` and the other placeholders of the API reference, filled in.
    fn uri(template: &str) -> String {
        template
            .replace("{project_id}", P)
            .replace("{volume_id}", VOLUME)
            .replace("{snapshot_id}", SNAPSHOT)
            .replace("{job_id}", JOB)
            .replace("{server_id}", SERVER)
    }

    /// Parses a request line as the front end does: the path without its query.
    fn parse(method: &str, template: &str) -> Result<EvsOperation, UnknownOperation> {
        let uri = uri(template);
        EvsOperation::parse(method, uri.split('?').next().unwrap_or_default())
    }

    fn p() -> String {
        P.to_owned()
    }

    fn v() -> String {
        VOLUME.to_owned()
    }

    fn s() -> String {
        SNAPSHOT.to_owned()
    }

    /// The request examples of the EVS and ECS API references (method and URI as documented) that kmsim serves:
    /// the operation each parses to, its IAM action (which `docs/api-coverage.md` lists too), whether it mutates,
    /// and its resource.
    #[test]
    fn the_api_reference_examples_parse_to_their_operations() {
        use EvsOperation::*;
        let volume = EvsResource::Volume(VOLUME);
        let snapshot = EvsResource::Snapshot(SNAPSHOT);
        let project = EvsResource::Project(P);
        let server = EvsResource::Server(SERVER);
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, EvsOperation, &str, bool, EvsResource)> = vec![
            ("POST", "/v2/{project_id}/cloudvolumes", CreateVolume { project_id: p() }, "evs:volumes:create", true, project),
            ("POST", "/v2.1/{project_id}/cloudvolumes", CreateVolume { project_id: p() }, "evs:volumes:create", true, project),
            ("POST", "/v3/{project_id}/cloudvolumes", CreateVolume { project_id: p() }, "evs:volumes:create", true, project),
            ("GET", "/v2/{project_id}/cloudvolumes/detail", ListVolumes { project_id: p() }, "evs:volumes:list", false, project),
            ("GET", "/v2/{project_id}/cloudvolumes/detail?limit=10&offset=0&status=available", ListVolumes { project_id: p() }, "evs:volumes:list", false, project),
            ("GET", "/v2/{project_id}/cloudvolumes", ListVolumes { project_id: p() }, "evs:volumes:list", false, project),
            ("GET", "/v3/{project_id}/cloudvolumes/detail", ListVolumes { project_id: p() }, "evs:volumes:list", false, project),
            ("GET", "/v2/{project_id}/cloudvolumes/{volume_id}", ShowVolume { project_id: p(), volume_id: v() }, "evs:volumes:get", false, volume),
            ("PUT", "/v2/{project_id}/cloudvolumes/{volume_id}", UpdateVolume { project_id: p(), volume_id: v() }, "evs:volumes:update", true, volume),
            ("DELETE", "/v2/{project_id}/cloudvolumes/{volume_id}", DeleteVolume { project_id: p(), volume_id: v() }, "evs:volumes:delete", true, volume),
            ("DELETE", "/v2/{project_id}/cloudvolumes/{volume_id}?cascade=true", DeleteVolume { project_id: p(), volume_id: v() }, "evs:volumes:delete", true, volume),
            ("POST", "/v2/{project_id}/cloudvolumes/{volume_id}/action", ExtendVolume { project_id: p(), volume_id: v() }, "evs:volumes:extend", true, volume),
            ("POST", "/v2.1/{project_id}/cloudvolumes/{volume_id}/action", ExtendVolume { project_id: p(), volume_id: v() }, "evs:volumes:extend", true, volume),
            ("GET", "/v2/{project_id}/volumes/{volume_id}/metadata", ShowVolumeMetadata { project_id: p(), volume_id: v() }, "evs:volumes:get", false, volume),
            ("POST", "/v2/{project_id}/volumes/{volume_id}/metadata", SetVolumeMetadata { project_id: p(), volume_id: v(), replace: false }, "evs:volumes:update", true, volume),
            ("PUT", "/v2/{project_id}/volumes/{volume_id}/metadata", SetVolumeMetadata { project_id: p(), volume_id: v(), replace: true }, "evs:volumes:update", true, volume),
            ("GET", "/v2/{project_id}/volumes/{volume_id}/metadata/key1", ShowVolumeMetadataKey { project_id: p(), volume_id: v(), key: "key1".into() }, "evs:volumes:get", false, volume),
            ("PUT", "/v2/{project_id}/volumes/{volume_id}/metadata/key%201", UpdateVolumeMetadataKey { project_id: p(), volume_id: v(), key: "key 1".into() }, "evs:volumes:update", true, volume),
            ("DELETE", "/v2/{project_id}/volumes/{volume_id}/metadata/key1", DeleteVolumeMetadataKey { project_id: p(), volume_id: v(), key: "key1".into() }, "evs:volumes:update", true, volume),
            ("POST", "/v2/{project_id}/cloudsnapshots", CreateSnapshot { project_id: p() }, "evs:snapshots:create", true, project),
            ("GET", "/v2/{project_id}/cloudsnapshots/detail", ListSnapshots { project_id: p() }, "evs:snapshots:list", false, project),
            ("GET", "/v2/{project_id}/cloudsnapshots/detail?volume_id=6615a5ab-6f9b-4a53-8b2b-2e2e0d5ad6a0", ListSnapshots { project_id: p() }, "evs:snapshots:list", false, project),
            ("GET", "/v2/{project_id}/cloudsnapshots", ListSnapshots { project_id: p() }, "evs:snapshots:list", false, project),
            ("GET", "/v2/{project_id}/cloudsnapshots/{snapshot_id}", ShowSnapshot { project_id: p(), snapshot_id: s() }, "evs:snapshots:get", false, snapshot),
            ("PUT", "/v2/{project_id}/cloudsnapshots/{snapshot_id}", UpdateSnapshot { project_id: p(), snapshot_id: s() }, "evs:snapshots:update", true, snapshot),
            ("DELETE", "/v2/{project_id}/cloudsnapshots/{snapshot_id}", DeleteSnapshot { project_id: p(), snapshot_id: s() }, "evs:snapshots:delete", true, snapshot),
            ("POST", "/v2/{project_id}/cloudsnapshots/{snapshot_id}/rollback", RollbackSnapshot { project_id: p(), snapshot_id: s() }, "evs:snapshots:rollback", true, snapshot),
            ("GET", "/v1/{project_id}/jobs/{job_id}", ShowJob { project_id: p(), job_id: JOB.into() }, "evs:jobs:get", false, EvsResource::Job(JOB)),
            ("POST", "/v1/{project_id}/cloudservers/{server_id}/attachvolume", AttachVolume { project_id: p(), server_id: SERVER.into() }, "ecs:cloudServers:attach", true, server),
            ("DELETE", "/v1/{project_id}/cloudservers/{server_id}/detachvolume/{volume_id}", DetachVolume { project_id: p(), server_id: SERVER.into(), volume_id: v() }, "ecs:cloudServers:detachVolume", true, volume),
            ("GET", "/v1/{project_id}/cloudservers/{server_id}/os-volume_attachments", ListServerVolumeAttachments { project_id: p(), server_id: SERVER.into() }, "ecs:cloudServers:listServerVolumeAttachments", false, server),
        ];
        let coverage = include_str!("../../docs/api-coverage.md");
        let evs_section = coverage.split("\n## ").find(|s| s.starts_with("EVS ")).expect("an EVS section");
        for (method, template, expected, action, mutates, resource) in cases {
            assert!(evs_section.contains(&format!("`{action}`")), "docs/api-coverage.md does not list {action}");
            let operation = parse(method, template).unwrap_or_else(|_| panic!("{method} {template} did not parse"));
            assert_eq!(operation, expected, "{method} {template}");
            assert_eq!(operation.action(), action, "{method} {template}");
            assert_eq!(operation.is_mutation(), mutates, "{method} {template}");
            assert_eq!(operation.resource(), resource, "{method} {template}");
            assert_eq!(operation.project_id(), P, "{method} {template}");
        }
    }

    /// Paths of the API references that kmsim does not serve (the Cinder-style snapshot and volume paths, the
    /// vendor rollback, tags, quotas), methods a served path does not take, versions it is not served under, and
    /// paths too short to name a project: none is an operation.
    #[test]
    fn resources_are_named_as_iam_policies_write_them() {
        let cases = [
            (EvsResource::Project(P), "*".to_owned()),
            (EvsResource::Volume(VOLUME), format!("evs:eu-de:{P}:volume:{VOLUME}")),
            (EvsResource::Snapshot(SNAPSHOT), format!("evs:eu-de:{P}:snapshot:{SNAPSHOT}")),
            (EvsResource::Job(JOB), format!("evs:eu-de:{P}:job:{JOB}")),
            (EvsResource::Server(SERVER), format!("ecs:eu-de:{P}:instance:{SERVER}")),
        ];
        for (resource, want) in cases {
            assert_eq!(resource.urn("eu-de", P), want, "{resource:?}");
        }
        let names: Vec<&str> =
            [parse("POST", "/v2/{project_id}/cloudvolumes"), parse("GET", "/v1/{project_id}/jobs/{job_id}")]
                .into_iter()
                .map(|operation| operation.expect("an operation").name())
                .collect();
        assert_eq!(names, ["CreateVolume", "ShowJob"]);
    }

    #[test]
    fn other_requests_are_unknown_operations() {
        #[rustfmt::skip]
        let cases = [
            ("POST", "/v3/{project_id}/snapshots"),
            ("GET", "/v2/{project_id}/snapshots/detail"),
            ("POST", "/v2/{project_id}/volumes"),
            ("GET", "/v2/{project_id}/volumes/{volume_id}"),
            ("POST", "/v2/{project_id}/os-vendor-snapshots/{snapshot_id}/rollback"),
            ("GET", "/v2/{project_id}/cloudvolumes/{volume_id}/tags"),
            ("GET", "/v2/{project_id}/os-quota-sets/{project_id}"),
            ("PATCH", "/v2/{project_id}/cloudvolumes/{volume_id}"),
            ("POST", "/v2/{project_id}/cloudvolumes/{volume_id}"),
            ("GET", "/v2.1/{project_id}/cloudvolumes/detail"),
            ("POST", "/v3/{project_id}/cloudsnapshots"),
            ("GET", "/v2/{project_id}/jobs/{job_id}"),
            ("GET", "/v1/{project_id}/jobs"),
            ("GET", "/v1/{project_id}/cloudservers/{server_id}"),
            ("GET", "/v2/{project_id}/volumes/{volume_id}/metadata/a/b"),
            ("GET", "/v2"),
            ("GET", "/"),
            ("GET", ""),
        ];
        for (method, template) in cases {
            assert_eq!(parse(method, template), Err(UnknownOperation), "{method} {template}");
        }
    }

    /// The path segment after the collection is an id, whatever it spells (`detail` lists only with GET).
    #[test]
    fn ids_are_taken_as_they_come() {
        assert_eq!(
            parse("PUT", "/v2/{project_id}/cloudvolumes/detail"),
            Ok(EvsOperation::UpdateVolume { project_id: p(), volume_id: "detail".into() })
        );
        assert_eq!(parse("GET", "/v2//cloudvolumes"), Ok(EvsOperation::ListVolumes { project_id: String::new() }));
    }
}
