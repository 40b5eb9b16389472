//! The identifiers IAM and STS hand out, in AWS's shapes: unique ids of users (`AIDA…`), roles (`AROA…`) and
//! managed policies (`ANPA…`), 21 characters; access key ids (`AKIA…` long-term, `ASIA…` temporary), 20
//! characters; secrets of 40 characters; session tokens. All are drawn from the stack's [`Entropy`] (the
//! operating system's random source, or the seed under `--deterministic`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;
use shared::entropy::{Entropy, Purpose};
use zeroize::Zeroizing;

/// The alphabet of AWS's ids: upper-case letters and the digits 2–7 (base32).
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The alphabet of secret access keys.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The kind of an identifier, which decides its prefix and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A user's unique id: `AIDA` + 17.
    User,
    /// A role's unique id: `AROA` + 17.
    Role,
    /// A managed policy's id: `ANPA` + 17.
    Policy,
    /// A long-term access key id: `AKIA` + 16.
    AccessKey,
    /// A temporary access key id (role sessions): `ASIA` + 16.
    SessionKey,
}

impl IdKind {
    fn prefix_and_len(self) -> (&'static str, usize) {
        match self {
            IdKind::User => ("AIDA", 21),
            IdKind::Role => ("AROA", 21),
            IdKind::Policy => ("ANPA", 21),
            IdKind::AccessKey => ("AKIA", 20),
            IdKind::SessionKey => ("ASIA", 20),
        }
    }
}

/// A fresh identifier of `kind`.
pub fn new_id(kind: IdKind, entropy: &Entropy) -> String {
    let (prefix, len) = kind.prefix_and_len();
    let mut rng = entropy.rng(Purpose::IamId);
    let mut id = String::with_capacity(len);
    id.push_str(prefix);
    while id.len() < len {
        id.push(char::from(ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())]));
    }
    id
}

/// A fresh secret access key: 40 characters.
pub fn new_secret(entropy: &Entropy) -> Zeroizing<String> {
    let mut rng = entropy.rng(Purpose::IamSecret);
    let mut secret = Zeroizing::new(String::with_capacity(40));
    for _ in 0..40 {
        secret.push(char::from(SECRET_ALPHABET[rng.gen_range(0..SECRET_ALPHABET.len())]));
    }
    secret
}

/// A fresh session token: an opaque base64 text of 256 random bytes after AWS's usual opening, so clients that
/// look at its first characters see what they expect. Its length is not fixed in AWS either.
pub fn new_session_token(entropy: &Entropy) -> Zeroizing<String> {
    let bytes = entropy.secret::<256>(Purpose::IamSecret);
    let mut token = Zeroizing::new(String::from("IQoJb3JpZ2luX2VjE"));
    BASE64.encode_string(bytes.as_ref(), &mut token);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_aws_shapes() {
        for (kind, prefix, len) in [
            (IdKind::User, "AIDA", 21),
            (IdKind::Role, "AROA", 21),
            (IdKind::Policy, "ANPA", 21),
            (IdKind::AccessKey, "AKIA", 20),
            (IdKind::SessionKey, "ASIA", 20),
        ] {
            let id = new_id(kind, &Entropy::os());
            assert!(id.starts_with(prefix) && id.len() == len, "{id}");
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        }
        assert_ne!(new_id(IdKind::AccessKey, &Entropy::os()), new_id(IdKind::AccessKey, &Entropy::os()));
        let secret = new_secret(&Entropy::os());
        assert_eq!(secret.len(), 40);
        assert!(new_session_token(&Entropy::os()).len() > 300);
    }
}
