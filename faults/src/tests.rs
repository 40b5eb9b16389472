//! The rules' grammar, matching, triggers, expiry and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::*;

fn rule(json: &str) -> RuleSpec {
    serde_json::from_str(json).expect("a rule")
}

fn no_alias(_: &str) -> Option<String> {
    None
}

fn call<'a>(operation: &'a str) -> Call<'a> {
    Call {
        dialect: "aws",
        operation,
        principal: "arn:aws:iam::000000000000:root",
        access_key: "test",
        ..Call::default()
    }
}

/// Faults on a clock the test moves.
fn on_clock() -> (Faults, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock = now.clone();
    (Faults::new(Arc::new(move || clock.load(Ordering::Relaxed))), now)
}

#[test]
fn no_rule_costs_nothing_and_fires_nothing() {
    let faults = Faults::wall_clock();
    assert_eq!(faults.check(Service::Kms, &call("Decrypt"), &no_alias), None);
    assert!(!faults.active(Service::Kms));
}

#[test]
fn an_error_rule_fires_with_the_services_status_and_message() {
    let faults = Faults::wall_clock();
    let id = faults
        .add(rule(
            r#"{"service":"kms","operation":"GenerateDataKey","effect":{"type":"error","code":"ThrottlingException"}}"#,
        ))
        .unwrap();
    assert_eq!(faults.check(Service::Kms, &call("Decrypt"), &no_alias), None);
    assert_eq!(faults.check(Service::S3, &call("GenerateDataKey"), &no_alias), None);
    let fired = faults.check(Service::Kms, &call("GenerateDataKey"), &no_alias).unwrap();
    assert_eq!(fired.rule, id);
    let error = fired.error.unwrap();
    assert_eq!((error.code, error.status), ("ThrottlingException", 400));
    assert!(error.message.starts_with("You have exceeded the rate at which you may call KMS."));
    let [view] = faults.list().try_into().unwrap();
    assert_eq!((view.matched, view.fired, view.expired), (1, 1, false));
}

#[test]
fn triggers_nth_next_and_probability() {
    let faults = Faults::wall_clock();
    let nth =
        faults.add(rule(r#"{"service":"s3","operation":"GetObject","trigger":{"nth":3},"effect":{"type":"reset"}}"#));
    let fired: Vec<bool> = (0..5).map(|_| faults.check(Service::S3, &call("GetObject"), &no_alias).is_some()).collect();
    assert_eq!(fired, [false, false, true, false, false]);
    faults.delete(nth.unwrap());
    faults.add(rule(r#"{"service":"s3","trigger":{"next":2},"effect":{"type":"error","code":"SlowDown"}}"#)).unwrap();
    let fired: Vec<bool> = (0..4).map(|_| faults.check(Service::S3, &call("PutObject"), &no_alias).is_some()).collect();
    assert_eq!(fired, [true, true, false, false]);
    assert!(faults.list()[0].expired);
    faults.clear();
    faults
        .add(rule(r#"{"service":"s3","trigger":{"probability":0.25},"effect":{"type":"error","code":"SlowDown"}}"#))
        .unwrap();
    let hits = (0..4000).filter(|_| faults.check(Service::S3, &call("PutObject"), &no_alias).is_some()).count();
    assert!((800..1200).contains(&hits), "{hits} of 4000 at p = 0.25");
    assert_eq!(faults.list()[0].fired, hits as u64);
    assert_eq!(faults.list()[0].matched, 4000);
}

#[test]
fn probability_and_latency_ranges_follow_a_seed() {
    let run = |seed: &[u8]| {
        let faults = Faults::wall_clock().with_entropy(Arc::new(shared::Entropy::deterministic(seed)));
        faults
            .add(rule(r#"{"service":"s3","trigger":{"probability":0.5},"effect":{"type":"error","code":"SlowDown"}}"#))
            .unwrap();
        faults.add(rule(r#"{"service":"kms","effect":{"type":"latency","min_ms":1,"max_ms":1000}}"#)).unwrap();
        let fired: Vec<bool> =
            (0..64).map(|_| faults.check(Service::S3, &call("PutObject"), &no_alias).is_some()).collect();
        let delays: Vec<Duration> =
            (0..16).map(|_| faults.check(Service::Kms, &call("Decrypt"), &no_alias).unwrap().delay_before).collect();
        (fired, delays)
    };
    let (fired, delays) = run(b"s");
    assert_eq!((fired.clone(), delays.clone()), run(b"s"));
    assert_ne!((fired.clone(), delays), run(b"t"));
    assert!(fired.contains(&true) && fired.contains(&false));
}

#[test]
fn rules_expire_after_their_count_or_time_on_the_simulated_clock() {
    let (faults, now) = on_clock();
    faults
        .add(rule(r#"{"service":"kms","for_secs":60,"effect":{"type":"error","code":"KMSInternalException"}}"#))
        .unwrap();
    faults.add(rule(r#"{"service":"kms","times":1,"effect":{"type":"latency","ms":5}}"#)).unwrap();
    let first = faults.check(Service::Kms, &call("Encrypt"), &no_alias).unwrap();
    assert_eq!(first.delay_before, Duration::from_millis(5));
    let second = faults.check(Service::Kms, &call("Encrypt"), &no_alias).unwrap();
    assert_eq!(second.delay_before, Duration::ZERO);
    now.fetch_add(60_000, Ordering::Relaxed);
    assert_eq!(faults.check(Service::Kms, &call("Encrypt"), &no_alias), None);
    assert!(faults.list().iter().all(|r| r.expired));
    // A reset takes the simulated clock back; an expired rule stays expired.
    now.fetch_sub(60_000, Ordering::Relaxed);
    assert_eq!(faults.check(Service::Kms, &call("Encrypt"), &no_alias), None);
    assert!(faults.list().iter().all(|r| r.expired));
}

#[test]
fn filters_principal_key_bucket_and_prefix() {
    let faults = Faults::wall_clock();
    faults
        .add(rule(
            r#"{"service":"kms","principal":"arn:aws:iam::000000000000:user/alice","key":"alias/app",
                "effect":{"type":"error","code":"DisabledException"}}"#,
        ))
        .unwrap();
    let alias = |name: &str| (name == "alias/app").then(|| "k-1".to_owned());
    let alice = Call { principal: "arn:aws:iam::000000000000:user/alice", key_id: Some("k-1"), ..call("Decrypt") };
    assert!(faults.check(Service::Kms, &alice, &alias).is_some());
    assert!(faults.check(Service::Kms, &Call { key_id: Some("k-2"), ..alice }, &alias).is_none());
    assert!(faults.check(Service::Kms, &Call { key_id: None, ..alice }, &alias).is_none());
    assert!(faults.check(Service::Kms, &call("Decrypt"), &alias).is_none());
    faults.clear();
    faults
        .add(rule(r#"{"service":"s3","bucket":"b","prefix":"logs/","effect":{"type":"error","code":"InternalError"}}"#))
        .unwrap();
    let object = |bucket, key| Call { bucket: Some(bucket), object_key: Some(key), ..call("GetObject") };
    assert!(faults.check(Service::S3, &object("b", "logs/1"), &no_alias).is_some());
    assert!(faults.check(Service::S3, &object("b", "data/1"), &no_alias).is_none());
    assert!(faults.check(Service::S3, &object("c", "logs/1"), &no_alias).is_none());
}

#[test]
fn delays_add_up_and_the_first_error_wins() {
    let faults = Faults::wall_clock();
    faults.add(rule(r#"{"service":"kms","effect":{"type":"latency","ms":10}}"#)).unwrap();
    let first = faults.add(rule(r#"{"service":"kms","effect":{"type":"error","code":"KeyUnavailableException"}}"#));
    faults.add(rule(r#"{"service":"kms","effect":{"type":"error","code":"DependencyTimeoutException"}}"#)).unwrap();
    faults
        .add(rule(r#"{"service":"kms","effect":{"type":"latency","min_ms":20,"max_ms":30,"when":"after"}}"#))
        .unwrap();
    let fired = faults.check(Service::Kms, &call("Sign"), &no_alias).unwrap();
    assert_eq!(fired.rule, first.unwrap());
    assert_eq!(fired.error.unwrap().code, "KeyUnavailableException");
    assert_eq!(fired.delay_before, Duration::from_millis(10));
    assert!((20..=30).contains(&fired.delay_after.as_millis()));
}

#[test]
fn refused_rules() {
    let faults = Faults::wall_clock();
    let refused = |json: &str| faults.load(json).unwrap_err().to_string();
    assert!(
        refused(r#"[{"service":"kms","effect":{"type":"error","code":"SlowDown"}}]"#).contains("no error \"SlowDown\"")
    );
    assert!(refused(r#"[{"service":"s3","effect":{"type":"teleport"}}]"#).contains("not valid"));
    assert!(refused(r#"[{"service":"kms","bucket":"b","effect":{"type":"reset"}}]"#).contains("bucket"));
    assert!(refused(r#"[{"service":"s3","key":"alias/x","effect":{"type":"reset"}}]"#).contains("key filters KMS"));
    assert!(refused(r#"[{"service":"s3","dialect":"aws","effect":{"type":"reset"}}]"#).contains("dialect"));
    assert!(
        refused(r#"[{"service":"kms","trigger":{"probability":1.5},"effect":{"type":"reset"}}]"#).contains("0..=1")
    );
    assert!(refused(r#"[{"service":"kms","trigger":{"nth":0},"effect":{"type":"reset"}}]"#).contains("from 1"));
    assert!(refused(r#"[{"service":"kms","effect":{"type":"latency","ms":999999999}}]"#).contains("latency"));
    assert!(refused(r#"[{"service":"kms","effect":{"type":"latency","min_ms":9,"max_ms":1}}]"#).contains("latency"));
    assert!(refused(r#"{"rules":[{"service":"ecs","effect":{"type":"reset"}}]}"#).contains("not valid"));
    // A document with one refused rule adds none.
    let mixed =
        r#"[{"service":"kms","effect":{"type":"reset"}},{"service":"kms","effect":{"type":"error","code":"X"}}]"#;
    assert!(faults.load(mixed).is_err());
    assert!(faults.list().is_empty());
    let added = faults.load(r#"{"rules":[{"service":"otc_is_a_dialect","effect":{"type":"reset"}}]}"#);
    assert!(added.is_err());
    for _ in 0..MAX_RULES {
        faults.add(rule(r#"{"service":"kms","effect":{"type":"reset"}}"#)).unwrap();
    }
    assert_eq!(faults.add(rule(r#"{"service":"kms","effect":{"type":"reset"}}"#)), Err(RuleError::TooMany));
}

#[test]
fn otc_codes_belong_to_the_otc_dialect() {
    let faults = Faults::wall_clock();
    faults.add(rule(r#"{"service":"kms","dialect":"otc","effect":{"type":"error","code":"APIGW.0308"}}"#)).unwrap();
    let otc = Call { dialect: "otc", ..call("create-datakey") };
    let error = faults.check(Service::Kms, &otc, &no_alias).unwrap().error.unwrap();
    assert_eq!((error.code, error.status), ("APIGW.0308", 429));
    assert!(faults.check(Service::Kms, &call("GenerateDataKey"), &no_alias).is_none());
}

#[test]
fn eio_fires_on_io_that_touches_its_range_only() {
    let faults = Faults::wall_clock();
    faults
        .add(rule(
            r#"{"service":"nbd","operation":"read","volume":"v1","effect":{"type":"eio","offset":4096,"length":512}}"#,
        ))
        .unwrap();
    let io = |volume, offset, len| Call {
        operation: "read",
        volume: Some(volume),
        range: Some((offset, len)),
        ..Call::default()
    };
    let fires = |call: Call<'_>| faults.check(Service::Nbd, &call, &no_alias).is_some_and(|f| f.eio);
    assert!(fires(io("v1", 4096, 512)));
    assert!(fires(io("v1", 0, 4097)));
    assert!(fires(io("v1", 4607, 1)));
    assert!(!fires(io("v1", 0, 4096)));
    assert!(!fires(io("v1", 4608, 4096)));
    assert!(!fires(io("v2", 4096, 512)));
    assert!(!fires(Call { operation: "write", ..io("v1", 4096, 512) }));
    // Only the I/O that touched the range matched.
    assert_eq!(faults.list()[0].matched, 3);
}

#[test]
fn effects_fit_their_services() {
    let faults = Faults::wall_clock();
    let refused = |json: &str| faults.load(json).unwrap_err().to_string();
    assert!(refused(r#"{"service":"s3","effect":{"type":"eio"}}"#).contains("NBD"));
    assert!(refused(r#"{"service":"nbd","effect":{"type":"reset"}}"#).contains("eio and latency"));
    assert!(refused(r#"{"service":"evs","effect":{"type":"reset"}}"#).contains("no connection"));
    assert!(refused(r#"{"service":"kms","volume":"v","effect":{"type":"reset"}}"#).contains("volume"));
    assert!(refused(r#"{"service":"nbd","effect":{"type":"eio","length":0}}"#).contains("length 0"));
    assert!(refused(r#"{"service":"iam","effect":{"type":"error","code":"SlowDown"}}"#).contains("Throttling"));
    for ok in [
        r#"{"service":"evs","operation":"createVolume","effect":{"type":"error","code":"EVS.5500"}}"#,
        r#"{"service":"nbd","effect":{"type":"latency","ms":1}}"#,
        r#"{"service":"sts","operation":"AssumeRole","effect":{"type":"error","code":"Throttling"}}"#,
        r#"{"service":"iam","effect":{"type":"reset"}}"#,
    ] {
        faults.load(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}
