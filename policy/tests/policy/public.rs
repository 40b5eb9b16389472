//! `Policy::is_public` against S3's "The meaning of public" (Blocking public access to your Amazon
//! S3 storage) and the KMS lockout question a service asks of `Policy::statements`.

use policy::{Effect, Policy, PolicyKind};

fn bucket(statement: &str) -> Policy {
    let document = format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#);
    Policy::parse(&document, PolicyKind::Resource).unwrap_or_else(|error| panic!("{document}: {error}"))
}

const PUBLIC: &[(&str, &str)] = &[
    (
        "everyone may read",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
    ),
    (
        "everyone under AWS",
        r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
    ),
    (
        "a wildcard VPC (S3's example)",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringLike":{"aws:SourceVpc":"vpc-*"}}}"#,
    ),
    (
        "a referer is no confinement",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringLike":{"aws:Referer":"http://www.example.com/*"}}}"#,
    ),
    (
        "a negated operator confines nothing",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-1a2b3c4d"}}}"#,
    ),
    (
        "IfExists confines nothing",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEqualsIfExists":{"aws:SourceVpce":"vpce-1a2b3c4d"}}}"#,
    ),
    (
        "ForAllValues confines nothing",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"ForAllValues:StringEquals":{"aws:SourceAccount":"111122223333"}}}"#,
    ),
    (
        "aws:userid of a role's sessions (AROLEID:*)",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringLike":{"aws:userid":"AROAEXAMPLEID:*"}}}"#,
    ),
    (
        "a variable is no fixed value",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:SourceAccount":"${aws:PrincipalAccount}"}}}"#,
    ),
    (
        "an address range of half the internet",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/1"}}}"#,
    ),
    (
        "NotPrincipal with Allow grants everyone else",
        r#"{"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
    ),
];

const NOT_PUBLIC: &[(&str, &str)] = &[
    (
        "a fixed account",
        r#"{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
    ),
    (
        "a service principal",
        r#"{"Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}"#,
    ),
    ("a deny", r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}"#),
    (
        "an address range",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:DB8:1234:5678::/64"]}}}"#,
    ),
    (
        "an organization",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-aa111bb222"}}}"#,
    ),
    (
        "a source ARN",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"ArnEquals":{"aws:SourceArn":"arn:aws:cloudtrail:us-east-2:111122223333:trail/t"}}}"#,
    ),
    (
        "a VPC endpoint",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1a2b3c4d"}}}"#,
    ),
    (
        "a source account",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:SourceAccount":"111122223333"}}}"#,
    ),
    (
        "a KMS key",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"s3:x-amz-server-side-encryption-aws-kms-key-id":"arn:aws:kms:us-east-2:111122223333:key/k"}}}"#,
    ),
    (
        "a fixed aws:userid",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:userid":"AIDAJQABLZS4A3QDU576Q"}}}"#,
    ),
    (
        "a principal account (key name in another case)",
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"AWS:PrincipalAccount":"111122223333"}}}"#,
    ),
];

#[test]
fn the_meaning_of_public() {
    for (name, statement) in PUBLIC {
        assert!(bucket(statement).is_public(), "public: {name}");
    }
    for (name, statement) in NOT_PUBLIC {
        assert!(!bucket(statement).is_public(), "not public: {name}");
    }
    // One public statement makes the policy public.
    let mixed = bucket(&format!("{},{}", NOT_PUBLIC[0].1, PUBLIC[0].1));
    assert!(mixed.is_public());
    // Identity-based policies name no principals and are never public.
    let identity =
        Policy::parse(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#, PolicyKind::Identity)
            .expect("valid");
    assert!(!identity.is_public());
}

#[test]
fn kms_lockout_question_from_statements() {
    // "Does an allowing statement let the account (and so IAM) manage the key policy?"
    let lets_account_manage = |policy: &Policy, account: &str| {
        policy.statements().iter().any(|statement| {
            statement.effect() == Effect::Allow
                && statement.principal().is_some_and(|principal| principal.names_account(account))
                && statement.matches_action("kms:PutKeyPolicy")
        })
    };
    let default = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
        PolicyKind::Resource,
    )
    .expect("valid");
    assert!(lets_account_manage(&default, "111122223333"));
    assert!(!lets_account_manage(&default, "444455556666"));
    let bare_id = Policy::parse(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:Put*","Resource":"*"}]}"#,
        PolicyKind::Resource,
    )
    .expect("valid");
    assert!(lets_account_manage(&bare_id, "111122223333"));
    let users_only = Policy::parse(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}"#,
        PolicyKind::Resource,
    )
    .expect("valid");
    assert!(!lets_account_manage(&users_only, "111122223333"));
    let principals: Vec<String> = default.statements()[0].principal().expect("a Principal").aws_principals().collect();
    assert_eq!(principals, ["arn:aws:iam::111122223333:root"]);
}
