//! How long one decision takes: KMS's console default key policy (four statements, one with a
//! condition) and one identity-based policy, decided under `Rule::KeyPolicy` for a Decrypt by a key
//! user and by a user the key policy only delegates to IAM. A program, not a timed test: run it
//! with `cargo run --release -p policy --example evaluate_speed` and read the medians.

use std::hint::black_box;
use std::time::Instant;

use policy::{Context, Policies, Policy, PolicyKind, Principal, Request, Rule, decide};

const KEY_POLICY: &str = r#"{"Version":"2012-10-17","Id":"key-consolepolicy-3","Statement":[
    {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
    {"Sid":"Allow access for Key Administrators","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/KMSAdmins"},
     "Action":["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*","kms:Revoke*","kms:Disable*","kms:Get*","kms:Delete*","kms:TagResource","kms:UntagResource","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion"],"Resource":"*"},
    {"Sid":"Allow use of the key","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/Alice","arn:aws:iam::111122223333:role/KeyUser"]},
     "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"},
    {"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/Alice","arn:aws:iam::111122223333:role/KeyUser"]},
     "Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}]}"#;

const IDENTITY: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Sid":"UseKeysInRegion","Effect":"Allow","Action":["kms:Decrypt","kms:GenerateDataKey*"],"Resource":"arn:aws:kms:us-west-2:111122223333:key/*",
     "Condition":{"StringEquals":{"kms:ViaService":"s3.us-west-2.amazonaws.com"}}}]}"#;

const ROUNDS: usize = 7;
const ITERATIONS: u32 = 200_000;

fn median_nanos(request: &Request<'_>, policies: &Policies<'_>) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                black_box(decide(black_box(policies), black_box(request), Rule::KeyPolicy));
            }
            start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    let key_policy = Policy::parse(KEY_POLICY, PolicyKind::Resource).expect("valid key policy");
    let identity = Policy::parse(IDENTITY, PolicyKind::Identity).expect("valid identity policy");
    let identities = [&identity];
    let policies = Policies { identity: &identities, resource: Some(&key_policy), session: None };
    let key = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut context = Context::new();
    context
        .insert("kms:ViaService", "s3.us-west-2.amazonaws.com")
        .insert("kms:CallerAccount", "111122223333")
        .insert("aws:SourceIp", "192.0.2.10")
        .insert("aws:SecureTransport", "true");

    // The yardstick measured alongside: reading the key policy's JSON once, which an evaluator
    // that parsed per request would pay on every call.
    let parse_nanos = {
        let mut rounds: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..ITERATIONS / 10 {
                    black_box(serde_json::from_str::<serde_json::Value>(black_box(KEY_POLICY)).expect("JSON"));
                }
                start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS / 10)
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        rounds[ROUNDS / 2]
    };
    println!("reading the key policy's JSON: {parse_nanos:.0} ns");

    let key_user = Principal::user("111122223333", "/", "Alice");
    let delegated = Principal::user("111122223333", "/", "Bob");
    for (name, principal) in
        [("key user (named by the key policy)", &key_user), ("IAM user (root delegation)", &delegated)]
    {
        let request = Request { principal, action: "kms:Decrypt", resource: key, context: &context };
        let decision = decide(&policies, &request, Rule::KeyPolicy);
        assert!(decision.allowed, "{name}: {decision:?}");
        let nanos = median_nanos(&request, &policies);
        println!(
            "{name}: {nanos:.0} ns per decision (median of {ROUNDS} rounds of {ITERATIONS}), {:.2}× the JSON read",
            nanos / parse_nanos
        );
    }
}
