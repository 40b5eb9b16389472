//! The errors a rule may inject, by service: each with the status and the message the real service sends.
//!
//! A rule names an error by its wire code; the front end renders it in its own dialect (AWS JSON, S3 XML, OTC
//! JSON). Only errors the real service can answer for any request are listed, so a test cannot inject an answer
//! no client would ever see.

use crate::Service;

/// One error a service can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogError {
    /// The wire code (`ThrottlingException`, `SlowDown`, `KMS.0101`).
    pub code: &'static str,
    /// The HTTP status it is sent with.
    pub status: u16,
    /// The message the real service sends with it.
    pub message: &'static str,
}

const fn error(code: &'static str, status: u16, message: &'static str) -> CatalogError {
    CatalogError { code, status, message }
}

/// AWS KMS, from the "Errors" sections of the AWS KMS API reference; `ThrottlingException`'s message is the one
/// the KMS developer guide quotes ("Throttling AWS KMS requests").
const AWS_KMS: &[CatalogError] = &[
    error(
        "ThrottlingException",
        400,
        "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
    ),
    error(
        "KMSInternalException",
        500,
        "The request was rejected because an internal exception occurred. The request can be retried.",
    ),
    error(
        "DependencyTimeoutException",
        503,
        "The system timed out while trying to fulfill the request. You can retry the request.",
    ),
    error(
        "KeyUnavailableException",
        500,
        "The request was rejected because the specified KMS key was not available. You can retry the request.",
    ),
    error(
        "KMSInvalidStateException",
        400,
        "The request was rejected because the state of the specified resource is not valid for this request.",
    ),
    error("DisabledException", 400, "The request was rejected because the specified KMS key is not enabled."),
    error("LimitExceededException", 400, "The request was rejected because a quota was exceeded."),
];

/// The OTC / Huawei Cloud KMS API: its own `KMS.xxxx` codes, and the API gateway's throttling answer.
const OTC_KMS: &[CatalogError] = &[
    error("KMS.0101", 500, "System error."),
    error("KMS.0209", 400, "The key has been disabled."),
    error("KMS.0210", 400, "The key is pending deletion."),
    error("APIGW.0308", 429, "The throttling threshold has been reached: policy user over ratelimit"),
];

/// S3, from the "Error responses" list of the Amazon S3 API reference.
const S3: &[CatalogError] = &[
    error("SlowDown", 503, "Please reduce your request rate."),
    error("InternalError", 500, "We encountered an internal error. Please try again."),
    error("ServiceUnavailable", 503, "Reduce your request rate."),
    error(
        "RequestTimeout",
        400,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
    error("AccessDenied", 403, "Access Denied"),
];

/// The codes a failed EVS job reports (its `error_code` and `fail_reason`), from the EVS API reference's error
/// code list.
const EVS_JOBS: &[CatalogError] = &[
    error("EVS.5500", 500, "Internal server error."),
    error("EVS.2040", 400, "The CMK is not enabled."),
    error("EVS.2041", 400, "The encrypt Param is invalid!"),
    error("EVS.2055", 400, "can not create encrypt volume because hasn't xrole."),
    error("EVS.1046", 400, "Failed to delete the disk."),
];

/// IAM, from the "Common Errors" of the IAM API reference.
const IAM: &[CatalogError] = &[
    error("Throttling", 400, "Rate exceeded"),
    error(
        "ServiceFailure",
        500,
        "The request processing has failed because of an unknown error, exception or failure.",
    ),
    error("ServiceUnavailable", 503, "The request has failed due to a temporary failure of the server."),
];

/// STS, from the "Common Errors" of the STS API reference.
const STS: &[CatalogError] = &[
    error("Throttling", 400, "Rate exceeded"),
    error(
        "InternalFailure",
        500,
        "The request processing has failed because of an unknown error, exception or failure.",
    ),
    error("ServiceUnavailable", 503, "The request has failed due to a temporary failure of the server."),
];

/// The errors a rule for `service` in `dialect` may inject.
pub fn errors(service: Service, dialect: Option<&str>) -> &'static [CatalogError] {
    match (service, dialect) {
        (Service::Kms, Some("otc")) => OTC_KMS,
        (Service::Kms, _) => AWS_KMS,
        (Service::S3 | Service::Obs, _) => S3,
        (Service::Evs, _) => EVS_JOBS,
        (Service::Iam, _) => IAM,
        (Service::Sts, _) => STS,
        (Service::Nbd, _) => &[],
    }
}

/// The catalog entry for `code`, in the catalog of `service` and `dialect`, or in either KMS catalog for a KMS
/// rule that names no dialect (the code tells which).
pub fn find(service: Service, dialect: Option<&str>, code: &str) -> Option<CatalogError> {
    let lists: &[&[CatalogError]] = match (service, dialect) {
        (Service::Kms, None) => &[AWS_KMS, OTC_KMS],
        _ => &[errors(service, dialect)],
    };
    lists.iter().flat_map(|list| list.iter()).find(|e| e.code == code).copied()
}

/// Whether `code` is one of the OTC dialect's codes (the KMS front ends answer only their own dialect's errors).
pub fn is_otc(code: &str) -> bool {
    OTC_KMS.iter().any(|e| e.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_in_their_dialect_only() {
        assert_eq!(find(Service::Kms, Some("aws"), "ThrottlingException").map(|e| e.status), Some(400));
        assert_eq!(find(Service::Kms, None, "KMS.0101").map(|e| e.status), Some(500));
        assert_eq!(find(Service::Kms, Some("aws"), "KMS.0101"), None);
        assert_eq!(find(Service::Kms, Some("otc"), "ThrottlingException"), None);
        assert_eq!(find(Service::S3, None, "SlowDown").map(|e| e.status), Some(503));
        assert_eq!(find(Service::S3, None, "ThrottlingException"), None);
        assert!(is_otc("APIGW.0308") && !is_otc("SlowDown"));
    }
}
