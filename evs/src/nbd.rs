//! NBD server: serves [`BlockDevice`]s to real NBD clients (`qemu-img`, `qemu-io`, `nbdinfo`,
//! `nbdcopy`, the Linux `nbd-client`) over TCP, following the NBD protocol
//! (github.com/NetworkBlockDevice/nbd, `doc/proto.md`).
//!
//! Supported:
//! - Fixed newstyle handshake with `NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES`; the client's
//!   `NO_ZEROES` is honoured; unknown client flags close the connection.
//! - Options `NBD_OPT_GO` and `NBD_OPT_INFO` (replying `NBD_INFO_EXPORT`, `NBD_INFO_BLOCK_SIZE`
//!   always, and `NBD_INFO_NAME` when asked), `NBD_OPT_EXPORT_NAME`, `NBD_OPT_LIST` (one
//!   `NBD_REP_SERVER` per export) and `NBD_OPT_ABORT`. Every other option (STARTTLS,
//!   STRUCTURED_REPLY, EXTENDED_HEADERS, META_CONTEXT, ...) gets `NBD_REP_ERR_UNSUP` and the
//!   negotiation continues; an unknown export gets `NBD_REP_ERR_UNKNOWN`; option data longer than
//!   [`MAX_OPTION_LEN`] gets `NBD_REP_ERR_TOO_BIG` and the connection is closed.
//! - Transmission with simple replies: `READ`, `WRITE` (with `FUA`), `FLUSH`, `TRIM`,
//!   `WRITE_ZEROES` (with `FUA`; `NO_HOLE` accepted, and zeros read back either way) and `DISC`.
//!   Advertised flags: `HAS_FLAGS | SEND_FLUSH | SEND_FUA | SEND_TRIM | SEND_WRITE_ZEROES |
//!   CAN_MULTI_CONN` (see [`BlockDevice::flush`] for why multi-conn is safe).
//! - Block sizes: minimum [`BlockDevice::block_size`] (default [`DEFAULT_BLOCK_SIZE`], 4096, so
//!   clients never send sub-sector writes), preferred [`PREFERRED_BLOCK_SIZE`], maximum
//!   [`MAX_BLOCK_SIZE`] (32 MiB) for `READ`/`WRITE` payloads. Misaligned requests, length 0 and
//!   oversize payloads get `EINVAL` (an oversize `WRITE` payload is read and discarded), requests
//!   past the end get `EINVAL` (`ENOSPC` for `WRITE`/`WRITE_ZEROES`), unknown commands and flags
//!   `EINVAL`, device errors `EIO` (or `ENOSPC`/`EPERM`/`EINVAL` from the `io::ErrorKind`).
//! - Pipelining: each connection runs up to [`Limits::max_requests_per_connection`] requests at
//!   once; replies may go out of order, as the protocol allows. Device calls run on tokio's
//!   blocking pool, never on the async workers, and the thread that ran a request queues its reply
//!   for the connection's one writer; payload buffers are reused from request to request. Each
//!   connection is its own task; a client that disconnects mid-request affects nobody else, and a
//!   `WRITE` whose payload did not arrive in full is never applied.
//! - Limits ([`Limits`], passed to [`serve_with`]): connections at once (accept pauses at the cap),
//!   payload bytes in flight across all connections and per connection (a connection whose next
//!   request does not fit reads nothing more until replies drain), kept buffers across all
//!   connections, a deadline for the handshake, and a stall limit for replies the client does not
//!   take. Payload memory is thus bounded whatever clients do, and freed when a connection ends.
//!
//! Not supported: TLS, structured replies, extended headers, block status / metadata contexts,
//! oldstyle negotiation, read-only exports, `NBD_OPT_BLOCK_SIZE`, `NBD_INFO_DESCRIPTION` (ignored
//! when asked, as the protocol allows).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// The IANA-registered NBD port.
pub const DEFAULT_PORT: u16 = 10809;
/// Minimum block size advertised when a device does not say otherwise.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
/// Preferred block size advertised in `NBD_INFO_BLOCK_SIZE`.
pub const PREFERRED_BLOCK_SIZE: u32 = 4096;
/// Largest `READ`/`WRITE` payload accepted (advertised as the maximum block size).
pub const MAX_BLOCK_SIZE: u32 = 32 * 1024 * 1024;
/// Largest option data accepted during negotiation; longer options close the connection.
pub const MAX_OPTION_LEN: u32 = 64 * 1024;

// Handshake.
const NBDMAGIC: u64 = 0x4e42_444d_4147_4943; // "NBDMAGIC"
const IHAVEOPT: u64 = 0x4948_4156_454f_5054; // "IHAVEOPT"
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
const FLAG_NO_ZEROES: u16 = 1 << 1;
const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
const FLAG_C_NO_ZEROES: u32 = 1 << 1;

// Transmission flags.
const FLAG_HAS_FLAGS: u16 = 1 << 0;
const FLAG_SEND_FLUSH: u16 = 1 << 2;
const FLAG_SEND_FUA: u16 = 1 << 3;
const FLAG_SEND_TRIM: u16 = 1 << 5;
const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;
const TRANSMISSION_FLAGS: u16 =
    FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES | FLAG_CAN_MULTI_CONN;

// Options.
const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;

// Option replies.
const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_INVALID: u32 = (1 << 31) + 3;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
const REP_ERR_TOO_BIG: u32 = (1 << 31) + 9;

// Information types of NBD_OPT_INFO / NBD_OPT_GO.
const INFO_EXPORT: u16 = 0;
const INFO_NAME: u16 = 1;
const INFO_BLOCK_SIZE: u16 = 3;

// Transmission.
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const REQUEST_HEADER_LEN: usize = 28;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_FLAG_FUA: u16 = 1 << 0;
const CMD_FLAG_NO_HOLE: u16 = 1 << 1;

// Error values of replies (the protocol's fixed numbering, not the host's errno).
const EPERM: u32 = 1;
const EIO: u32 = 5;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

/// Longest export name the protocol allows.
const MAX_NAME_LEN: usize = 4096;
/// A connection's read buffer: several small requests per `read` at the queue depths clients use,
/// little of a large payload pulled in with the header before it. `WRITE` payloads of this size or
/// more are read straight from the socket ([`read_through`]).
const READ_BUFFER: usize = 64 * 1024;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long replies still being written may take after a shutdown before the client is dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Default of [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default of [`Limits::max_bytes_in_flight`]: 256 MiB.
pub const DEFAULT_MAX_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;
/// Default of [`Limits::max_requests_per_connection`].
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: usize = 64;
/// Default of [`Limits::max_bytes_per_connection`]: 64 MiB.
pub const DEFAULT_MAX_BYTES_PER_CONNECTION: usize = 64 * 1024 * 1024;
/// Default of [`Limits::max_kept_buffer_bytes`]: 64 MiB.
pub const DEFAULT_MAX_KEPT_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// Default of [`Limits::handshake_timeout`]: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`Limits::reply_timeout`]: 30 s.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server lets its clients make it hold: connections, memory, time. [`serve`] uses
/// `Limits::default()` (the `DEFAULT_*` constants); [`serve_with`] takes them from the caller.
///
/// Memory for payloads is bounded by `max_bytes_in_flight + max_kept_buffer_bytes` in all, whatever
/// the clients do (plus a 64 KiB read buffer and a 256 KiB write buffer per connection).
///
/// Deserializable from configuration (missing fields take their defaults; the two durations are
/// given in milliseconds, as `handshake_timeout_ms` and `reply_timeout_ms`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections served at once (negotiating or transmitting). At the cap the server stops
    /// accepting — further clients wait in the listen backlog — until a connection ends.
    pub max_connections: usize,
    /// Payload bytes (`WRITE` data being read or applied, `READ` data being read or waiting to be
    /// sent) across all connections. A request is admitted only once its payload fits; until then
    /// its connection reads no further requests. Raised to [`MAX_BLOCK_SIZE`] if set below it.
    pub max_bytes_in_flight: usize,
    /// Requests one connection may have in flight; further requests wait in the socket.
    pub max_requests_per_connection: usize,
    /// Payload bytes one connection may have in flight, so that one client cannot take the whole
    /// of `max_bytes_in_flight`. Raised to [`MAX_BLOCK_SIZE`] if set below it.
    pub max_bytes_per_connection: usize,
    /// Bytes of payload buffers kept, across all connections, for the next requests of the
    /// connection they came from (which saves allocating and zeroing a buffer per request). A
    /// connection's kept buffers are freed when it ends.
    pub max_kept_buffer_bytes: usize,
    /// Time a client has, from connecting, to finish the handshake and option haggling; a client
    /// that sends nothing, or trickles its options, is dropped after it.
    #[serde(rename = "handshake_timeout_ms", with = "millis")]
    pub handshake_timeout: Duration,
    /// Longest a reply may wait for the client to take any of its bytes (the client's receive
    /// window stays closed): after that the client is dropped, and what it held is released.
    #[serde(rename = "reply_timeout_ms", with = "millis")]
    pub reply_timeout: Duration,
}

/// A [`Duration`] as a number of milliseconds, for [`Limits`] in configuration files.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_bytes_in_flight: DEFAULT_MAX_BYTES_IN_FLIGHT,
            max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            max_bytes_per_connection: DEFAULT_MAX_BYTES_PER_CONNECTION,
            max_kept_buffer_bytes: DEFAULT_MAX_KEPT_BUFFER_BYTES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
        }
    }
}

impl Limits {
    /// The limits as the server applies them: every count at least 1, byte budgets at least one
    /// maximal request (so that no request can wait for room that never comes).
    fn effective(&self) -> Limits {
        let max_block = MAX_BLOCK_SIZE as usize;
        Limits {
            max_connections: self.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            max_bytes_in_flight: self.max_bytes_in_flight.clamp(max_block, Semaphore::MAX_PERMITS),
            max_requests_per_connection: self.max_requests_per_connection.clamp(1, 1 << 16),
            max_bytes_per_connection: self.max_bytes_per_connection.clamp(max_block, Semaphore::MAX_PERMITS),
            ..self.clone()
        }
    }
}

/// A block device an export serves. Implementations do their own locking; every method may be
/// called from several threads at once (one per in-flight request, across all connections).
///
/// The methods that take offsets are only called with ranges inside `0..size()` that are aligned
/// to [`block_size`](Self::block_size); `read_at` and `write_at` never see more than
/// [`MAX_BLOCK_SIZE`] bytes, while `trim` and `write_zeroes` may cover up to 4 GiB at once.
/// They block (file I/O, encryption): the server calls them on tokio's blocking pool.
pub trait BlockDevice: Send + Sync + 'static {
    /// Size of the device in bytes; should be a multiple of [`block_size`](Self::block_size) (an
    /// unaligned tail is unreachable). Called on the async workers: must not block.
    fn size(&self) -> u64;

    /// Minimum block size in bytes: a power of two from 1 to 65536 (anything else falls back to
    /// [`DEFAULT_BLOCK_SIZE`]). Requests not aligned to it are refused with `EINVAL`, so a device
    /// never sees partial sectors. Called on the async workers: must not block.
    fn block_size(&self) -> u32 {
        DEFAULT_BLOCK_SIZE
    }

    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes `data` at `offset`. Visible to every later read once this returns; all or nothing
    /// is preferred, but durability is only promised by [`flush`](Self::flush). `data` is the
    /// request's own buffer, not read after the call: a device may transform it in place (an
    /// encrypting device encrypts it there instead of copying it).
    fn write_at(&self, offset: u64, data: &mut [u8]) -> io::Result<()>;

    /// Makes every write, trim and write-zeroes that has returned so far — on any connection —
    /// durable (it survives `kill -9` and power loss). Because it covers writes of all
    /// connections, the server advertises `NBD_FLAG_CAN_MULTI_CONN`.
    fn flush(&self) -> io::Result<()>;

    /// Discards `len` bytes at `offset`. What the range reads back afterwards is undefined (as the
    /// protocol allows: zeros, the old data, or — for an encrypted device — the decryption of zeros).
    fn trim(&self, offset: u64, len: u64) -> io::Result<()>;

    /// Sets `len` bytes at `offset` to zero (holes or written zeros, the device's choice).
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()>;
}

/// What the server exports, looked up per connection (exports come and go as volumes are
/// attached and detached). A connection keeps the device it negotiated until it disconnects.
pub trait Exports: Send + Sync + 'static {
    /// The device exported under `name`, if any. Must return the same device object for the
    /// same export while it exists, so that a flush covers the writes of every connection.
    fn get(&self, name: &str) -> Option<Arc<dyn BlockDevice>>;

    /// Names of all exports, for `NBD_OPT_LIST`.
    fn list(&self) -> Vec<String>;
}

/// A simple [`Exports`]: a name → device table that can change while the server runs.
#[derive(Default)]
pub struct ExportTable {
    /// The current exports, ordered so that `NBD_OPT_LIST` is stable.
    devices: RwLock<BTreeMap<String, Arc<dyn BlockDevice>>>,
}

impl ExportTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exports `device` under `name`, returning the device it replaces.
    pub fn insert(&self, name: impl Into<String>, device: Arc<dyn BlockDevice>) -> Option<Arc<dyn BlockDevice>> {
        self.devices.write().unwrap_or_else(PoisonError::into_inner).insert(name.into(), device)
    }

    /// Stops exporting `name` to new connections; existing connections keep their device.
    pub fn remove(&self, name: &str) -> Option<Arc<dyn BlockDevice>> {
        self.devices.write().unwrap_or_else(PoisonError::into_inner).remove(name)
    }
}

impl Exports for ExportTable {
    fn get(&self, name: &str) -> Option<Arc<dyn BlockDevice>> {
        self.devices.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    fn list(&self) -> Vec<String> {
        self.devices.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }
}

/// Zeros written by `trim` and `write_zeroes` of the simple devices.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// A [`BlockDevice`] backed by a (sparse) regular file, unencrypted.
///
/// Reads and writes are `pread`/`pwrite`; `flush` is `fdatasync`; `trim` and `write_zeroes`
/// write zeros (no hole punching, which would need `fallocate`).
pub struct FileDevice {
    /// The backing file, opened read/write; positional I/O needs no lock.
    file: File,
    /// Device size, fixed when the device is opened.
    size: u64,
}

impl FileDevice {
    /// Creates a new sparse file of `size` bytes at `path`; fails if the file exists. The
    /// caller syncs the parent directory if the file's existence must be durable.
    pub fn create(path: impl AsRef<Path>, size: u64) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        file.set_len(size)?;
        Ok(Self { file, size })
    }

    /// Opens an existing file read/write; its current length is the device size.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self { file, size })
    }

    fn fill_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        check_range(offset, len, self.size)?;
        let mut done = 0;
        while done < len {
            let chunk = (len - done).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..chunk], offset + done)?;
            done += chunk as u64;
        }
        Ok(())
    }
}

impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        check_range(offset, data.len() as u64, self.size)?;
        self.file.write_all_at(data, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.fill_zeroes(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.fill_zeroes(offset, len)
    }
}

/// A [`BlockDevice`] held in memory, for tests; `flush` does nothing (nothing is durable).
pub struct MemoryDevice {
    /// The device's bytes; its length is the device size.
    bytes: Mutex<Vec<u8>>,
}

impl MemoryDevice {
    /// A zero-filled device of `size` bytes.
    pub fn new(size: usize) -> Self {
        Self { bytes: Mutex::new(vec![0; size]) }
    }

    /// A copy of the device's current contents.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn range(offset: u64, len: u64, size: usize) -> io::Result<std::ops::Range<usize>> {
        check_range(offset, len, size as u64)?;
        // In range of a `usize`-sized buffer, so both conversions are lossless.
        Ok(offset as usize..(offset + len) as usize)
    }
}

impl BlockDevice for MemoryDevice {
    fn size(&self) -> u64 {
        self.lock().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bytes = self.lock();
        let range = Self::range(offset, buf.len() as u64, bytes.len())?;
        buf.copy_from_slice(&bytes[range]);
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        let mut bytes = self.lock();
        let range = Self::range(offset, data.len() as u64, bytes.len())?;
        bytes[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut bytes = self.lock();
        let range = Self::range(offset, len, bytes.len())?;
        bytes[range].fill(0);
        Ok(())
    }
}

/// `InvalidInput` unless `offset..offset + len` lies inside a device of `size` bytes.
fn check_range(offset: u64, len: u64, size: u64) -> io::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "range beyond the end of the device")),
    }
}

/// Serves `exports` to NBD clients connecting to `listener` until `shutdown` completes, within
/// the default [`Limits`].
///
/// Each connection runs on its own task. On shutdown the server stops accepting, closes
/// connections that are negotiating or idle between requests, lets in-flight requests finish
/// and send their replies (a client not taking them is dropped after a grace period), and
/// returns once every connection is closed — so no device is touched after `serve` returns. That
/// is how a caller drains the server: complete `shutdown`, then await `serve`.
pub async fn serve(listener: TcpListener, exports: Arc<dyn Exports>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, exports, Limits::default(), shutdown).await;
}

/// [`serve`] within `limits`.
pub async fn serve_with(
    listener: TcpListener,
    exports: Arc<dyn Exports>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let limits = limits.effective();
    let connection_slots = Arc::new(Semaphore::new(limits.max_connections));
    let shared = Arc::new(Shared {
        bytes_in_flight: Arc::new(Semaphore::new(limits.max_bytes_in_flight)),
        kept_bytes: AtomicUsize::new(0),
        limits,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A connection slot before `accept`: at the cap, clients wait in the listen backlog.
        let next_client = async {
            let slot = Arc::clone(&connection_slots).acquire_owned().await;
            (slot, listener.accept().await)
        };
        tokio::select! {
            () = &mut shutdown => break,
            (slot, accepted) = next_client => match (slot, accepted) {
                (Ok(slot), Ok((stream, peer))) => {
                    let connection =
                        handle_connection(stream, peer, Arc::clone(&exports), Arc::clone(&shared), stop_rx.clone());
                    connections.spawn(async move {
                        connection.await;
                        drop(slot);
                    });
                }
                (_, Err(error)) => {
                    warn!(%error, "NBD accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                // The semaphore is never closed.
                (Err(_), Ok(_)) => {}
            },
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                log_join(finished);
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while let Some(finished) = connections.join_next().await {
        log_join(finished);
    }
}

/// What the connections of one server share.
struct Shared {
    /// The limits in force ([`Limits::effective`]).
    limits: Limits,
    /// One permit per payload byte in flight, across all connections.
    bytes_in_flight: Arc<Semaphore>,
    /// Bytes held by kept payload buffers, across all connections (at most
    /// [`Limits::max_kept_buffer_bytes`]).
    kept_bytes: AtomicUsize,
}

fn log_join(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        warn!(%error, "NBD connection task failed");
    }
}

/// The export a connection negotiated.
struct Export {
    device: Arc<dyn BlockDevice>,
    /// Size told to the client; requests are checked against it.
    size: u64,
    /// Minimum block size told to the client.
    block_size: u32,
}

impl Export {
    fn lookup(exports: &dyn Exports, name: &[u8]) -> Option<Self> {
        if name.len() > MAX_NAME_LEN {
            return None;
        }
        let device = exports.get(std::str::from_utf8(name).ok()?)?;
        let mut block_size = device.block_size();
        if !block_size.is_power_of_two() || block_size > 65536 {
            warn!(block_size, "invalid device block size, using the default");
            block_size = DEFAULT_BLOCK_SIZE;
        }
        Some(Self { size: device.size(), block_size, device })
    }
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    exports: Arc<dyn Exports>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let mut writer = BufWriter::with_capacity(256 * 1024, writer);
    let deadline = shared.limits.handshake_timeout;
    let negotiated = tokio::select! {
        negotiated = tokio::time::timeout(deadline, negotiate(&mut reader, &mut writer, &*exports)) => negotiated,
        _ = stop.wait_for(|stopping| *stopping) => return,
    };
    let result = match negotiated {
        Ok(Ok(Some(export))) => transmit(reader, writer, export, shared, stop).await,
        Ok(Ok(None)) => Ok(()),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "handshake not finished in time")),
    };
    match result {
        Ok(()) => debug!(%peer, "NBD connection closed"),
        Err(error) => debug!(%peer, %error, "NBD connection ended"),
    }
}

fn protocol_error(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Runs the handshake and option haggling. `Some` means transmission starts; `None` that the
/// client aborted.
async fn negotiate<R, W>(reader: &mut R, writer: &mut W, exports: &dyn Exports) -> io::Result<Option<Export>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    writer.write_u64(NBDMAGIC).await?;
    writer.write_u64(IHAVEOPT).await?;
    writer.write_u16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).await?;
    writer.flush().await?;

    let client_flags = reader.read_u32().await?;
    if client_flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(protocol_error("unknown client flags"));
    }
    let no_zeroes = client_flags & FLAG_C_NO_ZEROES != 0;

    loop {
        if reader.read_u64().await? != IHAVEOPT {
            return Err(protocol_error("bad option magic"));
        }
        let option = reader.read_u32().await?;
        let len = reader.read_u32().await?;
        if len > MAX_OPTION_LEN {
            // NBD_OPT_EXPORT_NAME gets no option replies: a client would read one as garbage.
            if option != OPT_EXPORT_NAME {
                write_option_reply(writer, option, REP_ERR_TOO_BIG, b"option data too long").await?;
                writer.flush().await?;
            }
            return Err(protocol_error("option data too long"));
        }
        let mut data = vec![0; len as usize];
        reader.read_exact(&mut data).await?;

        match option {
            OPT_EXPORT_NAME => {
                // This option cannot fail politely: an unknown export ends the session.
                let Some(export) = Export::lookup(exports, &data) else {
                    return Err(protocol_error("unknown export in NBD_OPT_EXPORT_NAME"));
                };
                writer.write_u64(export.size).await?;
                writer.write_u16(TRANSMISSION_FLAGS).await?;
                if !no_zeroes {
                    writer.write_all(&[0; 124]).await?;
                }
                writer.flush().await?;
                return Ok(Some(export));
            }
            OPT_ABORT => {
                write_option_reply(writer, option, REP_ACK, &[]).await?;
                writer.flush().await?;
                return Ok(None);
            }
            OPT_LIST if !data.is_empty() => {
                write_option_reply(writer, option, REP_ERR_INVALID, b"NBD_OPT_LIST takes no data").await?;
            }
            OPT_LIST => {
                for name in exports.list() {
                    let mut reply = Vec::with_capacity(4 + name.len());
                    reply.extend_from_slice(&(name.len() as u32).to_be_bytes());
                    reply.extend_from_slice(name.as_bytes());
                    write_option_reply(writer, option, REP_SERVER, &reply).await?;
                }
                write_option_reply(writer, option, REP_ACK, &[]).await?;
            }
            OPT_INFO | OPT_GO => match InfoRequest::parse(&data) {
                Err(message) => {
                    write_option_reply(writer, option, REP_ERR_INVALID, message.as_bytes()).await?;
                }
                Ok(request) => match Export::lookup(exports, request.name) {
                    None => {
                        write_option_reply(writer, option, REP_ERR_UNKNOWN, b"no such export").await?;
                    }
                    Some(export) => {
                        write_export_info(writer, option, &request, &export).await?;
                        write_option_reply(writer, option, REP_ACK, &[]).await?;
                        if option == OPT_GO {
                            writer.flush().await?;
                            return Ok(Some(export));
                        }
                    }
                },
            },
            _ => {
                write_option_reply(writer, option, REP_ERR_UNSUP, b"option not supported").await?;
            }
        }
        writer.flush().await?;
    }
}

/// The data of `NBD_OPT_INFO` and `NBD_OPT_GO`.
#[derive(Debug, PartialEq)]
struct InfoRequest<'a> {
    name: &'a [u8],
    /// Information types the client asked for.
    requests: Vec<u16>,
}

impl<'a> InfoRequest<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, &'static str> {
        const MALFORMED: &str = "malformed NBD_OPT_INFO/NBD_OPT_GO data";
        let (name_len, rest) = data.split_first_chunk::<4>().ok_or(MALFORMED)?;
        let name_len = u32::from_be_bytes(*name_len) as usize;
        if name_len > rest.len() {
            return Err(MALFORMED);
        }
        let (name, rest) = rest.split_at(name_len);
        let (count, rest) = rest.split_first_chunk::<2>().ok_or(MALFORMED)?;
        let count = u16::from_be_bytes(*count) as usize;
        if rest.len() != count * 2 {
            return Err(MALFORMED);
        }
        let requests = rest.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]])).collect();
        Ok(Self { name, requests })
    }
}

async fn write_export_info<W: AsyncWrite + Unpin>(
    writer: &mut W,
    option: u32,
    request: &InfoRequest<'_>,
    export: &Export,
) -> io::Result<()> {
    let mut info = Vec::with_capacity(12);
    info.extend_from_slice(&INFO_EXPORT.to_be_bytes());
    info.extend_from_slice(&export.size.to_be_bytes());
    info.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
    write_option_reply(writer, option, REP_INFO, &info).await?;

    if request.requests.contains(&INFO_NAME) {
        let mut info = Vec::with_capacity(2 + request.name.len());
        info.extend_from_slice(&INFO_NAME.to_be_bytes());
        info.extend_from_slice(request.name);
        write_option_reply(writer, option, REP_INFO, &info).await?;
    }

    // Sent whether or not it was asked for, as the protocol allows.
    let mut info = Vec::with_capacity(14);
    info.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    info.extend_from_slice(&export.block_size.to_be_bytes());
    info.extend_from_slice(&PREFERRED_BLOCK_SIZE.max(export.block_size).to_be_bytes());
    info.extend_from_slice(&MAX_BLOCK_SIZE.to_be_bytes());
    write_option_reply(writer, option, REP_INFO, &info).await
}

async fn write_option_reply<W: AsyncWrite + Unpin>(
    writer: &mut W,
    option: u32,
    reply_type: u32,
    data: &[u8],
) -> io::Result<()> {
    writer.write_u64(OPTION_REPLY_MAGIC).await?;
    writer.write_u32(option).await?;
    writer.write_u32(reply_type).await?;
    writer.write_u32(data.len() as u32).await?;
    writer.write_all(data).await
}

/// A transmission-phase command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Read,
    Write,
    Disc,
    Flush,
    Trim,
    WriteZeroes,
    Unknown(u16),
}

impl Command {
    fn from_wire(value: u16) -> Self {
        match value {
            CMD_READ => Self::Read,
            CMD_WRITE => Self::Write,
            CMD_DISC => Self::Disc,
            CMD_FLUSH => Self::Flush,
            CMD_TRIM => Self::Trim,
            CMD_WRITE_ZEROES => Self::WriteZeroes,
            other => Self::Unknown(other),
        }
    }
}

/// A transmission-phase request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    flags: u16,
    command: Command,
    handle: u64,
    offset: u64,
    len: u32,
}

impl Request {
    /// Parses a request header; a wrong magic is a protocol violation that ends the connection.
    fn parse(header: &[u8; REQUEST_HEADER_LEN]) -> io::Result<Self> {
        let (magic, rest) = header.split_first_chunk::<4>().ok_or_else(short_header)?;
        if u32::from_be_bytes(*magic) != REQUEST_MAGIC {
            return Err(protocol_error("bad request magic"));
        }
        let (flags, rest) = rest.split_first_chunk::<2>().ok_or_else(short_header)?;
        let (command, rest) = rest.split_first_chunk::<2>().ok_or_else(short_header)?;
        let (handle, rest) = rest.split_first_chunk::<8>().ok_or_else(short_header)?;
        let (offset, rest) = rest.split_first_chunk::<8>().ok_or_else(short_header)?;
        let (len, _) = rest.split_first_chunk::<4>().ok_or_else(short_header)?;
        Ok(Self {
            flags: u16::from_be_bytes(*flags),
            command: Command::from_wire(u16::from_be_bytes(*command)),
            handle: u64::from_be_bytes(*handle),
            offset: u64::from_be_bytes(*offset),
            len: u32::from_be_bytes(*len),
        })
    }

    /// The error to reply instead of running the request, if any.
    fn check(&self, export_size: u64, block_size: u32) -> Result<(), u32> {
        let allowed_flags = match self.command {
            Command::WriteZeroes => CMD_FLAG_FUA | CMD_FLAG_NO_HOLE,
            _ => CMD_FLAG_FUA,
        };
        if self.flags & !allowed_flags != 0 {
            return Err(EINVAL);
        }
        match self.command {
            Command::Unknown(_) => Err(EINVAL),
            Command::Disc => Ok(()),
            Command::Flush if self.offset != 0 || self.len != 0 => Err(EINVAL),
            Command::Flush => Ok(()),
            Command::Read | Command::Write | Command::Trim | Command::WriteZeroes => {
                let has_payload = matches!(self.command, Command::Read | Command::Write);
                if self.len == 0 || (has_payload && self.len > MAX_BLOCK_SIZE) {
                    return Err(EINVAL);
                }
                let past_end = self.offset.checked_add(u64::from(self.len)).is_none_or(|end| end > export_size);
                if past_end {
                    return Err(match self.command {
                        Command::Write | Command::WriteZeroes => ENOSPC,
                        _ => EINVAL,
                    });
                }
                let block = u64::from(block_size);
                if !self.offset.is_multiple_of(block) || !u64::from(self.len).is_multiple_of(block) {
                    return Err(EINVAL);
                }
                Ok(())
            }
        }
    }
}

fn short_header() -> io::Error {
    protocol_error("short request header")
}

/// A reply waiting for the connection's writer.
struct Reply {
    handle: u64,
    error: u32,
    /// Data of a successful `READ`.
    data: Option<Payload>,
    /// The request's share of the in-flight limits, released once the reply is written (or
    /// dropped), letting the next request in.
    _permits: Option<Permits>,
}

/// A request's share of the in-flight limits.
struct Permits {
    _request: OwnedSemaphorePermit,
    _connection_bytes: OwnedSemaphorePermit,
    _server_bytes: OwnedSemaphorePermit,
}

/// The reply's error value for a device error; the one place device errors meet the wire.
fn errno_for(error: &io::Error) -> u32 {
    match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => ENOSPC,
        io::ErrorKind::InvalidInput => EINVAL,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => EPERM,
        _ => EIO,
    }
}

/// Reads requests until `DISC`, a protocol violation, end of stream or shutdown; runs each on the
/// blocking pool and replies through a single writer task.
async fn transmit<R, W>(
    mut reader: BufReader<R>,
    writer: W,
    export: Export,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limits = &shared.limits;
    let (replies, queue) = mpsc::channel(limits.max_requests_per_connection);
    // Set by the writer when it gives up on the client: nothing more is read from it.
    let (gave_up, mut writer_gave_up) = watch::channel(false);
    let writer = tokio::spawn(write_replies(writer, queue, stop.clone(), limits.reply_timeout, gave_up));
    let in_flight = InFlight {
        requests: Arc::new(Semaphore::new(limits.max_requests_per_connection)),
        payload_bytes: Arc::new(Semaphore::new(limits.max_bytes_per_connection)),
        buffers: Arc::new(Buffers::new(Arc::clone(&shared))),
        shared: Arc::clone(&shared),
    };

    let runtime = tokio::runtime::Handle::current();
    let result = loop {
        // Shutdown interrupts a request being read (header or payload) but not one running.
        let next = tokio::select! {
            next = next_request(&mut reader, &export, &in_flight, &replies) => next,
            _ = stop.wait_for(|stopping| *stopping) => break Ok(()),
            _ = writer_gave_up.wait_for(|gave_up| *gave_up) => {
                break Err(io::Error::new(io::ErrorKind::TimedOut, "the client does not take its replies"));
            }
        };
        let job = match next {
            Ok(Some(job)) => job,
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        };
        let device = Arc::clone(&export.device);
        let (replies, runtime) = (replies.clone(), runtime.clone());
        tokio::task::spawn_blocking(move || {
            let Job { request, mut payload, permits } = job;
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(&*device, &request, &mut payload)));
            let (error, data) = match outcome {
                Ok(Ok(())) => (0, (request.command == Command::Read).then_some(payload)),
                Ok(Err(error)) => {
                    warn!(%error, ?request, "NBD device I/O failed");
                    (errno_for(&error), None)
                }
                Err(_) => {
                    warn!(?request, "NBD device call panicked");
                    (EIO, None)
                }
            };
            let reply = Reply { handle: request.handle, error, data, _permits: Some(permits) };
            // The blocking thread queues the reply itself (no task to wake in between), unless the
            // queue is full (a client not taking its replies): then a task waits for room, not
            // the thread. The writer outlives every request of its connection, so the queue is
            // never closed before this.
            if let Err(mpsc::error::TrySendError::Full(reply)) = replies.try_send(reply) {
                runtime.spawn(async move { replies.send(reply).await });
            }
        });
    };

    // The writer finishes once every in-flight request has queued its reply.
    drop(replies);
    if let Err(error) = writer.await {
        warn!(%error, "NBD reply writer failed");
    }
    result
}

/// One connection's limits on requests in flight, and the buffers their payloads borrow.
struct InFlight {
    /// One permit per request in flight.
    requests: Arc<Semaphore>,
    /// One permit per payload byte (read buffer or write data) in flight on this connection.
    payload_bytes: Arc<Semaphore>,
    /// Payload buffers of finished requests, for the next ones.
    buffers: Arc<Buffers>,
    /// The server's budget of payload bytes in flight.
    shared: Arc<Shared>,
}

/// Payload buffers of one connection, reused from request to request so that a request does not
/// pay for a freshly allocated and zeroed buffer (a megabyte each for a sequential client). A
/// buffer's old contents are never seen: a `READ` fills all of its payload from the device or
/// fails, and a `WRITE` fills all of it from the socket or the connection ends. The kept buffers
/// of a connection hold at most [`Limits::max_bytes_per_connection`], those of all connections
/// at most [`Limits::max_kept_buffer_bytes`]; they are freed when the connection ends.
struct Buffers {
    kept: Mutex<Vec<Vec<u8>>>,
    shared: Arc<Shared>,
}

impl Buffers {
    fn new(shared: Arc<Shared>) -> Self {
        Buffers { kept: Mutex::new(Vec::new()), shared }
    }

    /// A payload of `len` bytes with unspecified contents, back in `self` once dropped.
    fn take(self: &Arc<Self>, len: usize) -> Payload {
        let mut bytes = Vec::new();
        if len > 0 {
            bytes = self.lock().pop().unwrap_or_default();
            self.shared.kept_bytes.fetch_sub(bytes.capacity(), Ordering::Relaxed);
            if bytes.len() < len {
                // Zero-fills only what the buffer grows by, and grows it to `len` exactly (not to twice its
                // capacity, as `resize` alone may).
                bytes.reserve_exact(len - bytes.len());
                bytes.resize(len, 0);
            }
        }
        Payload { bytes, len, home: Arc::clone(self) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes held by `kept` buffers.
    fn held(kept: &[Vec<u8>]) -> usize {
        kept.iter().map(Vec::capacity).sum()
    }

    /// Keeps `bytes` for a later request if both budgets allow, frees it otherwise.
    fn give_back(&self, bytes: Vec<u8>) {
        let size = bytes.capacity();
        let mut kept = self.lock();
        if Self::held(&kept) + size > self.shared.limits.max_bytes_per_connection {
            return;
        }
        let max = self.shared.limits.max_kept_buffer_bytes;
        let reserved = self.shared.kept_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            held.checked_add(size).filter(|&total| total <= max)
        });
        if reserved.is_ok() {
            kept.push(bytes);
        }
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        let held = Self::held(&self.lock());
        self.shared.kept_bytes.fetch_sub(held, Ordering::Relaxed);
    }
}

/// The payload of one request (the data of a `WRITE`, the buffer of a `READ`): the first `len`
/// bytes of a buffer lent by the connection's [`Buffers`].
struct Payload {
    bytes: Vec<u8>,
    len: usize,
    home: Arc<Buffers>,
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::ops::DerefMut for Payload {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        if !bytes.is_empty() {
            self.home.give_back(bytes);
        }
    }
}

/// A checked request, ready for the device.
struct Job {
    request: Request,
    /// The data of a `WRITE`, the buffer of a `READ`; empty otherwise.
    payload: Payload,
    /// The request's share of the in-flight limits.
    permits: Permits,
}

/// Reads requests, answering invalid ones at once, until one is ready for the device. `None`
/// means the client is done (`DISC` or end of stream).
async fn next_request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    export: &Export,
    in_flight: &InFlight,
    replies: &mpsc::Sender<Reply>,
) -> io::Result<Option<Job>> {
    loop {
        let mut header = [0; REQUEST_HEADER_LEN];
        match reader.read_exact(&mut header).await {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(error) => return Err(error),
        }
        let request = Request::parse(&header)?;
        if request.command == Command::Disc {
            return Ok(None);
        }
        let is_write = request.command == Command::Write;

        if let Err(error) = request.check(export.size, export.block_size) {
            if is_write {
                // The payload follows the header whatever we think of it: skip it.
                let mut payload = (&mut *reader).take(u64::from(request.len));
                let skipped = tokio::io::copy(&mut payload, &mut tokio::io::sink()).await?;
                if skipped != u64::from(request.len) {
                    return Ok(None);
                }
            }
            let reply = Reply { handle: request.handle, error, data: None, _permits: None };
            if replies.send(reply).await.is_err() {
                return Ok(None);
            }
            continue;
        }

        // At most MAX_BLOCK_SIZE, within both budgets (`Limits::effective`); the semaphores are
        // never closed. The connection's own budget first: a connection waiting for the server's
        // holds none of it.
        let payload_len = match request.command {
            Command::Read | Command::Write => request.len,
            _ => 0,
        };
        let closed = |_| io::Error::other("request limits closed");
        let request_permit = Arc::clone(&in_flight.requests).acquire_owned().await.map_err(closed)?;
        let connection_bytes =
            Arc::clone(&in_flight.payload_bytes).acquire_many_owned(payload_len).await.map_err(closed)?;
        let server_bytes =
            Arc::clone(&in_flight.shared.bytes_in_flight).acquire_many_owned(payload_len).await.map_err(closed)?;
        let mut payload = in_flight.buffers.take(payload_len as usize);
        if is_write {
            let read = if payload.len() >= READ_BUFFER {
                read_through(reader, &mut payload).await
            } else {
                reader.read_exact(&mut payload).await.map(drop)
            };
            // A client gone mid-payload: the write is never applied.
            match read {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(error) => return Err(error),
            }
        }
        let permits =
            Permits { _request: request_permit, _connection_bytes: connection_bytes, _server_bytes: server_bytes };
        return Ok(Some(Job { request, payload, permits }));
    }
}

/// Reads exactly `buf.len()` bytes: what `reader` holds first, the rest straight from the stream.
/// For large payloads, whose tail would otherwise be pulled into the buffer (tokio's `BufReader`
/// fills it whenever less than its capacity is asked for) and copied twice.
async fn read_through<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, buf: &mut [u8]) -> io::Result<()> {
    let held = reader.buffer().len().min(buf.len());
    buf[..held].copy_from_slice(&reader.buffer()[..held]);
    reader.consume(held);
    if held < buf.len() {
        reader.get_mut().read_exact(&mut buf[held..]).await?;
    }
    Ok(())
}

/// Runs one checked request against the device (on the blocking pool); a `READ` fills `payload`.
fn execute(device: &dyn BlockDevice, request: &Request, payload: &mut [u8]) -> io::Result<()> {
    let fua = request.flags & CMD_FLAG_FUA != 0;
    let offset = request.offset;
    let len = u64::from(request.len);
    match request.command {
        Command::Read => device.read_at(offset, payload)?,
        Command::Write => device.write_at(offset, payload)?,
        Command::Flush => device.flush()?,
        Command::Trim => device.trim(offset, len)?,
        Command::WriteZeroes => device.write_zeroes(offset, len)?,
        Command::Disc | Command::Unknown(_) => {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a device command"));
        }
    }
    let writes = matches!(request.command, Command::Write | Command::Trim | Command::WriteZeroes);
    if fua && writes {
        device.flush()?;
    }
    Ok(())
}

/// Writes queued replies until every sender is gone. After a write error, when the client takes
/// none of a reply's bytes for `reply_timeout`, or when it has not taken its replies within
/// [`SHUTDOWN_GRACE`] of a shutdown, it stops writing (and says so through `gave_up`) but keeps
/// draining the queue, so that the connection ends only when no request is running any more.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<Reply>,
    mut stop: watch::Receiver<bool>,
    reply_timeout: Duration,
    gave_up: watch::Sender<bool>,
) {
    let give_up = async {
        let _ = stop.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let mut give_up = std::pin::pin!(give_up);
    let mut healthy = true;
    while let Some(reply) = queue.recv().await {
        if !healthy {
            continue;
        }
        let flush = queue.is_empty();
        tokio::select! {
            written = write_reply(&mut writer, &reply, flush, reply_timeout) => {
                if let Err(error) = written {
                    debug!(%error, "NBD reply not delivered");
                    healthy = false;
                }
            }
            // Never polled again once complete: `healthy` stays false.
            () = &mut give_up => {
                debug!("NBD client not taking its replies at shutdown");
                healthy = false;
            }
        }
        if !healthy {
            let _ = gave_up.send(true);
        }
    }
    if healthy {
        let _ = writer.flush().await;
        let _ = writer.shutdown().await;
    }
}

async fn write_reply<W: AsyncWrite + Unpin>(
    writer: &mut W,
    reply: &Reply,
    flush: bool,
    stall_limit: Duration,
) -> io::Result<()> {
    let mut header = [0; 16];
    header[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&reply.error.to_be_bytes());
    header[8..].copy_from_slice(&reply.handle.to_be_bytes());
    let data = reply.data.as_deref().unwrap_or_default();
    let stalled = || io::Error::new(io::ErrorKind::TimedOut, "the client took no reply bytes in time");
    // One vectored write: a large reply's header goes out with its data (not as a segment of its
    // own that wakes the client for 16 bytes); a small one is buffered with the replies after it.
    // Each write must make progress within `stall_limit`.
    let mut message = Buf::chain(header.as_slice(), data);
    while message.has_remaining() {
        match tokio::time::timeout(stall_limit, writer.write_buf(&mut message)).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(_)) => {}
            Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(stalled()),
        }
    }
    if flush {
        tokio::time::timeout(stall_limit, writer.flush()).await.map_err(|_| stalled())??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u16, command: u16, offset: u64, len: u32) -> [u8; REQUEST_HEADER_LEN] {
        let mut header = [0; REQUEST_HEADER_LEN];
        header[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        header[4..6].copy_from_slice(&flags.to_be_bytes());
        header[6..8].copy_from_slice(&command.to_be_bytes());
        header[8..16].copy_from_slice(&0x0102_0304_0506_0708_u64.to_be_bytes());
        header[16..24].copy_from_slice(&offset.to_be_bytes());
        header[24..].copy_from_slice(&len.to_be_bytes());
        header
    }

    fn check(flags: u16, command: u16, offset: u64, len: u32) -> Result<(), u32> {
        Request::parse(&header(flags, command, offset, len)).unwrap().check(1 << 20, 4096)
    }

    #[test]
    fn parses_request_headers() {
        let request = Request::parse(&header(CMD_FLAG_FUA, CMD_WRITE, 8192, 4096)).unwrap();
        assert_eq!(
            request,
            Request {
                flags: CMD_FLAG_FUA,
                command: Command::Write,
                handle: 0x0102_0304_0506_0708,
                offset: 8192,
                len: 4096
            }
        );
        assert_eq!(Request::parse(&header(0, 5, 0, 0)).unwrap().command, Command::Unknown(5));
        let mut bad = header(0, CMD_READ, 0, 4096);
        bad[0] ^= 1;
        assert_eq!(Request::parse(&bad).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn checks_requests_against_the_export() {
        const MIB: u64 = 1 << 20;
        let max = MAX_BLOCK_SIZE;
        for (flags, command, offset, len, expected) in [
            (0, CMD_READ, 0, 4096, Ok(())),
            (CMD_FLAG_FUA, CMD_WRITE, MIB - 4096, 4096, Ok(())),
            (0, CMD_FLUSH, 0, 0, Ok(())),
            (CMD_FLAG_FUA | CMD_FLAG_NO_HOLE, CMD_WRITE_ZEROES, 0, 1 << 20, Ok(())),
            (0, CMD_TRIM, 4096, 8192, Ok(())),
            (0, CMD_DISC, 0, 0, Ok(())),
            (0, CMD_READ, MIB, 4096, Err(EINVAL)),
            (0, CMD_READ, u64::MAX - 4095, 4096, Err(EINVAL)),
            (0, CMD_WRITE, MIB - 4096, 8192, Err(ENOSPC)),
            (0, CMD_WRITE_ZEROES, MIB, 4096, Err(ENOSPC)),
            (0, CMD_TRIM, MIB, 4096, Err(EINVAL)),
            (0, CMD_READ, 512, 4096, Err(EINVAL)),
            (0, CMD_WRITE, 0, 512, Err(EINVAL)),
            (0, CMD_READ, 0, 0, Err(EINVAL)),
            (0, CMD_TRIM, 0, 0, Err(EINVAL)),
            (0, CMD_READ, 0, max + 4096, Err(EINVAL)),
            (0, CMD_FLUSH, 4096, 0, Err(EINVAL)),
            (CMD_FLAG_NO_HOLE, CMD_WRITE, 0, 4096, Err(EINVAL)),
            (1 << 2, CMD_READ, 0, 4096, Err(EINVAL)),
            (0, 5, 0, 4096, Err(EINVAL)),
            (0, u16::MAX, 0, 0, Err(EINVAL)),
        ] {
            assert_eq!(check(flags, command, offset, len), expected, "{flags:#x} {command} {offset} {len}");
        }
    }

    #[test]
    fn parses_info_requests() {
        let data = [0, 0, 0, 3, b'v', b'o', b'l', 0, 2, 0, 1, 0, 3];
        assert_eq!(InfoRequest::parse(&data), Ok(InfoRequest { name: b"vol", requests: vec![1, 3] }));
        assert_eq!(InfoRequest::parse(&[0, 0, 0, 0, 0, 0]), Ok(InfoRequest { name: b"", requests: vec![] }));
        for bad in [&[][..], &[0, 0, 0], &[0, 0, 0, 4, b'v'], &[0, 0, 0, 0, 0, 1], &[0, 0, 0, 0, 0, 0, 9], &[0xff; 6]] {
            assert!(InfoRequest::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers() {
        let mut state = 1_u64;
        for _ in 0..10_000 {
            let mut bytes = [0u8; 40];
            for byte in &mut bytes {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *byte = (state >> 56) as u8;
            }
            let len = (state % 41) as usize;
            let _ = InfoRequest::parse(&bytes[..len]);
            let mut header = [0; REQUEST_HEADER_LEN];
            header.copy_from_slice(&bytes[..REQUEST_HEADER_LEN]);
            header[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
            let _ = Request::parse(&header).unwrap().check(state, 1 << (state % 17));
        }
    }

    fn shared(limits: Limits) -> Arc<Shared> {
        let limits = limits.effective();
        Arc::new(Shared {
            bytes_in_flight: Arc::new(Semaphore::new(limits.max_bytes_in_flight)),
            kept_bytes: AtomicUsize::new(0),
            limits,
        })
    }

    #[test]
    fn payload_buffers_are_lent_again_within_the_budget() {
        const MIB: usize = 1 << 20;
        let shared = shared(Limits::default());
        let buffers = Arc::new(Buffers::new(Arc::clone(&shared)));
        let mut first = buffers.take(MIB);
        first.fill(7);
        let address = first.as_ptr();
        drop(first);
        let second = buffers.take(4096);
        assert_eq!(second.len(), 4096);
        assert_eq!(second.as_ptr(), address, "the kept buffer is lent again");
        drop(second);
        let many: Vec<Payload> = (0..80).map(|_| buffers.take(MIB)).collect();
        assert!(many.iter().all(|payload| payload.len() == MIB));
        drop(many);
        let held = Buffers::held(&buffers.lock());
        assert!(held <= DEFAULT_MAX_KEPT_BUFFER_BYTES);
        assert!(held >= DEFAULT_MAX_KEPT_BUFFER_BYTES / 2, "buffers are kept up to the budget");
        assert_eq!(shared.kept_bytes.load(Ordering::Relaxed), held);
        assert!(buffers.take(0).is_empty());
        let grown = buffers.take(MIB + 4096);
        assert!(grown.bytes.capacity() < 2 * MIB, "a kept buffer grows to the request, not to twice its size");
        drop(grown);
        drop(buffers);
        assert_eq!(shared.kept_bytes.load(Ordering::Relaxed), 0, "a connection's kept buffers go with it");
    }

    #[test]
    fn limits_read_from_configuration_with_defaults_for_what_is_missing() {
        let limits: Limits = serde_json::from_str(r#"{"max_connections": 8, "handshake_timeout_ms": 2500}"#).unwrap();
        let expected =
            Limits { max_connections: 8, handshake_timeout: Duration::from_millis(2500), ..Limits::default() };
        assert_eq!(limits, expected);
        let round_trip: Limits = serde_json::from_value(serde_json::to_value(&expected).unwrap()).unwrap();
        assert_eq!(round_trip, expected);
        assert!(serde_json::from_str::<Limits>(r#"{"max_conections": 8}"#).is_err(), "a misspelt limit");
    }

    /// The kept buffers of all connections stay within the server's budget.
    #[test]
    fn kept_buffers_are_bounded_across_connections() {
        const MIB: usize = 1 << 20;
        let limits = Limits { max_kept_buffer_bytes: 8 * MIB, ..Limits::default() };
        let shared = shared(limits);
        let connections: Vec<Arc<Buffers>> = (0..4).map(|_| Arc::new(Buffers::new(Arc::clone(&shared)))).collect();
        for buffers in &connections {
            let payloads: Vec<Payload> = (0..4).map(|_| buffers.take(MIB)).collect();
            drop(payloads);
        }
        let held: usize = connections.iter().map(|b| Buffers::held(&b.lock())).sum();
        assert_eq!(held, 8 * MIB);
        assert_eq!(shared.kept_bytes.load(Ordering::Relaxed), 8 * MIB);
    }

    #[test]
    fn maps_device_errors_to_protocol_errors() {
        assert_eq!(errno_for(&io::ErrorKind::StorageFull.into()), ENOSPC);
        assert_eq!(errno_for(&io::ErrorKind::InvalidInput.into()), EINVAL);
        assert_eq!(errno_for(&io::ErrorKind::PermissionDenied.into()), EPERM);
        assert_eq!(errno_for(&io::Error::other("anything else")), EIO);
    }

    #[test]
    fn simple_devices_refuse_ranges_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileDevice::create(dir.path().join("f.raw"), 8192).unwrap();
        let memory = MemoryDevice::new(8192);
        for device in [&file as &dyn BlockDevice, &memory] {
            assert_eq!(device.size(), 8192);
            device.write_at(4096, &mut [1; 4096]).unwrap();
            assert!(device.write_at(4096, &mut [1; 4097]).is_err());
            assert!(device.read_at(u64::MAX, &mut [0; 1]).is_err());
            assert!(device.write_zeroes(8000, 1000).is_err());
            device.write_zeroes(4096, 2048).unwrap();
            let mut buf = [9; 4096];
            device.read_at(4096, &mut buf).unwrap();
            assert!(buf[..2048].iter().all(|&b| b == 0) && buf[2048..].iter().all(|&b| b == 1));
            device.trim(0, 8192).unwrap();
            device.read_at(4096, &mut buf).unwrap();
            assert_eq!(buf, [0; 4096]);
            device.flush().unwrap();
        }
    }
}
