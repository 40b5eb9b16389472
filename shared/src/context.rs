//! The context of one request, built once by its front end after authentication and parsing: who is calling
//! ([`Caller`]), from where ([`Peer`]), in which [`Api`], which operation and IAM action, on which resources, with
//! which condition keys. Audit entries are made from it, and a policy evaluator asks it its questions
//! ([`RequestContext::condition`]).

use std::net::{IpAddr, SocketAddr};

use crate::Caller;

/// Where a request came from, as the edge listener saw its connection. The edge puts one into the extensions
/// of every request it hands a service; a request made in-process has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// Whether the connection is TLS (`aws:SecureTransport`).
    pub secure: bool,
}

/// The API, and its dialect, a request was made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The AWS KMS JSON API (`X-Amz-Target: TrentService.*`).
    AwsKms,
    /// The Open Telekom Cloud / Huawei Cloud KMS REST API (`/v1.0/{project_id}/kms/...`).
    OtcKms,
    /// The S3 REST API (`x-amz-*` headers).
    S3,
    /// The OBS REST API of Open Telekom Cloud / Huawei Cloud (`x-obs-*` headers).
    Obs,
    /// The EVS REST API (and the compute API's attach and detach).
    Evs,
    /// A service calling another in-process on a caller's behalf (the object store or the volume service
    /// calling the KMS).
    Internal,
}

impl Api {
    /// The name the audit log gives the dialect: `aws`, `otc`, `s3`, `obs`, `evs` or `internal`.
    pub fn name(self) -> &'static str {
        match self {
            Api::AwsKms => "aws",
            Api::OtcKms => "otc",
            Api::S3 => "s3",
            Api::Obs => "obs",
            Api::Evs => "evs",
            Api::Internal => "internal",
        }
    }
}

/// Who asks what of which resources, from where: everything a policy decision or an audit entry needs to know
/// of a request, and nothing of its wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// Who made the request.
    pub caller: Caller,
    /// Where it came from; `None` for a call made in-process.
    pub peer: Option<Peer>,
    /// The API it was made in.
    pub api: Api,
    /// The operation's name on the wire (`GenerateDataKey`, `create-datakey`, `PutObject`).
    pub operation: &'static str,
    /// The IAM action a policy names (`kms:GenerateDataKey`, `s3:PutObject`, `evs:volumes:create`).
    pub action: &'static str,
    /// The ARNs of the resources it acts on, as a policy's `Resource` names them (`*` for none in particular).
    pub resources: Vec<String>,
    /// The service-specific condition keys of the request and their values, in the order they were added
    /// (`s3:x-amz-server-side-encryption` → `aws:kms`). The global `aws:*` keys are derived from the other
    /// fields by [`RequestContext::condition`].
    pub conditions: Vec<(String, String)>,
    /// The id of the fault rule that fired on the request (`/_sim/faults`), recorded in its audit entry.
    pub fault: Option<u64>,
}

impl RequestContext {
    /// The context of `operation` (IAM `action`) made by `caller` from `peer` in `api`, with no resource or
    /// condition key yet.
    pub fn new(caller: Caller, peer: Option<Peer>, api: Api, operation: &'static str, action: &'static str) -> Self {
        RequestContext {
            caller,
            peer,
            api,
            operation,
            action,
            resources: Vec::new(),
            conditions: Vec::new(),
            fault: None,
        }
    }

    /// The context of a call a service makes in-process on `caller`'s behalf (`caller.via_service` names it).
    pub fn internal(caller: Caller, operation: &'static str, action: &'static str) -> Self {
        RequestContext::new(caller, None, Api::Internal, operation, action)
    }

    /// Adds a resource the request acts on.
    pub fn with_resource(mut self, arn: impl Into<String>) -> Self {
        self.resources.push(arn.into());
        self
    }

    /// Adds a value of a service-specific condition key (a key may have several values).
    pub fn with_condition(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.conditions.push((key.into(), value.into()));
        self
    }

    /// The client's IP address, when the request came over the network.
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.peer.map(|peer| peer.addr.ip())
    }

    /// Where the call came from as CloudTrail's `sourceIPAddress` says it: the service that made it on the
    /// caller's behalf (`s3.amazonaws.com`), else the client's IP address; `None` for an in-process call of
    /// no service.
    pub fn source(&self) -> Option<String> {
        match (&self.caller.via_service, self.source_ip()) {
            (Some(service), _) => Some(service.clone()),
            (None, Some(ip)) => Some(ip.to_string()),
            (None, None) => None,
        }
    }

    /// Logs at debug level who asks for which action on which resources, from where: one line per request
    /// beside the edge's, the inputs of a policy decision.
    pub fn log(&self) {
        tracing::debug!(
            api = self.api.name(),
            operation = self.operation,
            action = self.action,
            principal = %self.caller.principal_arn,
            resources = %self.resources.join(","),
            source = self.source().as_deref().unwrap_or("-"),
            "request context"
        );
    }

    /// The values of condition key `key` (names are case-insensitive, as in IAM): the global keys
    /// `aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:RequestedRegion`, `aws:SourceIp`, `aws:SecureTransport`,
    /// `aws:CalledVia` and `kms:CallerAccount` / `kms:ViaService`, then the service-specific keys the front end
    /// added. Empty when the request has no value for it (a policy's `...IfExists` and `Null` tests see that).
    pub fn condition(&self, key: &str) -> Vec<String> {
        let caller = &self.caller;
        let global = match key.to_ascii_lowercase().as_str() {
            "aws:principalarn" => Some(caller.principal_arn.clone()),
            "aws:principalaccount" | "kms:calleraccount" => Some(caller.account_id.clone()),
            "aws:requestedregion" => Some(caller.region.clone()),
            "aws:sourceip" => self.source_ip().map(|ip| ip.to_string()),
            "aws:securetransport" => self.peer.map(|peer| peer.secure.to_string()),
            "aws:calledvia" | "kms:viaservice" => caller.via_service.clone(),
            _ => None,
        };
        if let Some(value) = global {
            return vec![value];
        }
        self.conditions.iter().filter(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(via_service: Option<&str>) -> Caller {
        Caller {
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            principal_arn: "arn:aws:iam::111122223333:user/alice".into(),
            via_service: via_service.map(str::to_owned),
            peer: None,
            decisions: Default::default(),
        }
    }

    fn peer() -> Option<Peer> {
        Some(Peer { addr: "192.0.2.7:50123".parse().unwrap(), secure: false })
    }

    #[test]
    fn global_condition_keys_come_from_the_caller_and_the_connection() {
        let context = RequestContext::new(caller(None), peer(), Api::S3, "PutObject", "s3:PutObject");
        let cases = [
            ("aws:PrincipalArn", vec!["arn:aws:iam::111122223333:user/alice"]),
            ("AWS:PRINCIPALACCOUNT", vec!["111122223333"]),
            ("kms:CallerAccount", vec!["111122223333"]),
            ("aws:RequestedRegion", vec!["eu-west-1"]),
            ("aws:SourceIp", vec!["192.0.2.7"]),
            ("aws:SecureTransport", vec!["false"]),
            ("kms:ViaService", vec![]),
            ("s3:x-amz-server-side-encryption", vec![]),
        ];
        for (key, want) in cases {
            assert_eq!(context.condition(key), want, "{key}");
        }
    }

    #[test]
    fn service_condition_keys_are_case_insensitive_and_may_repeat() {
        let context = RequestContext::new(caller(None), None, Api::AwsKms, "Decrypt", "kms:Decrypt")
            .with_resource("arn:aws:kms:eu-west-1:111122223333:key/k")
            .with_condition("kms:EncryptionContextKeys", "purpose")
            .with_condition("kms:EncryptionContextKeys", "tenant");
        assert_eq!(context.condition("KMS:encryptioncontextkeys"), ["purpose", "tenant"]);
        assert_eq!(context.condition("aws:SourceIp"), Vec::<String>::new(), "no peer: no source address");
        assert_eq!(context.resources, ["arn:aws:kms:eu-west-1:111122223333:key/k"]);
    }

    #[test]
    fn the_source_of_a_call_is_the_calling_service_else_the_client_address() {
        let direct = RequestContext::new(caller(None), peer(), Api::AwsKms, "Encrypt", "kms:Encrypt");
        assert_eq!(direct.source().as_deref(), Some("192.0.2.7"));
        let via = RequestContext::internal(caller(Some("s3.amazonaws.com")), "GenerateDataKey", "kms:GenerateDataKey");
        assert_eq!(via.source().as_deref(), Some("s3.amazonaws.com"));
        assert_eq!(via.condition("kms:ViaService"), ["s3.amazonaws.com"]);
        let bare = RequestContext::internal(caller(None), "Decrypt", "kms:Decrypt");
        assert_eq!(bare.source(), None);
    }
}
