//! [`IamApi`]: the IAM and STS Query APIs on the edge port. A request is authenticated (SigV4 with the
//! credential scope's service `iam` or `sts`, in the header or a presigned URL), its `Action=` is parsed into an
//! [`IamOperation`] or [`StsOperation`], an IAM call is authorized against the caller's identity-based policies
//! (the account's root always may), and the core's answer is rendered as XML. [`wire_error`] is the one mapping
//! of [`Error`] to the wire.

use std::sync::Arc;

use auth::sigv4::{self, UriEncoding};
use auth::{AccessKey, AuthError, RequestParts, Verifier};
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use faults::{Call as FaultCall, Faults, Fired, InjectedError};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use policy::{Context, PrincipalKind, Rule};
use shared::Peer;
use shared::entropy::{Entropy, Purpose};

use crate::error::{Error, Result};
use crate::identities::{AccessKeyInfo, Holder, Identities, ManagedPolicyInfo, RoleSpec};
use crate::model::{PolicyRecord, RoleRecord, Tag, UserRecord};
use crate::operation::{IamOperation, ResourceKind, StsOperation};
use crate::query::Params;
use crate::sts::{self, AssumeRoleRequest};
use crate::validate;
use crate::xml::{Answer, IAM_NAMESPACE, STS_NAMESPACE, encode_policy, error_document};

/// Largest request body read (policy documents are at most 131,072 characters, URL-encoded up to three times
/// as long).
pub const MAX_BODY_BYTES: usize = 512 * 1024;
/// The IAM API's `Version`.
pub const IAM_VERSION: &str = "2010-05-08";
/// The STS API's `Version`.
pub const STS_VERSION: &str = "2011-06-15";

/// Which of the two Query APIs a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// IAM (SigV4 service `iam`).
    Iam,
    /// STS (SigV4 service `sts`).
    Sts,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Sts => "sts",
        }
    }

    fn namespace(self) -> &'static str {
        match self {
            Service::Iam => IAM_NAMESPACE,
            Service::Sts => STS_NAMESPACE,
        }
    }

    fn version(self) -> &'static str {
        match self {
            Service::Iam => IAM_VERSION,
            Service::Sts => STS_VERSION,
        }
    }

    /// The service a SigV4 credential scope names, if it is one of these.
    fn of_scope(service: &str) -> Option<Service> {
        match service {
            "iam" => Some(Service::Iam),
            "sts" => Some(Service::Sts),
            _ => None,
        }
    }
}

/// An error on its way to the wire.
#[derive(Debug)]
enum ApiError {
    /// From the core.
    Core(Error),
    /// The signature was refused.
    Auth(AuthError),
    /// No `Action`.
    MissingAction,
    /// An `Action` the API does not have.
    InvalidAction(String),
    /// An operation of the real API that kmsim does not implement.
    NotImplemented(&'static str),
    /// The body exceeds [`MAX_BODY_BYTES`].
    TooLarge,
    /// An error a fault rule injected (`/_sim/faults`).
    Injected(InjectedError),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Core(e)
    }
}

/// The status and code of a core error: the one mapping of [`Error`] to the wire, for both APIs.
pub fn wire_error(error: &Error) -> (StatusCode, &'static str) {
    match error {
        Error::NoSuchEntity(_) => (StatusCode::NOT_FOUND, "NoSuchEntity"),
        Error::EntityAlreadyExists(_) => (StatusCode::CONFLICT, "EntityAlreadyExists"),
        Error::MalformedPolicyDocument(_) => (StatusCode::BAD_REQUEST, "MalformedPolicyDocument"),
        Error::LimitExceeded(_) => (StatusCode::CONFLICT, "LimitExceeded"),
        Error::DeleteConflict(_) => (StatusCode::CONFLICT, "DeleteConflict"),
        Error::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationError"),
        Error::InvalidInput(_) => (StatusCode::BAD_REQUEST, "InvalidInput"),
        Error::AccessDenied(_) => (StatusCode::FORBIDDEN, "AccessDenied"),
        Error::PackedPolicyTooLarge(_) => (StatusCode::BAD_REQUEST, "PackedPolicyTooLarge"),
        Error::Throttling(_) => (StatusCode::BAD_REQUEST, "Throttling"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailure"),
    }
}

impl ApiError {
    fn status_code_message(&self, service: Service) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Injected(e) => {
                (StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.code, e.message.clone())
            }
            ApiError::Core(e @ Error::Internal(_)) => {
                let (status, code) = wire_error(e);
                (status, code, "An internal error occurred.".into())
            }
            ApiError::Core(e) => {
                let (status, code) = wire_error(e);
                (status, code, e.to_string())
            }
            ApiError::MissingAction => {
                (StatusCode::BAD_REQUEST, "MissingAction", "The request must contain the parameter Action.".into())
            }
            ApiError::InvalidAction(action) => (
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!("Could not find operation {action} for version {}", service.version()),
            ),
            ApiError::NotImplemented(action) => (
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                format!(
                    "kmsim does not implement {} {action}; see docs/api-coverage.md.",
                    service.name().to_uppercase()
                ),
            ),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("Request body must be at most {MAX_BODY_BYTES} bytes"),
            ),
            ApiError::Auth(e) => {
                let forbidden = StatusCode::FORBIDDEN;
                match e {
                    AuthError::Missing => {
                        (forbidden, "MissingAuthenticationToken", "Request is missing Authentication Token".into())
                    }
                    AuthError::UnknownAccessKey | AuthError::InvalidToken => (
                        forbidden,
                        "InvalidClientTokenId",
                        "The security token included in the request is invalid.".into(),
                    ),
                    AuthError::ExpiredToken => {
                        (forbidden, "ExpiredToken", "The security token included in the request is expired".into())
                    }
                    AuthError::Skewed { request_time, server_time } => (
                        forbidden,
                        "SignatureDoesNotMatch",
                        format!(
                            "Signature expired: {request_time} is now earlier than {server_time} (15 min. skew allowed)"
                        ),
                    ),
                    AuthError::Expired { .. } => (forbidden, "SignatureDoesNotMatch", "Signature expired.".into()),
                    AuthError::SignatureMismatch { .. } | AuthError::PayloadHashMismatch => (
                        forbidden,
                        "SignatureDoesNotMatch",
                        "The request signature we calculated does not match the signature you provided. Check your \
                         AWS Secret Access Key and signing method. Consult the service documentation for details."
                            .into(),
                    ),
                    AuthError::Malformed(m) | AuthError::BadScope(m) => {
                        (StatusCode::BAD_REQUEST, "IncompleteSignature", m.clone())
                    }
                }
            }
        }
    }

    /// The error as the Query APIs send it. An internal error is logged here, once, with the request id.
    fn into_response(self, service: Service, entropy: &Entropy) -> Response {
        let request_id = request_id(entropy);
        if let ApiError::Core(Error::Internal(detail)) = &self {
            tracing::error!(%detail, %request_id, "internal error in the identity store");
        }
        let (status, code, message) = self.status_code_message(service);
        let body = error_document(service.namespace(), status.as_u16() < 500, code, &message, &request_id);
        xml_response(status, body, &request_id)
    }
}

fn request_id(entropy: &Entropy) -> String {
    entropy.uuid(Purpose::RequestId).to_string()
}

fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

/// The IAM and STS Query APIs over [`Identities`].
#[derive(Debug, Clone)]
pub struct IamApi {
    identities: Arc<Identities>,
    verifier: Arc<Verifier>,
    /// The fault rules in force (`/_sim/faults`).
    faults: Arc<Faults>,
}

/// The SigV4 credential scope's service of a request: from `Authorization: AWS4-HMAC-SHA256 Credential=...`,
/// or a presigned URL's `X-Amz-Credential`.
fn scope_service(headers: &HeaderMap, query: &str) -> Option<Service> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let credential = value.split_once("Credential=")?.1;
        let credential = credential.split([',', ' ']).next()?;
        return Service::of_scope(credential.split('/').nth(3)?);
    }
    let credential = query.split('&').find_map(|pair| pair.strip_prefix("X-Amz-Credential="))?;
    let decoded = percent_encoding::percent_decode_str(credential).decode_utf8().ok()?;
    Service::of_scope(decoded.split('/').nth(3)?)
}

/// Whether a request's body is a form (`application/x-www-form-urlencoded`).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

impl IamApi {
    /// A front end for `identities`, checking signatures with `verifier`.
    pub fn new(identities: Arc<Identities>, verifier: Arc<Verifier>) -> Self {
        IamApi { identities, verifier, faults: Arc::new(Faults::wall_clock()) }
    }

    /// Takes its fault rules from `faults` (the stack's) instead of a set of its own.
    pub fn with_faults(mut self, faults: Arc<Faults>) -> Self {
        self.faults = faults;
        self
    }

    /// The fault rules that fire on action `action` of `service` signed with `key`.
    fn fault(&self, service: Service, action: &str, key: &AccessKey) -> Option<Fired> {
        let service = match service {
            Service::Iam => faults::Service::Iam,
            Service::Sts => faults::Service::Sts,
        };
        if !self.faults.active(service) {
            return None;
        }
        let call = FaultCall {
            dialect: "query",
            operation: action,
            principal: &key.principal_arn,
            access_key: &key.access_key_id,
            ..FaultCall::default()
        };
        self.faults.check(service, &call, &|_| None)
    }

    /// The core behind this front end.
    pub fn identities(&self) -> &Arc<Identities> {
        &self.identities
    }

    /// Whether a request is for IAM or STS: its SigV4 credential scope names `iam` or `sts`, or it is an
    /// unsigned `POST /` form (the Query protocol's shape; S3 has no form POST at the root).
    pub fn accepts(method: &Method, path: &str, query: &str, headers: &HeaderMap) -> bool {
        scope_service(headers, query).is_some()
            || (method == Method::POST
                && path == "/"
                && !headers.contains_key(header::AUTHORIZATION)
                && is_form(headers))
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().unwrap_or("").to_owned();
        let scoped = scope_service(&parts.headers, &query);
        let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(_) => {
                return ApiError::TooLarge.into_response(scoped.unwrap_or(Service::Iam), self.identities.entropy());
            }
        };
        let mut params = match Params::parse(query.as_bytes()) {
            Ok(params) => params,
            Err(e) => {
                return ApiError::Core(e).into_response(scoped.unwrap_or(Service::Iam), self.identities.entropy());
            }
        };
        if is_form(&parts.headers) || parts.method == Method::POST {
            match Params::parse(&body) {
                Ok(mut form) => {
                    form.merge(params);
                    params = form;
                }
                Err(e) => {
                    return ApiError::Core(e).into_response(scoped.unwrap_or(Service::Iam), self.identities.entropy());
                }
            }
        }
        let service = scoped.unwrap_or(
            if params.get("Version") == Some(STS_VERSION)
                || params.get("Action").is_some_and(|a| StsOperation::from_name(a).is_some())
            {
                Service::Sts
            } else {
                Service::Iam
            },
        );
        let request_parts = RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: &query,
            headers: &parts.headers,
        };
        let now = shared::time::now_unix();
        let verified = if parts.headers.contains_key(header::AUTHORIZATION) {
            let payload_hash = sigv4::payload_sha256(&body);
            self.verifier.verify_sigv4(&request_parts, &payload_hash, service.name(), UriEncoding::Double, now)
        } else if query.contains("X-Amz-Credential=") {
            self.verifier.verify_sigv4_presigned(&request_parts, service.name(), UriEncoding::Double, now)
        } else {
            Err(AuthError::Missing)
        };
        let key = match verified {
            Ok(verified) => verified.key,
            Err(e) => return ApiError::Auth(e).into_response(service, self.identities.entropy()),
        };
        let mut context = Context::new();
        if let Some(peer) = parts.extensions.get::<Peer>() {
            context.insert("aws:SourceIp", peer.addr.ip().to_string());
            context.insert("aws:SecureTransport", peer.secure.to_string());
        }
        context.insert("aws:CurrentTime", shared::time::format_rfc3339(self.identities.now()));
        let fired = self.fault(service, params.get("Action").unwrap_or(""), &key);
        faults::http::delay_before(fired.as_ref()).await;
        if let Some(injected) = fired.as_ref().and_then(|f| f.error.clone()) {
            return ApiError::Injected(injected).into_response(service, self.identities.entropy());
        }
        let request_id = request_id(self.identities.entropy());
        let result = match service {
            Service::Iam => self.iam(&key, &params, context, &request_id).await,
            Service::Sts => self.sts(&key, &params, context, &request_id).await,
        };
        let response = match result {
            Ok(body) => xml_response(StatusCode::OK, body, &request_id),
            Err(e) => e.into_response(service, self.identities.entropy()),
        };
        faults::http::finish(fired.as_ref(), response).await
    }

    async fn sts(
        &self,
        key: &Arc<AccessKey>,
        params: &Params,
        context: Context,
        request_id: &str,
    ) -> Result<String, ApiError> {
        let action = params.get("Action").ok_or(ApiError::MissingAction)?;
        let operation = StsOperation::from_name(action).ok_or_else(|| ApiError::InvalidAction(action.to_owned()))?;
        match operation {
            StsOperation::GetCallerIdentity => {
                let identity = sts::caller_identity(key);
                let mut answer = Answer::new("GetCallerIdentity", STS_NAMESPACE);
                answer
                    .field("Arn", &identity.arn)
                    .field("UserId", &identity.user_id)
                    .field("Account", &identity.account);
                Ok(answer.finish(request_id))
            }
            StsOperation::AssumeRole => {
                let request = AssumeRoleRequest {
                    role_arn: params.require("RoleArn", "roleArn")?.to_owned(),
                    session_name: params.require("RoleSessionName", "roleSessionName")?.to_owned(),
                    duration: params.integer("DurationSeconds", "durationSeconds")?,
                    policy: params.get("Policy").map(str::to_owned),
                    policy_arns: params.list("PolicyArns", ".arn").into_iter().map(str::to_owned).collect(),
                    tags: params.tags("Tags")?,
                    transitive_tag_keys: params.list("TransitiveTagKeys", "").into_iter().map(str::to_owned).collect(),
                    external_id: params.get("ExternalId").map(str::to_owned),
                    source_identity: params.get("SourceIdentity").map(str::to_owned),
                    context,
                };
                if params.get("SerialNumber").is_some() || params.get("TokenCode").is_some() {
                    return Err(Error::Validation(
                        "kmsim does not simulate MFA: SerialNumber and TokenCode are not accepted (see docs/api-coverage.md)."
                            .into(),
                    )
                    .into());
                }
                if params.get("ProvidedContexts.member.1.ProviderArn").is_some() {
                    return Err(Error::Validation(
                        "kmsim does not simulate trusted identity propagation: ProvidedContexts is not accepted."
                            .into(),
                    )
                    .into());
                }
                let (identities, caller) = (self.identities.clone(), key.clone());
                let session = tokio::task::spawn_blocking(move || identities.assume_role(&caller, &request))
                    .await
                    .map_err(|e| Error::Internal(format!("the AssumeRole task failed: {e}")))??;
                let mut answer = Answer::new("AssumeRole", STS_NAMESPACE);
                answer
                    .open("AssumedRoleUser")
                    .field("AssumedRoleId", &session.assumed_role_id)
                    .field("Arn", &session.arn)
                    .close("AssumedRoleUser")
                    .open("Credentials")
                    .field("AccessKeyId", &session.access_key_id)
                    .field("SecretAccessKey", &session.secret_access_key)
                    .field("SessionToken", &session.session_token)
                    .field("Expiration", &shared::time::format_rfc3339(session.expires_at))
                    .close("Credentials");
                if let Some(size) = session.packed_policy_size {
                    answer.field("PackedPolicySize", &size.to_string());
                }
                Ok(answer.finish(request_id))
            }
            other => Err(ApiError::NotImplemented(other.name())),
        }
    }

    async fn iam(
        &self,
        key: &Arc<AccessKey>,
        params: &Params,
        mut context: Context,
        request_id: &str,
    ) -> Result<String, ApiError> {
        let action = params.get("Action").ok_or(ApiError::MissingAction)?;
        let operation = IamOperation::from_name(action).ok_or_else(|| ApiError::InvalidAction(action.to_owned()))?;
        if !operation.is_supported() {
            return Err(ApiError::NotImplemented(operation.name()));
        }
        let account = key.account_id.clone();
        let resource = self.resource_of(operation, key, params);
        if let Some(arn) = params.get("PolicyArn") {
            context.insert("iam:PolicyARN", arn);
        }
        let decision = key.identity.decide(operation.action(), &resource, &context, None, Rule::SameAccount);
        if !decision.allowed {
            let phrase = decision.reason.phrase(operation.action()).unwrap_or_default();
            return Err(Error::AccessDenied(format!(
                "User: {} is not authorized to perform: {} on resource: {resource} {phrase}",
                key.principal_arn,
                operation.action()
            ))
            .into());
        }
        let call = Call {
            identities: self.identities.clone(),
            key: key.clone(),
            account,
            params: params.clone(),
            request_id: request_id.to_owned(),
        };
        if operation.is_mutation() {
            tokio::task::spawn_blocking(move || call.run(operation))
                .await
                .map_err(|e| ApiError::Core(Error::Internal(format!("the {operation} task failed: {e}"))))?
        } else {
            call.run(operation)
        }
    }

    /// The ARN an identity-based policy names for `operation` on what `params` name.
    fn resource_of(&self, operation: IamOperation, key: &AccessKey, params: &Params) -> String {
        let account = key.account_id.as_str();
        let path = params.get("Path").unwrap_or("/");
        match operation.resource_kind() {
            ResourceKind::Account => "*".to_owned(),
            ResourceKind::User => match (operation, params.get("UserName")) {
                (IamOperation::CreateUser, Some(name)) => format!("arn:aws:iam::{account}:user{path}{name}"),
                (_, Some(name)) => self.identities.user_arn(account, name),
                (_, None) => key.principal_arn.clone(),
            },
            ResourceKind::Role => match (operation, params.get("RoleName")) {
                (IamOperation::CreateRole, Some(name)) => format!("arn:aws:iam::{account}:role{path}{name}"),
                (_, Some(name)) => self.identities.role_arn(account, name),
                (_, None) => "*".to_owned(),
            },
            ResourceKind::Policy => match (operation, params.get("PolicyName"), params.get("PolicyArn")) {
                (IamOperation::CreatePolicy, Some(name), _) => format!("arn:aws:iam::{account}:policy{path}{name}"),
                (_, _, Some(arn)) => arn.to_owned(),
                _ => "*".to_owned(),
            },
        }
    }
}

/// One authorized IAM call.
struct Call {
    identities: Arc<Identities>,
    key: Arc<AccessKey>,
    account: String,
    params: Params,
    request_id: String,
}

impl Call {
    fn empty(&self, action: &'static str) -> Result<String, ApiError> {
        Ok(Answer::empty(action, IAM_NAMESPACE, &self.request_id))
    }

    /// `UserName`, or the calling user's own name where IAM lets it be implicit.
    fn user_name(&self) -> Result<String> {
        if let Some(name) = self.params.get("UserName") {
            validate::name(name, "userName", 1, 128)?;
            return Ok(name.to_owned());
        }
        match self.key.identity.principal().kind() {
            PrincipalKind::User { name, .. } => Ok(name.clone()),
            PrincipalKind::Root => Err(Error::Validation(
                "kmsim manages the access keys of IAM users only: give UserName (the root's keys come from the \
                 configuration)"
                    .into(),
            )),
            _ => Err(Error::Validation("Must specify userName when calling with non-User credentials".into())),
        }
    }

    fn role_name(&self) -> Result<&str> {
        let name = self.params.require("RoleName", "roleName")?;
        validate::name(name, "roleName", 1, 64)?;
        Ok(name)
    }

    fn policy_arn(&self) -> Result<&str> {
        let arn = self.params.require("PolicyArn", "policyArn")?;
        validate::length(arn, "policyArn", 20, 2048)?;
        if crate::identities::parse_policy_arn(arn).is_none() {
            return Err(Error::InvalidInput(format!("ARN {arn} is not valid.")));
        }
        Ok(arn)
    }

    fn paging(&self) -> Result<(Option<&str>, usize)> {
        let max = self.params.integer("MaxItems", "maxItems")?.unwrap_or(100);
        if !(1..=1000).contains(&max) {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy constraint: Member must \
                 have value {}",
                if max < 1 { "greater than or equal to 1" } else { "less than or equal to 1000" }
            )));
        }
        let marker = self.params.get("Marker");
        if let Some(marker) = marker {
            validate::length(marker, "marker", 1, 320)?;
        }
        Ok((marker, max as usize))
    }

    fn path_prefix(&self) -> Result<&str> {
        let prefix = self.params.get("PathPrefix").unwrap_or("/");
        validate::path(prefix, "pathPrefix")?;
        Ok(prefix)
    }

    fn tags(&self) -> Result<Vec<Tag>> {
        self.params.tags("Tags")
    }

    fn run(&self, operation: IamOperation) -> Result<String, ApiError> {
        let ids = &self.identities;
        let account = self.account.as_str();
        let p = &self.params;
        let name = operation.name();
        match operation {
            IamOperation::CreateUser => {
                let user_name = p.require("UserName", "userName")?;
                let user = ids.create_user(account, user_name, p.get("Path").unwrap_or("/"), self.tags()?)?;
                let mut answer = Answer::new("CreateUser", IAM_NAMESPACE);
                render_user(&mut answer, &user);
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::GetUser => {
                let mut answer = Answer::new("GetUser", IAM_NAMESPACE);
                if p.get("UserName").is_none() && self.key.identity.is_root() {
                    answer
                        .open("User")
                        .field("UserId", account)
                        .field("Arn", &self.key.principal_arn)
                        .field("CreateDate", &shared::time::format_rfc3339(0))
                        .close("User");
                } else {
                    let user = ids.get_user(account, &self.user_name()?)?;
                    render_user(&mut answer, &user);
                }
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::DeleteUser => {
                ids.delete_user(account, p.require("UserName", "userName")?)?;
                self.empty("DeleteUser")
            }
            IamOperation::ListUsers => {
                let (marker, max) = self.paging()?;
                let page = ids.list_users(account, self.path_prefix()?, marker, max);
                let mut answer = Answer::new("ListUsers", IAM_NAMESPACE);
                answer.open("Users");
                for user in &page.items {
                    answer.open("member");
                    user_fields(&mut answer, user);
                    answer.close("member");
                }
                answer.close("Users");
                finish_page(answer, page.next_marker.as_deref(), &self.request_id)
            }
            IamOperation::CreateAccessKey => {
                let user = self.user_name()?;
                let (info, secret) = ids.create_access_key(account, &user)?;
                let mut answer = Answer::new("CreateAccessKey", IAM_NAMESPACE);
                answer
                    .open("AccessKey")
                    .field("UserName", &info.user)
                    .field("AccessKeyId", &info.id)
                    .field("Status", status(info.active))
                    .field("SecretAccessKey", &secret)
                    .field("CreateDate", &shared::time::format_rfc3339(info.created))
                    .close("AccessKey");
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::DeleteAccessKey | IamOperation::UpdateAccessKey => {
                let key_id = p.require("AccessKeyId", "accessKeyId")?;
                validate::length(key_id, "accessKeyId", 16, 128)?;
                let user = self.user_name()?;
                if operation == IamOperation::DeleteAccessKey {
                    ids.delete_access_key(account, &user, key_id)?;
                } else {
                    let active = match p.require("Status", "status")? {
                        "Active" => true,
                        "Inactive" => false,
                        other => {
                            return Err(Error::Validation(format!(
                                "1 validation error detected: Value '{other}' at 'status' failed to satisfy \
                                 constraint: Member must satisfy enum value set: [Active, Inactive]"
                            ))
                            .into());
                        }
                    };
                    ids.update_access_key(account, &user, key_id, active)?;
                }
                self.empty(name)
            }
            IamOperation::ListAccessKeys => {
                let keys = if p.get("UserName").is_none() && self.key.identity.is_root() {
                    root_keys(ids, account)
                } else {
                    ids.list_access_keys(account, &self.user_name()?)?
                };
                let mut answer = Answer::new("ListAccessKeys", IAM_NAMESPACE);
                answer.open("AccessKeyMetadata");
                for key in &keys {
                    answer.open("member");
                    if !key.user.is_empty() {
                        answer.field("UserName", &key.user);
                    }
                    answer
                        .field("AccessKeyId", &key.id)
                        .field("Status", status(key.active))
                        .field("CreateDate", &shared::time::format_rfc3339(key.created))
                        .close("member");
                }
                answer.close("AccessKeyMetadata");
                finish_page(answer, None, &self.request_id)
            }
            IamOperation::CreateRole => {
                let max = p.integer("MaxSessionDuration", "maxSessionDuration")?;
                let spec = RoleSpec {
                    name: p.require("RoleName", "roleName")?,
                    path: p.get("Path").unwrap_or("/"),
                    trust_policy: p.require("AssumeRolePolicyDocument", "assumeRolePolicyDocument")?,
                    description: p.get("Description"),
                    max_session_duration: match max {
                        Some(max) => Some(u32::try_from(max).map_err(|_| {
                            Error::Validation(format!(
                                "1 validation error detected: Value '{max}' at 'maxSessionDuration' failed to \
                                 satisfy constraint: Member must have value less than or equal to 43200"
                            ))
                        })?),
                        None => None,
                    },
                    tags: self.tags()?,
                };
                if p.get("PermissionsBoundary").is_some() {
                    return Err(Error::InvalidInput(
                        "kmsim does not evaluate permissions boundaries: PermissionsBoundary is not accepted (see \
                         docs/api-coverage.md)."
                            .into(),
                    )
                    .into());
                }
                let role = ids.create_role(account, &spec)?;
                let mut answer = Answer::new("CreateRole", IAM_NAMESPACE);
                render_role(&mut answer, &role);
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::GetRole => {
                let role = ids.get_role(account, self.role_name()?)?;
                let mut answer = Answer::new("GetRole", IAM_NAMESPACE);
                render_role(&mut answer, &role);
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::DeleteRole => {
                ids.delete_role(account, self.role_name()?)?;
                self.empty("DeleteRole")
            }
            IamOperation::ListRoles => {
                let (marker, max) = self.paging()?;
                let page = ids.list_roles(account, self.path_prefix()?, marker, max);
                let mut answer = Answer::new("ListRoles", IAM_NAMESPACE);
                answer.open("Roles");
                for role in &page.items {
                    answer.open("member");
                    role_fields(&mut answer, role);
                    answer.close("member");
                }
                answer.close("Roles");
                finish_page(answer, page.next_marker.as_deref(), &self.request_id)
            }
            IamOperation::UpdateAssumeRolePolicy => {
                ids.update_trust_policy(account, self.role_name()?, p.require("PolicyDocument", "policyDocument")?)?;
                self.empty("UpdateAssumeRolePolicy")
            }
            IamOperation::PutUserPolicy | IamOperation::PutRolePolicy => {
                let holder_name = self.holder_name(operation)?;
                let holder = holder(operation, &holder_name);
                ids.put_inline_policy(
                    account,
                    holder,
                    p.require("PolicyName", "policyName")?,
                    p.require("PolicyDocument", "policyDocument")?,
                )?;
                self.empty(name)
            }
            IamOperation::GetUserPolicy | IamOperation::GetRolePolicy => {
                let holder_name = self.holder_name(operation)?;
                let policy_name = p.require("PolicyName", "policyName")?;
                validate::name(policy_name, "policyName", 1, 128)?;
                let document = ids.get_inline_policy(account, holder(operation, &holder_name), policy_name)?;
                let stored_name = match operation {
                    IamOperation::GetUserPolicy => ids.get_user(account, &holder_name)?.name,
                    _ => ids.get_role(account, &holder_name)?.name,
                };
                let mut answer = Answer::new(name, IAM_NAMESPACE);
                answer
                    .field(if operation == IamOperation::GetUserPolicy { "UserName" } else { "RoleName" }, &stored_name)
                    .field("PolicyName", policy_name)
                    .field("PolicyDocument", &encode_policy(&document));
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::DeleteUserPolicy | IamOperation::DeleteRolePolicy => {
                let holder_name = self.holder_name(operation)?;
                ids.delete_inline_policy(
                    account,
                    holder(operation, &holder_name),
                    p.require("PolicyName", "policyName")?,
                )?;
                self.empty(name)
            }
            IamOperation::ListUserPolicies | IamOperation::ListRolePolicies => {
                let holder_name = self.holder_name(operation)?;
                let (marker, max) = self.paging()?;
                let page = ids.list_inline_policies(account, holder(operation, &holder_name), marker, max)?;
                let mut answer = Answer::new(name, IAM_NAMESPACE);
                answer.open("PolicyNames");
                for policy in &page.items {
                    answer.field("member", policy);
                }
                answer.close("PolicyNames");
                finish_page(answer, page.next_marker.as_deref(), &self.request_id)
            }
            IamOperation::CreatePolicy => {
                let info = ids.create_policy(
                    account,
                    p.require("PolicyName", "policyName")?,
                    p.get("Path").unwrap_or("/"),
                    p.require("PolicyDocument", "policyDocument")?,
                    p.get("Description"),
                    self.tags()?,
                )?;
                let mut answer = Answer::new("CreatePolicy", IAM_NAMESPACE);
                render_policy(&mut answer, &info);
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::GetPolicy => {
                let info = ids.get_policy(account, self.policy_arn()?)?;
                let mut answer = Answer::new("GetPolicy", IAM_NAMESPACE);
                render_policy(&mut answer, &info);
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::GetPolicyVersion => {
                let info = ids.get_policy(account, self.policy_arn()?)?;
                let version = p.require("VersionId", "versionId")?;
                if version != "v1" {
                    return Err(Error::NoSuchEntity(format!(
                        "Policy {} version {version} does not exist or is not attachable.",
                        info.record.arn()
                    ))
                    .into());
                }
                let mut answer = Answer::new("GetPolicyVersion", IAM_NAMESPACE);
                answer
                    .open("PolicyVersion")
                    .field("Document", &encode_policy(&info.record.document))
                    .field("VersionId", "v1")
                    .field("IsDefaultVersion", "true")
                    .field("CreateDate", &shared::time::format_rfc3339(info.record.created))
                    .close("PolicyVersion");
                Ok(answer.finish(&self.request_id))
            }
            IamOperation::DeletePolicy => {
                ids.delete_policy(account, self.policy_arn()?)?;
                self.empty("DeletePolicy")
            }
            IamOperation::ListPolicies => {
                let scope = p.get("Scope").unwrap_or("All");
                if !matches!(scope, "All" | "AWS" | "Local") {
                    return Err(Error::Validation(format!(
                        "1 validation error detected: Value '{scope}' at 'scope' failed to satisfy constraint: Member \
                         must satisfy enum value set: [All, AWS, Local]"
                    ))
                    .into());
                }
                let (marker, max) = self.paging()?;
                let only_attached = p.boolean("OnlyAttached")?.unwrap_or(false);
                let page = if scope == "AWS" {
                    crate::identities::Page { items: Vec::new(), next_marker: None }
                } else {
                    ids.list_policies(account, self.path_prefix()?, only_attached, marker, max)
                };
                let mut answer = Answer::new("ListPolicies", IAM_NAMESPACE);
                answer.open("Policies");
                for info in &page.items {
                    answer.open("member");
                    policy_fields(&mut answer, info);
                    answer.close("member");
                }
                answer.close("Policies");
                finish_page(answer, page.next_marker.as_deref(), &self.request_id)
            }
            IamOperation::AttachUserPolicy
            | IamOperation::AttachRolePolicy
            | IamOperation::DetachUserPolicy
            | IamOperation::DetachRolePolicy => {
                let holder_name = self.holder_name(operation)?;
                let arn = self.policy_arn()?;
                let holder = holder(operation, &holder_name);
                if matches!(operation, IamOperation::AttachUserPolicy | IamOperation::AttachRolePolicy) {
                    ids.attach_policy(account, holder, arn)?;
                } else {
                    ids.detach_policy(account, holder, arn)?;
                }
                self.empty(name)
            }
            IamOperation::ListAttachedUserPolicies | IamOperation::ListAttachedRolePolicies => {
                let holder_name = self.holder_name(operation)?;
                let (marker, max) = self.paging()?;
                let page = ids.list_attached_policies(
                    account,
                    holder(operation, &holder_name),
                    self.path_prefix()?,
                    marker,
                    max,
                )?;
                let mut answer = Answer::new(name, IAM_NAMESPACE);
                answer.open("AttachedPolicies");
                for (policy_name, arn) in &page.items {
                    answer.open("member").field("PolicyName", policy_name).field("PolicyArn", arn).close("member");
                }
                answer.close("AttachedPolicies");
                finish_page(answer, page.next_marker.as_deref(), &self.request_id)
            }
            other => Err(ApiError::NotImplemented(other.name())),
        }
    }

    /// The user or role an inline-policy or attachment operation names.
    fn holder_name(&self, operation: IamOperation) -> Result<String> {
        if operation.resource_kind() == ResourceKind::User {
            let name = self.params.require("UserName", "userName")?;
            validate::name(name, "userName", 1, 128)?;
            Ok(name.to_owned())
        } else {
            self.role_name().map(str::to_owned)
        }
    }
}

fn holder(operation: IamOperation, name: &str) -> Holder<'_> {
    if operation.resource_kind() == ResourceKind::User { Holder::User(name) } else { Holder::Role(name) }
}

fn status(active: bool) -> &'static str {
    if active { "Active" } else { "Inactive" }
}

/// The root's access keys of `account`: those the configuration declares.
fn root_keys(ids: &Identities, account: &str) -> Vec<AccessKeyInfo> {
    ids.accounts()
        .iter()
        .filter(|key| key.account_id == account && key.identity.is_root())
        .map(|key| AccessKeyInfo { user: String::new(), id: key.access_key_id.clone(), active: true, created: 0 })
        .collect()
}

fn finish_page(mut answer: Answer, next_marker: Option<&str>, request_id: &str) -> Result<String, ApiError> {
    answer.field("IsTruncated", if next_marker.is_some() { "true" } else { "false" });
    answer.optional("Marker", next_marker);
    Ok(answer.finish(request_id))
}

fn tags_field(answer: &mut Answer, tags: &[Tag]) {
    if tags.is_empty() {
        return;
    }
    answer.open("Tags");
    for tag in tags {
        answer.open("member").field("Key", &tag.key).field("Value", &tag.value).close("member");
    }
    answer.close("Tags");
}

fn user_fields(answer: &mut Answer, user: &UserRecord) {
    answer
        .field("Path", &user.path)
        .field("UserName", &user.name)
        .field("UserId", &user.id)
        .field("Arn", &user.arn())
        .field("CreateDate", &shared::time::format_rfc3339(user.created));
    tags_field(answer, &user.tags);
}

fn render_user(answer: &mut Answer, user: &UserRecord) {
    answer.open("User");
    user_fields(answer, user);
    answer.close("User");
}

fn role_fields(answer: &mut Answer, role: &RoleRecord) {
    answer
        .field("Path", &role.path)
        .field("RoleName", &role.name)
        .field("RoleId", &role.id)
        .field("Arn", &role.arn())
        .field("CreateDate", &shared::time::format_rfc3339(role.created))
        .field("AssumeRolePolicyDocument", &encode_policy(&role.trust_policy))
        .optional("Description", role.description.as_deref())
        .field("MaxSessionDuration", &role.max_session_duration.to_string());
    tags_field(answer, &role.tags);
}

fn render_role(answer: &mut Answer, role: &RoleRecord) {
    answer.open("Role");
    role_fields(answer, role);
    answer.close("Role");
}

fn policy_fields(answer: &mut Answer, info: &ManagedPolicyInfo) {
    let record: &PolicyRecord = &info.record;
    let created = shared::time::format_rfc3339(record.created);
    answer
        .field("PolicyName", &record.name)
        .field("PolicyId", &record.id)
        .field("Arn", &record.arn())
        .field("Path", &record.path)
        .field("DefaultVersionId", "v1")
        .field("AttachmentCount", &info.attachments.to_string())
        .field("PermissionsBoundaryUsageCount", "0")
        .field("IsAttachable", "true")
        .optional("Description", record.description.as_deref())
        .field("CreateDate", &created)
        .field("UpdateDate", &created);
    tags_field(answer, &record.tags);
}

fn render_policy(answer: &mut Answer, info: &ManagedPolicyInfo) {
    answer.open("Policy");
    policy_fields(answer, info);
    answer.close("Policy");
}

#[cfg(test)]
mod tests;
