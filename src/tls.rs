//! `--tls`: HTTPS on the edge port, with a certificate from a certificate authority of kmsim's own.
//!
//! The CA (an ECDSA P-256 key and a self-signed certificate, `kmsim local CA`) is made on the first
//! start with a data dir and kept in `<data dir>/tls/` (`ca.key` and `ca.pem`, mode 0600), so that
//! clients told to trust `ca.pem` once keep trusting it. Every start issues a fresh server
//! certificate from it, valid for a year, for `localhost`, `*.localhost` (virtual-host buckets),
//! `127.0.0.1` and `::1`, and any further host the stack is configured for; it lives in memory only.
//! An in-memory stack makes a CA for its run alone and writes only its certificate, to a private
//! temporary directory that the stack removes when it stops.
//!
//! A CA reloaded from its key signs as the one that made `ca.pem`: its name, key and key
//! identifier are the same, which is all a client checks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::StackError;

/// The directory of the CA under the data dir.
const TLS_DIR: &str = "tls";
/// The CA's certificate: what clients are told to trust.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key.
const CA_KEY_FILE: &str = "ca.key";
/// The CA's common name.
const CA_NAME: &str = "kmsim local CA";
/// Days a server certificate is valid.
const SERVER_CERT_DAYS: i64 = 365;
/// Years the CA is valid.
const CA_YEARS: i32 = 20;

/// The edge's TLS: the acceptor of its connections and the CA certificate clients need.
#[derive(Clone)]
pub struct EdgeTls {
    /// The CA certificate (PEM) to give clients (`AWS_CA_BUNDLE`, `SSL_CERT_FILE`, `curl --cacert`).
    pub ca_file: PathBuf,
    /// The private temporary directory of an in-memory stack's CA, removed when it stops.
    pub temporary_dir: Option<PathBuf>,
    /// Completes the TLS handshake of an accepted connection.
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for EdgeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeTls").field("ca_file", &self.ca_file).finish_non_exhaustive()
    }
}

fn tls_error(what: impl std::fmt::Display) -> StackError {
    StackError::Tls(what.to_string())
}

/// The CA's fixed parameters: its name, usages and validity.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "kmsim");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let (year, month, day) = today();
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = rcgen::date_time_ymd(year + CA_YEARS, month, day.min(28));
    params
}

/// Today's UTC date.
fn today() -> (i32, u8, u8) {
    date_of(shared::time::now_unix())
}

/// The UTC date of Unix seconds, as rcgen takes it.
fn date_of(secs: i64) -> (i32, u8, u8) {
    let (year, month, day) = shared::time::utc_date(secs);
    (i32::try_from(year).unwrap_or(i32::MAX), u8::try_from(month).unwrap_or(1), u8::try_from(day).unwrap_or(1))
}

/// The CA key of `dir` and whether it was just made: loaded when a data dir already holds one,
/// else generated and (for a data dir) written with its certificate.
fn load_or_make_ca(dir: &Path, persistent: bool) -> Result<KeyPair, StackError> {
    let key_path = dir.join(CA_KEY_FILE);
    let cert_path = dir.join(CA_CERT_FILE);
    if persistent {
        match (key_path.exists(), cert_path.exists()) {
            (true, true) => {
                let pem = zeroize::Zeroizing::new(
                    std::fs::read_to_string(&key_path)
                        .map_err(|e| tls_error(format!("reading the CA key {}: {e}", key_path.display())))?,
                );
                return KeyPair::from_pem(&pem).map_err(|e| {
                    tls_error(format!("the CA key {} is not a PEM private key: {e}", key_path.display()))
                });
            }
            (false, false) => {}
            _ => {
                return Err(tls_error(format!(
                    "the local CA in {} is incomplete (it needs both {CA_KEY_FILE} and {CA_CERT_FILE}): remove the \
                     directory to make a new CA, which clients must then be told to trust",
                    dir.display()
                )));
            }
        }
    }
    let key = KeyPair::generate().map_err(tls_error)?;
    let cert = ca_params().self_signed(&key).map_err(tls_error)?;
    if persistent {
        let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
        shared::secret_file::write_durably(&key_path, key_pem.as_bytes(), 0o600)
            .map_err(|e| tls_error(format!("writing the CA key {}: {e}", key_path.display())))?;
    }
    shared::secret_file::write_durably(&cert_path, cert.pem().as_bytes(), 0o600)
        .map_err(|e| tls_error(format!("writing the CA certificate {}: {e}", cert_path.display())))?;
    Ok(key)
}

/// A server certificate issued by the CA for the loopback names and `hosts`.
fn server_certificate(
    ca_key: &KeyPair,
    hosts: &[String],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), StackError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "localhost");
    params.distinguished_name = name;
    let mut names: Vec<SanType> = Vec::new();
    for dns in ["localhost", "*.localhost"].into_iter().map(str::to_owned).chain(hosts.iter().cloned()) {
        let san = match dns.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(dns.clone().try_into().map_err(|e| tls_error(format!("host {dns}: {e}")))?),
        };
        if !names.contains(&san) {
            names.push(san);
        }
    }
    for ip in [IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)] {
        if !names.contains(&SanType::IpAddress(ip)) {
            names.push(SanType::IpAddress(ip));
        }
    }
    params.subject_alt_names = names;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = shared::time::now_unix();
    let (y0, m0, d0) = date_of(now - 86_400);
    let (y1, m1, d1) = date_of(now + SERVER_CERT_DAYS * 86_400);
    params.not_before = rcgen::date_time_ymd(y0, m0, d0);
    params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    let key = KeyPair::generate().map_err(tls_error)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let cert = params.signed_by(&key, &issuer).map_err(tls_error)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key_der))
}

/// Prepares the edge's TLS: the CA of `data_dir` (made on first use; a temporary one without a
/// data dir) and a server certificate for the loopback names and `hosts`.
pub fn prepare(data_dir: Option<&Path>, hosts: &[String]) -> Result<EdgeTls, StackError> {
    let (dir, persistent) = match data_dir {
        Some(data) => (data.join(TLS_DIR), true),
        None => {
            let unique = format!("kmsim-tls-{}-{:016x}", std::process::id(), rand::random::<u64>());
            (std::env::temp_dir().join(unique), false)
        }
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| tls_error(format!("creating {}: {e}", dir.display())))?;
    }
    let ca_key = load_or_make_ca(&dir, persistent)?;
    let (cert, key) = server_certificate(&ca_key, hosts)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(EdgeTls {
        ca_file: dir.join(CA_CERT_FILE),
        temporary_dir: (!persistent).then_some(dir),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_of(0), (1970, 1, 1));
        assert_eq!(date_of(1_175_024_202), (2007, 3, 27));
    }

    #[test]
    fn a_reloaded_ca_keeps_its_certificate_and_key() {
        let dir = std::env::temp_dir().join(format!("kmsim-tls-test-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = prepare(Some(&dir), &[]).unwrap();
        let pem = std::fs::read_to_string(&first.ca_file).unwrap();
        let key = std::fs::read_to_string(dir.join(TLS_DIR).join(CA_KEY_FILE)).unwrap();
        let second = prepare(Some(&dir), &["kmsim.test".to_owned()]).unwrap();
        assert_eq!(std::fs::read_to_string(&second.ca_file).unwrap(), pem);
        assert_eq!(std::fs::read_to_string(dir.join(TLS_DIR).join(CA_KEY_FILE)).unwrap(), key);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(TLS_DIR).join(CA_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Half a CA is refused with what to do about it.
        std::fs::remove_file(dir.join(TLS_DIR).join(CA_KEY_FILE)).unwrap();
        let error = prepare(Some(&dir), &[]).unwrap_err().to_string();
        assert!(error.contains("incomplete") && error.contains("remove the directory"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
