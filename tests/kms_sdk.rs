//! The AWS KMS API through the Rust `aws-sdk-kms`: key lifecycle, aliases, crypto, key states,
//! rotation, tags, grants across accounts, and the errors AWS sends.

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, GrantConstraints, GrantOperation, KeyState, Tag};
use kmsim::Stack;
use kmsim::config::{AccessKeyConfig, AccountConfig, Config};

use crate::common::{kms_client, kms_client_with, stack};

/// The error code of a failed SDK call.
fn code<E: ProvideErrorMetadata>(result: Result<impl std::fmt::Debug, E>) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or("<no code>").to_owned(),
    }
}

async fn new_key(client: &aws_sdk_kms::Client) -> String {
    client.create_key().send().await.unwrap().key_metadata.unwrap().key_id
}

#[tokio::test(flavor = "multi_thread")]
async fn create_describe_list_and_paginate() {
    let stack = stack().await;
    let kms = kms_client(&stack);
    let created = kms
        .create_key()
        .description("first")
        .tags(Tag::builder().tag_key("team").tag_value("storage").build().unwrap())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(created.key_state, Some(KeyState::Enabled));
    assert_eq!(created.aws_account_id.as_deref(), Some("000000000000"));
    assert_eq!(
        created.arn.as_deref(),
        Some(format!("arn:aws:kms:us-east-1:000000000000:key/{}", created.key_id).as_str())
    );
    let described = kms.describe_key().key_id(&created.key_id).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(described.description.as_deref(), Some("first"));
    for _ in 0..4 {
        new_key(&kms).await;
    }
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = kms.list_keys().limit(2).set_marker(marker).send().await.unwrap();
        let keys = page.keys.unwrap();
        assert!(keys.len() <= 2);
        seen.extend(keys.into_iter().map(|k| k.key_id.unwrap()));
        if !page.truncated {
            break;
        }
        marker = page.next_marker;
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.contains(&created.key_id));
    let tags = kms.list_resource_tags().key_id(&created.key_id).send().await.unwrap().tags.unwrap();
    assert_eq!(tags[0].tag_key, "team");
    kms.update_key_description().key_id(&created.key_id).description("second").send().await.unwrap();
    let described = kms.describe_key().key_id(&created.key_id).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(described.description.as_deref(), Some("second"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_form_of_key_id_works() {
    let stack = stack().await;
    let kms = kms_client(&stack);
    let id = new_key(&kms).await;
    kms.create_alias().alias_name("alias/app").target_key_id(&id).send().await.unwrap();
    let arn = format!("arn:aws:kms:us-east-1:000000000000:key/{id}");
    let alias_arn = "arn:aws:kms:us-east-1:000000000000:alias/app".to_owned();
    for key_id in [id.clone(), arn.clone(), "alias/app".to_owned(), alias_arn] {
        let out = kms.encrypt().key_id(&key_id).plaintext(Blob::new("hello")).send().await.unwrap();
        assert_eq!(out.key_id.as_deref(), Some(arn.as_str()), "{key_id}");
        let plain = kms.decrypt().ciphertext_blob(out.ciphertext_blob.unwrap()).send().await.unwrap();
        assert_eq!(plain.plaintext.unwrap().as_ref(), b"hello");
        let described = kms.describe_key().key_id(&key_id).send().await.unwrap().key_metadata.unwrap();
        assert_eq!(described.key_id, id);
    }
    let other = new_key(&kms).await;
    kms.update_alias().alias_name("alias/app").target_key_id(&other).send().await.unwrap();
    let aliases = kms.list_aliases().key_id(&other).send().await.unwrap().aliases.unwrap();
    assert_eq!(aliases.len(), 1);
    assert_eq!(aliases[0].alias_name.as_deref(), Some("alias/app"));
    assert_eq!(
        code(kms.create_alias().alias_name("alias/app").target_key_id(&id).send().await),
        "AlreadyExistsException"
    );
    assert_eq!(
        code(kms.create_alias().alias_name("alias/aws/s3").target_key_id(&id).send().await),
        "InvalidAliasNameException"
    );
    kms.delete_alias().alias_name("alias/app").send().await.unwrap();
    assert_eq!(code(kms.describe_key().key_id("alias/app").send().await), "NotFoundException");
    assert_eq!(code(kms.delete_alias().alias_name("alias/app").send().await), "NotFoundException");
}

#[tokio::test(flavor = "multi_thread")]
async fn encryption_context_is_exact_and_tampering_is_caught() {
    let stack = stack().await;
    let kms = kms_client(&stack);
    let id = new_key(&kms).await;
    let blob = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new("secret"))
        .encryption_context("ab", "c")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let ok = kms.decrypt().ciphertext_blob(blob.clone()).encryption_context("ab", "c").send().await.unwrap();
    assert_eq!(ok.plaintext.unwrap().as_ref(), b"secret");
    for (k, v) in [("a", "bc"), ("AB", "c"), ("ab", "C")] {
        let result = kms.decrypt().ciphertext_blob(blob.clone()).encryption_context(k, v).send().await;
        assert_eq!(code(result), "InvalidCiphertextException", "{k}={v}");
    }
    assert_eq!(code(kms.decrypt().ciphertext_blob(blob.clone()).send().await), "InvalidCiphertextException");
    let mut tampered = blob.into_inner();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let result = kms.decrypt().ciphertext_blob(Blob::new(tampered)).encryption_context("ab", "c").send().await;
    assert_eq!(code(result), "InvalidCiphertextException");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_keys_re_encrypt_and_random() {
    let stack = stack().await;
    let kms = kms_client(&stack);
    let (a, b) = (new_key(&kms).await, new_key(&kms).await);
    let dk = kms.generate_data_key().key_id(&a).key_spec(DataKeySpec::Aes256).send().await.unwrap();
    let plaintext = dk.plaintext.unwrap();
    assert_eq!(plaintext.as_ref().len(), 32);
    let decrypted = kms.decrypt().ciphertext_blob(dk.ciphertext_blob.clone().unwrap()).send().await.unwrap();
    assert_eq!(decrypted.plaintext.unwrap(), plaintext);
    let dk128 = kms.generate_data_key().key_id(&a).key_spec(DataKeySpec::Aes128).send().await.unwrap();
    assert_eq!(dk128.plaintext.unwrap().as_ref().len(), 16);
    let dk7 = kms.generate_data_key().key_id(&a).number_of_bytes(7).send().await.unwrap();
    assert_eq!(dk7.plaintext.unwrap().as_ref().len(), 7);
    assert_eq!(code(kms.generate_data_key().key_id(&a).send().await), "ValidationException");
    let both = kms.generate_data_key().key_id(&a).number_of_bytes(7).key_spec(DataKeySpec::Aes256).send().await;
    assert_eq!(code(both), "ValidationException");
    assert_eq!(code(kms.generate_data_key().key_id(&a).number_of_bytes(1025).send().await), "ValidationException");
    let without =
        kms.generate_data_key_without_plaintext().key_id(&a).key_spec(DataKeySpec::Aes256).send().await.unwrap();
    assert!(without.ciphertext_blob.is_some());
    // Decrypt naming the wrong key, then ReEncrypt to the other key.
    let wrong = kms.decrypt().ciphertext_blob(dk.ciphertext_blob.clone().unwrap()).key_id(&b).send().await;
    assert_eq!(code(wrong), "IncorrectKeyException");
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(dk.ciphertext_blob.unwrap())
        .destination_key_id(&b)
        .destination_encryption_context("to", "b")
        .send()
        .await
        .unwrap();
    assert!(moved.source_key_id.unwrap().ends_with(&a));
    let back = kms
        .decrypt()
        .ciphertext_blob(moved.ciphertext_blob.unwrap())
        .key_id(&b)
        .encryption_context("to", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext.unwrap(), plaintext);
    let random = kms.generate_random().number_of_bytes(64).send().await.unwrap();
    assert_eq!(random.plaintext.unwrap().as_ref().len(), 64);
    assert_eq!(code(kms.generate_random().number_of_bytes(0).send().await), "ValidationException");
    assert_eq!(
        code(kms.encrypt().key_id(&a).plaintext(Blob::new(vec![0u8; 4097])).send().await),
        "ValidationException"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn key_states_are_enforced_on_every_crypto_path() {
    let stack = stack().await;
    let kms = kms_client(&stack);
    let id = new_key(&kms).await;
    let blob = kms.encrypt().key_id(&id).plaintext(Blob::new("x")).send().await.unwrap().ciphertext_blob.unwrap();
    kms.disable_key().key_id(&id).send().await.unwrap();
    assert_eq!(code(kms.encrypt().key_id(&id).plaintext(Blob::new("x")).send().await), "DisabledException");
    assert_eq!(code(kms.decrypt().ciphertext_blob(blob.clone()).send().await), "DisabledException");
    assert_eq!(code(kms.generate_data_key().key_id(&id).number_of_bytes(32).send().await), "DisabledException");
    kms.enable_key().key_id(&id).send().await.unwrap();
    kms.decrypt().ciphertext_blob(blob.clone()).send().await.unwrap();

    assert_eq!(
        code(kms.schedule_key_deletion().key_id(&id).pending_window_in_days(6).send().await),
        "ValidationException"
    );
    assert_eq!(
        code(kms.schedule_key_deletion().key_id(&id).pending_window_in_days(31).send().await),
        "ValidationException"
    );
    let scheduled = kms.schedule_key_deletion().key_id(&id).pending_window_in_days(7).send().await.unwrap();
    assert_eq!(scheduled.key_state, Some(KeyState::PendingDeletion));
    assert_eq!(scheduled.pending_window_in_days, Some(7));
    assert_eq!(code(kms.decrypt().ciphertext_blob(blob.clone()).send().await), "KMSInvalidStateException");
    assert_eq!(code(kms.encrypt().key_id(&id).plaintext(Blob::new("x")).send().await), "KMSInvalidStateException");
    assert_eq!(code(kms.enable_key().key_id(&id).send().await), "KMSInvalidStateException");
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    let meta = kms.describe_key().key_id(&id).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(meta.key_state, Some(KeyState::Disabled));

    // The window ends: the key is purged, and its ciphertexts name a key that no longer exists.
    kms.schedule_key_deletion().key_id(&id).send().await.unwrap();
    stack.kms().clock.advance(29 * 86_400);
    assert_eq!(stack.kms().sweep().unwrap(), (0, 0));
    stack.kms().clock.advance(86_400);
    assert_eq!(stack.kms().sweep().unwrap(), (1, 0));
    assert_eq!(code(kms.describe_key().key_id(&id).send().await), "NotFoundException");
    assert_eq!(code(kms.decrypt().ciphertext_blob(blob).send().await), "NotFoundException");
    assert_eq!(code(kms.encrypt().key_id("alias/nope").plaintext(Blob::new("x")).send().await), "NotFoundException");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_keeps_old_ciphertexts_and_happens_on_schedule() {
    let stack = stack().await;
    let kms = kms_client(&stack);
    let id = new_key(&kms).await;
    let old = kms.encrypt().key_id(&id).plaintext(Blob::new("v0")).send().await.unwrap().ciphertext_blob.unwrap();
    let status = kms.get_key_rotation_status().key_id(&id).send().await.unwrap();
    assert!(!status.key_rotation_enabled);
    assert_eq!(
        code(kms.enable_key_rotation().key_id(&id).rotation_period_in_days(89).send().await),
        "ValidationException"
    );
    kms.enable_key_rotation().key_id(&id).rotation_period_in_days(90).send().await.unwrap();
    let status = kms.get_key_rotation_status().key_id(&id).send().await.unwrap();
    assert!(status.key_rotation_enabled);
    assert_eq!(status.rotation_period_in_days, Some(90));

    kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    let after = kms.encrypt().key_id(&id).plaintext(Blob::new("v1")).send().await.unwrap().ciphertext_blob.unwrap();
    assert_ne!(old.as_ref()[..60], after.as_ref()[..60]);
    for (blob, expected) in [(old.clone(), "v0"), (after, "v1")] {
        let plain = kms.decrypt().ciphertext_blob(blob).send().await.unwrap().plaintext.unwrap();
        assert_eq!(plain.as_ref(), expected.as_bytes());
    }
    stack.kms().clock.advance(90 * 86_400);
    assert_eq!(stack.kms().sweep().unwrap(), (0, 1));
    let rotations = kms.list_key_rotations().key_id(&id).send().await.unwrap().rotations.unwrap();
    let types: Vec<&str> = rotations.iter().map(|r| r.rotation_type.as_ref().unwrap().as_str()).collect();
    assert_eq!(types, ["ON_DEMAND", "AUTOMATIC"]);
    let plain = kms.decrypt().ciphertext_blob(old).send().await.unwrap().plaintext.unwrap();
    assert_eq!(plain.as_ref(), b"v0");
    // One on-demand rotation above; AWS allows 25 per key.
    for _ in 1..kms::service::MAX_ON_DEMAND_ROTATIONS {
        kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    }
    assert_eq!(code(kms.rotate_key_on_demand().key_id(&id).send().await), "LimitExceededException");
}

fn two_accounts() -> Config {
    Config {
        accounts: vec![AccountConfig {
            id: "111122223333".into(),
            domain_id: None,
            project_id: None,
            access_keys: vec![
                AccessKeyConfig {
                    access_key_id: "AKIDOTHER".into(),
                    secret_access_key: "other-secret".into(),
                    user: Some("bob".into()),
                },
                AccessKeyConfig {
                    access_key_id: "AKIDOTHERROOT".into(),
                    secret_access_key: "other-root-secret".into(),
                    user: None,
                },
            ],
            ..AccountConfig::default()
        }],
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_account_uses_a_key_only_through_a_grant() {
    let stack = Stack::builder().config(two_accounts()).start().await.unwrap();
    let owner = kms_client(&stack);
    let other = kms_client_with(&stack, "AKIDOTHER", "other-secret");
    let id = new_key(&owner).await;
    let arn = format!("arn:aws:kms:us-east-1:000000000000:key/{id}");
    assert_eq!(code(other.describe_key().key_id(&id).send().await), "NotFoundException");
    assert_eq!(code(other.encrypt().key_id(&arn).plaintext(Blob::new("x")).send().await), "AccessDeniedException");
    let grant = owner
        .create_grant()
        .key_id(&id)
        .grantee_principal("arn:aws:iam::111122223333:user/bob")
        .retiring_principal("arn:aws:iam::111122223333:root")
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::Decrypt)
        .constraints(GrantConstraints::builder().encryption_context_equals("app", "billing").build())
        .send()
        .await
        .unwrap();
    let token = grant.grant_token.unwrap();
    let blob = other
        .encrypt()
        .key_id(&arn)
        .plaintext(Blob::new("x"))
        .encryption_context("app", "billing")
        .grant_tokens(&token)
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let denied = other.encrypt().key_id(&arn).plaintext(Blob::new("x")).encryption_context("app", "other").send().await;
    assert_eq!(code(denied), "AccessDeniedException");
    let denied =
        other.generate_data_key().key_id(&arn).number_of_bytes(32).encryption_context("app", "billing").send().await;
    assert_eq!(code(denied), "AccessDeniedException");
    other.decrypt().ciphertext_blob(blob.clone()).encryption_context("app", "billing").send().await.unwrap();
    assert_eq!(code(other.disable_key().key_id(&arn).send().await), "AccessDeniedException");
    let bogus = other.encrypt().key_id(&arn).plaintext(Blob::new("x")).grant_tokens("not-a-token").send().await;
    assert_eq!(code(bogus), "InvalidGrantTokenException");

    let grants = owner.list_grants().key_id(&id).send().await.unwrap().grants.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grantee_principal.as_deref(), Some("arn:aws:iam::111122223333:user/bob"));
    // bob has no identity policy allowing kms:ListRetirableGrants (an account-level action); the root of his
    // account may.
    let denied = other.list_retirable_grants().retiring_principal("arn:aws:iam::111122223333:root").send().await;
    assert_eq!(code(denied), "AccessDeniedException");
    let other_root = kms_client_with(&stack, "AKIDOTHERROOT", "other-root-secret");
    let retirable =
        other_root.list_retirable_grants().retiring_principal("arn:aws:iam::111122223333:root").send().await.unwrap();
    assert_eq!(retirable.grants.unwrap().len(), 1);
    // The grant names bob's account as its retiring principal: its root may retire it, bob only with an identity
    // policy delegating kms:RetireGrant to him.
    assert_eq!(code(other.retire_grant().grant_token(&token).send().await), "AccessDeniedException");
    other_root.retire_grant().grant_token(&token).send().await.unwrap();
    let denied = other.decrypt().ciphertext_blob(blob).encryption_context("app", "billing").send().await;
    assert_eq!(code(denied), "AccessDeniedException");

    let second = owner
        .create_grant()
        .key_id(&id)
        .grantee_principal("arn:aws:iam::111122223333:root")
        .operations(GrantOperation::GenerateDataKey)
        .send()
        .await
        .unwrap();
    other.generate_data_key().key_id(&arn).number_of_bytes(16).send().await.unwrap();
    owner.revoke_grant().key_id(&id).grant_id(second.grant_id.unwrap()).send().await.unwrap();
    assert_eq!(code(other.generate_data_key().key_id(&arn).number_of_bytes(16).send().await), "AccessDeniedException");
    assert_eq!(code(owner.revoke_grant().key_id(&id).grant_id("0".repeat(64)).send().await), "NotFoundException");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_get_the_aws_errors() {
    let stack = Stack::builder().config(two_accounts()).start().await.unwrap();
    let wrong_secret = kms_client_with(&stack, "AKIDOTHER", "not-the-secret");
    assert_eq!(code(wrong_secret.list_keys().send().await), "InvalidSignatureException");
    let unknown = kms_client_with(&stack, "AKIDNOBODY", "x");
    assert_eq!(code(unknown.list_keys().send().await), "UnrecognizedClientException");
    // The server keeps serving.
    kms_client(&stack).list_keys().send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_records_every_call() {
    let stack = stack().await;
    let kms = kms_client(&stack);
    let id = new_key(&kms).await;
    let blob = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new("x"))
        .encryption_context("purpose", "audit")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let _ = kms.decrypt().ciphertext_blob(blob).send().await;
    let events = stack.kms().audit.query(&Default::default());
    let ops: Vec<(&str, &str)> = events.iter().map(|e| (e.operation.as_str(), e.outcome.as_str())).collect();
    assert_eq!(ops, [("CreateKey", "Success"), ("Encrypt", "Success"), ("Decrypt", "InvalidCiphertextException")]);
    let encrypt = &events[1];
    assert_eq!(encrypt.key_arn.as_deref(), Some(format!("arn:aws:kms:us-east-1:000000000000:key/{id}").as_str()));
    assert_eq!(encrypt.encryption_context.as_ref().unwrap()["purpose"], "audit");
    assert_eq!(encrypt.access_key, "test");
    assert_eq!(encrypt.account, "000000000000");
    assert_eq!(encrypt.via_service, None);
    assert_eq!(encrypt.source.as_deref(), Some("127.0.0.1"), "the client's address, as CloudTrail's sourceIPAddress");
    assert_eq!(encrypt.dialect, "aws");
}

/// RSA key generations run off the async workers, a few at a time: on a single-threaded runtime, which an inline
/// RSA_4096 generation would stall for its whole duration (a tenth of a second to seconds), cheap calls keep being
/// answered while several pairs are generated.
#[tokio::test(flavor = "current_thread")]
async fn rsa_key_generation_does_not_stall_the_edge() {
    use aws_sdk_kms::types::DataKeyPairSpec;

    let stack = stack().await;
    let kms = kms_client(&stack);
    let key = new_key(&kms).await;
    let pairs: Vec<_> = (0..4)
        .map(|_| {
            let request = kms.generate_data_key_pair().key_id(&key).key_pair_spec(DataKeyPairSpec::Rsa4096);
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    let mut answered_meanwhile = 0;
    while !pairs.iter().all(|p| p.is_finished()) {
        let random = kms.generate_random().number_of_bytes(16).send().await.unwrap();
        assert_eq!(random.plaintext.unwrap().as_ref().len(), 16);
        answered_meanwhile += 1;
    }
    for pair in pairs {
        let pair = pair.await.unwrap().unwrap();
        assert_eq!(pair.key_pair_spec, Some(DataKeyPairSpec::Rsa4096));
        assert!(pair.private_key_plaintext.is_some() && pair.public_key.is_some());
    }
    // Inline, each generation would let at most a call or two through before it; off the workers, calls are
    // answered in about a millisecond each during four RSA_4096 generations.
    assert!(answered_meanwhile >= 20, "only {answered_meanwhile} calls answered during four RSA_4096 generations");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_retries_through_injected_throttling() {
    let stack = Stack::builder()
        .faults(
            r#"{"service": "kms", "operation": "GenerateDataKey", "trigger": {"next": 2},
                "effect": {"type": "error", "code": "ThrottlingException"}}"#,
        )
        .start()
        .await
        .unwrap();
    let client = kms_client(&stack);
    let key = new_key(&client).await;
    // The SDK's default (standard) retry mode makes 3 attempts: two throttled, the third answered.
    let data_key = client.generate_data_key().key_id(&key).key_spec(DataKeySpec::Aes256).send().await.unwrap();
    assert_eq!(data_key.plaintext.unwrap().as_ref().len(), 32);
    let [rule] = <[_; 1]>::try_from(stack.faults().list()).unwrap();
    assert_eq!((rule.matched, rule.fired, rule.expired), (2, 2, true));
    let query = kms::audit::AuditQuery { fault: Some(rule.id), ..Default::default() };
    let throttled = stack.kms().audit.query(&query);
    assert_eq!(throttled.len(), 2);
    assert!(throttled.iter().all(|e| e.outcome == "ThrottlingException"));

    // Three throttled answers in a row exhaust it: the client sees AWS's error.
    stack
        .faults()
        .load(
            r#"{"service": "kms", "trigger": {"next": 3}, "effect": {"type": "error", "code": "ThrottlingException"}}"#,
        )
        .unwrap();
    assert_eq!(code(client.describe_key().key_id(&key).send().await), "ThrottlingException");
    stack.shutdown().await;
}
