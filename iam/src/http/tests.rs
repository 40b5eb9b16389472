//! The Query front end: wire errors of every core error, and the routing test of the credential scope.

use super::*;

#[test]
fn every_core_error_has_its_code_and_status() {
    let cases: &[(Error, u16, &str)] = &[
        (Error::NoSuchEntity(String::new()), 404, "NoSuchEntity"),
        (Error::EntityAlreadyExists(String::new()), 409, "EntityAlreadyExists"),
        (Error::MalformedPolicyDocument(String::new()), 400, "MalformedPolicyDocument"),
        (Error::LimitExceeded(String::new()), 409, "LimitExceeded"),
        (Error::DeleteConflict(String::new()), 409, "DeleteConflict"),
        (Error::Validation(String::new()), 400, "ValidationError"),
        (Error::InvalidInput(String::new()), 400, "InvalidInput"),
        (Error::AccessDenied(String::new()), 403, "AccessDenied"),
        (Error::PackedPolicyTooLarge(String::new()), 400, "PackedPolicyTooLarge"),
        (Error::Throttling(String::new()), 400, "Throttling"),
        (Error::Internal(String::new()), 500, "ServiceFailure"),
    ];
    for (error, status, code) in cases {
        assert_eq!(wire_error(error), (StatusCode::from_u16(*status).unwrap(), *code), "{error:?}");
    }
}

#[test]
fn auth_refusals_read_as_iam_and_sts_word_them() {
    let cases: &[(AuthError, u16, &str)] = &[
        (AuthError::Missing, 403, "MissingAuthenticationToken"),
        (AuthError::UnknownAccessKey, 403, "InvalidClientTokenId"),
        (AuthError::InvalidToken, 403, "InvalidClientTokenId"),
        (AuthError::ExpiredToken, 403, "ExpiredToken"),
        (AuthError::Malformed("m".into()), 400, "IncompleteSignature"),
    ];
    for (error, status, code) in cases {
        let (got_status, got_code, _) = ApiError::Auth(error.clone()).status_code_message(Service::Sts);
        assert_eq!((got_status.as_u16(), got_code), (*status, *code), "{error:?}");
    }
    let (_, _, message) = ApiError::Auth(AuthError::ExpiredToken).status_code_message(Service::Sts);
    assert_eq!(message, "The security token included in the request is expired");
}

#[test]
fn requests_are_recognised_by_their_credential_scope() {
    let signed = |service: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00")
                .parse()
                .unwrap(),
        );
        headers
    };
    let post = Method::POST;
    assert!(IamApi::accepts(&post, "/", "", &signed("iam")));
    assert!(IamApi::accepts(&post, "/", "", &signed("sts")));
    assert!(!IamApi::accepts(&post, "/", "", &signed("s3")));
    assert!(!IamApi::accepts(&post, "/", "", &signed("kms")));
    let presigned =
        "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fsts%2Faws4_request";
    assert!(IamApi::accepts(&Method::GET, "/", presigned, &HeaderMap::new()));
    let mut form = HeaderMap::new();
    form.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8".parse().unwrap());
    assert!(IamApi::accepts(&post, "/", "", &form), "an unsigned Query form");
    assert!(!IamApi::accepts(&post, "/bucket", "", &form), "a form to a bucket is S3's");
    assert!(!IamApi::accepts(&Method::GET, "/", "", &HeaderMap::new()));
}
