//! Documents the grammar refuses, with the message IAM, KMS and S3 each give.

use policy::{Policy, PolicyKind};

use PolicyKind::{Identity, Resource, Trust};

/// A refused document: its kind, and the IAM, KMS and S3 messages (`None`: not checked).
struct Refused {
    name: &'static str,
    kind: PolicyKind,
    document: &'static str,
    iam: Option<&'static str>,
    kms: Option<&'static str>,
    s3: Option<&'static str>,
}

const fn refused(
    name: &'static str,
    kind: PolicyKind,
    document: &'static str,
    iam: Option<&'static str>,
    kms: Option<&'static str>,
    s3: Option<&'static str>,
) -> Refused {
    Refused { name, kind, document, iam, kms, s3 }
}

const SYNTAX: Option<&str> = Some("Syntax errors in policy.");

const REFUSED: &[Refused] = &[
    refused(
        "not JSON",
        Resource,
        r#"{"Version": "2012-10-17", "Statement": ["#,
        SYNTAX,
        Some(""),
        Some("This policy contains invalid Json"),
    ),
    refused(
        "not an object",
        Resource,
        r#"["Statement"]"#,
        SYNTAX,
        Some(""),
        Some("Policies must be valid JSON and the first byte must be '{'"),
    ),
    refused(
        "a file name instead of a document",
        Resource,
        "policy.json",
        SYNTAX,
        Some(""),
        Some("Policies must be valid JSON and the first byte must be '{'"),
    ),
    refused(
        "unknown top-level field",
        Resource,
        r#"{"Version":"2012-10-17","Statment":[]}"#,
        SYNTAX,
        None,
        Some("Unknown field Statment"),
    ),
    refused(
        "unknown statement field",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Conditions":{}}]}"#,
        SYNTAX,
        None,
        Some("Unknown field Conditions"),
    ),
    refused(
        "invalid version",
        Resource,
        r#"{"Version":"2012-10-18","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
        SYNTAX,
        None,
        Some("The policy must contain a valid version string"),
    ),
    refused(
        "no Statement",
        Resource,
        r#"{"Version":"2012-10-17"}"#,
        SYNTAX,
        None,
        Some("Missing required field Statement"),
    ),
    refused(
        "empty Statement",
        Resource,
        r#"{"Version":"2012-10-17","Statement":[]}"#,
        SYNTAX,
        None,
        Some("Could not parse the policy: Statement is empty!"),
    ),
    refused(
        "no Effect",
        Resource,
        r#"{"Statement":[{"Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
        SYNTAX,
        None,
        Some("Missing required field Effect"),
    ),
    refused(
        "invalid Effect",
        Resource,
        r#"{"Statement":[{"Effect":"hello","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
        SYNTAX,
        None,
        Some("Invalid effect: hello"),
    ),
    refused(
        "Effect is case-sensitive",
        Identity,
        r#"{"Statement":[{"Effect":"allow","Action":"s3:*","Resource":"*"}]}"#,
        SYNTAX,
        None,
        Some("Invalid effect: allow"),
    ),
    refused(
        "no Action",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
        Some("Policy statement must contain actions."),
        None,
        Some("Missing required field Action"),
    ),
    refused(
        "an empty Action list",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
        Some("Policy statement must contain actions."),
        None,
        None,
    ),
    refused(
        "both Action and NotAction",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","NotAction":"iam:*","Resource":"*"}]}"#,
        SYNTAX,
        None,
        None,
    ),
    refused(
        "an action without vendor",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"GetObject","Resource":"*"}]}"#,
        Some("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        None,
        Some("Policy has invalid action"),
    ),
    refused(
        "a vendor with a wildcard",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s*:GetObject","Resource":"*"}]}"#,
        Some("Action vendors must not contain wildcards."),
        None,
        Some("Policy has invalid action"),
    ),
    refused(
        "no Resource in an identity policy",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#,
        Some("Policy statement must contain resources."),
        None,
        Some("Missing required field Resource"),
    ),
    refused(
        "no Resource in a key policy",
        Resource,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*"}]}"#,
        None,
        Some("Policy statement must contain resources."),
        Some("Missing required field Resource"),
    ),
    refused(
        "a bucket name instead of an ARN",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"s3-bucket-ukcloud-replica"}]}"#,
        Some("Resource s3-bucket-ukcloud-replica must be in ARN format or \"*\"."),
        None,
        Some("Policy has invalid resource"),
    ),
    refused(
        "an ARN of too few parts",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:bucket"}]}"#,
        None,
        None,
        Some("Policy has invalid resource"),
    ),
    refused(
        "a principal in an identity policy",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}]}"#,
        Some("Policy document should not specify a principal."),
        None,
        None,
    ),
    refused(
        "a NotPrincipal in an identity policy",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}]}"#,
        Some("Policy document should not specify a principal."),
        None,
        None,
    ),
    refused(
        "no principal in a bucket policy",
        Resource,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
        None,
        Some("Policy contains a statement with one or more invalid principals."),
        Some("Missing required field Principal"),
    ),
    refused(
        "a wildcard inside a principal ARN",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"},"Action":"s3:*","Resource":"*"}]}"#,
        Some("Invalid principal in policy: \"AWS\":\"arn:aws:iam::111122223333:user/*\""),
        Some("Policy contains a statement with one or more invalid principals."),
        Some("Invalid principal in policy"),
    ),
    refused(
        "all sessions of a role",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/R/*"},"Action":"s3:*","Resource":"*"}]}"#,
        None,
        Some("Policy contains a statement with one or more invalid principals."),
        Some("Invalid principal in policy"),
    ),
    refused(
        "a principal that is neither ARN nor account",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"s3:*","Resource":"*"}]}"#,
        None,
        Some("Policy contains a statement with one or more invalid principals."),
        Some("Invalid principal in policy"),
    ),
    refused(
        "a principal string other than *",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":"111122223333","Action":"s3:*","Resource":"*"}]}"#,
        None,
        None,
        Some("Invalid principal in policy"),
    ),
    refused(
        "an unknown principal type",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":{"User":"alice"},"Action":"s3:*","Resource":"*"}]}"#,
        None,
        None,
        Some("Invalid principal in policy"),
    ),
    refused(
        "an account id of eleven digits",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"11112222333"},"Action":"kms:*","Resource":"*"}]}"#,
        None,
        Some("Policy contains a statement with one or more invalid principals."),
        None,
    ),
    refused(
        "both Principal and NotPrincipal",
        Resource,
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}]}"#,
        None,
        None,
        Some("Invalid policy syntax."),
    ),
    refused(
        "a Sid with a hyphen in an IAM policy",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"autogenerated-id","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        Some(
            "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*",
        ),
        None,
        None,
    ),
    refused(
        "duplicate Sids in an IAM policy",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"A1","Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"A1","Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#,
        Some("Statement IDs (SID) in a single policy must be unique."),
        None,
        None,
    ),
    refused(
        "a Resource in a trust policy",
        Trust,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}"#,
        Some("Has prohibited field Resource."),
        None,
        None,
    ),
    refused(
        "a non-STS action in a trust policy",
        Trust,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"s3:GetObject"}]}"#,
        Some("AssumeRole policy may only specify STS AssumeRole actions."),
        None,
        None,
    ),
    refused(
        "no principal in a trust policy",
        Trust,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
        Some(
            "Invalid principal in policy: com.amazon.balsa.error.InvalidPolicyException: The passed in policy has a \
             statement with no principals!",
        ),
        None,
        None,
    ),
    refused(
        "an unknown condition operator",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"aws:username":"a"}}}]}"#,
        Some("Invalid Condition type : StringEqualz."),
        None,
        Some("Invalid Condition type : StringEqualz"),
    ),
    refused(
        "Null with IfExists",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NullIfExists":{"aws:username":"true"}}}]}"#,
        Some("Invalid Condition type : NullIfExists."),
        None,
        None,
    ),
    refused(
        "a condition key without vendor",
        Resource,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"SourceIp":"192.0.2.0/24"}}}]}"#,
        Some("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        None,
        Some("Policy has an invalid condition key"),
    ),
    refused(
        "an unreadable IP address",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1"}}}]}"#,
        SYNTAX,
        None,
        None,
    ),
    refused(
        "an unreadable number",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}]}"#,
        SYNTAX,
        None,
        None,
    ),
    refused(
        "an unreadable date",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}]}"#,
        SYNTAX,
        None,
        None,
    ),
    refused(
        "a Null value other than true or false",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":"maybe"}}}]}"#,
        SYNTAX,
        None,
        None,
    ),
    refused(
        "a condition value that is an object",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":{"a":"b"}}}}]}"#,
        SYNTAX,
        None,
        None,
    ),
    refused(
        "an Action that is a number",
        Identity,
        r#"{"Statement":[{"Effect":"Allow","Action":5,"Resource":"*"}]}"#,
        SYNTAX,
        None,
        Some("Invalid policy syntax."),
    ),
];

#[test]
fn refused_documents_carry_each_services_message() {
    let mut failures = Vec::new();
    for case in REFUSED {
        let error = match Policy::parse(case.document, case.kind) {
            Ok(_) => {
                failures.push(format!("{}: accepted", case.name));
                continue;
            }
            Err(error) => error,
        };
        for (service, expected, found) in [
            ("IAM", case.iam, error.iam_message()),
            ("KMS", case.kms, error.kms_message()),
            ("S3", case.s3, error.s3_message()),
        ] {
            if let Some(expected) = expected
                && expected != found
            {
                failures.push(format!("{} ({service}): expected {expected:?}, found {found:?}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(REFUSED.len() >= 40);
}

#[test]
fn documented_shapes_are_accepted() {
    for (name, kind, document) in [
        (
            "a single statement object",
            Identity,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        ),
        (
            "KMS's default Sid with spaces",
            Resource,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
        ),
        (
            "a bare account id and a canonical user",
            Resource,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:root","999999999999"],"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        ),
        (
            "a CloudFront origin access identity",
            Resource,
            r#"{"Version":"2008-10-17","Id":"PolicyForCloudFrontPrivateContent","Statement":[{"Sid":"1","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E15MNIMTCFKK4C"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        ),
        (
            "a federated principal in a trust policy",
            Trust,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"cognito-identity.amazonaws.com"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#,
        ),
        (
            "a unique principal id",
            Resource,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"AIDAJQABLZS4A3QDU576Q"},"Action":"s3:*","Resource":"*"}]}"#,
        ),
        (
            "set qualifiers with IfExists, lowercase operator",
            Identity,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringLikeIfExists":{"aws:TagKeys":"a*"},"stringequals":{"aws:username":"a"}}}]}"#,
        ),
        (
            "epoch and W3C dates",
            Identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:EpochTime":"1577836800","aws:CurrentTime":["2020-01","2020-01-01T00:00:00.123+01:00"]}}}]}"#,
        ),
    ] {
        let policy = Policy::parse(document, kind).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(policy.document(), document, "{name}: the document is kept as given");
    }
}
