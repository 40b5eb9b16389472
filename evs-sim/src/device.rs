//! An attached volume as a block device for the NBD server: positional I/O on the volume's file, through
//! AES-256-XTS (the LUKS payload cipher) for an encrypted volume, so plaintext never reaches the disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::RwLock;

use crate::error::{EvsError, Result};
use crate::luks::{self, SECTOR, SectorCipher};
use crate::nbd::BlockDevice;

/// Bytes written at a time by `trim` and `write_zeroes`.
const ZERO_CHUNK: usize = 1 << 20;
/// Bytes read and decrypted (or encrypted and written) at a time: small enough that the cipher works on data still
/// in the CPU cache from the copy to or from the page cache.
const CRYPT_CHUNK: usize = 128 * 1024;
/// Requests at least this large are split in two halves worked on by two threads (the cipher is the cost of a
/// large request; NBD clients keep only a few in flight).
const SPLIT_AT: usize = 512 * 1024;

/// An open volume: its file, the payload cipher of an encrypted volume, and whether it was detached.
pub struct VolumeDevice {
    file: File,
    /// `None` for an unencrypted volume. Holds the master key's expanded form; wiped on drop.
    cipher: Option<SectorCipher>,
    /// Where the payload starts in the file (after the LUKS header area).
    payload_offset: u64,
    size: u64,
    /// Set at detach: connections that still hold the device get errors from then on. Every I/O holds the read
    /// lock from its check to its end, so once `close` returns no write of a detached volume is still landing.
    closed: RwLock<bool>,
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
        Ok(VolumeDevice { file, cipher: None, payload_offset: 0, size, closed: RwLock::new(false) })
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
            closed: RwLock::new(false),
        })
    }

    /// Refuses all further I/O (the volume was detached), after waiting for the I/O under way.
    pub fn close(&self) {
        *self.closed.write().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Runs `io` unless the volume was detached, keeping it attached until `io` ends.
    fn while_open<T>(&self, io: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let closed = self.closed.read().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the volume was detached"));
        }
        io()
    }

    /// Writes `len` zero bytes of plaintext at `offset`.
    fn zero(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut done = 0;
        let mut buffer = vec![0u8; ZERO_CHUNK.min(len as usize)];
        while done < len {
            let n = ((len - done) as usize).min(ZERO_CHUNK);
            buffer[..n].fill(0);
            self.write_at(offset + done, &mut buffer[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    /// Reads and decrypts `buf` at `offset`, chunk by chunk.
    fn read_part(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        for (i, chunk) in buf.chunks_mut(CRYPT_CHUNK).enumerate() {
            let at = offset + (i * CRYPT_CHUNK) as u64;
            self.file.read_exact_at(chunk, self.payload_offset + at)?;
            if let Some(cipher) = &self.cipher {
                cipher.decrypt_sectors(at / SECTOR as u64, chunk);
            }
        }
        Ok(())
    }

    /// Encrypts (in place) and writes `data` at `offset`, chunk by chunk.
    fn write_part(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        for (i, chunk) in data.chunks_mut(CRYPT_CHUNK).enumerate() {
            let at = offset + (i * CRYPT_CHUNK) as u64;
            if let Some(cipher) = &self.cipher {
                cipher.encrypt_sectors(at / SECTOR as u64, chunk);
            }
            self.file.write_all_at(chunk, self.payload_offset + at)?;
        }
        Ok(())
    }

    /// Runs `part` on `data` at `offset`, in two halves on two threads when the request is large and encrypted.
    fn split(
        &self,
        offset: u64,
        data: &mut [u8],
        part: impl Fn(&Self, u64, &mut [u8]) -> io::Result<()> + Sync,
    ) -> io::Result<()> {
        if self.cipher.is_none() || data.len() < SPLIT_AT {
            return part(self, offset, data);
        }
        let middle = (data.len() / 2).next_multiple_of(SECTOR);
        let (first, second) = data.split_at_mut(middle);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| part(self, offset + middle as u64, second));
            let mine = part(self, offset, first);
            let other = other.join().unwrap_or_else(|_| Err(io::Error::other("a volume I/O thread panicked")));
            mine.and(other)
        })
    }
}

impl BlockDevice for VolumeDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.while_open(|| self.split(offset, buf, Self::read_part))
    }

    fn write_at(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        self.while_open(|| self.split(offset, data, Self::write_part))
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
