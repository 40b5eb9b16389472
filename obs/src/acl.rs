//! Access control lists, S3 Object Ownership and Block Public Access as S3 keeps them: who owns a
//! bucket or an object ([`canonical_user_id`]), the grants an ACL is made of ([`Grant`]: a
//! [`Grantee`] and a [`Permission`]), the canned ACLs and what they grant ([`CannedAcl`]), the ACL
//! a request asks for ([`AclRequest`]), a bucket's [`ObjectOwnership`] and its
//! [`PublicAccessBlock`], and the tests S3 makes of an ACL before it takes it ([`is_public`],
//! [`gives_bucket_owner_full_control`]).
//!
//! No HTTP here: the front end reads `x-amz-acl`, `x-amz-grant-*` and `<AccessControlPolicy>`
//! into these types (`http/acl.rs`), and [`crate::access`] evaluates them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The group of everyone, signed or not (`AllUsers`).
pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The group of every signed request of any account (`AuthenticatedUsers`).
pub const AUTHENTICATED_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
/// The group of S3's log delivery (`LogDelivery`).
pub const LOG_DELIVERY_URI: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";
/// S3's canonical user id of the anonymous requester (the owner of what an unsigned request writes).
pub const ANONYMOUS_CANONICAL_ID: &str = "65a011a29cdf8ec533ec3d1ccaae921c";
/// The canonical user of Amazon EC2, which `aws-exec-read` grants READ (S3 names it `za-team`).
pub const EC2_CANONICAL_ID: &str = "6aa5a366c34c1cbe25dc49211496e913e0351eb0e8c37aa3477e40942ec6b97c";
/// The display name S3 gives [`EC2_CANONICAL_ID`].
pub const EC2_DISPLAY_NAME: &str = "za-team";
/// Grants an ACL may hold (S3's limit).
pub const MAX_GRANTS: usize = 100;
/// The account id kmsim records as the owner of what an unsigned request writes.
pub const ANONYMOUS_OWNER: &str = "";

/// The canonical user id of an account: 64 hex digits, stable across runs (the SHA-256 of the account
/// id under a fixed label), as S3 gives every account one; [`ANONYMOUS_CANONICAL_ID`] for the
/// anonymous requester ([`ANONYMOUS_OWNER`]).
pub fn canonical_user_id(account_id: &str) -> String {
    if account_id == ANONYMOUS_OWNER {
        return ANONYMOUS_CANONICAL_ID.to_owned();
    }
    hex::encode(Sha256::digest(format!("kmsim canonical user of account {account_id}")))
}

/// S3 Object Ownership: who owns the objects written to a bucket, and whether ACLs count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled: the bucket owner owns every object; only a bucket-owner-full-control ACL
    /// (or none) may come with a write. S3's default for new buckets since April 2023.
    BucketOwnerEnforced,
    /// The bucket owner owns an object written with the `bucket-owner-full-control` canned ACL; the
    /// writer owns any other.
    BucketOwnerPreferred,
    /// The writer owns what it writes (also how a bucket without ownership controls behaves).
    ObjectWriter,
}

impl ObjectOwnership {
    /// The setting as `<ObjectOwnership>` and `x-amz-object-ownership` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOwnership::BucketOwnerEnforced => "BucketOwnerEnforced",
            ObjectOwnership::BucketOwnerPreferred => "BucketOwnerPreferred",
            ObjectOwnership::ObjectWriter => "ObjectWriter",
        }
    }

    /// The setting a name names.
    pub fn parse(text: &str) -> Option<Self> {
        [ObjectOwnership::BucketOwnerEnforced, ObjectOwnership::BucketOwnerPreferred, ObjectOwnership::ObjectWriter]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// List a bucket; read an object and its metadata.
    #[serde(rename = "READ")]
    Read,
    /// Create, overwrite and delete objects of a bucket.
    #[serde(rename = "WRITE")]
    Write,
    /// Read the ACL.
    #[serde(rename = "READ_ACP")]
    ReadAcp,
    /// Write the ACL.
    #[serde(rename = "WRITE_ACP")]
    WriteAcp,
    /// All of the above.
    #[serde(rename = "FULL_CONTROL")]
    FullControl,
}

impl Permission {
    /// The permission as `<Permission>` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    /// The permission a name names.
    pub fn parse(text: &str) -> Option<Self> {
        [Permission::Read, Permission::Write, Permission::ReadAcp, Permission::WriteAcp, Permission::FullControl]
            .into_iter()
            .find(|p| p.as_str() == text)
    }

    /// Whether holding this permission allows what `needed` allows.
    pub fn covers(self, needed: Permission) -> bool {
        self == Permission::FullControl || self == needed
    }
}

/// The predefined groups of S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Group {
    /// Everyone, signed or not.
    AllUsers,
    /// Every signed request, of any account.
    AuthenticatedUsers,
    /// S3's server access log delivery (no request of kmsim is ever it).
    LogDelivery,
}

impl Group {
    /// The group's URI.
    pub fn uri(self) -> &'static str {
        match self {
            Group::AllUsers => ALL_USERS_URI,
            Group::AuthenticatedUsers => AUTHENTICATED_USERS_URI,
            Group::LogDelivery => LOG_DELIVERY_URI,
        }
    }

    /// The group a URI names.
    pub fn from_uri(uri: &str) -> Option<Self> {
        [Group::AllUsers, Group::AuthenticatedUsers, Group::LogDelivery].into_iter().find(|g| g.uri() == uri)
    }

    /// Whether a grant to the group makes a bucket or object public (S3's "meaning of public").
    pub fn is_public(self) -> bool {
        matches!(self, Group::AllUsers | Group::AuthenticatedUsers)
    }
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Grantee {
    /// An account (or EC2, or the anonymous user), by canonical user id.
    #[serde(rename = "id")]
    CanonicalUser(String),
    /// A predefined group.
    #[serde(rename = "group")]
    Group(Group),
}

/// One grant of an ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// Who.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

impl Grant {
    /// A grant to a canonical user.
    pub fn user(id: impl Into<String>, permission: Permission) -> Self {
        Grant { grantee: Grantee::CanonicalUser(id.into()), permission }
    }

    /// A grant to a group.
    pub fn group(group: Group, permission: Permission) -> Self {
        Grant { grantee: Grantee::Group(group), permission }
    }
}

/// The canned ACLs of S3 (`x-amz-acl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CannedAcl {
    /// The owner gets FULL_CONTROL; nobody else anything.
    #[serde(rename = "private")]
    Private,
    /// And AllUsers READ.
    #[serde(rename = "public-read")]
    PublicRead,
    /// And AllUsers READ and WRITE.
    #[serde(rename = "public-read-write")]
    PublicReadWrite,
    /// And AuthenticatedUsers READ.
    #[serde(rename = "authenticated-read")]
    AuthenticatedRead,
    /// And Amazon EC2 READ (to fetch an AMI bundle).
    #[serde(rename = "aws-exec-read")]
    AwsExecRead,
    /// Objects: and the bucket owner READ. Ignored on buckets.
    #[serde(rename = "bucket-owner-read")]
    BucketOwnerRead,
    /// Objects: and the bucket owner FULL_CONTROL. Ignored on buckets.
    #[serde(rename = "bucket-owner-full-control")]
    BucketOwnerFullControl,
    /// And LogDelivery WRITE and READ_ACP.
    #[serde(rename = "log-delivery-write")]
    LogDeliveryWrite,
}

impl CannedAcl {
    /// Every canned ACL.
    pub const ALL: [CannedAcl; 8] = [
        CannedAcl::Private,
        CannedAcl::PublicRead,
        CannedAcl::PublicReadWrite,
        CannedAcl::AuthenticatedRead,
        CannedAcl::AwsExecRead,
        CannedAcl::BucketOwnerRead,
        CannedAcl::BucketOwnerFullControl,
        CannedAcl::LogDeliveryWrite,
    ];

    /// The name `x-amz-acl` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            CannedAcl::Private => "private",
            CannedAcl::PublicRead => "public-read",
            CannedAcl::PublicReadWrite => "public-read-write",
            CannedAcl::AuthenticatedRead => "authenticated-read",
            CannedAcl::AwsExecRead => "aws-exec-read",
            CannedAcl::BucketOwnerRead => "bucket-owner-read",
            CannedAcl::BucketOwnerFullControl => "bucket-owner-full-control",
            CannedAcl::LogDeliveryWrite => "log-delivery-write",
        }
    }

    /// The canned ACL a name names.
    pub fn parse(text: &str) -> Option<Self> {
        CannedAcl::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The grants it gives a resource owned by `owner_id` in a bucket owned by `bucket_owner_id`
    /// (both canonical ids); `bucket` for a bucket's own ACL, where S3 ignores the bucket-owner ones.
    fn grants(self, owner_id: &str, bucket_owner_id: &str, bucket: bool) -> Vec<Grant> {
        let mut grants = vec![Grant::user(owner_id, Permission::FullControl)];
        let mut to_bucket_owner = |permission| {
            if !bucket && bucket_owner_id != owner_id {
                grants.push(Grant::user(bucket_owner_id, permission));
            }
        };
        match self {
            CannedAcl::Private => {}
            CannedAcl::BucketOwnerRead => to_bucket_owner(Permission::Read),
            CannedAcl::BucketOwnerFullControl => to_bucket_owner(Permission::FullControl),
            CannedAcl::PublicRead => grants.push(Grant::group(Group::AllUsers, Permission::Read)),
            CannedAcl::PublicReadWrite => grants.extend([
                Grant::group(Group::AllUsers, Permission::Read),
                Grant::group(Group::AllUsers, Permission::Write),
            ]),
            CannedAcl::AuthenticatedRead => grants.push(Grant::group(Group::AuthenticatedUsers, Permission::Read)),
            CannedAcl::AwsExecRead => grants.push(Grant::user(EC2_CANONICAL_ID, Permission::Read)),
            CannedAcl::LogDeliveryWrite => grants.extend([
                Grant::group(Group::LogDelivery, Permission::Write),
                Grant::group(Group::LogDelivery, Permission::ReadAcp),
            ]),
        }
        grants
    }
}

/// The ACL a request asks for: a canned ACL (`x-amz-acl`) or explicit grants (`x-amz-grant-*`, or
/// an `<AccessControlPolicy>`). A request that asks for none gets the private default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclRequest {
    /// A canned ACL.
    #[serde(rename = "canned")]
    Canned(CannedAcl),
    /// Exactly these grants.
    #[serde(rename = "grants")]
    Grants(Vec<Grant>),
}

impl AclRequest {
    /// The grants of an object owned by `owner_id` in a bucket owned by `bucket_owner_id`
    /// (canonical ids).
    pub fn object_grants(&self, owner_id: &str, bucket_owner_id: &str) -> Vec<Grant> {
        match self {
            AclRequest::Canned(canned) => canned.grants(owner_id, bucket_owner_id, false),
            AclRequest::Grants(grants) => grants.clone(),
        }
    }

    /// The grants of a bucket owned by `owner_id`.
    pub fn bucket_grants(&self, owner_id: &str) -> Vec<Grant> {
        match self {
            AclRequest::Canned(canned) => canned.grants(owner_id, owner_id, true),
            AclRequest::Grants(grants) => grants.clone(),
        }
    }

    /// Whether it is the `bucket-owner-full-control` canned ACL (which hands an object to the bucket
    /// owner under [`ObjectOwnership::BucketOwnerPreferred`]).
    pub fn is_bucket_owner_full_control(&self) -> bool {
        *self == AclRequest::Canned(CannedAcl::BucketOwnerFullControl)
    }
}

/// Whether `grants` make their bucket or object public: a grant of anything to AllUsers or
/// AuthenticatedUsers (what Block Public Access blocks and ignores).
pub fn is_public(grants: &[Grant]) -> bool {
    grants.iter().any(|g| matches!(g.grantee, Grantee::Group(group) if group.is_public()))
}

/// Whether the ACL of an object written by `writer_id` is one a bucket with ACLs disabled
/// ([`ObjectOwnership::BucketOwnerEnforced`]) accepts: it gives the bucket owner FULL_CONTROL and
/// nobody but the bucket owner and the writer anything (`bucket-owner-full-control`, or `private`
/// when the writer is the bucket owner, or grants to that effect).
pub fn gives_bucket_owner_full_control(grants: &[Grant], bucket_owner_id: &str, writer_id: &str) -> bool {
    let to = |id: &str, g: &Grant| g.grantee == Grantee::CanonicalUser(id.to_owned());
    grants.iter().any(|g| to(bucket_owner_id, g) && g.permission == Permission::FullControl)
        && grants.iter().all(|g| to(bucket_owner_id, g) || to(writer_id, g))
}

/// Block Public Access of a bucket (`PUT /?publicAccessBlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse ACLs that make the bucket or its objects public (PutBucketAcl, PutObjectAcl, and
    /// writes that carry one): 403 AccessDenied.
    pub block_public_acls: bool,
    /// Ignore the public grants of the bucket's ACL and its objects' ACLs.
    pub ignore_public_acls: bool,
    /// Refuse public bucket policies (stored; bucket policies are not served yet).
    pub block_public_policy: bool,
    /// Restrict a bucket with a public policy to its own account (stored; bucket policies are not
    /// served yet).
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// All four settings on: what S3 gives a new bucket since April 2023.
    pub const ALL: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "owner-id";
    const BUCKET_OWNER: &str = "bucket-owner-id";

    fn full(id: &str) -> Grant {
        Grant::user(id, Permission::FullControl)
    }

    /// Each canned ACL grants what S3's table says, on objects and on buckets.
    #[test]
    fn canned_acls_grant_what_s3_says() {
        let all_read = Grant::group(Group::AllUsers, Permission::Read);
        // (canned ACL, object grants, bucket grants)
        let cases: Vec<(CannedAcl, Vec<Grant>, Vec<Grant>)> = vec![
            (CannedAcl::Private, vec![full(OWNER)], vec![full(OWNER)]),
            (CannedAcl::PublicRead, vec![full(OWNER), all_read.clone()], vec![full(OWNER), all_read.clone()]),
            (
                CannedAcl::PublicReadWrite,
                vec![full(OWNER), all_read.clone(), Grant::group(Group::AllUsers, Permission::Write)],
                vec![full(OWNER), all_read.clone(), Grant::group(Group::AllUsers, Permission::Write)],
            ),
            (
                CannedAcl::AuthenticatedRead,
                vec![full(OWNER), Grant::group(Group::AuthenticatedUsers, Permission::Read)],
                vec![full(OWNER), Grant::group(Group::AuthenticatedUsers, Permission::Read)],
            ),
            (
                CannedAcl::AwsExecRead,
                vec![full(OWNER), Grant::user(EC2_CANONICAL_ID, Permission::Read)],
                vec![full(OWNER), Grant::user(EC2_CANONICAL_ID, Permission::Read)],
            ),
            (
                CannedAcl::BucketOwnerRead,
                vec![full(OWNER), Grant::user(BUCKET_OWNER, Permission::Read)],
                vec![full(OWNER)],
            ),
            (CannedAcl::BucketOwnerFullControl, vec![full(OWNER), full(BUCKET_OWNER)], vec![full(OWNER)]),
            (
                CannedAcl::LogDeliveryWrite,
                vec![
                    full(OWNER),
                    Grant::group(Group::LogDelivery, Permission::Write),
                    Grant::group(Group::LogDelivery, Permission::ReadAcp),
                ],
                vec![
                    full(OWNER),
                    Grant::group(Group::LogDelivery, Permission::Write),
                    Grant::group(Group::LogDelivery, Permission::ReadAcp),
                ],
            ),
        ];
        assert_eq!(cases.len(), CannedAcl::ALL.len());
        for (canned, object, bucket) in cases {
            assert_eq!(CannedAcl::parse(canned.as_str()), Some(canned));
            let request = AclRequest::Canned(canned);
            assert_eq!(request.object_grants(OWNER, BUCKET_OWNER), object, "{}", canned.as_str());
            // With the bucket OWNER's for BUCKET_OWNER's: a bucket's ACL is its owner's.
            let bucket_owner_grants: Vec<Grant> = bucket
                .iter()
                .map(|g| match &g.grantee {
                    Grantee::CanonicalUser(id) if id == OWNER => full(BUCKET_OWNER),
                    _ => g.clone(),
                })
                .collect();
            assert_eq!(request.bucket_grants(BUCKET_OWNER), bucket_owner_grants, "{}", canned.as_str());
        }
        // The object owner who owns the bucket too gets one grant, not two.
        assert_eq!(AclRequest::Canned(CannedAcl::BucketOwnerFullControl).object_grants(OWNER, OWNER), [full(OWNER)]);
        for bad in ["", "Private", "public", "public-read ", "authenticated_read"] {
            assert_eq!(CannedAcl::parse(bad), None, "{bad:?}");
        }
    }

    /// Which ACLs count as public, and which a bucket with ACLs disabled accepts with a write.
    #[test]
    fn public_and_owner_full_control_acls() {
        let public = |g: Group| vec![full(OWNER), Grant::group(g, Permission::Read)];
        assert!(is_public(&public(Group::AllUsers)));
        assert!(is_public(&public(Group::AuthenticatedUsers)));
        assert!(!is_public(&public(Group::LogDelivery)));
        assert!(!is_public(&[full(OWNER), Grant::user(EC2_CANONICAL_ID, Permission::Read)]));
        // (grants, writer, accepted under BucketOwnerEnforced)
        let cases: Vec<(Vec<Grant>, &str, bool)> = vec![
            // Same account: private and bucket-owner-full-control are the bucket owner's full control.
            (AclRequest::Canned(CannedAcl::Private).object_grants(BUCKET_OWNER, BUCKET_OWNER), BUCKET_OWNER, true),
            (
                AclRequest::Canned(CannedAcl::BucketOwnerFullControl).object_grants(BUCKET_OWNER, BUCKET_OWNER),
                BUCKET_OWNER,
                true,
            ),
            // Another account: only bucket-owner-full-control gives the bucket owner its control.
            (AclRequest::Canned(CannedAcl::Private).object_grants(OWNER, BUCKET_OWNER), OWNER, false),
            (AclRequest::Canned(CannedAcl::BucketOwnerFullControl).object_grants(OWNER, BUCKET_OWNER), OWNER, true),
            (AclRequest::Canned(CannedAcl::BucketOwnerRead).object_grants(OWNER, BUCKET_OWNER), OWNER, false),
            // Anything public, or for a third party, is refused.
            (AclRequest::Canned(CannedAcl::PublicRead).object_grants(BUCKET_OWNER, BUCKET_OWNER), BUCKET_OWNER, false),
            (vec![full(BUCKET_OWNER), Grant::user("third", Permission::Read)], BUCKET_OWNER, false),
            // An explicit grant of full control to the bucket owner is the same thing.
            (vec![full(BUCKET_OWNER)], OWNER, true),
            (vec![Grant::user(BUCKET_OWNER, Permission::Read)], BUCKET_OWNER, false),
            (vec![], BUCKET_OWNER, false),
        ];
        for (grants, writer, accepted) in cases {
            assert_eq!(gives_bucket_owner_full_control(&grants, BUCKET_OWNER, writer), accepted, "{grants:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for ownership in ["BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter"] {
            assert_eq!(ObjectOwnership::parse(ownership).map(ObjectOwnership::as_str), Some(ownership));
        }
        assert_eq!(ObjectOwnership::parse("bucketownerenforced"), None);
        for permission in ["READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"] {
            assert_eq!(Permission::parse(permission).map(Permission::as_str), Some(permission));
        }
        assert_eq!(Permission::parse("read"), None);
        assert!(Permission::FullControl.covers(Permission::WriteAcp) && !Permission::Read.covers(Permission::Write));
        for group in [Group::AllUsers, Group::AuthenticatedUsers, Group::LogDelivery] {
            assert_eq!(Group::from_uri(group.uri()), Some(group));
        }
        assert_eq!(Group::from_uri("http://acs.amazonaws.com/groups/global/Nobody"), None);
    }

    #[test]
    fn canonical_ids_are_stable_hex_per_account() {
        let id = canonical_user_id("000000000000");
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(id, canonical_user_id("000000000000"));
        assert_ne!(id, canonical_user_id("111122223333"));
        assert_eq!(canonical_user_id(ANONYMOUS_OWNER), ANONYMOUS_CANONICAL_ID);
    }

    /// Records keep ACLs in a compact, versioned JSON shape; changing it breaks stored data.
    #[test]
    fn grants_persist_as_before() {
        let grants = vec![full("abc"), Grant::group(Group::AllUsers, Permission::Read)];
        let json = serde_json::to_string(&grants).unwrap();
        assert_eq!(
            json,
            r#"[{"grantee":{"id":"abc"},"permission":"FULL_CONTROL"},{"grantee":{"group":"AllUsers"},"permission":"READ"}]"#
        );
        assert_eq!(serde_json::from_str::<Vec<Grant>>(&json).unwrap(), grants);
        let canned = serde_json::to_string(&AclRequest::Canned(CannedAcl::PublicRead)).unwrap();
        assert_eq!(canned, r#"{"canned":"public-read"}"#);
        let pab = serde_json::to_string(&PublicAccessBlock::ALL).unwrap();
        assert_eq!(
            pab,
            r#"{"block_public_acls":true,"ignore_public_acls":true,"block_public_policy":true,"restrict_public_buckets":true}"#
        );
    }
}
