//! The identity store's core, table by table: users and keys, roles, inline and managed policies, limits, the
//! live credentials lookup, durability across reopening, declarations, sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use auth::Accounts;
use policy::{Context, Rule};

use super::*;
use crate::sts::AssumeRoleRequest;

const ACCOUNT: &str = "111122223333";
const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const ALLOW_IAM: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;

struct Fixture {
    identities: Identities,
    accounts: Arc<Accounts>,
    clock: Arc<AtomicI64>,
}

fn fixture_in(dir: Option<&Path>, declarations: Vec<AccountDeclaration>) -> Fixture {
    let accounts = Arc::new(Accounts::with_defaults());
    let clock = Arc::new(AtomicI64::new(1_700_000_000));
    let now = clock.clone();
    let identities =
        Identities::open(dir, accounts.clone(), Arc::new(move || now.load(Ordering::Relaxed)), declarations).unwrap();
    Fixture { identities, accounts, clock }
}

fn fixture() -> Fixture {
    fixture_in(None, Vec::new())
}

fn trust(principal: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}}"#
    )
}

fn role_spec<'a>(name: &'a str, trust_policy: &'a str) -> RoleSpec<'a> {
    RoleSpec { name, path: "/", trust_policy, description: None, max_session_duration: None, tags: Vec::new() }
}

#[test]
fn users_are_unique_regardless_of_case_and_their_keys_sign_at_once() {
    let f = fixture();
    let user = f.identities.create_user(ACCOUNT, "Alice", "/team/", Vec::new()).unwrap();
    assert!(user.id.starts_with("AIDA") && user.arn() == "arn:aws:iam::111122223333:user/team/Alice");
    assert_eq!(
        f.identities.create_user(ACCOUNT, "alice", "/", Vec::new()).unwrap_err(),
        Error::EntityAlreadyExists("User with name Alice already exists.".into())
    );
    assert_eq!(f.identities.get_user(ACCOUNT, "ALICE").unwrap().name, "Alice");
    let (key, secret) = f.identities.create_access_key(ACCOUNT, "alice").unwrap();
    assert!(key.id.starts_with("AKIA") && key.id.len() == 20 && secret.len() == 40);
    let live = f.accounts.get(&key.id).expect("the new key is live");
    assert_eq!(live.principal_arn, user.arn());
    assert_eq!(live.identity.principal().unique_id(), Some(user.id.as_str()));
    f.identities.create_access_key(ACCOUNT, "alice").unwrap();
    assert_eq!(
        f.identities.create_access_key(ACCOUNT, "alice").unwrap_err(),
        Error::LimitExceeded("Cannot exceed quota for AccessKeysPerUser: 2".into())
    );
    assert!(matches!(f.identities.delete_user(ACCOUNT, "alice"), Err(Error::DeleteConflict(_))));
    f.identities.update_access_key(ACCOUNT, "alice", &key.id, false).unwrap();
    assert!(f.accounts.get(&key.id).is_none(), "an inactive key is refused");
    f.identities.update_access_key(ACCOUNT, "alice", &key.id, true).unwrap();
    assert!(f.accounts.get(&key.id).is_some());
    for key in f.identities.list_access_keys(ACCOUNT, "alice").unwrap() {
        f.identities.delete_access_key(ACCOUNT, "alice", &key.id).unwrap();
        assert!(f.accounts.get(&key.id).is_none(), "a deleted key is refused at once");
    }
    assert!(matches!(f.identities.delete_access_key(ACCOUNT, "alice", &key.id), Err(Error::NoSuchEntity(_))));
    f.identities.delete_user(ACCOUNT, "alice").unwrap();
    assert_eq!(
        f.identities.get_user(ACCOUNT, "alice").unwrap_err(),
        Error::NoSuchEntity("The user with name alice cannot be found.".into())
    );
}

#[test]
fn bad_names_and_policies_change_nothing() {
    let f = fixture();
    let cases: Vec<(Result<UserRecord>, &str)> = vec![
        (f.identities.create_user(ACCOUNT, "a b", "/", Vec::new()), "ValidationError"),
        (f.identities.create_user(ACCOUNT, "a", "nopath", Vec::new()), "ValidationError"),
        (f.identities.create_user(ACCOUNT, &"x".repeat(65), "/", Vec::new()), "ValidationError"),
    ];
    for (result, _) in cases {
        assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
    }
    f.identities.create_user(ACCOUNT, "bob", "/", Vec::new()).unwrap();
    let malformed: &[(&str, &str)] = &[
        ("{", "Syntax errors in policy."),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#,
            "Policy statement must contain resources.",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
            "Policy document should not specify a principal.",
        ),
    ];
    for (document, message) in malformed {
        assert_eq!(
            f.identities.put_inline_policy(ACCOUNT, Holder::User("bob"), "p", document).unwrap_err(),
            Error::MalformedPolicyDocument((*message).into()),
            "{document}"
        );
    }
    assert!(f.identities.list_inline_policies(ACCOUNT, Holder::User("bob"), None, 100).unwrap().items.is_empty());
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}"}}]}}"#,
        "b".repeat(2100)
    );
    assert!(matches!(
        f.identities.put_inline_policy(ACCOUNT, Holder::User("bob"), "p", &big),
        Err(Error::LimitExceeded(_))
    ));
}

#[test]
fn inline_and_managed_policies_reach_the_keys_live() {
    let f = fixture();
    f.identities.create_user(ACCOUNT, "carol", "/", Vec::new()).unwrap();
    let (key, _) = f.identities.create_access_key(ACCOUNT, "carol").unwrap();
    let live = f.accounts.get(&key.id).unwrap();
    let allowed = || live.identity.decide("iam:CreateUser", "*", &Context::new(), None, Rule::SameAccount).allowed;
    assert!(!allowed());
    f.identities.put_inline_policy(ACCOUNT, Holder::User("carol"), "iam", ALLOW_IAM).unwrap();
    assert!(allowed());
    assert_eq!(f.identities.get_inline_policy(ACCOUNT, Holder::User("carol"), "iam").unwrap(), ALLOW_IAM);
    f.identities.delete_inline_policy(ACCOUNT, Holder::User("carol"), "iam").unwrap();
    assert!(!allowed());

    let info = f.identities.create_policy(ACCOUNT, "All", "/p/", ALLOW_ALL, Some("everything"), Vec::new()).unwrap();
    let arn = info.record.arn();
    assert_eq!(arn, "arn:aws:iam::111122223333:policy/p/All");
    assert!(matches!(
        f.identities.create_policy(ACCOUNT, "all", "/", ALLOW_ALL, None, Vec::new()),
        Err(Error::EntityAlreadyExists(_))
    ));
    f.identities.attach_policy(ACCOUNT, Holder::User("carol"), &arn).unwrap();
    f.identities.attach_policy(ACCOUNT, Holder::User("carol"), &arn).unwrap();
    assert!(allowed());
    assert_eq!(f.identities.get_policy(ACCOUNT, &arn).unwrap().attachments, 1);
    assert_eq!(
        f.identities.delete_policy(ACCOUNT, &arn).unwrap_err(),
        Error::DeleteConflict("Cannot delete a policy attached to entities.".into())
    );
    let missing = "arn:aws:iam::111122223333:policy/none";
    assert!(matches!(f.identities.attach_policy(ACCOUNT, Holder::User("carol"), missing), Err(Error::NoSuchEntity(_))));
    f.identities.detach_policy(ACCOUNT, Holder::User("carol"), &arn).unwrap();
    assert!(!allowed());
    assert!(matches!(f.identities.detach_policy(ACCOUNT, Holder::User("carol"), &arn), Err(Error::NoSuchEntity(_))));
    f.identities.delete_policy(ACCOUNT, &arn).unwrap();
    assert!(matches!(f.identities.get_policy(ACCOUNT, &arn), Err(Error::NoSuchEntity(_))));
}

#[test]
fn listings_page_by_name() {
    let f = fixture();
    for name in ["d", "a", "c", "b", "e"] {
        f.identities.create_user(ACCOUNT, name, if name == "e" { "/x/" } else { "/" }, Vec::new()).unwrap();
    }
    let first = f.identities.list_users(ACCOUNT, "/", None, 2);
    assert_eq!(first.items.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let second = f.identities.list_users(ACCOUNT, "/", first.next_marker.as_deref(), 10);
    assert_eq!(second.items.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["c", "d", "e"]);
    assert_eq!(second.next_marker, None);
    assert_eq!(f.identities.list_users(ACCOUNT, "/x/", None, 10).items.len(), 1);
    assert!(f.identities.list_users("999999999999", "/", None, 10).items.is_empty());
}

#[test]
fn everything_survives_reopening_and_secrets_are_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let (key_id, secret, user_id) = {
        let f = fixture_in(Some(dir.path()), Vec::new());
        let user = f.identities.create_user(ACCOUNT, "dave", "/", Vec::new()).unwrap();
        let (key, secret) = f.identities.create_access_key(ACCOUNT, "dave").unwrap();
        f.identities.put_inline_policy(ACCOUNT, Holder::User("dave"), "iam", ALLOW_IAM).unwrap();
        f.identities.create_role(ACCOUNT, &role_spec("r", &trust(&format!("arn:aws:iam::{ACCOUNT}:root")))).unwrap();
        (key.id, secret.to_string(), user.id)
    };
    let bytes = std::fs::read(dir.path().join("iam.redb")).unwrap();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "no secret in the clear");
    let f = fixture_in(Some(dir.path()), Vec::new());
    let live = f.accounts.get(&key_id).expect("the stored key is live again");
    assert_eq!(live.secret_access_key.as_str(), secret);
    assert_eq!(f.identities.get_user(ACCOUNT, "dave").unwrap().id, user_id);
    assert!(live.identity.decide("iam:ListUsers", "*", &Context::new(), None, Rule::SameAccount).allowed);
    assert!(f.identities.get_role(ACCOUNT, "r").is_ok());
}

#[test]
fn declarations_apply_at_open_and_after_reset() {
    let declaration: AccountDeclaration = toml_like(ACCOUNT);
    let f = fixture_in(None, vec![declaration]);
    let key = f.accounts.get("AKIADECLARED0000001").expect("declared key");
    assert_eq!(key.principal_arn, "arn:aws:iam::111122223333:user/ops/eve");
    assert!(key.identity.decide("iam:GetUser", "*", &Context::new(), None, Rule::SameAccount).allowed);
    assert!(f.identities.get_role(ACCOUNT, "deployer").is_ok());
    f.identities.create_user(ACCOUNT, "runtime", "/", Vec::new()).unwrap();
    f.identities.reset().unwrap();
    assert!(f.identities.get_user(ACCOUNT, "runtime").is_err());
    assert!(f.accounts.get("AKIADECLARED0000001").is_some(), "declarations come back after a reset");
}

fn toml_like(account: &str) -> AccountDeclaration {
    AccountDeclaration {
        account: account.into(),
        policies: vec![PolicyDeclaration {
            name: "iam".into(),
            path: "/".into(),
            document: ALLOW_IAM.into(),
            description: None,
        }],
        users: vec![UserDeclaration {
            name: "eve".into(),
            path: "/ops/".into(),
            access_keys: vec![KeyDeclaration {
                access_key_id: "AKIADECLARED0000001".into(),
                secret_access_key: "s".into(),
            }],
            policies: Default::default(),
            attached_policies: vec!["iam".into()],
        }],
        roles: vec![RoleDeclaration {
            name: "deployer".into(),
            path: "/".into(),
            trust_policy: trust(&format!("arn:aws:iam::{account}:user/ops/eve")),
            max_session_duration: None,
            description: None,
            policies: [("all".to_owned(), ALLOW_ALL.to_owned())].into(),
            attached_policies: Vec::new(),
        }],
    }
}

#[test]
fn assume_role_follows_the_trust_policy_and_sessions_expire() {
    let f = fixture_in(None, vec![toml_like(ACCOUNT)]);
    let eve = f.accounts.get("AKIADECLARED0000001").unwrap();
    let request = |role: &str| AssumeRoleRequest {
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
        session_name: "s1".into(),
        ..Default::default()
    };
    let session = f.identities.assume_role(&eve, &request("deployer")).unwrap();
    assert!(session.access_key_id.starts_with("ASIA"));
    assert_eq!(session.arn, "arn:aws:sts::111122223333:assumed-role/deployer/s1");
    assert_eq!(session.expires_at, f.clock.load(Ordering::Relaxed) + 3600);
    let live = f.accounts.get(&session.access_key_id).unwrap();
    assert_eq!(live.principal_arn, session.arn);
    assert!(live.identity.decide("kms:Decrypt", "*", &Context::new(), None, Rule::SameAccount).allowed);
    assert_eq!(crate::sts::caller_identity(&live).user_id, session.assumed_role_id);

    // A trust policy that does not name the caller.
    f.identities.create_user(ACCOUNT, "mallory", "/", Vec::new()).unwrap();
    let (key, _) = f.identities.create_access_key(ACCOUNT, "mallory").unwrap();
    let mallory = f.accounts.get(&key.id).unwrap();
    assert_eq!(
        f.identities.assume_role(&mallory, &request("deployer")).unwrap_err(),
        Error::AccessDenied(format!(
            "User: arn:aws:iam::{ACCOUNT}:user/mallory is not authorized to perform: sts:AssumeRole on resource: \
             arn:aws:iam::{ACCOUNT}:role/deployer"
        ))
    );
    // The account root named: delegation to mallory's own policies.
    f.identities.create_role(ACCOUNT, &role_spec("delegated", &trust(ACCOUNT))).unwrap();
    assert!(matches!(f.identities.assume_role(&mallory, &request("delegated")), Err(Error::AccessDenied(_))));
    f.identities
        .put_inline_policy(
            ACCOUNT,
            Holder::User("mallory"),
            "assume",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}}"#,
        )
        .unwrap();
    assert!(f.identities.assume_role(&mallory, &request("delegated")).is_ok());
    // A role that does not exist is denied the same way; the root may not assume roles.
    assert!(matches!(f.identities.assume_role(&mallory, &request("nothere")), Err(Error::AccessDenied(_))));
    let root = f.accounts.get("test").unwrap();
    assert_eq!(
        f.identities.assume_role(&root, &request("deployer")).unwrap_err(),
        Error::AccessDenied("Roles may not be assumed by root accounts.".into())
    );
    // Durations.
    let long = AssumeRoleRequest { duration: Some(7200), ..request("deployer") };
    assert_eq!(
        f.identities.assume_role(&eve, &long).unwrap_err(),
        Error::Validation("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.".into())
    );
    assert!(matches!(
        f.identities.assume_role(&eve, &AssumeRoleRequest { duration: Some(899), ..request("deployer") }),
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        f.identities.assume_role(&eve, &AssumeRoleRequest { session_name: "bad name".into(), ..request("deployer") }),
        Err(Error::Validation(_))
    ));
}

#[test]
fn session_policies_and_tags_shape_the_session() {
    let f = fixture_in(None, vec![toml_like(ACCOUNT)]);
    let eve = f.accounts.get("AKIADECLARED0000001").unwrap();
    let tagging_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/ops/eve"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
    f.identities.update_trust_policy(ACCOUNT, "deployer", tagging_trust).unwrap();
    let request = AssumeRoleRequest {
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/deployer"),
        session_name: "tagged".into(),
        policy: Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"},
            {"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue"}}},
            {"Effect":"Allow","Action":"s3:PutObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"red"}}}]}"#
                .into(),
        ),
        tags: vec![Tag { key: "team".into(), value: "blue".into() }],
        ..Default::default()
    };
    let session = f.identities.assume_role(&eve, &request).unwrap();
    assert!(session.packed_policy_size.is_some());
    let live = f.accounts.get(&session.access_key_id).unwrap();
    let context = Context::new();
    assert!(live.identity.decide("kms:Decrypt", "*", &context, None, Rule::SameAccount).allowed);
    assert!(
        !live.identity.decide("kms:Encrypt", "*", &context, None, Rule::SameAccount).allowed,
        "the session policy limits"
    );
    assert!(live.identity.decide("s3:GetObject", "*", &context, None, Rule::SameAccount).allowed, "tag team=blue");
    assert!(!live.identity.decide("s3:PutObject", "*", &context, None, Rule::SameAccount).allowed, "tag team≠red");
    // Malformed session policy → MalformedPolicyDocument.
    let bad = AssumeRoleRequest { policy: Some("{".into()), ..request.clone() };
    assert!(matches!(f.identities.assume_role(&eve, &bad), Err(Error::MalformedPolicyDocument(_))));
    // Tags need sts:TagSession in the trust policy.
    f.identities.update_trust_policy(ACCOUNT, "deployer", &trust("arn:aws:iam::111122223333:user/ops/eve")).unwrap();
    assert!(matches!(f.identities.assume_role(&eve, &request), Err(Error::AccessDenied(_))));
}
