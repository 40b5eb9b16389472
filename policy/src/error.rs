//! Why a policy document was refused, and how each service words the refusal.
//!
//! One [`PolicyError`] per refusal; [`PolicyError::iam_message`], [`PolicyError::kms_message`] and
//! [`PolicyError::s3_message`] give the text of IAM's `MalformedPolicyDocument`, KMS's
//! `MalformedPolicyDocumentException` and S3's `MalformedPolicy`. Where a text below was seen in
//! AWS's answers (quoted in public issue threads or emulators' recordings) its doc comment says so;
//! the others are kmsim's best wording and say "unverified".

use std::fmt;

/// A policy document that the grammar refuses: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed policy: {kind}")]
pub struct PolicyError {
    kind: ErrorKind,
}

/// Results of parsing a policy.
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

/// What is wrong with a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text is not JSON.
    InvalidJson,
    /// The text is JSON, but not an object (its first byte is not `{`).
    NotAnObject,
    /// A member the grammar does not know, at the top level or in a statement.
    UnknownField(String),
    /// An element of the wrong JSON type (`"Effect": 5`, a statement that is a string, ...).
    InvalidElement(&'static str),
    /// `Version` is neither `2012-10-17` nor `2008-10-17`.
    InvalidVersion,
    /// No `Statement`.
    MissingStatement,
    /// `"Statement": []`.
    EmptyStatement,
    /// A `Sid` with characters other than `[0-9A-Za-z]` (IAM's policies only).
    InvalidSid(String),
    /// Two statements with one `Sid` (IAM's policies only).
    DuplicateSid(String),
    /// A statement without `Effect`.
    MissingEffect,
    /// An `Effect` other than `Allow` or `Deny` (which are case-sensitive).
    InvalidEffect(String),
    /// A statement with both an element and its `Not` form.
    BothElements(&'static str),
    /// A statement with neither `Action` nor `NotAction` (or an empty list).
    MissingAction,
    /// An action that is not `*` nor `vendor:pattern`.
    InvalidAction {
        /// The action as written.
        action: String,
        /// Whether it has a vendor at all (`iam:Get*`) — a vendor with a wildcard (`*am:Get`) is
        /// refused with another message.
        has_vendor: bool,
    },
    /// A trust policy naming an action other than STS's.
    TrustActionNotSts(String),
    /// A statement with neither `Resource` nor `NotResource` where one is required.
    MissingResource,
    /// `Resource` or `NotResource` in a role trust policy.
    ProhibitedResource,
    /// A resource that is not `*` nor an ARN of six `:`-separated parts.
    InvalidResource(String),
    /// `Principal` or `NotPrincipal` in an identity-based policy.
    PrincipalNotAllowed,
    /// A resource-based or trust policy statement without `Principal` or `NotPrincipal`.
    MissingPrincipal,
    /// A principal the grammar cannot name: a wildcard inside an ARN, an unknown principal type,
    /// a malformed account id or ARN. The text is AWS's `"AWS":"value"` form.
    InvalidPrincipal(String),
    /// A condition operator the grammar does not know (`StringEqualz`, `Null` with `IfExists`).
    InvalidConditionOperator(String),
    /// A condition key without a vendor prefix (`SourceIp` instead of `aws:SourceIp`).
    InvalidConditionKey(String),
    /// A condition value the operator cannot read (`NumericLessThan` of `ten`, an IP address of
    /// `300.1.1.1`, a date of `yesterday`, `Null` of `maybe`).
    InvalidConditionValue {
        /// The operator as written.
        operator: String,
        /// The value as written.
        value: String,
    },
}

impl PolicyError {
    pub(crate) fn new(kind: ErrorKind) -> PolicyError {
        PolicyError { kind }
    }

    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The message of IAM's `MalformedPolicyDocument` (CreatePolicy, PutUserPolicy, CreateRole's
    /// trust policy, ...).
    ///
    /// Seen in AWS's answers: "Syntax errors in policy.", "Policy document should not specify a
    /// principal.", "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the
    /// regular expression [0-9A-Za-z]*", "Statement IDs (SID) in a single policy must be unique.",
    /// "Resource X must be in ARN format or \"*\".", "Actions/Conditions must be prefaced by a
    /// vendor, e.g., iam, sdb, ec2, etc.", "Action vendors must not contain wildcards.", "Has
    /// prohibited field Resource.", "AssumeRole policy may only specify STS AssumeRole actions.",
    /// "Invalid principal in policy: \"AWS\":\"...\"", "Policy statement must contain actions.",
    /// "Policy statement must contain resources.", "Invalid principal in policy: com.amazon.balsa.error.
    /// InvalidPolicyException: The passed in policy has a statement with no principals!" (a trust policy).
    /// Unverified: the text for an unknown condition operator.
    pub fn iam_message(&self) -> String {
        match &self.kind {
            ErrorKind::InvalidSid(_) => {
                "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the \
                                         regular expression [0-9A-Za-z]*"
                    .into()
            }
            ErrorKind::DuplicateSid(_) => "Statement IDs (SID) in a single policy must be unique.".into(),
            ErrorKind::MissingAction => "Policy statement must contain actions.".into(),
            ErrorKind::MissingResource => "Policy statement must contain resources.".into(),
            ErrorKind::InvalidAction { has_vendor: true, .. } => "Action vendors must not contain wildcards.".into(),
            ErrorKind::InvalidAction { has_vendor: false, .. } | ErrorKind::InvalidConditionKey(_) => {
                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.".into()
            }
            ErrorKind::TrustActionNotSts(_) => "AssumeRole policy may only specify STS AssumeRole actions.".into(),
            ErrorKind::ProhibitedResource => "Has prohibited field Resource.".into(),
            ErrorKind::InvalidResource(resource) => format!("Resource {resource} must be in ARN format or \"*\"."),
            ErrorKind::PrincipalNotAllowed => "Policy document should not specify a principal.".into(),
            // As IAM answers a trust policy statement without a principal (seen in terraform-aws-modules/
            // terraform-aws-iam#47 and cloudposse/terraform-aws-cloudwatch-logs#7).
            ErrorKind::MissingPrincipal => {
                "Invalid principal in policy: com.amazon.balsa.error.InvalidPolicyException: \
                                            The passed in policy has a statement with no principals!"
                    .into()
            }
            ErrorKind::InvalidPrincipal(principal) => format!("Invalid principal in policy: {principal}"),
            // Unverified.
            ErrorKind::InvalidConditionOperator(operator) => format!("Invalid Condition type : {operator}."),
            ErrorKind::InvalidJson
            | ErrorKind::NotAnObject
            | ErrorKind::UnknownField(_)
            | ErrorKind::InvalidElement(_)
            | ErrorKind::InvalidVersion
            | ErrorKind::MissingStatement
            | ErrorKind::EmptyStatement
            | ErrorKind::MissingEffect
            | ErrorKind::InvalidEffect(_)
            | ErrorKind::BothElements(_)
            | ErrorKind::InvalidConditionValue { .. } => "Syntax errors in policy.".into(),
        }
    }

    /// The message of KMS's `MalformedPolicyDocumentException` (CreateKey, PutKeyPolicy).
    ///
    /// Seen in AWS's answers: "Policy contains a statement with one or more invalid principals."
    /// and, for a text that is not JSON, an empty message (aws/aws-sdk-ruby#1784). Unverified: every
    /// other text, which is IAM's.
    pub fn kms_message(&self) -> String {
        match &self.kind {
            ErrorKind::InvalidPrincipal(_) | ErrorKind::MissingPrincipal => {
                "Policy contains a statement with one or more invalid principals.".into()
            }
            ErrorKind::InvalidJson | ErrorKind::NotAnObject => String::new(),
            _ => self.iam_message(),
        }
    }

    /// The message of S3's `MalformedPolicy` (PutBucketPolicy).
    ///
    /// Seen in AWS's answers: "Policies must be valid JSON and the first byte must be '{'", "This
    /// policy contains invalid Json", "Missing required field Statement", "Missing required field
    /// Principal", "Invalid principal in policy", "Policy has invalid resource", "Policy has invalid
    /// action"; recorded by versitygw's S3 emulation: "Could not parse the policy: Statement is
    /// empty!", "Invalid effect: X", "The policy must contain a valid version string". Unverified:
    /// the texts for unknown fields, missing effect, action or resource, condition faults and other
    /// syntax faults.
    pub fn s3_message(&self) -> String {
        match &self.kind {
            ErrorKind::InvalidJson => "This policy contains invalid Json".into(),
            ErrorKind::NotAnObject => "Policies must be valid JSON and the first byte must be '{'".into(),
            ErrorKind::UnknownField(field) => format!("Unknown field {field}"),
            ErrorKind::InvalidVersion => "The policy must contain a valid version string".into(),
            ErrorKind::MissingStatement => "Missing required field Statement".into(),
            ErrorKind::EmptyStatement => "Could not parse the policy: Statement is empty!".into(),
            ErrorKind::MissingEffect => "Missing required field Effect".into(),
            ErrorKind::InvalidEffect(effect) => format!("Invalid effect: {effect}"),
            ErrorKind::MissingAction => "Missing required field Action".into(),
            ErrorKind::MissingResource => "Missing required field Resource".into(),
            ErrorKind::MissingPrincipal => "Missing required field Principal".into(),
            ErrorKind::InvalidAction { .. } | ErrorKind::TrustActionNotSts(_) => "Policy has invalid action".into(),
            ErrorKind::InvalidResource(_) | ErrorKind::ProhibitedResource => "Policy has invalid resource".into(),
            ErrorKind::InvalidPrincipal(_) | ErrorKind::PrincipalNotAllowed => "Invalid principal in policy".into(),
            ErrorKind::InvalidConditionKey(_) => "Policy has an invalid condition key".into(),
            ErrorKind::InvalidConditionOperator(operator) => format!("Invalid Condition type : {operator}"),
            ErrorKind::InvalidConditionValue { .. } => "Invalid Condition value".into(),
            ErrorKind::InvalidSid(_) | ErrorKind::DuplicateSid(_) => self.iam_message(),
            ErrorKind::InvalidElement(_) | ErrorKind::BothElements(_) => "Invalid policy syntax.".into(),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::InvalidJson => write!(f, "the document is not JSON"),
            ErrorKind::NotAnObject => write!(f, "the document is not a JSON object"),
            ErrorKind::UnknownField(field) => write!(f, "unknown field {field}"),
            ErrorKind::InvalidElement(element) => write!(f, "{element} has the wrong type or shape"),
            ErrorKind::InvalidVersion => write!(f, "Version must be 2012-10-17 or 2008-10-17"),
            ErrorKind::MissingStatement => write!(f, "no Statement"),
            ErrorKind::EmptyStatement => write!(f, "Statement is empty"),
            ErrorKind::InvalidSid(sid) => write!(f, "Sid {sid:?} is not alphanumeric"),
            ErrorKind::DuplicateSid(sid) => write!(f, "Sid {sid:?} is used twice"),
            ErrorKind::MissingEffect => write!(f, "a statement has no Effect"),
            ErrorKind::InvalidEffect(effect) => write!(f, "Effect {effect:?} is neither Allow nor Deny"),
            ErrorKind::BothElements(element) => write!(f, "a statement has both {element} and Not{element}"),
            ErrorKind::MissingAction => write!(f, "a statement has no Action or NotAction"),
            ErrorKind::InvalidAction { action, .. } => write!(f, "invalid action {action:?}"),
            ErrorKind::TrustActionNotSts(action) => write!(f, "a trust policy names the non-STS action {action:?}"),
            ErrorKind::MissingResource => write!(f, "a statement has no Resource or NotResource"),
            ErrorKind::ProhibitedResource => write!(f, "a trust policy may not name resources"),
            ErrorKind::InvalidResource(resource) => write!(f, "invalid resource {resource:?}"),
            ErrorKind::PrincipalNotAllowed => write!(f, "an identity-based policy may not name principals"),
            ErrorKind::MissingPrincipal => write!(f, "a statement has no Principal or NotPrincipal"),
            ErrorKind::InvalidPrincipal(principal) => write!(f, "invalid principal {principal}"),
            ErrorKind::InvalidConditionOperator(operator) => write!(f, "unknown condition operator {operator:?}"),
            ErrorKind::InvalidConditionKey(key) => write!(f, "condition key {key:?} has no vendor prefix"),
            ErrorKind::InvalidConditionValue { operator, value } => {
                write!(f, "{operator} cannot compare with {value:?}")
            }
        }
    }
}
