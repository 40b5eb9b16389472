//! Imported key material (`Origin=EXTERNAL`): GetParametersForImport, ImportKeyMaterial and
//! DeleteImportedKeyMaterial, and the expiry of imported material on the KMS clock.
//!
//! Each GetParametersForImport makes a fresh RSA wrapping key, kept (wrapped under the master key) in the key's
//! record with its import token for 24 hours. ImportKeyMaterial unwraps the material with it — RSA OAEP, or RSA OAEP
//! of an ephemeral AES key followed by AES key wrap with padding (RFC 5649, AWS's `RSA_AES_KEY_WRAP_*`) — checks it
//! fits the key's spec, and binds the key to it: each material imported gets an id (`KeyMaterialId`, an HMAC
//! keyed with the material), so a re-import must bring material with an id the key knows, as AWS requires.
//!
//! A symmetric key takes further material for on-demand rotation (`ImportType` `NEW_KEY_MATERIAL`): it waits
//! `PENDING_ROTATION` beside the key's versions until RotateKeyOnDemand makes it the newest. Every material
//! associated with a key must be present for the key to be usable; deleting or expiring one puts the key back in
//! `PendingImport`.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::key_wrap::{AES_128, AES_256, KeyEncryptionKey, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use shared::Caller;
use shared::entropy::Purpose;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{Access, DAY, Kms, pending_deletion};
use crate::blob::EncryptionContext;
use crate::crypto::{self, VersionKey};
use crate::error::{Error, Result};
use crate::material::KeyMaterial;
use crate::model::{
    Import, ImportParameters, ImportedMaterial, KeyRecord, KeyState, KeyVersion, MAX_IMPORT_PARAMETERS, Origin,
    RotationType,
};
use crate::spec::{Family, KeySpec};

/// How long an import token and its public key are valid.
pub const IMPORT_PARAMETERS_LIFETIME: i64 = DAY;
/// The furthest ahead `ValidTo` may be.
pub const MAX_VALID_TO_AHEAD: i64 = 365 * DAY;
const TOKEN_PREFIX: &[u8] = b"kmsim-import-token-v1:";
const FINGERPRINT_LABEL: &[u8] = b"kmsim/imported-material/v1\0";
const MATERIAL_ID_LABEL: &[u8] = b"kmsim/key-material-id/v1\0";

/// How the customer wraps the material for import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappingAlgorithm {
    /// RSA OAEP with SHA-1.
    RsaesOaepSha1,
    /// RSA OAEP with SHA-256.
    RsaesOaepSha256,
    /// RSA OAEP (SHA-1) of an AES key, then AES key wrap with padding of the material.
    RsaAesKeyWrapSha1,
    /// RSA OAEP (SHA-256) of an AES key, then AES key wrap with padding of the material.
    RsaAesKeyWrapSha256,
}

impl WrappingAlgorithm {
    const ALL: [WrappingAlgorithm; 4] = [
        WrappingAlgorithm::RsaesOaepSha1,
        WrappingAlgorithm::RsaesOaepSha256,
        WrappingAlgorithm::RsaAesKeyWrapSha1,
        WrappingAlgorithm::RsaAesKeyWrapSha256,
    ];

    /// The AWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            WrappingAlgorithm::RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
            WrappingAlgorithm::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
            WrappingAlgorithm::RsaAesKeyWrapSha1 => "RSA_AES_KEY_WRAP_SHA_1",
            WrappingAlgorithm::RsaAesKeyWrapSha256 => "RSA_AES_KEY_WRAP_SHA_256",
        }
    }

    /// Parses an AWS `WrappingAlgorithm`; the ones AWS has and kmsim does not simulate are named as such.
    pub fn parse(name: &str) -> Result<Self> {
        if let Some(algorithm) = Self::ALL.into_iter().find(|a| a.as_str() == name) {
            return Ok(algorithm);
        }
        match name {
            "RSAES_PKCS1_V1_5" => Err(Error::Validation(
                "The wrapping algorithm RSAES_PKCS1_V1_5 is no longer supported; use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256."
                    .into(),
            )),
            "SM2PKE" => Err(Error::UnsupportedOperation("SM2PKE is available only in the China Regions.".into())),
            other => Err(crate::spec::enum_error(
                other,
                "wrappingAlgorithm",
                &["RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "SM2PKE"],
            )),
        }
    }

    fn oaep(self) -> &'static aws_lc_rs::rsa::OaepAlgorithm {
        match self {
            WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaAesKeyWrapSha1 => &OAEP_SHA1_MGF1SHA1,
            WrappingAlgorithm::RsaesOaepSha256 | WrappingAlgorithm::RsaAesKeyWrapSha256 => &OAEP_SHA256_MGF1SHA256,
        }
    }

    fn wraps_with_aes(self) -> bool {
        matches!(self, WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256)
    }
}

/// Parses an AWS `WrappingKeySpec`.
pub fn parse_wrapping_key_spec(name: &str) -> Result<KeySize> {
    match name {
        "RSA_2048" => Ok(KeySize::Rsa2048),
        "RSA_3072" => Ok(KeySize::Rsa3072),
        "RSA_4096" => Ok(KeySize::Rsa4096),
        "SM2" => Err(Error::UnsupportedOperation("SM2 wrapping keys are available only in the China Regions.".into())),
        other => Err(crate::spec::enum_error(other, "wrappingKeySpec", &["RSA_2048", "RSA_3072", "RSA_4096", "SM2"])),
    }
}

/// What GetParametersForImport answers.
#[derive(Debug)]
pub struct ImportParametersOutput {
    /// ARN of the key.
    pub key_arn: String,
    /// The opaque import token.
    pub import_token: Vec<u8>,
    /// The wrapping key's DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// When the token and public key expire.
    pub valid_to: i64,
}

/// What ImportKeyMaterial takes.
#[derive(Debug, Clone, Copy)]
pub struct ImportInput<'a> {
    /// The token of a GetParametersForImport answer for this key.
    pub import_token: &'a [u8],
    /// The material wrapped under that answer's public key (with `encrypted_private_key`: the AES key that wraps it).
    pub encrypted_material: &'a [u8],
    /// The OTC form of an asymmetric import: the private key wrapped (RFC 5649) under the AES key that
    /// `encrypted_material` carries, wrapped with RSA OAEP. The AWS dialect sends both parts in one field.
    pub encrypted_private_key: Option<&'a [u8]>,
    /// When the material expires (`None`: it does not); checked by the dialect.
    pub valid_to: Option<i64>,
    /// `ImportType`; `None`: new material for a key that has none yet, else existing material.
    pub import_type: Option<ImportType>,
    /// `KeyMaterialId` of the existing material being re-imported.
    pub material_id: Option<&'a str>,
    /// `KeyMaterialDescription`.
    pub description: Option<&'a str>,
}

/// ImportKeyMaterial's `ImportType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportType {
    /// Material already associated with the key, imported again.
    ExistingKeyMaterial,
    /// Material the key does not know yet: its first, or the next for on-demand rotation.
    NewKeyMaterial,
}

impl ImportType {
    /// Parses an AWS `ImportType`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "EXISTING_KEY_MATERIAL" => Ok(ImportType::ExistingKeyMaterial),
            "NEW_KEY_MATERIAL" => Ok(ImportType::NewKeyMaterial),
            other => Err(crate::spec::enum_error(other, "importType", &["NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"])),
        }
    }
}

/// The states of a key's materials that ListKeyRotations shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaterialState {
    /// The version that encrypts.
    Current,
    /// An older version, which only decrypts.
    NonCurrent,
    /// Imported for the next on-demand rotation.
    PendingRotation,
    /// Imported into a multi-Region primary key for its next on-demand rotation, not yet into all its replicas.
    PendingMultiRegionImportAndRotation,
}

impl MaterialState {
    /// Whether the material waits for an on-demand rotation.
    pub fn is_pending(self) -> bool {
        matches!(self, MaterialState::PendingRotation | MaterialState::PendingMultiRegionImportAndRotation)
    }

    /// The AWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            MaterialState::Current => "CURRENT",
            MaterialState::NonCurrent => "NON_CURRENT",
            MaterialState::PendingRotation => "PENDING_ROTATION",
            MaterialState::PendingMultiRegionImportAndRotation => "PENDING_MULTI_REGION_IMPORT_AND_ROTATION",
        }
    }
}

fn invalid_token() -> Error {
    Error::InvalidImportToken("The import token is invalid or is associated with a different KMS key.".into())
}

fn incorrect_material() -> Error {
    Error::IncorrectKeyMaterial(
        "The key material in the request is, expired, invalid, or is not the same key material that was previously imported into this KMS key."
            .into(),
    )
}

fn require_external(record: &KeyRecord) -> Result<()> {
    if record.origin == Origin::External {
        return Ok(());
    }
    Err(Error::UnsupportedOperation(format!(
        "{} origin is {} which is not valid for this operation.",
        record.arn(),
        record.origin.as_str()
    )))
}

/// The primary Region of a multi-Region replica key; `None` for a primary or single-Region key.
fn replica_of(record: &KeyRecord) -> Option<&str> {
    record.multi_region.as_ref().map(|m| m.primary_region.as_str()).filter(|primary| *primary != record.region)
}

/// The id of a key's imported material pending rotation, if it has one.
fn pending_material_id(record: &KeyRecord) -> Option<&str> {
    let pending = record.import.as_ref()?.pending_rotation.as_ref()?;
    pending.imported.as_ref().map(|i| i.id.as_str())
}

/// Brings a replica of an `EXTERNAL` multi-Region primary in line with the primary after a change to the primary
/// alone: an on-demand rotation moves the replica's copy of the material pending rotation into its versions (the
/// replicas hold it before the primary may rotate), and deleting the primary's material pending rotation deletes
/// the replica's too. Whether the replica changed.
pub(super) fn sync_imported_replica(primary: &KeyRecord, replica: &mut KeyRecord) -> bool {
    let mut changed = false;
    let newest = primary.versions.last().and_then(|v| v.imported.as_ref().map(|i| (v, i.id.as_str())));
    if let Some((newest, id)) = newest
        && replica.versions.len() + 1 == primary.versions.len()
        && pending_material_id(replica) == Some(id)
        && let Some(mut version) = replica.import.as_mut().and_then(|i| i.pending_rotation.take())
    {
        version.created = newest.created;
        version.rotation_type = newest.rotation_type;
        replica.versions.push(version);
        replica.rotation = primary.rotation.clone();
        changed = true;
    }
    if let Some(id) = pending_material_id(replica)
        && pending_material_id(primary) != Some(id)
        && let Some(import) = &mut replica.import
    {
        import.pending_rotation = None;
        changed = true;
    }
    changed
}

pub(super) fn wrapping_key_aad(key_id: &str, token_id: &str) -> String {
    format!("{key_id}/import/{token_id}")
}

/// Drops the imported material of version `index` (deleted, or expired): the key waits for it to be imported again.
fn forget_version(record: &mut KeyRecord, index: usize) {
    if let Some(version) = record.versions.get_mut(index) {
        version.wrapped_material.clear();
        if let Some(imported) = &mut version.imported {
            imported.valid_to = None;
        }
    }
    if record.state != KeyState::PendingDeletion {
        record.state = KeyState::PendingImport;
    }
}

/// Drops imported material whose `ValidTo` has passed (a material pending rotation goes altogether). Whether any
/// did.
pub(super) fn expire_materials(record: &mut KeyRecord, now: i64) -> bool {
    let expired =
        |v: &KeyVersion| v.has_material() && v.imported.as_ref().and_then(|i| i.valid_to).is_some_and(|t| t <= now);
    let mut changed = false;
    if let Some(import) = &mut record.import
        && import.pending_rotation.as_ref().is_some_and(expired)
    {
        import.pending_rotation = None;
        changed = true;
    }
    for index in 0..record.versions.len() {
        if expired(&record.versions[index]) {
            forget_version(record, index);
            changed = true;
        }
    }
    changed
}

/// When a key's imported material next expires, if it does.
pub(super) fn next_expiry(record: &KeyRecord) -> Option<i64> {
    let pending = record.import.as_ref().and_then(|i| i.pending_rotation.as_ref());
    record
        .versions
        .iter()
        .chain(pending)
        .filter(|v| v.has_material())
        .filter_map(|v| v.imported.as_ref().and_then(|i| i.valid_to))
        .min()
}

/// Every material of a key with the state ListKeyRotations gives it: its versions, oldest first, then the material
/// pending rotation.
pub fn materials(record: &KeyRecord) -> Vec<(&KeyVersion, MaterialState)> {
    let last = record.versions.len().saturating_sub(1);
    let versions = record
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| (v, if i == last { MaterialState::Current } else { MaterialState::NonCurrent }));
    let pending = record.import.as_ref().and_then(|i| i.pending_rotation.as_ref());
    versions.chain(pending.map(|v| (v, MaterialState::PendingRotation))).collect()
}

/// The `KeyMaterialId` of version `index` of a key: the imported material's id, or for material KMS made an id
/// derived from the key id and the version (stable, and distinct per version).
pub fn material_id(record: &KeyRecord, version: &KeyVersion, index: usize) -> String {
    if let Some(imported) = &version.imported {
        return imported.id.clone();
    }
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(MATERIAL_ID_LABEL);
    context.update(record.id.as_bytes());
    context.update(&(index as u64).to_be_bytes());
    hex::encode(context.finish().as_ref())
}

/// The id of imported material: HMAC-SHA-256 keyed with the material over the key id (a re-import's material must
/// have an id the key knows).
fn fingerprint(key_id: &str, material: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, material);
    let mut context = hmac::Context::with_key(&key);
    context.update(FINGERPRINT_LABEL);
    context.update(key_id.as_bytes());
    hex::encode(context.sign().as_ref())
}

/// Checks that `material` is key material of `spec` (and `usage`) as AWS accepts it for import.
fn check_material(record: &KeyRecord, material: &KeyMaterial) -> Result<()> {
    let length = material.bytes().len();
    let fits = match record.spec.family() {
        Family::Symmetric => length == 32,
        Family::Hmac => {
            let min = record.spec.hmac_key_bytes().unwrap_or(32);
            let max = if matches!(record.spec, KeySpec::Hmac384 | KeySpec::Hmac512) { 128 } else { 64 };
            (min..=max).contains(&length)
        }
        Family::Rsa | Family::Ecc => true,
    };
    if !fits || VersionKey::new(record.spec, record.usage, material).is_err() {
        return Err(incorrect_material());
    }
    Ok(())
}

impl Kms {
    /// GetParametersForImport: a fresh wrapping key and import token for an `EXTERNAL` key.
    pub fn get_parameters_for_import(
        &self,
        caller: &Caller,
        key_id: &str,
        algorithm: WrappingAlgorithm,
        wrapping_key: KeySize,
    ) -> Result<ImportParametersOutput> {
        // The key must exist, be the caller's to manage and take imports before kmsim spends an RSA key
        // generation on it (checked again under the writer lock below).
        let live = self.resolve_for(
            caller,
            key_id,
            false,
            Access::Admin("kms:GetParametersForImport"),
            &EncryptionContext::new(),
        )?;
        require_external(&live.record)?;
        if live.record.state == KeyState::PendingDeletion {
            return Err(pending_deletion(&live.record));
        }
        // RSA key generation takes up to a second: before the writer lock.
        let private = if self.entropy.is_deterministic() {
            let bits = match wrapping_key {
                KeySize::Rsa2048 => 2048,
                KeySize::Rsa3072 => 3072,
                _ => 4096,
            };
            let material = crypto::generate_rsa_seeded(&mut self.entropy.rng(Purpose::KeyMaterial), bits)?;
            PrivateDecryptingKey::from_pkcs8(material.bytes()).map_err(|_| Error::Internal("a wrapping key".into()))?
        } else {
            PrivateDecryptingKey::generate(wrapping_key)
                .map_err(|_| Error::Internal("generating a wrapping key".into()))?
        };
        let public_key = private
            .public_key()
            .as_der()
            .map_err(|_| Error::Internal("encoding a wrapping key".into()))?
            .as_ref()
            .to_vec();
        let pkcs8 = private.as_der().map_err(|_| Error::Internal("encoding a wrapping key".into()))?;
        let token_id = hex::encode(self.entropy.bytes::<16>(Purpose::ImportToken));
        let ((), record) =
            self.mutate_key(caller, key_id, Access::Admin("kms:GetParametersForImport"), |record, now| {
                require_external(record)?;
                if record.state == KeyState::PendingDeletion {
                    return Err(pending_deletion(record));
                }
                let wrapped_private_key = self.master.wrap(
                    &wrapping_key_aad(&record.id, &token_id),
                    0,
                    &KeyMaterial::from_bytes(pkcs8.as_ref()),
                );
                let import = record.import.get_or_insert_with(Import::default);
                import.parameters.retain(|p| p.valid_to > now);
                if import.parameters.len() >= MAX_IMPORT_PARAMETERS {
                    import.parameters.remove(0);
                }
                import.parameters.push(ImportParameters {
                    token_id: token_id.clone(),
                    wrapping_algorithm: algorithm.as_str().to_owned(),
                    wrapped_private_key,
                    valid_to: now + IMPORT_PARAMETERS_LIFETIME,
                });
                Ok(())
            })?;
        let valid_to = record.import.as_ref().and_then(|i| i.parameters.last()).map(|p| p.valid_to).unwrap_or_default();
        let mut import_token = TOKEN_PREFIX.to_vec();
        import_token.extend_from_slice(token_id.as_bytes());
        Ok(ImportParametersOutput { key_arn: record.arn(), import_token, public_key, valid_to })
    }

    /// ImportKeyMaterial: the material unwrapped with the token's wrapping key becomes one of the key's — its first,
    /// one it had (re-imported), or new material for the next on-demand rotation. Returns the key and the
    /// material's `KeyMaterialId`.
    pub fn import_key_material(
        &self,
        caller: &Caller,
        key_id: &str,
        input: ImportInput<'_>,
    ) -> Result<(KeyRecord, String)> {
        let token_id = input
            .import_token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|id| std::str::from_utf8(id).ok())
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(invalid_token)?;
        self.mutate_key(caller, key_id, Access::Admin("kms:ImportKeyMaterial"), |record, now| {
            require_external(record)?;
            if record.state == KeyState::PendingDeletion {
                return Err(pending_deletion(record));
            }
            let symmetric = record.spec == KeySpec::SymmetricDefault;
            if !symmetric && (input.import_type.is_some() || input.material_id.is_some() || input.description.is_some())
            {
                return Err(Error::Validation(
                    "ImportType, KeyMaterialId and KeyMaterialDescription are valid only for symmetric encryption KMS keys."
                        .into(),
                ));
            }
            let import = record.import.clone().unwrap_or_default();
            let parameters = import.parameters.iter().find(|p| p.token_id == token_id).ok_or_else(invalid_token)?;
            if parameters.valid_to <= now {
                return Err(Error::ExpiredImportToken("The import token has expired.".into()));
            }
            let algorithm = WrappingAlgorithm::parse(&parameters.wrapping_algorithm)?;
            let wrapping =
                self.master.unwrap(&wrapping_key_aad(&record.id, token_id), 0, &parameters.wrapped_private_key)?;
            let material =
                unwrap_material(&wrapping, algorithm, input.encrypted_material, input.encrypted_private_key)?;
            check_material(record, &material)?;
            let id = fingerprint(&record.id, material.bytes());
            let first = record.versions.is_empty();
            let import_type = input.import_type.unwrap_or(if first {
                ImportType::NewKeyMaterial
            } else {
                ImportType::ExistingKeyMaterial
            });
            match import_type {
                ImportType::NewKeyMaterial => {
                    if input.material_id.is_some() {
                        return Err(Error::Validation(
                            "You cannot specify a KeyMaterialId when the ImportType is NEW_KEY_MATERIAL.".into(),
                        ));
                    }
                    let imported = ImportedMaterial {
                        id: id.clone(),
                        valid_to: input.valid_to,
                        description: input.description.map(str::to_owned),
                    };
                    let version = KeyVersion {
                        created: now,
                        rotation_type: None,
                        wrapped_material: self.master.wrap(&record.id, record.versions.len() as u32, &material),
                        imported: Some(imported),
                    };
                    if first {
                        record.versions.push(version);
                    } else {
                        self.check_new_material(record, &id)?;
                        record.import.get_or_insert_with(Import::default).pending_rotation = Some(version);
                    }
                }
                ImportType::ExistingKeyMaterial => {
                    if input.material_id.is_some_and(|given| !bool::from(given.as_bytes().ct_eq(id.as_bytes()))) {
                        return Err(incorrect_material());
                    }
                    self.reimport(record, &id, &material, input)?;
                }
            }
            if record.state == KeyState::PendingImport && record.versions.iter().all(KeyVersion::has_material) {
                record.state = KeyState::Enabled;
            }
            Ok(id)
        })
        .map(|(id, record)| (record, id))
    }

    /// Checks that `id` may be a key's next material, for on-demand rotation: a symmetric key (single-Region, or a
    /// multi-Region primary: its replicas take the same material as EXISTING_KEY_MATERIAL) with all its materials
    /// present, none of them `id`, and no other material pending rotation.
    fn check_new_material(&self, record: &KeyRecord, id: &str) -> Result<()> {
        if let Some(primary_region) = replica_of(record) {
            return Err(Error::UnsupportedOperation(format!(
                "{} is a replica key: import new key material into its primary key in {primary_region}, then the same key material into this key with the ImportType EXISTING_KEY_MATERIAL.",
                record.arn()
            )));
        }
        if !record.versions.iter().all(KeyVersion::has_material) {
            return Err(super::pending_import(record));
        }
        let pending = record.import.as_ref().and_then(|i| i.pending_rotation.as_ref());
        if record.versions.iter().chain(pending).any(|v| v.imported.as_ref().is_some_and(|i| i.id == id)) {
            return Err(Error::IncorrectKeyMaterial(format!(
                "The key material is already associated with {}; import it with the ImportType EXISTING_KEY_MATERIAL.",
                record.arn()
            )));
        }
        if pending.is_some() {
            return Err(Error::InvalidState(format!(
                "{} already has key material pending rotation; rotate the key or delete that key material first.",
                record.arn()
            )));
        }
        Ok(())
    }

    /// Imports again the material `id` that `record` already knows: its version gets the material back (and the
    /// import's expiry and description), or the material pending rotation its new expiry. A multi-Region replica
    /// also takes this way the material its primary has pending rotation.
    fn reimport(&self, record: &mut KeyRecord, id: &str, material: &KeyMaterial, input: ImportInput<'_>) -> Result<()> {
        let update = |imported: &mut ImportedMaterial| {
            imported.valid_to = input.valid_to;
            if let Some(description) = input.description {
                imported.description = Some(description.to_owned());
            }
        };
        let position = record.versions.iter().position(|v| v.imported.as_ref().is_some_and(|i| i.id == id));
        if let Some(index) = position {
            let wrapped = self.master.wrap(&record.id, index as u32, material);
            let version = &mut record.versions[index];
            version.wrapped_material = wrapped;
            version.imported.as_mut().map(update);
            return Ok(());
        }
        let pending = record.import.as_mut().and_then(|i| i.pending_rotation.as_mut());
        if let Some(imported) = pending.and_then(|v| v.imported.as_mut()).filter(|i| i.id == id) {
            update(imported);
            return Ok(());
        }
        if replica_of(record).is_none() || self.primary_pending_material(record).as_deref() != Some(id) {
            return Err(incorrect_material());
        }
        if !record.versions.iter().all(KeyVersion::has_material) {
            return Err(super::pending_import(record));
        }
        let version = KeyVersion {
            created: self.clock.now(),
            rotation_type: None,
            wrapped_material: self.master.wrap(&record.id, record.versions.len() as u32, material),
            imported: Some(ImportedMaterial {
                id: id.to_owned(),
                valid_to: input.valid_to,
                description: input.description.map(str::to_owned),
            }),
        };
        record.import.get_or_insert_with(Import::default).pending_rotation = Some(version);
        Ok(())
    }

    /// The id of the material the multi-Region primary of `record` has pending rotation, if any.
    fn primary_pending_material(&self, record: &KeyRecord) -> Option<String> {
        let primary_region = &record.multi_region.as_ref()?.primary_region;
        let primary = self.related_keys(record).into_iter().find(|k| k.record.region == *primary_region)?;
        pending_material_id(&primary.record).map(str::to_owned)
    }

    /// The Regions of the replicas of a multi-Region primary that do not yet hold its material pending rotation
    /// (imported as EXISTING_KEY_MATERIAL); empty for any other key.
    pub(super) fn replicas_missing_pending_material(&self, primary: &KeyRecord) -> Vec<String> {
        let Some(pending) = pending_material_id(primary) else { return Vec::new() };
        if primary.multi_region.as_ref().is_none_or(|m| m.primary_region != primary.region) {
            return Vec::new();
        }
        self.related_keys(primary)
            .into_iter()
            .filter(|replica| pending_material_id(&replica.record) != Some(pending))
            .map(|replica| replica.record.region.clone())
            .collect()
    }

    /// DeleteImportedKeyMaterial: the material `material_id` (default: the current one) is dropped and the key
    /// becomes unusable (PendingImport) until it is imported again; material pending rotation is forgotten
    /// altogether. AWS allows it on a key pending deletion, which stays pending deletion. Returns the key and the
    /// id of the material deleted (`None` when the key had none).
    pub fn delete_imported_key_material(
        &self,
        caller: &Caller,
        key_id: &str,
        material_id: Option<&str>,
    ) -> Result<(KeyRecord, Option<String>)> {
        self.mutate_key(caller, key_id, Access::Admin("kms:DeleteImportedKeyMaterial"), |record, _| {
            require_external(record)?;
            let Some(wanted) = material_id else {
                let current = record.versions.len().checked_sub(1);
                let id = current.and_then(|i| record.versions[i].imported.as_ref()).map(|i| i.id.clone());
                if let Some(index) = current {
                    forget_version(record, index);
                }
                return Ok(id);
            };
            let pending = record.import.as_ref().and_then(|i| i.pending_rotation.as_ref());
            if pending.and_then(|v| v.imported.as_ref()).is_some_and(|i| i.id == wanted) {
                if let Some(import) = &mut record.import {
                    import.pending_rotation = None;
                }
                return Ok(Some(wanted.to_owned()));
            }
            let index =
                record.versions.iter().position(|v| v.imported.as_ref().is_some_and(|i| i.id == wanted)).ok_or_else(
                    || Error::NotFound(format!("Key material {wanted} is not associated with {}.", record.arn())),
                )?;
            forget_version(record, index);
            Ok(Some(wanted.to_owned()))
        })
        .map(|(id, record)| (record, id))
    }
}

/// RotateKeyOnDemand of an `EXTERNAL` key: its material pending rotation becomes its newest version.
pub(super) fn rotate_to_pending_material(record: &mut KeyRecord, now: i64) -> Result<()> {
    let pending = record.import.as_mut().and_then(|i| i.pending_rotation.take());
    let Some(mut version) = pending else {
        return Err(Error::UnsupportedOperation(format!(
            "{} has no key material pending rotation: import new key material (ImportType NEW_KEY_MATERIAL) first.",
            record.arn()
        )));
    };
    version.created = now;
    version.rotation_type = Some(RotationType::OnDemand);
    record.versions.push(version);
    Ok(())
}

/// Unwraps imported material with the wrapping key's PKCS #8 `wrapping`; a failure is InvalidCiphertextException.
/// `encrypted_private_key` is the OTC form's second part (see [`ImportInput`]).
fn unwrap_material(
    wrapping: &KeyMaterial,
    algorithm: WrappingAlgorithm,
    encrypted: &[u8],
    encrypted_private_key: Option<&[u8]>,
) -> Result<KeyMaterial> {
    let bad = || {
        Error::InvalidCiphertext("The EncryptedKeyMaterial could not be decrypted with the import parameters.".into())
    };
    let private =
        PrivateDecryptingKey::from_pkcs8(wrapping.bytes()).map_err(|_| Error::Internal("wrapping key".into()))?;
    let modulus = private.key_size_bytes();
    let private = OaepPrivateDecryptingKey::new(private).map_err(|_| Error::Internal("wrapping key".into()))?;
    let oaep_decrypt = |ciphertext: &[u8]| -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; private.min_output_size()]);
        let len = private.decrypt(algorithm.oaep(), ciphertext, &mut out, None).map_err(|_| bad())?.len();
        out.truncate(len);
        Ok(out)
    };
    let (wrapped_key, wrapped_material) = match (algorithm.wraps_with_aes(), encrypted_private_key) {
        (false, None) => return Ok(KeyMaterial::from_bytes(&oaep_decrypt(encrypted)?)),
        (false, Some(private_key)) => (encrypted, private_key),
        (true, None) if encrypted.len() > modulus => encrypted.split_at(modulus),
        (true, _) => return Err(bad()),
    };
    let aes_key = oaep_decrypt(wrapped_key)?;
    let kek = match aes_key.len() {
        32 => KeyEncryptionKey::new(&AES_256, &aes_key),
        16 => KeyEncryptionKey::new(&AES_128, &aes_key),
        _ => return Err(bad()),
    }
    .map_err(|_| bad())?;
    let mut out = Zeroizing::new(vec![0u8; wrapped_material.len()]);
    let len = kek.unwrap_with_padding(wrapped_material, &mut out).map_err(|_| bad())?.len();
    out.truncate(len);
    Ok(KeyMaterial::from_bytes(&out))
}
