//! Inputs and outputs of the envelope commands: a file or `-` (stdin / stdout), an output file that appears whole
//! or not at all (a temporary file in the same directory, fsynced, renamed over OUT, the directory fsynced), and
//! the progress bar drawn on a terminal's stderr.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The path that means stdin or stdout.
pub const STDIO: &str = "-";

/// Where a command reads from.
pub enum Input {
    /// Standard input.
    Stdin(io::StdinLock<'static>),
    /// A file, with its length when it is a regular file.
    File {
        /// The open file.
        file: File,
        /// Its length, for the progress bar (`None` for a pipe or device).
        len: Option<u64>,
        /// Device and inode, to refuse writing the output over the input.
        identity: (u64, u64),
    },
}

impl Input {
    /// Opens `path`, or stdin for `-`.
    pub fn open(path: &str) -> io::Result<Input> {
        if path == STDIO {
            return Ok(Input::Stdin(io::stdin().lock()));
        }
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if metadata.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory"));
        }
        let len = metadata.is_file().then_some(metadata.len());
        Ok(Input::File { file, len, identity: (metadata.dev(), metadata.ino()) })
    }

    /// The input's length, when known in advance.
    pub fn known_len(&self) -> Option<u64> {
        match self {
            Input::Stdin(_) => None,
            Input::File { len, .. } => *len,
        }
    }

    /// Whether `path` names this very file (so writing it would destroy the input).
    pub fn is_same_file(&self, path: &str) -> bool {
        match (self, std::fs::metadata(path)) {
            (Input::File { identity, .. }, Ok(metadata)) => *identity == (metadata.dev(), metadata.ino()),
            _ => false,
        }
    }

    /// Reads what is there (at least one byte, unless the input ended), retrying interrupted reads.
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.read(buf) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    /// Skips `len` bytes: a seek for a file, reading for stdin. Returns how many were there to skip.
    pub fn skip(&mut self, len: u64) -> io::Result<u64> {
        match self {
            Input::File { file, len: Some(total), .. } => {
                use std::io::Seek;
                let position = file.stream_position()?;
                let target = position.saturating_add(len).min(*total);
                file.seek(io::SeekFrom::Start(target))?;
                Ok(target - position)
            }
            _ => io::copy(&mut (&mut *self).take(len), &mut io::sink()),
        }
    }

    /// Reads until `buf` is full or the input ends; returns the bytes read (0 only at the end).
    pub fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Stdin(stdin) => stdin.read(buf),
            Input::File { file, .. } => file.read(buf),
        }
    }
}

/// The temporary files of outputs in progress: what an interrupted command removes ([`remove_when_interrupted`]).
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary file listed in [`IN_PROGRESS`] for as long as this lives.
pub struct Listed(PathBuf);

impl Listed {
    fn new(path: &Path) -> Self {
        IN_PROGRESS.lock().unwrap_or_else(PoisonError::into_inner).push(path.to_owned());
        Listed(path.to_owned())
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        IN_PROGRESS.lock().unwrap_or_else(PoisonError::into_inner).retain(|path| path != &self.0);
    }
}

/// From now on, SIGINT (Ctrl-C) and SIGTERM remove the temporary files of the outputs in progress, then end the
/// process as the signal would (exit status 130 / 143): an interrupted decrypt leaves no plaintext whose message
/// was not yet authenticated whole. Only a kill that cannot be caught (SIGKILL, a crash) can leave one behind.
pub fn remove_when_interrupted() {
    static WATCHING: std::sync::Once = std::sync::Once::new();
    WATCHING.call_once(|| {
        let (ready, watching) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new().name("kmsim-signals".into()).spawn(move || {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return };
            let status = runtime.block_on(async {
                let (Ok(mut interrupt), Ok(mut terminate)) =
                    (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                else {
                    let _ = ready.send(());
                    return None;
                };
                let _ = ready.send(());
                tokio::select! {
                    _ = interrupt.recv() => Some(130),
                    _ = terminate.recv() => Some(143),
                }
            });
            if let Some(status) = status {
                for path in IN_PROGRESS.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
                    let _ = std::fs::remove_file(path);
                }
                std::process::exit(status);
            }
        });
        // The handlers are in place before any output is created.
        if spawned.is_ok() {
            let _ = watching.recv();
        }
    });
}

/// Where a command writes to. A file output is a temporary file until [`Output::commit`]; dropped before that, it
/// is removed, so a failed command leaves no OUT (and an OUT that existed before stays as it was).
pub enum Output {
    /// Standard output: bytes go out as they are written.
    Stdout(io::StdoutLock<'static>),
    /// A file, written to a temporary file beside it.
    File {
        /// The temporary file (removed when dropped).
        temp: tempfile::NamedTempFile,
        /// The path it becomes.
        path: PathBuf,
        /// Its place in the list an interrupt removes.
        _listed: Listed,
    },
}

impl Output {
    /// Prepares `path` (stdout for `-`): a temporary file, mode 0600, in the same directory.
    pub fn create(path: &str) -> io::Result<Output> {
        if path == STDIO {
            return Ok(Output::Stdout(io::stdout().lock()));
        }
        let path = PathBuf::from(path);
        if path.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory"));
        }
        let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "names no file"))?;
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".kmsim-partial")
            .tempfile_in(parent(&path))?;
        let listed = Listed::new(temp.path());
        Ok(Output::File { temp, path, _listed: listed })
    }

    /// Writes all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(stdout) => stdout.write_all(bytes),
            Output::File { temp, .. } => temp.as_file_mut().write_all(bytes),
        }
    }

    /// Makes the output final: stdout is flushed; a file is fsynced, renamed over its path, and its directory
    /// fsynced, so that after a crash OUT is either the old file or the whole new one.
    pub fn commit(self) -> io::Result<()> {
        match self {
            Output::Stdout(mut stdout) => stdout.flush(),
            Output::File { temp, path, _listed } => {
                temp.as_file().sync_all()?;
                temp.persist(&path).map_err(|error| error.error)?;
                File::open(parent(&path))?.sync_all()
            }
        }
    }
}

/// The directory a path lies in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Inputs smaller than this get no progress bar.
pub const PROGRESS_THRESHOLD: u64 = 8 * 1024 * 1024;
/// How often the bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// A one-line progress bar on stderr, drawn only when stderr is a terminal and the input is above
/// [`PROGRESS_THRESHOLD`] (or of unknown length, once that much has passed).
pub struct Progress {
    enabled: bool,
    label: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_drawn: Option<Instant>,
}

impl Progress {
    /// A bar for `label` ("encrypting", ...) over `total` bytes, if stderr is a terminal.
    pub fn new(label: &'static str, total: Option<u64>) -> Progress {
        let enabled = io::stderr().is_terminal() && total.is_none_or(|total| total > PROGRESS_THRESHOLD);
        Progress { enabled, label, total, done: 0, started: Instant::now(), last_drawn: None }
    }

    /// Counts `bytes` more, redrawing at most every [`PROGRESS_INTERVAL`].
    pub fn advance(&mut self, bytes: usize) {
        self.done += bytes as u64;
        if !self.enabled || self.done < PROGRESS_THRESHOLD {
            return;
        }
        let now = Instant::now();
        if self.last_drawn.is_some_and(|last| now - last < PROGRESS_INTERVAL) {
            return;
        }
        self.last_drawn = Some(now);
        let line = render(self.label, self.done, self.total, now - self.started);
        let _ = write!(io::stderr().lock(), "\r{line}\x1b[K");
    }

    /// Clears the bar (if one was drawn).
    pub fn finish(self) {
        if self.last_drawn.is_some() {
            let _ = write!(io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// One line of the progress bar: `encrypting [#########-----------]  45%  460.0 MiB / 1.0 GiB  612.3 MiB/s`.
fn render(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    const WIDTH: u64 = 30;
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    match total {
        Some(total) if total > 0 => {
            let done = done.min(total);
            let filled = (done * WIDTH / total) as usize;
            format!(
                "{label} [{}{}] {:>3}%  {} / {}  {}/s",
                "#".repeat(filled),
                "-".repeat(WIDTH as usize - filled),
                done * 100 / total,
                size(done as f64),
                size(total as f64),
                size(rate)
            )
        }
        _ => format!("{label} {}  {}/s", size(done as f64), size(rate)),
    }
}

/// A byte count for people: `512 B`, `3.4 MiB`, `1.0 GiB`.
pub fn size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value:.0} {}", UNITS[0]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_share_size_and_rate() {
        let line = render("encrypting", 512 << 20, Some(1 << 30), Duration::from_secs(1));
        assert_eq!(line, "encrypting [###############---------------]  50%  512.0 MiB / 1.0 GiB  512.0 MiB/s");
        assert_eq!(render("decrypting", 10 << 20, None, Duration::from_secs(2)), "decrypting 10.0 MiB  5.0 MiB/s");
        assert_eq!(size(100.0), "100 B");
    }

    #[test]
    fn an_output_file_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let path_text = path.to_str().unwrap();
        let mut output = Output::create(path_text).unwrap();
        output.write_all(b"partial").unwrap();
        assert!(!path.exists());
        drop(output);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the temporary file is removed");
        std::fs::write(&path, b"old").unwrap();
        let mut output = Output::create(path_text).unwrap();
        output.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        output.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(Input::open(path_text).unwrap().is_same_file(path_text));
        assert!(Output::create(dir.path().to_str().unwrap()).is_err());
    }
}
