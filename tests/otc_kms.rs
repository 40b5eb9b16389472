//! The OTC / Huawei Cloud KMS dialect over raw HTTP: SDK-HMAC-SHA256 verification, the dialect's error codes for
//! bad input (state unchanged, server still serving), and one key shared with the AWS dialect.

use auth::sdk_hmac::{self, Credentials};
use aws_sdk_kms::primitives::Blob;
use serde_json::{Value, json};

use crate::common::{RawResponse, kms_client, raw_request_to, stack};

const PROJECT: &str = "00000000000000000000000000000000";

/// Sends `body` to `/v1.0/{project}/kms/{verb}`, signed as Huawei's SDK signs, with `time` as X-Sdk-Date.
fn call_as(
    stack: &kmsim::Stack,
    method: &str,
    project: &str,
    verb: &str,
    body: &[u8],
    credentials: Credentials<'_>,
    time: i64,
) -> RawResponse {
    let path = format!("/v1.0/{project}/kms/{verb}");
    let mut headers = http::HeaderMap::new();
    headers.insert("host", stack.addr().to_string().parse().unwrap());
    headers.insert("content-type", "application/json;charset=UTF-8".parse().unwrap());
    headers.insert("x-project-id", project.parse().unwrap());
    sdk_hmac::sign(method, &path, "", &mut headers, body, credentials, time).unwrap();
    let head: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
    raw_request_to(stack.addr(), method, &path, &head, body)
}

const DEFAULT: Credentials<'static> = Credentials { access_key_id: "test", secret_access_key: "test" };

fn call(stack: &kmsim::Stack, verb: &str, body: &str) -> RawResponse {
    call_as(stack, "POST", PROJECT, verb, body.as_bytes(), DEFAULT, shared::time::now_unix())
}

fn ok(stack: &kmsim::Stack, verb: &str, body: Value) -> Value {
    let response = call(stack, verb, &body.to_string());
    assert_eq!(response.status, 200, "{verb} {body}: {}", response.body);
    serde_json::from_str(&response.body).unwrap()
}

/// `(status, error_code)` of an answer.
fn error_of(response: &RawResponse) -> (u16, String) {
    let body: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    let code = body["error"]["error_code"].as_str().unwrap_or_default().to_owned();
    (response.status, code)
}

fn key_count(stack: &kmsim::Stack) -> u64 {
    ok(stack, "list-keys", json!({}))["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_the_dialects_errors_and_changes_nothing() {
    let stack = stack().await;
    let key_id = ok(&stack, "create-key", json!({"key_alias": "otc-bad-input"}))["key_info"]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let data_key = ok(&stack, "create-datakey", json!({"key_id": key_id, "datakey_length": "256"}));
    let dek = hex::decode(data_key["plain_text"].as_str().unwrap()).unwrap();
    let cipher_text = data_key["cipher_text"].as_str().unwrap().to_owned();
    let mut tampered = hex::decode(&cipher_text).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mut wrong_digest = dek.clone();
    wrong_digest.extend_from_slice(&[0u8; 32]);
    let keys_before = key_count(&stack);

    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("create-key", "{not json".into(), 400, "KMS.0202"),
        ("create-key", "[1, 2]".into(), 400, "KMS.0202"),
        ("create-key", "{}".into(), 400, "KMS.0204"),
        ("create-key", json!({"key_alias": "otc-bad-input"}).to_string(), 400, "KMS.1104"),
        ("create-key", json!({"key_alias": "bad alias!"}).to_string(), 400, "KMS.1101"),
        ("create-key", json!({"key_alias": "x/default"}).to_string(), 400, "KMS.1101"),
        ("describe-key", "{}".into(), 400, "KMS.0204"),
        ("describe-key", json!({"key_id": "not a key id"}).to_string(), 400, "KMS.0205"),
        ("describe-key", json!({"key_id": "00000000-0000-0000-0000-000000000000"}).to_string(), 400, "KMS.0207"),
        ("create-datakey", json!({"key_id": key_id, "datakey_length": "7"}).to_string(), 400, "KMS.1901"),
        ("create-datakey", json!({"key_id": key_id, "datakey_length": "abc"}).to_string(), 400, "KMS.0308"),
        ("create-datakey", json!({"key_id": key_id, "key_spec": "AES_512"}).to_string(), 400, "KMS.1902"),
        (
            "encrypt-datakey",
            json!({"key_id": key_id, "plain_text": hex::encode(&wrong_digest), "datakey_plain_length": "32"})
                .to_string(),
            400,
            "KMS.2103",
        ),
        (
            "encrypt-datakey",
            json!({"key_id": key_id, "plain_text": "zz", "datakey_plain_length": "32"}).to_string(),
            400,
            "KMS.2101",
        ),
        (
            "encrypt-datakey",
            json!({"key_id": key_id, "plain_text": hex::encode(&dek), "datakey_plain_length": "32"}).to_string(),
            400,
            "KMS.2101",
        ),
        (
            "decrypt-datakey",
            json!({"key_id": key_id, "cipher_text": "xyz", "datakey_cipher_length": "32"}).to_string(),
            400,
            "KMS.2201",
        ),
        (
            "decrypt-datakey",
            json!({"key_id": key_id, "cipher_text": hex::encode(&tampered), "datakey_cipher_length": "32"}).to_string(),
            400,
            "KMS.2201",
        ),
        (
            "decrypt-datakey",
            json!({"key_id": key_id, "cipher_text": cipher_text, "datakey_cipher_length": "16"}).to_string(),
            400,
            "KMS.2202",
        ),
        (
            "decrypt-datakey",
            json!({"key_id": key_id, "cipher_text": cipher_text, "datakey_cipher_length": "32",
                   "additional_authenticated_data": "not the one used"})
            .to_string(),
            400,
            "KMS.2201",
        ),
        ("decrypt-data", json!({"cipher_text": "***"}).to_string(), 400, "KMS.0308"),
        ("gen-random", json!({"random_data_length": "12"}).to_string(), 400, "KMS.1801"),
        ("schedule-key-deletion", json!({"key_id": key_id, "pending_days": "6"}).to_string(), 400, "KMS.1401"),
        ("schedule-key-deletion", json!({"key_id": key_id, "pending_days": "1097"}).to_string(), 400, "KMS.1401"),
        ("cancel-key-deletion", json!({"key_id": key_id}).to_string(), 400, "KMS.1501"),
        ("enable-key", json!({"key_id": key_id}).to_string(), 400, "KMS.1201"),
        ("list-keys", json!({"limit": "0"}).to_string(), 400, "KMS.1601"),
        ("list-keys", json!({"marker": "-1"}).to_string(), 400, "KMS.1602"),
        (
            "update-key-rotation-interval",
            json!({"key_id": key_id, "rotation_interval": 29}).to_string(),
            400,
            "KMS.0308",
        ),
        (
            "create-grant",
            json!({"key_id": key_id, "grantee_principal": "u", "operations": ["create-grant"]}).to_string(),
            400,
            "KMS.2401",
        ),
        ("no-such-verb", "{}".into(), 404, "APIGW.0101"),
        ("create-pin", "{}".into(), 404, "APIGW.0101"),
        ("re-encrypt", "{}".into(), 400, "KMS.0204"),
        ("re-encrypt", json!({"cipher_text": "%%", "destination_key_id": key_id}).to_string(), 400, "KMS.2201"),
        ("create-ec-datakey-pair", json!({"key_id": key_id, "key_spec": "SM2"}).to_string(), 400, "KMS.0308"),
        ("rotate-on-demand", json!({"key_id": "0d0466b0-e727-4d9c-b35d-f84bb474a37f"}).to_string(), 400, "KMS.0207"),
        ("resource_instances/action", json!({"action": "list"}).to_string(), 400, "KMS.0404"),
    ];
    for (verb, body, status, code) in cases {
        let response = call(&stack, verb, &body);
        assert_eq!(error_of(&response), (status, code.to_owned()), "{verb} {body}: {}", response.body);
    }

    // Nothing above changed the state: the key is still enabled, alone, and its data key still decrypts.
    assert_eq!(key_count(&stack), keys_before);
    let described = ok(&stack, "describe-key", json!({"key_id": key_id}));
    assert_eq!(described["key_info"]["key_state"], "2");
    let decrypted = ok(
        &stack,
        "decrypt-datakey",
        json!({"key_id": key_id, "cipher_text": cipher_text, "datakey_cipher_length": "32"}),
    );
    assert_eq!(decrypted["data_key"].as_str().unwrap(), hex::encode(&dek));
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_are_verified() {
    let stack = stack().await;
    let now = shared::time::now_unix();
    let body = br#"{"random_data_length":"256"}"#;
    let good = call_as(&stack, "POST", PROJECT, "gen-random", body, DEFAULT, now);
    assert_eq!(good.status, 200, "{}", good.body);

    let wrong_secret = Credentials { access_key_id: "test", secret_access_key: "nope" };
    let unknown_key = Credentials { access_key_id: "nobody", secret_access_key: "test" };
    for (credentials, time) in
        [(wrong_secret, now), (unknown_key, now), (DEFAULT, now - 20 * 60), (DEFAULT, now + 20 * 60)]
    {
        let response = call_as(&stack, "POST", PROJECT, "gen-random", body, credentials, time);
        assert_eq!(error_of(&response), (401, "APIGW.0301".to_owned()), "{}", response.body);
    }
    let unsigned = raw_request_to(stack.addr(), "POST", &format!("/v1.0/{PROJECT}/kms/gen-random"), &[], body);
    assert_eq!(error_of(&unsigned), (401, "APIGW.0301".to_owned()), "{}", unsigned.body);

    // A body changed after signing.
    let path = format!("/v1.0/{PROJECT}/kms/gen-random");
    let mut headers = http::HeaderMap::new();
    headers.insert("host", stack.addr().to_string().parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    sdk_hmac::sign("POST", &path, "", &mut headers, body, DEFAULT, now).unwrap();
    let head: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
    let forged = raw_request_to(stack.addr(), "POST", &path, &head, br#"{"random_data_length":"512"}"#);
    assert_eq!(error_of(&forged), (401, "APIGW.0301".to_owned()), "{}", forged.body);

    // Another project than the caller's.
    let other = call_as(&stack, "POST", "0123456789abcdef0123456789abcdef", "gen-random", body, DEFAULT, now);
    assert_eq!(error_of(&other), (403, "KMS.0305".to_owned()), "{}", other.body);

    // Still serving.
    assert_eq!(call_as(&stack, "POST", PROJECT, "gen-random", body, DEFAULT, now).status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_key_serves_both_dialects() {
    let stack = stack().await;
    let aws = kms_client(&stack);
    let key = aws.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    aws.create_alias().alias_name("alias/shared").target_key_id(&key).send().await.unwrap();

    let described = ok(&stack, "describe-key", json!({"key_id": key}));
    assert_eq!(described["key_info"]["key_alias"], "shared");
    assert_eq!(described["key_info"]["domain_id"], PROJECT);

    // An OTC data key with AAD decrypts through the AWS API with the matching encryption context.
    let data_key = ok(
        &stack,
        "create-datakey",
        json!({"key_id": key, "key_spec": "AES_256", "additional_authenticated_data": "file-1"}),
    );
    let blob = hex::decode(data_key["cipher_text"].as_str().unwrap()).unwrap();
    let decrypted = aws
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .encryption_context("additional_authenticated_data", "file-1")
        .send()
        .await
        .unwrap();
    assert_eq!(hex::encode(decrypted.plaintext.unwrap().as_ref()), data_key["plain_text"].as_str().unwrap());

    // And an AWS ciphertext decrypts through the OTC API.
    let encrypted = aws.encrypt().key_id(&key).plaintext(Blob::new(vec![7u8; 32])).send().await.unwrap();
    let blob = encrypted.ciphertext_blob.unwrap().into_inner();
    let decrypted = ok(
        &stack,
        "decrypt-datakey",
        json!({"key_id": key, "cipher_text": hex::encode(&blob), "datakey_cipher_length": "32"}),
    );
    assert_eq!(decrypted["data_key"].as_str().unwrap(), hex::encode([7u8; 32]));

    // A key disabled through one dialect is disabled in the other.
    aws.disable_key().key_id(&key).send().await.unwrap();
    let refused = call(&stack, "create-datakey", &json!({"key_id": key, "datakey_length": "256"}).to_string());
    assert_eq!(error_of(&refused), (400, "KMS.0209".to_owned()), "{}", refused.body);
    ok(&stack, "enable-key", json!({"key_id": key}));
    aws.generate_data_key().key_id(&key).number_of_bytes(32).send().await.unwrap();
    ok(&stack, "schedule-key-deletion", json!({"key_id": key, "pending_days": "7"}));
    let refused = call(&stack, "create-datakey", &json!({"key_id": key, "datakey_length": "256"}).to_string());
    assert_eq!(error_of(&refused), (400, "KMS.0210".to_owned()), "{}", refused.body);
}

/// The aliases of a key, by name.
fn alias_names(stack: &kmsim::Stack, key_id: &str) -> Vec<String> {
    let path = format!("/v1.0/{PROJECT}/kms/aliases");
    let query = format!("key_id={key_id}");
    let mut headers = http::HeaderMap::new();
    headers.insert("host", stack.addr().to_string().parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    sdk_hmac::sign("GET", &path, &query, &mut headers, b"", DEFAULT, shared::time::now_unix()).unwrap();
    let head: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
    let response = raw_request_to(stack.addr(), "GET", &format!("{path}?{query}"), &head, b"");
    assert_eq!(response.status, 200, "{}", response.body);
    let body: Value = serde_json::from_str(&response.body).unwrap();
    let mut names: Vec<String> =
        body["aliases"].as_array().unwrap().iter().map(|a| a["alias"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn aliases_and_grants_keep_their_rules() {
    let stack = stack().await;
    let key_id =
        ok(&stack, "create-key", json!({"key_alias": "first"}))["key_info"]["key_id"].as_str().unwrap().to_owned();
    ok(&stack, "aliases", json!({"key_id": key_id, "alias": "alias/extra"}));

    // update-key-alias replaces the alias describe-key shows, and only that one.
    ok(&stack, "update-key-alias", json!({"key_id": key_id, "key_alias": "second"}));
    assert_eq!(ok(&stack, "describe-key", json!({"key_id": key_id}))["key_info"]["key_alias"], "second");
    assert_eq!(alias_names(&stack, &key_id), ["alias/extra", "alias/second"]);

    // Deleting aliases checks them all first: a request naming another key's alias deletes none.
    let other =
        ok(&stack, "create-key", json!({"key_alias": "other"}))["key_info"]["key_id"].as_str().unwrap().to_owned();
    let body = json!({"key_id": key_id, "aliases": ["alias/extra", "alias/other"]}).to_string();
    let refused = call_as(&stack, "DELETE", PROJECT, "aliases", body.as_bytes(), DEFAULT, shared::time::now_unix());
    assert_eq!(error_of(&refused), (400, "KMS.0308".to_owned()), "{}", refused.body);
    assert_eq!(alias_names(&stack, &key_id), ["alias/extra", "alias/second"]);
    assert_eq!(alias_names(&stack, &other), ["alias/other"]);

    // The services' default aliases are theirs.
    for alias in ["alias/obs/default", "alias/evs/default"] {
        let refused = call(&stack, "aliases", &json!({"key_id": key_id, "alias": alias}).to_string());
        assert_eq!(error_of(&refused), (400, "KMS.1101".to_owned()), "{alias}: {}", refused.body);
    }

    // Unknown grant on a known key: KMS.2501; unknown key: KMS.0207.
    let unknown_grant = json!({"key_id": key_id, "grant_id": "0".repeat(64)}).to_string();
    assert_eq!(error_of(&call(&stack, "revoke-grant", &unknown_grant)), (400, "KMS.2501".to_owned()));
    assert_eq!(error_of(&call(&stack, "retire-grant", &unknown_grant)), (400, "KMS.2501".to_owned()));
    let unknown_key = json!({"key_id": "00000000-0000-0000-0000-000000000000", "grant_id": "0".repeat(64)}).to_string();
    assert_eq!(error_of(&call(&stack, "revoke-grant", &unknown_key)), (400, "KMS.0207".to_owned()));
}
