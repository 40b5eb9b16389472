//! Bad input to the KMS over raw HTTP: each gets the AWS error, the state is unchanged, and the
//! server keeps serving.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::common::{RawResponse, kms_raw, raw_request, stack};

/// Sends `body` to `target` with the default credentials.
fn call(stack: &kmsim::Stack, target: &str, body: &str) -> RawResponse {
    kms_raw(stack.addr(), target, body.as_bytes(), "test", "test")
}

fn check(stack: &kmsim::Stack, target: &str, body: &str, status: u16, error: &str, message_has: &str) {
    let response = call(stack, target, body);
    assert_eq!(
        (response.status, response.error_type().as_str()),
        (status, error),
        "{target} {body}: {}",
        response.body
    );
    assert!(response.body.contains(message_has), "{target} {body}: {} lacks {message_has:?}", response.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_aws_errors_and_change_nothing() {
    let stack = stack().await;
    let created = call(&stack, "CreateKey", "{}");
    assert_eq!(created.status, 200, "{}", created.body);
    let key_id = serde_json::from_str::<serde_json::Value>(&created.body).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        ("CreateKey", "{not json".into(), 400, "SerializationException", ""),
        ("Encrypt", r#"{"KeyId": 5}"#.into(), 400, "SerializationException", ""),
        ("NoSuchOperation", "{}".into(), 400, "UnknownOperationException", ""),
        ("Encrypt", r#"{"Plaintext":"aGk="}"#.into(), 400, "ValidationException", "keyId"),
        ("Encrypt", format!(r#"{{"KeyId":"{key_id}"}}"#), 400, "ValidationException", "plaintext"),
        ("Encrypt", format!(r#"{{"KeyId":"{key_id}","Plaintext":"***"}}"#), 400, "SerializationException", "base64"),
        ("Decrypt", r#"{"CiphertextBlob":"AAAA"}"#.into(), 400, "InvalidCiphertextException", ""),
        ("Decrypt", "{}".into(), 400, "ValidationException", "ciphertextBlob"),
        (
            "ScheduleKeyDeletion",
            format!(r#"{{"KeyId":"{key_id}","PendingWindowInDays":1}}"#),
            400,
            "ValidationException",
            "pendingWindowInDays",
        ),
        ("ListKeys", r#"{"Limit":0}"#.into(), 400, "ValidationException", "limit"),
        ("ListKeys", r#"{"Marker":"zz"}"#.into(), 400, "InvalidMarkerException", ""),
        (
            "DescribeKey",
            r#"{"KeyId":"arn:aws:kms:us-east-1:000000000000:nothing"}"#.into(),
            400,
            "NotFoundException",
            "",
        ),
        ("CreateKey", r#"{"KeySpec":"RSA_2048"}"#.into(), 400, "ValidationException", "KeyUsage"),
        (
            "CreateKey",
            r#"{"KeySpec":"HMAC_256","KeyUsage":"SIGN_VERIFY"}"#.into(),
            400,
            "ValidationException",
            "not compatible",
        ),
        ("CreateKey", r#"{"KeySpec":"RSA_1024","KeyUsage":"SIGN_VERIFY"}"#.into(), 400, "ValidationException", "enum"),
        ("Sign", "{}".into(), 400, "ValidationException", "keyId"),
        (
            "Sign",
            format!(r#"{{"KeyId":"{key_id}","Message":"aGk=","SigningAlgorithm":"ECDSA_SHA_256"}}"#),
            400,
            "InvalidKeyUsageException",
            "key usage is ENCRYPT_DECRYPT",
        ),
        ("CreateCustomKeyStore", "{}".into(), 400, "UnsupportedOperationException", "api-coverage"),
        (
            "ImportKeyMaterial",
            format!(
                r#"{{"KeyId":"{key_id}","ImportToken":"aGk=","EncryptedKeyMaterial":"aGk=","ExpirationModel":"KEY_MATERIAL_DOES_NOT_EXPIRE","KeyMaterialId":"{}"}}"#,
                "a".repeat(63)
            ),
            400,
            "ValidationException",
            "length greater than or equal to 64",
        ),
        (
            "CreateAlias",
            format!(r#"{{"AliasName":"no-prefix","TargetKeyId":"{key_id}"}}"#),
            400,
            "ValidationException",
            "Alias must start with the prefix",
        ),
        (
            "TagResource",
            format!(r#"{{"KeyId":"{key_id}","Tags":[{{"TagKey":"aws:x","TagValue":"y"}}]}}"#),
            400,
            "TagException",
            "",
        ),
        (
            "CreateGrant",
            format!(r#"{{"KeyId":"{key_id}","GranteePrincipal":"p","Operations":["Fly"]}}"#),
            400,
            "ValidationException",
            "operations",
        ),
        (
            "GenerateDataKey",
            format!(r#"{{"KeyId":"{key_id}","KeySpec":"AES_512"}}"#),
            400,
            "ValidationException",
            "keySpec",
        ),
        (
            "Encrypt",
            format!(r#"{{"KeyId":"{key_id}","Plaintext":"aGk=","DryRun":true}}"#),
            412,
            "DryRunOperationException",
            "",
        ),
    ];
    for (target, body, status, error, message) in &cases {
        check(&stack, target, body, *status, error, message);
    }
    // Nothing above changed the state: still one key, enabled, no aliases, no tags, no grants.
    let keys = call(&stack, "ListKeys", "{}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&keys.body).unwrap()["Keys"].as_array().unwrap().len(), 1);
    let aliases = call(&stack, "ListAliases", "{}");
    assert!(aliases.body.contains(r#""Aliases":[]"#), "{}", aliases.body);
    let tags = call(&stack, "ListResourceTags", &format!(r#"{{"KeyId":"{key_id}"}}"#));
    assert!(tags.body.contains(r#""Tags":[]"#), "{}", tags.body);
    let grants = call(&stack, "ListGrants", &format!(r#"{{"KeyId":"{key_id}"}}"#));
    assert!(grants.body.contains(r#""Grants":[]"#), "{}", grants.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_bodies_and_bad_signatures_are_refused() {
    let stack = stack().await;
    let huge = format!(r#"{{"Description":"{}"}}"#, "x".repeat(1024 * 1024 + 1));
    let response = call(&stack, "CreateKey", &huge);
    assert_eq!(response.status, 413, "{}", response.body);
    let wrong = kms_raw(stack.addr(), "ListKeys", b"{}", "test", "wrong");
    assert_eq!((wrong.status, wrong.error_type().as_str()), (400, "InvalidSignatureException"));
    let unknown = kms_raw(stack.addr(), "ListKeys", b"{}", "nobody", "test");
    assert_eq!(unknown.error_type(), "UnrecognizedClientException");
    let head = vec![
        ("host".to_owned(), stack.addr().to_string()),
        ("x-amz-target".to_owned(), "TrentService.ListKeys".to_owned()),
    ];
    let unsigned = raw_request(stack.addr(), &head, "POST", b"{}");
    assert_eq!(unsigned.error_type(), "MissingAuthenticationTokenException");
    let mut garbled = head.clone();
    garbled.push(("authorization".into(), "AWS4-HMAC-SHA256 Credential=test/2020".into()));
    assert_eq!(raw_request(stack.addr(), &garbled, "POST", b"{}").error_type(), "IncompleteSignatureException");
    let mut stale = head.clone();
    stale.push(("x-amz-date".into(), "20200101T000000Z".into()));
    stale.push((
        "authorization".into(),
        format!("AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature={}", "0".repeat(64)),
    ));
    let response = raw_request(stack.addr(), &stale, "POST", b"{}");
    assert_eq!(response.error_type(), "InvalidSignatureException");
    assert!(response.body.contains("Signature expired"), "{}", response.body);
    assert_eq!(call(&stack, "ListKeys", "{}").status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bit_flip_of_a_blob_is_refused_over_the_wire() {
    let stack = stack().await;
    let created = call(&stack, "CreateKey", "{}");
    let key_id = serde_json::from_str::<serde_json::Value>(&created.body).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let encrypted = call(&stack, "Encrypt", &format!(r#"{{"KeyId":"{key_id}","Plaintext":"aGVsbG8="}}"#));
    let blob_b64 = serde_json::from_str::<serde_json::Value>(&encrypted.body).unwrap()["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob = BASE64.decode(&blob_b64).unwrap();
    // Through the core: every bit (the wire adds nothing but base64); a sample over HTTP.
    let caller = auth::AccessKey::new("test", "test", "000000000000", None).caller("us-east-1");
    for bit in 0..blob.len() * 8 {
        let mut flipped = blob.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let result = stack.kms().decrypt(
            &caller,
            &flipped,
            &Default::default(),
            None,
            kms::spec::EncryptionAlgorithm::SymmetricDefault,
        );
        assert!(matches!(result, Err(kms::Error::InvalidCiphertext(_))), "bit {bit}: {result:?}");
    }
    for bit in (0..blob.len() * 8).step_by(97) {
        let mut flipped = blob.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let response = call(&stack, "Decrypt", &format!(r#"{{"CiphertextBlob":"{}"}}"#, BASE64.encode(&flipped)));
        assert_eq!(response.error_type(), "InvalidCiphertextException", "bit {bit}");
    }
    let ok = call(&stack, "Decrypt", &format!(r#"{{"CiphertextBlob":"{blob_b64}"}}"#));
    assert!(ok.body.contains("aGVsbG8="), "{}", ok.body);
}
