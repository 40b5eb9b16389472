//! POST Object: an HTML form uploads a file to `POST /bucket`. The form (`multipart/form-data`)
//! carries the key, a base64 policy document signed V2 or SigV4 ([`auth::post`]), the headers of
//! the object as fields (`Content-Type`, `x-amz-meta-*`, SSE fields, or their `x-obs-*` forms), and
//! the file last. The policy's conditions ([`crate::post_policy`]) bound what the form may say and
//! how large the file may be; the file streams into the same write as a PutObject.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use super::*;
use crate::post_policy::{PostPolicy, Refusal};

/// Bytes of the fields before the file, at most (S3's limit).
const MAX_FIELDS_BYTES: usize = 20 * 1024;
/// Form fields that are the object's headers (besides the `x-amz-*` / `x-obs-*` families).
const HEADER_FIELDS: [&str; 6] =
    ["content-type", "cache-control", "content-disposition", "content-encoding", "expires", "content-md5"];
/// Fields of the signature, never headers of the object.
const SIGNATURE_FIELDS: [&str; 6] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-signature",
    "x-amz-security-token",
    "x-obs-security-token",
];

/// The fields of a form, names as sent, looked up without regard to case.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| {
            S3Error::invalid_argument(format!(
                "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
            ))
            .with("ArgumentName", name.to_owned())
            .with("ArgumentValue", "")
        })
    }
}

/// S3's answer to fields before the file beyond [`MAX_FIELDS_BYTES`].
fn too_many_field_bytes() -> S3Error {
    S3Error::new(
        S3ErrorCode::MaxPostPreDataLengthExceeded,
        "Your POST request fields preceeding the upload file was too large.",
    )
}

fn malformed() -> S3Error {
    S3Error::new(
        S3ErrorCode::MalformedPOSTRequest,
        "The body of your POST request is not well-formed multipart/form-data.",
    )
}

impl From<Refusal> for S3Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(message) => S3Error::new(S3ErrorCode::InvalidPolicyDocument, message),
            Refusal::Denied(message) => S3Error::access_denied(message),
            Refusal::TooLarge { size, max } => {
                S3Error::new(S3ErrorCode::EntityTooLarge, "Your proposed upload exceeds the maximum allowed size")
                    .with("ProposedSize", size.to_string())
                    .with("MaxSizeAllowed", max.to_string())
            }
            Refusal::TooSmall { size, min } => S3Error::new(
                S3ErrorCode::EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed size",
            )
            .with("ProposedSize", size.to_string())
            .with("MinSizeAllowed", min.to_string()),
        }
    }
}

impl S3Api {
    /// Handles a POST Object: reads the fields, authenticates the policy, checks it, and streams the
    /// file into the bucket.
    pub(super) async fn post_object(
        &self,
        target: Target,
        parts: http::request::Parts,
        body: Body,
    ) -> Result<Response> {
        let bucket = target.bucket.unwrap_or_default();
        let content_type = header_str(&parts.headers, "content-type").unwrap_or("");
        let boundary = multer::parse_boundary(content_type).map_err(|_| malformed())?;
        let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
        let mut fields = Vec::new();
        let mut used = 0usize;
        let file = loop {
            let Some(mut field) = form.next_field().await.map_err(|_| malformed())? else { break None };
            let name = field.name().unwrap_or("").to_owned();
            if name.eq_ignore_ascii_case("file") {
                break Some(field);
            }
            // Names count too (one byte at least), so that the count of fields is bounded as well.
            used = used.saturating_add(name.len().max(1));
            if used > MAX_FIELDS_BYTES {
                return Err(too_many_field_bytes());
            }
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(|_| malformed())? {
                used = used.saturating_add(chunk.len());
                if used > MAX_FIELDS_BYTES {
                    return Err(too_many_field_bytes());
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value)
                .map_err(|_| S3Error::invalid_argument(format!("The form field {name} is not UTF-8 text")))?;
            fields.push((name, value));
        };
        let fields = Fields(fields);
        let Some(file) = file else {
            return Err(S3Error::invalid_argument("POST requires exactly one file upload per request.")
                .with("ArgumentName", "file")
                .with("ArgumentValue", "0"));
        };
        let submitted_key = fields.require("key")?.to_owned();
        let record = self.obs.bucket_record(&bucket).ok_or_else(|| S3Error::no_such_bucket(&bucket))?;

        // The signature covers the policy only; the policy covers every field.
        let family = if fields.get("AccessKeyId").is_some() || fields.0.iter().any(|(n, _)| is_obs_field(n)) {
            Family::Obs
        } else {
            Family::Aws
        };
        // Answered in the family the form spoke (OBS fields get `x-obs-*` answers), errors too.
        let answer = async {
            let (verified, carrier) = if let Some(signature) = fields.get("x-amz-signature") {
                if fields.require("x-amz-algorithm")? != sigv4::ALGORITHM {
                    return Err(S3Error::invalid_argument("x-amz-algorithm only supports AWS4-HMAC-SHA256")
                        .with("ArgumentName", "x-amz-algorithm"));
                }
                let (credential, date, policy) =
                    (fields.require("x-amz-credential")?, fields.require("x-amz-date")?, fields.require("policy")?);
                let token = fields.get("x-amz-security-token");
                (
                    Some(self.verifier.verify_post_v4(credential, date, policy, signature, token, "s3")),
                    Carrier::V4Header,
                )
            } else if let Some(signature) = fields.get("signature") {
                let (access_key, dialect) = match (fields.get("AWSAccessKeyId"), fields.get("AccessKeyId")) {
                    (Some(ak), _) => (ak, sigv2::Dialect::Aws),
                    (None, Some(ak)) => (ak, sigv2::Dialect::Obs),
                    (None, None) => (fields.require("AWSAccessKeyId")?, sigv2::Dialect::Aws),
                };
                let policy = fields.require("policy")?;
                let token = fields.get(dialect.security_token_header()).or_else(|| fields.get("x-amz-security-token"));
                (
                    Some(self.verifier.verify_post_v2(access_key, policy, signature, token, dialect, &record.region)),
                    Carrier::V2Header,
                )
            } else {
                // An unsigned form is the anonymous requester's: it writes only to a bucket whose ACL
                // lets everyone write.
                (None, Carrier::Unsigned)
            };
            let mut caller = match verified {
                Some(verified) => verified.map_err(|e| carrier.error(e))?.caller,
                None => access::anonymous_caller(&record.region),
            };
            // A signed form carries a policy (its signature is the policy's); an unsigned one may.
            let policy = match fields.get("policy") {
                None => None,
                Some(policy_text) => {
                    let policy_json = BASE64.decode(policy_text.trim()).map_err(|_| {
                        S3Error::new(S3ErrorCode::InvalidPolicyDocument, "Invalid Policy: Invalid 'Policy' encoding.")
                    })?;
                    Some(PostPolicy::parse(&policy_json)?)
                }
            };
            // The policy's expiration is the client's wall-clock time; the object is stamped by the simulated clock.
            if let Some(policy) = &policy {
                policy.check(&fields.0, &bucket, shared::time::now_unix_millis())?;
            }
            let now = self.clock.now_millis();
            let operation = S3Operation::PostObject { bucket: bucket.clone() };
            self.enter_bucket_region(&mut caller, &operation, carrier)?;

            // The object's headers, from the fields.
            let mut headers = HeaderMap::new();
            for (name, value) in &fields.0 {
                let mut lower = name.to_ascii_lowercase();
                // The form's canned ACL is its `acl` field.
                if lower == "acl" {
                    lower = "x-amz-acl".to_owned();
                }
                let is_header = HEADER_FIELDS.contains(&lower.as_str())
                    || ((lower.starts_with("x-amz-") || is_obs_field(&lower))
                        && !SIGNATURE_FIELDS.contains(&lower.as_str()));
                if !is_header {
                    continue;
                }
                let header_name = header::HeaderName::from_bytes(lower.as_bytes()).map_err(|_| {
                    S3Error::invalid_argument(format!("The form field {name} is not a valid header name"))
                })?;
                let header_value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
                    S3Error::invalid_argument(format!("The form field {name} is not a valid header value"))
                })?;
                headers.append(header_name, header_value);
            }
            let headers = self.object_headers(headers, family, &caller, true)?;
            let key = submitted_key.replace("${filename}", file.file_name().unwrap_or(""));
            let peer = parts.extensions.get::<Peer>().copied();
            let context =
                request_context(caller.clone(), peer, family, &operation, &headers, &BTreeMap::new(), carrier);
            context.log();
            let fired = self.fault(&context, family, &operation);
            super::injected(fired.as_ref()).await?;
            self.quota(family, &Method::POST, Some(&bucket), Some(&key))?;

            let sse = write_sse(SseRequest::from_headers(&headers, record.encryption.as_ref())?, family);
            let customer_md5 = customer_key_md5(&sse);
            let acl = acl::request_acl(&headers, &self.known_users)?;
            let mut input = PutInput { sse, now_millis: now, acl, ..put_input(&headers, PayloadMode::Unsigned)? };
            if let Some(tagging) = fields.get("tagging").filter(|t| !t.trim().is_empty()) {
                let tags = xml::parse::<xml::Tagging>(tagging)?.into_tags();
                crate::tagging::validate(&tags, crate::tagging::MAX_OBJECT_TAGS)?;
                input.tags = tags;
            }
            let refusal = Arc::new(OnceLock::new());
            let stream = Bounded {
                inner: file,
                size: 0,
                range: policy.as_ref().and_then(PostPolicy::length_range),
                refusal: Arc::clone(&refusal),
                done: false,
            };
            let written = self.obs.put_object(&context, &bucket, &key, input, None, stream).await;
            let object = match (written, refusal.get()) {
                (Ok(object), _) => object,
                (Err(_), Some(refusal)) => return Err(refusal.clone().into()),
                (Err(e), None) => return Err(e.into()),
            };

            let host = header_str(&parts.headers, "host").unwrap_or("localhost");
            let location = format!("http://{host}/{bucket}/{}", url_encode_key(&key));
            let mut response = if let Some(redirect) =
                fields.get("success_action_redirect").or_else(|| fields.get("redirect")).filter(|r| !r.is_empty())
            {
                let separator = if redirect.contains('?') { '&' } else { '?' };
                let target = format!(
                    "{redirect}{separator}bucket={}&key={}&etag={}",
                    url_encode_key(&bucket),
                    url_encode_key(&key),
                    url_encode_key(&object.etag)
                );
                let mut response = empty(StatusCode::SEE_OTHER);
                set_header(&mut response, "location", &target);
                response
            } else {
                match fields.get("success_action_status") {
                    Some("200") => empty(StatusCode::OK),
                    Some("201") => {
                        let mut w = Writer::plain_document("PostResponse");
                        w.element("Location", &location)
                            .element("Bucket", &bucket)
                            .element("Key", &key)
                            .element("ETag", &object.etag);
                        let mut response = xml_response(w.finish("PostResponse"));
                        *response.status_mut() = StatusCode::CREATED;
                        response
                    }
                    _ => empty(StatusCode::NO_CONTENT),
                }
            };
            set_header(&mut response, "etag", &object.etag);
            if let Some(id) = &object.version_id {
                set_header(&mut response, "x-amz-version-id", id);
            }
            if response.status() != StatusCode::SEE_OTHER {
                set_header(&mut response, "location", &location);
            }
            for (name, value) in sse_headers::response_headers(&object.sse) {
                set_header(&mut response, name, &value);
            }
            if let Some(md5) = customer_md5 {
                set_header(&mut response, sse_headers::SSE_C_KEY_MD5, &md5);
            }
            Ok::<_, S3Error>(faults::http::finish(fired.as_ref(), response).await)
        };
        let mut response = answer.await.map_err(|e| e.in_family(family))?;
        response.extensions_mut().insert(family);
        Ok(response)
    }
}

/// Whether a form field is in OBS's header family.
fn is_obs_field(name: &str) -> bool {
    name.len() > 6 && name[..6].eq_ignore_ascii_case("x-obs-")
}

/// The file's stream, cut short with an error when it leaves the policy's size range: above the
/// maximum as soon as it passes it, below the minimum at its end, before the write commits. The
/// refusal is left in `refusal` for the handler to answer with.
struct Bounded<S> {
    inner: S,
    size: u64,
    range: Option<(u64, u64)>,
    refusal: Arc<OnceLock<Refusal>>,
    done: bool,
}

impl<S> Bounded<S> {
    fn refuse(&mut self, refusal: Refusal) -> Poll<Option<std::result::Result<Bytes, std::io::Error>>> {
        self.done = true;
        let _ = self.refusal.set(refusal);
        Poll::Ready(Some(Err(std::io::Error::other("the file is outside the policy's content-length-range"))))
    }
}

impl<S> Stream for Bounded<S>
where
    S: Stream<Item = std::result::Result<Bytes, multer::Error>> + Unpin,
{
    type Item = std::result::Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.size = self.size.saturating_add(chunk.len() as u64);
                match self.range {
                    Some((_, max)) if self.size > max => {
                        let size = self.size;
                        self.refuse(Refusal::TooLarge { size, max })
                    }
                    _ => Poll::Ready(Some(Ok(chunk))),
                }
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => match self.range {
                Some((min, _)) if self.size < min => {
                    let size = self.size;
                    self.refuse(Refusal::TooSmall { size, min })
                }
                _ => {
                    self.done = true;
                    Poll::Ready(None)
                }
            },
            Poll::Pending => Poll::Pending,
        }
    }
}
