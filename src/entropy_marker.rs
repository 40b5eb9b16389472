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
//!
//! A deterministic record also holds the next generation to draw in (`shared::entropy`, "Generations"): each
//! deterministic start on the data dir draws in the recorded one and records the one after it before serving, so a
//! restarted kmsim never draws again the ids and keys the data dir already holds — and does so the same way in
//! every run. An import (`kmsim state import`, `--state`, `PUT /_sim/state`) moves it past the archive's.

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
    /// When deterministic, the generation the next start draws in; absent in records written before generations
    /// (such a data dir has been served at least once, in generation 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_generation: Option<u64>,
}

impl Marker {
    fn of(entropy: &Entropy, next_generation: Option<u64>) -> Self {
        match entropy.fingerprint() {
            Some(fingerprint) => Marker::deterministic(fingerprint, next_generation),
            None => Marker { format: FORMAT, entropy: "os".into(), seed_fingerprint: None, next_generation: None },
        }
    }

    /// The record of a data dir made from the seed whose fingerprint is `seed_fingerprint`.
    fn deterministic(seed_fingerprint: &str, next_generation: Option<u64>) -> Self {
        Marker {
            format: FORMAT,
            entropy: "deterministic".into(),
            seed_fingerprint: Some(seed_fingerprint.to_owned()),
            next_generation,
        }
    }

    /// Whether the record says the data dir was made by `entropy` (the generation aside).
    fn made_by(&self, entropy: &Entropy) -> bool {
        let wanted = Marker::of(entropy, None);
        (self.format, &self.entropy, &self.seed_fingerprint)
            == (wanted.format, &wanted.entropy, &wanted.seed_fingerprint)
    }

    /// The generation a deterministic start draws in.
    fn generation(&self) -> u64 {
        self.next_generation.unwrap_or(1)
    }
}

fn read(path: &Path) -> Result<Option<Marker>, StackError> {
    let found = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Marker>(&bytes).map_err(|e| {
            StackError::DataDir(format!("{} is not a valid entropy record ({e}): restore or remove it", path.display()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StackError::DataDir(format!("reading {}: {e}", path.display()))),
    };
    if found.format > FORMAT {
        return Err(StackError::DataDir(format!(
            "{} has format {}, newer than this kmsim's ({FORMAT}): use a newer kmsim",
            path.display(),
            found.format
        )));
    }
    Ok(Some(found))
}

fn write(path: &Path, marker: &Marker) -> Result<(), StackError> {
    let text = serde_json::to_vec_pretty(marker).map_err(|e| StackError::DataDir(e.to_string()))?;
    shared::secret_file::write_durably(path, &text, 0o600)
        .map_err(|e| StackError::DataDir(format!("writing {}: {e}", path.display())))
}

/// Checks `dir` (already created, private) against `entropy` and records it (see the module documentation);
/// gives the generation a deterministic `entropy` is to draw in (0 for a new data dir), the next one recorded
/// durably before it returns. 0 for the OS.
pub fn check_and_record(dir: &Path, entropy: &Entropy) -> Result<u64, StackError> {
    let path = dir.join(FILE);
    let found = read(&path)?;
    if let Some(found) = &found
        && found.made_by(entropy)
    {
        if !entropy.is_deterministic() {
            return Ok(0);
        }
        let generation = found.generation();
        write(&path, &Marker::of(entropy, Some(generation.saturating_add(1))))?;
        return Ok(generation);
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
    write(&path, &Marker::of(entropy, entropy.is_deterministic().then_some(1)))?;
    Ok(0)
}

/// The seed fingerprint and the generation the next start draws in, when `dir` is recorded as deterministic: what
/// `kmsim state export` (which opens the data dir without a seed, and leaves its record as it is) puts in the
/// archive.
pub fn recorded_generation(dir: &Path) -> Result<Option<(String, u64)>, StackError> {
    Ok(read(&dir.join(FILE))?.and_then(|m| {
        let generation = m.generation();
        m.seed_fingerprint.filter(|_| m.entropy == "deterministic").map(|fingerprint| (fingerprint, generation))
    }))
}

/// After `kmsim state import` of a deterministic kmsim's archive into the new data dir `dir`: records it as made
/// from that seed, to be served from `next_generation` on, so `--deterministic` with the seed serves it.
pub fn record_imported(dir: &Path, seed_fingerprint: &str, next_generation: u64) -> Result<(), StackError> {
    write(&dir.join(FILE), &Marker::deterministic(seed_fingerprint, Some(next_generation)))
}

/// After an import into `dir`: records that the next deterministic start draws after `entropy`'s current
/// generation (never moving the record back). Nothing for the OS.
pub fn record_generation(dir: &Path, entropy: &Entropy) -> Result<(), StackError> {
    let Some(generation) = entropy.generation() else { return Ok(()) };
    let path = dir.join(FILE);
    let recorded = read(&path)?.filter(|m| m.made_by(entropy)).map_or(0, |m| m.generation());
    write(&path, &Marker::of(entropy, Some(recorded.max(generation.saturating_add(1)))))
}

fn is_empty(dir: &Path) -> Result<bool, StackError> {
    let mut entries =
        std::fs::read_dir(dir).map_err(|e| StackError::DataDir(format!("reading data dir {}: {e}", dir.display())))?;
    Ok(entries.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each deterministic start draws in the recorded generation and records the next; an import moves the record
    /// past the importer's generation, never back; a record from before generations counts as served once.
    #[test]
    fn every_deterministic_start_draws_in_a_new_generation() {
        let root = tempfile::tempdir().unwrap();
        let seed = Entropy::deterministic(b"g");
        let dir = root.path().join("det");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(check_and_record(&dir, &seed).unwrap(), 0);
        assert_eq!(check_and_record(&dir, &seed).unwrap(), 1);
        assert_eq!(check_and_record(&dir, &seed).unwrap(), 2);
        seed.start_generation(7);
        record_generation(&dir, &seed).unwrap();
        assert_eq!(check_and_record(&dir, &seed).unwrap(), 8);
        seed.start_generation(2);
        record_generation(&dir, &seed).unwrap();
        assert_eq!(check_and_record(&dir, &seed).unwrap(), 9, "the record never moves back");
        let old = root.path().join("old");
        std::fs::create_dir(&old).unwrap();
        let fingerprint = seed.fingerprint().unwrap();
        std::fs::write(
            old.join(FILE),
            format!(r#"{{"format": 1, "entropy": "deterministic", "seed_fingerprint": "{fingerprint}"}}"#),
        )
        .unwrap();
        assert_eq!(check_and_record(&old, &seed).unwrap(), 1);
        assert_eq!(check_and_record(&dir, &Entropy::os()).unwrap(), 0);
        record_generation(&dir, &Entropy::os()).unwrap();
        assert!(std::fs::read_to_string(dir.join(FILE)).unwrap().contains("\"os\""));
    }

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
