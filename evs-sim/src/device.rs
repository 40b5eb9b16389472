//! An attached volume as a block device for the NBD server: positional I/O on the volume's file, through
//! AES-256-XTS (the LUKS payload cipher) for an encrypted volume, so plaintext never reaches the disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{EvsError, Result};
use crate::luks::{self, SECTOR, SectorCipher};
use crate::nbd::BlockDevice;

/// Bytes written at a time by `trim` and `write_zeroes`.
const ZERO_CHUNK: usize = 1 << 20;

/// An open volume: its file, the payload cipher of an encrypted volume, and whether it was detached.
pub struct VolumeDevice {
    file: File,
    /// `None` for an unencrypted volume. Holds the master key's expanded form; wiped on drop.
    cipher: Option<SectorCipher>,
    /// Where the payload starts in the file (after the LUKS header area).
    payload_offset: u64,
    size: u64,
    /// Set at detach: connections that still hold the device get errors from then on.
    closed: AtomicBool,
}

impl std::fmt::Debug for VolumeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeDevice")
            .field("encrypted", &self.cipher.is_some())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl VolumeDevice {
    /// Opens an unencrypted volume file of `size` bytes.
    pub fn plain(path: &Path, size: u64) -> io::Result<VolumeDevice> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(VolumeDevice { file, cipher: None, payload_offset: 0, size, closed: AtomicBool::new(false) })
    }

    /// Opens an encrypted volume file: reads its LUKS header area and unlocks it with `passphrase` (the hex of
    /// the volume's data key).
    pub fn encrypted(path: &Path, size: u64, passphrase: &[u8]) -> Result<VolumeDevice> {
        let io_error = |e| EvsError::io("opening an encrypted volume", e);
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io_error)?;
        let mut phdr = vec![0u8; luks::PHDR_LEN];
        file.read_exact_at(&mut phdr, 0).map_err(io_error)?;
        let header = luks::Header::parse(&phdr).map_err(|e| EvsError::internal(format!("volume header: {e}")))?;
        // LUKS1 does not authenticate the payload offset: kmsim's volumes all have the one it writes.
        if header.payload_offset_sectors != luks::PAYLOAD_OFFSET_SECTORS {
            return Err(EvsError::internal("a volume header has an unexpected payload offset"));
        }
        let mut area = vec![0u8; header.payload_offset_bytes() as usize];
        file.read_exact_at(&mut area, 0).map_err(io_error)?;
        let master_key = header
            .unlock(&area, passphrase)
            .map_err(|e| EvsError::internal(format!("unlocking a volume with its data key: {e}")))?;
        Ok(VolumeDevice {
            file,
            cipher: Some(SectorCipher::new(&master_key)),
            payload_offset: header.payload_offset_bytes(),
            size,
            closed: AtomicBool::new(false),
        })
    }

    /// Refuses all further I/O (the volume was detached).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn check_open(&self) -> io::Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the volume was detached"));
        }
        Ok(())
    }

    /// Writes `len` zero bytes of plaintext at `offset`.
    fn zero(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_open()?;
        let mut done = 0;
        let mut buffer = vec![0u8; ZERO_CHUNK.min(len as usize)];
        while done < len {
            let n = ((len - done) as usize).min(ZERO_CHUNK);
            buffer[..n].fill(0);
            self.write_at(offset + done, &buffer[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

impl BlockDevice for VolumeDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check_open()?;
        self.file.read_exact_at(buf, self.payload_offset + offset)?;
        if let Some(cipher) = &self.cipher {
            cipher.decrypt_sectors(offset / SECTOR as u64, buf);
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_open()?;
        match &self.cipher {
            None => self.file.write_all_at(data, self.payload_offset + offset),
            Some(cipher) => {
                let mut sealed = data.to_vec();
                cipher.encrypt_sectors(offset / SECTOR as u64, &mut sealed);
                self.file.write_all_at(&sealed, self.payload_offset + offset)
            }
        }
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.zero(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.zero(offset, len)
    }
}
