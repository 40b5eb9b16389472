//! ACLs, ownership controls and Block Public Access on the wire: the canned ACL and grant headers
//! of writes, new buckets and ACL changes ([`request_acl`]), the `<AccessControlPolicy>` document
//! in both directions ([`parse_access_control_policy`], [`acl_document`]), the canonical users
//! kmsim knows ([`KnownUsers`]), and the handlers of GetBucketAcl, PutBucketAcl, GetObjectAcl,
//! PutObjectAcl, the three OwnershipControls operations and the three PublicAccessBlock ones.

use std::collections::HashMap;

use quick_xml::events::Event;
use serde::Deserialize;

use super::*;
use crate::acl::{
    AclRequest, CannedAcl, EC2_CANONICAL_ID, EC2_DISPLAY_NAME, Grant, Grantee, Group, MAX_GRANTS, ObjectOwnership,
    Permission, PublicAccessBlock, canonical_user_id,
};

/// The grant headers, and the permission each grants, in the order their grants are listed.
const GRANT_HEADERS: [(&str, Permission); 5] = [
    ("x-amz-grant-read", Permission::Read),
    ("x-amz-grant-write", Permission::Write),
    ("x-amz-grant-read-acp", Permission::ReadAcp),
    ("x-amz-grant-write-acp", Permission::WriteAcp),
    ("x-amz-grant-full-control", Permission::FullControl),
];
/// The namespace of `xsi:type`.
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The canonical users a grant may name: every account kmsim has access keys for (shown by its account
/// id, as S3 shows a display name), and Amazon EC2 (`aws-exec-read`'s grantee).
#[derive(Debug, Default)]
pub struct KnownUsers {
    /// Display name by canonical user id.
    names: HashMap<String, String>,
}

impl KnownUsers {
    /// The canonical users of the accounts of `accounts`, and EC2's.
    pub fn of(accounts: &auth::Accounts) -> Self {
        let mut names: HashMap<String, String> =
            accounts.iter().map(|key| (canonical_user_id(&key.account_id), key.account_id.clone())).collect();
        names.insert(EC2_CANONICAL_ID.to_owned(), EC2_DISPLAY_NAME.to_owned());
        KnownUsers { names }
    }

    /// Whether a grant may name `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.names.contains_key(id)
    }

    /// The display name of `id`, if kmsim knows it.
    pub fn display_name(&self, id: &str) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }
}

/// An ACL request refused as S3 refuses it: `InvalidArgument` with the argument named.
fn invalid(message: &str, name: &str, value: &str) -> S3Error {
    S3Error::invalid_argument(message).with("ArgumentName", name.to_owned()).with("ArgumentValue", value.to_owned())
}

/// S3 no longer takes grants to e-mail addresses (since October 2025): 405.
fn email_grantee() -> S3Error {
    S3Error::new(S3ErrorCode::MethodNotAllowed, "The specified method is not allowed against this resource.")
        .with("ResourceType", "AmazonCustomerByEmail")
}

/// The document S3 refuses an ACL body with that is not an `<AccessControlPolicy>` it accepts.
fn malformed_acl() -> S3Error {
    S3Error::new(
        S3ErrorCode::MalformedACLError,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// The grants of one grant header: comma-separated `id="..."`, `uri="..."` or `emailAddress="..."`
/// (quotes optional), each with `permission`.
pub fn parse_grant_header(name: &str, value: &str, permission: Permission, known: &KnownUsers) -> Result<Vec<Grant>> {
    let mut grants = Vec::new();
    for part in value.split(',') {
        let part = part.trim();
        let Some((kind, grantee)) = part.split_once('=') else {
            return Err(invalid("Argument format not recognized", name, part));
        };
        let grantee = grantee.trim();
        let grantee = grantee.strip_prefix('"').and_then(|g| g.strip_suffix('"')).unwrap_or(grantee);
        let grantee = match kind.trim() {
            kind if kind.eq_ignore_ascii_case("id") => {
                if !known.contains(grantee) {
                    return Err(invalid("Invalid id", "id", grantee));
                }
                Grantee::CanonicalUser(grantee.to_owned())
            }
            kind if kind.eq_ignore_ascii_case("uri") => {
                Grantee::Group(Group::from_uri(grantee).ok_or_else(|| invalid("Invalid group uri", "uri", grantee))?)
            }
            kind if kind.eq_ignore_ascii_case("emailAddress") => return Err(email_grantee()),
            _ => return Err(invalid("Argument format not recognized", name, part)),
        };
        grants.push(Grant { grantee, permission });
    }
    Ok(grants)
}

/// The ACL a request's headers ask for: `x-amz-acl` (a canned ACL) or the `x-amz-grant-*` headers
/// (exactly their grants), not both (InvalidRequest); `None` when it names none.
pub fn request_acl(headers: &HeaderMap, known: &KnownUsers) -> Result<Option<AclRequest>> {
    let text = |name: &str| -> Result<Option<&str>> {
        headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| S3Error::invalid_argument(format!("{name} is not valid text"))))
            .transpose()
    };
    let mut grants = Vec::new();
    let mut granted = false;
    for (name, permission) in GRANT_HEADERS {
        if let Some(value) = text(name)? {
            granted = true;
            grants.extend(parse_grant_header(name, value, permission, known)?);
        }
    }
    match (text("x-amz-acl")?, granted) {
        (Some(_), true) => Err(S3Error::new(
            S3ErrorCode::InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed",
        )),
        // S3 names the argument and leaves the message empty.
        (Some(canned), false) => CannedAcl::parse(canned.trim())
            .map(|c| Some(AclRequest::Canned(c)))
            .ok_or_else(|| invalid("", "x-amz-acl", canned)),
        (None, true) if grants.len() > MAX_GRANTS => Err(malformed_acl()),
        (None, true) => Ok(Some(AclRequest::Grants(grants))),
        (None, false) => Ok(None),
    }
}

/// What an `<AccessControlPolicy>` says: its owner's canonical id and its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControlPolicy {
    /// `<Owner><ID>`.
    pub owner: String,
    /// The grants, in order.
    pub grants: Vec<Grant>,
}

/// One `<Grant>` as read, before it is checked.
#[derive(Debug, Default)]
struct RawGrant {
    kind: Option<String>,
    id: Option<String>,
    uri: Option<String>,
    email: bool,
    permission: Option<String>,
}

/// Reads an `<AccessControlPolicy>` (PutBucketAcl, PutObjectAcl): an `<Owner>` with an `<ID>` and an
/// `<AccessControlList>` of at most [`MAX_GRANTS`] `<Grant>`s, each a `<Grantee>` of `xsi:type`
/// `CanonicalUser` (`<ID>`), `Group` (`<URI>`) or `AmazonCustomerByEmail`, and a `<Permission>`.
/// Anything else is MalformedACLError; an id kmsim does not know or a group S3 has not is
/// InvalidArgument, naming it.
pub fn parse_access_control_policy(text: &str, known: &KnownUsers) -> Result<AccessControlPolicy> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let (mut owner, mut list_seen) = (None::<String>, false);
    let mut grants: Vec<RawGrant> = Vec::new();
    loop {
        let event = reader.read_event().map_err(|_| malformed_acl())?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) => {
                let name = String::from_utf8(start.local_name().as_ref().to_vec()).map_err(|_| malformed_acl())?;
                let parent = path.last().map(String::as_str);
                let allowed = matches!(
                    (parent, name.as_str()),
                    (None, "AccessControlPolicy")
                        | (Some("AccessControlPolicy"), "Owner" | "AccessControlList")
                        | (Some("Owner"), "ID" | "DisplayName")
                        | (Some("AccessControlList"), "Grant")
                        | (Some("Grant"), "Grantee" | "Permission")
                        | (Some("Grantee"), "ID" | "DisplayName" | "URI" | "EmailAddress")
                );
                if !allowed {
                    return Err(malformed_acl());
                }
                match name.as_str() {
                    "AccessControlList" => list_seen = true,
                    "Grant" => grants.push(RawGrant::default()),
                    "Grantee" => {
                        let grant = grants.last_mut().ok_or_else(malformed_acl)?;
                        for attribute in start.attributes() {
                            let attribute = attribute.map_err(|_| malformed_acl())?;
                            if attribute.key.local_name().as_ref() == b"type" {
                                let value = attribute.unescape_value().map_err(|_| malformed_acl())?;
                                grant.kind = Some(value.into_owned());
                            }
                        }
                    }
                    "EmailAddress" => grants.last_mut().ok_or_else(malformed_acl)?.email = true,
                    _ => {}
                }
                if !empty {
                    path.push(name);
                }
            }
            Event::Text(content) => {
                let value = content.unescape().map_err(|_| malformed_acl())?.trim().to_owned();
                let parents: Vec<&str> = path.iter().rev().take(2).map(String::as_str).collect();
                match parents.as_slice() {
                    ["ID", "Owner"] => owner = Some(value),
                    ["ID", "Grantee"] => grants.last_mut().ok_or_else(malformed_acl)?.id = Some(value),
                    ["URI", "Grantee"] => grants.last_mut().ok_or_else(malformed_acl)?.uri = Some(value),
                    ["Permission", "Grant"] => grants.last_mut().ok_or_else(malformed_acl)?.permission = Some(value),
                    _ if value.is_empty() => {}
                    ["DisplayName", _] | ["EmailAddress", _] => {}
                    _ => return Err(malformed_acl()),
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => break,
            Event::CData(_) | Event::DocType(_) | Event::PI(_) => return Err(malformed_acl()),
            Event::Decl(_) | Event::Comment(_) => {}
        }
    }
    let Some(owner) = owner.filter(|_| list_seen) else { return Err(malformed_acl()) };
    if !path.is_empty() || grants.len() > MAX_GRANTS {
        return Err(malformed_acl());
    }
    if !known.contains(&owner) {
        return Err(invalid("Invalid id", "CanonicalUser/ID", &owner));
    }
    let mut checked = Vec::with_capacity(grants.len());
    for grant in grants {
        let permission = grant.permission.as_deref().and_then(Permission::parse).ok_or_else(malformed_acl)?;
        let grantee = match grant.kind.as_deref() {
            Some("CanonicalUser") => {
                let id = grant.id.unwrap_or_default();
                if !known.contains(&id) {
                    return Err(invalid("Invalid id", "CanonicalUser/ID", &id));
                }
                Grantee::CanonicalUser(id)
            }
            Some("Group") => {
                let uri = grant.uri.unwrap_or_default();
                Grantee::Group(Group::from_uri(&uri).ok_or_else(|| invalid("Invalid group uri", "Group/URI", &uri))?)
            }
            Some("AmazonCustomerByEmail") if grant.email => return Err(email_grantee()),
            _ => return Err(malformed_acl()),
        };
        checked.push(Grant { grantee, permission });
    }
    Ok(AccessControlPolicy { owner, grants: checked })
}

/// Writes `<name><ID>..</ID><DisplayName>..</DisplayName></name>` for an owner account (no display
/// name for the anonymous owner).
pub fn owner_element(w: &mut Writer, name: &str, account: &str) {
    w.open(name).element("ID", &canonical_user_id(account));
    if account != crate::acl::ANONYMOUS_OWNER {
        w.element("DisplayName", account);
    }
    w.close(name);
}

/// The `<AccessControlPolicy>` GetBucketAcl and GetObjectAcl answer: the owner and each grant, with
/// its grantee's `xsi:type` as S3 writes it.
pub fn acl_document(owner: &str, grants: &[Grant], known: &KnownUsers) -> String {
    let mut w = Writer::document("AccessControlPolicy");
    owner_element(&mut w, "Owner", owner);
    w.open("AccessControlList");
    for grant in grants {
        w.open("Grant");
        match &grant.grantee {
            Grantee::CanonicalUser(id) => {
                w.open_with("Grantee", &[("xmlns:xsi", XSI_NS), ("xsi:type", "CanonicalUser")]).element("ID", id);
                if let Some(name) = known.display_name(id) {
                    w.element("DisplayName", name);
                }
            }
            Grantee::Group(group) => {
                w.open_with("Grantee", &[("xmlns:xsi", XSI_NS), ("xsi:type", "Group")]).element("URI", group.uri());
            }
        }
        w.close("Grantee").element("Permission", grant.permission.as_str()).close("Grant");
    }
    w.close("AccessControlList");
    w.finish("AccessControlPolicy")
}

/// `<OwnershipControls>` of PutBucketOwnershipControls.
#[derive(Debug, Deserialize)]
struct OwnershipControls {
    /// Exactly one rule.
    #[serde(rename = "Rule", default)]
    rules: Vec<OwnershipControlsRule>,
}

/// One `<Rule>`.
#[derive(Debug, Deserialize)]
struct OwnershipControlsRule {
    /// `BucketOwnerEnforced`, `BucketOwnerPreferred` or `ObjectWriter`.
    #[serde(rename = "ObjectOwnership")]
    object_ownership: String,
}

/// `<PublicAccessBlockConfiguration>` of PutPublicAccessBlock: an absent setting is off.
#[derive(Debug, Deserialize)]
struct PublicAccessBlockConfiguration {
    #[serde(rename = "BlockPublicAcls", default)]
    block_public_acls: bool,
    #[serde(rename = "IgnorePublicAcls", default)]
    ignore_public_acls: bool,
    #[serde(rename = "BlockPublicPolicy", default)]
    block_public_policy: bool,
    #[serde(rename = "RestrictPublicBuckets", default)]
    restrict_public_buckets: bool,
}

/// The ownership setting of an `<OwnershipControls>` document: one rule naming one of the three.
pub fn parse_ownership_controls(text: &str) -> Result<ObjectOwnership> {
    let controls: OwnershipControls = xml::parse(text)?;
    let [rule] = <[OwnershipControlsRule; 1]>::try_from(controls.rules).map_err(|_| S3Error::malformed_xml())?;
    ObjectOwnership::parse(rule.object_ownership.trim()).ok_or_else(S3Error::malformed_xml)
}

/// The settings of a `<PublicAccessBlockConfiguration>` document.
pub fn parse_public_access_block(text: &str) -> Result<PublicAccessBlock> {
    let c: PublicAccessBlockConfiguration = xml::parse(text)?;
    Ok(PublicAccessBlock {
        block_public_acls: c.block_public_acls,
        ignore_public_acls: c.ignore_public_acls,
        block_public_policy: c.block_public_policy,
        restrict_public_buckets: c.restrict_public_buckets,
    })
}

impl S3Api {
    /// The ACL a PutBucketAcl or PutObjectAcl asks for: in its headers or in its body, not both
    /// (UnexpectedContent), nor neither (MissingSecurityHeader).
    async fn acl_of_request(&self, call: &Call<'_>, body: Body) -> Result<AclRequest> {
        let from_headers = request_acl(call.headers, &self.known_users)?;
        let text = read_xml(body).await?;
        match (from_headers, text.trim().is_empty()) {
            (Some(acl), true) => Ok(acl),
            (Some(_), false) => {
                Err(S3Error::new(S3ErrorCode::UnexpectedContent, "This request does not support content"))
            }
            (None, false) => Ok(AclRequest::Grants(parse_access_control_policy(&text, &self.known_users)?.grants)),
            (None, true) => {
                Err(S3Error::new(S3ErrorCode::MissingSecurityHeader, "Your request was missing a required header")
                    .with("MissingHeaderName", "x-amz-acl"))
            }
        }
    }

    /// GetBucketAcl: the bucket's ACL in force.
    pub(super) fn get_bucket_acl(&self, call: &Call<'_>, bucket: &str) -> Result<Response> {
        let record = self.obs.bucket_for(call.context, bucket, call.context.action)?;
        Ok(xml_response(acl_document(&record.account, &record.effective_grants(), &self.known_users)))
    }

    /// PutBucketAcl.
    pub(super) async fn put_bucket_acl(&self, call: &Call<'_>, bucket: &str, body: Body) -> Result<Response> {
        let acl = self.acl_of_request(call, body).await?;
        self.obs.set_bucket_acl(call.context, bucket, acl).await?;
        Ok(empty(StatusCode::OK))
    }

    /// GetObjectAcl: the ACL in force of the object (or of one version).
    pub(super) fn get_object_acl(
        &self,
        call: &Call<'_>,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
    ) -> Result<Response> {
        let (bucket_record, record) = self.obs.object_for(call.context, bucket, key, version, call.context.action)?;
        let document = acl_document(
            record.owner_account(&bucket_record),
            &record.effective_grants(&bucket_record),
            &self.known_users,
        );
        Ok(xml_response(document))
    }

    /// PutObjectAcl.
    pub(super) async fn put_object_acl(
        &self,
        call: &Call<'_>,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
        body: Body,
    ) -> Result<Response> {
        let acl = self.acl_of_request(call, body).await?;
        self.obs.set_object_acl(call.context, bucket, key, version, acl).await?;
        Ok(empty(StatusCode::OK))
    }

    /// GetBucketOwnershipControls: OwnershipControlsNotFoundError for a bucket without any.
    pub(super) fn get_bucket_ownership_controls(&self, call: &Call<'_>, bucket: &str) -> Result<Response> {
        let record = self.obs.bucket_for(call.context, bucket, call.context.action)?;
        let Some(ownership) = record.ownership else {
            return Err(crate::error::Error::OwnershipControlsNotFound { bucket: bucket.to_owned() }.into());
        };
        let mut w = Writer::document("OwnershipControls");
        w.open("Rule").element("ObjectOwnership", ownership.as_str()).close("Rule");
        Ok(xml_response(w.finish("OwnershipControls")))
    }

    /// PutBucketOwnershipControls.
    pub(super) async fn put_bucket_ownership_controls(
        &self,
        call: &Call<'_>,
        bucket: &str,
        body: Body,
    ) -> Result<Response> {
        let ownership = parse_ownership_controls(&read_xml(body).await?)?;
        self.obs.set_bucket_ownership(call.context, bucket, Some(ownership)).await?;
        Ok(empty(StatusCode::OK))
    }

    /// GetPublicAccessBlock: NoSuchPublicAccessBlockConfiguration for a bucket without one.
    pub(super) fn get_public_access_block(&self, call: &Call<'_>, bucket: &str) -> Result<Response> {
        let record = self.obs.bucket_for(call.context, bucket, call.context.action)?;
        let Some(block) = record.public_access_block else {
            return Err(crate::error::Error::NoSuchPublicAccessBlockConfiguration { bucket: bucket.to_owned() }.into());
        };
        let flag = |on: bool| if on { "true" } else { "false" };
        let mut w = Writer::document("PublicAccessBlockConfiguration");
        w.element("BlockPublicAcls", flag(block.block_public_acls))
            .element("IgnorePublicAcls", flag(block.ignore_public_acls))
            .element("BlockPublicPolicy", flag(block.block_public_policy))
            .element("RestrictPublicBuckets", flag(block.restrict_public_buckets));
        Ok(xml_response(w.finish("PublicAccessBlockConfiguration")))
    }

    /// PutPublicAccessBlock.
    pub(super) async fn put_public_access_block(&self, call: &Call<'_>, bucket: &str, body: Body) -> Result<Response> {
        let block = parse_public_access_block(&read_xml(body).await?)?;
        self.obs.set_public_access_block(call.context, bucket, Some(block)).await?;
        Ok(empty(StatusCode::OK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "000000000000";

    fn known() -> KnownUsers {
        KnownUsers::of(&auth::Accounts::with_defaults())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    /// What grant headers and `x-amz-acl` ask for, and how S3 refuses them.
    #[test]
    fn request_acls_from_headers() {
        let id = canonical_user_id(ACCOUNT);
        let known = known();
        let all = Group::AllUsers.uri();
        let ok = |pairs: &[(&'static str, &str)]| request_acl(&headers(pairs), &known).unwrap();
        assert_eq!(ok(&[]), None);
        assert_eq!(ok(&[("x-amz-acl", "public-read")]), Some(AclRequest::Canned(CannedAcl::PublicRead)));
        let full = format!("id=\"{id}\"");
        let read = format!("uri=\"{all}\", id={id}");
        assert_eq!(
            ok(&[("x-amz-grant-full-control", &full), ("x-amz-grant-read", &read), ("x-amz-grant-write-acp", &full)]),
            Some(AclRequest::Grants(vec![
                Grant::group(Group::AllUsers, Permission::Read),
                Grant::user(&id, Permission::Read),
                Grant::user(&id, Permission::WriteAcp),
                Grant::user(&id, Permission::FullControl),
            ]))
        );
        assert_eq!(
            ok(&[("x-amz-grant-read", &format!("ID=\"{EC2_CANONICAL_ID}\""))]),
            Some(AclRequest::Grants(vec![Grant::user(EC2_CANONICAL_ID, Permission::Read)]))
        );
        // (headers, code, message, ArgumentName)
        let unknown_id = "id=\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"";
        // (headers, code, message, ArgumentName)
        type Case<'a> = (&'a [(&'static str, &'a str)], &'a str, &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            (
                &[("x-amz-acl", "private"), ("x-amz-grant-read", &full)],
                "InvalidRequest",
                "Specifying both Canned ACLs and Header Grants is not allowed",
                None,
            ),
            (&[("x-amz-acl", "public")], "InvalidArgument", "", Some("x-amz-acl")),
            (
                &[("x-amz-grant-read", "everyone")],
                "InvalidArgument",
                "Argument format not recognized",
                Some("x-amz-grant-read"),
            ),
            (
                &[("x-amz-grant-write", "user=\"x\"")],
                "InvalidArgument",
                "Argument format not recognized",
                Some("x-amz-grant-write"),
            ),
            (&[("x-amz-grant-read", unknown_id)], "InvalidArgument", "Invalid id", Some("id")),
            (
                &[("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/Nobody\"")],
                "InvalidArgument",
                "Invalid group uri",
                Some("uri"),
            ),
            (
                &[("x-amz-grant-read", "emailAddress=\"a@example.com\"")],
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                None,
            ),
        ];
        for (pairs, code, message, argument) in cases {
            let error = request_acl(&headers(pairs), &known).unwrap_err();
            assert_eq!((error.code.as_str(), error.message.as_str()), (*code, *message), "{pairs:?}");
            let name = error.extra.iter().find(|(n, _)| *n == "ArgumentName").map(|(_, v)| v.as_str());
            assert_eq!(name, *argument, "{pairs:?}");
        }
        let many = vec![full.as_str(); MAX_GRANTS + 1].join(",");
        assert_eq!(
            request_acl(&headers(&[("x-amz-grant-read", &many)]), &known).unwrap_err().code,
            S3ErrorCode::MalformedACLError
        );
    }

    /// `<AccessControlPolicy>` documents as boto3 and the aws CLI send them, and S3's refusals.
    #[test]
    fn access_control_policies() {
        let id = canonical_user_id(ACCOUNT);
        let known = known();
        let policy = |grants: &str| {
            format!(
                r#"<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><AccessControlList>{grants}</AccessControlList><Owner><DisplayName>x</DisplayName><ID>{id}</ID></Owner></AccessControlPolicy>"#
            )
        };
        let user = |permission: &str| {
            format!(
                r#"<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><DisplayName>me</DisplayName><ID>{id}</ID></Grantee><Permission>{permission}</Permission></Grant>"#
            )
        };
        let group = |uri: &str| {
            format!(
                r#"<Grant><Grantee xmlns:x="http://www.w3.org/2001/XMLSchema-instance" x:type="Group"><URI>{uri}</URI></Grantee><Permission>READ</Permission></Grant>"#
            )
        };
        let parsed = parse_access_control_policy(
            &policy(&format!("{}{}", user("FULL_CONTROL"), group(Group::AuthenticatedUsers.uri()))),
            &known,
        )
        .unwrap();
        assert_eq!(parsed.owner, id);
        assert_eq!(
            parsed.grants,
            [Grant::user(&id, Permission::FullControl), Grant::group(Group::AuthenticatedUsers, Permission::Read)]
        );
        // No grants at all is an ACL too.
        assert_eq!(parse_access_control_policy(&policy(""), &known).unwrap().grants, []);
        // (document, code, ArgumentName)
        let cases: Vec<(String, &str, Option<&str>)> = vec![
            ("<AccessControlPolicy>".to_owned(), "MalformedACLError", None),
            ("not xml at all".to_owned(), "MalformedACLError", None),
            (
                policy(&user("READ")).replace("<Owner>", "<Owners>").replace("</Owner>", "</Owners>"),
                "MalformedACLError",
                None,
            ),
            (
                policy(&user("READ")).replace("<AccessControlList>", "").replace("</AccessControlList>", ""),
                "MalformedACLError",
                None,
            ),
            (policy(&user("EVERYTHING")), "MalformedACLError", None),
            (policy(&user("READ").replace("CanonicalUser", "Robot")), "MalformedACLError", None),
            (policy(&format!("{}<Extra/>", user("READ"))), "MalformedACLError", None),
            (policy(&user("READ").replace(&id, &"f".repeat(64))), "InvalidArgument", Some("CanonicalUser/ID")),
            (policy(&group("http://acs.amazonaws.com/groups/global/Nobody")), "InvalidArgument", Some("Group/URI")),
            (policy("").replacen(&id, "not-an-id", 1), "InvalidArgument", Some("CanonicalUser/ID")),
            (
                policy(
                    r#"<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="AmazonCustomerByEmail"><EmailAddress>a@example.com</EmailAddress></Grantee><Permission>READ</Permission></Grant>"#,
                ),
                "MethodNotAllowed",
                None,
            ),
            (policy(&user("READ").repeat(MAX_GRANTS + 1)), "MalformedACLError", None),
        ];
        for (document, code, argument) in cases {
            let error = parse_access_control_policy(&document, &known).unwrap_err();
            assert_eq!(error.code.as_str(), code, "{document}");
            let name = error.extra.iter().find(|(n, _)| *n == "ArgumentName").map(|(_, v)| v.as_str());
            assert_eq!(name, argument, "{document}");
        }
    }

    /// The document S3 answers, which boto3 parses (and kmsim reads back).
    #[test]
    fn acl_documents_round_trip() {
        let known = known();
        let id = canonical_user_id(ACCOUNT);
        let grants = vec![
            Grant::user(&id, Permission::FullControl),
            Grant::group(Group::AllUsers, Permission::Read),
            Grant::user(EC2_CANONICAL_ID, Permission::Read),
        ];
        let document = acl_document(ACCOUNT, &grants, &known);
        assert_eq!(
            document,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AccessControlPolicy xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>{id}</ID><DisplayName>{ACCOUNT}</DisplayName></Owner><AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{id}</ID><DisplayName>{ACCOUNT}</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{EC2_CANONICAL_ID}</ID><DisplayName>za-team</DisplayName></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>"
            )
        );
        let parsed = parse_access_control_policy(&document, &known).unwrap();
        assert_eq!((parsed.owner, parsed.grants), (id, grants));
    }

    #[test]
    fn ownership_and_public_access_block_documents() {
        let controls = |value: &str| {
            format!(
                r#"<OwnershipControls xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ObjectOwnership>{value}</ObjectOwnership></Rule></OwnershipControls>"#
            )
        };
        assert_eq!(parse_ownership_controls(&controls("ObjectWriter")).unwrap(), ObjectOwnership::ObjectWriter);
        for bad in [
            controls("Nobody"),
            "<OwnershipControls/>".to_owned(),
            controls("ObjectWriter")
                .replace("</Rule>", "</Rule><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule>"),
        ] {
            assert_eq!(parse_ownership_controls(&bad).unwrap_err().code, S3ErrorCode::MalformedXML, "{bad}");
        }
        let block = parse_public_access_block(
            r#"<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><BlockPublicAcls>true</BlockPublicAcls><RestrictPublicBuckets>false</RestrictPublicBuckets></PublicAccessBlockConfiguration>"#,
        )
        .unwrap();
        assert_eq!(block, PublicAccessBlock { block_public_acls: true, ..Default::default() });
        let bad = parse_public_access_block(
            "<PublicAccessBlockConfiguration><BlockPublicAcls>maybe</BlockPublicAcls></PublicAccessBlockConfiguration>",
        );
        assert_eq!(bad.unwrap_err().code, S3ErrorCode::MalformedXML);
    }
}
