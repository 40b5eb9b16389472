//! The data dir's record of which entropy made its keys (`entropy.json`): the OS, or a seed (by its fingerprint,
//! never the seed), so that `--deterministic` refuses a data dir whose keys are not predictable from its seed.
//!
//! Rules, checked before any service opens the data dir:
//! - deterministic on a new (empty) data dir: recorded as made from this seed;
//! - deterministic on a data dir made from the same seed: served;
//! - deterministic on a data dir made by the OS (or by a kmsim before this record existed) or from another seed:
//!   refused, with the reason;
//! - the OS on a deterministic data dir: served, and recorded as the OS's from then on (its new keys are not
//!   predictable), so a later deterministic start on it is refused.

use std::path::Path;

use serde::{Deserialize, Serialize};
use shared::entropy::Entropy;

use crate::StackError;

/// The file in the data dir.
pub const FILE: &str = "entropy.json";

/// The record's format (changing this breaks stored data dirs' records).
const FORMAT: u32 = 1;

/// What `entropy.json` holds.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    /// [`FORMAT`].
    format: u32,
    /// `os` or `deterministic`.
    entropy: String,
    /// The seed's fingerprint ([`Entropy::fingerprint`]) when deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed_fingerprint: Option<String>,
}

impl Marker {
    fn of(entropy: &Entropy) -> Self {
        match entropy.fingerprint() {
            Some(fingerprint) => Marker {
                format: FORMAT,
                entropy: "deterministic".into(),
                seed_fingerprint: Some(fingerprint.to_owned()),
            },
            None => Marker { format: FORMAT, entropy: "os".into(), seed_fingerprint: None },
        }
    }
}

/// Checks `dir` (already created, private) against `entropy` and records it (see the module documentation).
pub fn check_and_record(dir: &Path, entropy: &Entropy) -> Result<(), StackError> {
    let path = dir.join(FILE);
    let wanted = Marker::of(entropy);
    let found = match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice::<Marker>(&bytes).map_err(|e| {
            StackError::DataDir(format!("{} is not a valid entropy record ({e}): restore or remove it", path.display()))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StackError::DataDir(format!("reading {}: {e}", path.display()))),
    };
    if let Some(found) = &found
        && found.format > FORMAT
    {
        return Err(StackError::DataDir(format!(
            "{} has format {}, newer than this kmsim's ({FORMAT}): use a newer kmsim",
            path.display(),
            found.format
        )));
    }
    if found.as_ref() == Some(&wanted) {
        return Ok(());
    }
    if entropy.is_deterministic() {
        let refuse = |why: &str| {
            Err(StackError::DataDir(format!(
                "refusing --deterministic on data dir {}: {why}; use a new data dir (or --in-memory)",
                dir.display()
            )))
        };
        match &found {
            Some(marker) if marker.entropy == "deterministic" => {
                return refuse("its keys were made from another seed");
            }
            Some(_) => return refuse("its keys were made from the operating system's randomness, not from a seed"),
            None if !is_empty(dir)? => {
                return refuse("it holds state made without --deterministic (keys not predictable from a seed)");
            }
            None => {}
        }
    }
    let text = serde_json::to_vec_pretty(&wanted).map_err(|e| StackError::DataDir(e.to_string()))?;
    shared::secret_file::write_durably(&path, &text, 0o600)
        .map_err(|e| StackError::DataDir(format!("writing {}: {e}", path.display())))
}

fn is_empty(dir: &Path) -> Result<bool, StackError> {
    let mut entries =
        std::fs::read_dir(dir).map_err(|e| StackError::DataDir(format!("reading data dir {}: {e}", dir.display())))?;
    Ok(entries.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_needs_a_new_or_same_seed_data_dir_and_the_os_takes_any() {
        let root = tempfile::tempdir().unwrap();
        let seed_a = Entropy::deterministic(b"a");
        // A new data dir takes a seed, and the same seed again.
        let dir = root.path().join("det");
        std::fs::create_dir(&dir).unwrap();
        check_and_record(&dir, &seed_a).unwrap();
        std::fs::write(dir.join("kms.redb"), b"state").unwrap();
        check_and_record(&dir, &Entropy::deterministic(b"a")).unwrap();
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(text.contains(seed_a.fingerprint().unwrap()) && !text.contains("\"a\""), "{text}");
        // Another seed is refused, and the record is unchanged.
        let error = check_and_record(&dir, &Entropy::deterministic(b"b")).unwrap_err().to_string();
        assert!(error.contains("another seed"), "{error}");
        assert_eq!(std::fs::read_to_string(dir.join(FILE)).unwrap(), text);
        // The OS serves it, and from then on it is the OS's.
        check_and_record(&dir, &Entropy::os()).unwrap();
        let error = check_and_record(&dir, &seed_a).unwrap_err().to_string();
        assert!(error.contains("operating system"), "{error}");
        // A data dir with state but no record (an older kmsim's) is the OS's.
        let old = root.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("kms.redb"), b"state").unwrap();
        let error = check_and_record(&old, &seed_a).unwrap_err().to_string();
        assert!(error.contains("without --deterministic"), "{error}");
        assert!(!old.join(FILE).exists());
        check_and_record(&old, &Entropy::os()).unwrap();
        // A record of a newer format is refused.
        std::fs::write(old.join(FILE), br#"{"format": 9, "entropy": "os"}"#).unwrap();
        assert!(check_and_record(&old, &Entropy::os()).unwrap_err().to_string().contains("newer"));
    }
}
