//! An attached volume as NBD serves it while fault rules may be in force: each I/O asks the rules for service
//! `nbd` first, which may delay it or fail it with `EIO` (`/_sim/faults`, effect `eio` on a byte range).

use std::io;
use std::sync::Arc;

use faults::{Call, Faults, Service};

use crate::nbd::BlockDevice;

/// `inner`, exported as volume `volume`, with the I/O the rules pick delayed or failed.
pub struct FaultyDevice {
    inner: Arc<dyn BlockDevice>,
    volume: String,
    faults: Arc<Faults>,
}

impl FaultyDevice {
    /// Wraps `inner`; its flushes still cover every connection's writes (they are `inner`'s).
    pub fn new(inner: Arc<dyn BlockDevice>, volume: &str, faults: Arc<Faults>) -> Self {
        FaultyDevice { inner, volume: volume.to_owned(), faults }
    }

    /// Runs the rules for one I/O (on the blocking pool, where the device's methods run): waits out their delay,
    /// and answers `EIO` when one fails it.
    fn check(&self, operation: &str, offset: u64, len: u64) -> io::Result<()> {
        if !self.faults.active(Service::Nbd) {
            return Ok(());
        }
        let call = Call {
            dialect: "nbd",
            operation,
            volume: Some(&self.volume),
            range: Some((offset, len)),
            ..Call::default()
        };
        let Some(fired) = self.faults.check(Service::Nbd, &call, &|_| None) else {
            return Ok(());
        };
        let delay = fired.delay_before.saturating_add(fired.delay_after);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if fired.eio {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }
}

impl BlockDevice for FaultyDevice {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check("read", offset, buf.len() as u64)?;
        self.inner.read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        self.check("write", offset, data.len() as u64)?;
        self.inner.write_at(offset, data)
    }

    fn flush(&self) -> io::Result<()> {
        self.check("flush", 0, self.inner.size())?;
        self.inner.flush()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check("trim", offset, len)?;
        self.inner.trim(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check("write_zeroes", offset, len)?;
        self.inner.write_zeroes(offset, len)
    }
}
