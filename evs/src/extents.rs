//! How a volume's data lies on disk: extent files of at most [`EXTENT_BYTES`] each, so that the largest volumes
//! the API allows (32,768 GB) fit on filesystems whose files stop short of 16 TiB (ext4).
//!
//! A volume's data is one byte stream (for an encrypted volume: the LUKS header area, then the payload). Its bytes
//! `[0, E)` are in `<id>.img`, its bytes `[k·E, (k+1)·E)` in `<id>.img.<k>` (k = 1, 2, ...), every extent but the
//! last exactly E bytes long, all of them sparse. A volume of at most E bytes is the single file `<id>.img`, as
//! it always was (qemu-img and cryptsetup open it as it is). A `<id>.img` longer than E (written before extents,
//! on a filesystem that allowed it) is a whole volume on its own, and stays one file when extended.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::FallocateFlags;

/// Bytes of one extent file: 8 TiB. Changing this breaks stored data (volumes longer than it).
pub const EXTENT_BYTES: u64 = 8 << 40;

/// Where a volume's extent files are, and how long each is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The first extent, `<id>.img`.
    base: PathBuf,
    /// Bytes per extent ([`EXTENT_BYTES`], or `u64::MAX` for a single file longer than that).
    extent: u64,
}

impl Layout {
    /// The layout of a new volume whose first extent is `base`.
    pub fn new(base: &Path) -> Layout {
        Layout { base: base.to_owned(), extent: EXTENT_BYTES }
    }

    /// The layout of the volume on disk whose first extent is `base`: extents of [`EXTENT_BYTES`], unless `base`
    /// itself is longer (a single-file volume from before extents). A missing `base` is a new volume.
    pub fn of(base: &Path) -> io::Result<Layout> {
        match std::fs::metadata(base) {
            Ok(meta) if meta.len() > EXTENT_BYTES => Ok(Layout { base: base.to_owned(), extent: u64::MAX }),
            Ok(_) => Ok(Layout::new(base)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Layout::new(base)),
            Err(e) => Err(e),
        }
    }

    /// A layout with extents of `extent` bytes (a multiple of 4096), for tests of the extent arithmetic.
    pub fn with_extent_bytes(base: &Path, extent: u64) -> Layout {
        Layout { base: base.to_owned(), extent }
    }

    /// The same layout under another first file (a rollback's temporary copy).
    pub fn moved_to(&self, base: &Path) -> Layout {
        Layout { base: base.to_owned(), extent: self.extent }
    }

    /// The file of extent `index`.
    pub fn path(&self, index: usize) -> PathBuf {
        if index == 0 {
            return self.base.clone();
        }
        let mut name = self.base.clone().into_os_string();
        name.push(format!(".{index}"));
        PathBuf::from(name)
    }

    /// How many extents `len` bytes take (at least one).
    pub fn count(&self, len: u64) -> usize {
        len.div_ceil(self.extent).max(1) as usize
    }

    /// The length of extent `index` in a volume of `len` bytes.
    fn extent_len(&self, index: usize, len: u64) -> u64 {
        let start = self.extent.saturating_mul(index as u64);
        len.saturating_sub(start).min(self.extent)
    }

    /// Creates the extents of a new volume of `len` bytes (sparse) with `head` at its start, durably (files and
    /// directory). Fails if one exists.
    pub fn create(&self, head: &[u8], len: u64) -> io::Result<()> {
        let len = len.max(head.len() as u64);
        for index in 0..self.count(len) {
            let file = OpenOptions::new().write(true).create_new(true).open(self.path(index))?;
            if index == 0 {
                file.write_all_at(head, 0)?;
            }
            file.set_len(self.extent_len(index, len))?;
            file.sync_all()?;
        }
        sync_dir(&self.base)
    }

    /// Gives an existing volume `len` bytes (grows the last extent, adds extents), durably.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        for index in 0..self.count(len) {
            let file = OpenOptions::new().write(true).create(true).truncate(false).open(self.path(index))?;
            let wanted = self.extent_len(index, len);
            if file.metadata()?.len() != wanted {
                file.set_len(wanted)?;
                file.sync_all()?;
            }
        }
        sync_dir(&self.base)
    }

    /// Opens the extents of a volume of `len` bytes for reading and writing.
    pub fn open(&self, len: u64) -> io::Result<Extents> {
        let files = (0..self.count(len))
            .map(|index| OpenOptions::new().read(true).write(true).open(self.path(index)))
            .collect::<io::Result<Vec<File>>>()?;
        Ok(Extents { files, extent: self.extent })
    }

    /// Opens the extents of a volume of `len` bytes for reading.
    pub fn open_read(&self, len: u64) -> io::Result<Extents> {
        let files =
            (0..self.count(len)).map(|index| File::open(self.path(index))).collect::<io::Result<Vec<File>>>()?;
        Ok(Extents { files, extent: self.extent })
    }

    /// Renames every extent of `self` over the same extent of `target`, then syncs the directory.
    pub fn rename_over(&self, target: &Layout, len: u64) -> io::Result<()> {
        for index in 0..self.count(len) {
            std::fs::rename(self.path(index), target.path(index))?;
        }
        sync_dir(&target.base)
    }

    /// Removes every extent file there is (not only those of the current length), without syncing.
    pub fn remove(&self) -> io::Result<()> {
        remove_if_exists(&self.base)?;
        let mut index = 1;
        // Extents are numbered without gaps; a few more are looked for in case one removal was cut short.
        let mut missing = 0;
        while missing < 4 {
            if remove_if_exists(&self.path(index))? {
                missing = 0;
            } else {
                missing += 1;
            }
            index += 1;
        }
        Ok(())
    }

    /// The volume id of a file of the volume directory that is an extent (`<id>.img` or `<id>.img.<k>`).
    pub fn volume_of(file_name: &str) -> Option<&str> {
        if let Some(id) = file_name.strip_suffix(".img") {
            return Some(id);
        }
        let (rest, index) = file_name.rsplit_once('.')?;
        let numbered = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && !index.starts_with('0');
        if numbered { rest.strip_suffix(".img") } else { None }
    }
}

/// The open extent files of a volume: positional I/O on its byte stream, split at extent boundaries.
#[derive(Debug)]
pub struct Extents {
    files: Vec<File>,
    extent: u64,
}

impl Extents {
    /// The pieces of `len` bytes at `position`: (extent, offset in it, offset in the buffer, length).
    fn pieces(&self, position: u64, len: usize) -> io::Result<impl Iterator<Item = (&File, u64, usize, usize)>> {
        let end = position.checked_add(len as u64).ok_or_else(|| invalid("range past the end"))?;
        let last = (end.saturating_sub(1) / self.extent) as usize;
        if len > 0 && last >= self.files.len() {
            return Err(invalid("range past the last extent"));
        }
        let extent = self.extent;
        let mut done = 0usize;
        Ok(std::iter::from_fn(move || {
            if done >= len {
                return None;
            }
            let at = position + done as u64;
            let (index, offset) = ((at / extent) as usize, at % extent);
            let n = ((extent - offset) as usize).min(len - done);
            let piece = (&self.files[index], offset, done, n);
            done += n;
            Some(piece)
        }))
    }

    /// Fills `buf` from `position`.
    pub fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        for (file, offset, from, n) in self.pieces(position, buf.len())? {
            file.read_exact_at(&mut buf[from..from + n], offset)?;
        }
        Ok(())
    }

    /// Writes `data` at `position`.
    pub fn write_all_at(&self, data: &[u8], position: u64) -> io::Result<()> {
        for (file, offset, from, n) in self.pieces(position, data.len())? {
            file.write_all_at(&data[from..from + n], offset)?;
        }
        Ok(())
    }

    /// Makes every write so far durable (`fdatasync` of each extent).
    pub fn sync_data(&self) -> io::Result<()> {
        self.files.iter().try_for_each(File::sync_data)
    }

    /// Makes every extent durable, metadata included.
    pub fn sync_all(&self) -> io::Result<()> {
        self.files.iter().try_for_each(File::sync_all)
    }

    /// Punches a hole of `len` bytes at `position` (the length stays). `Ok(false)` where the filesystem cannot.
    pub fn punch_hole(&self, position: u64, len: u64) -> io::Result<bool> {
        let len = usize::try_from(len).map_err(|_| invalid("hole too long"))?;
        for (file, offset, _, n) in self.pieces(position, len)? {
            let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
            match rustix::fs::fallocate(file, punch, offset, n as u64) {
                Ok(()) => {}
                Err(rustix::io::Errno::OPNOTSUPP) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// What is at `position`, for a copy that skips holes: `Some((data, len))` — `data` false for a hole of `len`
    /// bytes, true for `len` bytes of data (at most `max`) — or `None` past the last data.
    pub fn next_run(&self, position: u64, max: u64) -> io::Result<Option<(bool, u64)>> {
        let index = (position / self.extent) as usize;
        let Some(file) = self.files.get(index) else { return Ok(None) };
        let offset = position % self.extent;
        let data = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(offset)) {
            Ok(data) => data,
            Err(rustix::io::Errno::NXIO) if index + 1 < self.files.len() => {
                // Nothing more in this extent: the rest of it is a hole (every extent but the last is full length).
                return Ok(Some((false, self.extent - offset)));
            }
            Err(rustix::io::Errno::NXIO) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if data > offset {
            return Ok(Some((false, data - offset)));
        }
        let hole = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(offset))?;
        Ok(Some((true, (hole - offset).min(max))))
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Removes `path`; `Ok(false)` if it was not there.
fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn sync_dir(file: &Path) -> io::Result<()> {
    match file.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn a_volume_below_the_extent_size_is_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::with_extent_bytes(&dir.path().join("v.img"), 64 * KIB);
        layout.create(b"head", 64 * KIB).unwrap();
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["v.img"]);
        assert_eq!(std::fs::metadata(dir.path().join("v.img")).unwrap().len(), 64 * KIB);
    }

    #[test]
    fn io_crosses_extent_boundaries_and_the_volume_grows_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("v.img");
        let layout = Layout::with_extent_bytes(&base, 64 * KIB);
        layout.create(&[], 100 * KIB).unwrap();
        assert_eq!(std::fs::metadata(layout.path(1)).unwrap().len(), 36 * KIB);
        let extents = layout.open(100 * KIB).unwrap();
        let data: Vec<u8> = (0..16 * KIB as usize).map(|i| (i % 251) as u8).collect();
        extents.write_all_at(&data, 56 * KIB).unwrap();
        let mut back = vec![0; data.len()];
        extents.read_exact_at(&mut back, 56 * KIB).unwrap();
        assert_eq!(back, data);
        let mut tail = vec![0; 8 * KIB as usize];
        File::open(layout.path(1)).unwrap().read_exact_at(&mut tail, 0).unwrap();
        assert_eq!(tail, data[8 * KIB as usize..]);
        assert!(extents.read_exact_at(&mut [0; 4096], 100 * KIB).is_err(), "past the end");

        layout.set_len(200 * KIB).unwrap();
        let lens: Vec<u64> = (0..4).map(|i| std::fs::metadata(layout.path(i)).unwrap().len()).collect();
        assert_eq!(lens, [64 * KIB, 64 * KIB, 64 * KIB, 8 * KIB]);
        let grown = Layout::of(&base).unwrap().open(200 * KIB).unwrap();
        grown.write_all_at(&[9; 4096], 196 * KIB).unwrap();
        grown.read_exact_at(&mut back[..8192], 56 * KIB).unwrap();
        assert_eq!(back[..8192], data[..8192]);

        // Data runs, holes skipped: the written range, then nothing.
        let mut runs = Vec::new();
        let mut at = 0;
        while let Some((data, len)) = grown.next_run(at, 1 << 20).unwrap() {
            runs.push((at, data, len));
            at += len;
        }
        assert!(runs.iter().any(|&(at, data, _)| data && at == 56 * KIB), "{runs:?}");
        assert!(runs.iter().any(|&(at, data, _)| data && at == 196 * KIB), "{runs:?}");

        layout.remove().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_long_single_file_stays_one_volume() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("v.img");
        File::create(&base).unwrap().set_len(EXTENT_BYTES + 4096).unwrap();
        let layout = Layout::of(&base).unwrap();
        assert_eq!(layout.count(EXTENT_BYTES + 4096), 1);
        assert_eq!(Layout::of(&dir.path().join("new.img")).unwrap().count(EXTENT_BYTES + 4096), 2);
    }

    #[test]
    fn extent_file_names_name_their_volume() {
        for (name, volume) in [
            ("abc.img", Some("abc")),
            ("abc.img.1", Some("abc")),
            ("abc.img.12", Some("abc")),
            ("abc.img.0", None),
            ("abc.img.", None),
            ("abc.img.x", None),
            ("abc.json", None),
            ("abc.restoring", None),
            ("abc.restoring.1", None),
        ] {
            assert_eq!(Layout::volume_of(name), volume, "{name}");
        }
    }
}
