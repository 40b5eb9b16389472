//! `kmsim state export FILE` and `kmsim state import FILE` on a data dir that no kmsim is serving: the services are
//! opened on it without listeners ([`crate::StackBuilder::open_state`]), as a start would open them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::archive::{KdfParams, Passphrase};
use super::{StateServices, Summary};
use shared::entropy::Entropy;

use crate::{Config, Stack, StackError, entropy_marker};

/// How long closing the volume service may wait for its work.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// What a `kmsim state` command works on.
#[derive(Debug)]
pub struct StateCommand {
    /// The archive file.
    pub file: PathBuf,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The configuration the data dir is served with (its master key file, object store and region matter).
    pub config: Config,
    /// The archive's passphrase.
    pub passphrase: Passphrase,
}

/// What a command did, as the one JSON line it prints.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The archive.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Seconds the command took, opening the services included.
    pub seconds: f64,
    /// What the archive holds.
    pub state: Summary,
}

fn open_error(dir: &Path, error: StackError) -> String {
    let text = error.to_string();
    if text.contains("already open") || text.contains("lock") {
        format!(
            "the data dir {} is in use by a running kmsim ({text}): export its state with GET /_sim/state, \
             or stop it first",
            dir.display()
        )
    } else {
        format!("opening the data dir {}: {text}", dir.display())
    }
}

async fn close(services: StateServices) {
    services.evs.shutdown(CLOSE_DEADLINE).await;
}

/// `kmsim state export FILE --data-dir D`: the archive appears at FILE (mode 0600, fsynced, renamed into place)
/// only once it is whole.
pub async fn export(command: StateCommand) -> Result<Report, String> {
    let started = Instant::now();
    let dir = &command.data_dir;
    if !dir.is_dir() {
        return Err(format!("the data dir {} does not exist", dir.display()));
    }
    // Without a seed, and leaving a deterministic data dir's record as it is (the archive carries it).
    let services = Stack::builder()
        .config(command.config)
        .data_dir(dir)
        .leave_entropy_record()
        .open_state()
        .await
        .map_err(|e| open_error(dir, e))?;
    let target = &command.file;
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().ok_or_else(|| format!("{} names no file", target.display()))?;
    let temporary = parent.join(format!(".{}.{}.partial", name.to_string_lossy(), std::process::id()));
    let result = async {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|e| format!("creating {}: {e}", temporary.display()))?;
        let (mut file, summary) = super::export(&services, file, command.passphrase, KdfParams::default())
            .await
            .map_err(|e| e.to_string())?;
        file.flush().and_then(|()| file.sync_all()).map_err(|e| format!("writing {}: {e}", temporary.display()))?;
        let bytes = file.metadata().map_err(|e| e.to_string())?.len();
        std::fs::rename(&temporary, target)
            .and_then(|()| std::fs::File::open(parent)?.sync_all())
            .map_err(|e| format!("renaming the archive to {}: {e}", target.display()))?;
        Ok::<_, String>((bytes, summary))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    close(services).await;
    let (bytes, state) = result?;
    Ok(Report { file: command.file, bytes, seconds: started.elapsed().as_secs_f64(), state })
}

/// `kmsim state import FILE --data-dir D`: D must not exist or be empty. When the import fails, D is emptied
/// again (and removed if the import made it).
pub async fn import(command: StateCommand) -> Result<Report, String> {
    let started = Instant::now();
    let dir = &command.data_dir;
    let existed = match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "the data dir {} is not empty: a state archive is imported only into an empty or new data dir",
                    dir.display()
                ));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("reading the data dir {}: {e}", dir.display())),
    };
    let file = std::fs::File::open(&command.file).map_err(|e| format!("opening {}: {e}", command.file.display()))?;
    let bytes = file.metadata().map_err(|e| e.to_string())?.len();
    let result = async {
        let services = Stack::builder()
            .config(command.config)
            .data_dir(dir)
            .without_declarations()
            .leave_entropy_record()
            .open_state()
            .await
            .map_err(|e| open_error(dir, e))?;
        let imported = super::import(&services, file, command.passphrase).await.map_err(|e| e.to_string());
        close(services).await;
        // The data dir holds the archive's state alone: made from the seed of a deterministic exporter (served by
        // `--deterministic` with it from the archive's next generation on), else from the OS's randomness.
        let summary = imported?;
        match &summary.deterministic {
            Some(record) => entropy_marker::record_imported(dir, &record.seed_fingerprint, record.next_generation),
            None => entropy_marker::check_and_record(dir, &Entropy::os()).map(drop),
        }
        .map_err(|e| e.to_string())?;
        Ok(summary)
    }
    .await;
    match result {
        Ok(state) => Ok(Report { file: command.file, bytes, seconds: started.elapsed().as_secs_f64(), state }),
        Err(e) => {
            empty_dir(dir, existed);
            Err(e)
        }
    }
}

/// Removes what a failed import left in `dir` (which was empty or missing before).
fn empty_dir(dir: &Path, keep_dir: bool) {
    let removed = match keep_dir {
        false => std::fs::remove_dir_all(dir),
        true => std::fs::read_dir(dir).and_then(|entries| {
            for entry in entries {
                let path = entry?.path();
                match path.is_dir() {
                    true => std::fs::remove_dir_all(&path)?,
                    false => std::fs::remove_file(&path)?,
                }
            }
            Ok(())
        }),
    };
    if let Err(e) = removed {
        tracing::warn!(dir = %dir.display(), error = %e, "removing what a failed import left");
    }
}

/// The passphrase of a state archive: from `file` if given, else from `env_value` (the `KMSIM_STATE_PASSPHRASE`
/// environment variable, read by `main`); `flag` names the command's file option in the error when neither is there.
pub fn passphrase(file: Option<&Path>, env_value: Option<&[u8]>, flag: &str) -> Result<Passphrase, String> {
    match (file, env_value) {
        (Some(path), _) => super::passphrase_from_file(path),
        (None, Some(value)) => Passphrase::new(value).map_err(|e| e.to_string()),
        (None, None) => Err(format!(
            "give the archive's passphrase with {flag} FILE or the environment variable KMSIM_STATE_PASSPHRASE"
        )),
    }
}
