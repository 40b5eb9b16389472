//! The combined decision ("Policy evaluation logic"): same account, cross account, KMS key policy
//! with and without the root delegation, session policies, and AWS's denial phrases.

use policy::{Decision, Policies, Policy, PolicyKind, Principal, Reason, Request, Rule, Source, decide};

use crate::{ACCOUNT, alice, carol_other, context, session};

fn identity(document: &str) -> Policy {
    Policy::parse(document, PolicyKind::Identity).expect("a valid identity policy")
}

fn resource(document: &str) -> Policy {
    Policy::parse(document, PolicyKind::Resource).expect("a valid resource policy")
}

const ALLOW_S3: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Sid":"S3","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
const ALLOW_GET: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Sid":"Get","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const DENY_DELETE: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoDelete","Effect":"Deny","Action":"s3:Delete*","Resource":"*"}]}"#;
const ALLOW_KMS: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Sid":"Kms","Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
const BUCKET_TLS_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RestrictToTLSRequestsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
const BUCKET_FOR_ALICE: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Alice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/Alice"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
const BUCKET_FOR_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Account","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
const BUCKET_FOR_OTHER_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"CrossAccount","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
const BUCKET_PUBLIC: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
const BUCKET_FOR_ROLE_AND_SESSION: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Sid":"Role","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/Dev"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"},
    {"Sid":"Session","Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/Dev/ci"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"}]}"#;
const KEY_DEFAULT: &str = r#"{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
const KEY_WITHOUT_ROOT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyBob","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/Bob"},"Action":"kms:*","Resource":"*"}]}"#;
const KEY_FOR_ALICE: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Allow use of the key","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/Alice"},"Action":["kms:Decrypt","kms:Encrypt"],"Resource":"*"}]}"#;

const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

struct Call<'a> {
    principal: Principal,
    action: &'a str,
    resource: &'a str,
    secure: bool,
}

fn call(principal: Principal, action: &'static str, resource: &'static str) -> Call<'static> {
    Call { principal, action, resource, secure: true }
}

fn run(
    call: &Call<'_>,
    identity: &[&Policy],
    resource: Option<&Policy>,
    session: Option<&[&Policy]>,
    rule: Rule,
) -> Decision {
    let context = context(&[("aws:SecureTransport", if call.secure { "true" } else { "false" })]);
    let request =
        Request { principal: &call.principal, action: call.action, resource: call.resource, context: &context };
    decide(&Policies { identity, resource, session }, &request, rule)
}

fn allowed(by: Source, sid: &str) -> (bool, Reason, Option<&str>) {
    (true, Reason::Allowed { by }, Some(sid))
}

fn denied(reason: Reason, sid: Option<&str>) -> (bool, Reason, Option<&str>) {
    (false, reason, sid)
}

fn summary(decision: &Decision) -> (bool, Reason, Option<&str>) {
    (decision.allowed, decision.reason, decision.sid.as_deref())
}

#[test]
fn same_account() {
    let allow_s3 = identity(ALLOW_S3);
    let deny_delete = identity(DENY_DELETE);
    let tls_only = resource(BUCKET_TLS_ONLY);
    let for_alice = resource(BUCKET_FOR_ALICE);
    let for_account = resource(BUCKET_FOR_ACCOUNT);
    let public = resource(BUCKET_PUBLIC);
    let get = call(alice(), "s3:GetObject", "arn:aws:s3:::b/k");
    let rule = Rule::SameAccount;

    // Identity-based policy alone.
    assert_eq!(summary(&run(&get, &[&allow_s3], None, None, rule)), allowed(Source::Identity, "S3"));
    let nothing = run(&get, &[], None, None, rule);
    assert_eq!(summary(&nothing), denied(Reason::NoIdentityPolicyAllows, None));
    assert_eq!(
        nothing.reason.phrase("s3:GetObject").as_deref(),
        Some("because no identity-based policy allows the s3:GetObject action")
    );
    // A bucket policy naming the user allows without an identity-based policy.
    assert_eq!(summary(&run(&get, &[], Some(&for_alice), None, rule)), allowed(Source::Resource, "Alice"));
    // Naming only the account is a delegation: the identity-based policies decide.
    assert_eq!(summary(&run(&get, &[], Some(&for_account), None, rule)), denied(Reason::NoPolicyAllows, None));
    assert_eq!(summary(&run(&get, &[&allow_s3], Some(&for_account), None, rule)), allowed(Source::Identity, "S3"));
    // An explicit deny in the bucket policy wins over the identity-based allow.
    let insecure = Call { secure: false, ..call(alice(), "s3:GetObject", "arn:aws:s3:::b/k") };
    let decision = run(&insecure, &[&allow_s3], Some(&tls_only), None, rule);
    assert_eq!(
        summary(&decision),
        denied(Reason::ExplicitDeny { in_: Source::Resource }, Some("RestrictToTLSRequestsOnly"))
    );
    assert_eq!(
        decision.reason.phrase("s3:GetObject").as_deref(),
        Some("with an explicit deny in a resource-based policy")
    );
    // An explicit deny in an identity-based policy wins over the bucket's allow.
    let delete = call(alice(), "s3:DeleteObject", "arn:aws:s3:::b/k");
    let decision = run(&delete, &[&allow_s3, &deny_delete], Some(&public), None, rule);
    assert_eq!(summary(&decision), denied(Reason::ExplicitDeny { in_: Source::Identity }, Some("NoDelete")));
    assert_eq!(
        decision.reason.phrase("s3:DeleteObject").as_deref(),
        Some("with an explicit deny in an identity-based policy")
    );
    // The anonymous caller has no identity-based policies.
    let anonymous = call(Principal::anonymous(), "s3:GetObject", "arn:aws:s3:::b/k");
    assert_eq!(summary(&run(&anonymous, &[], Some(&public), None, rule)), allowed(Source::Resource, "PublicRead"));
    assert_eq!(summary(&run(&anonymous, &[], Some(&for_account), None, rule)), denied(Reason::NoPolicyAllows, None));
    assert_eq!(Reason::Allowed { by: Source::Identity }.phrase("s3:GetObject"), None);
}

#[test]
fn cross_account() {
    let allow_s3 = identity(ALLOW_S3);
    let for_other = resource(BUCKET_FOR_OTHER_ACCOUNT);
    let for_alice = resource(BUCKET_FOR_ALICE);
    let get = call(carol_other(), "s3:GetObject", "arn:aws:s3:::b/k");
    let rule = Rule::CrossAccount;

    // Both the bucket policy (naming the account) and an identity-based policy allow.
    assert_eq!(
        summary(&run(&get, &[&allow_s3], Some(&for_other), None, rule)),
        allowed(Source::Resource, "CrossAccount")
    );
    // The bucket policy alone is not enough.
    assert_eq!(summary(&run(&get, &[], Some(&for_other), None, rule)), denied(Reason::NoIdentityPolicyAllows, None));
    // Nor is the identity-based policy alone.
    let decision = run(&get, &[&allow_s3], Some(&for_alice), None, rule);
    assert_eq!(summary(&decision), denied(Reason::NoResourcePolicyAllows, None));
    assert_eq!(
        decision.reason.phrase("s3:GetObject").as_deref(),
        Some("because no resource-based policy allows the s3:GetObject action")
    );
    assert_eq!(summary(&run(&get, &[&allow_s3], None, None, rule)), denied(Reason::NoResourcePolicyAllows, None));
    // A cross-account key: the key policy must name the caller's account or the caller.
    let key_for_other = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"External","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    let allow_kms = identity(ALLOW_KMS);
    let decrypt = call(carol_other(), "kms:Decrypt", KEY);
    assert_eq!(
        summary(&run(&decrypt, &[&allow_kms], Some(&key_for_other), None, rule)),
        allowed(Source::Resource, "External")
    );
    assert_eq!(
        summary(&run(&decrypt, &[], Some(&key_for_other), None, rule)),
        denied(Reason::NoIdentityPolicyAllows, None)
    );
}

#[test]
fn key_policy() {
    let allow_kms = identity(ALLOW_KMS);
    let default = resource(KEY_DEFAULT);
    let without_root = resource(KEY_WITHOUT_ROOT);
    let for_alice = resource(KEY_FOR_ALICE);
    let deny_kms = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoDecrypt","Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    let decrypt = call(alice(), "kms:Decrypt", KEY);
    let rule = Rule::KeyPolicy;

    // The default key policy delegates to IAM: an identity-based policy must allow.
    assert_eq!(summary(&run(&decrypt, &[&allow_kms], Some(&default), None, rule)), allowed(Source::Identity, "Kms"));
    let decision = run(&decrypt, &[], Some(&default), None, rule);
    assert_eq!(summary(&decision), denied(Reason::NoIdentityPolicyAllows, None));
    assert_eq!(
        decision.reason.phrase("kms:Decrypt").as_deref(),
        Some("because no identity-based policy allows the kms:Decrypt action")
    );
    // The root is named directly by the default key policy.
    let root = call(Principal::root(ACCOUNT), "kms:Decrypt", KEY);
    assert_eq!(
        summary(&run(&root, &[], Some(&default), None, rule)),
        allowed(Source::Resource, "Enable IAM User Permissions")
    );
    // Without the root delegation IAM policies cannot grant anything.
    let decision = run(&decrypt, &[&allow_kms], Some(&without_root), None, rule);
    assert_eq!(summary(&decision), denied(Reason::NoResourcePolicyAllows, None));
    assert_eq!(
        decision.reason.phrase("kms:Decrypt").as_deref(),
        Some("because no resource-based policy allows the kms:Decrypt action")
    );
    assert_eq!(summary(&run(&decrypt, &[&allow_kms], None, None, rule)), denied(Reason::NoResourcePolicyAllows, None));
    // A key policy naming the user allows without an identity-based policy ...
    assert_eq!(
        summary(&run(&decrypt, &[], Some(&for_alice), None, rule)),
        allowed(Source::Resource, "Allow use of the key")
    );
    // ... unless an identity-based policy denies.
    assert_eq!(
        summary(&run(&decrypt, &[&deny_kms], Some(&for_alice), None, rule)),
        denied(Reason::ExplicitDeny { in_: Source::Identity }, Some("NoDecrypt"))
    );
}

#[test]
fn session_policies() {
    let allow_s3 = identity(ALLOW_S3);
    let session_get = identity(ALLOW_GET);
    let session_deny = identity(DENY_DELETE);
    let bucket = resource(BUCKET_FOR_ROLE_AND_SESSION);
    let rule = Rule::SameAccount;
    let get = call(session("Dev", "ci"), "s3:GetObject", "arn:aws:s3:::b/k");
    let put = call(session("Dev", "ci"), "s3:PutObject", "arn:aws:s3:::b/k");
    let delete = call(session("Dev", "ci"), "s3:DeleteObject", "arn:aws:s3:::b/k");

    // The session policy intersects with the role's identity-based policy.
    assert_eq!(summary(&run(&get, &[&allow_s3], None, Some(&[&session_get]), rule)), allowed(Source::Identity, "S3"));
    let decision = run(&put, &[&allow_s3], None, Some(&[&session_get]), rule);
    assert_eq!(summary(&decision), denied(Reason::NoSessionPolicyAllows, None));
    assert_eq!(
        decision.reason.phrase("s3:PutObject").as_deref(),
        Some("because no session policy allows the s3:PutObject action")
    );
    // An explicit deny in a session policy.
    let decision = run(&delete, &[&allow_s3], None, Some(&[&session_get, &session_deny]), rule);
    assert_eq!(summary(&decision), denied(Reason::ExplicitDeny { in_: Source::Session }, Some("NoDelete")));
    assert_eq!(decision.reason.phrase("s3:DeleteObject").as_deref(), Some("with an explicit deny in a session policy"));
    // A grant to the role's ARN is limited by the session policy; one to the session's is not.
    assert_eq!(
        summary(&run(&put, &[], Some(&bucket), Some(&[&session_get]), rule)),
        denied(Reason::NoSessionPolicyAllows, None)
    );
    assert_eq!(summary(&run(&put, &[], Some(&bucket), None, rule)), allowed(Source::Resource, "Role"));
    assert_eq!(
        summary(&run(&delete, &[], Some(&bucket), Some(&[&session_get]), rule)),
        allowed(Source::Resource, "Session")
    );
}
