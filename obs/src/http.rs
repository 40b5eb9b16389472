//! The S3 front end: path-style and virtual-host-style (`bucket.localhost`) requests, SigV4 in
//! header form with plain or aws-chunked payloads, V2-style signatures (`AWS AK:sig` and OBS's
//! `OBS AK:sig`, [`auth::sigv2`]). [`S3Api::handle`] authenticates a request, parses it into an
//! [`S3Operation`] and calls one small handler per operation, which calls the core ([`Obs`]) and
//! renders its result; the core's errors become S3's (`From<Error> for S3Error`, in
//! [`crate::s3_error`]) and are written (`<Error><Code>` with the right status) in one place,
//! [`error_response`].
//!
//! It also speaks the OBS dialect of Open Telekom Cloud / Huawei Cloud: `HEAD /?apiversion`
//! answers unauthenticated with `x-obs-api: 3.0` (so that esdk-obs-python signs the OBS way), and a
//! request in the `x-obs-*` header family is answered in it ([`crate::dialect`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use auth::sigv2;
use auth::sigv4::{self, UriEncoding};
use auth::{RequestParts, Scheme, Verifier};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use faults::quotas::S3Class;
use faults::{Call as FaultCall, Faults, Fired, Service};
use futures::StreamExt;
use percent_encoding::percent_decode_str;
use shared::{Api, Caller, Clock, Peer, RequestContext};

use crate::access;
use crate::acl::{ObjectOwnership, PublicAccessBlock};
use crate::checksum::Algorithm;
use crate::chunked::{ChunkedDecoder, PayloadMode};
use crate::cors;
use crate::dialect::{self, Family, ObsCaller};
use crate::model::{BucketEncryption, ObjectRecord, VersionSel, WriteCondition};
use crate::multipart::{CompleteRequest, UploadRef};
use crate::operation::{
    ListBucketsParams, ListObjectsParams, ListVersionsParams, MAX_LIST_ENTRIES, S3Operation, Target, is_form_upload,
    parse_query,
};
use crate::s3_error::S3ErrorCode;
use crate::s3_error::{Result, S3Error};
use crate::service::{Conditions, NewBucket, Obs, PutInput, ReadPlan, Verdict, parse_range};
use crate::signature::{Carrier, check_all_signed, signed_headers_of};
use crate::sse::{self, SseRequest};
use crate::sse_headers;
use crate::xml::{self, Writer};

mod acl;
mod form_upload;

/// Largest XML request body accepted.
const MAX_XML_BODY: usize = 1024 * 1024;
/// User metadata (`x-amz-meta-*` names without the prefix, and values) S3 accepts, in bytes.
const MAX_METADATA_SIZE: usize = 2 * 1024;
/// User metadata (`x-obs-meta-*`) OBS accepts, in bytes.
const MAX_OBS_METADATA_SIZE: usize = 8 * 1024;
/// Request header section S3 accepts, in bytes (names, values and their separators).
const MAX_HEADER_SECTION: usize = 8 * 1024;
/// The storage classes of S3 (`x-amz-storage-class`).
const AWS_STORAGE_CLASSES: [&str; 12] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
    "FSX_OPENZFS",
];
/// The storage classes of OBS (`x-obs-storage-class`).
const OBS_STORAGE_CLASSES: [&str; 4] = ["STANDARD", "WARM", "COLD", "DEEP_ARCHIVE"];
/// Object headers S3 stores and returns as sent.
const STORED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// The S3 API over an [`Obs`].
#[derive(Debug, Clone)]
pub struct S3Api {
    obs: Arc<Obs>,
    /// Checks SigV4 and V2-style (`AWS` / `OBS`) signatures.
    verifier: Arc<Verifier>,
    /// The canonical users ACL grants may name (the accounts of `verifier`'s access keys, and EC2).
    known_users: Arc<acl::KnownUsers>,
    /// The region buckets are created in when the request names none.
    region: String,
    /// What object, upload and bucket dates are stamped by: the stack's simulated clock (signature and POST policy
    /// expiry keep wall-clock time, as the client's clock made them).
    clock: Arc<Clock>,
    /// The fault rules in force (`/_sim/faults`).
    faults: Arc<Faults>,
}

/// The source of a copy: its record, its plaintext, and the `x-amz-copy-source-version-id` to
/// answer (its version, once its bucket's versioning is configured).
struct CopySource {
    record: Arc<ObjectRecord>,
    body: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    version_id: Option<String>,
}

/// What a GetObject or HeadObject reads.
#[derive(Debug, Clone, Copy)]
struct Read<'a> {
    bucket: &'a str,
    key: &'a str,
    /// `versionId`.
    version: Option<&'a VersionSel>,
    /// `partNumber`.
    part_number: Option<u32>,
}

/// What every handler may need of a request besides its operation and body.
struct Call<'a> {
    /// Who asks for which operation on which resources, from where.
    context: &'a RequestContext,
    /// For SigV4, what the signatures of an aws-chunked body chain on.
    seed: Option<&'a sigv4::Seed>,
    /// How its body is encoded.
    mode: PayloadMode,
    /// The header family it speaks.
    family: Family,
    /// Its headers, in the S3 family.
    headers: &'a HeaderMap,
    /// The time of the request, Unix milliseconds.
    now: i64,
}

impl Call<'_> {
    /// Who signed the request.
    fn caller(&self) -> &Caller {
        &self.context.caller
    }
}

/// An actual (not preflight) request from a browser page of another origin: what decides the
/// CORS headers of its answer.
struct CorsRequest {
    origin: String,
    method: String,
    bucket: String,
}

impl CorsRequest {
    /// The request's origin, method and bucket, when it has an `Origin` and names a bucket.
    fn of(request: &Request<Body>) -> Option<Self> {
        if request.method() == Method::OPTIONS {
            return None;
        }
        let origin = request.headers().get(header::ORIGIN)?.to_str().ok()?;
        let bucket = Target::of_request(request.uri(), request.headers()).ok()?.bucket?;
        Some(CorsRequest { origin: origin.to_owned(), method: request.method().as_str().to_owned(), bucket })
    }
}

/// The context of an S3 or OBS request: its caller and peer, its operation's action and resource, and the
/// condition keys of its headers, query and signature.
fn request_context(
    caller: Caller,
    peer: Option<Peer>,
    family: Family,
    operation: &S3Operation,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
    carrier: Carrier,
) -> RequestContext {
    let api = match family {
        Family::Aws => Api::S3,
        Family::Obs => Api::Obs,
    };
    let mut context = RequestContext::new(caller, peer, api, operation.name(), operation.action())
        .with_resource(operation.resource_arn());
    context.conditions = operation.condition_keys(headers, query);
    // An unsigned request has no signature to describe.
    let signature_version = match carrier {
        Carrier::V2Header | Carrier::V2Query => "AWS",
        Carrier::V4Header | Carrier::V4Query => "AWS4-HMAC-SHA256",
        Carrier::Unsigned => return context,
    };
    let auth_type = match carrier {
        Carrier::V2Query | Carrier::V4Query => "REST-QUERY-STRING",
        Carrier::V2Header | Carrier::V4Header | Carrier::Unsigned => "REST-HEADER",
    };
    context.with_condition("s3:signatureversion", signature_version).with_condition("s3:authType", auth_type)
}

impl S3Api {
    /// A front end for `obs`, checking signatures with `verifier`.
    pub fn new(obs: Arc<Obs>, verifier: Arc<Verifier>, region: &str) -> Self {
        let known_users = Arc::new(acl::KnownUsers::of(verifier.accounts()));
        let faults = Arc::new(Faults::wall_clock());
        let clock = Arc::new(Clock::wall());
        S3Api { obs, verifier, known_users, region: region.to_owned(), clock, faults }
    }

    /// Stamps objects, uploads and buckets by `clock` (the stack's, shared with the KMS) instead of the wall clock.
    pub fn with_clock(mut self, clock: Arc<Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Takes its fault rules from `faults` (the stack's, shared with the KMS) instead of a set of its own.
    pub fn with_faults(mut self, faults: Arc<Faults>) -> Self {
        self.faults = faults;
        self
    }

    /// The fault rules that fire on the request of `context`: `None` at the cost of an atomic load when none is held.
    pub(crate) fn fault(&self, context: &RequestContext, family: Family, operation: &S3Operation) -> Option<Fired> {
        let service = match family {
            Family::Aws => Service::S3,
            Family::Obs => Service::Obs,
        };
        if !self.faults.active(service) {
            return None;
        }
        let call = FaultCall {
            dialect: family_name(family),
            operation: context.operation,
            principal: &context.caller.principal_arn,
            access_key: &context.caller.access_key_id,
            region: Some(&context.caller.region),
            bucket: operation.bucket(),
            object_key: operation.key(),
            ..FaultCall::default()
        };
        self.faults.check(service, &call, &|_| None)
    }

    /// Counts a request with `method` on `key` in `bucket` (or on the bucket itself) against the S3 request rate of
    /// its prefix ([`faults::quotas::s3_prefix`]) when quotas are enforced (`--quotas aws`): `SlowDown` when over.
    /// S3 only (OBS's rates are not simulated); a request on no bucket (ListBuckets) is not limited. One atomic load
    /// when quotas are off.
    pub(crate) fn quota(&self, family: Family, method: &Method, bucket: Option<&str>, key: Option<&str>) -> Result<()> {
        let quotas = &self.faults.quotas;
        if family != Family::Aws || !quotas.enabled() {
            return Ok(());
        }
        let Some(bucket) = bucket else {
            return Ok(());
        };
        let class = match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => S3Class::Read,
            _ => S3Class::Write,
        };
        match quotas.s3(bucket, key, class) {
            Some(throttled) => Err(S3Error::new(
                S3ErrorCode::injected(throttled.code).unwrap_or(S3ErrorCode::SlowDown),
                throttled.message,
            )),
            None => Ok(()),
        }
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request<Body>) -> Response {
        // From the OS: the thread's CSPRNG, no system call per request.
        let request_id = self.obs.entropy.uuid(shared::Purpose::RequestId).simple().to_string().to_uppercase();
        // An error may be answered before the request body was read; the connection then cannot be
        // reused, so say so (clients otherwise send their next request into a closing socket).
        // Likewise when a client waits for a `100 Continue` that an empty body never triggers.
        let has_body = !body_is_empty(request.headers());
        let expects_continue =
            request.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let family = Family::of_request(request.headers(), request.uri().query().unwrap_or(""));
        let cors_request = CorsRequest::of(&request);
        let (mut response, close) = match self.route(request, family).await {
            Ok(response) => (response, expects_continue && !has_body),
            Err(e) => {
                // Logged once, here, with the request id the client sees.
                if let Some(detail) = &e.internal_detail {
                    tracing::error!(%detail, %request_id, "internal error in the object store");
                }
                (error_response(&e, &request_id), has_body || expects_continue)
            }
        };
        if close {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(cors_request) = &cors_request {
            self.add_cors_headers(&mut response, cors_request);
        }
        // A form upload's family is in its fields, which only its handler reads: it says so.
        let family = response.extensions().get::<Family>().copied().unwrap_or(family);
        if family == Family::Obs {
            dialect::response_to_obs(response.headers_mut(), |account| self.domain_of(account));
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(family.request_id_header(), v.clone());
            if family == Family::Obs {
                response.headers_mut().insert(family.id2_header(), v);
            }
        }
        response
    }

    /// The OTC domain id of an account (the domain part of OBS key ids).
    fn domain_of(&self, account_id: &str) -> String {
        match self.verifier.accounts().account(account_id) {
            Some(ids) => ids.domain_id.clone(),
            None => shared::caller::default_project_ids(account_id).0,
        }
    }

    /// The caller as OBS key ids name it (account and domain).
    fn obs_caller<'a>(&self, caller: &'a Caller, domain_id: &'a str) -> ObsCaller<'a> {
        ObsCaller { account_id: &caller.account_id, domain_id }
    }

    /// The domain id of the access key that signed a request.
    fn caller_domain(&self, caller: &Caller) -> String {
        match self.verifier.accounts().get(&caller.access_key_id) {
            Some(key) => key.domain_id.clone(),
            None => self.domain_of(&caller.account_id),
        }
    }

    async fn route(&self, request: Request<Body>, family: Family) -> Result<Response> {
        let (parts, body) = request.into_parts();
        let target = Target::of_request(&parts.uri, &parts.headers)?;
        let query = parse_query(parts.uri.query().unwrap_or(""));
        // OBS clients ask which API the service speaks before signing anything.
        if parts.method == Method::HEAD && target.key.is_none() && query.contains_key("apiversion") {
            let mut response = empty(StatusCode::OK);
            set_header(&mut response, "x-obs-api", dialect::OBS_API_VERSION);
            return Ok(response);
        }
        if parts.method == Method::OPTIONS {
            return self.preflight(&target, &parts.headers);
        }
        // A browser form upload is authenticated by its form, not by its headers or query.
        if parts.method == Method::POST
            && target.bucket.is_some()
            && target.key.is_none()
            && query.is_empty()
            && is_form_upload(&parts.headers)
        {
            return self.post_object(target, parts, body).await;
        }
        if family == Family::Aws {
            check_header_section(&parts.headers)?;
        }
        let mode = PayloadMode::from_header(header_str(&parts.headers, "x-amz-content-sha256"))?;
        let carrier = Carrier::of_request(&parts.headers, &query)?;
        let request_parts = RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
        };
        let now_secs = shared::time::now_unix();
        let v2_request =
            || sigv2::SignedRequest { parts: request_parts, virtual_bucket: target.virtual_bucket.as_deref() };
        let verified = match carrier {
            // An unsigned request is the anonymous requester's: what ACLs grant everyone it may do.
            Carrier::Unsigned => None,
            // V2 signatures cover no body: aws-chunked bodies need SigV4's seed signature.
            Carrier::V2Header | Carrier::V2Query if mode.is_chunked() => {
                return Err(S3Error::new(
                    S3ErrorCode::InvalidRequest,
                    "aws-chunked payloads need AWS Signature Version 4",
                ));
            }
            Carrier::V2Header => Some(self.verifier.verify_v2(&v2_request(), &self.region, now_secs)),
            Carrier::V2Query => Some(self.verifier.verify_v2_query(&v2_request(), &self.region, now_secs)),
            Carrier::V4Query => {
                Some(self.verifier.verify_sigv4_presigned(&request_parts, "s3", UriEncoding::Single, now_secs))
            }
            Carrier::V4Header => {
                let payload_hash = match header_str(&parts.headers, "x-amz-content-sha256") {
                    Some(hash) => hash.to_owned(),
                    // Without the header, a client signs the SHA-256 of the body: fine for an empty body;
                    // S3 requires the header for any other.
                    None if body_is_empty(&parts.headers) => sigv4::EMPTY_SHA256.to_owned(),
                    None => {
                        return Err(S3Error::new(
                            S3ErrorCode::InvalidRequest,
                            "Missing required header for this request: x-amz-content-sha256",
                        ));
                    }
                };
                Some(self.verifier.verify_sigv4(&request_parts, &payload_hash, "s3", UriEncoding::Single, now_secs))
            }
        }
        .transpose()
        .map_err(|e| carrier.error(e))?;
        match carrier {
            Carrier::V4Header => check_all_signed(
                &parts.headers,
                header_str(&parts.headers, "authorization").and_then(signed_headers_of).unwrap_or(""),
            )?,
            Carrier::V4Query => {
                check_all_signed(&parts.headers, query.get("X-Amz-SignedHeaders").map_or("", String::as_str))?
            }
            // A V2 signature covers every header of its family; an unsigned request covers nothing.
            Carrier::V2Header | Carrier::V2Query | Carrier::Unsigned => {}
        }
        // What remains of the query once authentication has taken its parameters and the headers a
        // presigned URL carries (`x-amz-checksum-crc32`, or every `x-amz-*` header of a V2 URL), which
        // join the request's headers.
        let (query, query_headers) = carrier.split_query(query)?;
        let (mut caller, scheme) = match verified {
            Some(auth::Verified { caller, scheme, .. }) => (caller, Some(scheme)),
            None => (access::anonymous_caller(&self.region), None),
        };
        dialect::check_headers(&parts.headers, family)?;
        let now = self.clock.now_millis();
        let method = parts.method.clone();
        let mut headers = parts.headers;
        for (name, value) in &query_headers {
            if !headers.contains_key(name) {
                headers.insert(name, value.clone());
            }
        }
        let headers = self.object_headers(headers, family, &caller, method == Method::PUT || method == Method::POST)?;
        let operation = S3Operation::parse(&method, target, &query, &headers)?;
        self.enter_bucket_region(&mut caller, &operation, carrier)?;
        let caller = &caller;
        let peer = parts.extensions.get::<Peer>().copied();
        let context = request_context(caller.clone(), peer, family, &operation, &headers, &query, carrier);
        context.log();
        let seed = match &scheme {
            Some(Scheme::SigV4(seed)) => Some(seed),
            Some(Scheme::V2(_) | Scheme::SdkHmac) | None => None,
        };
        let fired = self.fault(&context, family, &operation);
        injected(fired.as_ref()).await?;
        self.quota(family, &method, operation.bucket(), operation.key())?;
        let call = Call { context: &context, seed, mode, family, headers: &headers, now };
        let response = self.dispatch(operation, &call, &method, &query, body).await?;
        Ok(faults::http::finish(fired.as_ref(), response).await)
    }

    /// Runs one operation: one small handler each.
    async fn dispatch(
        &self,
        operation: S3Operation,
        call: &Call<'_>,
        method: &Method,
        query: &BTreeMap<String, String>,
        body: Body,
    ) -> Result<Response> {
        let request = call.context;
        match operation {
            S3Operation::ListBuckets { params } => self.list_buckets(request, &params),
            S3Operation::CreateBucket { bucket } => self.create_bucket(call, &bucket, body).await,
            S3Operation::HeadBucket { bucket } => self.head_bucket(call, &bucket),
            S3Operation::DeleteBucket { bucket } => {
                self.obs.delete_bucket(request, &bucket).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::GetBucketLocation { bucket } => self.get_bucket_location(call, &bucket),
            S3Operation::PutBucketEncryption { bucket } => self.put_bucket_encryption(call, &bucket, body).await,
            S3Operation::GetBucketEncryption { bucket } => self.get_bucket_encryption(call, &bucket),
            S3Operation::DeleteBucketEncryption { bucket } => {
                self.obs.set_bucket_encryption(request, &bucket, None).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::PutBucketTagging { bucket } => {
                let tags = read_tagging(body).await?;
                self.obs.set_bucket_tags(request, &bucket, tags).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::GetBucketTagging { bucket } => {
                let record = self.obs.bucket_for(request, &bucket, request.action)?;
                if record.tags.is_empty() {
                    return Err(crate::error::Error::NoSuchTagSet { bucket }.into());
                }
                Ok(xml_response(xml::tagging_document(&record.tags)))
            }
            S3Operation::DeleteBucketTagging { bucket } => {
                self.obs.set_bucket_tags(request, &bucket, Vec::new()).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::PutObjectTagging { bucket, key, version } => {
                let tags = read_tagging(body).await?;
                let record = self.obs.set_object_tags(request, &bucket, &key, version.as_ref(), tags).await?;
                let mut response = empty(StatusCode::OK);
                self.set_version_header(&mut response, &bucket, &record);
                Ok(response)
            }
            S3Operation::GetObjectTagging { bucket, key, version } => {
                let (_, record) = self.obs.object_for(request, &bucket, &key, version.as_ref(), request.action)?;
                let mut response = xml_response(xml::tagging_document(&record.tags));
                self.set_version_header(&mut response, &bucket, &record);
                Ok(response)
            }
            S3Operation::DeleteObjectTagging { bucket, key, version } => {
                let record = self.obs.set_object_tags(request, &bucket, &key, version.as_ref(), Vec::new()).await?;
                let mut response = empty(StatusCode::NO_CONTENT);
                self.set_version_header(&mut response, &bucket, &record);
                Ok(response)
            }
            S3Operation::PutBucketVersioning { bucket } => {
                let config: xml::VersioningConfiguration = xml::parse(&read_xml(body).await?)?;
                self.obs.set_bucket_versioning(request, &bucket, config.versioning()?).await?;
                Ok(empty(StatusCode::OK))
            }
            S3Operation::GetBucketVersioning { bucket } => {
                let record = self.obs.bucket_for(request, &bucket, request.action)?;
                let mut w = Writer::document("VersioningConfiguration");
                if let Some(versioning) = record.versioning {
                    w.element("Status", versioning.as_str());
                }
                Ok(xml_response(w.finish("VersioningConfiguration")))
            }
            S3Operation::ListObjectVersions { bucket, params } => self.list_object_versions(request, &bucket, params),
            S3Operation::GetBucketAcl { bucket } => self.get_bucket_acl(call, &bucket),
            S3Operation::PutBucketAcl { bucket } => self.put_bucket_acl(call, &bucket, body).await,
            S3Operation::GetObjectAcl { bucket, key, version } => {
                self.get_object_acl(call, &bucket, &key, version.as_ref())
            }
            S3Operation::PutObjectAcl { bucket, key, version } => {
                self.put_object_acl(call, &bucket, &key, version.as_ref(), body).await
            }
            S3Operation::GetBucketOwnershipControls { bucket } => self.get_bucket_ownership_controls(call, &bucket),
            S3Operation::PutBucketOwnershipControls { bucket } => {
                self.put_bucket_ownership_controls(call, &bucket, body).await
            }
            S3Operation::DeleteBucketOwnershipControls { bucket } => {
                self.obs.set_bucket_ownership(request, &bucket, None).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::GetPublicAccessBlock { bucket } => self.get_public_access_block(call, &bucket),
            S3Operation::PutPublicAccessBlock { bucket } => self.put_public_access_block(call, &bucket, body).await,
            S3Operation::DeletePublicAccessBlock { bucket } => {
                self.obs.set_public_access_block(request, &bucket, None).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::PutBucketPolicy { bucket } => {
                let document = read_xml(body).await?;
                self.obs.set_bucket_policy(request, &bucket, Some(document)).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::GetBucketPolicy { bucket } => {
                let document = self.obs.bucket_policy(request, &bucket)?;
                let mut response = (StatusCode::OK, document).into_response();
                response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(response)
            }
            S3Operation::DeleteBucketPolicy { bucket } => {
                self.obs.set_bucket_policy(request, &bucket, None).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::GetBucketPolicyStatus { bucket } => {
                let public = self.obs.bucket_policy_is_public(request, &bucket)?;
                let mut w = Writer::document("PolicyStatus");
                w.element("IsPublic", if public { "true" } else { "false" });
                Ok(xml_response(w.finish("PolicyStatus")))
            }
            S3Operation::PutBucketCors { bucket } => self.put_bucket_cors(call, &bucket, body).await,
            S3Operation::GetBucketCors { bucket } => self.get_bucket_cors(call, &bucket),
            S3Operation::DeleteBucketCors { bucket } => {
                self.obs.set_bucket_cors(request, &bucket, Vec::new()).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::ListObjects { bucket, params } => self.list_objects(request, &bucket, &params, false),
            S3Operation::ListObjectsV2 { bucket, params } => self.list_objects(request, &bucket, &params, true),
            S3Operation::ListMultipartUploads { bucket, prefix, max_uploads } => {
                self.list_uploads(request, &bucket, &prefix, max_uploads)
            }
            S3Operation::DeleteObjects { bucket } => self.delete_objects(call, &bucket, body).await,
            // Form uploads are answered before authentication (`post_object`): one that arrives here
            // carried a signature of its own as well.
            S3Operation::PostObject { .. } => Err(S3Error::new(
                S3ErrorCode::InvalidRequest,
                "A POST Object request is authenticated by its form's policy and signature only",
            )),
            S3Operation::PutObject { bucket, key } => self.put_object(call, &bucket, &key, body).await,
            S3Operation::CopyObject { bucket, key, source } => self.copy_object(call, &bucket, &key, &source).await,
            S3Operation::GetObject { bucket, key, overrides, part_number, version } => {
                let read = Read { bucket: &bucket, key: &key, version: version.as_ref(), part_number };
                self.get_object(call, read, &overrides, false).await
            }
            S3Operation::HeadObject { bucket, key, overrides, part_number, version } => {
                let read = Read { bucket: &bucket, key: &key, version: version.as_ref(), part_number };
                self.get_object(call, read, &overrides, true).await
            }
            S3Operation::GetObjectAttributes { bucket, key, version } => {
                self.get_object_attributes(call, &bucket, &key, version.as_ref())
            }
            S3Operation::DeleteObject { bucket, key, version } => {
                let deleted = self.obs.delete_object(request, &bucket, &key, version.as_ref(), call.now).await?;
                let mut response = empty(StatusCode::NO_CONTENT);
                if deleted.delete_marker {
                    set_header(&mut response, "x-amz-delete-marker", "true");
                }
                if let Some(id) = &deleted.version_id {
                    set_header(&mut response, "x-amz-version-id", id);
                }
                Ok(response)
            }
            S3Operation::CreateMultipartUpload { bucket, key } => {
                self.create_multipart_upload(call, &bucket, &key).await
            }
            S3Operation::UploadPart { bucket, key, upload_id, part_number } => {
                let upload_ref = UploadRef { bucket: &bucket, key: &key, upload_id: &upload_id };
                self.upload_part(call, upload_ref, part_number, None, body).await
            }
            S3Operation::UploadPartCopy { bucket, key, upload_id, part_number, source } => {
                let upload_ref = UploadRef { bucket: &bucket, key: &key, upload_id: &upload_id };
                self.upload_part(call, upload_ref, part_number, Some(&source), body).await
            }
            S3Operation::CompleteMultipartUpload { bucket, key, upload_id } => {
                let upload_ref = UploadRef { bucket: &bucket, key: &key, upload_id: &upload_id };
                self.complete_multipart_upload(call, upload_ref, body).await
            }
            S3Operation::AbortMultipartUpload { bucket, key, upload_id } => {
                self.obs.abort_multipart_upload(request, &bucket, &key, &upload_id).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            S3Operation::ListParts { bucket, key, upload_id, max_parts, part_number_marker } => {
                let upload_ref = UploadRef { bucket: &bucket, key: &key, upload_id: &upload_id };
                self.list_parts(request, upload_ref, max_parts, part_number_marker)
            }
            operation @ S3Operation::Unsupported { .. } => {
                Err(S3Error::not_implemented(&operation.not_implemented_detail(method, query)))
            }
        }
    }

    /// CreateBucket: the region of its `LocationConstraint`, the ownership setting of
    /// `x-amz-object-ownership` (S3's default: `BucketOwnerEnforced`; OBS, which has ACLs but no
    /// ownership controls: `ObjectWriter`), the ACL of `x-amz-acl` / `x-amz-grant-*`, and all four
    /// Block Public Access settings.
    async fn create_bucket(&self, call: &Call<'_>, bucket: &str, body: Body) -> Result<Response> {
        let acl = acl::request_acl(call.headers, &self.known_users)?;
        let ownership = match header_str(call.headers, "x-amz-object-ownership") {
            None if call.family == Family::Obs => ObjectOwnership::ObjectWriter,
            None => ObjectOwnership::BucketOwnerEnforced,
            Some(text) => ObjectOwnership::parse(text.trim()).ok_or_else(|| {
                S3Error::invalid_argument(format!("Invalid x-amz-object-ownership header: {text}"))
                    .with("ArgumentName", "x-amz-object-ownership")
                    .with("ArgumentValue", text)
            })?,
        };
        let text = read_xml(body).await?;
        let region = if text.trim().is_empty() {
            self.region.clone()
        } else {
            let config: xml::CreateBucketConfiguration = xml::parse(&text)?;
            config.location_constraint.filter(|l| !l.is_empty()).unwrap_or_else(|| self.region.clone())
        };
        let settings = NewBucket { ownership, acl: acl.clone(), public_access_block: Some(PublicAccessBlock::ALL) };
        match self.obs.create_bucket(call.context, bucket, &region, call.now, settings).await {
            Ok(()) => {}
            // S3 answers 200 to re-creating one's own bucket in us-east-1 (its legacy region), and
            // resets its ACL; BucketAlreadyOwnedByYou everywhere else.
            Err(crate::error::Error::BucketAlreadyOwnedByYou { .. })
                if region == "us-east-1" && self.obs.bucket_record(bucket).is_some_and(|b| b.region == region) =>
            {
                self.obs.reset_bucket_acl(call.context, bucket, acl).await?;
            }
            Err(e) => return Err(e.into()),
        }
        let mut response = empty(StatusCode::OK);
        set_header(&mut response, "location", &format!("/{bucket}"));
        Ok(response)
    }

    fn head_bucket(&self, call: &Call<'_>, bucket: &str) -> Result<Response> {
        let record = self.obs.bucket_for(call.context, bucket, call.context.action)?;
        let mut response = empty(StatusCode::OK);
        set_header(&mut response, "x-amz-bucket-region", &record.region);
        Ok(response)
    }

    fn get_bucket_location(&self, call: &Call<'_>, bucket: &str) -> Result<Response> {
        let record = self.obs.bucket_for(call.context, bucket, call.context.action)?;
        let region = if record.region == "us-east-1" { "" } else { record.region.as_str() };
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{}\">{}</LocationConstraint>",
            xml::S3_NS,
            xml::escape(region)
        );
        Ok(xml_response(doc))
    }

    async fn put_bucket_encryption(&self, call: &Call<'_>, bucket: &str, body: Body) -> Result<Response> {
        let config: xml::EncryptionConfiguration = xml::parse(&read_xml(body).await?)?;
        let encryption = match call.family {
            Family::Aws => bucket_encryption(config)?,
            Family::Obs => {
                let domain = self.caller_domain(call.caller());
                obs_bucket_encryption(config, self.obs_caller(call.caller(), &domain))?
            }
        };
        self.obs.set_bucket_encryption(call.context, bucket, Some(encryption)).await?;
        Ok(empty(StatusCode::OK))
    }

    async fn put_bucket_cors(&self, call: &Call<'_>, bucket: &str, body: Body) -> Result<Response> {
        let config: xml::CorsConfiguration = xml::parse(&read_xml(body).await?)?;
        let rules: Vec<cors::CorsRule> = config.rules.into_iter().map(Into::into).collect();
        cors::validate(&rules).map_err(|invalid| {
            let invalid_request = |message: String| S3Error::new(S3ErrorCode::InvalidRequest, message);
            match invalid {
                cors::Invalid::Malformed => S3Error::malformed_xml(),
                cors::Invalid::TooManyRules => invalid_request(format!(
                    "The number of CORS rules should not exceed allowed limit of {} rules.",
                    cors::MAX_RULES
                )),
                cors::Invalid::UnsupportedMethod(method) => invalid_request(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
                )),
                cors::Invalid::OriginWildcards(origin) => {
                    invalid_request(format!("AllowedOrigin \"{origin}\" can not have more than one wildcard."))
                }
                cors::Invalid::HeaderWildcards(header) => {
                    invalid_request(format!("AllowedHeader \"{header}\" can not have more than one wildcard."))
                }
            }
        })?;
        self.obs.set_bucket_cors(call.context, bucket, rules).await?;
        Ok(empty(StatusCode::OK))
    }

    fn get_bucket_cors(&self, call: &Call<'_>, bucket: &str) -> Result<Response> {
        let record = self.obs.bucket_for(call.context, bucket, call.context.action)?;
        if record.cors.is_empty() {
            return Err(S3Error::new(S3ErrorCode::NoSuchCORSConfiguration, "The CORS configuration does not exist")
                .with("BucketName", bucket));
        }
        let mut w = Writer::document("CORSConfiguration");
        for rule in &record.cors {
            w.open("CORSRule");
            if let Some(id) = &rule.id {
                w.element("ID", id);
            }
            for header in &rule.allowed_headers {
                w.element("AllowedHeader", header);
            }
            for method in &rule.allowed_methods {
                w.element("AllowedMethod", method);
            }
            for origin in &rule.allowed_origins {
                w.element("AllowedOrigin", origin);
            }
            for header in &rule.expose_headers {
                w.element("ExposeHeader", header);
            }
            if let Some(age) = rule.max_age_seconds {
                w.element("MaxAgeSeconds", &age.to_string());
            }
            w.close("CORSRule");
        }
        Ok(xml_response(w.finish("CORSConfiguration")))
    }

    /// A request's headers in the S3 family (an OBS request's `x-obs-*` read as `x-amz-*`), with the
    /// storage class and (for `writes`) the user metadata checked against the family's limits.
    fn object_headers(&self, headers: HeaderMap, family: Family, caller: &Caller, writes: bool) -> Result<HeaderMap> {
        let headers = match family {
            Family::Aws => headers,
            Family::Obs => {
                let domain = self.caller_domain(caller);
                dialect::request_to_aws(&headers, self.obs_caller(caller, &domain))?
            }
        };
        if let Some(class) = header_str(&headers, "x-amz-storage-class") {
            check_storage_class(class, family)?;
        }
        if writes {
            check_metadata_size(&headers, family)?;
        }
        Ok(headers)
    }

    /// S3 serves a bucket in its own region only. A SigV4 request signed for another region is refused
    /// with the region it should have named (`<Region>` and `x-amz-bucket-region`), so that SDKs
    /// redirect as they do against AWS; a V2 or an unsigned request names no region and acts in the
    /// bucket's.
    /// CreateBucket and GetBucketLocation (how clients find a bucket's region) are served from any.
    fn enter_bucket_region(&self, caller: &mut Caller, operation: &S3Operation, carrier: Carrier) -> Result<()> {
        if matches!(operation, S3Operation::CreateBucket { .. } | S3Operation::GetBucketLocation { .. }) {
            return Ok(());
        }
        let Some(record) = operation.bucket().and_then(|bucket| self.obs.bucket_record(bucket)) else {
            return Ok(());
        };
        if record.region == caller.region {
            return Ok(());
        }
        let (wrong, expected) = (&caller.region, &record.region);
        match carrier {
            Carrier::V2Header | Carrier::V2Query | Carrier::Unsigned => {
                caller.region.clone_from(expected);
                Ok(())
            }
            Carrier::V4Header => Err(S3Error::new(
                S3ErrorCode::AuthorizationHeaderMalformed,
                format!("The authorization header is malformed; the region '{wrong}' is wrong; expecting '{expected}'"),
            )
            .with("Region", expected.clone())),
            Carrier::V4Query => Err(S3Error::new(
                S3ErrorCode::AuthorizationQueryParametersError,
                format!(
                    "Error parsing the X-Amz-Credential parameter; the region '{wrong}' is wrong; expecting '{expected}'"
                ),
            )
            .with("Region", expected.clone())),
        }
    }

    /// A CORS preflight (`OPTIONS`), answered from the bucket's rules before any authentication, as
    /// S3 answers it (the errors carry the method asked for and whether the target is a bucket or
    /// an object).
    fn preflight(&self, target: &Target, headers: &HeaderMap) -> Result<Response> {
        let Some(origin) = header_str(headers, "origin") else {
            return Err(S3Error::new(
                S3ErrorCode::BadRequest,
                "Insufficient information. Origin request header needed.",
            ));
        };
        let asked = header_str(headers, "access-control-request-method");
        let resource_type = if target.key.is_some() { "OBJECT" } else { "BUCKET" };
        let forbidden = |message: &str| {
            S3Error::new(S3ErrorCode::AccessForbidden, format!("CORSResponse: {message}"))
                .with("Method", asked.unwrap_or("OPTIONS"))
                .with("ResourceType", resource_type)
        };
        let record = target.bucket.as_deref().and_then(|bucket| self.obs.bucket_record(bucket));
        let Some(record) = record else { return Err(forbidden("Bucket not found")) };
        if record.cors.is_empty() {
            return Err(forbidden("CORS is not enabled for this bucket."));
        }
        let requested = cors::requested_headers(header_str(headers, "access-control-request-headers").unwrap_or(""));
        let allowed = asked.and_then(|method| cors::preflight(&record.cors, origin, method, &requested));
        let Some(allowed) = allowed else {
            return Err(forbidden(
                "This CORS request is not allowed. This is usually because the evalution of Origin, request method / \
                 Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's \
                 CORS spec.",
            ));
        };
        let mut response = empty(StatusCode::OK);
        for (name, value) in allowed.headers() {
            set_header(&mut response, name, &value);
        }
        Ok(response)
    }

    /// Adds the `Access-Control-*` headers S3 adds to the answer of a request with an `Origin` when
    /// a rule of its bucket allows that origin and method (whatever the answer, errors included).
    fn add_cors_headers(&self, response: &mut Response, cors_request: &CorsRequest) {
        let Some(record) = self.obs.bucket_record(&cors_request.bucket) else { return };
        if let Some(allowed) = cors::actual(&record.cors, &cors_request.origin, &cors_request.method) {
            for (name, value) in allowed.headers() {
                set_header(response, name, &value);
            }
        }
    }

    fn get_bucket_encryption(&self, call: &Call<'_>, bucket: &str) -> Result<Response> {
        let record = self.obs.bucket_for(call.context, bucket, call.context.action)?;
        // S3 reports its base encryption (SSE-S3) for a bucket without a configuration; OBS has none.
        let base = BucketEncryption { algorithm: "AES256".to_owned(), kms_key_id: None, bucket_key_enabled: false };
        let encryption = match (&record.encryption, call.family) {
            (Some(encryption), _) => Some(encryption),
            (None, Family::Aws) => Some(&base),
            (None, Family::Obs) => None,
        };
        let Some(encryption) = encryption else {
            return Err(S3Error::new(
                S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
                "The server side encryption configuration was not found",
            )
            .with("BucketName", bucket));
        };
        let family = call.family;
        let mut w = Writer::document("ServerSideEncryptionConfiguration");
        let kms = encryption.algorithm == "aws:kms";
        let algorithm = match family {
            Family::Obs if kms => dialect::OBS_KMS,
            _ => encryption.algorithm.as_str(),
        };
        w.open("Rule").open("ApplyServerSideEncryptionByDefault").element("SSEAlgorithm", algorithm);
        if let Some(key) = &encryption.kms_key_id {
            match family {
                Family::Aws => w.element("KMSMasterKeyID", key),
                Family::Obs => {
                    w.element("KMSMasterKeyID", &dialect::key_id_to_obs(key, |account| self.domain_of(account)))
                }
            };
        }
        w.close("ApplyServerSideEncryptionByDefault");
        // OBS has no bucket keys; its documents carry no BucketKeyEnabled.
        if family == Family::Aws {
            w.element("BucketKeyEnabled", if encryption.bucket_key_enabled { "true" } else { "false" });
        }
        w.close("Rule");
        Ok(xml_response(w.finish("ServerSideEncryptionConfiguration")))
    }

    /// UploadPart, or UploadPartCopy when `source` (`x-amz-copy-source`) is given.
    async fn upload_part(
        &self,
        call: &Call<'_>,
        upload_ref: UploadRef<'_>,
        number: u32,
        source: Option<&str>,
        body: Body,
    ) -> Result<Response> {
        let (request, headers, mode) = (call.context, call.headers, call.mode);
        let customer = sse::CustomerKey::from_headers(headers, "x-amz-")?;
        let sse = customer.clone().map(SseRequest::Customer).unwrap_or_default();
        let mut source_version = None;
        let input = PutInput { now_millis: call.now, sse, ..put_input(headers, mode)? };
        let part = match source {
            Some(source) => {
                // The digests of the request describe its (empty) body, not the copied bytes.
                let input = PutInput {
                    payload_sha256: None,
                    content_md5: None,
                    checksum: None,
                    trailer_checksum: None,
                    ..input
                };
                let stream =
                    self.copy_source(request, source, header_str(headers, "x-amz-copy-source-range"), headers).await?;
                source_version = stream.version_id;
                self.obs.upload_part(request, upload_ref, number, input, None, stream.body).await?
            }
            None => {
                let decoder = if mode.is_chunked() { Some(ChunkedDecoder::new(mode, call.seed)?) } else { None };
                let stream = body.into_data_stream();
                self.obs.upload_part(request, upload_ref, number, input, decoder, stream).await?
            }
        };
        let (_, upload) = self.obs.upload_for(request, upload_ref, "s3:PutObject")?;
        let mut response = if source.is_some() {
            let mut w = Writer::document("CopyPartResult");
            w.element("LastModified", &shared::time::format_rfc3339_millis(part.last_modified_millis))
                .element("ETag", &part.etag);
            xml_response(w.finish("CopyPartResult"))
        } else {
            empty(StatusCode::OK)
        };
        set_header(&mut response, "etag", &part.etag);
        if let Some(version) = &source_version {
            set_header(&mut response, "x-amz-copy-source-version-id", version);
        }
        if let Some((name, value)) = &part.checksum {
            set_header(&mut response, name, value);
        }
        for (name, value) in sse_headers::response_headers(&upload.sse) {
            set_header(&mut response, name, &value);
        }
        if let Some(customer) = &customer {
            set_header(&mut response, sse_headers::SSE_C_KEY_MD5, &customer.key_md5);
        }
        Ok(response)
    }

    async fn complete_multipart_upload(
        &self,
        call: &Call<'_>,
        upload_ref: UploadRef<'_>,
        body: Body,
    ) -> Result<Response> {
        let request: xml::CompleteMultipartUpload = xml::parse(&read_xml(body).await?)?;
        // A checksum given for a part must be the one its upload was verified with. (An upload
        // already completed is the core's to answer.)
        let mut checksum = None;
        if let Ok((_, upload)) = self.obs.upload_for(call.context, upload_ref, "s3:PutObject") {
            // The whole object's checksum in the upload's algorithm, when the client sends it
            // (FULL_OBJECT uploads; a composite one, `...-N`, is the parts' and is not checked).
            checksum = upload
                .checksum_algorithm
                .as_deref()
                .and_then(|name| header_str(call.headers, name))
                .filter(|value| !value.contains('-'))
                .map(str::to_owned);
            for part in &request.parts {
                let stored = upload.parts.get(&part.number).and_then(|p| p.checksum.as_ref());
                if let Some((name, value)) = part.checksum()
                    && stored.is_none_or(|(n, v)| !n.eq_ignore_ascii_case(name) || v != value)
                {
                    return Err(crate::error::Error::InvalidPart {
                        upload_id: upload_ref.upload_id.to_owned(),
                        part_number: part.number,
                        etag: part.etag.clone(),
                    }
                    .into());
                }
            }
        }
        let parts: Vec<(u32, String)> = request.parts.into_iter().map(|p| (p.number, p.etag)).collect();
        let customer = sse::CustomerKey::from_headers(call.headers, "x-amz-")?;
        let condition = write_condition(call.headers)?;
        let request =
            CompleteRequest { parts: &parts, customer: customer.as_ref(), condition, checksum, now_millis: call.now };
        let record = self.obs.complete_multipart_upload(call.context, upload_ref, request).await?;
        let (bucket, key) = (upload_ref.bucket, upload_ref.key);
        let mut w = Writer::document("CompleteMultipartUploadResult");
        w.element("Location", &format!("/{bucket}/{key}"))
            .element("Bucket", bucket)
            .element("Key", key)
            .element("ETag", &record.etag);
        if let Some((name, value)) = &record.checksum
            && let Some(algorithm) = Algorithm::from_header_name(name)
        {
            w.element(algorithm.xml_element(), value).element("ChecksumType", checksum_type(value));
        }
        let mut response = xml_response(w.finish("CompleteMultipartUploadResult"));
        Self::set_written_version(&mut response, &record);
        for (name, value) in sse_headers::response_headers(&record.sse) {
            set_header(&mut response, name, &value);
        }
        if let Some(customer) = &customer {
            set_header(&mut response, sse_headers::SSE_C_KEY_MD5, &customer.key_md5);
        }
        Ok(response)
    }

    async fn create_multipart_upload(&self, call: &Call<'_>, bucket: &str, key: &str) -> Result<Response> {
        let (request, headers, now) = (call.context, call.headers, call.now);
        let bucket_record = self.obs.key_for(request, bucket, key, "s3:PutObject")?;
        let sse = write_sse(SseRequest::from_headers(headers, bucket_record.encryption.as_ref())?, call.family);
        let customer_md5 = customer_key_md5(&sse);
        let checksum_algorithm = match header_str(headers, "x-amz-checksum-algorithm") {
            None => None,
            Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| {
                S3Error::invalid_argument(format!("Checksum algorithm provided is unsupported: {name}"))
            })?),
        };
        let full_object_checksum =
            multipart_checksum_type(checksum_algorithm, header_str(headers, "x-amz-checksum-type"))?;
        let input = PutInput {
            sse,
            now_millis: now,
            checksum_algorithm,
            full_object_checksum,
            acl: acl::request_acl(headers, &self.known_users)?,
            ..put_input(headers, PayloadMode::Unsigned)?
        };
        let upload = self.obs.create_multipart_upload(request, bucket, key, input).await?;
        let mut w = Writer::document("InitiateMultipartUploadResult");
        w.element("Bucket", bucket).element("Key", key).element("UploadId", &upload.upload_id);
        let mut response = xml_response(w.finish("InitiateMultipartUploadResult"));
        for (name, value) in sse_headers::response_headers(&upload.sse) {
            set_header(&mut response, name, &value);
        }
        if let Some(algorithm) = checksum_algorithm {
            set_header(&mut response, "x-amz-checksum-algorithm", algorithm.name());
            let kind = if full_object_checksum { "FULL_OBJECT" } else { "COMPOSITE" };
            set_header(&mut response, "x-amz-checksum-type", kind);
        }
        if let Some(md5) = customer_md5 {
            set_header(&mut response, sse_headers::SSE_C_KEY_MD5, &md5);
        }
        Ok(response)
    }

    fn list_parts(
        &self,
        request: &RequestContext,
        upload_ref: UploadRef<'_>,
        max_parts: usize,
        marker: u32,
    ) -> Result<Response> {
        let caller = &request.caller;
        let UploadRef { bucket, key, upload_id } = upload_ref;
        let (page, truncated) = self.obs.list_parts(request, upload_ref, marker, max_parts)?;
        let mut w = Writer::document("ListPartsResult");
        w.element("Bucket", bucket)
            .element("Key", key)
            .element("UploadId", upload_id)
            .element("PartNumberMarker", &marker.to_string())
            .element("NextPartNumberMarker", &page.last().map(|p| p.number).unwrap_or(0).to_string())
            .element("MaxParts", &max_parts.to_string())
            .element("IsTruncated", if truncated { "true" } else { "false" })
            .element("StorageClass", "STANDARD");
        w.open("Initiator")
            .element("ID", &caller.principal_arn)
            .element("DisplayName", &caller.account_id)
            .close("Initiator");
        acl::owner_element(&mut w, "Owner", &caller.account_id);
        for part in &page {
            w.open("Part")
                .element("PartNumber", &part.number.to_string())
                .element("LastModified", &shared::time::format_rfc3339_millis(part.last_modified_millis))
                .element("ETag", &part.etag)
                .element("Size", &part.size.to_string());
            if let Some((name, value)) = &part.checksum
                && let Some(algorithm) = Algorithm::from_header_name(name)
            {
                w.element(algorithm.xml_element(), value);
            }
            w.close("Part");
        }
        Ok(xml_response(w.finish("ListPartsResult")))
    }

    fn list_uploads(&self, request: &RequestContext, bucket: &str, prefix: &str, max: usize) -> Result<Response> {
        let (uploads, truncated) = self.obs.list_uploads(request, bucket, prefix, max)?;
        let mut w = Writer::document("ListMultipartUploadsResult");
        w.element("Bucket", bucket).element("KeyMarker", "").element("UploadIdMarker", "").element("Prefix", prefix);
        w.element("MaxUploads", &max.to_string()).element("IsTruncated", if truncated { "true" } else { "false" });
        if truncated && let Some(last) = uploads.last() {
            w.element("NextKeyMarker", &last.key).element("NextUploadIdMarker", &last.upload_id);
        }
        for upload in &uploads {
            w.open("Upload")
                .element("Key", &upload.key)
                .element("UploadId", &upload.upload_id)
                .element("Initiated", &shared::time::format_rfc3339_millis(upload.initiated_millis))
                .element("StorageClass", "STANDARD")
                .close("Upload");
        }
        Ok(xml_response(w.finish("ListMultipartUploadsResult")))
    }

    /// The plaintext of a copy source (`/bucket/key`, URL-encoded, optionally `?versionId=`),
    /// optionally a byte range (`bytes=a-b`), read on the caller's behalf (so the source key's
    /// state applies) if the request may read it (`s3:GetObject` of the source).
    async fn copy_source(
        &self,
        request: &RequestContext,
        source: &str,
        range: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<CopySource> {
        let (source, version) = match source.split_once("?versionId=") {
            None => (source, None),
            Some((source, version)) => {
                let version = VersionSel::parse(version).ok_or_else(|| {
                    S3Error::invalid_argument("Invalid version id specified")
                        .with("ArgumentName", "x-amz-copy-source")
                        .with("ArgumentValue", version)
                })?;
                (source, Some(version))
            }
        };
        let decoded = percent_decode_str(source.trim_start_matches('/'))
            .decode_utf8()
            .map_err(|_| S3Error::invalid_argument("Invalid copy source encoding"))?;
        let (bucket, key) = decoded
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| S3Error::invalid_argument("Invalid copy source object key"))?;
        let customer = sse::CustomerKey::from_headers(headers, "x-amz-copy-source-")?;
        let source_conditions = conditions(headers, "x-amz-copy-source-");
        let (record, output) = self
            .obs
            .read_latest(request, bucket, key, version.as_ref(), customer.as_ref(), |record| {
                // A copy whose source conditions do not hold copies nothing: 412 either way.
                let failed = match source_conditions.evaluate(record) {
                    Verdict::Serve => None,
                    Verdict::PreconditionFailed if source_conditions.if_match.is_some() => Some("x-amz-copy-source-If-Match"),
                    Verdict::PreconditionFailed => Some("x-amz-copy-source-If-Unmodified-Since"),
                    Verdict::NotModified if source_conditions.if_none_match.is_some() => {
                        Some("x-amz-copy-source-If-None-Match")
                    }
                    Verdict::NotModified => Some("x-amz-copy-source-If-Modified-Since"),
                };
                if let Some(header) = failed {
                    return Err(S3Error::new(
                        S3ErrorCode::PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold",
                    )
                    .with("Condition", header));
                }
                let range = match range {
                    None => None,
                    Some(text) => {
                        let parsed = parse_range(Some(text), record.size)?;
                        if parsed.is_none() {
                            return Err(S3Error::invalid_argument(
                                "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
                            ));
                        }
                        parsed
                    }
                };
                Ok(ReadPlan::Open(range))
            })
            .await
            .map_err(copy_source_error)?;
        match output {
            Some(output) => {
                let versioned =
                    version.is_some() || self.obs.bucket_record(bucket).is_some_and(|b| b.versioning.is_some());
                let version_id = versioned.then(|| record.version_str().to_owned());
                Ok(CopySource { record, body: output.body, version_id })
            }
            None => Err(S3Error::internal("a copy source read stopped at its record")),
        }
    }

    async fn copy_object(&self, call: &Call<'_>, bucket: &str, key: &str, source_header: &str) -> Result<Response> {
        let (request, headers, now) = (call.context, call.headers, call.now);
        let destination = self.obs.key_for(request, bucket, key, "s3:PutObject")?;
        // The destination's ACL is checked before the source is read.
        let acl = acl::request_acl(headers, &self.known_users)?;
        crate::service::written_object_acl(&destination, &request.caller.account_id, acl.as_ref())?;
        let CopySource { record: source, body: stream, version_id: source_version } =
            self.copy_source(request, source_header, None, headers).await?;
        let replace = match header_str(headers, "x-amz-metadata-directive") {
            None | Some("COPY") => false,
            Some("REPLACE") => true,
            Some(other) => return Err(S3Error::invalid_argument(format!("Unknown metadata directive: {other}"))),
        };
        // The destination's encryption comes from the request or the destination bucket's
        // default, never silently from the source.
        let asked = SseRequest::from_headers(headers, destination.encryption.as_ref())?;
        let decoded_source = percent_decode_str(source_header.trim_start_matches('/')).decode_utf8_lossy().into_owned();
        let same = decoded_source == format!("{bucket}/{key}");
        if same && !replace && asked == SseRequest::None && !headers.contains_key(sse_headers::SSE) {
            return Err(S3Error::new(
                S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        let mut input = if replace {
            put_input(headers, PayloadMode::Unsigned)?
        } else {
            PutInput {
                content_type: source.content_type.clone(),
                headers: source.headers.clone(),
                metadata: source.metadata.clone(),
                ..PutInput::default()
            }
        };
        // Tags follow their own directive: the source's (COPY, the default) or the request's.
        input.tags = match header_str(headers, "x-amz-tagging-directive") {
            None | Some("COPY") => source.tags.to_vec(),
            Some("REPLACE") => {
                header_str(headers, "x-amz-tagging").map(crate::tagging::parse_header).transpose()?.unwrap_or_default()
            }
            Some(other) => return Err(S3Error::invalid_argument(format!("Unknown tagging directive: {other}"))),
        };
        let sse = write_sse(asked, call.family);
        let customer_md5 = customer_key_md5(&sse);
        input.sse = sse;
        input.now_millis = now;
        // A copy's ACL is the request's, never the source's (private when it asks for none).
        input.acl = acl;
        // The digests of the request describe its (empty) body, not the copied bytes.
        input.content_md5 = None;
        input.checksum = None;
        input.payload_sha256 = None;
        let record = self.obs.put_object(request, bucket, key, input, None, stream).await?;
        let mut w = Writer::document("CopyObjectResult");
        w.element("LastModified", &shared::time::format_rfc3339_millis(record.last_modified_millis))
            .element("ETag", &record.etag);
        let mut response = xml_response(w.finish("CopyObjectResult"));
        Self::set_written_version(&mut response, &record);
        if let Some(version) = &source_version {
            set_header(&mut response, "x-amz-copy-source-version-id", version);
        }
        for (name, value) in sse_headers::response_headers(&record.sse) {
            set_header(&mut response, name, &value);
        }
        if let Some(md5) = customer_md5 {
            set_header(&mut response, sse_headers::SSE_C_KEY_MD5, &md5);
        }
        Ok(response)
    }

    fn list_buckets(&self, request: &RequestContext, params: &ListBucketsParams) -> Result<Response> {
        let caller = &request.caller;
        let after = params.start_after.as_deref();
        let mut buckets: Vec<_> = self
            .obs
            .list_buckets(request)?
            .into_iter()
            .filter(|b| params.prefix.as_deref().is_none_or(|p| b.name.starts_with(p)))
            .filter(|b| params.bucket_region.as_deref().is_none_or(|r| b.region == r))
            .filter(|b| after.is_none_or(|a| b.name.as_str() > a))
            .collect();
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        let more = params.max_buckets.is_some_and(|max| buckets.len() > max);
        if let Some(max) = params.max_buckets {
            buckets.truncate(max);
        }
        let mut w = Writer::document("ListAllMyBucketsResult");
        acl::owner_element(&mut w, "Owner", &caller.account_id);
        w.open("Buckets");
        for bucket in &buckets {
            w.open("Bucket")
                .element("Name", &bucket.name)
                .element("CreationDate", &shared::time::format_rfc3339_millis(bucket.created_millis))
                .element("BucketRegion", &bucket.region)
                .close("Bucket");
        }
        w.close("Buckets");
        if more && let Some(last) = buckets.last() {
            w.element("ContinuationToken", &BASE64.encode(&last.name));
        }
        if let Some(prefix) = &params.prefix {
            w.element("Prefix", prefix);
        }
        Ok(xml_response(w.finish("ListAllMyBucketsResult")))
    }

    async fn put_object(&self, call: &Call<'_>, bucket: &str, key: &str, body: Body) -> Result<Response> {
        let (request, mode, headers, now) = (call.context, call.mode, call.headers, call.now);
        let bucket_record = self.obs.key_for(request, bucket, key, "s3:PutObject")?;
        let sse = write_sse(SseRequest::from_headers(headers, bucket_record.encryption.as_ref())?, call.family);
        let condition = write_condition(headers)?;
        let acl = acl::request_acl(headers, &self.known_users)?;
        let input = PutInput { sse, now_millis: now, condition, acl, ..put_input(headers, mode)? };
        let decoder = if mode.is_chunked() { Some(ChunkedDecoder::new(mode, call.seed)?) } else { None };
        let stream = body.into_data_stream();
        let customer_md5 = customer_key_md5(&input.sse);
        let record = self.obs.put_object(request, bucket, key, input, decoder, stream).await?;
        let mut response = empty(StatusCode::OK);
        set_header(&mut response, "etag", &record.etag);
        Self::set_written_version(&mut response, &record);
        if let Some(md5) = customer_md5 {
            set_header(&mut response, sse_headers::SSE_C_KEY_MD5, &md5);
        }
        if let Some((name, value)) = &record.checksum {
            set_header(&mut response, name, value);
        }
        for (name, value) in sse_headers::response_headers(&record.sse) {
            set_header(&mut response, name, &value);
        }
        Ok(response)
    }

    /// GetObjectAttributes: the attributes `x-amz-object-attributes` names (`ETag`, `Checksum`,
    /// `ObjectParts`, `StorageClass`, `ObjectSize`), from the object's record.
    fn get_object_attributes(
        &self,
        call: &Call<'_>,
        bucket: &str,
        key: &str,
        version: Option<&VersionSel>,
    ) -> Result<Response> {
        const ATTRIBUTES: [&str; 5] = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"];
        let asked: Vec<&str> = header_str(call.headers, "x-amz-object-attributes")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        if asked.is_empty() {
            return Err(S3Error::new(
                S3ErrorCode::InvalidRequest,
                "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
            ));
        }
        if let Some(unknown) = asked.iter().find(|a| !ATTRIBUTES.contains(a)) {
            return Err(S3Error::invalid_argument(format!("Invalid attribute name specified: {unknown}")));
        }
        let (_, record) = self.obs.object_for(call.context, bucket, key, version, call.context.action)?;
        let customer = sse::CustomerKey::from_headers(call.headers, "x-amz-")?;
        crate::service::check_customer_key(&record, customer.as_ref())?;
        let mut w = Writer::document("GetObjectAttributesResponse");
        for attribute in ATTRIBUTES.iter().filter(|a| asked.contains(a)) {
            match *attribute {
                "ETag" => {
                    w.element("ETag", record.etag.trim_matches('"'));
                }
                "Checksum" => {
                    if let Some((name, value)) = &record.checksum
                        && let Some(algorithm) = Algorithm::from_header_name(name)
                    {
                        w.open("Checksum").element(algorithm.xml_element(), value).close("Checksum");
                    }
                }
                "ObjectParts" if !record.part_sizes.is_empty() => object_parts(&mut w, &record, call.headers)?,
                "StorageClass" => {
                    w.element("StorageClass", "STANDARD");
                }
                "ObjectSize" => {
                    w.element("ObjectSize", &record.size.to_string());
                }
                _ => {}
            }
        }
        let mut response = xml_response(w.finish("GetObjectAttributesResponse"));
        set_header(&mut response, "last-modified", &http_date(record.last_modified_millis));
        self.set_version_header(&mut response, bucket, &record);
        Ok(response)
    }

    /// GetObject, or HeadObject when `head`.
    async fn get_object(
        &self,
        call: &Call<'_>,
        read: Read<'_>,
        overrides: &[(&'static str, String)],
        head: bool,
    ) -> Result<Response> {
        let (request, headers) = (call.context, call.headers);
        let Read { bucket, key, version, part_number } = read;
        if part_number.is_some() && headers.contains_key(header::RANGE) {
            return Err(S3Error::new(
                S3ErrorCode::InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter",
            ));
        }
        let customer = sse::CustomerKey::from_headers(headers, "x-amz-")?;
        let conditions = conditions(headers, "");
        let (mut not_modified, mut range) = (false, None);
        let (record, output) = self
            .obs
            .read_latest(request, bucket, key, version, customer.as_ref(), |record| {
                if !matches!(record.sse, crate::model::SseRecord::None) {
                    sse_headers::refuse_on_read(headers)?;
                }
                crate::service::check_customer_key(record, customer.as_ref())?;
                match conditions.evaluate(record) {
                    Verdict::Serve => {}
                    Verdict::NotModified => {
                        not_modified = true;
                        return Ok(ReadPlan::RecordOnly);
                    }
                    Verdict::PreconditionFailed => {
                        return Err(S3Error::new(
                            S3ErrorCode::PreconditionFailed,
                            "At least one of the pre-conditions you specified did not hold",
                        )
                        .with("Condition", "If-Match"));
                    }
                }
                range = match part_number {
                    Some(number) => Some(part_range(record, number)?),
                    None => parse_range(header_str(headers, "range"), record.size)?,
                };
                Ok(if head { ReadPlan::RecordOnly } else { ReadPlan::Open(range.clone()) })
            })
            .await?;
        if not_modified {
            let mut response = empty(StatusCode::NOT_MODIFIED);
            set_header(&mut response, "etag", &record.etag);
            set_header(&mut response, "last-modified", &http_date(record.last_modified_millis));
            self.set_version_header(&mut response, bucket, &record);
            return Ok(response);
        }
        let body = output.map(|output| output.body);
        let status = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
        let length = range.as_ref().map(|r| r.end - r.start).unwrap_or(record.size);
        let mut response = match body {
            None => empty(status),
            Some(mut body) => {
                // Check the first frame before answering, so that an object damaged at rest gets a
                // clean 500 rather than a connection cut before the status line.
                let first = match body.next().await {
                    Some(Err(e)) => return Err(S3Error::internal(format!("reading {key}: {e}"))),
                    first => first,
                };
                let body = futures::stream::iter(first).chain(body);
                let mut response = Response::new(Body::from_stream(body));
                *response.status_mut() = status;
                response
            }
        };
        object_headers(&mut response, &record, overrides);
        if let Some(customer) = &customer {
            set_header(&mut response, sse_headers::SSE_C_KEY_MD5, &customer.key_md5);
        }
        let checksum_mode =
            header_str(headers, "x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("ENABLED"));
        if let (true, None, Some((name, value))) = (checksum_mode, &range, &record.checksum) {
            set_header(&mut response, name, value);
            set_header(&mut response, "x-amz-checksum-type", checksum_type(value));
        }
        set_header(&mut response, "content-length", &length.to_string());
        if let Some(r) = range.as_ref().filter(|r| r.end > r.start) {
            set_header(&mut response, "content-range", &format!("bytes {}-{}/{}", r.start, r.end - 1, record.size));
        }
        if part_number.is_some() && !record.part_sizes.is_empty() {
            set_header(&mut response, "x-amz-mp-parts-count", &record.part_sizes.len().to_string());
        }
        self.set_version_header(&mut response, bucket, &record);
        Ok(response)
    }

    /// `x-amz-version-id` of an answer about a stored version: its id once the bucket's
    /// versioning is configured (`null` for the null version); none before.
    fn set_version_header(&self, response: &mut Response, bucket: &str, record: &ObjectRecord) {
        let versioned =
            record.version_id.is_some() || self.obs.bucket_record(bucket).is_some_and(|b| b.versioning.is_some());
        if versioned {
            set_header(response, "x-amz-version-id", record.version_str());
        }
    }

    /// `x-amz-version-id` of a write: the new version's id when it has one of its own (a write
    /// while versioning is suspended makes the null version, and S3 names none).
    fn set_written_version(response: &mut Response, record: &ObjectRecord) {
        if let Some(id) = &record.version_id {
            set_header(response, "x-amz-version-id", id);
        }
    }

    /// ListObjectVersions.
    fn list_object_versions(
        &self,
        request: &RequestContext,
        bucket: &str,
        params: ListVersionsParams,
    ) -> Result<Response> {
        let ListVersionsParams { prefix, delimiter, max_keys, url_encode, after } = params;
        let page =
            self.obs.list_versions_page(request, bucket, &prefix, delimiter.as_deref(), after.clone(), max_keys)?;
        let bucket_record = self.obs.bucket_record(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?;
        let enc = |s: &str| if url_encode { url_encode_key(s) } else { s.to_owned() };
        let root = "ListVersionsResult";
        let mut w = Writer::document(root);
        w.element("Name", bucket).element("Prefix", &enc(&prefix));
        let (key_marker, version_marker) = after.map(|c| (c.key, c.version)).unwrap_or_default();
        w.element("KeyMarker", &enc(&key_marker)).element("VersionIdMarker", version_marker.as_deref().unwrap_or(""));
        listing_bounds(&mut w, max_keys, delimiter.as_deref(), url_encode, page.next.is_some());
        if let Some(next) = &page.next {
            w.element("NextKeyMarker", &enc(&next.key));
            if let Some(version) = &next.version {
                w.element("NextVersionIdMarker", version);
            }
        }
        for entry in &page.objects {
            let record = &entry.record;
            let element = if record.delete_marker { "DeleteMarker" } else { "Version" };
            w.open(element)
                .element("Key", &enc(&record.key))
                .element("VersionId", record.version_str())
                .element("IsLatest", if entry.latest { "true" } else { "false" })
                .element("LastModified", &shared::time::format_rfc3339_millis(record.last_modified_millis));
            if !record.delete_marker {
                w.element("ETag", &record.etag)
                    .element("Size", &record.size.to_string())
                    .element("StorageClass", "STANDARD");
            }
            acl::owner_element(&mut w, "Owner", record.owner_account(&bucket_record));
            w.close(element);
        }
        for prefix in &page.prefixes {
            w.open("CommonPrefixes").element("Prefix", &enc(prefix)).close("CommonPrefixes");
        }
        Ok(xml_response(w.finish(root)))
    }

    fn list_objects(
        &self,
        request: &RequestContext,
        bucket: &str,
        params: &ListObjectsParams,
        v2: bool,
    ) -> Result<Response> {
        let ListObjectsParams { prefix, delimiter, max_keys, url_encode, start_after, .. } = params;
        let (max_keys, url_encode) = (*max_keys, *url_encode);
        let page =
            self.obs.list_page(request, bucket, prefix, delimiter.as_deref(), start_after.as_deref(), max_keys)?;
        let bucket_record = self.obs.bucket_record(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?;
        let enc = |s: &str| if url_encode { url_encode_key(s) } else { s.to_owned() };
        let root = "ListBucketResult";
        let mut w = Writer::document(root);
        w.element("Name", bucket).element("Prefix", &enc(prefix));
        if v2 {
            if let Some(token) = &params.continuation_token {
                w.element("ContinuationToken", token);
            }
            if let Some(sa) = &params.start_after_param {
                w.element("StartAfter", &enc(sa));
            }
            w.element("KeyCount", &(page.objects.len() + page.prefixes.len()).to_string());
        } else {
            w.element("Marker", &enc(params.marker.as_deref().unwrap_or("")));
        }
        listing_bounds(&mut w, max_keys, delimiter.as_deref(), url_encode, page.next.is_some());
        if let Some(next) = &page.next {
            if v2 {
                w.element("NextContinuationToken", &BASE64.encode(next));
            } else if delimiter.is_some() {
                w.element("NextMarker", &enc(next));
            }
        }
        for object in &page.objects {
            w.open("Contents")
                .element("Key", &enc(&object.key))
                .element("LastModified", &shared::time::format_rfc3339_millis(object.last_modified_millis))
                .element("ETag", &object.etag)
                .element("Size", &object.size.to_string())
                .element("StorageClass", "STANDARD");
            if !v2 || params.fetch_owner {
                acl::owner_element(&mut w, "Owner", object.owner_account(&bucket_record));
            }
            w.close("Contents");
        }
        for prefix in &page.prefixes {
            w.open("CommonPrefixes").element("Prefix", &enc(prefix)).close("CommonPrefixes");
        }
        Ok(xml_response(w.finish(root)))
    }

    async fn delete_objects(&self, call: &Call<'_>, bucket: &str, body: Body) -> Result<Response> {
        let (request, headers) = (call.context, call.headers);
        let text = read_xml(body).await?;
        if let Some(md5) = header_str(headers, "content-md5") {
            let computed = BASE64.encode(md5::Md5::digest(text.as_bytes()));
            if computed != md5.trim() {
                return Err(S3Error::new(
                    S3ErrorCode::BadDigest,
                    "The Content-MD5 you specified did not match what we received.",
                ));
            }
        }
        let delete: xml::Delete = xml::parse(&text)?;
        if delete.objects.len() > 1000 {
            return Err(S3Error::malformed_xml());
        }
        self.obs.bucket_for(request, bucket, "s3:DeleteObject")?;
        let mut w = Writer::document("DeleteResult");
        for object in &delete.objects {
            let version = match object.version_id.as_deref().map(|v| (v, VersionSel::parse(v))) {
                None => None,
                Some((_, Some(version))) => Some(version),
                Some((text, None)) => {
                    w.open("Error")
                        .element("Key", &object.key)
                        .element("VersionId", text)
                        .element("Code", S3ErrorCode::NoSuchVersion.as_str())
                        .element("Message", "The specified version does not exist.")
                        .close("Error");
                    continue;
                }
            };
            match self.obs.delete_object(request, bucket, &object.key, version.as_ref(), call.now).await {
                Ok(deleted) if !delete.quiet => {
                    w.open("Deleted").element("Key", &object.key);
                    match (&version, deleted.delete_marker, &deleted.version_id) {
                        // A version deleted for good (a delete marker, if it was one).
                        (Some(_), marker, Some(id)) => {
                            w.element("VersionId", id);
                            if marker {
                                w.element("DeleteMarker", "true").element("DeleteMarkerVersionId", id);
                            }
                        }
                        // A delete marker made.
                        (None, true, Some(id)) => {
                            w.element("DeleteMarker", "true").element("DeleteMarkerVersionId", id);
                        }
                        _ => {}
                    }
                    w.close("Deleted");
                }
                Ok(_) => {}
                Err(e) => {
                    let e = S3Error::from(e);
                    if let Some(detail) = &e.internal_detail {
                        tracing::error!(%detail, key = %object.key, "internal error in DeleteObjects");
                    }
                    w.open("Error")
                        .element("Key", &object.key)
                        .element("Code", e.code.as_str())
                        .element("Message", &e.message)
                        .close("Error");
                }
            }
        }
        Ok(xml_response(w.finish("DeleteResult")))
    }
}

use md5::Digest as _;

/// A copy source that is a delete marker, as S3 refuses it: named by its version id, 400
/// InvalidRequest; as its key's newest version, 404 NoSuchKey. Neither answer carries the marker's
/// headers (a copy's `x-amz-version-id` names the copy).
fn copy_source_error(mut error: S3Error) -> S3Error {
    if !error.headers.iter().any(|(name, _)| *name == "x-amz-delete-marker") {
        return error;
    }
    if error.code == S3ErrorCode::MethodNotAllowed {
        return S3Error::new(
            S3ErrorCode::InvalidRequest,
            "The source of a copy request may not specifically refer to a delete marker by version id.",
        );
    }
    error.headers.clear();
    error
}

/// What every listing says after its markers: `MaxKeys`, `Delimiter`, `EncodingType`,
/// `IsTruncated`.
fn listing_bounds(w: &mut Writer, max_keys: usize, delimiter: Option<&str>, url_encode: bool, truncated: bool) {
    w.element("MaxKeys", &max_keys.to_string());
    if let Some(d) = delimiter {
        w.element("Delimiter", &if url_encode { url_encode_key(d) } else { d.to_owned() });
    }
    if url_encode {
        w.element("EncodingType", "url");
    }
    w.element("IsTruncated", if truncated { "true" } else { "false" });
}

fn url_encode_key(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
    percent_encoding::utf8_percent_encode(key, SET).to_string()
}

fn bucket_encryption(config: xml::EncryptionConfiguration) -> Result<BucketEncryption> {
    let [rule] = <[xml::EncryptionRule; 1]>::try_from(config.rules).map_err(|_| S3Error::malformed_xml())?;
    let default = rule.default.ok_or_else(S3Error::malformed_xml)?;
    match default.algorithm.as_str() {
        "aws:kms" => {}
        "AES256" if default.kms_key_id.is_none() => {}
        "AES256" => {
            return Err(S3Error::invalid_argument("a KMSMasterKeyID is allowed only with SSEAlgorithm aws:kms"));
        }
        "aws:kms:dsse" => return Err(S3Error::not_implemented("DSSE-KMS (aws:kms:dsse)")),
        _ => return Err(S3Error::malformed_xml()),
    }
    Ok(BucketEncryption {
        algorithm: default.algorithm,
        kms_key_id: default.kms_key_id,
        bucket_key_enabled: rule.bucket_key_enabled,
    })
}

/// Bucket default encryption as an OBS request sets it: `kms` (or `aws:kms`) with an optional key
/// in either OBS form, else OBS's service-managed key; or `AES256`. `ProjectID` is ignored.
fn obs_bucket_encryption(config: xml::EncryptionConfiguration, caller: ObsCaller<'_>) -> Result<BucketEncryption> {
    let [rule] = <[xml::EncryptionRule; 1]>::try_from(config.rules).map_err(|_| S3Error::malformed_xml())?;
    let default = rule.default.ok_or_else(S3Error::malformed_xml)?;
    match default.algorithm.as_str() {
        dialect::OBS_KMS | "aws:kms" => {
            let key = match default.kms_key_id.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
                Some(key) => dialect::key_id_from_obs(key, caller)?,
                None => sse::OBS_MANAGED_ALIAS.to_owned(),
            };
            Ok(BucketEncryption { algorithm: "aws:kms".to_owned(), kms_key_id: Some(key), bucket_key_enabled: false })
        }
        "AES256" if default.kms_key_id.is_none() => {
            Ok(BucketEncryption { algorithm: "AES256".to_owned(), kms_key_id: None, bucket_key_enabled: false })
        }
        "AES256" => Err(S3Error::invalid_argument("a KMSMasterKeyID is allowed only with SSEAlgorithm kms")),
        _ => Err(S3Error::malformed_xml()),
    }
}

/// The body of a PUT, apart from its bytes.
fn put_input(headers: &HeaderMap, mode: PayloadMode) -> Result<PutInput> {
    let mut input =
        PutInput { content_type: header_str(headers, "content-type").map(str::to_owned), ..PutInput::default() };
    for name in STORED_HEADERS {
        if let Some(v) = header_str(headers, name) {
            input.headers.insert(name.to_owned(), v.to_owned());
        }
    }
    // `aws-chunked` describes this request's body, not the object: S3 does not store it.
    if let Some(coding) = input.headers.remove("content-encoding") {
        let kept: Vec<&str> = coding
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        if !kept.is_empty() {
            input.headers.insert("content-encoding".to_owned(), kept.join(","));
        }
    }
    for (name, value) in headers {
        if let Some(meta) = name.as_str().strip_prefix("x-amz-meta-") {
            let value = crate::metadata::decode(value.as_bytes())
                .ok_or_else(|| S3Error::invalid_argument("metadata must be UTF-8 text"))?;
            input.metadata.insert(meta.to_owned(), value);
        }
    }
    if let Some(tagging) = header_str(headers, "x-amz-tagging") {
        input.tags = crate::tagging::parse_header(tagging)?;
    }
    if let Some(md5) = header_str(headers, "content-md5") {
        let raw =
            BASE64.decode(md5.trim()).ok().filter(|r| r.len() == 16).ok_or_else(|| {
                S3Error::new(S3ErrorCode::InvalidDigest, "The Content-MD5 you specified was invalid.")
            })?;
        input.content_md5 = Some(raw.try_into().unwrap_or([0; 16]));
    }
    if mode == PayloadMode::Signed {
        input.payload_sha256 = header_str(headers, "x-amz-content-sha256").map(str::to_owned);
    }
    for (algorithm, name) in Algorithm::ALL {
        if let Some(v) = header_str(headers, name) {
            if input.checksum.is_some() {
                return Err(S3Error::invalid_argument(
                    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
                ));
            }
            input.checksum = Some((algorithm, v.to_owned()));
        }
    }
    if let Some(trailer) = header_str(headers, "x-amz-trailer") {
        let algorithm = Algorithm::from_header_name(trailer.trim()).ok_or_else(|| {
            S3Error::invalid_argument(format!(
                "The value specified in the x-amz-trailer header is not supported: {trailer}"
            ))
        })?;
        input.trailer_checksum = Some(algorithm);
    }
    if let Some(v) = header_str(headers, "x-amz-decoded-content-length") {
        input.decoded_length =
            Some(v.parse().map_err(|_| S3Error::invalid_argument("x-amz-decoded-content-length is not a number"))?);
    } else if mode.is_chunked() {
        return Err(S3Error::new(
            S3ErrorCode::MissingContentLength,
            "You must provide the Content-Length HTTP header.",
        ));
    }
    Ok(input)
}

/// The conditional headers of a read (`prefix` ""), or of a copy's source (`x-amz-copy-source-`).
fn conditions(headers: &HeaderMap, prefix: &str) -> Conditions {
    let text = |name: &str| header_str(headers, &format!("{prefix}{name}"));
    Conditions {
        if_match: text("if-match").map(str::to_owned),
        if_none_match: text("if-none-match").map(str::to_owned),
        if_modified_since: text("if-modified-since").and_then(parse_http_date),
        if_unmodified_since: text("if-unmodified-since").and_then(parse_http_date),
    }
}

/// The condition of a write (`If-None-Match: *` or `If-Match`); S3 implements no other
/// `If-None-Match` on writes.
fn write_condition(headers: &HeaderMap) -> Result<WriteCondition> {
    match (header_str(headers, "if-none-match"), header_str(headers, "if-match")) {
        (None, None) => Ok(WriteCondition::None),
        (Some(value), None) if value.trim() == "*" => Ok(WriteCondition::Absent),
        (None, Some(etag)) => Ok(WriteCondition::EtagIs(etag.trim().to_owned())),
        (Some(_), _) => {
            Err(S3Error::not_implemented("If-None-Match other than * on a write").with("Header", "If-None-Match"))
        }
    }
}

fn object_headers(response: &mut Response, record: &ObjectRecord, overrides: &[(&'static str, String)]) {
    set_header(response, "etag", &record.etag);
    set_header(response, "last-modified", &http_date(record.last_modified_millis));
    set_header(response, "accept-ranges", "bytes");
    set_header(response, "content-type", record.content_type.as_deref().unwrap_or("binary/octet-stream"));
    for (name, value) in &record.headers {
        set_header(response, name, value);
    }
    for (name, value) in &record.metadata {
        set_header(response, &format!("x-amz-meta-{name}"), &crate::metadata::encode(value));
    }
    for (name, value) in sse_headers::response_headers(&record.sse) {
        set_header(response, name, &value);
    }
    if !record.tags.is_empty() {
        set_header(response, "x-amz-tagging-count", &record.tags.len().to_string());
    }
    for (header, value) in overrides {
        set_header(response, header, value);
    }
}

fn set_header(response: &mut Response, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (header::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        response.headers_mut().insert(name, value);
    }
}

/// Whether a request has no body (no or zero `Content-Length`, not chunked).
fn body_is_empty(headers: &HeaderMap) -> bool {
    let length = header_str(headers, "content-length").map(str::trim);
    length.is_none_or(|l| l == "0") && !headers.contains_key(header::TRANSFER_ENCODING)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

fn xml_response(document: String) -> Response {
    let mut response = (StatusCode::OK, document).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

async fn read_xml(body: Body) -> Result<String> {
    let bytes = axum::body::to_bytes(body, MAX_XML_BODY)
        .await
        .map_err(|_| S3Error::new(S3ErrorCode::MaxMessageLengthExceeded, "Your request was too big."))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| S3Error::malformed_xml())
}

/// S3 refuses user metadata above 2 KB (OBS: 8 KB), counting the bytes of the names (without
/// `x-amz-meta-`) and of the values.
fn check_metadata_size(headers: &HeaderMap, family: Family) -> Result<()> {
    let size = headers.iter().fold(0usize, |size, (name, value)| match name.as_str().strip_prefix("x-amz-meta-") {
        Some(meta) => size.saturating_add(meta.len()).saturating_add(value.len()),
        None => size,
    });
    let max = match family {
        Family::Aws => MAX_METADATA_SIZE,
        Family::Obs => MAX_OBS_METADATA_SIZE,
    };
    if size > max {
        return Err(S3Error::new(
            S3ErrorCode::MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size.",
        )
        .with("Size", size.to_string())
        .with("MaxSizeAllowed", max.to_string()));
    }
    Ok(())
}

/// S3 refuses a request whose header section is larger than 8 KB.
fn check_header_section(headers: &HeaderMap) -> Result<()> {
    // Each header line is `name: value\r\n`.
    let size = headers.iter().fold(0usize, |size, (name, value)| {
        size.saturating_add(name.as_str().len()).saturating_add(value.len()).saturating_add(4)
    });
    if size > MAX_HEADER_SECTION {
        return Err(S3Error::new(
            S3ErrorCode::RequestHeaderSectionTooLarge,
            "Your request header section exceeds the maximum allowed size.",
        )
        .with("MaxSizeAllowed", MAX_HEADER_SECTION.to_string()));
    }
    Ok(())
}

/// S3 refuses a storage class it does not have (OBS: one of OBS's).
fn check_storage_class(class: &str, family: Family) -> Result<()> {
    let known: &[&str] = match family {
        Family::Aws => &AWS_STORAGE_CLASSES,
        Family::Obs => &OBS_STORAGE_CLASSES,
    };
    if known.contains(&class) {
        return Ok(());
    }
    Err(S3Error::new(S3ErrorCode::InvalidStorageClass, "The storage class you specified is not valid")
        .with("StorageClassRequested", class))
}

/// The plaintext range of part `number` of an object: one of a multipart object's parts, or the
/// whole of any other object as its only part; S3's 416 InvalidPartNumber beyond the last.
fn part_range(record: &ObjectRecord, number: u32) -> Result<std::ops::Range<u64>> {
    let sizes: &[u64] = if record.part_sizes.is_empty() { &[record.size] } else { &record.part_sizes };
    let index = usize::try_from(number).unwrap_or(usize::MAX).saturating_sub(1);
    let Some(size) = sizes.get(index) else {
        return Err(S3Error::new(S3ErrorCode::InvalidPartNumber, "The requested partnumber is not satisfiable")
            .with("PartNumberRequested", number.to_string())
            .with("ActualPartCount", sizes.len().to_string()));
    };
    let start = sizes[..index].iter().fold(0u64, |sum, s| sum.saturating_add(*s));
    Ok(start..start.saturating_add(*size))
}

/// GetObjectAttributes' `<ObjectParts>` of a multipart object: its part count, and, as S3 lists
/// them only for an object written with checksums, a page of its parts (`x-amz-max-parts`, 1,000 by
/// default, after `x-amz-part-number-marker`) with their sizes and checksums.
fn object_parts(w: &mut Writer, record: &ObjectRecord, headers: &HeaderMap) -> Result<()> {
    let number = |name: &str, default: usize| -> Result<usize> {
        match header_str(headers, name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<usize>()
                .map_err(|_| S3Error::invalid_argument(format!("Invalid {name} header: {text}"))),
        }
    };
    let max = number("x-amz-max-parts", MAX_LIST_ENTRIES)?.min(MAX_LIST_ENTRIES);
    let marker = number("x-amz-part-number-marker", 0)?;
    let count = record.part_sizes.len();
    w.open("ObjectParts").element("PartsCount", &count.to_string());
    if let Some(algorithm) = record.checksum.as_ref().and_then(|(name, _)| Algorithm::from_header_name(name))
        && record.part_checksums.len() == count
    {
        let page: Vec<usize> = (marker.saturating_add(1)..=count).take(max).collect();
        let truncated = page.last().is_some_and(|last| *last < count);
        w.element("PartNumberMarker", &marker.to_string())
            .element("NextPartNumberMarker", &page.last().copied().unwrap_or(marker).to_string())
            .element("MaxParts", &max.to_string())
            .element("IsTruncated", if truncated { "true" } else { "false" });
        for number in page {
            w.open("Part")
                .element(algorithm.xml_element(), &record.part_checksums[number - 1])
                .element("PartNumber", &number.to_string())
                .element("Size", &record.part_sizes[number - 1].to_string())
                .close("Part");
        }
    }
    w.close("ObjectParts");
    Ok(())
}

/// Whether a multipart upload's checksum is FULL_OBJECT (else COMPOSITE), from
/// CreateMultipartUpload's algorithm and `x-amz-checksum-type`, with S3's rules: CRC64NVME is
/// full-object only, SHA-1 and SHA-256 composite only, the CRC-32s either (composite unless
/// asked).
fn multipart_checksum_type(algorithm: Option<Algorithm>, asked: Option<&str>) -> Result<bool> {
    let invalid = |message: String| S3Error::new(S3ErrorCode::InvalidRequest, message);
    let Some(algorithm) = algorithm else {
        return match asked {
            None => Ok(false),
            Some(_) => Err(invalid(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.".to_owned(),
            )),
        };
    };
    let full = match asked.map(str::to_ascii_uppercase).as_deref() {
        None => algorithm == Algorithm::Crc64Nvme,
        Some("FULL_OBJECT") => true,
        Some("COMPOSITE") => false,
        Some(_) => return Err(invalid("Value for x-amz-checksum-type header is invalid.".to_owned())),
    };
    let allowed = match algorithm {
        Algorithm::Crc64Nvme => full,
        Algorithm::Sha1 | Algorithm::Sha256 => !full,
        Algorithm::Crc32 | Algorithm::Crc32c => true,
    };
    if !allowed {
        let kind = if full { "FULL_OBJECT" } else { "COMPOSITE" };
        return Err(invalid(format!(
            "The {kind} checksum type cannot be used with the {} checksum algorithm.",
            algorithm.name().to_ascii_lowercase()
        )));
    }
    Ok(full)
}

/// S3's `x-amz-checksum-type` of a stored checksum: a multipart object's composite (`...-N`) or
/// the whole object's.
fn checksum_type(value: &str) -> &'static str {
    if value.contains('-') { "COMPOSITE" } else { "FULL_OBJECT" }
}

/// The tags of a `<Tagging>` request body.
async fn read_tagging(body: Body) -> Result<Vec<crate::model::Tag>> {
    let tagging: xml::Tagging = xml::parse(&read_xml(body).await?)?;
    Ok(tagging.into_tags())
}

/// The encryption of a new object: what its headers or its bucket's default ask for, else the
/// dialect's own. S3 encrypts every new object since January 2023 (SSE-S3, reported as `AES256`),
/// so no body is stored in plaintext; OBS stores an object that asks for no encryption as sent.
fn write_sse(asked: SseRequest, family: Family) -> SseRequest {
    match (asked, family) {
        (SseRequest::None, Family::Aws) => SseRequest::S3,
        (asked, _) => asked,
    }
}

/// The key MD5 an SSE-C write echoes (`x-amz-server-side-encryption-customer-key-MD5`).
fn customer_key_md5(sse: &SseRequest) -> Option<String> {
    match sse {
        SseRequest::Customer(customer) => Some(customer.key_md5.clone()),
        _ => None,
    }
}

/// The S3 error document.
pub fn error_response(error: &S3Error, request_id: &str) -> Response {
    let mut w = Writer::plain_document("Error");
    w.element("Code", error.code.as_str()).element("Message", &error.message);
    for (name, value) in &error.extra {
        w.element(name, value);
    }
    w.element("RequestId", request_id);
    let mut response = (error.status(), w.finish("Error")).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    for (name, value) in &error.headers {
        set_header(&mut response, name, value);
    }
    if let Some(family) = error.family {
        response.extensions_mut().insert(family);
    }
    // An error naming the bucket's region (a request signed for another) says it in a header too.
    if let Some((_, region)) = error.extra.iter().find(|(name, _)| *name == "Region")
        && let Ok(value) = HeaderValue::from_str(region)
    {
        response.headers_mut().insert("x-amz-bucket-region", value);
    }
    response
}

/// RFC 7231 date of Unix milliseconds, e.g. `Wed, 12 Oct 2009 17:50:00 GMT`.
pub(crate) fn http_date(millis: i64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis.max(0) as u64))
}

fn parse_http_date(text: &str) -> Option<i64> {
    httpdate::parse_http_date(text).ok()?.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs() as i64)
}

/// Carries out the part of a fired fault rule that comes before the operation: its delay, then its error.
async fn injected(fired: Option<&Fired>) -> Result<()> {
    faults::http::delay_before(fired).await;
    match fired.and_then(|f| f.error.as_ref()) {
        Some(injected) => {
            let code = S3ErrorCode::injected(injected.code).unwrap_or(S3ErrorCode::InternalError);
            Err(S3Error::new(code, injected.message.clone()))
        }
        None => Ok(()),
    }
}

/// The dialect a fault rule names: `s3` or `obs`.
fn family_name(family: Family) -> &'static str {
    match family {
        Family::Aws => "s3",
        Family::Obs => "obs",
    }
}
