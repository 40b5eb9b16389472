//! The in-process [`KeyService`]: the storage services calling the KMS core directly, with the
//! customer's key states and grants applied and each call recorded in the audit log as made via
//! the service.

use std::sync::Arc;

use faults::Fired;
use shared::key_service::{BoxFuture, DataKey, EncryptionContext, KeyService, KeyServiceError};
use shared::{Caller, RequestContext};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::model::GrantOperation;
use crate::service::{CreateGrantInput, Kms};

/// A [`KeyService`] backed by a [`Kms`] in the same process.
#[derive(Debug, Clone)]
pub struct InProcessKeyService {
    kms: Arc<Kms>,
}

impl InProcessKeyService {
    /// A key service over `kms`.
    pub fn new(kms: Arc<Kms>) -> Self {
        InProcessKeyService { kms }
    }
}

/// What the storage services may learn of a KMS error.
fn to_key_service_error(error: Error) -> KeyServiceError {
    match error {
        Error::Disabled(m) => KeyServiceError::Disabled(m),
        Error::InvalidState(m) => KeyServiceError::InvalidState(m),
        Error::NotFound(m) => KeyServiceError::NotFound(m),
        Error::AccessDenied(m) => KeyServiceError::AccessDenied(m),
        Error::InvalidCiphertext(m) | Error::IncorrectKey(m) => KeyServiceError::InvalidCiphertext(m),
        Error::Internal(detail) => {
            tracing::error!(%detail, "internal KMS error on a service call");
            KeyServiceError::Unavailable("The KMS failed internally.".into())
        }
        other => {
            KeyServiceError::Rejected { code: crate::aws::error_code(&other).to_owned(), message: other.to_string() }
        }
    }
}

/// Runs a mutation (it fsyncs) on the blocking pool: unlike `block_in_place`, this works on a
/// current-thread runtime too. A task that panicked comes back as an internal error.
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Internal(format!("a KMS mutation task failed: {e}"))))
}

/// Service-managed aliases and the description AWS gives their keys.
fn service_key_description(alias: &str) -> String {
    match alias {
        "alias/aws/s3" => "Default key that protects my S3 objects when no other key is defined".into(),
        "alias/aws/ebs" => "Default key that protects my EBS volumes when no other key is defined".into(),
        "alias/obs/default" => "Default key that protects my OBS objects when no other key is defined".into(),
        "alias/evs/default" => "Default key that protects my EVS disks when no other key is defined".into(),
        other => format!("Default key for {other}"),
    }
}

impl InProcessKeyService {
    /// Whether the call of `audited` is refused before it runs: the delay of a fired fault rule, then its error (or
    /// a reset connection, which a service sees as a KMS it could not reach); or else the caller's request quota
    /// (`--quotas aws`), counted by the key `named` or the key of `blob`. A refusal is recorded in the audit log
    /// with `key` (the key's ARN as far as known).
    async fn refused(
        &self,
        fired: Option<&Fired>,
        audited: &RequestContext,
        (named, blob): (Option<&str>, Option<&[u8]>),
        key: impl FnOnce() -> Option<String>,
        context: &EncryptionContext,
    ) -> Option<KeyServiceError> {
        if let Some(fired) = fired.filter(|f| !f.delay_before.is_zero()) {
            tokio::time::sleep(fired.delay_before).await;
        }
        let refusal = match fired {
            Some(Fired { error: Some(injected), .. }) => {
                KeyServiceError::from_code(injected.code, injected.message.clone())
            }
            Some(Fired { reset: true, .. }) => {
                KeyServiceError::Unavailable("The connection to the KMS was reset.".into())
            }
            _ => {
                let throttled = self.kms.quota(audited, named, blob, None)?;
                KeyServiceError::from_code(throttled.code, throttled.message)
            }
        };
        self.kms.record_call(audited, key(), Some(context.clone()), refusal.code());
        Some(refusal)
    }
}

/// Waits out the delay a fired fault rule adds after the operation.
async fn delay_after(fired: Option<&Fired>) {
    if let Some(fired) = fired.filter(|f| !f.delay_after.is_zero()) {
        tokio::time::sleep(fired.delay_after).await;
    }
}

impl KeyService for InProcessKeyService {
    fn generate_data_key<'a>(
        &'a self,
        caller: &'a Caller,
        key_id: &'a str,
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<DataKey, KeyServiceError>> {
        Box::pin(async move {
            let mut audited = RequestContext::internal(caller.clone(), "GenerateDataKey", "kms:GenerateDataKey");
            let fired = self.kms.fault(&audited, "internal", Some(key_id), None);
            audited.fault = fired.as_ref().map(|f| f.rule);
            let named = (Some(key_id), None);
            let key = || Some(key_id.to_owned());
            if let Some(refusal) = self.refused(fired.as_ref(), &audited, named, key, context).await {
                return Err(refusal);
            }
            let result = self.kms.generate_data_key(caller, key_id, 32, context, true);
            let (arn, outcome) = match &result {
                Ok(dk) => (Some(dk.key_arn.clone()), "Success".to_owned()),
                Err(e) => (Some(key_id.to_owned()), crate::aws::error_code(e).to_owned()),
            };
            self.kms.record_call(&audited, arn, Some(context.clone()), &outcome);
            delay_after(fired.as_ref()).await;
            let data_key = result.map_err(to_key_service_error)?;
            let plaintext =
                data_key.plaintext.ok_or_else(|| KeyServiceError::Unavailable("no plaintext data key".into()))?;
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&plaintext);
            Ok(DataKey { plaintext: key, ciphertext_blob: data_key.ciphertext_blob, key_arn: data_key.key_arn })
        })
    }

    fn decrypt<'a>(
        &'a self,
        caller: &'a Caller,
        ciphertext_blob: &'a [u8],
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KeyServiceError>> {
        Box::pin(async move {
            let mut audited = RequestContext::internal(caller.clone(), "Decrypt", "kms:Decrypt");
            let fired = self.kms.fault(&audited, "internal", None, Some(ciphertext_blob));
            audited.fault = fired.as_ref().map(|f| f.rule);
            let named = || {
                crate::blob::parse(ciphertext_blob)
                    .ok()
                    .and_then(|h| self.kms.key_record_in(&caller.region, h.key_id))
                    .map(|r| r.arn())
            };
            if let Some(refusal) =
                self.refused(fired.as_ref(), &audited, (None, Some(ciphertext_blob)), named, context).await
            {
                return Err(refusal);
            }
            let result = self.kms.decrypt(
                caller,
                ciphertext_blob,
                context,
                None,
                crate::spec::EncryptionAlgorithm::SymmetricDefault,
            );
            let arn = match &result {
                Ok(d) => Some(d.key_arn.clone()),
                Err(_) => named(),
            };
            let outcome = match &result {
                Ok(_) => "Success",
                Err(e) => crate::aws::error_code(e),
            };
            self.kms.record_call(&audited, arn, Some(context.clone()), outcome);
            delay_after(fired.as_ref()).await;
            result.map(|d| d.plaintext).map_err(to_key_service_error)
        })
    }

    fn service_managed_key<'a>(
        &'a self,
        caller: &'a Caller,
        alias: &'a str,
    ) -> BoxFuture<'a, Result<String, KeyServiceError>> {
        Box::pin(async move {
            // Found in memory on every call but the first; only creating it writes (and fsyncs).
            if let Some(arn) = self.kms.existing_service_managed_key(caller, alias) {
                return Ok(arn);
            }
            let description = service_key_description(alias);
            let (kms, owned_caller, owned_alias) = (self.kms.clone(), caller.clone(), alias.to_owned());
            let record = run_blocking(move || kms.service_managed_key(&owned_caller, &owned_alias, &description)).await;
            record.map(|r| r.arn()).map_err(to_key_service_error)
        })
    }

    fn grant_service_access<'a>(
        &'a self,
        caller: &'a Caller,
        key_id: &'a str,
        grantee: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, KeyServiceError>> {
        Box::pin(async move {
            let (existing, arn) = self
                .kms
                .list_grants(caller, key_id, None, Some(grantee), usize::MAX, None)
                .map_err(to_key_service_error)?;
            if existing.items.iter().any(|g| g.name.as_deref() == Some(name)) {
                return Ok(arn);
            }
            let input = CreateGrantInput {
                grantee_principal: grantee.to_owned(),
                retiring_principal: None,
                operations: vec![GrantOperation::GenerateDataKey, GrantOperation::Decrypt, GrantOperation::DescribeKey],
                constraints: None,
                name: Some(name.to_owned()),
            };
            let (kms, owned_caller, owned_arn) = (self.kms.clone(), caller.clone(), arn.clone());
            let result = run_blocking(move || kms.create_grant(&owned_caller, &owned_arn, input)).await;
            let outcome = match &result {
                Ok(_) => "Success",
                Err(e) => crate::aws::error_code(e),
            };
            let audited = RequestContext::internal(caller.clone(), "CreateGrant", "kms:CreateGrant");
            self.kms.record_call(&audited, Some(arn.clone()), None, outcome);
            result.map(|_| arn).map_err(to_key_service_error)
        })
    }
}
