//! The Open Telekom Cloud / Huawei Cloud KMS REST API (v1.0) over the same [`Kms`] core as the AWS dialect.
//!
//! `POST /v1.0/{project_id}/kms/<verb>` with a JSON body (plus the tag and alias resources under the same
//! prefix), signed with SDK-HMAC-SHA256 ([`auth::sdk_hmac`]). The dialect's quirks are kept: numbers and booleans
//! travel as JSON strings (numbers are accepted either way), data keys and their ciphertexts are hex while
//! encrypt-data's ciphertext is base64, create-datakey and gen-random count bits where encrypt-datakey and
//! decrypt-datakey count bytes, key states are the codes `"1"`–`"5"`, and errors are
//! `{"error":{"error_code":"KMS.0209","error_msg":...}}` with an `X-Request-Id` header.
//!
//! Mapping onto the core, so that one key serves both dialects:
//! - the project in the path must be the caller's (each access key belongs to one domain and one project,
//!   [`auth::AccessKey`]); resources live in the caller's account and in kmsim's region;
//! - a key's `key_alias` `x` is the alias `alias/x`; the service default keys `obs/default`, `evs/default` are the
//!   service-managed aliases `alias/obs/default`, `alias/evs/default`;
//! - ciphertexts are the core's blobs (`cipher_text` = hex or base64 of the same bytes a `CiphertextBlob` carries);
//! - `additional_authenticated_data` (a string) is the encryption context `{"additional_authenticated_data": s}`;
//!   the older `encryption_context` object is an encryption context as is;
//! - grant operations map to the AWS ones (create-datakey → GenerateDataKey, encrypt-data and encrypt-datakey →
//!   Encrypt, ...); a grantee of type `domain` is that domain's account;
//! - key specs have the dialect's names where it has one (`AES_256`, `EC_P256`, `HMAC_256`, [`KEY_SPECS`]) and the
//!   AWS name otherwise (a key made through the AWS dialect as `ECC_NIST_P521`); usages and algorithms have the
//!   same names in both dialects. Sign, verify, generate-mac and verify-mac take the message in base64; signatures
//!   are base64 and MACs hex; get-publickey answers PEM; a wrong signature or MAC is a 200 with
//!   `signature_valid` `"false"` / `mac_valid` `false`, not an error;
//! - data key pairs (`otc/pairs.rs`), re-encrypt (`otc/re_encrypt.rs`) and rotate-on-demand are the core's
//!   GenerateDataKeyPair, ReEncrypt and RotateKeyOnDemand; user-quotas, user-instances and resource_instances
//!   (`otc/instances.rs`) read the caller's key records.

use std::sync::Arc;

use auth::{AccessKey, Accounts, AuthError, RequestParts, Verifier, sdk_hmac};
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use shared::caller::root_principal;
use shared::entropy::{Entropy, Purpose};
use shared::{Api, Caller, Peer, RequestContext};
use zeroize::Zeroizing;

use crate::blob::EncryptionContext;
use crate::blocking;
use crate::crypto::SignInput;
use crate::error::Error;
use crate::model::{Grant, GrantOperation, KeyManager, KeyRecord, KeyState, Origin, Tag};
use crate::service::{CreateGrantInput, CreateKeyInput, Kms, RetireBy};
use crate::spec::{EncryptionAlgorithm, Family, KeySpec, KeyUsage, MacAlgorithm, MessageType, SigningAlgorithm};

mod import;
mod instances;
mod pairs;
mod re_encrypt;
pub mod verb;

pub use verb::OtcVerb;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The path prefix of this dialect.
pub const PATH_PREFIX: &str = "/v1.0/";
/// The encryption-context entry that carries `additional_authenticated_data`.
pub const AAD_CONTEXT_KEY: &str = "additional_authenticated_data";
/// Largest `message` of sign, verify, generate-mac and verify-mac, in bytes before base64 (the API reference:
/// "1 to 4,096").
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// An error on its way to the wire.
#[derive(Debug)]
pub struct OtcError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl OtcError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OtcError { status, code, message: message.into() }
    }

    /// A 400 with a KMS error code.
    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn missing(field: &str) -> Self {
        Self::bad("KMS.0204", format!("The required parameter {field} is missing."))
    }

    fn invalid(field: &str) -> Self {
        Self::bad("KMS.0308", format!("Invalid {field}."))
    }

    fn no_such_api() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "APIGW.0101",
            "The API does not exist or has not been published in the environment.",
        )
    }

    /// The answer to a verb of the real API that kmsim does not implement: the gateway's 404, naming this page.
    fn not_implemented(verb: OtcVerb) -> Self {
        let mut e = Self::no_such_api();
        e.message = format!("kmsim does not implement {verb}; see docs/api-coverage.md.");
        e
    }

    fn auth(e: &AuthError) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, sdk_hmac::REFUSAL_CODE, sdk_hmac::refusal_message(e))
    }

    /// The error code, also the audit outcome.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// An internal error is logged here, once, with the request id the client sees.
    fn into_response(self, entropy: &Entropy) -> Response {
        let internal = self.status == StatusCode::INTERNAL_SERVER_ERROR;
        let message = if internal { "kms error." } else { &self.message };
        let body = json!({"error": {"error_code": self.code, "error_msg": message}});
        let response = json_response(self.status, &body, entropy);
        if internal {
            let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::error!(detail = %self.message, %request_id, "internal error in the KMS (OTC dialect)");
        }
        response
    }
}

/// The default mapping of core errors; verbs with their own codes map first (`WithCode::with`).
impl From<Error> for OtcError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NotFound(_) => "KMS.0207",
            Error::Disabled(_) => "KMS.0209",
            Error::InvalidState(m) if m.contains("pending deletion") => "KMS.0210",
            Error::InvalidState(_) => "KMS.0308",
            Error::InvalidCiphertext(_) | Error::InvalidSignature(_) | Error::InvalidMac(_) => "KMS.0308",
            Error::InvalidImportToken(_) | Error::ExpiredImportToken(_) | Error::IncorrectKeyMaterial(_) => "KMS.0308",
            Error::IncorrectKey(_) | Error::InvalidArn(_) => "KMS.0205",
            Error::AlreadyExists(_) => "KMS.1104",
            Error::InvalidAliasName(_) => "KMS.1101",
            Error::AccessDenied(_) => "KMS.0306",
            Error::InvalidGrantId(_) | Error::InvalidGrantToken(_) => "KMS.2501",
            Error::InvalidMarker(_) => "KMS.1602",
            Error::LimitExceeded(_) => "KMS.2404",
            Error::Tag(_) => "KMS.0406",
            Error::Validation(_)
            | Error::InvalidKeyUsage(_)
            | Error::MalformedPolicyDocument(_)
            | Error::UnsupportedOperation(_)
            | Error::DryRun => "KMS.0308",
            Error::Internal(_) => "KMS.0101",
        };
        let status = match (&e, code) {
            (Error::Internal(_), _) => StatusCode::INTERNAL_SERVER_ERROR,
            (_, "KMS.0306") => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        let message = match code {
            "KMS.0209" => "The key has been disabled.".to_owned(),
            "KMS.0210" => "The key is pending deletion.".to_owned(),
            _ => e.to_string(),
        };
        OtcError::new(status, code, message)
    }
}

trait WithCode<T> {
    /// Replaces the code of the core error that `pick` recognises.
    fn with(self, pick: impl Fn(&Error) -> Option<&'static str>) -> Result<T, OtcError>;
}

impl<T> WithCode<T> for Result<T, Error> {
    fn with(self, pick: impl Fn(&Error) -> Option<&'static str>) -> Result<T, OtcError> {
        self.map_err(|e| {
            let code = pick(&e);
            let mut err = OtcError::from(e);
            if let Some(code) = code {
                err.code = code;
            }
            err
        })
    }
}

fn json_response(status: StatusCode, body: &Value, entropy: &Entropy) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    let id = entropy.uuid(Purpose::RequestId).simple().to_string();
    headers.insert("x-request-id", HeaderValue::from_str(&id).expect("hex is a valid header value"));
    response
}

/// The OTC / Huawei Cloud KMS REST API over a [`Kms`].
#[derive(Debug, Clone)]
pub struct OtcApi {
    kms: Arc<Kms>,
    /// Checks SDK-HMAC signatures; its accounts map OTC domains to accounts.
    verifier: Arc<Verifier>,
    region: String,
}

/// What a call tells the audit log besides its outcome.
#[derive(Debug, Default)]
struct Audit {
    key_arn: Option<String>,
    context: Option<EncryptionContext>,
}

/// One request, authenticated.
struct Call<'a> {
    kms: &'a Kms,
    accounts: &'a Accounts,
    /// Who asks for which verb, from where.
    context: RequestContext,
    key: Arc<AccessKey>,
    body: Map<String, Value>,
    /// Path segments after `/v1.0/{project_id}/kms/`, still percent-encoded.
    segments: Vec<&'a str>,
    query: &'a str,
    audit: Audit,
}

impl OtcApi {
    /// A front end for `kms`, checking signatures with `verifier`; resources in `region`.
    pub fn new(kms: Arc<Kms>, verifier: Arc<Verifier>, region: &str) -> Self {
        OtcApi { kms, verifier, region: region.to_owned() }
    }

    /// Whether a request path is for this front end: `/v1.0/{project_id}/kms` and below.
    pub fn accepts(path: &str) -> bool {
        path.strip_prefix(PATH_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, rest)| rest == "kms" || rest.starts_with("kms/"))
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(_) => {
                return OtcError::bad("KMS.0203", "The request body is too long.").into_response(&self.kms.entropy);
            }
        };
        let query = parts.uri.query().unwrap_or("");
        let path = parts.uri.path();
        let request_parts = RequestParts { method: parts.method.as_str(), path, query, headers: &parts.headers };
        let verified =
            match self.verifier.verify_sdk_hmac(&request_parts, &body, &self.region, shared::time::now_unix()) {
                Ok(verified) => verified,
                Err(e) => return OtcError::auth(&e).into_response(&self.kms.entropy),
            };
        let rest = path.strip_prefix(PATH_PREFIX).unwrap_or_default();
        let (project_id, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').skip(1).collect();
        let auth::Verified { caller, key, .. } = verified;
        if project_id != key.project_id {
            return OtcError::new(
                StatusCode::FORBIDDEN,
                "KMS.0305",
                format!("The project {project_id} in the URL is not the project of the access key."),
            )
            .into_response(&self.kms.entropy);
        }
        let verb = match OtcVerb::parse(parts.method.as_str(), &segments) {
            Some(verb) if verb.is_supported() => verb,
            Some(verb) => return OtcError::not_implemented(verb).into_response(&self.kms.entropy),
            None => return OtcError::no_such_api().into_response(&self.kms.entropy),
        };
        let body = match parse_body(&body) {
            Ok(body) => body,
            Err(e) => return e.into_response(&self.kms.entropy),
        };
        let peer = parts.extensions.get::<Peer>().copied();
        let caller = Caller { peer, ..caller };
        let mut context = RequestContext::new(caller, peer, Api::OtcKms, verb.name(), verb.action());
        let named_key = body.get("key_id").and_then(Value::as_str).map(str::to_owned);
        let fired = self.kms.fault(&context, "otc", named_key.as_deref(), None);
        context.fault = fired.as_ref().map(|f| f.rule);
        faults::http::delay_before(fired.as_ref()).await;
        if let Some(injected) = fired.as_ref().and_then(|f| f.error.clone()) {
            let status = StatusCode::from_u16(injected.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            self.kms.record_call(&context, named_key, None, injected.code);
            // Sent as is, even a 500: the message is the rule's, not an internal detail to hide.
            return json_response(
                status,
                &json!({"error": {"error_code": injected.code, "error_msg": injected.message}}),
                &self.kms.entropy,
            );
        }
        let (result, context, audit) = if verb.is_mutation() || verb.generates_keys() {
            // Mutations fsync and RSA key generations take up to seconds: run them on the blocking pool, which works
            // under both runtime flavours (unlike `block_in_place`). Reads stay inline: no thread hop on the hot path.
            let (kms, accounts) = (self.kms.clone(), self.verifier.accounts().clone());
            let segments: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
            let (query, fallback_context) = (query.to_owned(), context.clone());
            blocking::run(verb.generates_keys(), move || {
                let segments = segments.iter().map(String::as_str).collect();
                let mut call = Call {
                    kms: &kms,
                    accounts: &accounts,
                    context,
                    key,
                    body,
                    segments,
                    query: &query,
                    audit: Audit::default(),
                };
                let result = call.dispatch(verb);
                (result, call.context, call.audit)
            })
            .await
            .unwrap_or_else(|e| {
                let error = OtcError::from(Error::Internal(format!("the {} task failed: {e}", verb.name())));
                (Err(error), fallback_context, Audit::default())
            })
        } else {
            let mut call = Call {
                kms: &self.kms,
                accounts: self.verifier.accounts(),
                context,
                key,
                body,
                segments,
                query,
                audit: Audit::default(),
            };
            let result = call.dispatch(verb);
            (result, call.context, call.audit)
        };
        let outcome = match &result {
            Ok(_) => "Success",
            Err(e) => e.code(),
        };
        let encryption_context = audit.context.filter(|c| !c.is_empty());
        self.kms.record_call(&context, audit.key_arn, encryption_context, outcome);
        let response = match result {
            Ok(value) => json_response(StatusCode::OK, &value, &self.kms.entropy),
            Err(e) => e.into_response(&self.kms.entropy),
        };
        faults::http::finish(fired.as_ref(), response).await
    }
}

/// The JSON object of a request; an empty body is an empty object.
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, OtcError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(OtcError::bad("KMS.0202", "The request body is not a valid JSON object.")),
    }
}

// ---- field access --------------------------------------------------------------------------------

impl Call<'_> {
    fn opt_str(&self, field: &str) -> Result<Option<&str>, OtcError> {
        match self.body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(OtcError::invalid(field)),
        }
    }

    fn str(&self, field: &str) -> Result<&str, OtcError> {
        self.opt_str(field)?.filter(|s| !s.is_empty()).ok_or_else(|| OtcError::missing(field))
    }

    /// A number sent as a JSON string (the dialect's habit) or as a JSON number.
    fn opt_int(&self, field: &str) -> Result<Option<i64>, OtcError> {
        match self.body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| OtcError::invalid(field)),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| OtcError::invalid(field)),
            Some(_) => Err(OtcError::invalid(field)),
        }
    }

    /// `key_id`: 1–64 of `[A-Za-z0-9-]` (a UUID, or a seeded key's fixed id).
    fn key_id(&mut self) -> Result<String, OtcError> {
        self.key_id_in("key_id")
    }

    /// A key id field (`key_id`, re-encrypt's `source_key_id`, ...): see [`Call::key_id`]; the audit log names it.
    fn key_id_in(&mut self, field: &str) -> Result<String, OtcError> {
        let key_id = self.str(field)?.to_owned();
        let valid = key_id.len() <= 64 && key_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err(OtcError::bad("KMS.0205", format!("Invalid key_id {key_id}.")));
        }
        self.audit.key_arn = Some(key_id.clone());
        Ok(key_id)
    }

    /// A base64 field (`message`, `signature`, `cipher_text`), decoded; KMS.0308 when it is not base64.
    fn base64(&self, field: &str) -> Result<Zeroizing<Vec<u8>>, OtcError> {
        let text = self.str(field)?;
        let bytes = BASE64.decode(text).map_err(|_| OtcError::bad("KMS.0308", format!("{field} is not base64.")))?;
        Ok(Zeroizing::new(bytes))
    }

    /// `message` of sign, verify, generate-mac and verify-mac: base64 of 1–[`MAX_MESSAGE_BYTES`] bytes.
    fn message(&self) -> Result<Zeroizing<Vec<u8>>, OtcError> {
        let message = self.base64("message")?;
        if message.is_empty() {
            return Err(OtcError::missing("message"));
        }
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(OtcError::bad(
                "KMS.0203",
                format!("message must be 1 to {MAX_MESSAGE_BYTES} bytes (before base64), not {}.", message.len()),
            ));
        }
        Ok(message)
    }

    /// `encryption_algorithm` of encrypt-data and decrypt-data, SYMMETRIC_DEFAULT when absent.
    fn encryption_algorithm(&self) -> Result<EncryptionAlgorithm, OtcError> {
        match self.opt_str("encryption_algorithm")? {
            None | Some("") => Ok(EncryptionAlgorithm::SymmetricDefault),
            Some(name) => parse_algorithm("encryption_algorithm", name, ENCRYPTION_ALGORITHMS),
        }
    }

    /// An algorithm field that must be present: see [`parse_algorithm`].
    fn algorithm<T: Copy>(&self, field: &str, table: AlgorithmTable<T>) -> Result<T, OtcError> {
        parse_algorithm(field, self.str(field)?, table)
    }

    /// The encryption context: `additional_authenticated_data` (a string) or `encryption_context` (an object).
    fn context(&mut self) -> Result<EncryptionContext, OtcError> {
        let mut context = EncryptionContext::new();
        if let Some(aad) = self.opt_str(AAD_CONTEXT_KEY)?
            && !aad.is_empty()
        {
            context.insert(AAD_CONTEXT_KEY.to_owned(), aad.to_owned());
        }
        match self.body.get("encryption_context") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => v.to_string(),
                        _ => return Err(OtcError::bad("KMS.0208", "Invalid encryption_context.")),
                    };
                    context.insert(k.clone(), v);
                }
            }
            Some(_) => return Err(OtcError::bad("KMS.0208", "Invalid encryption_context.")),
        }
        self.audit.context = Some(context.clone());
        Ok(context)
    }

    fn limit(&self) -> Result<usize, OtcError> {
        match self.opt_int("limit")? {
            None => Ok(1000),
            Some(n @ 1..=1000) => Ok(n as usize),
            Some(_) => Err(OtcError::bad("KMS.1601", "limit must be between 1 and 1000.")),
        }
    }

    /// `marker`: the offset of the first item, "0" or absent at the start.
    fn marker(&self) -> Result<usize, OtcError> {
        match self.opt_int("marker")? {
            None => Ok(0),
            Some(n) if n >= 0 => Ok(n as usize),
            Some(_) => Err(OtcError::bad("KMS.1602", "marker must be greater than or equal to 0.")),
        }
    }

    fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    }
}

/// One page of `items` from offset `marker`: the page, the next marker (`""` at the end), whether more follow.
fn offset_page<T>(items: Vec<T>, limit: usize, marker: usize) -> (Vec<T>, String, bool) {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(marker).take(limit).collect();
    let end = marker.saturating_add(page.len());
    let truncated = end < total;
    (page, if truncated { end.to_string() } else { String::new() }, truncated)
}

// ---- shapes --------------------------------------------------------------------------------------

/// The dialect's key state code.
fn state_code(state: KeyState) -> &'static str {
    match state {
        KeyState::Enabled => "2",
        KeyState::Disabled => "3",
        KeyState::PendingDeletion => "4",
        KeyState::PendingImport => "5",
    }
}

/// `key_info` of describe-key and list-keys: every field a string, times in milliseconds.
fn key_info(record: &KeyRecord, alias: &str, domain_id: &str) -> Value {
    let default_key = record.manager == KeyManager::Aws;
    json!({
        "key_id": record.id,
        "domain_id": domain_id,
        "key_alias": alias,
        "realm": record.region,
        "key_spec": key_spec_name(record.spec),
        "key_usage": record.usage.as_str(),
        "key_description": record.description,
        "creation_date": (record.created * 1000).to_string(),
        "scheduled_deletion_date": record.deletion_date.map(|d| (d * 1000).to_string()).unwrap_or_default(),
        "key_state": state_code(record.state),
        "default_key_flag": if default_key { "1" } else { "0" },
        "key_type": if default_key { "1" } else { "2" },
        "expiration_time": current_material_expiry(record).map(|t| t.saturating_mul(1000).to_string()).unwrap_or_default(),
        "origin": match record.origin { Origin::AwsKms => "kms", Origin::External => "external" },
        "key_rotation_enabled": record.rotation.enabled.to_string(),
        "sys_enterprise_project_id": "0",
        "keystore_id": "0",
    })
}

/// The dialect's key specs and the core's, as create-key takes them and describe-key shows them (Huawei's
/// CreateKey reference; `SECP256K1` is in huaweicloudsdkkms's enumeration). Changing a name changes what clients
/// see.
pub const KEY_SPECS: &[(&str, KeySpec)] = &[
    ("AES_256", KeySpec::SymmetricDefault),
    ("RSA_2048", KeySpec::Rsa2048),
    ("RSA_3072", KeySpec::Rsa3072),
    ("RSA_4096", KeySpec::Rsa4096),
    ("EC_P256", KeySpec::EccNistP256),
    ("EC_P384", KeySpec::EccNistP384),
    ("SECP256K1", KeySpec::EccSecgP256k1),
    ("HMAC_256", KeySpec::Hmac256),
    ("HMAC_384", KeySpec::Hmac384),
    ("HMAC_512", KeySpec::Hmac512),
];

/// Key specs of the Huawei API that kmsim does not simulate (the Chinese SM algorithms, Ed25519).
const UNSIMULATED_KEY_SPECS: &[&str] = &["SM4", "SM2", "ED25519", "HMAC_SM3"];

/// The usages create-key takes (the API has no key agreement); they are named as in the AWS dialect.
const KEY_USAGES: [KeyUsage; 4] =
    [KeyUsage::EncryptDecrypt, KeyUsage::SignVerify, KeyUsage::GenerateVerifyMac, KeyUsage::KeyAgreement];

/// A key's `key_spec`: the dialect's name, or the AWS name of a spec only the AWS dialect creates
/// (`ECC_NIST_P521`, `HMAC_224`).
fn key_spec_name(spec: KeySpec) -> &'static str {
    KEY_SPECS.iter().find(|(_, s)| *s == spec).map_or(spec.as_str(), |(name, _)| name)
}

/// create-key's `key_spec`.
fn parse_key_spec(name: &str) -> Result<KeySpec, OtcError> {
    if let Some((_, spec)) = KEY_SPECS.iter().find(|(n, _)| *n == name) {
        return Ok(*spec);
    }
    if UNSIMULATED_KEY_SPECS.contains(&name) {
        return Err(OtcError::bad(
            "KMS.0308",
            format!("kmsim does not simulate {name} keys; see docs/api-coverage.md."),
        ));
    }
    let valid: Vec<&str> = KEY_SPECS.iter().map(|(n, _)| *n).collect();
    Err(OtcError::bad("KMS.0308", format!("Invalid key_spec {name}: one of {}.", valid.join(", "))))
}

/// create-key's `key_usage`, checked against the spec; without one, the API's default for the spec.
fn key_usage_for(spec: KeySpec, name: Option<&str>) -> Result<KeyUsage, OtcError> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(match spec.family() {
            Family::Symmetric => KeyUsage::EncryptDecrypt,
            Family::Rsa | Family::Ecc => KeyUsage::SignVerify,
            Family::Hmac => KeyUsage::GenerateVerifyMac,
        });
    };
    let usage = KEY_USAGES.into_iter().find(|u| u.as_str() == name).ok_or_else(|| {
        OtcError::bad(
            "KMS.0308",
            format!("Invalid key_usage {name}: one of {}.", KEY_USAGES.map(KeyUsage::as_str).join(", ")),
        )
    })?;
    let valid: Vec<&str> = spec.usages().iter().filter(|u| KEY_USAGES.contains(u)).map(|u| u.as_str()).collect();
    if !valid.contains(&usage.as_str()) {
        return Err(OtcError::bad(
            "KMS.0308",
            format!("key_usage {name} is not valid for key_spec {}: {}.", key_spec_name(spec), valid.join(" or ")),
        ));
    }
    Ok(usage)
}

/// The algorithms of one request field: the core's algorithms the dialect accepts, their names (the AWS names),
/// and the names of the Huawei API that kmsim does not simulate.
#[derive(Clone, Copy)]
struct AlgorithmTable<T: 'static> {
    accepted: &'static [T],
    name: fn(T) -> &'static str,
    unsimulated: &'static [&'static str],
}

/// `signing_algorithm` (Huawei's Sign reference, less the SM2 and Ed25519 ones).
const SIGNING_ALGORITHMS: AlgorithmTable<SigningAlgorithm> = AlgorithmTable {
    accepted: SigningAlgorithm::ALL,
    name: SigningAlgorithm::as_str,
    unsimulated: &["SM2DSA_SM3", "ED25519_SHA_512", "ED25519_PH_SHA_512"],
};

/// `mac_algorithm`: Huawei's three, and HMAC_SHA_224 for the HMAC_224 keys the AWS dialect makes.
const MAC_ALGORITHMS: AlgorithmTable<MacAlgorithm> =
    AlgorithmTable { accepted: MacAlgorithm::ALL, name: MacAlgorithm::as_str, unsimulated: &["HMAC_SM3"] };

/// `encryption_algorithm` of encrypt-data and decrypt-data (Huawei's EncryptData reference: no OAEP with SHA-1).
const ENCRYPTION_ALGORITHMS: AlgorithmTable<EncryptionAlgorithm> = AlgorithmTable {
    accepted: &[EncryptionAlgorithm::SymmetricDefault, EncryptionAlgorithm::RsaesOaepSha256],
    name: EncryptionAlgorithm::as_str,
    unsimulated: &["SM2_ENCRYPT"],
};

/// An algorithm of `table` by name; KMS.0308 naming the valid ones, or saying that kmsim does not simulate it.
fn parse_algorithm<T: Copy>(field: &str, name: &str, table: AlgorithmTable<T>) -> Result<T, OtcError> {
    if let Some(algorithm) = table.accepted.iter().copied().find(|a| (table.name)(*a) == name) {
        return Ok(algorithm);
    }
    if table.unsimulated.contains(&name) {
        return Err(OtcError::bad("KMS.0308", format!("kmsim does not simulate {name}; see docs/api-coverage.md.")));
    }
    let valid: Vec<&str> = table.accepted.iter().map(|a| (table.name)(*a)).collect();
    Err(OtcError::bad("KMS.0308", format!("Invalid {field} {name}: one of {}.", valid.join(", "))))
}

/// `message_type` of sign and verify: DIGEST unless the request says RAW (the API's default, unlike AWS's).
fn message_type(name: Option<&str>) -> Result<MessageType, OtcError> {
    match name {
        None | Some("" | "DIGEST") => Ok(MessageType::Digest),
        Some("RAW") => Ok(MessageType::Raw),
        Some(other) => Err(OtcError::bad("KMS.0308", format!("Invalid message_type {other}: DIGEST or RAW."))),
    }
}

/// get-publickey's `public_key`: the DER SubjectPublicKeyInfo as PEM, with the CRLF line ends of the API
/// reference's example.
fn public_key_pem(der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\r\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push_str("\r\n");
    }
    pem.push_str("-----END PUBLIC KEY-----\r\n");
    pem
}

/// The key id at the end of a key ARN.
fn id_of_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// A key alias of the dialect (`obs/default`, `my-key`) as the core's alias name.
fn alias_name(key_alias: &str) -> String {
    format!("alias/{key_alias}")
}

/// `key_alias`: 1–255 of `[A-Za-z0-9/_-]`, not ending in `/default` (reserved for the service default keys).
fn check_key_alias(key_alias: &str) -> Result<(), OtcError> {
    let valid = !key_alias.is_empty()
        && key_alias.len() <= 255
        && key_alias.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
        && !key_alias.ends_with("/default")
        && !key_alias.starts_with("aws/");
    if valid { Ok(()) } else { Err(OtcError::bad("KMS.1101", format!("Invalid key_alias {key_alias}."))) }
}

fn check_description(description: &str) -> Result<(), OtcError> {
    if description.chars().count() > 255 {
        return Err(OtcError::bad("KMS.1103", "key_description must be at most 255 characters."));
    }
    Ok(())
}

/// Grant operations of the dialect and the core's.
const GRANT_OPERATIONS: &[(&str, GrantOperation)] = &[
    ("create-datakey", GrantOperation::GenerateDataKey),
    ("create-datakey-without-plaintext", GrantOperation::GenerateDataKeyWithoutPlaintext),
    ("encrypt-datakey", GrantOperation::Encrypt),
    ("decrypt-datakey", GrantOperation::Decrypt),
    ("encrypt-data", GrantOperation::Encrypt),
    ("decrypt-data", GrantOperation::Decrypt),
    ("describe-key", GrantOperation::DescribeKey),
    ("create-grant", GrantOperation::CreateGrant),
    ("retire-grant", GrantOperation::RetireGrant),
];

/// The names a granted core operation is listed under.
fn grant_operation_names(operation: GrantOperation) -> impl Iterator<Item = &'static str> {
    GRANT_OPERATIONS.iter().filter(move |(_, op)| *op == operation).map(|(name, _)| *name)
}

// ---- dispatch ------------------------------------------------------------------------------------

impl Call<'_> {
    /// Runs one verb: a `match` on [`OtcVerb`], one arm per implemented verb (or group of verbs sharing a shape);
    /// the verbs kmsim does not implement answer [`OtcError::not_implemented`].
    fn dispatch(&mut self, verb: OtcVerb) -> Result<Value, OtcError> {
        use OtcVerb as V;
        if !verb.is_supported() {
            return Err(OtcError::not_implemented(verb));
        }
        let kms = self.kms;
        match verb {
            V::CreateKmsTag => {
                let key_id = self.path_key_id()?;
                let tag = match self.body.get("tag") {
                    Some(Value::Object(tag)) => parse_tag(tag)?,
                    _ => return Err(OtcError::missing("tag")),
                };
                self.kms.tag_resource(&self.context.caller, &key_id, &[tag])?;
                Ok(json!({}))
            }
            V::BatchCreateKmsTags => {
                let key_id = self.path_key_id()?;
                let tags: Vec<Tag> = match self.body.get("tags") {
                    Some(Value::Array(tags)) if !tags.is_empty() => tags
                        .iter()
                        .map(|t| {
                            t.as_object().ok_or_else(|| OtcError::bad("KMS.0407", "Invalid tags.")).and_then(parse_tag)
                        })
                        .collect::<Result<_, _>>()?,
                    Some(Value::Array(_)) => return Err(OtcError::bad("KMS.0401", "The tag list is empty.")),
                    _ => return Err(OtcError::missing("tags")),
                };
                match self.str("action")? {
                    "create" => self.kms.tag_resource(&self.context.caller, &key_id, &tags)?,
                    "delete" => {
                        let keys: Vec<String> = tags.into_iter().map(|t| t.key).collect();
                        self.kms.untag_resource(&self.context.caller, &key_id, &keys)?;
                    }
                    _ => return Err(OtcError::bad("KMS.0404", "action must be create or delete.")),
                }
                Ok(json!({}))
            }
            V::DeleteTag => {
                let key_id = self.path_key_id()?;
                let tag_key = self.path_segment(2)?;
                self.kms.untag_resource(&self.context.caller, &key_id, &[tag_key])?;
                Ok(json!({}))
            }
            V::ShowKmsTags => {
                let key_id = self.path_key_id()?;
                let page = self.kms.list_resource_tags(&self.context.caller, &key_id, usize::MAX, None)?;
                let tags: Vec<Value> = page.items.iter().map(|t| json!({"key": t.key, "value": t.value})).collect();
                Ok(json!({"existTagsNum": tags.len(), "tags": tags}))
            }
            V::ListKmsTags => {
                let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
                for record in self.own_keys()? {
                    for tag in &record.tags {
                        let values = by_key.entry(tag.key.clone()).or_default();
                        if !values.contains(&tag.value) {
                            values.push(tag.value.clone());
                        }
                    }
                }
                let tags: Vec<Value> =
                    by_key.into_iter().map(|(key, values)| json!({"key": key, "values": values})).collect();
                Ok(json!({"tags": tags}))
            }
            V::CreateAlias => {
                let (alias, key_id) = (self.str("alias")?.to_owned(), self.key_id()?);
                self.kms.create_alias(&self.context.caller, &alias, &key_id)?;
                self.alias_json(&alias, &key_id)
            }
            V::AssociateAlias => {
                let (alias, key_id) = (self.str("alias")?.to_owned(), self.str("target_key_id")?.to_owned());
                self.audit.key_arn = Some(key_id.clone());
                self.kms.update_alias(&self.context.caller, &alias, &key_id)?;
                self.alias_json(&alias, &key_id)
            }
            V::DeleteAlias => {
                let aliases: Vec<String> = match self.body.get("aliases") {
                    Some(Value::Array(list)) if !list.is_empty() => list
                        .iter()
                        .map(|a| a.as_str().map(str::to_owned).ok_or_else(|| OtcError::invalid("aliases")))
                        .collect::<Result<_, _>>()?,
                    _ => return Err(OtcError::missing("aliases")),
                };
                let key_id = self.key_id()?;
                let record = self.kms.describe_key(&self.context.caller, &key_id)?;
                // Every alias is checked before any is deleted: a refused request deletes nothing.
                let of_key: std::collections::BTreeSet<String> =
                    self.aliases_of(&record.id)?.into_iter().map(|a| a.name).collect();
                let aliases: std::collections::BTreeSet<String> = aliases.into_iter().collect();
                if let Some(alias) = aliases.iter().find(|a| !of_key.contains(*a)) {
                    return Err(OtcError::bad("KMS.0308", format!("The alias {alias} does not belong to the key.")));
                }
                for alias in &aliases {
                    self.kms.delete_alias(&self.context.caller, alias)?;
                }
                Ok(json!({}))
            }
            V::ListAliases => {
                let key_id = self.query_param("key_id").filter(|k| !k.is_empty());
                let limit = match self.query_param("limit").filter(|l| !l.is_empty()) {
                    None => 100,
                    Some(l) => {
                        l.parse().ok().filter(|l| (1..=100).contains(l)).ok_or_else(|| OtcError::invalid("limit"))?
                    }
                };
                let marker = self.query_param("marker").filter(|m| !m.is_empty());
                let page = self.kms.list_aliases(&self.context.caller, key_id.as_deref(), limit, marker.as_deref())?;
                let aliases: Vec<Value> = page.items.iter().map(|a| self.alias_record_json(a)).collect();
                Ok(json!({
                    "aliases": aliases,
                    "page_info": {"next_marker": page.next_marker.unwrap_or_default(), "current_count": page.items.len()},
                }))
            }
            V::CreateKey => {
                let key_alias = self.str("key_alias")?.to_owned();
                check_key_alias(&key_alias)?;
                let description = self.opt_str("key_description")?.unwrap_or_default().to_owned();
                check_description(&description)?;
                let spec = match self.opt_str("key_spec")? {
                    None | Some("") => KeySpec::SymmetricDefault,
                    Some(name) => parse_key_spec(name)?,
                };
                let usage = key_usage_for(spec, self.opt_str("key_usage")?)?;
                let origin = match self.opt_str("origin")? {
                    None | Some("" | "kms") => Origin::AwsKms,
                    Some("external") => Origin::External,
                    Some(_) => return Err(OtcError::invalid("origin")),
                };
                let input = CreateKeyInput {
                    description,
                    policy: None,
                    tags: Vec::new(),
                    alias: Some(alias_name(&key_alias)),
                    spec,
                    usage,
                    origin,
                    ..CreateKeyInput::default()
                };
                let record = kms.create_key(&self.context.caller, input).with(|e| match e {
                    Error::Validation(_) | Error::InvalidAliasName(_) => Some("KMS.1101"),
                    _ => None,
                })?;
                self.audit.key_arn = Some(record.arn());
                Ok(
                    json!({"key_info": {"key_id": record.id, "domain_id": self.key.domain_id, "region_id": record.region}}),
                )
            }
            V::DescribeKey => {
                let key_id = self.key_id()?;
                let record = kms.describe_key(&self.context.caller, &key_id)?;
                self.audit.key_arn = Some(record.arn());
                let alias = self.key_alias(&record.id)?;
                Ok(json!({"key_info": key_info(&record, &alias, &self.key.domain_id)}))
            }
            V::ListKeys => {
                let limit = self.limit()?;
                let marker = self.marker()?;
                let state = match self.opt_str("key_state")? {
                    None | Some("") => None,
                    Some(code @ ("1" | "2" | "3" | "4" | "5")) => Some(code.to_owned()),
                    Some(_) => return Err(OtcError::invalid("key_state")),
                };
                let keys: Vec<KeyRecord> = self
                    .own_keys()?
                    .into_iter()
                    .filter(|r| state.as_deref().is_none_or(|s| s == state_code(r.state)))
                    .collect();
                let total = keys.len();
                let (page, next_marker, truncated) = offset_page(keys, limit, marker);
                let mut details = Vec::with_capacity(page.len());
                for record in &page {
                    details.push(key_info(record, &self.key_alias(&record.id)?, &self.key.domain_id));
                }
                let ids: Vec<&str> = page.iter().map(|r| r.id.as_str()).collect();
                Ok(json!({
                    "keys": ids,
                    "key_details": details,
                    "next_marker": next_marker,
                    "truncated": truncated.to_string(),
                    "total": total,
                }))
            }
            V::UpdateKeyAlias => {
                let key_id = self.key_id()?;
                let key_alias = self.str("key_alias")?.to_owned();
                check_key_alias(&key_alias)?;
                let record = self.customer_key(&key_id)?;
                let old = self.current_alias(&record.id)?;
                let new = alias_name(&key_alias);
                if old.as_deref() != Some(new.as_str()) {
                    // The new alias first: if it is taken (KMS.1104), the key keeps its alias.
                    kms.create_alias(&self.context.caller, &new, &record.id)?;
                    if let Some(old) = old {
                        kms.delete_alias(&self.context.caller, &old)?;
                    }
                }
                Ok(json!({"key_info": {"key_id": record.id, "key_alias": key_alias}}))
            }
            V::UpdateKeyDescription => {
                let key_id = self.key_id()?;
                let description =
                    self.opt_str("key_description")?.ok_or_else(|| OtcError::missing("key_description"))?.to_owned();
                check_description(&description)?;
                let record = self.customer_key(&key_id)?;
                kms.update_key_description(&self.context.caller, &record.id, &description)?;
                Ok(json!({"key_info": {"key_id": record.id, "key_description": description}}))
            }
            V::EnableKey | V::DisableKey => {
                let key_id = self.key_id()?;
                let record = self.customer_key(&key_id)?;
                let enable = verb == V::EnableKey;
                match (record.state, enable) {
                    (KeyState::Disabled, true) => kms.enable_key(&self.context.caller, &record.id)?,
                    (KeyState::Enabled, false) => kms.disable_key(&self.context.caller, &record.id)?,
                    (KeyState::PendingDeletion, _) => {
                        return Err(OtcError::bad("KMS.0210", format!("The key {} is pending deletion.", record.id)));
                    }
                    (_, true) => return Err(OtcError::bad("KMS.1201", "The key is not disabled.")),
                    (_, false) => return Err(OtcError::bad("KMS.1301", "The key is not enabled.")),
                }
                let state = if enable { KeyState::Enabled } else { KeyState::Disabled };
                Ok(json!({"key_info": {"key_id": record.id, "key_state": state_code(state)}}))
            }
            V::ScheduleKeyDeletion => {
                let key_id = self.key_id()?;
                let days = self.opt_int("pending_days")?.ok_or_else(|| OtcError::missing("pending_days"))?;
                if !(7..=1096).contains(&days) {
                    return Err(OtcError::bad("KMS.1401", "pending_days must be between 7 and 1096."));
                }
                let record = self.customer_key(&key_id)?;
                if record.state == KeyState::PendingDeletion {
                    return Err(OtcError::bad("KMS.1402", "The key is already pending deletion."));
                }
                let record = kms.schedule_key_deletion(&self.context.caller, &record.id, days as u32)?;
                Ok(json!({"key_id": record.id, "key_state": state_code(record.state)}))
            }
            V::CancelKeyDeletion => {
                let key_id = self.key_id()?;
                let record = self.customer_key(&key_id)?;
                if record.state != KeyState::PendingDeletion {
                    return Err(OtcError::bad("KMS.1501", "The key is not pending deletion."));
                }
                let record = kms.cancel_key_deletion(&self.context.caller, &record.id)?;
                Ok(json!({"key_id": record.id, "key_state": state_code(record.state)}))
            }
            V::CreateDatakey | V::CreateDatakeyWithoutPlaintext => {
                let with_plaintext = verb == V::CreateDatakey;
                let length_code = if with_plaintext { "KMS.1901" } else { "KMS.2001" };
                let key_id = self.key_id()?;
                let bits = match (self.opt_int("datakey_length")?, self.opt_str("key_spec")?) {
                    (Some(bits), _) => bits,
                    (None, None | Some("AES_256")) => 256,
                    (None, Some("AES_128")) => 128,
                    (None, Some(_)) => return Err(OtcError::bad("KMS.1902", "key_spec must be AES_128 or AES_256.")),
                };
                if !(8..=8192).contains(&bits) || bits % 8 != 0 {
                    return Err(OtcError::bad(
                        length_code,
                        "datakey_length must be a multiple of 8 between 8 and 8192.",
                    ));
                }
                let context = self.context()?;
                let data_key = kms.generate_data_key(
                    &self.context.caller,
                    &key_id,
                    (bits / 8) as usize,
                    &context,
                    with_plaintext,
                )?;
                self.audit.key_arn = Some(data_key.key_arn.clone());
                let mut out = json!({"key_id": key_id, "cipher_text": hex::encode(&data_key.ciphertext_blob)});
                if let Some(plaintext) = &data_key.plaintext {
                    out["plain_text"] = Value::String(hex::encode(plaintext.as_slice()));
                }
                Ok(out)
            }
            V::EncryptDatakey => {
                let key_id = self.key_id()?;
                let plain_hex = self.str("plain_text")?;
                let plain = Zeroizing::new(
                    hex::decode(plain_hex).map_err(|_| OtcError::bad("KMS.2101", "plain_text is not hex."))?,
                );
                let length =
                    self.opt_int("datakey_plain_length")?.ok_or_else(|| OtcError::missing("datakey_plain_length"))?;
                if !(1..=1024).contains(&length) {
                    return Err(OtcError::bad("KMS.2102", "datakey_plain_length must be between 1 and 1024 bytes."));
                }
                let length = length as usize;
                if plain.len() != length + 32 {
                    return Err(OtcError::bad(
                        "KMS.2101",
                        "plain_text must be the hex of the data key followed by its SHA-256 digest.",
                    ));
                }
                let (data_key, digest) = plain.split_at(length);
                if !bool::from(subtle::ConstantTimeEq::ct_eq(Sha256::digest(data_key).as_slice(), digest)) {
                    return Err(OtcError::bad("KMS.2103", "The SHA-256 digest of the data key does not match."));
                }
                let context = self.context()?;
                let (blob, arn) = kms.encrypt(
                    &self.context.caller,
                    &key_id,
                    data_key,
                    &context,
                    EncryptionAlgorithm::SymmetricDefault,
                )?;
                self.audit.key_arn = Some(arn);
                Ok(json!({"key_id": key_id, "cipher_text": hex::encode(blob), "datakey_length": length.to_string()}))
            }
            V::DecryptDatakey => {
                let key_id = self.key_id()?;
                let blob = hex::decode(self.str("cipher_text")?)
                    .map_err(|_| OtcError::bad("KMS.2201", "cipher_text is not hex."))?;
                let length =
                    self.opt_int("datakey_cipher_length")?.ok_or_else(|| OtcError::missing("datakey_cipher_length"))?;
                if !(1..=1024).contains(&length) {
                    return Err(OtcError::bad("KMS.2202", "datakey_cipher_length must be between 1 and 1024 bytes."));
                }
                let context = self.context()?;
                let decrypted = kms
                    .decrypt(
                        &self.context.caller,
                        &blob,
                        &context,
                        Some(&key_id),
                        EncryptionAlgorithm::SymmetricDefault,
                    )
                    .with(|e| match e {
                        Error::InvalidCiphertext(_) => Some("KMS.2201"),
                        _ => None,
                    })?;
                self.audit.key_arn = Some(decrypted.key_arn.clone());
                let data_key = decrypted.plaintext.as_slice();
                if data_key.len() != length as usize {
                    return Err(OtcError::bad("KMS.2202", "datakey_cipher_length is not the length of the data key."));
                }
                Ok(json!({
                    "data_key": hex::encode(data_key),
                    "datakey_length": data_key.len().to_string(),
                    "datakey_dgst": hex::encode(Sha256::digest(data_key)),
                }))
            }
            V::EncryptData => {
                let key_id = self.key_id()?;
                let plaintext = Zeroizing::new(self.str("plain_text")?.as_bytes().to_vec());
                if plaintext.len() > 4096 {
                    return Err(OtcError::bad("KMS.0203", "plain_text must be 1 to 4096 bytes."));
                }
                let algorithm = self.encryption_algorithm()?;
                let context = self.context()?;
                let (blob, arn) = kms.encrypt(&self.context.caller, &key_id, &plaintext, &context, algorithm)?;
                self.audit.key_arn = Some(arn);
                Ok(json!({"key_id": key_id, "cipher_text": BASE64.encode(blob)}))
            }
            V::DecryptData => {
                let blob = BASE64.decode(self.str("cipher_text")?).map_err(|_| OtcError::invalid("cipher_text"))?;
                let algorithm = self.encryption_algorithm()?;
                let key_id = match self.opt_str("key_id")? {
                    Some(id) if !id.is_empty() => Some(self.key_id()?),
                    // An RSA ciphertext does not name its key.
                    _ if algorithm != EncryptionAlgorithm::SymmetricDefault => return Err(OtcError::missing("key_id")),
                    _ => None,
                };
                let context = self.context()?;
                let decrypted = kms.decrypt(&self.context.caller, &blob, &context, key_id.as_deref(), algorithm).with(
                    |e| match e {
                        Error::InvalidCiphertext(_) if algorithm != EncryptionAlgorithm::SymmetricDefault => {
                            Some("KMS.0311")
                        }
                        _ => None,
                    },
                )?;
                self.audit.key_arn = Some(decrypted.key_arn.clone());
                let plaintext = decrypted.plaintext.as_slice();
                Ok(json!({
                    "key_id": id_of_arn(&decrypted.key_arn),
                    "plain_text": String::from_utf8_lossy(plaintext),
                    "plain_text_base64": BASE64.encode(plaintext),
                }))
            }
            V::Sign | V::Verify => {
                let key_id = self.key_id()?;
                let message = self.message()?;
                let algorithm = self.algorithm("signing_algorithm", SIGNING_ALGORITHMS)?;
                let input = SignInput { bytes: &message, message_type: message_type(self.opt_str("message_type")?)? };
                if verb == V::Sign {
                    let signed = kms.sign(&self.context.caller, &key_id, input, algorithm)?;
                    self.audit.key_arn = Some(signed.key_arn.clone());
                    return Ok(
                        json!({"key_id": id_of_arn(&signed.key_arn), "signature": BASE64.encode(signed.signature)}),
                    );
                }
                let signature = self.base64("signature")?;
                // A signature that does not verify is an answer, not an error (the API reference's
                // `signature_valid`, a string).
                let valid = match kms.verify(&self.context.caller, &key_id, input, algorithm, &signature) {
                    Ok(arn) => {
                        self.audit.key_arn = Some(arn);
                        true
                    }
                    Err(Error::InvalidSignature(_)) => false,
                    Err(e) => return Err(e.into()),
                };
                Ok(json!({"key_id": key_id, "signature_valid": valid.to_string()}))
            }
            V::GetParametersForImport => self.get_parameters_for_import(),
            V::ImportKeyMaterial => self.import_key_material(),
            V::DeleteImportedKeyMaterial => self.delete_imported_key_material(),
            V::DeriveSharedSecret => {
                let key_id = self.key_id()?;
                match self.str("key_agreement_algorithm")? {
                    "ECDH" => {}
                    other => {
                        return Err(OtcError::bad(
                            "KMS.0308",
                            format!("Invalid key_agreement_algorithm {other}: only ECDH."),
                        ));
                    }
                }
                if self.body.get("recipient").is_some_and(|r| !r.is_null()) {
                    return Err(OtcError::bad(
                        "KMS.0308",
                        "kmsim does not simulate recipient (enclave attestation); see docs/api-coverage.md.",
                    ));
                }
                let public_key = self.base64("public_key")?;
                let (secret, arn, _) = kms.derive_shared_secret(&self.context.caller, &key_id, &public_key)?;
                self.audit.key_arn = Some(arn.clone());
                Ok(json!({
                    "key_id": id_of_arn(&arn),
                    "key_agreement_algorithm": "ECDH",
                    "shared_secret": BASE64.encode(secret.as_slice()),
                }))
            }
            V::GetPublickey => {
                let key_id = self.key_id()?;
                let (record, der) = kms.get_public_key(&self.context.caller, &key_id)?;
                self.audit.key_arn = Some(record.arn());
                Ok(json!({"key_id": record.id, "public_key": public_key_pem(&der)}))
            }
            V::GenerateMac | V::VerifyMac => {
                let key_id = self.key_id()?;
                let algorithm = self.algorithm("mac_algorithm", MAC_ALGORITHMS)?;
                let message = self.message()?;
                if verb == V::GenerateMac {
                    let (mac, arn) = kms.generate_mac(&self.context.caller, &key_id, &message, algorithm)?;
                    self.audit.key_arn = Some(arn.clone());
                    return Ok(json!({
                        "key_id": id_of_arn(&arn),
                        "mac_algorithm": algorithm.as_str(),
                        "mac": hex::encode(mac),
                    }));
                }
                let mac = hex::decode(self.str("mac")?)
                    .map_err(|_| OtcError::bad("KMS.0308", "mac is not hex (as generate-mac answers it)."))?;
                // As with verify, a MAC that does not verify is `mac_valid` false (a JSON boolean here).
                let valid = match kms.verify_mac(&self.context.caller, &key_id, &message, algorithm, &mac) {
                    Ok(arn) => {
                        self.audit.key_arn = Some(arn);
                        true
                    }
                    Err(Error::InvalidMac(_)) => false,
                    Err(e) => return Err(e.into()),
                };
                Ok(json!({"key_id": key_id, "mac_algorithm": algorithm.as_str(), "mac_valid": valid}))
            }
            V::GenRandom => {
                let bits =
                    self.opt_int("random_data_length")?.ok_or_else(|| OtcError::missing("random_data_length"))?;
                if !(8..=8192).contains(&bits) || bits % 8 != 0 {
                    return Err(OtcError::bad(
                        "KMS.1801",
                        "random_data_length must be a multiple of 8 between 8 and 8192.",
                    ));
                }
                let random = kms.generate_random((bits / 8) as usize)?;
                Ok(json!({"random_data": hex::encode(random.as_slice())}))
            }
            V::EnableKeyRotation | V::DisableKeyRotation => {
                let key_id = self.key_id()?;
                let record = self.customer_key(&key_id)?;
                if verb == V::EnableKeyRotation {
                    kms.enable_key_rotation(&self.context.caller, &record.id, record.rotation.period_days)?;
                } else {
                    kms.disable_key_rotation(&self.context.caller, &record.id)?;
                }
                Ok(json!({}))
            }
            V::UpdateKeyRotationInterval => {
                let key_id = self.key_id()?;
                let days = self.opt_int("rotation_interval")?.ok_or_else(|| OtcError::missing("rotation_interval"))?;
                if !(30..=365).contains(&days) {
                    return Err(OtcError::bad("KMS.0308", "rotation_interval must be between 30 and 365 days."));
                }
                let record = self.customer_key(&key_id)?;
                kms.update_key_rotation_period(&self.context.caller, &record.id, days as u32)?;
                Ok(json!({}))
            }
            V::GetKeyRotationStatus => {
                let key_id = self.key_id()?;
                let record = kms.get_key_rotation_status(&self.context.caller, &key_id)?;
                self.audit.key_arn = Some(record.arn());
                let rotations = record.versions.len().saturating_sub(1);
                let last = if rotations > 0 {
                    record.versions.last().map(|v| (v.created * 1000).to_string()).unwrap_or_default()
                } else {
                    String::new()
                };
                Ok(json!({
                    "key_rotation_enabled": record.rotation.enabled,
                    "rotation_interval": record.rotation.period_days,
                    "last_rotation_time": last,
                    "number_of_rotations": rotations,
                }))
            }
            V::CreateGrant => {
                let key_id = self.key_id()?;
                let grantee = self.str("grantee_principal")?.to_owned();
                let grantee_type = self.opt_str("grantee_principal_type")?.unwrap_or("user").to_owned();
                if !matches!(grantee_type.as_str(), "user" | "domain") {
                    return Err(OtcError::invalid("grantee_principal_type"));
                }
                let names: Vec<String> = match self.body.get("operations") {
                    Some(Value::Array(list)) if !list.is_empty() => list
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| OtcError::invalid("operations")))
                        .collect::<Result<_, _>>()?,
                    _ => return Err(OtcError::missing("operations")),
                };
                if names.iter().all(|n| n == "create-grant") {
                    return Err(OtcError::bad("KMS.2401", "create-grant cannot be the only granted operation."));
                }
                let mut operations = Vec::new();
                for name in &names {
                    let op = GRANT_OPERATIONS
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, op)| *op)
                        .ok_or_else(|| OtcError::bad("KMS.0308", format!("Invalid operation {name}.")))?;
                    if !operations.contains(&op) {
                        operations.push(op);
                    }
                }
                let retiring =
                    self.opt_str("retiring_principal")?.filter(|r| !r.is_empty()).map(|r| self.principal(r, "domain"));
                let input = CreateGrantInput {
                    grantee_principal: self.principal(&grantee, &grantee_type),
                    retiring_principal: retiring,
                    operations,
                    constraints: None,
                    name: self.opt_str("name")?.filter(|n| !n.is_empty()).map(str::to_owned),
                };
                let (grant_id, _token) = kms.create_grant(&self.context.caller, &key_id, input).with(|e| match e {
                    Error::LimitExceeded(_) => Some("KMS.2404"),
                    Error::Validation(_) => Some("KMS.2402"),
                    _ => None,
                })?;
                Ok(json!({"grant_id": grant_id}))
            }
            V::ListGrants => {
                let key_id = self.key_id()?;
                let (limit, marker) = (self.limit()?, self.marker()?);
                let (page, arn) = kms.list_grants(&self.context.caller, &key_id, None, None, usize::MAX, None)?;
                self.audit.key_arn = Some(arn.clone());
                let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
                let total = page.items.len();
                let (grants, next_marker, truncated) = offset_page(page.items, limit, marker);
                let grants: Vec<Value> = grants.iter().map(|g| self.grant_json(g, &id)).collect();
                Ok(
                    json!({"grants": grants, "next_marker": next_marker, "truncated": truncated.to_string(), "total": total}),
                )
            }
            V::ListRetirableGrants => {
                let (limit, marker) = (self.limit()?, self.marker()?);
                let principal = self.context.caller.principal_arn.clone();
                let page = kms.list_retirable_grants(&self.context.caller, &principal, usize::MAX, None)?;
                let total = page.items.len();
                let (grants, next_marker, truncated) = offset_page(page.items, limit, marker);
                let grants: Vec<Value> = grants
                    .iter()
                    .map(|(g, arn)| self.grant_json(g, arn.rsplit('/').next().unwrap_or_default()))
                    .collect();
                Ok(
                    json!({"grants": grants, "next_marker": next_marker, "truncated": truncated.to_string(), "total": total}),
                )
            }
            V::RevokeGrant | V::RetireGrant => {
                let key_id = self.key_id()?;
                let grant_id = self.str("grant_id")?.to_owned();
                // The key exists (else KMS.0207 here), so what is not found below is the grant.
                kms.describe_key(&self.context.caller, &key_id)?;
                let not_found = |e: &Error| matches!(e, Error::NotFound(_)).then_some("KMS.2501");
                if verb == V::RevokeGrant {
                    kms.revoke_grant(&self.context.caller, &key_id, &grant_id).with(not_found)?;
                } else {
                    kms.retire_grant(&self.context.caller, RetireBy::Id { key_id: &key_id, grant_id: &grant_id })
                        .with(not_found)?;
                }
                Ok(json!({}))
            }
            V::CreateRsaDatakeyPair => self.create_datakey_pair(pairs::RSA_PAIR_SPECS),
            V::CreateEcDatakeyPair => self.create_datakey_pair(pairs::EC_PAIR_SPECS),
            V::ReEncrypt => self.re_encrypt(),
            V::RotateOnDemand => {
                let key_id = self.key_id()?;
                let record = self.customer_key(&key_id)?;
                if record.origin == Origin::External {
                    return Err(OtcError::bad(
                        "KMS.0312",
                        "Keys with imported key material cannot be rotated through this API.",
                    ));
                }
                // The core allows 25 on-demand rotations per key; the API reference names no code for more.
                kms.rotate_key_on_demand(&self.context.caller, &record.id).with(|e| match e {
                    Error::LimitExceeded(_) => Some("KMS.0308"),
                    _ => None,
                })?;
                Ok(json!({"key_id": record.id}))
            }
            V::UserQuotas => self.user_quotas(),
            V::UserInstances => self.user_instances(),
            V::ResourceInstances => self.resource_instances(),
            // `is_supported` sent the others away above.
            _ => Err(OtcError::not_implemented(verb)),
        }
    }

    /// A path segment after `kms/`, percent-decoded.
    fn path_segment(&self, index: usize) -> Result<String, OtcError> {
        let segment = self.segments.get(index).ok_or_else(OtcError::no_such_api)?;
        Ok(percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned())
    }

    fn path_key_id(&mut self) -> Result<String, OtcError> {
        let key_id = self.path_segment(0)?;
        self.audit.key_arn = Some(key_id.clone());
        Ok(key_id)
    }

    /// The caller's keys in kmsim's region.
    fn own_keys(&self) -> Result<Vec<KeyRecord>, OtcError> {
        let page = self.kms.list_keys(&self.context.caller, usize::MAX, None)?;
        Ok(page.items.iter().filter_map(|(id, _)| self.kms.key_record(id)).collect())
    }

    /// The aliases that point at a key.
    fn aliases_of(&self, key_id: &str) -> Result<Vec<crate::model::AliasRecord>, OtcError> {
        Ok(self.kms.list_aliases(&self.context.caller, Some(key_id), usize::MAX, None)?.items)
    }

    /// The alias shown as a key's `key_alias`: the one made last (by create-key, update-key-alias or the alias
    /// API), so that update-key-alias replaces what describe-key shows and leaves other aliases alone.
    fn current_alias(&self, key_id: &str) -> Result<Option<String>, OtcError> {
        let aliases = self.aliases_of(key_id)?;
        Ok(aliases.into_iter().max_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name))).map(|a| a.name))
    }

    /// The `key_alias` of a key: [`Call::current_alias`] without `alias/`.
    fn key_alias(&self, key_id: &str) -> Result<String, OtcError> {
        let alias = self.current_alias(key_id)?.unwrap_or_default();
        Ok(alias.strip_prefix("alias/").unwrap_or(&alias).to_owned())
    }

    /// The answer to create-alias and associate-alias: the alias just written, now pointing at `key_id`.
    fn alias_json(&self, alias: &str, key_id: &str) -> Result<Value, OtcError> {
        let record = self
            .aliases_of(key_id)?
            .into_iter()
            .find(|a| a.name == alias)
            .ok_or_else(|| OtcError::from(Error::Internal(format!("alias {alias} vanished"))))?;
        Ok(self.alias_record_json(&record))
    }

    fn alias_record_json(&self, alias: &crate::model::AliasRecord) -> Value {
        json!({
            "domain_id": self.key.domain_id,
            "key_id": alias.target_key_id,
            "alias": alias.name,
            "alias_urn": format!("{}:{}:kms:alias/{}", self.context.caller.region, self.key.domain_id, alias.name.trim_start_matches("alias/")),
            "create_time": (alias.created * 1000).to_string(),
            "update_time": (alias.updated * 1000).to_string(),
        })
    }

    /// The principal a grantee or retiring principal names: a domain's account root, or the id as given.
    fn principal(&self, id: &str, kind: &str) -> String {
        match (kind, self.accounts.account_of_domain(id)) {
            ("domain", Some(account)) => root_principal(account),
            _ => id.to_owned(),
        }
    }

    /// How a stored principal is shown: a known account's root as its domain id.
    fn principal_shown(&self, principal: &str) -> (String, &'static str) {
        let domain = self
            .accounts
            .account_ids()
            .find(|account| root_principal(account) == principal)
            .and_then(|account| self.accounts.account(account))
            .map(|ids| ids.domain_id.clone());
        match domain {
            Some(domain) => (domain, "domain"),
            None => (principal.to_owned(), "user"),
        }
    }

    fn grant_json(&self, grant: &Grant, key_id: &str) -> Value {
        let (grantee, grantee_type) = self.principal_shown(&grant.grantee_principal);
        let mut operations: Vec<&str> = Vec::new();
        for op in &grant.operations {
            for name in grant_operation_names(*op) {
                if !operations.contains(&name) {
                    operations.push(name);
                }
            }
        }
        json!({
            "key_id": key_id,
            "grant_id": grant.grant_id,
            "grantee_principal": grantee,
            "grantee_principal_type": grantee_type,
            "operations": operations,
            "issuing_principal": self.principal_shown(&grant.issuing_account).0,
            "creation_date": (grant.created * 1000).to_string(),
            "name": grant.name.clone().unwrap_or_default(),
            "retiring_principal": grant.retiring_principal.as_deref().map(|p| self.principal_shown(p).0).unwrap_or_default(),
        })
    }

    /// The caller's key, refusing the service default keys, which the dialect does not let anyone manage.
    fn customer_key(&mut self, key_id: &str) -> Result<KeyRecord, OtcError> {
        let record = self.kms.describe_key(&self.context.caller, key_id)?;
        self.audit.key_arn = Some(record.arn());
        if record.manager == KeyManager::Aws {
            return Err(OtcError::bad("KMS.0211", "The default master key does not support this operation."));
        }
        Ok(record)
    }
}

/// When an imported key's current material expires, if it does.
fn current_material_expiry(record: &KeyRecord) -> Option<i64> {
    record.versions.last().filter(|v| v.has_material()).and_then(|v| v.imported.as_ref()).and_then(|i| i.valid_to)
}

fn parse_tag(tag: &Map<String, Value>) -> Result<Tag, OtcError> {
    let key = tag
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| OtcError::bad("KMS.0406", "Invalid tag key."))?;
    let value = match tag.get("value") {
        None | Some(Value::Null) => "",
        Some(Value::String(v)) => v,
        Some(_) => return Err(OtcError::bad("KMS.0405", "Invalid tag value.")),
    };
    Ok(Tag { key: key.to_owned(), value: value.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `verb` with a JSON body as the default access key against `kms` (the submodules' tests use it too).
    pub(super) fn run(kms: &Kms, verb: OtcVerb, body: Value) -> Result<Value, OtcError> {
        let accounts = Accounts::with_defaults();
        let key = accounts.iter().next().expect("the default access key").clone();
        let mut call = Call {
            kms,
            accounts: &accounts,
            context: RequestContext::new(key.caller("eu-de"), None, Api::OtcKms, verb.name(), verb.action()),
            key,
            body: body.as_object().cloned().unwrap_or_default(),
            segments: Vec::new(),
            query: "",
            audit: Audit::default(),
        };
        call.dispatch(verb)
    }

    /// The table's `Supported` and the dispatch agree: a verb answers "not implemented" exactly when the table says
    /// kmsim does not implement it, so a new verb cannot be listed without its handler.
    #[test]
    fn dispatch_answers_not_implemented_exactly_for_the_verbs_the_table_marks() {
        let kms = Kms::in_memory().expect("an in-memory KMS");
        let accounts = Accounts::with_defaults();
        let key = accounts.iter().next().expect("the default access key").clone();
        for verb in OtcVerb::ALL {
            let mut call = Call {
                kms: &kms,
                accounts: &accounts,
                context: RequestContext::new(key.caller("eu-de"), None, Api::OtcKms, verb.name(), verb.action()),
                key: key.clone(),
                body: Map::new(),
                segments: Vec::new(),
                query: "",
                audit: Audit::default(),
            };
            let result = call.dispatch(*verb);
            let not_implemented = match &result {
                Err(e) => e.message.starts_with("kmsim does not implement") && e.code() == "APIGW.0101",
                Ok(_) => false,
            };
            assert_eq!(not_implemented, !verb.is_supported(), "{verb}: {result:?}");
        }
    }

    #[test]
    fn rotate_on_demand_adds_a_version_to_customer_keys_only() {
        let kms = Kms::in_memory().expect("an in-memory KMS");
        let created = run(&kms, OtcVerb::CreateKey, json!({"key_alias": "rotating"})).unwrap();
        let key_id = created["key_info"]["key_id"].as_str().unwrap().to_owned();
        let rotated = run(&kms, OtcVerb::RotateOnDemand, json!({"key_id": key_id})).unwrap();
        assert_eq!(rotated, json!({"key_id": key_id}));
        let status = run(&kms, OtcVerb::GetKeyRotationStatus, json!({"key_id": key_id})).unwrap();
        assert_eq!(status["number_of_rotations"], 1);
        let caller = Accounts::with_defaults().iter().next().unwrap().caller("eu-de");
        let default_key = kms.service_managed_key(&caller, "alias/obs/default", "Default key for OBS").unwrap();
        let refused = run(&kms, OtcVerb::RotateOnDemand, json!({"key_id": default_key.id})).unwrap_err();
        assert_eq!(refused.code(), "KMS.0211");
        assert_eq!(kms.key_record(&default_key.id).unwrap().versions.len(), 1);
    }

    #[test]
    fn the_not_implemented_answer_names_the_verb_and_the_coverage_page() {
        let e = OtcError::not_implemented(OtcVerb::CreatePin);
        assert_eq!((e.status, e.code()), (StatusCode::NOT_FOUND, "APIGW.0101"));
        assert_eq!(e.message, "kmsim does not implement create-pin; see docs/api-coverage.md.");
    }
}
