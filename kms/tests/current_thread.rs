//! The KMS front ends and the in-process key service on a current-thread runtime (plain
//! `#[tokio::test]`): mutations must not need a multi-threaded runtime.

use std::sync::Arc;

use auth::Verifier;
use auth::accounts::{Accounts, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};
use auth::sdk_hmac;
use auth::sigv4::{SigningParams, UriEncoding, payload_sha256, sign};
use axum::body::Body;
use http::{Request, StatusCode};
use kms::{AwsApi, InProcessKeyService, Kms, OtcApi};
use serde_json::Value;
use shared::Caller;
use shared::caller::{DEFAULT_PROJECT_ID, DEFAULT_REGION};
use shared::key_service::KeyService;

fn aws_request(target: &str, body: &str) -> Request<Body> {
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "localhost".parse().unwrap());
    headers.insert("content-type", "application/x-amz-json-1.1".parse().unwrap());
    headers.insert("x-amz-target", format!("TrentService.{target}").parse().unwrap());
    let params = SigningParams {
        access_key_id: DEFAULT_ACCESS_KEY_ID,
        secret_access_key: DEFAULT_SECRET_ACCESS_KEY,
        region: DEFAULT_REGION,
        service: "kms",
        time: shared::time::now_unix(),
    };
    sign("POST", "/", "", &mut headers, &payload_sha256(body.as_bytes()), UriEncoding::Double, &params).unwrap();
    let mut request = Request::post("/").body(Body::from(body.to_owned())).unwrap();
    *request.headers_mut() = headers;
    request
}

async fn json_of(response: axum::response::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn default_caller() -> Caller {
    let accounts = Accounts::with_defaults();
    accounts.get(DEFAULT_ACCESS_KEY_ID).unwrap().caller(DEFAULT_REGION)
}

#[tokio::test]
async fn aws_mutations_and_reads_run_on_a_current_thread_runtime() {
    let kms = Arc::new(Kms::in_memory().unwrap());
    let api = AwsApi::new(kms.clone(), Arc::new(Verifier::new(Arc::new(Accounts::with_defaults()))));
    let (status, created) = json_of(api.handle(aws_request("CreateKey", "{}")).await).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let (status, grant) = json_of(
        api.handle(aws_request(
            "CreateGrant",
            &format!(
                r#"{{"KeyId":"{key_id}","GranteePrincipal":"arn:aws:iam::000000000000:role/r","Operations":["Decrypt"]}}"#
            ),
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let (status, encrypted) =
        json_of(api.handle(aws_request("Encrypt", &format!(r#"{{"KeyId":"{key_id}","Plaintext":"aGk="}}"#))).await)
            .await;
    assert_eq!(status, StatusCode::OK, "{encrypted}");
    let events = kms.audit.query(&Default::default());
    let operations: Vec<&str> = events.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(operations, ["CreateKey", "CreateGrant", "Encrypt"]);
    assert!(events.iter().all(|e| e.outcome == "Success"));
}

#[tokio::test]
async fn otc_create_key_runs_on_a_current_thread_runtime() {
    let kms = Arc::new(Kms::in_memory().unwrap());
    let api = OtcApi::new(kms.clone(), Arc::new(Verifier::new(Arc::new(Accounts::with_defaults()))), DEFAULT_REGION);
    let path = format!("/v1.0/{DEFAULT_PROJECT_ID}/kms/create-key");
    let body = br#"{"key_alias":"current-thread"}"#;
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "localhost".parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    let credentials =
        sdk_hmac::Credentials { access_key_id: DEFAULT_ACCESS_KEY_ID, secret_access_key: DEFAULT_SECRET_ACCESS_KEY };
    sdk_hmac::sign("POST", &path, "", &mut headers, body, credentials, shared::time::now_unix()).unwrap();
    let mut request = Request::post(path).body(Body::from(body.to_vec())).unwrap();
    *request.headers_mut() = headers;
    let (status, created) = json_of(api.handle(request).await).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert!(created["key_info"]["key_id"].is_string(), "{created}");
    let events = kms.audit.query(&Default::default());
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].operation.as_str(), events[0].outcome.as_str()), ("create-key", "Success"));
}

#[tokio::test]
async fn in_process_service_key_and_grant_run_on_a_current_thread_runtime() {
    let kms = Arc::new(Kms::in_memory().unwrap());
    let service = InProcessKeyService::new(kms.clone());
    let caller = default_caller();
    let arn = service.service_managed_key(&caller, "alias/aws/ebs").await.unwrap();
    assert_eq!(service.service_managed_key(&caller, "alias/aws/ebs").await.unwrap(), arn);
    let granted = service
        .grant_service_access(&caller, &arn, "arn:aws:iam::000000000000:role/EVSAccessKMS", "evs-test")
        .await
        .unwrap();
    assert_eq!(granted, arn);
    let record = kms.key_record(arn.rsplit('/').next().unwrap()).unwrap();
    assert_eq!(record.grants.len(), 1);
}
