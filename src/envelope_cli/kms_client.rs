//! The two AWS KMS calls an envelope needs, GenerateDataKey and Decrypt, over the AWS JSON 1.1 protocol, signed
//! with SigV4 (`auth::sigv4::sign`), to any KMS endpoint: kmsim over HTTP or HTTPS, or AWS KMS itself.
//!
//! One connection per call (a command makes one or two calls), HTTP/1.1 on hyper, HTTPS on rustls with the
//! system's roots plus an optional CA bundle. Transient failures (connection errors, HTTP 5xx, throttling) are
//! retried as the SDKs' standard retry mode does: `AWS_MAX_ATTEMPTS` attempts (default 3) with capped exponential
//! backoff and full jitter. Plaintext data keys live in [`DataKey`], wiped when dropped, as is the response body
//! that carried them (buffers inside hyper and rustls are theirs, and not wiped).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioIo;
use rand::Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use zeroize::{Zeroize, Zeroizing};

use super::aws_config::Credentials;

/// Length of the data keys this tool asks for (`KeySpec` `AES_256`).
pub const DATA_KEY_LEN: usize = 32;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one attempt (connect, send, read the answer) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response body read: KMS answers are a few KB.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Attempts per call unless `AWS_MAX_ATTEMPTS` says otherwise (the SDKs' standard mode).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// Error codes that mean "try again", from the SDKs' standard retry mode.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
];

/// Why a KMS call failed.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// KMS answered with an error: its type (`DisabledException`, ...) and message.
    #[error("KMS refused {operation}: {code}: {message}")]
    Refused {
        /// The operation.
        operation: &'static str,
        /// The AWS error type, without its namespace.
        code: String,
        /// The message KMS gave.
        message: String,
        /// The HTTP status.
        status: u16,
    },
    /// KMS could not be reached, or its answer could not be read.
    #[error("calling KMS {operation} at {endpoint}: {reason}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// KMS answered 200 with something this client cannot use.
    #[error("KMS {operation} answered unexpectedly: {reason}")]
    BadAnswer {
        /// The operation.
        operation: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The endpoint or CA bundle is unusable.
    #[error("{0}")]
    Setup(String),
}

impl KmsError {
    fn is_retryable(&self) -> bool {
        match self {
            KmsError::Refused { code, status, .. } => *status >= 500 || RETRYABLE_CODES.contains(&code.as_str()),
            KmsError::Transport { .. } => true,
            KmsError::BadAnswer { .. } | KmsError::Setup(_) => false,
        }
    }
}

/// A plaintext data key and its KMS ciphertext blob; the plaintext is wiped when dropped.
pub struct DataKey {
    /// The ARN of the KMS key that made it (what KMS answered as `KeyId`).
    pub key_arn: String,
    /// The plaintext data key.
    pub plaintext: Zeroizing<[u8; DATA_KEY_LEN]>,
    /// The KMS ciphertext blob of the data key (empty for a Decrypt answer).
    pub ciphertext: Vec<u8>,
}

/// Where to send KMS calls, for one region.
#[derive(Clone)]
pub struct KmsClient {
    endpoint: Endpoint,
    region: String,
    credentials: Credentials,
    tls: Option<Arc<rustls::ClientConfig>>,
    max_attempts: u32,
}

/// A parsed endpoint URL.
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    https: bool,
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority.
    authority: String,
    path: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, KmsError> {
        let bad = |why: &str| KmsError::Setup(format!("the endpoint URL '{url}' {why}"));
        let uri: hyper::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = match uri.path() {
            "" => "/".to_owned(),
            path => path.to_owned(),
        };
        Ok(Endpoint { url: url.to_owned(), https, host, port, authority: authority.as_str().to_owned(), path })
    }
}

impl KmsClient {
    /// A client for `region` at `endpoint_url`, signing with `credentials`; HTTPS trusts the system's roots and
    /// the certificates in `ca_bundle`. `max_attempts` counts the first try.
    pub fn new(
        endpoint_url: &str,
        region: &str,
        credentials: Credentials,
        ca_bundle: Option<&std::path::Path>,
        max_attempts: u32,
    ) -> Result<KmsClient, KmsError> {
        let endpoint = Endpoint::parse(endpoint_url)?;
        let tls = if endpoint.https { Some(Arc::new(tls_config(ca_bundle)?)) } else { None };
        Ok(KmsClient { endpoint, region: region.to_owned(), credentials, tls, max_attempts: max_attempts.max(1) })
    }

    /// GenerateDataKey with `KeySpec` `AES_256` under `key_id` (key id, key ARN, alias name or alias ARN), bound to
    /// `context`.
    pub async fn generate_data_key(
        &self,
        key_id: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        const OPERATION: &str = "GenerateDataKey";
        let mut request = serde_json::json!({ "KeyId": key_id, "KeySpec": "AES_256" });
        if !context.is_empty() {
            request["EncryptionContext"] = serde_json::json!(context);
        }
        let body = self.call(OPERATION, request.to_string().into_bytes()).await?;
        let answer: KeyAnswer = parse_answer(OPERATION, &body)?;
        let ciphertext = answer.ciphertext_blob.as_deref().ok_or_else(|| missing(OPERATION, "CiphertextBlob"))?;
        let ciphertext = BASE64.decode(ciphertext).map_err(|_| not_base64(OPERATION, "CiphertextBlob"))?;
        answer.into_data_key(OPERATION, ciphertext)
    }

    /// Decrypt of a data key's `ciphertext` under the key `key_arn` (named, as the AWS Encryption SDK does, so KMS
    /// refuses another key) with `context`; KMS must answer for that very key.
    pub async fn decrypt(
        &self,
        key_arn: &str,
        ciphertext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        const OPERATION: &str = "Decrypt";
        let mut request = serde_json::json!({ "KeyId": key_arn, "CiphertextBlob": BASE64.encode(ciphertext) });
        if !context.is_empty() {
            request["EncryptionContext"] = serde_json::json!(context);
        }
        let body = self.call(OPERATION, request.to_string().into_bytes()).await?;
        let answer: KeyAnswer = parse_answer(OPERATION, &body)?;
        let key = answer.into_data_key(OPERATION, Vec::new())?;
        if key.key_arn != key_arn {
            return Err(KmsError::BadAnswer {
                operation: OPERATION,
                reason: format!("it decrypted with {} instead of {key_arn}", key.key_arn),
            });
        }
        Ok(key)
    }

    /// One call, retried while it fails transiently; returns the body of the 200 answer.
    async fn call(&self, operation: &'static str, body: Vec<u8>) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let body = Bytes::from(body);
        let mut attempt = 1;
        loop {
            let result = match tokio::time::timeout(ATTEMPT_TIMEOUT, self.attempt(operation, body.clone())).await {
                Ok(result) => result,
                Err(_) => Err(self.transport(operation, format!("no answer within {ATTEMPT_TIMEOUT:?}"))),
            };
            match result {
                Err(error) if error.is_retryable() && attempt < self.max_attempts => {
                    let cap = MAX_BACKOFF.min(Duration::from_secs(1u64 << attempt.min(5)));
                    tokio::time::sleep(cap.mul_f64(rand::thread_rng().r#gen::<f64>())).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, operation: &'static str, body: Bytes) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let request = self.signed_request(operation, body)?;
        let address = (self.endpoint.host.as_str(), self.endpoint.port);
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => return Err(self.transport(operation, format!("connecting: {error}"))),
            Err(_) => return Err(self.transport(operation, "connecting: timed out".into())),
        };
        let _ = tcp.set_nodelay(true);
        let (status, response) = match &self.tls {
            None => self.exchange(operation, TokioIo::new(tcp), request).await?,
            Some(config) => {
                let name = ServerName::try_from(self.endpoint.host.clone())
                    .map_err(|_| KmsError::Setup(format!("'{}' is not a valid TLS server name", self.endpoint.host)))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|error| self.transport(operation, format!("TLS: {error}")))?;
                self.exchange(operation, TokioIo::new(tls), request).await?
            }
        };
        if status == 200 {
            return Ok(response);
        }
        let error: ErrorAnswer = serde_json::from_slice(&response).unwrap_or_default();
        let code = error.kind.as_deref().map(|kind| kind.rsplit('#').next().unwrap_or(kind).to_owned());
        Err(KmsError::Refused {
            operation,
            code: code.unwrap_or_else(|| format!("HTTP {status}")),
            message: error.message.or(error.message_capitalized).unwrap_or_default(),
            status,
        })
    }

    /// Sends `request` over `io` and reads the whole answer (up to [`MAX_RESPONSE_BYTES`]).
    async fn exchange<I>(
        &self,
        operation: &'static str,
        io: I,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), KmsError>
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let failed = |what: &str, error: hyper::Error| self.transport(operation, format!("{what}: {error}"));
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(io).await.map_err(|error| failed("handshake", error))?;
        let connection = tokio::spawn(connection);
        let response = sender.send_request(request).await.map_err(|error| failed("sending", error))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Zeroizing::new(Vec::new());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| failed("reading the answer", error))?;
            if let Some(data) = frame.data_ref() {
                if bytes.len() + data.len() > MAX_RESPONSE_BYTES {
                    return Err(self.transport(operation, "the answer is larger than 1 MiB".into()));
                }
                bytes.extend_from_slice(data);
            }
        }
        connection.abort();
        Ok((status, bytes))
    }

    fn signed_request(&self, operation: &'static str, body: Bytes) -> Result<Request<Full<Bytes>>, KmsError> {
        let header = |value: &str| {
            HeaderValue::from_str(value).map_err(|_| KmsError::Setup(format!("'{value}' cannot be sent in a header")))
        };
        let mut headers = HeaderMap::new();
        headers.insert("host", header(&self.endpoint.authority)?);
        headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
        headers.insert("x-amz-target", header(&format!("TrentService.{operation}"))?);
        if let Some(token) = &self.credentials.session_token {
            headers.insert("x-amz-security-token", header(token)?);
        }
        let payload_hash = hex::encode(Sha256::digest(&body));
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs() as i64).unwrap_or(0);
        let params = auth::sigv4::SigningParams {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: &self.credentials.secret_access_key,
            region: &self.region,
            service: "kms",
            time,
        };
        auth::sigv4::sign(
            "POST",
            &self.endpoint.path,
            "",
            &mut headers,
            &payload_hash,
            auth::sigv4::UriEncoding::Double,
            &params,
        )
        .map_err(|error| KmsError::Setup(format!("signing the request: {error}")))?;
        headers.insert("user-agent", HeaderValue::from_static(concat!("kmsim/", env!("CARGO_PKG_VERSION"))));
        let mut request = Request::post(self.endpoint.path.as_str())
            .body(Full::new(body))
            .map_err(|error| KmsError::Setup(format!("building the request: {error}")))?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    fn transport(&self, operation: &'static str, reason: String) -> KmsError {
        KmsError::Transport { operation, endpoint: self.endpoint.url.clone(), reason }
    }
}

/// The parts of GenerateDataKey's and Decrypt's answers this client reads.
#[derive(Deserialize)]
struct KeyAnswer {
    #[serde(rename = "KeyId")]
    key_id: Option<String>,
    #[serde(rename = "Plaintext")]
    plaintext: Option<String>,
    #[serde(rename = "CiphertextBlob")]
    ciphertext_blob: Option<String>,
}

impl KeyAnswer {
    /// Takes the plaintext key out of the answer (wiping its base64 form).
    fn into_data_key(mut self, operation: &'static str, ciphertext: Vec<u8>) -> Result<DataKey, KmsError> {
        let result = (|| {
            let key_arn = self.key_id.clone().ok_or_else(|| missing(operation, "KeyId"))?;
            let encoded = self.plaintext.as_deref().ok_or_else(|| missing(operation, "Plaintext"))?;
            let decoded = Zeroizing::new(BASE64.decode(encoded).map_err(|_| not_base64(operation, "Plaintext"))?);
            let mut plaintext = Zeroizing::new([0; DATA_KEY_LEN]);
            if decoded.len() != DATA_KEY_LEN {
                return Err(KmsError::BadAnswer {
                    operation,
                    reason: format!("the data key is {} bytes long, not {DATA_KEY_LEN}", decoded.len()),
                });
            }
            plaintext.copy_from_slice(&decoded);
            Ok(DataKey { key_arn, plaintext, ciphertext })
        })();
        self.plaintext.zeroize();
        result
    }
}

/// An error answer of the AWS JSON protocol.
#[derive(Default, Deserialize)]
struct ErrorAnswer {
    #[serde(rename = "__type")]
    kind: Option<String>,
    message: Option<String>,
    #[serde(rename = "Message")]
    message_capitalized: Option<String>,
}

fn parse_answer<'a, T: Deserialize<'a>>(operation: &'static str, body: &'a [u8]) -> Result<T, KmsError> {
    serde_json::from_slice(body)
        .map_err(|error| KmsError::BadAnswer { operation, reason: format!("not the expected JSON: {error}") })
}

fn missing(operation: &'static str, field: &str) -> KmsError {
    KmsError::BadAnswer { operation, reason: format!("no {field}") }
}

fn not_base64(operation: &'static str, field: &str) -> KmsError {
    KmsError::BadAnswer { operation, reason: format!("{field} is not base64") }
}

/// The TLS client configuration: the system's roots (`rustls-native-certs`, which also honours `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`) plus every certificate in `ca_bundle`.
fn tls_config(ca_bundle: Option<&std::path::Path>) -> Result<rustls::ClientConfig, KmsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_bundle {
        let unreadable = |why: String| KmsError::Setup(format!("the CA bundle {}: {why}", path.display()));
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|error| unreadable(error.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|error| unreadable(error.to_string()))?;
        if certificates.is_empty() {
            return Err(unreadable("no PEM certificate in it".into()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|error| unreadable(error.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(KmsError::Setup(
            "no trusted certificate authorities: the system has none, and no CA bundle was given (--ca-bundle, \
             AWS_CA_BUNDLE)"
                .into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| KmsError::Setup(format!("TLS: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let endpoint = Endpoint::parse("http://127.0.0.1:4566").unwrap();
        assert_eq!(
            (endpoint.https, endpoint.host.as_str(), endpoint.port, endpoint.path.as_str()),
            (false, "127.0.0.1", 4566, "/")
        );
        assert_eq!(endpoint.authority, "127.0.0.1:4566");
        let endpoint = Endpoint::parse("https://kms.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(
            (endpoint.https, endpoint.port, endpoint.authority.as_str()),
            (true, 443, "kms.eu-west-1.amazonaws.com")
        );
        let endpoint = Endpoint::parse("https://[::1]:8443/prefix").unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port, endpoint.path.as_str()), ("::1", 8443, "/prefix"));
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("localhost:4566").is_err());
    }

    #[test]
    fn transient_failures_are_retried_and_refusals_are_not() {
        let refused = |code: &str, status| KmsError::Refused {
            operation: "Decrypt",
            code: code.into(),
            message: String::new(),
            status,
        };
        assert!(refused("ThrottlingException", 400).is_retryable());
        assert!(refused("KMSInternalException", 500).is_retryable());
        assert!(refused("DependencyTimeoutException", 503).is_retryable());
        assert!(!refused("DisabledException", 400).is_retryable());
        assert!(!refused("InvalidCiphertextException", 400).is_retryable());
        assert!(!refused("AccessDeniedException", 400).is_retryable());
    }

    #[test]
    fn answers_yield_the_key_and_wipe_its_text() {
        let answer: KeyAnswer = serde_json::from_str(&format!(
            r#"{{"KeyId":"arn:aws:kms:us-east-1:000000000000:key/k","Plaintext":"{}","CiphertextBlob":"AAEC"}}"#,
            BASE64.encode([7; 32])
        ))
        .unwrap();
        let key = answer.into_data_key("GenerateDataKey", vec![1]).unwrap();
        assert_eq!(*key.plaintext, [7; 32]);
        let short: KeyAnswer =
            serde_json::from_str(&format!(r#"{{"KeyId":"k","Plaintext":"{}"}}"#, BASE64.encode([7; 16]))).unwrap();
        assert!(matches!(short.into_data_key("Decrypt", vec![]), Err(KmsError::BadAnswer { .. })));
        let error: ErrorAnswer =
            serde_json::from_str(r#"{"__type":"com.amazonaws.kms#DisabledException","message":"m"}"#).unwrap();
        assert_eq!(error.kind.as_deref(), Some("com.amazonaws.kms#DisabledException"));
    }
}
