//! Secret key files (the KMS master key, the object store's SSE-S3 key): 32 random bytes as 64 hex
//! digits, created with mode 0600 so that a crash cannot lose them, and refused when group or
//! others may access them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;
use zeroize::Zeroizing;

/// Reads the 32-byte key in `path`, or creates the file with a fresh random key. `what` names the
/// key in errors and logs ("master key", ...).
pub fn load_or_create(path: &Path, what: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{what} file {} has mode {mode:o}: it must not be accessible to group or others (chmod 600 it)",
                    path.display()
                ));
            }
            let text =
                Zeroizing::new(fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?);
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(text.trim(), key.as_mut())
                .map_err(|_| format!("{what} file {} does not hold 64 hex digits", path.display()))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(key.as_mut());
            let text = Zeroizing::new(format!("{}\n", hex::encode(key.as_ref())));
            write_durably(path, text.as_bytes(), 0o600)
                .map_err(|e| format!("creating {what} file {}: {e}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Creates `path` with `contents` so that it survives a crash: write a temporary file with `mode`,
/// fsync it, rename it into place, fsync the directory.
pub fn write_durably(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_stable_and_refused_when_readable() {
        let dir = std::env::temp_dir().join(format!("kmsim-secret-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("test.key");
        let _ = fs::remove_file(&path);
        let first = load_or_create(&path, "test key").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(*load_or_create(&path, "test key").unwrap(), *first);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load_or_create(&path, "test key").unwrap_err().contains("chmod 600"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
