//! An attached volume as a block device for the NBD server: positional I/O on the volume's extent files
//! ([`crate::extents`]), through AES-256-XTS (the LUKS payload cipher) for an encrypted volume, so plaintext never
//! reaches the disk.

use std::io;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{EvsError, Result};
use crate::extents::{Extents, Layout};
use crate::luks::{self, SECTOR, SectorCipher};
use crate::nbd::BlockDevice;

/// Bytes written at a time by `write_zeroes`.
const ZERO_CHUNK: usize = 1 << 20;
/// Bytes read and decrypted (or encrypted and written) at a time: small enough that the cipher works on data still
/// in the CPU cache from the copy to or from the page cache.
const CRYPT_CHUNK: usize = 128 * 1024;

/// An open volume: its files, and how its data may be accessed.
pub struct VolumeDevice {
    /// Where the volume's extent files are.
    layout: Layout,
    /// Where the payload starts in the volume's data (after the LUKS header area).
    payload_offset: u64,
    /// Bytes of payload; grows when an attached volume is extended.
    size: AtomicU64,
    encrypted: bool,
    /// [`Access::Closed`] from detach on: connections that still hold the device get errors. Every I/O holds the
    /// read lock from its check to its end, so once `close` returns no write of a detached volume is still landing.
    /// The extent files are under the same lock: growing the volume past an extent adds one.
    access: RwLock<Open>,
}

/// The files of an open volume, and what I/O on them goes through.
struct Open {
    access: Access,
    extents: Extents,
}

/// What I/O on a volume goes through.
enum Access {
    Plain,
    /// The payload cipher: the master key's expanded form, wiped when it is dropped — at detach, even if a client
    /// still holds the device.
    Encrypted(Box<SectorCipher>),
    /// Detached.
    Closed,
}

impl std::fmt::Debug for VolumeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeDevice")
            .field("encrypted", &self.encrypted)
            .field("size", &self.size.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl VolumeDevice {
    /// Opens an unencrypted volume of `size` bytes.
    pub fn plain(layout: Layout, size: u64) -> io::Result<VolumeDevice> {
        let extents = layout.open(size)?;
        let size = AtomicU64::new(size);
        let access = RwLock::new(Open { access: Access::Plain, extents });
        Ok(VolumeDevice { layout, payload_offset: 0, size, encrypted: false, access })
    }

    /// Opens an encrypted volume of `size` bytes of payload: reads its LUKS header area and unlocks it with
    /// `passphrase` (the hex of the volume's data key).
    pub fn encrypted(layout: Layout, size: u64, passphrase: &[u8]) -> Result<VolumeDevice> {
        let io_error = |e| EvsError::io("opening an encrypted volume", e);
        let header_area = luks::PAYLOAD_OFFSET_SECTORS * SECTOR as u64;
        let file = layout.open(header_area + size).map_err(io_error)?;
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
        let access = Access::Encrypted(Box::new(SectorCipher::new(&master_key)));
        Ok(VolumeDevice {
            layout,
            payload_offset: header.payload_offset_bytes(),
            size: AtomicU64::new(size),
            encrypted: true,
            access: RwLock::new(Open { access, extents: file }),
        })
    }

    /// The volume was extended to `size` bytes of payload (its files already have the room, extents added
    /// included): connections made from now on see that size. Waits for the I/O under way.
    pub fn grow(&self, size: u64) -> io::Result<()> {
        let mut open = self.access.write().unwrap_or_else(|e| e.into_inner());
        if size > self.size.load(Ordering::Relaxed) {
            open.extents = self.layout.open(self.payload_offset + size)?;
            self.size.store(size, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Refuses all further I/O (the volume was detached), after waiting for the I/O under way; an encrypted
    /// volume's key is wiped here, not when the last connection holding the device goes away.
    pub fn close(&self) {
        self.access.write().unwrap_or_else(|e| e.into_inner()).access = Access::Closed;
    }

    /// Runs `io` with the volume's cipher (`None`: unencrypted) and files unless the volume was detached, keeping
    /// it attached until `io` ends.
    fn while_open<T>(&self, io: impl FnOnce(Option<&SectorCipher>, &Extents) -> io::Result<T>) -> io::Result<T> {
        let open = self.access.read().unwrap_or_else(|e| e.into_inner());
        match &open.access {
            Access::Plain => io(None, &open.extents),
            Access::Encrypted(cipher) => io(Some(cipher), &open.extents),
            Access::Closed => Err(io::Error::new(io::ErrorKind::NotConnected, "the volume was detached")),
        }
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
    fn read_chunks(
        &self,
        cipher: Option<&SectorCipher>,
        file: &Extents,
        offset: u64,
        buf: &mut [u8],
    ) -> io::Result<()> {
        for (i, chunk) in buf.chunks_mut(CRYPT_CHUNK).enumerate() {
            let at = offset + (i * CRYPT_CHUNK) as u64;
            file.read_exact_at(chunk, self.payload_offset + at)?;
            if let Some(cipher) = cipher {
                cipher.decrypt_sectors(at / SECTOR as u64, chunk);
            }
        }
        Ok(())
    }

    /// Encrypts (in place) and writes `data` at `offset`, chunk by chunk.
    fn write_chunks(
        &self,
        cipher: Option<&SectorCipher>,
        file: &Extents,
        offset: u64,
        data: &mut [u8],
    ) -> io::Result<()> {
        for (i, chunk) in data.chunks_mut(CRYPT_CHUNK).enumerate() {
            let at = offset + (i * CRYPT_CHUNK) as u64;
            if let Some(cipher) = cipher {
                cipher.encrypt_sectors(at / SECTOR as u64, chunk);
            }
            file.write_all_at(chunk, self.payload_offset + at)?;
        }
        Ok(())
    }
}

impl BlockDevice for VolumeDevice {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.while_open(|cipher, file| self.read_chunks(cipher, file, offset, buf))
    }

    fn write_at(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        self.while_open(|cipher, file| self.write_chunks(cipher, file, offset, data))
    }

    /// Also after detach: detaching flushes what was written before.
    fn flush(&self) -> io::Result<()> {
        self.access.read().unwrap_or_else(|e| e.into_inner()).extents.sync_data()
    }

    /// Gives the blocks back to the filesystem (a hole punched in the volume file, which stays sparse). The NBD
    /// protocol leaves what a trimmed range then reads as undefined: an unencrypted volume reads zeros, an
    /// encrypted one the decryption of zeros (as dm-crypt with discards does). Where the filesystem cannot punch
    /// holes, the trim is a no-op, which the protocol also allows.
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.while_open(|_, file| file.punch_hole(self.payload_offset + offset, len).map(drop))
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.zero(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::unix::fs::{FileExt, MetadataExt};
    use std::path::Path;

    use super::*;

    const MIB: u64 = 1 << 20;

    /// An encrypted volume file of `size` bytes in `dir` (header area, then a sparse payload), opened.
    fn encrypted_volume(dir: &Path, size: u64) -> (VolumeDevice, std::path::PathBuf) {
        let passphrase = b"00112233445566778899aabbccddeeff";
        let (area, _, header) = luks::format(passphrase, 1000, &shared::Entropy::os()).expect("format");
        let path = dir.join("volume");
        let file = File::create(&path).expect("create");
        file.write_all_at(&area, 0).expect("header");
        file.set_len(header.payload_offset_bytes() + size).expect("size");
        (VolumeDevice::encrypted(Layout::new(&path), size, passphrase).expect("open"), path)
    }

    #[test]
    fn data_is_encrypted_at_rest_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (device, path) = encrypted_volume(dir.path(), 4 * MIB);
        let mut data: Vec<u8> = (0..MIB as usize + 4096).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        device.write_at(MIB - 4096, &mut data).expect("write");
        let mut back = vec![0u8; expected.len()];
        device.read_at(MIB - 4096, &mut back).expect("read");
        assert_eq!(back, expected);
        let on_disk = std::fs::read(&path).expect("read file");
        let start = (device.payload_offset + MIB - 4096) as usize;
        assert_ne!(&on_disk[start..start + 4096], &expected[..4096]);
    }

    /// A trim gives the blocks back (the file's allocation shrinks) and leaves the rest as it was.
    #[test]
    fn trim_punches_a_hole_and_keeps_the_neighbours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (device, path) = encrypted_volume(dir.path(), 8 * MIB);
        let mut data = vec![0x5a_u8; 4 * MIB as usize];
        device.write_at(0, &mut data).expect("write");
        device.flush().expect("flush");
        let allocated = |path: &Path| std::fs::metadata(path).expect("metadata").blocks() * 512;
        let before = allocated(&path);
        device.trim(MIB, 2 * MIB).expect("trim");
        let after = allocated(&path);
        assert!(before - after >= 2 * MIB, "allocated {before} bytes before the trim, {after} after");
        for at in [0, 3 * MIB] {
            let mut back = vec![0u8; MIB as usize];
            device.read_at(at, &mut back).expect("read");
            assert!(back.iter().all(|&b| b == 0x5a), "the block at {at} changed");
        }
        device.write_zeroes(MIB, MIB).expect("write zeroes");
        let mut back = vec![1u8; MIB as usize];
        device.read_at(MIB, &mut back).expect("read");
        assert!(back.iter().all(|&b| b == 0));
        device.close();
        assert!(device.trim(0, MIB).is_err(), "a detached volume refuses trims");
    }
}
