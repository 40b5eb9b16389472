//! Who may do what in the object store: [`authorize`], the one decision every operation of
//! [`crate::Obs`] asks before it reads or changes a bucket, an object or an upload, for the request's
//! caller (signed, or the anonymous requester of an unsigned request: [`anonymous_caller`]), an IAM
//! action (`s3:GetObject`, ...) and a [`Resource`].
//!
//! What decides today, in this order:
//!
//! 1. The resource owner's account may do anything with it: the bucket's owner with the bucket (its
//!    configuration, its listings, writing and deleting its keys), an object's owner with the object
//!    (reading it, its ACL, its tags), the bucket's owner and the initiator with a multipart upload.
//!    (What an account's own principals may do is the account's identity policies' to say; kmsim has
//!    none yet, so every principal of an account acts as its root.)
//! 2. The ACL of the resource, while the bucket's ownership setting enables ACLs: a grant to the
//!    caller's canonical user id, to `AuthenticatedUsers` (any signed caller) or to `AllUsers`
//!    (anyone) of a permission that covers the action ([`acl_permission`]). Block Public Access's
//!    `IgnorePublicAcls` drops the grants to the two public groups.
//! 3. Anything else is denied (`AccessDenied`).
//!
//! Where policies will plug in: the bucket policy and the caller's identity policies are evaluated
//! by [`authorize`] before step 1, from the [`RequestContext`] (principal, condition keys) with the
//! action and the resource's ARN ([`Resource::arn`]): an explicit `Deny` ends the decision, an
//! `Allow` of the bucket policy lets another account in next to the ACLs, and the identity policies
//! bound what an account's principals may do in step 1. Block Public Access's `BlockPublicPolicy`
//! and `RestrictPublicBuckets` (stored today, see `docs/api-coverage.md`) apply there.

use policy::{Policies, Principal, Reason, Request, Rule};
use shared::identity::Identities;
use shared::{Caller, RequestContext};

use crate::acl::{Grant, Grantee, Group, Permission, canonical_user_id};
use crate::error::{Error, Result};
use crate::model::{BucketRecord, ObjectRecord, UploadRecord};

/// The principal of an unsigned request (its caller has no account and no access key).
pub const ANONYMOUS_PRINCIPAL: &str = "anonymous";

/// The caller of an unsigned request, acting in `region` (the bucket's).
pub fn anonymous_caller(region: &str) -> Caller {
    Caller {
        account_id: crate::acl::ANONYMOUS_OWNER.to_owned(),
        region: region.to_owned(),
        access_key_id: String::new(),
        principal_arn: ANONYMOUS_PRINCIPAL.to_owned(),
        via_service: None,
        peer: None,
        decisions: Default::default(),
    }
}

/// Whether a caller is the anonymous requester of an unsigned request.
pub fn is_anonymous(caller: &Caller) -> bool {
    caller.access_key_id.is_empty() && caller.account_id == crate::acl::ANONYMOUS_OWNER
}

/// What a request acts on, as authorization sees it.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// The bucket itself: its configuration, its ACL, its listings.
    Bucket(&'a BucketRecord),
    /// A key of the bucket: to write or delete (decided by the bucket, whoever owns what is there),
    /// or to read when nothing is there.
    Key {
        /// The bucket.
        bucket: &'a BucketRecord,
        /// The key.
        key: &'a str,
    },
    /// An object (one version of a key): decided by its owner and its ACL.
    Object {
        /// Its bucket.
        bucket: &'a BucketRecord,
        /// The object.
        object: &'a ObjectRecord,
    },
    /// A multipart upload in progress: its bucket's owner and its initiator.
    Upload {
        /// Its bucket.
        bucket: &'a BucketRecord,
        /// The upload.
        upload: &'a UploadRecord,
    },
}

impl Resource<'_> {
    /// The ARN a policy's `Resource` names it by.
    pub fn arn(&self) -> String {
        match self {
            Resource::Bucket(bucket) => format!("arn:aws:s3:::{}", bucket.name),
            Resource::Key { bucket, key } => format!("arn:aws:s3:::{}/{key}", bucket.name),
            Resource::Object { bucket, object } => format!("arn:aws:s3:::{}/{}", bucket.name, object.key),
            Resource::Upload { bucket, upload } => format!("arn:aws:s3:::{}/{}", bucket.name, upload.key),
        }
    }

    fn bucket(&self) -> &BucketRecord {
        match self {
            Resource::Bucket(bucket)
            | Resource::Key { bucket, .. }
            | Resource::Object { bucket, .. }
            | Resource::Upload { bucket, .. } => bucket,
        }
    }
}

/// The ACL permission that allows `action` on a bucket (`object` false: a bucket's ACL, for the
/// bucket and the writes and deletes of its keys) or on an object (its ACL), as S3 maps ACL
/// permissions to actions. Actions no ACL can grant (a bucket's configuration, an object's tags,
/// deleting a version for good) have none.
pub fn acl_permission(action: &str, object: bool) -> Option<Permission> {
    match (action, object) {
        ("s3:ListBucket" | "s3:ListBucketVersions" | "s3:ListBucketMultipartUploads", false) => Some(Permission::Read),
        ("s3:PutObject" | "s3:DeleteObject", false) => Some(Permission::Write),
        ("s3:GetBucketAcl", false) => Some(Permission::ReadAcp),
        ("s3:PutBucketAcl", false) => Some(Permission::WriteAcp),
        ("s3:GetObject" | "s3:GetObjectVersion", true) => Some(Permission::Read),
        ("s3:GetObjectAcl" | "s3:GetObjectVersionAcl", true) => Some(Permission::ReadAcp),
        ("s3:PutObjectAcl" | "s3:PutObjectVersionAcl", true) => Some(Permission::WriteAcp),
        _ => None,
    }
}

/// Whether `grant` is for `caller` (whose canonical user id is `caller_id`): by id, or through
/// one of the groups it belongs to (`AllUsers` for anyone, `AuthenticatedUsers` for any signed
/// caller; the public groups only if `ignore_public` is off).
fn grant_applies(grant: &Grant, caller: &Caller, caller_id: &str, ignore_public: bool) -> bool {
    match &grant.grantee {
        Grantee::CanonicalUser(id) => id == caller_id,
        Grantee::Group(group) if group.is_public() && ignore_public => false,
        Grantee::Group(Group::AllUsers) => true,
        Grantee::Group(Group::AuthenticatedUsers) => !is_anonymous(caller),
        Grantee::Group(Group::LogDelivery) => false,
    }
}

/// May the request's caller do `action` on `resource`? `Ok`, or `AccessDenied`. See the module
/// documentation for what decides.
pub fn authorize(
    identities: &dyn Identities,
    request: &RequestContext,
    action: &str,
    resource: &Resource<'_>,
) -> Result<()> {
    let caller = &request.caller;
    let bucket = resource.bucket();
    let anonymous = is_anonymous(caller);
    // 1. Policies: the caller's identity policies and the bucket policy.
    let owner = match resource {
        Resource::Bucket(bucket) | Resource::Key { bucket, .. } => bucket.account.clone(),
        Resource::Object { bucket, object } => object.owner_account(bucket).to_owned(),
        Resource::Upload { bucket, upload } if caller.account_id == upload.initiator_account(&bucket.account) => {
            caller.account_id.clone()
        }
        Resource::Upload { bucket, .. } => bucket.account.clone(),
    };
    let same_account = !anonymous && caller.account_id == owner;
    // RestrictPublicBuckets: a public bucket policy lets in only the bucket owner's account.
    let restricted = bucket.public_access_block.is_some_and(|b| b.restrict_public_buckets)
        && bucket.bucket_policy().is_some_and(|p| p.is_public())
        && (anonymous || caller.account_id != bucket.account);
    let bucket_policy = bucket.bucket_policy().filter(|_| !restricted).map(|p| p.as_ref());
    let authority = (!anonymous).then(|| identities.authority(caller));
    let anonymous_principal;
    let (principal, identity, session) = match &authority {
        Some(authority) => (
            authority.principal.as_ref(),
            authority.identity.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
            authority.session.as_ref().map(|s| s.iter().map(|p| p.as_ref()).collect::<Vec<_>>()),
        ),
        None => {
            anonymous_principal = Principal::anonymous();
            (&anonymous_principal, Vec::new(), None)
        }
    };
    let policies = Policies { identity: &identity, resource: bucket_policy, session: session.as_deref() };
    let arn = resource.arn();
    // The condition keys are computed only when some policy reads any.
    let reads_keys = identity
        .iter()
        .chain(session.iter().flatten())
        .chain(bucket_policy.iter())
        .any(|p| !p.referenced_keys().is_empty());
    let mut conditions = if reads_keys { condition_keys(request) } else { policy::Context::new() };
    if reads_keys && let Resource::Object { object, .. } = resource {
        for tag in object.tags.iter() {
            conditions.insert(&format!("s3:ExistingObjectTag/{}", tag.key), tag.value.as_str());
        }
    }
    let policy_request = Request { principal, action, resource: &arn, context: &conditions };
    let rule = if same_account || anonymous { Rule::SameAccount } else { Rule::CrossAccount };
    let decision = policy::decide(&policies, &policy_request, rule);
    if decision.allowed {
        return Ok(());
    }
    let denied = || -> Error {
        match decision.reason.phrase(action) {
            Some(why) if !anonymous => Error::PolicyDenied(format!(
                "User: {} is not authorized to perform: {action} on resource: \"{arn}\" {why}",
                caller.principal_arn
            )),
            _ => Error::AccessDenied,
        }
    };
    if matches!(decision.reason, Reason::ExplicitDeny { .. }) {
        return Err(denied());
    }
    // 2. The resource's ACL, while ACLs count: it lets in other accounts and anonymous callers.
    let grants = match resource {
        Resource::Bucket(bucket) | Resource::Key { bucket, .. } => {
            acl_permission(action, false).map(|needed| (needed, bucket.effective_grants()))
        }
        Resource::Object { bucket, object } => {
            acl_permission(action, true).map(|needed| (needed, object.effective_grants(bucket)))
        }
        Resource::Upload { .. } => None,
    };
    if !same_account && let Some((needed, grants)) = grants.filter(|_| bucket.acls_enabled()) {
        let caller_id = canonical_user_id(&caller.account_id);
        let ignore_public = bucket.ignores_public_acls();
        if grants.iter().any(|g| g.permission.covers(needed) && grant_applies(g, caller, &caller_id, ignore_public)) {
            return Ok(());
        }
    }
    // 3. Anything else is denied.
    Err(if same_account || bucket_policy.is_some() { denied() } else { Error::AccessDenied })
}

/// May the request's (signed) caller do `action`, which no bucket policy decides (ListBuckets, CreateBucket),
/// on `resource`? Its identity policies must allow it; `Ok`, or `AccessDenied` with AWS's message.
pub fn authorize_account(
    identities: &dyn Identities,
    request: &RequestContext,
    action: &str,
    resource: &str,
) -> Result<()> {
    let caller = &request.caller;
    let authority = identities.authority(caller);
    let identity: Vec<&policy::Policy> = authority.identity.iter().map(|p| p.as_ref()).collect();
    let session: Option<Vec<&policy::Policy>> =
        authority.session.as_ref().map(|s| s.iter().map(|p| p.as_ref()).collect());
    let policies = Policies { identity: &identity, resource: None, session: session.as_deref() };
    let conditions = condition_keys(request);
    let policy_request = Request { principal: &authority.principal, action, resource, context: &conditions };
    let decision = policy::decide(&policies, &policy_request, Rule::SameAccount);
    if decision.allowed {
        return Ok(());
    }
    Err(Error::PolicyDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: \"{resource}\" {}",
        caller.principal_arn,
        decision.reason.phrase(action).unwrap_or_default()
    )))
}

/// The request's condition keys for a policy: the global keys of its caller and connection (`aws:SourceIp`,
/// `aws:SecureTransport`, `aws:RequestedRegion`; the principal's own come from the principal) and the keys its
/// front end read from the request (`s3:x-amz-server-side-encryption`, `s3:prefix`, ...).
fn condition_keys(request: &RequestContext) -> policy::Context {
    let mut conditions = policy::Context::new();
    if let Some(peer) = request.peer {
        conditions.insert("aws:SourceIp", peer.addr.ip().to_string());
        conditions.insert("aws:SecureTransport", if peer.secure { "true" } else { "false" });
    }
    conditions.insert("aws:RequestedRegion", request.caller.region.as_str());
    for (name, value) in &request.conditions {
        conditions.insert(name, value.as_str());
    }
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{AclRequest, CannedAcl, ObjectOwnership, PublicAccessBlock};
    use crate::model::parse_record;
    use shared::Api;

    const OWNER: &str = "111111111111";
    const OTHER: &str = "222222222222";

    fn bucket(ownership: ObjectOwnership, canned: CannedAcl) -> BucketRecord {
        let mut record = parse_record::<BucketRecord>(
            format!(
                r#"{{"format":2,"name":"b","account":"{OWNER}","region":"r","created_millis":0,"encryption":null}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        record.ownership = Some(ownership);
        record.acl = Some(AclRequest::Canned(canned).bucket_grants(&canonical_user_id(OWNER)));
        record
    }

    fn object(owner: &str, canned: CannedAcl) -> ObjectRecord {
        ObjectRecord {
            owner: (owner != OWNER).then(|| owner.into()),
            acl: Some(
                AclRequest::Canned(canned)
                    .object_grants(&canonical_user_id(owner), &canonical_user_id(OWNER))
                    .into_boxed_slice(),
            ),
            delete_marker: false,
            ..ObjectRecord::new_delete_marker("k", 0)
        }
    }

    fn signed(account: &str) -> Caller {
        Caller {
            account_id: account.into(),
            region: "r".into(),
            access_key_id: format!("AK{account}"),
            principal_arn: shared::caller::root_principal(account),
            via_service: None,
            peer: None,
            decisions: Default::default(),
        }
    }

    fn allowed(caller: &Caller, action: &'static str, resource: &Resource<'_>) -> bool {
        let request = RequestContext::new(caller.clone(), None, Api::S3, "Test", action);
        authorize(&shared::identity::AccountWide::default(), &request, action, resource).is_ok()
    }

    /// Who reads and writes what, by the ownership setting, the ACLs and Block Public Access.
    #[test]
    fn owners_and_acls_decide() {
        let (owner, other, anonymous) = (signed(OWNER), signed(OTHER), anonymous_caller("r"));
        let writer = bucket(ObjectOwnership::ObjectWriter, CannedAcl::Private);
        let public_object = object(OWNER, CannedAcl::PublicRead);
        let private_object = object(OWNER, CannedAcl::Private);
        let read = |caller: &Caller, object: &ObjectRecord, bucket: &BucketRecord| {
            allowed(caller, "s3:GetObject", &Resource::Object { bucket, object })
        };
        // (caller, object, readable) in an ObjectWriter bucket.
        for (caller, object, readable) in [
            (&owner, &private_object, true),
            (&other, &private_object, false),
            (&anonymous, &private_object, false),
            (&other, &public_object, true),
            (&anonymous, &public_object, true),
        ] {
            assert_eq!(read(caller, object, &writer), readable, "{} {:?}", caller.account_id, object.acl);
        }
        // AuthenticatedUsers: any signed caller, never the anonymous one.
        let authenticated = object(OWNER, CannedAcl::AuthenticatedRead);
        assert!(read(&other, &authenticated, &writer) && !read(&anonymous, &authenticated, &writer));
        // A grant of READ does not give READ_ACP; FULL_CONTROL gives everything.
        assert!(!allowed(&other, "s3:GetObjectAcl", &Resource::Object { bucket: &writer, object: &public_object }));
        let mut shared = object(OWNER, CannedAcl::Private);
        shared.acl = Some(vec![Grant::user(canonical_user_id(OTHER), Permission::FullControl)].into_boxed_slice());
        for action in ["s3:GetObject", "s3:GetObjectAcl", "s3:PutObjectAcl"] {
            assert!(allowed(&other, action, &Resource::Object { bucket: &writer, object: &shared }), "{action}");
        }
        // No ACL grants an object's tags: its owner's only.
        assert!(!allowed(&other, "s3:GetObjectTagging", &Resource::Object { bucket: &writer, object: &shared }));
        // Another account's object is not the bucket owner's to read, unless its ACL says so.
        let theirs = object(OTHER, CannedAcl::Private);
        assert!(!read(&owner, &theirs, &writer) && read(&other, &theirs, &writer));
        assert!(read(&owner, &object(OTHER, CannedAcl::BucketOwnerRead), &writer));
        // ... but the bucket owner may delete it: a delete is the bucket's.
        assert!(allowed(&owner, "s3:DeleteObject", &Resource::Key { bucket: &writer, key: "k" }));
        // IgnorePublicAcls drops the public grants, and only them.
        let mut ignoring = writer.clone();
        ignoring.public_access_block = Some(PublicAccessBlock { ignore_public_acls: true, ..Default::default() });
        assert!(!read(&anonymous, &public_object, &ignoring) && !read(&other, &authenticated, &ignoring));
        assert!(read(&other, &shared, &ignoring));
        // BucketOwnerEnforced: ACLs count for nothing, the bucket owner owns every object.
        let enforced = bucket(ObjectOwnership::BucketOwnerEnforced, CannedAcl::PublicReadWrite);
        assert!(!read(&anonymous, &public_object, &enforced) && !read(&other, &shared, &enforced));
        assert!(read(&owner, &theirs, &enforced));
        assert!(!allowed(&anonymous, "s3:ListBucket", &Resource::Bucket(&enforced)));
    }

    /// A bucket's ACL grants listing (READ), writing and deleting keys (WRITE) and its ACL (_ACP).
    #[test]
    fn bucket_acls_grant_listing_and_writing() {
        let (other, anonymous) = (signed(OTHER), anonymous_caller("r"));
        let public = bucket(ObjectOwnership::ObjectWriter, CannedAcl::PublicReadWrite);
        let key = Resource::Key { bucket: &public, key: "k" };
        for caller in [&other, &anonymous] {
            assert!(allowed(caller, "s3:ListBucket", &Resource::Bucket(&public)));
            assert!(allowed(caller, "s3:PutObject", &key) && allowed(caller, "s3:DeleteObject", &key));
            // Deleting a version for good, the bucket's configuration and ACL: not granted.
            assert!(!allowed(caller, "s3:DeleteObjectVersion", &key));
            assert!(!allowed(caller, "s3:PutBucketCORS", &Resource::Bucket(&public)));
            assert!(!allowed(caller, "s3:GetBucketAcl", &Resource::Bucket(&public)));
        }
        let readable = bucket(ObjectOwnership::ObjectWriter, CannedAcl::PublicRead);
        assert!(allowed(&anonymous, "s3:ListBucket", &Resource::Bucket(&readable)));
        assert!(!allowed(&anonymous, "s3:PutObject", &Resource::Key { bucket: &readable, key: "k" }));
        let private = bucket(ObjectOwnership::ObjectWriter, CannedAcl::Private);
        assert!(!allowed(&other, "s3:ListBucket", &Resource::Bucket(&private)));
    }

    #[test]
    fn uploads_belong_to_the_bucket_owner_and_the_initiator() {
        let private = bucket(ObjectOwnership::ObjectWriter, CannedAcl::Private);
        let upload = parse_record::<UploadRecord>(
            format!(r#"{{"format":2,"upload_id":"u","bucket":"b","key":"k","initiated_millis":0,"content_type":null,"sse":{{"mode":"None"}},"data_key_blob":null,"initiator":"{OTHER}"}}"#)
                .as_bytes(),
        )
        .unwrap();
        let resource = Resource::Upload { bucket: &private, upload: &upload };
        assert!(allowed(&signed(OWNER), "s3:AbortMultipartUpload", &resource));
        assert!(allowed(&signed(OTHER), "s3:ListMultipartUploadParts", &resource));
        assert!(!allowed(&signed("333333333333"), "s3:AbortMultipartUpload", &resource));
        assert_eq!(resource.arn(), "arn:aws:s3:::b/k");
    }

    #[test]
    fn the_anonymous_caller_is_recognised() {
        assert!(is_anonymous(&anonymous_caller("eu-west-1")));
        assert!(!is_anonymous(&signed(OWNER)));
        assert_eq!(acl_permission("s3:GetObject", false), None);
        assert_eq!(acl_permission("s3:PutObject", false), Some(Permission::Write));
    }
}
