//! Signatures of browser form uploads (S3's POST Object, OBS's form upload). The form carries a
//! base64 policy document and its signature, which covers nothing but that base64 text:
//!
//! - V2 (`AWSAccessKeyId` or OBS's `AccessKeyId`, `signature`): `base64(HMAC-SHA1(SK, policy))`, as
//!   botocore's `generate_presigned_post` with V2 and esdk-obs-python's `createPostSignature` make it;
//! - SigV4 (`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `x-amz-signature`):
//!   `hex(HMAC-SHA256(signing key of the credential's scope, policy))`, boto3's default.
//!
//! The policy's own expiration and conditions are the service's to check; the signature's time
//! limit is the policy's expiration, so no clock skew is checked here.

use crate::sigv2::{self, Dialect};
use crate::sigv4;
use crate::verifier::{AuthError, Scheme, Verified, Verifier};

impl Verifier {
    /// Verifies a V2 form signature by `access_key_id` over the base64 `policy`. The caller acts in
    /// `region` (V2 names none). Temporary credentials send their session token as a form field.
    pub fn verify_post_v2(
        &self,
        access_key_id: &str,
        policy: &str,
        signature: &str,
        security_token: Option<&str>,
        dialect: Dialect,
        region: &str,
    ) -> Result<Verified, AuthError> {
        let key = self.accounts.get(access_key_id).ok_or(AuthError::UnknownAccessKey)?;
        self.check_token(&key, security_token)?;
        let expected = sigv2::sign(&key.secret_access_key, policy);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes())) {
            return Err(AuthError::SignatureMismatch {
                string_to_sign: policy.to_owned(),
                canonical_request: String::new(),
            });
        }
        Ok(Verified::new(&key, region, Scheme::V2(dialect)))
    }

    /// Verifies a SigV4 form signature: `credential` is `AK/YYYYMMDD/region/service/aws4_request`,
    /// `amz_date` the form's `x-amz-date` (of the credential's day), `security_token` the form's
    /// `x-amz-security-token` for temporary credentials.
    pub fn verify_post_v4(
        &self,
        credential: &str,
        amz_date: &str,
        policy: &str,
        signature: &str,
        security_token: Option<&str>,
        service: &str,
    ) -> Result<Verified, AuthError> {
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, scope_service, "aws4_request"] = scope.as_slice() else {
            return Err(AuthError::Malformed(format!(
                "Invalid credential '{credential}': expected <access key>/<YYYYMMDD>/<region>/{service}/aws4_request"
            )));
        };
        if scope_service != &service || !amz_date.starts_with(date) || region.is_empty() {
            return Err(AuthError::BadScope(format!(
                "Invalid credential '{credential}' for x-amz-date '{amz_date}' and service '{service}'"
            )));
        }
        let key = self.accounts.get(access_key_id).ok_or(AuthError::UnknownAccessKey)?;
        self.check_token(&key, security_token)?;
        let scope = format!("{date}/{region}/{service}/aws4_request");
        let credential = sigv4::Credential { access_key_id, date, region, service };
        self.check_signature(&key, credential, amz_date, scope, policy, signature).ok_or_else(|| {
            AuthError::SignatureMismatch { string_to_sign: policy.to_owned(), canonical_request: String::new() }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::accounts::{AccessKey, Accounts};

    fn verifier() -> Verifier {
        let mut accounts = Accounts::with_defaults();
        accounts.insert(AccessKey::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "111122223333",
            None,
        ));
        Verifier::new(Arc::new(accounts))
    }

    /// The SigV4 example of the S3 API reference ("Example: Browser-based upload using HTTP POST"):
    /// its policy, credential and signature.
    #[test]
    fn sigv4_documentation_example() {
        let policy = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let credential = "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request";
        let signature = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";
        let verified =
            verifier().verify_post_v4(credential, "20151229T000000Z", policy, signature, None, "s3").unwrap();
        assert_eq!(
            (verified.caller.account_id.as_str(), verified.caller.region.as_str()),
            ("111122223333", "us-east-1")
        );
        let tampered = verifier().verify_post_v4(credential, "20151229T000000Z", &policy[1..], signature, None, "s3");
        assert!(matches!(tampered, Err(AuthError::SignatureMismatch { .. })));
        let other_day = verifier().verify_post_v4(credential, "20151230T000000Z", policy, signature, None, "s3");
        assert!(matches!(other_day, Err(AuthError::BadScope(_))));
        assert!(matches!(
            verifier().verify_post_v4("AK/2015", "x", policy, signature, None, "s3"),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn v2_signs_the_policy_text() {
        let policy = "eyJleHBpcmF0aW9uIjogIjIwMzAtMDEtMDFUMDA6MDA6MDBaIiwgImNvbmRpdGlvbnMiOiBbXX0=";
        let signature = sigv2::sign("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", policy);
        let v = verifier();
        let verified =
            v.verify_post_v2("AKIAIOSFODNN7EXAMPLE", policy, &signature, None, Dialect::Obs, "eu-de").unwrap();
        assert!(matches!(verified.scheme, Scheme::V2(Dialect::Obs)));
        assert!(matches!(
            v.verify_post_v2("AKIAIOSFODNN7EXAMPLE", "e30=", &signature, None, Dialect::Aws, "eu-de"),
            Err(AuthError::SignatureMismatch { .. })
        ));
        assert_eq!(
            v.verify_post_v2("NOBODY", policy, &signature, None, Dialect::Aws, "eu-de").unwrap_err(),
            AuthError::UnknownAccessKey
        );
    }
}
