//! The AWS KMS front end: JSON 1.1 over `POST /` with `X-Amz-Target: TrentService.<Op>`,
//! signed with SigV4 (service `kms`).
//!
//! [`AwsApi::handle`] authenticates, parses the target into a [`KmsOperation`] and the body into the operation's
//! request type, calls the [`Kms`] core, renders the response and records the call in the audit log. Errors reach the
//! wire in exactly one place, [`ApiError::into_response`], as AWS sends them: HTTP 400 (500 for
//! ours) with `{"__type": "<Exception>", "message": "..."}`.

use std::borrow::Cow;
use std::sync::Arc;

use auth::sigv4::{self, UriEncoding};
use auth::{AuthError, RequestParts, Verifier};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use faults::{Fired, InjectedError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::entropy::{Entropy, Purpose};
use shared::{Api, Caller, Peer, RequestContext};

use crate::blob::EncryptionContext;
use crate::blocking;
use crate::crypto::SignInput;
use crate::error::Error;
use crate::model::*;
use crate::service::*;
use crate::spec::{
    EncryptionAlgorithm, KeySpec, KeyUsage, MacAlgorithm, MessageType, SigningAlgorithm, check_spec_and_usage,
    parse_key_pair_spec,
};

pub mod operation;

pub use operation::{KmsOperation, TARGET_PREFIX};

/// Largest request body the KMS accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Longest `ImportToken` and `EncryptedKeyMaterial` ImportKeyMaterial takes, in bytes.
const MAX_IMPORT_BLOB: usize = 6144;

/// An error on its way to the wire.
#[derive(Debug)]
pub enum ApiError {
    /// From the core.
    Kms(Error),
    /// The body is not the JSON the operation expects.
    Serialization(String),
    /// No such operation.
    UnknownOperation,
    /// The signature was refused.
    Auth(AuthError),
    /// The body exceeds [`MAX_BODY_BYTES`].
    TooLarge,
    /// An error a fault rule injected (`/_sim/faults`).
    Injected(InjectedError),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Kms(e)
    }
}

impl ApiError {
    /// The `__type` sent to the client (also the audit outcome).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Kms(e) => error_code(e),
            ApiError::Injected(e) => e.code,
            ApiError::Serialization(_) => "SerializationException",
            ApiError::UnknownOperation => "UnknownOperationException",
            ApiError::TooLarge => "ValidationException",
            ApiError::Auth(e) => match e {
                AuthError::Missing => "MissingAuthenticationTokenException",
                AuthError::Malformed(_) => "IncompleteSignatureException",
                AuthError::UnknownAccessKey | AuthError::InvalidToken => "UnrecognizedClientException",
                AuthError::ExpiredToken => "ExpiredTokenException",
                AuthError::BadScope(_)
                | AuthError::Skewed { .. }
                | AuthError::Expired { .. }
                | AuthError::PayloadHashMismatch
                | AuthError::SignatureMismatch { .. } => "InvalidSignatureException",
            },
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Kms(Error::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Kms(Error::DryRun) => StatusCode::PRECONDITION_FAILED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Injected(e) => StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Kms(Error::Internal(_)) => "An internal error occurred.".into(),
            ApiError::Kms(e) => e.to_string(),
            ApiError::Serialization(m) => m.clone(),
            ApiError::Injected(e) => e.message.clone(),
            ApiError::UnknownOperation => String::new(),
            ApiError::TooLarge => format!("Request body must be at most {MAX_BODY_BYTES} bytes"),
            ApiError::Auth(e) => match e {
                AuthError::Missing => "Missing Authentication Token".into(),
                AuthError::UnknownAccessKey | AuthError::InvalidToken => {
                    "The security token included in the request is invalid.".into()
                }
                AuthError::ExpiredToken => "The security token included in the request is expired".into(),
                AuthError::Skewed { request_time, server_time } => {
                    format!("Signature expired: {request_time} is now earlier or later than {server_time} by more than 15 min.")
                }
                AuthError::Expired { .. } => "Signature expired.".into(),
                AuthError::SignatureMismatch { .. } | AuthError::PayloadHashMismatch => {
                    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into()
                }
                AuthError::Malformed(m) | AuthError::BadScope(m) => m.clone(),
            },
        }
    }

    /// The error as AWS sends it.
    /// An internal error is logged here, once, with the request id the client sees.
    pub fn into_response(self, entropy: &Entropy) -> Response {
        let body = json!({"__type": self.code(), "message": self.message()});
        let response = json_response(self.status(), body.to_string().into_bytes(), entropy);
        if let ApiError::Kms(Error::Internal(detail)) = &self {
            let request_id = response.headers().get("x-amzn-requestid").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::error!(%detail, %request_id, "internal error in the KMS");
        }
        response
    }
}

/// The AWS exception name of a core error (also its audit outcome).
pub fn error_code(error: &Error) -> &'static str {
    match error {
        Error::NotFound(_) => "NotFoundException",
        Error::Disabled(_) => "DisabledException",
        Error::InvalidState(_) => "KMSInvalidStateException",
        Error::InvalidCiphertext(_) => "InvalidCiphertextException",
        Error::IncorrectKey(_) => "IncorrectKeyException",
        Error::InvalidSignature(_) => "KMSInvalidSignatureException",
        Error::InvalidMac(_) => "KMSInvalidMacException",
        Error::InvalidImportToken(_) => "InvalidImportTokenException",
        Error::ExpiredImportToken(_) => "ExpiredImportTokenException",
        Error::IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
        Error::Validation(_) => "ValidationException",
        Error::InvalidKeyUsage(_) => "InvalidKeyUsageException",
        Error::AlreadyExists(_) => "AlreadyExistsException",
        Error::InvalidAliasName(_) => "InvalidAliasNameException",
        Error::InvalidArn(_) => "InvalidArnException",
        Error::LimitExceeded(_) => "LimitExceededException",
        Error::Tag(_) => "TagException",
        Error::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
        Error::UnsupportedOperation(_) => "UnsupportedOperationException",
        Error::InvalidGrantToken(_) => "InvalidGrantTokenException",
        Error::InvalidGrantId(_) => "InvalidGrantIdException",
        Error::InvalidMarker(_) => "InvalidMarkerException",
        Error::AccessDenied(_) => "AccessDeniedException",
        Error::DryRun => "DryRunOperationException",
        Error::Internal(_) => "KMSInternalException",
    }
}

fn json_response(status: StatusCode, body: Vec<u8>, entropy: &Entropy) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response.headers_mut().insert("x-amzn-requestid", request_id(entropy));
    response
}

/// A fresh request id (from the OS: the thread's CSPRNG, no syscall per request).
fn request_id(entropy: &Entropy) -> HeaderValue {
    let id = entropy.uuid(Purpose::RequestId);
    HeaderValue::from_str(&id.to_string()).expect("a UUID is a valid header value")
}

/// The AWS KMS JSON API over a [`Kms`].
#[derive(Debug, Clone)]
pub struct AwsApi {
    kms: Arc<Kms>,
    verifier: Arc<Verifier>,
}

/// What a call tells the audit log besides its outcome.
#[derive(Debug, Default)]
struct Audit {
    key_arn: Option<String>,
    context: Option<EncryptionContext>,
}

impl AwsApi {
    /// A front end for `kms`, checking signatures with `verifier`.
    pub fn new(kms: Arc<Kms>, verifier: Arc<Verifier>) -> Self {
        AwsApi { kms, verifier }
    }

    /// The core behind this front end.
    pub fn kms(&self) -> &Arc<Kms> {
        &self.kms
    }

    /// Whether a request is for this front end (`X-Amz-Target: TrentService.*`).
    pub fn accepts(headers: &HeaderMap) -> bool {
        headers.get("x-amz-target").is_some_and(|t| t.as_bytes().starts_with(TARGET_PREFIX.as_bytes()))
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(_) => return ApiError::TooLarge.into_response(&self.kms.entropy),
        };
        let query = parts.uri.query().unwrap_or("");
        let request_parts =
            RequestParts { method: parts.method.as_str(), path: parts.uri.path(), query, headers: &parts.headers };
        let payload_hash = sigv4::payload_sha256(&body);
        let caller = match self.verifier.verify_sigv4(
            &request_parts,
            &payload_hash,
            "kms",
            UriEncoding::Double,
            shared::time::now_unix(),
        ) {
            Ok(verified) => verified.caller,
            Err(e) => return ApiError::Auth(e).into_response(&self.kms.entropy),
        };
        let target = parts.headers.get("x-amz-target").and_then(|t| t.to_str().ok()).unwrap_or("");
        let Some(operation) = KmsOperation::parse(target) else {
            return ApiError::UnknownOperation.into_response(&self.kms.entropy);
        };
        let peer = parts.extensions.get::<Peer>().copied();
        let caller = Caller { peer, ..caller };
        let mut context = RequestContext::new(caller, peer, Api::AwsKms, operation.name(), operation.action());
        let fired = self.fault(&context, &body);
        context.fault = fired.as_ref().map(|f| f.rule);
        faults::http::delay_before(fired.as_ref()).await;
        // An injected error wins; else the call counts against its request quota (`--quotas aws`).
        let refusal = fired.as_ref().and_then(|f| f.error.clone()).or_else(|| self.quota(&context, &body));
        if let Some(refusal) = refusal {
            let error = ApiError::Injected(refusal);
            self.kms.record_call(&context, Named::of(&body).key, None, error.code());
            return error.into_response(&self.kms.entropy);
        }
        let off_workers = operation.is_mutation() || operation.generates_keys();
        let (result, context, audit) = if operation.is_supported() && off_workers {
            // Mutations fsync and RSA key generations take up to seconds: run them on the blocking pool, which works
            // under both runtime flavours (unlike `block_in_place`). Reads stay inline: no thread hop on the hot path.
            let (kms, fallback_context) = (self.kms.clone(), context.clone());
            blocking::run(operation.generates_keys(), move || {
                let mut audit = Audit::default();
                let result = dispatch(&kms, &context, operation, &body, &mut audit);
                (result, context, audit)
            })
            .await
            .unwrap_or_else(|e| {
                let error = ApiError::Kms(Error::Internal(format!("the {operation} task failed: {e}")));
                (Err(error), fallback_context, Audit::default())
            })
        } else {
            let mut audit = Audit::default();
            let result = dispatch(&self.kms, &context, operation, &body, &mut audit);
            (result, context, audit)
        };
        let outcome = match &result {
            Ok(_) => "Success",
            Err(e) => e.code(),
        };
        let encryption_context = audit.context.filter(|c| !c.is_empty());
        self.kms.record_call(&context, audit.key_arn, encryption_context, outcome);
        let response = match result {
            Ok(body) => json_response(StatusCode::OK, body, &self.kms.entropy),
            Err(e) => e.into_response(&self.kms.entropy),
        };
        faults::http::finish(fired.as_ref(), response).await
    }

    /// The fault rules that fire on this call (read from its body only when some KMS rule is held).
    fn fault(&self, context: &RequestContext, body: &[u8]) -> Option<Fired> {
        if !self.kms.faults.active(faults::Service::Kms) {
            return None;
        }
        let named = Named::of(body);
        self.kms.fault(context, "aws", named.key.as_deref(), named.blob.as_deref())
    }

    /// The throttling error of this call's request quota, when quotas are enforced and it is over (its body read
    /// only then).
    fn quota(&self, context: &RequestContext, body: &[u8]) -> Option<InjectedError> {
        if !self.kms.faults.quotas.enabled() {
            return None;
        }
        let named = Named::of(body);
        self.kms.quota(context, named.key.as_deref(), named.blob.as_deref(), named.key_pair_spec.as_deref())
    }
}

/// What a request body names that fault rules filter on and quotas count by: the key (`KeyId`, or `SourceKeyId`
/// for ReEncrypt), or else its ciphertext blob; and a data key pair's `KeyPairSpec`.
#[derive(Debug, Default)]
struct Named {
    key: Option<String>,
    blob: Option<Vec<u8>>,
    key_pair_spec: Option<String>,
}

impl Named {
    /// What `body` names; nothing for a body that is not the JSON of a request.
    fn of(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Fields {
            key_id: Option<String>,
            source_key_id: Option<String>,
            ciphertext_blob: Option<String>,
            key_pair_spec: Option<String>,
        }
        let Ok(fields) = serde_json::from_slice::<Fields>(body) else {
            return Named::default();
        };
        Named {
            key: fields.key_id.or(fields.source_key_id),
            blob: fields.ciphertext_blob.and_then(|b| BASE64.decode(b).ok()),
            key_pair_spec: fields.key_pair_spec,
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::Serialization(format!("Could not parse the request body: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::Kms(Error::Internal(format!("encoding a response: {e}"))))
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        ApiError::Kms(Error::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        )))
    })
}

fn base64_field(value: &str, field: &str) -> Result<Vec<u8>, ApiError> {
    BASE64.decode(value).map_err(|_| ApiError::Serialization(format!("Value of '{field}' is not valid base64")))
}

fn limit(value: Option<i64>, max: i64, default: i64) -> Result<usize, ApiError> {
    let value = value.unwrap_or(default);
    if !(1..=max).contains(&value) {
        return Err(ApiError::Kms(Error::Validation(format!(
            "1 validation error detected: Value '{value}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {max}"
        ))));
    }
    Ok(value as usize)
}

/// An `EncryptionAlgorithm` field (default `SYMMETRIC_DEFAULT`).
fn encryption_algorithm(value: Option<&str>, field: &str) -> Result<EncryptionAlgorithm, ApiError> {
    match value {
        None => Ok(EncryptionAlgorithm::SymmetricDefault),
        Some(name) => EncryptionAlgorithm::parse(name).map_err(|_| {
            ApiError::Kms(crate::spec::enum_error(
                name,
                field,
                &EncryptionAlgorithm::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            ))
        }),
    }
}

/// A required base64 blob field.
fn blob_field(value: Option<Cow<'_, str>>, field: &str, name: &str) -> Result<Vec<u8>, ApiError> {
    base64_field(&required(value, field)?, name)
}

fn dry_run(flag: Option<bool>) -> Result<(), ApiError> {
    if flag == Some(true) { Err(ApiError::Kms(Error::DryRun)) } else { Ok(()) }
}

// ---- request shapes ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdRequest {
    key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetPublicKeyRequest {
    key_id: Option<String>,
    #[serde(default)]
    grant_tokens: Vec<String>,
}

#[derive(Deserialize)]
struct TagShape {
    #[serde(rename = "TagKey")]
    key: Option<String>,
    #[serde(rename = "TagValue")]
    value: Option<String>,
}

fn tags(shapes: Vec<TagShape>) -> Result<Vec<Tag>, ApiError> {
    shapes
        .into_iter()
        .map(|t| Ok(Tag { key: required(t.key, "tagKey")?, value: required(t.value, "tagValue")? }))
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyRequest {
    description: Option<String>,
    policy: Option<String>,
    key_usage: Option<String>,
    key_spec: Option<String>,
    customer_master_key_spec: Option<String>,
    origin: Option<String>,
    custom_key_store_id: Option<String>,
    multi_region: Option<bool>,
    #[serde(default)]
    tags: Vec<TagShape>,
    bypass_policy_lockout_safety_check: Option<bool>,
    #[serde(rename = "XksKeyId")]
    xks_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRequest {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateKeyDescriptionRequest {
    key_id: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleKeyDeletionRequest {
    key_id: Option<String>,
    pending_window_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasRequest {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptRequest<'a> {
    key_id: Option<String>,
    #[serde(borrow)]
    plaintext: Option<Cow<'a, str>>,
    #[serde(default)]
    encryption_context: EncryptionContext,
    #[serde(default)]
    grant_tokens: Vec<String>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptRequest<'a> {
    #[serde(borrow)]
    ciphertext_blob: Option<Cow<'a, str>>,
    #[serde(default)]
    encryption_context: EncryptionContext,
    #[serde(default)]
    grant_tokens: Vec<String>,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptRequest<'a> {
    #[serde(borrow)]
    ciphertext_blob: Option<Cow<'a, str>>,
    #[serde(default)]
    source_encryption_context: EncryptionContext,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
    #[serde(default)]
    destination_encryption_context: EncryptionContext,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
    #[serde(default)]
    grant_tokens: Vec<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyRequest {
    key_id: Option<String>,
    key_spec: Option<String>,
    number_of_bytes: Option<i64>,
    #[serde(default)]
    encryption_context: EncryptionContext,
    #[serde(default)]
    grant_tokens: Vec<String>,
    dry_run: Option<bool>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateRandomRequest {
    number_of_bytes: Option<i64>,
    custom_key_store_id: Option<String>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnableKeyRotationRequest {
    key_id: Option<String>,
    rotation_period_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceRequest {
    key_id: Option<String>,
    tags: Option<Vec<TagShape>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceRequest {
    key_id: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyPolicyRequest {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GrantConstraintsShape {
    encryption_context_equals: Option<EncryptionContext>,
    encryption_context_subset: Option<EncryptionContext>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateGrantRequest {
    key_id: Option<String>,
    grantee_principal: Option<String>,
    retiring_principal: Option<String>,
    operations: Option<Vec<String>>,
    constraints: Option<GrantConstraintsShape>,
    #[serde(default)]
    grant_tokens: Vec<String>,
    name: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListGrantsRequest {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
    grant_id: Option<String>,
    grantee_principal: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRetirableGrantsRequest {
    retiring_principal: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GrantIdRequest {
    grant_token: Option<String>,
    key_id: Option<String>,
    grant_id: Option<String>,
    dry_run: Option<bool>,
}

// ---- response shapes ---------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataKeyResponse {
    ciphertext_blob: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SignRequest<'a> {
    key_id: Option<String>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    message_type: Option<String>,
    signing_algorithm: Option<String>,
    #[serde(borrow)]
    signature: Option<Cow<'a, str>>,
    #[serde(default)]
    grant_tokens: Vec<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MacRequest<'a> {
    key_id: Option<String>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    mac_algorithm: Option<String>,
    #[serde(borrow)]
    mac: Option<Cow<'a, str>>,
    #[serde(default)]
    grant_tokens: Vec<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyPairRequest {
    key_id: Option<String>,
    key_pair_spec: Option<String>,
    #[serde(default)]
    encryption_context: EncryptionContext,
    #[serde(default)]
    grant_tokens: Vec<String>,
    dry_run: Option<bool>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeriveSharedSecretRequest<'a> {
    key_id: Option<String>,
    key_agreement_algorithm: Option<String>,
    #[serde(borrow)]
    public_key: Option<Cow<'a, str>>,
    #[serde(default)]
    grant_tokens: Vec<String>,
    dry_run: Option<bool>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetParametersForImportRequest {
    key_id: Option<String>,
    wrapping_algorithm: Option<String>,
    wrapping_key_spec: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImportKeyMaterialRequest<'a> {
    key_id: Option<String>,
    #[serde(borrow)]
    import_token: Option<Cow<'a, str>>,
    #[serde(borrow)]
    encrypted_key_material: Option<Cow<'a, str>>,
    valid_to: Option<f64>,
    expiration_model: Option<String>,
    import_type: Option<String>,
    key_material_description: Option<String>,
    key_material_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListKeyRotationsRequest {
    key_id: Option<String>,
    include_key_material: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteImportedKeyMaterialRequest {
    key_id: Option<String>,
    key_material_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReplicateKeyRequest {
    key_id: Option<String>,
    replica_region: Option<String>,
    description: Option<String>,
    policy: Option<String>,
    #[serde(default)]
    tags: Vec<TagShape>,
    bypass_policy_lockout_safety_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdatePrimaryRegionRequest {
    key_id: Option<String>,
    primary_region: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptResponse {
    ciphertext_blob: String,
    key_id: String,
    encryption_algorithm: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptResponse {
    key_id: String,
    plaintext: String,
    encryption_algorithm: &'static str,
}

/// `KeyMetadata` as AWS renders it.
pub fn key_metadata(record: &KeyRecord) -> Value {
    let mut meta = json!({
        "AWSAccountId": record.account,
        "KeyId": record.id,
        "Arn": record.arn(),
        "CreationDate": record.created,
        "Enabled": record.state == KeyState::Enabled,
        "Description": record.description,
        "KeyUsage": record.usage.as_str(),
        "KeyState": record.state.as_str(),
        "Origin": record.origin.as_str(),
        "KeyManager": match record.manager { KeyManager::Customer => "CUSTOMER", KeyManager::Aws => "AWS" },
        "CustomerMasterKeySpec": record.spec.as_str(),
        "KeySpec": record.spec.as_str(),
        "MultiRegion": record.multi_region.is_some(),
    });
    algorithm_lists(&mut meta, record.spec, record.usage);
    // The current material's expiry (an imported key's), and its id (a symmetric key's).
    if let Some(imported) = record.versions.last().filter(|v| v.has_material()).and_then(|v| v.imported.as_ref()) {
        meta["ExpirationModel"] =
            json!(if imported.valid_to.is_some() { "KEY_MATERIAL_EXPIRES" } else { "KEY_MATERIAL_DOES_NOT_EXPIRE" });
        if let Some(valid_to) = imported.valid_to {
            meta["ValidTo"] = json!(valid_to);
        }
    }
    if record.spec == KeySpec::SymmetricDefault
        && let Some(current) = record.versions.len().checked_sub(1)
    {
        meta["CurrentKeyMaterialId"] = json!(material_id(record, &record.versions[current], current));
    }
    if let Some(multi_region) = &record.multi_region {
        let arn = |region: &str| key_arn(region, &record.account, &record.id);
        let primary = &multi_region.primary_region;
        meta["MultiRegionConfiguration"] = json!({
            "MultiRegionKeyType": if *primary == record.region { "PRIMARY" } else { "REPLICA" },
            "PrimaryKey": {"Arn": arn(primary), "Region": primary},
            "ReplicaKeys": multi_region.replica_regions.iter().map(|r| json!({"Arn": arn(r), "Region": r})).collect::<Vec<_>>(),
        });
    }
    if let Some(date) = record.deletion_date {
        meta["DeletionDate"] = json!(date);
    }
    meta
}

/// The algorithm lists of a key of `spec` and `usage`, as DescribeKey and GetPublicKey show them: only those that
/// apply.
fn algorithm_lists(out: &mut Value, spec: KeySpec, usage: KeyUsage) {
    let encryption: Vec<&str> = spec.encryption_algorithms(usage).iter().map(|a| a.as_str()).collect();
    let signing: Vec<&str> = spec.signing_algorithms(usage).iter().map(|a| a.as_str()).collect();
    let mac: Vec<&str> = if usage == KeyUsage::GenerateVerifyMac {
        spec.mac_algorithms().iter().map(|a| a.as_str()).collect()
    } else {
        vec![]
    };
    let agreement = spec.key_agreement_algorithms(usage);
    for (field, list) in [
        ("EncryptionAlgorithms", encryption),
        ("SigningAlgorithms", signing),
        ("MacAlgorithms", mac),
        ("KeyAgreementAlgorithms", agreement.to_vec()),
    ] {
        if !list.is_empty() {
            out[field] = json!(list);
        }
    }
}

fn grant_json(grant: &Grant, key_arn: &str) -> Value {
    let mut value = json!({
        "KeyId": key_arn,
        "GrantId": grant.grant_id,
        "CreationDate": grant.created,
        "GranteePrincipal": grant.grantee_principal,
        "IssuingAccount": grant.issuing_account,
        "Operations": grant.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
    });
    if let Some(name) = &grant.name {
        value["Name"] = json!(name);
    }
    if let Some(p) = &grant.retiring_principal {
        value["RetiringPrincipal"] = json!(p);
    }
    if let Some(c) = &grant.constraints {
        let mut constraints = json!({});
        if let Some(eq) = &c.encryption_context_equals {
            constraints["EncryptionContextEquals"] = json!(eq);
        }
        if let Some(sub) = &c.encryption_context_subset {
            constraints["EncryptionContextSubset"] = json!(sub);
        }
        value["Constraints"] = constraints;
    }
    value
}

fn page_json(mut body: Value, next_marker: Option<String>) -> Value {
    body["Truncated"] = json!(next_marker.is_some());
    if let Some(marker) = next_marker {
        body["NextMarker"] = json!(marker);
    }
    body
}

// ---- dispatch ----------------------------------------------------------------------------------

/// Runs one operation: a `match` on [`KmsOperation`], one arm per implemented operation (or group of operations
/// sharing a request shape); the operations kmsim does not implement answer UnsupportedOperationException.
fn dispatch(
    kms: &Kms,
    context: &RequestContext,
    operation: KmsOperation,
    body: &[u8],
    audit: &mut Audit,
) -> Result<Vec<u8>, ApiError> {
    use KmsOperation as Op;
    let caller = &context.caller;
    if !operation.is_supported() {
        return Err(not_implemented(operation));
    }
    // What acts on no key in particular (CreateKey, ListKeys, GenerateRandom, ...) is the caller's identity
    // policies' to allow; what acts on a key is decided with the key's policy, in the core.
    if operation.resource_kind() == crate::operation::ResourceKind::Account {
        kms.authorize_account(caller, operation.action())?;
    }
    let value = match operation {
        Op::GenerateDataKey | Op::GenerateDataKeyWithoutPlaintext => {
            let with_plaintext = operation == Op::GenerateDataKey;
            let req: GenerateDataKeyRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            audit.context = Some(req.encryption_context.clone());
            kms.check_grant_tokens(&req.grant_tokens)?;
            if req.recipient.is_some() {
                return Err(Error::UnsupportedOperation(
                    "kmsim does not support Recipient (Nitro Enclaves attestation).".into(),
                )
                .into());
            }
            let bytes = match (req.key_spec.as_deref(), req.number_of_bytes) {
                (Some(_), Some(_)) => {
                    return Err(Error::Validation("Please specify either number of bytes or key spec.".into()).into());
                }
                (None, None) => {
                    return Err(Error::Validation("Please specify either number of bytes or key spec.".into()).into());
                }
                (Some("AES_256"), None) => 32,
                (Some("AES_128"), None) => 16,
                (Some(other), None) => {
                    return Err(Error::Validation(format!(
                        "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
                    ))
                    .into());
                }
                (None, Some(n)) => usize::try_from(n).unwrap_or(0),
            };
            let data_key = kms.generate_data_key(caller, &key_id, bytes, &req.encryption_context, with_plaintext)?;
            audit.key_arn = Some(data_key.key_arn.clone());
            dry_run(req.dry_run)?;
            return to_json(&DataKeyResponse {
                ciphertext_blob: BASE64.encode(&data_key.ciphertext_blob),
                plaintext: data_key.plaintext.as_ref().map(|p| BASE64.encode(p.as_slice())),
                key_id: data_key.key_arn,
            });
        }
        Op::Encrypt => {
            let req: EncryptRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            audit.context = Some(req.encryption_context.clone());
            let plaintext = zeroize::Zeroizing::new(base64_field(&required(req.plaintext, "plaintext")?, "Plaintext")?);
            kms.check_grant_tokens(&req.grant_tokens)?;
            let algorithm = encryption_algorithm(req.encryption_algorithm.as_deref(), "encryptionAlgorithm")?;
            let (blob, arn) = kms.encrypt(caller, &key_id, &plaintext, &req.encryption_context, algorithm)?;
            audit.key_arn = Some(arn.clone());
            dry_run(req.dry_run)?;
            return to_json(&EncryptResponse {
                ciphertext_blob: BASE64.encode(blob),
                key_id: arn,
                encryption_algorithm: algorithm.as_str(),
            });
        }
        Op::Decrypt => {
            let req: DecryptRequest = parse(body)?;
            audit.context = Some(req.encryption_context.clone());
            audit.key_arn = req.key_id.clone();
            let blob = base64_field(&required(req.ciphertext_blob, "ciphertextBlob")?, "CiphertextBlob")?;
            if let Ok(header) = crate::blob::parse(&blob)
                && let Some(record) = kms.key_record_in(&caller.region, header.key_id)
            {
                audit.key_arn = Some(record.arn());
            }
            kms.check_grant_tokens(&req.grant_tokens)?;
            let algorithm = encryption_algorithm(req.encryption_algorithm.as_deref(), "encryptionAlgorithm")?;
            if req.recipient.is_some() {
                return Err(Error::UnsupportedOperation(
                    "kmsim does not support Recipient (Nitro Enclaves attestation).".into(),
                )
                .into());
            }
            let decrypted = kms.decrypt(caller, &blob, &req.encryption_context, req.key_id.as_deref(), algorithm)?;
            audit.key_arn = Some(decrypted.key_arn.clone());
            dry_run(req.dry_run)?;
            return to_json(&DecryptResponse {
                key_id: decrypted.key_arn,
                plaintext: BASE64.encode(decrypted.plaintext.as_slice()),
                encryption_algorithm: algorithm.as_str(),
            });
        }
        Op::ReEncrypt => {
            let req: ReEncryptRequest = parse(body)?;
            let destination = required(req.destination_key_id, "destinationKeyId")?;
            audit.key_arn = Some(destination.clone());
            audit.context = Some(req.destination_encryption_context.clone());
            let blob = base64_field(&required(req.ciphertext_blob, "ciphertextBlob")?, "CiphertextBlob")?;
            kms.check_grant_tokens(&req.grant_tokens)?;
            let source_algorithm =
                encryption_algorithm(req.source_encryption_algorithm.as_deref(), "sourceEncryptionAlgorithm")?;
            let destination_algorithm = encryption_algorithm(
                req.destination_encryption_algorithm.as_deref(),
                "destinationEncryptionAlgorithm",
            )?;
            let out = kms.re_encrypt(
                caller,
                ReEncryptInput {
                    ciphertext: &blob,
                    source_context: &req.source_encryption_context,
                    source_key_id: req.source_key_id.as_deref(),
                    source_algorithm,
                    destination_key_id: &destination,
                    destination_context: &req.destination_encryption_context,
                    destination_algorithm,
                },
            )?;
            audit.key_arn = Some(out.key_arn.clone());
            dry_run(req.dry_run)?;
            json!({
                "CiphertextBlob": BASE64.encode(&out.ciphertext_blob),
                "SourceKeyId": out.source_key_arn,
                "KeyId": out.key_arn,
                "SourceEncryptionAlgorithm": source_algorithm.as_str(),
                "DestinationEncryptionAlgorithm": destination_algorithm.as_str(),
            })
        }
        Op::GenerateRandom => {
            let req: GenerateRandomRequest = parse(body)?;
            if req.custom_key_store_id.is_some() {
                return Err(Error::UnsupportedOperation("kmsim does not simulate custom key stores.".into()).into());
            }
            if req.recipient.is_some() {
                return Err(Error::UnsupportedOperation(
                    "kmsim does not support Recipient (Nitro Enclaves attestation).".into(),
                )
                .into());
            }
            let bytes = required(req.number_of_bytes, "numberOfBytes")?;
            let random = kms.generate_random(usize::try_from(bytes).unwrap_or(0))?;
            json!({"Plaintext": BASE64.encode(random.as_slice())})
        }
        Op::CreateKey => {
            let req: CreateKeyRequest = parse(body)?;
            let (spec, usage, origin) = check_create_key(&req)?;
            let record = kms.create_key(
                caller,
                CreateKeyInput {
                    description: req.description.unwrap_or_default(),
                    policy: req.policy,
                    bypass_policy_lockout_safety_check: req.bypass_policy_lockout_safety_check == Some(true),
                    tags: tags(req.tags)?,
                    alias: None,
                    spec,
                    usage,
                    origin,
                    multi_region: req.multi_region == Some(true),
                },
            )?;
            audit.key_arn = Some(record.arn());
            json!({"KeyMetadata": key_metadata(&record)})
        }
        Op::DescribeKey => {
            let req: KeyIdRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let record = kms.describe_key(caller, &key_id)?;
            audit.key_arn = Some(record.arn());
            json!({"KeyMetadata": key_metadata(&record)})
        }
        Op::ListKeys => {
            let req: ListRequest = parse(body)?;
            let page = kms.list_keys(caller, limit(req.limit, 1000, 100)?, req.marker.as_deref())?;
            let keys: Vec<Value> = page.items.iter().map(|(id, arn)| json!({"KeyId": id, "KeyArn": arn})).collect();
            page_json(json!({"Keys": keys}), page.next_marker)
        }
        Op::UpdateKeyDescription => {
            let req: UpdateKeyDescriptionRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            kms.update_key_description(caller, &key_id, &required(req.description, "description")?)?;
            json!({})
        }
        Op::EnableKey | Op::DisableKey | Op::CancelKeyDeletion | Op::DisableKeyRotation | Op::RotateKeyOnDemand => {
            let req: KeyIdRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            match operation {
                Op::EnableKey => kms.enable_key(caller, &key_id)?,
                Op::DisableKey => kms.disable_key(caller, &key_id)?,
                Op::DisableKeyRotation => kms.disable_key_rotation(caller, &key_id)?,
                Op::CancelKeyDeletion => {
                    let record = kms.cancel_key_deletion(caller, &key_id)?;
                    audit.key_arn = Some(record.arn());
                    return to_json(&json!({"KeyId": record.arn()}));
                }
                _ => {
                    let record = kms.rotate_key_on_demand(caller, &key_id)?;
                    audit.key_arn = Some(record.arn());
                    return to_json(&json!({"KeyId": record.id}));
                }
            }
            json!({})
        }
        Op::ScheduleKeyDeletion => {
            let req: ScheduleKeyDeletionRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let days = req.pending_window_in_days.unwrap_or(30);
            if !(7..=30).contains(&days) {
                return Err(Error::Validation(format!(
                    "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30"
                ))
                .into());
            }
            let record = kms.schedule_key_deletion(caller, &key_id, days as u32)?;
            audit.key_arn = Some(record.arn());
            json!({
                "KeyId": record.arn(),
                "DeletionDate": record.deletion_date,
                "KeyState": record.state.as_str(),
                "PendingWindowInDays": days,
            })
        }
        Op::CreateAlias | Op::UpdateAlias => {
            let req: AliasRequest = parse(body)?;
            let name = required(req.alias_name, "aliasName")?;
            let target = required(req.target_key_id, "targetKeyId")?;
            audit.key_arn = Some(target.clone());
            if operation == Op::CreateAlias {
                kms.create_alias(caller, &name, &target)?;
            } else {
                kms.update_alias(caller, &name, &target)?;
            }
            json!({})
        }
        Op::DeleteAlias => {
            let req: AliasRequest = parse(body)?;
            kms.delete_alias(caller, &required(req.alias_name, "aliasName")?)?;
            json!({})
        }
        Op::ListAliases => {
            let req: ListRequest = parse(body)?;
            let page =
                kms.list_aliases(caller, req.key_id.as_deref(), limit(req.limit, 100, 50)?, req.marker.as_deref())?;
            let aliases: Vec<Value> = page
                .items
                .iter()
                .map(|a| {
                    json!({
                        "AliasName": a.name,
                        "AliasArn": a.arn(),
                        "TargetKeyId": a.target_key_id,
                        "CreationDate": a.created,
                        "LastUpdatedDate": a.updated,
                    })
                })
                .collect();
            page_json(json!({"Aliases": aliases}), page.next_marker)
        }
        Op::EnableKeyRotation => {
            let req: EnableKeyRotationRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let days = req.rotation_period_in_days.unwrap_or(365);
            if !(90..=2560).contains(&days) {
                return Err(Error::Validation(format!(
                    "1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value between 90 and 2560"
                ))
                .into());
            }
            kms.enable_key_rotation(caller, &key_id, days as u32)?;
            json!({})
        }
        Op::GetKeyRotationStatus => {
            let req: KeyIdRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let record = kms.get_key_rotation_status(caller, &key_id)?;
            audit.key_arn = Some(record.arn());
            let mut out = json!({"KeyRotationEnabled": record.rotation.enabled, "KeyId": record.arn()});
            if record.rotation.enabled {
                out["RotationPeriodInDays"] = json!(record.rotation.period_days);
                out["NextRotationDate"] = json!(record.rotation.next_rotation);
            }
            if let Some(last) = record.versions.iter().rev().find(|v| v.rotation_type == Some(RotationType::OnDemand)) {
                out["OnDemandRotationStartDate"] = json!(last.created);
            }
            out
        }
        Op::ListKeyRotations => {
            let req: ListKeyRotationsRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let all_material = match req.include_key_material.as_deref() {
                None | Some("ROTATIONS_ONLY") => false,
                Some("ALL_KEY_MATERIAL") => true,
                Some(other) => {
                    let valid = ["ALL_KEY_MATERIAL", "ROTATIONS_ONLY"];
                    return Err(crate::spec::enum_error(other, "includeKeyMaterial", &valid).into());
                }
            };
            let limit = limit(req.limit, 1000, 100)?;
            let (record, page) = kms.list_key_rotations(caller, &key_id, all_material, limit, req.marker.as_deref())?;
            audit.key_arn = Some(record.arn());
            let rotations: Vec<Value> = page.items.iter().map(|entry| rotation_json(&record, entry)).collect();
            page_json(json!({"Rotations": rotations}), page.next_marker)
        }
        Op::TagResource => {
            let req: TagResourceRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            kms.tag_resource(caller, &key_id, &tags(required(req.tags, "tags")?)?)?;
            json!({})
        }
        Op::UntagResource => {
            let req: UntagResourceRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            kms.untag_resource(caller, &key_id, &required(req.tag_keys, "tagKeys")?)?;
            json!({})
        }
        Op::ListResourceTags => {
            let req: ListRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let page = kms.list_resource_tags(caller, &key_id, limit(req.limit, 50, 50)?, req.marker.as_deref())?;
            let tags: Vec<Value> = page.items.iter().map(|t| json!({"TagKey": t.key, "TagValue": t.value})).collect();
            page_json(json!({"Tags": tags}), page.next_marker)
        }
        Op::GetKeyPolicy | Op::PutKeyPolicy => {
            let req: KeyPolicyRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let name = req.policy_name.unwrap_or_else(|| "default".into());
            if name != "default" {
                return Err(Error::NotFound(format!("Policy {name} not found")).into());
            }
            if operation == Op::GetKeyPolicy {
                json!({"Policy": kms.get_key_policy(caller, &key_id)?, "PolicyName": "default"})
            } else {
                let bypass = req.bypass_policy_lockout_safety_check.unwrap_or(false);
                kms.put_key_policy(caller, &key_id, &required(req.policy, "policy")?, bypass)?;
                json!({})
            }
        }
        Op::ListKeyPolicies => {
            let req: ListRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            kms.get_key_policy(caller, &key_id)?;
            json!({"PolicyNames": ["default"], "Truncated": false})
        }
        Op::CreateGrant => {
            let req: CreateGrantRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            kms.check_grant_tokens(&req.grant_tokens)?;
            let operations = required(req.operations, "operations")?
                .iter()
                .map(|name| {
                    GrantOperation::parse(name).ok_or_else(|| {
                        ApiError::Kms(Error::Validation(format!(
                            "1 validation error detected: Value '[{name}]' at 'operations' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [{}]]",
                            GrantOperation::ALL.map(GrantOperation::as_str).join(", ")
                        )))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let input = CreateGrantInput {
                grantee_principal: required(req.grantee_principal, "granteePrincipal")?,
                retiring_principal: req.retiring_principal,
                operations,
                constraints: req.constraints.map(|c| GrantConstraints {
                    encryption_context_equals: c.encryption_context_equals,
                    encryption_context_subset: c.encryption_context_subset,
                }),
                name: req.name,
            };
            if req.dry_run == Some(true) {
                kms.describe_key(caller, &key_id)?;
                return Err(Error::DryRun.into());
            }
            let (grant_id, token) = kms.create_grant(caller, &key_id, input)?;
            json!({"GrantId": grant_id, "GrantToken": token})
        }
        Op::ListGrants => {
            let req: ListGrantsRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let (page, arn) = kms.list_grants(
                caller,
                &key_id,
                req.grant_id.as_deref(),
                req.grantee_principal.as_deref(),
                limit(req.limit, 100, 50)?,
                req.marker.as_deref(),
            )?;
            audit.key_arn = Some(arn.clone());
            let grants: Vec<Value> = page.items.iter().map(|g| grant_json(g, &arn)).collect();
            page_json(json!({"Grants": grants}), page.next_marker)
        }
        Op::ListRetirableGrants => {
            let req: ListRetirableGrantsRequest = parse(body)?;
            let principal = required(req.retiring_principal, "retiringPrincipal")?;
            let page =
                kms.list_retirable_grants(caller, &principal, limit(req.limit, 100, 50)?, req.marker.as_deref())?;
            let grants: Vec<Value> = page.items.iter().map(|(g, arn)| grant_json(g, arn)).collect();
            page_json(json!({"Grants": grants}), page.next_marker)
        }
        Op::RetireGrant => {
            let req: GrantIdRequest = parse(body)?;
            audit.key_arn = req.key_id.clone();
            let by = match (&req.grant_token, &req.key_id, &req.grant_id) {
                (Some(token), _, _) => RetireBy::Token(token),
                (None, Some(key_id), Some(grant_id)) => RetireBy::Id { key_id, grant_id },
                _ => {
                    return Err(Error::Validation(
                        "Either GrantToken, or both KeyId and GrantId must be specified.".into(),
                    )
                    .into());
                }
            };
            if req.dry_run == Some(true) {
                return Err(Error::DryRun.into());
            }
            kms.retire_grant(caller, by)?;
            json!({})
        }
        Op::RevokeGrant => {
            let req: GrantIdRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let grant_id = required(req.grant_id, "grantId")?;
            if req.dry_run == Some(true) {
                kms.describe_key(caller, &key_id)?;
                return Err(Error::DryRun.into());
            }
            kms.revoke_grant(caller, &key_id, &grant_id)?;
            json!({})
        }
        Op::Sign | Op::Verify => {
            let req: SignRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let message = zeroize::Zeroizing::new(blob_field(req.message, "message", "Message")?);
            let algorithm = SigningAlgorithm::parse(&required(req.signing_algorithm, "signingAlgorithm")?)?;
            let message_type = MessageType::parse(req.message_type.as_deref().unwrap_or("RAW"))?;
            kms.check_grant_tokens(&req.grant_tokens)?;
            let input = SignInput { bytes: &message, message_type };
            let mut out = json!({"SigningAlgorithm": algorithm.as_str()});
            if operation == Op::Sign {
                let signed = kms.sign(caller, &key_id, input, algorithm)?;
                audit.key_arn = Some(signed.key_arn.clone());
                dry_run(req.dry_run)?;
                out["KeyId"] = json!(signed.key_arn);
                out["Signature"] = json!(BASE64.encode(&signed.signature));
            } else {
                let signature = blob_field(req.signature, "signature", "Signature")?;
                let arn = kms.verify(caller, &key_id, input, algorithm, &signature)?;
                audit.key_arn = Some(arn.clone());
                dry_run(req.dry_run)?;
                out["KeyId"] = json!(arn);
                out["SignatureValid"] = json!(true);
            }
            out
        }
        Op::GetPublicKey => {
            let req: GetPublicKeyRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            kms.check_grant_tokens(&req.grant_tokens)?;
            let (record, public_key) = kms.get_public_key(caller, &key_id)?;
            audit.key_arn = Some(record.arn());
            let mut out = json!({
                "KeyId": record.arn(),
                "PublicKey": BASE64.encode(&public_key),
                "CustomerMasterKeySpec": record.spec.as_str(),
                "KeySpec": record.spec.as_str(),
                "KeyUsage": record.usage.as_str(),
            });
            algorithm_lists(&mut out, record.spec, record.usage);
            out
        }
        Op::GenerateMac | Op::VerifyMac => {
            let req: MacRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let message = zeroize::Zeroizing::new(blob_field(req.message, "message", "Message")?);
            let algorithm = MacAlgorithm::parse(&required(req.mac_algorithm, "macAlgorithm")?)?;
            kms.check_grant_tokens(&req.grant_tokens)?;
            if operation == Op::GenerateMac {
                let (mac, arn) = kms.generate_mac(caller, &key_id, &message, algorithm)?;
                audit.key_arn = Some(arn.clone());
                dry_run(req.dry_run)?;
                json!({"Mac": BASE64.encode(mac), "MacAlgorithm": algorithm.as_str(), "KeyId": arn})
            } else {
                let mac = blob_field(req.mac, "mac", "Mac")?;
                let arn = kms.verify_mac(caller, &key_id, &message, algorithm, &mac)?;
                audit.key_arn = Some(arn.clone());
                dry_run(req.dry_run)?;
                json!({"KeyId": arn, "MacValid": true, "MacAlgorithm": algorithm.as_str()})
            }
        }
        Op::GenerateDataKeyPair | Op::GenerateDataKeyPairWithoutPlaintext => {
            let with_plaintext = operation == Op::GenerateDataKeyPair;
            let req: GenerateDataKeyPairRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            audit.context = Some(req.encryption_context.clone());
            let pair_spec = parse_key_pair_spec(&required(req.key_pair_spec, "keyPairSpec")?)?;
            kms.check_grant_tokens(&req.grant_tokens)?;
            if req.recipient.is_some() {
                return Err(Error::UnsupportedOperation(
                    "kmsim does not support Recipient (Nitro Enclaves attestation).".into(),
                )
                .into());
            }
            let pair =
                kms.generate_data_key_pair(caller, &key_id, pair_spec, &req.encryption_context, with_plaintext)?;
            audit.key_arn = Some(pair.key_arn.clone());
            dry_run(req.dry_run)?;
            let mut out = json!({
                "PrivateKeyCiphertextBlob": BASE64.encode(&pair.private_ciphertext),
                "PublicKey": BASE64.encode(&pair.public_key),
                "KeyId": pair.key_arn,
                "KeyPairSpec": pair_spec.as_str(),
            });
            if let Some(private) = &pair.private_plaintext {
                out["PrivateKeyPlaintext"] = json!(BASE64.encode(private.as_slice()));
            }
            out
        }
        Op::DeriveSharedSecret => {
            let req: DeriveSharedSecretRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            match required(req.key_agreement_algorithm, "keyAgreementAlgorithm")?.as_str() {
                "ECDH" => {}
                other => return Err(crate::spec::enum_error(other, "keyAgreementAlgorithm", &["ECDH"]).into()),
            }
            let public_key = blob_field(req.public_key, "publicKey", "PublicKey")?;
            kms.check_grant_tokens(&req.grant_tokens)?;
            if req.recipient.is_some() {
                return Err(Error::UnsupportedOperation(
                    "kmsim does not support Recipient (Nitro Enclaves attestation).".into(),
                )
                .into());
            }
            let (secret, arn, origin) = kms.derive_shared_secret(caller, &key_id, &public_key)?;
            audit.key_arn = Some(arn.clone());
            dry_run(req.dry_run)?;
            json!({
                "KeyId": arn,
                "SharedSecret": BASE64.encode(secret.as_slice()),
                "KeyAgreementAlgorithm": "ECDH",
                "KeyOrigin": origin.as_str(),
            })
        }
        Op::GetParametersForImport => {
            let req: GetParametersForImportRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let algorithm = WrappingAlgorithm::parse(&required(req.wrapping_algorithm, "wrappingAlgorithm")?)?;
            let wrapping_key = parse_wrapping_key_spec(&required(req.wrapping_key_spec, "wrappingKeySpec")?)?;
            let out = kms.get_parameters_for_import(caller, &key_id, algorithm, wrapping_key)?;
            audit.key_arn = Some(out.key_arn.clone());
            json!({
                "KeyId": out.key_arn,
                "ImportToken": BASE64.encode(&out.import_token),
                "PublicKey": BASE64.encode(&out.public_key),
                "ParametersValidTo": out.valid_to,
            })
        }
        Op::ImportKeyMaterial => {
            let req: ImportKeyMaterialRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let import_token = blob_field(req.import_token, "importToken", "ImportToken")?;
            check_length(&import_token, "importToken", MAX_IMPORT_BLOB)?;
            let encrypted = blob_field(req.encrypted_key_material, "encryptedKeyMaterial", "EncryptedKeyMaterial")?;
            check_length(&encrypted, "encryptedKeyMaterial", MAX_IMPORT_BLOB)?;
            let valid_to = import_valid_to(kms.clock.now(), req.expiration_model.as_deref(), req.valid_to)?;
            let import_type = req.import_type.as_deref().map(ImportType::parse).transpose()?;
            let description = req.key_material_description.as_deref();
            if let Some(description) = description {
                check_material_description(description)?;
            }
            let material_id = req.key_material_id.as_deref();
            if let Some(id) = material_id {
                check_material_id(id)?;
            }
            let input = ImportInput {
                import_token: &import_token,
                encrypted_material: &encrypted,
                encrypted_private_key: None,
                valid_to,
                import_type,
                material_id,
                description,
            };
            let (record, material_id) = kms.import_key_material(caller, &key_id, input)?;
            audit.key_arn = Some(record.arn());
            json!({"KeyId": record.arn(), "KeyMaterialId": material_id})
        }
        Op::DeleteImportedKeyMaterial => {
            let req: DeleteImportedKeyMaterialRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            if let Some(id) = req.key_material_id.as_deref() {
                check_material_id(id)?;
            }
            let (record, material_id) =
                kms.delete_imported_key_material(caller, &key_id, req.key_material_id.as_deref())?;
            audit.key_arn = Some(record.arn());
            let mut answer = json!({"KeyId": record.arn()});
            if let Some(id) = material_id {
                answer["KeyMaterialId"] = json!(id);
            }
            answer
        }
        Op::ReplicateKey => {
            let req: ReplicateKeyRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            let input = ReplicateInput {
                replica_region: required(req.replica_region, "replicaRegion")?,
                description: req.description,
                policy: req.policy,
                tags: tags(req.tags)?,
                bypass_policy_lockout_safety_check: req.bypass_policy_lockout_safety_check == Some(true),
            };
            let replica = kms.replicate_key(caller, &key_id, input)?;
            audit.key_arn = Some(key_arn(&caller.region, &replica.account, &replica.id));
            let replica_tags: Vec<Value> =
                replica.tags.iter().map(|t| json!({"TagKey": t.key, "TagValue": t.value})).collect();
            json!({
                "ReplicaKeyMetadata": key_metadata(&replica),
                "ReplicaPolicy": replica.policy,
                "ReplicaTags": replica_tags,
            })
        }
        Op::UpdatePrimaryRegion => {
            let req: UpdatePrimaryRegionRequest = parse(body)?;
            let key_id = required(req.key_id, "keyId")?;
            audit.key_arn = Some(key_id.clone());
            kms.update_primary_region(caller, &key_id, &required(req.primary_region, "primaryRegion")?)?;
            json!({})
        }
        // `is_supported` sent the others away above.
        _ => return Err(not_implemented(operation)),
    };
    to_json(&value)
}

/// ImportKeyMaterial's expiry: `ValidTo` with `KEY_MATERIAL_EXPIRES` (the default), a future time at most 365 days
/// ahead; nothing with `KEY_MATERIAL_DOES_NOT_EXPIRE`.
/// One `RotationsListEntry`.
fn rotation_json(record: &KeyRecord, entry: &RotationEntry) -> Value {
    let mut out = json!({
        "KeyId": record.arn(),
        "KeyMaterialId": entry.material_id,
        "KeyMaterialState": entry.state.as_str(),
    });
    if let Some(rotation_type) = entry.version.rotation_type.filter(|_| !entry.state.is_pending()) {
        out["RotationDate"] = json!(entry.version.created);
        out["RotationType"] = json!(rotation_type.as_str());
    }
    if let Some(imported) = &entry.version.imported {
        out["ImportState"] = json!(if entry.version.has_material() { "IMPORTED" } else { "PENDING_IMPORT" });
        if entry.version.has_material() {
            out["ExpirationModel"] = json!(if imported.valid_to.is_some() {
                "KEY_MATERIAL_EXPIRES"
            } else {
                "KEY_MATERIAL_DOES_NOT_EXPIRE"
            });
        }
        if let Some(valid_to) = imported.valid_to {
            out["ValidTo"] = json!(valid_to);
        }
        if let Some(description) = &imported.description {
            out["KeyMaterialDescription"] = json!(description);
        }
    }
    out
}

/// `KeyMaterialId`: 64 lowercase hex digits.
fn check_material_id(id: &str) -> Result<(), ApiError> {
    let constraint = if id.len() < 64 {
        "Member must have length greater than or equal to 64"
    } else if id.len() > 64 {
        "Member must have length less than or equal to 64"
    } else if !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        "Member must satisfy regular expression pattern: ^[a-f0-9]+$"
    } else {
        return Ok(());
    };
    Err(Error::Validation(format!(
        "1 validation error detected: Value '{id}' at 'keyMaterialId' failed to satisfy constraint: {constraint}"
    ))
    .into())
}

/// `KeyMaterialDescription`: at most 256 of `[a-zA-Z0-9:/_\s.-]`.
fn check_material_description(description: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c.is_whitespace() || ":/_.-".contains(c);
    let constraint = if description.chars().count() > 256 {
        "Member must have length less than or equal to 256"
    } else if description.is_empty() || !description.chars().all(allowed) {
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_\\s.-]+$"
    } else {
        return Ok(());
    };
    Err(Error::Validation(format!(
        "1 validation error detected: Value '{description}' at 'keyMaterialDescription' failed to satisfy constraint: {constraint}"
    ))
    .into())
}

fn import_valid_to(now: i64, model: Option<&str>, valid_to: Option<f64>) -> Result<Option<i64>, ApiError> {
    match (model.unwrap_or("KEY_MATERIAL_EXPIRES"), valid_to) {
        ("KEY_MATERIAL_EXPIRES", None) => {
            Err(Error::Validation("A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES".into())
                .into())
        }
        ("KEY_MATERIAL_EXPIRES", Some(t)) => {
            if !t.is_finite() || t <= now as f64 || t > (now + MAX_VALID_TO_AHEAD) as f64 {
                return Err(
                    Error::Validation("ValidTo must be a future date no more than 365 days from now.".into()).into()
                );
            }
            Ok(Some(t as i64))
        }
        ("KEY_MATERIAL_DOES_NOT_EXPIRE", None) => Ok(None),
        ("KEY_MATERIAL_DOES_NOT_EXPIRE", Some(_)) => Err(Error::Validation(
            "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE".into(),
        )
        .into()),
        (other, _) => Err(crate::spec::enum_error(
            other,
            "expirationModel",
            &["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"],
        )
        .into()),
    }
}

/// The answer to an operation of the real API that kmsim does not implement.
fn not_implemented(operation: KmsOperation) -> ApiError {
    ApiError::Kms(Error::UnsupportedOperation(format!(
        "kmsim does not implement {operation}; see docs/api-coverage.md."
    )))
}

/// CreateKey's spec, usage and origin, checked as AWS checks them; what kmsim does not simulate (CloudHSM and
/// external key stores) answers UnsupportedOperationException.
fn check_create_key(req: &CreateKeyRequest) -> Result<(KeySpec, KeyUsage, Origin), ApiError> {
    let unsupported = |what: &str| {
        Err(ApiError::Kms(Error::UnsupportedOperation(format!(
            "kmsim does not simulate {what} yet; see docs/api-coverage.md."
        ))))
    };
    if req.key_spec.is_some() && req.customer_master_key_spec.is_some() {
        return Err(Error::Validation(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated."
                .into(),
        )
        .into());
    }
    let spec = match (&req.key_spec, &req.customer_master_key_spec) {
        (Some(spec), _) => KeySpec::parse(spec, "keySpec")?,
        (None, Some(spec)) => KeySpec::parse(spec, "customerMasterKeySpec")?,
        (None, None) => KeySpec::SymmetricDefault,
    };
    let usage = req.key_usage.as_deref().map(KeyUsage::parse).transpose()?;
    let usage = check_spec_and_usage(spec, usage)?;
    let origin = match req.origin.as_deref() {
        None | Some("AWS_KMS") => Origin::AwsKms,
        Some("EXTERNAL") => Origin::External,
        Some(o @ ("AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE")) => return unsupported(&format!("Origin {o}")),
        Some(o) => {
            return Err(crate::spec::enum_error(
                o,
                "origin",
                &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"],
            )
            .into());
        }
    };
    if req.custom_key_store_id.is_some() || req.xks_key_id.is_some() {
        return unsupported("custom key stores");
    }
    Ok((spec, usage, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(operation: KmsOperation) -> RequestContext {
        let caller = shared::Caller {
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            principal_arn: "arn:aws:iam::111122223333:root".into(),
            via_service: None,
            peer: None,
            decisions: Default::default(),
        };
        RequestContext::new(caller, None, Api::AwsKms, operation.name(), operation.action())
    }

    /// The table's `Supported` and the dispatch agree: an operation answers "not implemented" exactly when the
    /// table says kmsim does not implement it, so a new operation cannot be listed without its handler.
    #[test]
    fn dispatch_answers_not_implemented_exactly_for_the_operations_the_table_marks() {
        let kms = Kms::in_memory().expect("an in-memory KMS");
        for operation in KmsOperation::ALL {
            let result = dispatch(&kms, &context(*operation), *operation, b"{}", &mut Audit::default());
            let not_implemented = match &result {
                Err(e @ ApiError::Kms(Error::UnsupportedOperation(message))) => {
                    message.starts_with("kmsim does not implement") && e.code() == "UnsupportedOperationException"
                }
                _ => false,
            };
            assert_eq!(not_implemented, !operation.is_supported(), "{operation}: {result:?}");
        }
    }

    #[test]
    fn the_not_implemented_answer_names_the_operation_and_the_coverage_page() {
        let ApiError::Kms(error) = not_implemented(KmsOperation::Sign) else { panic!("not a core error") };
        assert_eq!(error.to_string(), "kmsim does not implement Sign; see docs/api-coverage.md.");
    }
}
