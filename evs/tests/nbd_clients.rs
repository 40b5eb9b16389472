//! The NBD server (`evs::nbd`) against real clients (`nbdinfo`, `nbdcopy`, `qemu-io`,
//! `qemu-img`) and, for bad input, against hand-made requests on raw sockets.
//!
//! Every test starts its own server on `127.0.0.1:0`. Tests needing a tool that is not installed
//! print why and pass.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evs::nbd::{self, BlockDevice, ExportTable, Exports, FileDevice, MemoryDevice};

const MIB: usize = 1024 * 1024;

// Protocol values the raw-socket tests speak.
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_STARTTLS: u32 = 5;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_INVALID: u32 = (1 << 31) + 3;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
const REP_ERR_TOO_BIG: u32 = (1 << 31) + 9;
const INFO_EXPORT: u16 = 0;
const INFO_NAME: u16 = 1;
const INFO_BLOCK_SIZE: u16 = 3;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;
const FLAG_FUA: u16 = 1;
const FLAG_NO_HOLE: u16 = 2;
const EIO: u32 = 5;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

/// A server on an ephemeral port with its own runtime, stopped on drop.
struct Server {
    addr: SocketAddr,
    exports: Arc<ExportTable>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Self {
        Self::start_with(nbd::Limits::default())
    }

    fn start_with(limits: nbd::Limits) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let exports = Arc::new(ExportTable::new());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let served: Arc<dyn Exports> = exports.clone();
        let task = runtime.spawn(nbd::serve_with(listener, served, limits, async {
            let _ = stop.await;
        }));
        Self { addr, exports, shutdown: Some(shutdown), task: Some(task), runtime }
    }

    /// A server exporting one in-memory device under `name`.
    fn with_memory(name: &str, size: usize) -> (Self, Arc<MemoryDevice>) {
        let server = Self::start();
        let device = Arc::new(MemoryDevice::new(size));
        server.exports.insert(name, device.clone());
        (server, device)
    }

    fn url(&self, export: &str) -> String {
        format!("nbd://{}/{export}", self.addr)
    }

    /// Shuts the server down and waits until `serve` has returned.
    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            self.runtime.block_on(task).unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Whether `tool` can be run; prints why the calling test is skipped if not.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("SKIPPED: `{tool}` is not installed (apt-get install libnbd-bin qemu-utils)");
    }
    found
}

/// Runs a command, failing the test with its output unless it succeeds; returns stdout+stderr.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

/// Deterministic, incompressible test data with a zero run in the middle.
fn test_data(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    data[len / 4..len / 2].fill(0);
    data
}

fn file_device(dir: &Path, size: u64) -> (Arc<FileDevice>, std::path::PathBuf) {
    let path = dir.join("volume.raw");
    (Arc::new(FileDevice::create(&path, size).unwrap()), path)
}

// ---------------------------------------------------------------------------------------------
// Real clients.

#[test]
fn nbdinfo_lists_every_export() {
    if !have("nbdinfo") {
        return;
    }
    let server = Server::start();
    for name in ["vol-alpha", "vol-beta"] {
        server.exports.insert(name, Arc::new(MemoryDevice::new(MIB)));
    }
    let out = run(Command::new("nbdinfo").args(["--list", &format!("nbd://{}", server.addr)]));
    assert!(out.contains("vol-alpha") && out.contains("vol-beta"), "{out}");
}

#[test]
fn nbdinfo_shows_size_flags_and_block_sizes() {
    if !have("nbdinfo") {
        return;
    }
    let (server, _device) = Server::with_memory("vol-1", 4 * MIB);
    let out = run(Command::new("nbdinfo").args(["--json", &server.url("vol-1")]));
    for expected in [
        "\"export-size\": 4194304",
        "\"block_size_minimum\": 4096",
        "\"block_size_preferred\": 4096",
        "\"block_size_maximum\": 33554432",
        "\"can_flush\": true",
        "\"can_fua\": true",
        "\"can_trim\": true",
        "\"can_zero\": true",
        "\"can_multi_conn\": true",
        "\"is_read_only\": false",
    ] {
        assert!(out.contains(expected), "missing {expected} in:\n{out}");
    }
    // An unknown export is an error, not a hang or a crash.
    let output = Command::new("nbdinfo").arg(server.url("no-such-volume")).output().unwrap();
    assert!(!output.status.success());
}

#[test]
fn qemu_io_writes_and_reads_back_a_pattern() {
    if !have("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let (device, path) = file_device(dir.path(), 4 * MIB as u64);
    server.exports.insert("vol-q", device);
    let out = run(Command::new("qemu-io").args([
        "-f",
        "raw",
        "-c",
        "write -P 0x5a 0 1M",
        "-c",
        "read -P 0x5a 0 1M",
        "-c",
        "read -P 0 1M 3M",
        &server.url("vol-q"),
    ]));
    assert!(!out.contains("Pattern verification failed"), "{out}");
    let on_disk = std::fs::read(path).unwrap();
    assert!(on_disk[..MIB].iter().all(|&b| b == 0x5a));
    assert!(on_disk[MIB..].iter().all(|&b| b == 0));
}

#[test]
fn qemu_img_convert_into_and_out_of_an_export() {
    if !have("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let (device, volume) = file_device(dir.path(), 8 * MIB as u64);
    server.exports.insert("vol-c", device);
    let source = dir.path().join("source.raw");
    let data = test_data(8 * MIB);
    std::fs::write(&source, &data).unwrap();

    let url = server.url("vol-c");
    let src = source.to_str().unwrap();
    run(Command::new("qemu-img").args(["convert", "-n", "-f", "raw", "-O", "raw", src, &url]));
    assert!(std::fs::read(&volume).unwrap() == data, "volume differs from source");

    let copy = dir.path().join("copy.raw");
    let dst = copy.to_str().unwrap();
    run(Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "raw", &url, dst]));
    assert!(std::fs::read(&copy).unwrap() == data, "copy differs from source");
}

#[test]
fn nbdcopy_into_and_out_of_an_export_over_several_connections() {
    if !have("nbdcopy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let (device, volume) = file_device(dir.path(), 16 * MIB as u64);
    server.exports.insert("vol-n", device);
    let source = dir.path().join("source.raw");
    let data = test_data(16 * MIB);
    std::fs::write(&source, &data).unwrap();

    let url = server.url("vol-n");
    let src = source.to_str().unwrap();
    // The server advertises multi-conn, so nbdcopy spreads the copy over 4 connections.
    run(Command::new("nbdcopy").args(["--connections=4", "--flush", src, &url]));
    assert!(std::fs::read(&volume).unwrap() == data, "volume differs from source");

    let copy = dir.path().join("copy.raw");
    let dst = copy.to_str().unwrap();
    run(Command::new("nbdcopy").args(["--connections=4", &url, dst]));
    assert!(std::fs::read(&copy).unwrap() == data, "copy differs from source");
}

#[test]
fn qemu_io_discard_and_write_zeroes_read_back_zeros() {
    if !have("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let (device, path) = file_device(dir.path(), MIB as u64);
    server.exports.insert("vol-z", device);
    let out = run(Command::new("qemu-io").args([
        "-f",
        "raw",
        "-c",
        "write -P 0x11 0 256k",
        "-c",
        "discard 0 64k",
        "-c",
        "write -z 64k 64k",
        "-c",
        "write -z -u 128k 64k",
        "-c",
        "flush",
        "-c",
        "read -P 0 0 192k",
        "-c",
        "read -P 0x11 192k 64k",
        &server.url("vol-z"),
    ]));
    assert!(!out.contains("Pattern verification failed"), "{out}");
    let on_disk = std::fs::read(path).unwrap();
    assert!(on_disk[..192 * 1024].iter().all(|&b| b == 0));
    assert!(on_disk[192 * 1024..256 * 1024].iter().all(|&b| b == 0x11));
}

// ---------------------------------------------------------------------------------------------
// A minimal NBD client on a raw socket.

struct RawClient {
    stream: TcpStream,
}

impl RawClient {
    /// Connects and completes the handshake with the given client flags.
    fn handshake_with_flags(addr: SocketAddr, client_flags: u32) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut client = Self { stream };
        assert_eq!(&client.read_bytes(8), b"NBDMAGIC");
        assert_eq!(client.read_u64(), IHAVEOPT);
        assert_eq!(client.read_u16(), 0b11, "FIXED_NEWSTYLE | NO_ZEROES");
        client.send(&client_flags.to_be_bytes());
        client
    }

    fn handshake(addr: SocketAddr) -> Self {
        Self::handshake_with_flags(addr, 0b11)
    }

    /// Handshake and `NBD_OPT_GO` to `export`; returns the client and the export size.
    fn connect(addr: SocketAddr, export: &str) -> (Self, u64) {
        let mut client = Self::handshake(addr);
        client.send_option(OPT_GO, &info_request(export, &[INFO_BLOCK_SIZE]));
        let mut size = None;
        loop {
            let (option, reply, data) = client.option_reply();
            assert_eq!(option, OPT_GO);
            match reply {
                REP_INFO if data[..2] == INFO_EXPORT.to_be_bytes() => {
                    size = Some(u64::from_be_bytes(data[2..10].try_into().unwrap()));
                }
                REP_INFO => {}
                REP_ACK => break,
                other => panic!("NBD_OPT_GO failed with {other:#x}"),
            }
        }
        (client, size.unwrap())
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn read_bytes(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.stream.read_exact(&mut buf).unwrap();
        buf
    }

    fn read_u16(&mut self) -> u16 {
        u16::from_be_bytes(self.read_bytes(2).try_into().unwrap())
    }

    fn read_u32(&mut self) -> u32 {
        u32::from_be_bytes(self.read_bytes(4).try_into().unwrap())
    }

    fn read_u64(&mut self) -> u64 {
        u64::from_be_bytes(self.read_bytes(8).try_into().unwrap())
    }

    /// True once the server has closed the connection (nothing more to read).
    fn closed_by_server(&mut self) -> bool {
        let mut byte = [0];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => error.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    fn send_option(&mut self, option: u32, data: &[u8]) {
        let mut message = option_header(option, data.len() as u32);
        message.extend_from_slice(data);
        self.send(&message);
    }

    /// One option reply: (option, reply type, data).
    fn option_reply(&mut self) -> (u32, u32, Vec<u8>) {
        assert_eq!(self.read_u64(), OPTION_REPLY_MAGIC);
        let option = self.read_u32();
        let reply = self.read_u32();
        let len = self.read_u32() as usize;
        (option, reply, self.read_bytes(len))
    }

    fn send_request(&mut self, flags: u16, command: u16, handle: u64, offset: u64, len: u32) {
        self.send(&request_header(flags, command, handle, offset, len));
    }

    /// A simple reply: (error, handle).
    fn reply_header(&mut self) -> (u32, u64) {
        assert_eq!(self.read_u32(), SIMPLE_REPLY_MAGIC);
        let error = self.read_u32();
        (error, self.read_u64())
    }

    /// Sends one request and waits for its reply; returns the error and any read data.
    fn call(&mut self, flags: u16, command: u16, offset: u64, len: u32, payload: &[u8]) -> u32 {
        self.send_request(flags, command, 7, offset, len);
        self.send(payload);
        let (error, handle) = self.reply_header();
        assert_eq!(handle, 7);
        error
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> u32 {
        self.call(0, CMD_WRITE, offset, data.len() as u32, data)
    }

    fn read(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, u32> {
        match self.call(0, CMD_READ, offset, len, &[]) {
            0 => Ok(self.read_bytes(len as usize)),
            error => Err(error),
        }
    }
}

/// An option's header: the magic, the option and the length of the data that follows (16 bytes).
fn option_header(option: u32, len: u32) -> Vec<u8> {
    let mut header = Vec::with_capacity(16);
    header.extend_from_slice(&IHAVEOPT.to_be_bytes());
    header.extend_from_slice(&option.to_be_bytes());
    header.extend_from_slice(&len.to_be_bytes());
    header
}

/// A request header (28 bytes).
fn request_header(flags: u16, command: u16, handle: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut header = Vec::with_capacity(28);
    header.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
    header.extend_from_slice(&flags.to_be_bytes());
    header.extend_from_slice(&command.to_be_bytes());
    header.extend_from_slice(&handle.to_be_bytes());
    header.extend_from_slice(&offset.to_be_bytes());
    header.extend_from_slice(&len.to_be_bytes());
    header
}

/// The data of `NBD_OPT_INFO` / `NBD_OPT_GO`.
fn info_request(export: &str, requests: &[u16]) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&(export.len() as u32).to_be_bytes());
    data.extend_from_slice(export.as_bytes());
    data.extend_from_slice(&(requests.len() as u16).to_be_bytes());
    for request in requests {
        data.extend_from_slice(&request.to_be_bytes());
    }
    data
}

// ---------------------------------------------------------------------------------------------
// Negotiation.

#[test]
fn unsupported_and_bad_options_are_refused_and_negotiation_continues() {
    let (server, device) = Server::with_memory("vol-o", MIB);
    let mut client = RawClient::handshake(server.addr);

    for (option, data) in [
        (OPT_STRUCTURED_REPLY, Vec::new()),
        (OPT_STARTTLS, Vec::new()),
        (10, info_request("vol-o", &[])), // NBD_OPT_LIST_META_CONTEXT
        (0x7fff_0000, vec![0xab; 100]),   // nobody's option
    ] {
        client.send_option(option, &data);
        assert_eq!(client.option_reply(), (option, REP_ERR_UNSUP, b"option not supported".to_vec()));
    }

    // Unknown export, non-UTF-8 name, malformed data.
    client.send_option(OPT_INFO, &info_request("vol-nope", &[]));
    assert_eq!(client.option_reply().1, REP_ERR_UNKNOWN);
    client.send_option(OPT_GO, &[0, 0, 0, 2, 0xff, 0xfe, 0, 0]);
    assert_eq!(client.option_reply().1, REP_ERR_UNKNOWN);
    for malformed in [&[0, 0][..], &[0, 0, 0, 9, b'v'], &[0, 0, 0, 0, 0, 2, 0, 3]] {
        client.send_option(OPT_GO, malformed);
        assert_eq!(client.option_reply().1, REP_ERR_INVALID);
    }
    client.send_option(OPT_LIST, b"junk");
    assert_eq!(client.option_reply().1, REP_ERR_INVALID);

    // LIST: one NBD_REP_SERVER per export, then ACK.
    server.exports.insert("vol-p", Arc::new(MemoryDevice::new(MIB)));
    client.send_option(OPT_LIST, &[]);
    let mut listed = Vec::new();
    loop {
        let (option, reply, data) = client.option_reply();
        assert_eq!(option, OPT_LIST);
        if reply == REP_ACK {
            break;
        }
        assert_eq!(reply, REP_SERVER);
        let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        listed.push(String::from_utf8(data[4..4 + len].to_vec()).unwrap());
    }
    assert_eq!(listed, ["vol-o", "vol-p"]);

    // INFO with the name requested: EXPORT, NAME, BLOCK_SIZE, ACK.
    client.send_option(OPT_INFO, &info_request("vol-o", &[INFO_NAME, INFO_BLOCK_SIZE]));
    let mut infos = HashMap::new();
    loop {
        let (_, reply, data) = client.option_reply();
        if reply == REP_ACK {
            break;
        }
        assert_eq!(reply, REP_INFO);
        infos.insert(u16::from_be_bytes([data[0], data[1]]), data[2..].to_vec());
    }
    let export = &infos[&INFO_EXPORT];
    assert_eq!(u64::from_be_bytes(export[..8].try_into().unwrap()), MIB as u64);
    assert_eq!(u16::from_be_bytes([export[8], export[9]]), 0x16d);
    assert_eq!(infos[&INFO_NAME], b"vol-o");
    let sizes: Vec<u32> =
        infos[&INFO_BLOCK_SIZE].chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect();
    assert_eq!(sizes, [4096, 4096, 32 * MIB as u32]);

    // After all that, GO still works and so does I/O.
    client.send_option(OPT_GO, &info_request("vol-o", &[]));
    while client.option_reply().1 != REP_ACK {}
    assert_eq!(client.write(4096, &[0x42; 4096]), 0);
    assert_eq!(client.read(4096, 4096).unwrap(), vec![0x42; 4096]);
    assert!(device.contents()[4096..8192].iter().all(|&b| b == 0x42));
}

#[test]
fn an_absurd_option_length_is_refused_and_the_connection_closed() {
    let (server, _device) = Server::with_memory("vol-a", MIB);
    let mut client = RawClient::handshake(server.addr);
    client.send(&option_header(OPT_GO, 0xffff_fff0));
    let (option, reply, _) = client.option_reply();
    assert_eq!((option, reply), (OPT_GO, REP_ERR_TOO_BIG));
    assert!(client.closed_by_server());

    // NBD_OPT_EXPORT_NAME has no option replies: the connection just closes.
    let mut client = RawClient::handshake(server.addr);
    client.send(&option_header(OPT_EXPORT_NAME, 0xffff_fff0));
    assert!(client.closed_by_server());
}

#[test]
fn abort_is_acknowledged_then_the_connection_closed() {
    let (server, _device) = Server::with_memory("vol-a", MIB);
    let mut client = RawClient::handshake(server.addr);
    client.send_option(OPT_ABORT, &[]);
    assert_eq!(client.option_reply(), (OPT_ABORT, REP_ACK, Vec::new()));
    assert!(client.closed_by_server());
}

#[test]
fn export_name_ends_negotiation_with_or_without_zero_padding() {
    let (server, _device) = Server::with_memory("vol-e", 2 * MIB);
    for (client_flags, padding) in [(0b11, 0), (0b01, 124)] {
        let mut client = RawClient::handshake_with_flags(server.addr, client_flags);
        client.send_option(OPT_EXPORT_NAME, b"vol-e");
        assert_eq!(client.read_u64(), 2 * MIB as u64);
        assert_eq!(client.read_u16(), 0x16d);
        assert_eq!(client.read_bytes(padding), vec![0; padding]);
        assert_eq!(client.write(0, &[1; 4096]), 0);
        assert_eq!(client.read(0, 4096).unwrap(), vec![1; 4096]);
    }
    // NBD_OPT_EXPORT_NAME cannot fail politely: an unknown name closes the connection.
    let mut client = RawClient::handshake(server.addr);
    client.send_option(OPT_EXPORT_NAME, b"vol-nope");
    assert!(client.closed_by_server());
}

#[test]
fn unknown_client_flags_close_the_connection() {
    let (server, _device) = Server::with_memory("vol-f", MIB);
    let mut client = RawClient::handshake_with_flags(server.addr, 0b111);
    assert!(client.closed_by_server());
}

// ---------------------------------------------------------------------------------------------
// Transmission: bad input.

#[test]
fn requests_beyond_the_end_fail_and_the_connection_goes_on() {
    let (server, device) = Server::with_memory("vol-b", MIB);
    let (mut client, size) = RawClient::connect(server.addr, "vol-b");
    assert_eq!(size, MIB as u64);

    assert_eq!(client.read(size - 4096, 8192), Err(EINVAL));
    assert_eq!(client.read(size, 4096), Err(EINVAL));
    assert_eq!(client.read(u64::MAX - 4095, 4096), Err(EINVAL), "offset + length overflows");
    assert_eq!(client.write(size - 4096, &[9; 8192]), ENOSPC);
    assert_eq!(client.call(0, CMD_WRITE_ZEROES, size, 4096, &[]), ENOSPC);
    assert_eq!(client.call(0, CMD_TRIM, size - 4096, 8192, &[]), EINVAL);
    assert!(device.contents().iter().all(|&b| b == 0), "nothing was written");

    // The very last block is fine.
    assert_eq!(client.write(size - 4096, &[3; 4096]), 0);
    assert_eq!(client.read(size - 4096, 4096).unwrap(), vec![3; 4096]);
}

#[test]
fn misaligned_empty_and_oversize_requests_get_einval() {
    let (server, device) = Server::with_memory("vol-m", MIB);
    let (mut client, _) = RawClient::connect(server.addr, "vol-m");

    assert_eq!(client.read(512, 4096), Err(EINVAL), "misaligned offset");
    assert_eq!(client.read(0, 100), Err(EINVAL), "misaligned length");
    assert_eq!(client.read(0, 0), Err(EINVAL), "empty");
    assert_eq!(client.write(512, &[5; 4096]), EINVAL);
    assert_eq!(client.write(0, &[5; 512]), EINVAL);
    assert_eq!(client.call(0, CMD_TRIM, 0, 0, &[]), EINVAL);
    assert_eq!(client.call(0, CMD_WRITE_ZEROES, 100, 4096, &[]), EINVAL);
    assert_eq!(client.call(0, CMD_FLUSH, 4096, 0, &[]), EINVAL);
    assert_eq!(client.read(0, 32 * MIB as u32 + 4096), Err(EINVAL), "oversize read");
    // An oversize write's payload is read and thrown away; the stream stays in sync.
    let oversize = vec![6; 32 * MIB + 4096];
    assert_eq!(client.write(0, &oversize), EINVAL);
    assert!(device.contents().iter().all(|&b| b == 0), "nothing was written");

    assert_eq!(client.write(8192, &[7; 8192]), 0);
    assert_eq!(client.read(8192, 8192).unwrap(), vec![7; 8192]);
}

#[test]
fn unknown_commands_and_flags_get_einval() {
    let (server, _device) = Server::with_memory("vol-u", MIB);
    let (mut client, _) = RawClient::connect(server.addr, "vol-u");

    for command in [5, 7, 8, 0x42, u16::MAX] {
        assert_eq!(client.call(0, command, 0, 4096, &[]), EINVAL, "command {command}");
    }
    assert_eq!(client.call(FLAG_NO_HOLE, CMD_READ, 0, 4096, &[]), EINVAL);
    assert_eq!(client.call(1 << 7, CMD_FLUSH, 0, 0, &[]), EINVAL);
    // A flagged-off write still carries its payload, which must be skipped.
    assert_eq!(client.call(1 << 2, CMD_WRITE, 0, 4096, &[1; 4096]), EINVAL);

    // Documented flags are accepted, FUA even where it means nothing.
    assert_eq!(client.call(FLAG_NO_HOLE | FLAG_FUA, CMD_WRITE_ZEROES, 0, 4096, &[]), 0);
    assert_eq!(client.call(FLAG_FUA, CMD_READ, 0, 4096, &[]), 0);
    assert_eq!(client.read_bytes(4096), vec![0; 4096]);
}

/// A device whose reads fail with an I/O error and whose writes find the disk full.
struct BrokenDevice;

impl BlockDevice for BrokenDevice {
    fn size(&self) -> u64 {
        MIB as u64
    }
    fn read_at(&self, _: u64, _: &mut [u8]) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
    fn write_at(&self, _: u64, _: &mut [u8]) -> io::Result<()> {
        Err(io::ErrorKind::StorageFull.into())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn trim(&self, _: u64, _: u64) -> io::Result<()> {
        panic!("a bug in a device must not take the server down")
    }
    fn write_zeroes(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn device_errors_become_error_replies() {
    let server = Server::start();
    server.exports.insert("vol-x", Arc::new(BrokenDevice));
    let (mut client, _) = RawClient::connect(server.addr, "vol-x");
    assert_eq!(client.read(0, 4096), Err(EIO));
    assert_eq!(client.write(0, &[1; 4096]), ENOSPC);
    assert_eq!(client.call(0, CMD_TRIM, 0, 4096, &[]), EIO);
    assert_eq!(client.call(0, CMD_FLUSH, 0, 0, &[]), 0);
}

// ---------------------------------------------------------------------------------------------
// Transmission: durability, concurrency, disconnects.

/// Counts flushes, and records how many had happened when each write landed.
struct CountingDevice {
    inner: MemoryDevice,
    flushes: AtomicUsize,
}

impl BlockDevice for CountingDevice {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        self.inner.write_at(offset, data)
    }
    fn flush(&self) -> io::Result<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.trim(offset, len)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.write_zeroes(offset, len)
    }
}

#[test]
fn flush_and_fua_reach_the_device_before_the_reply() {
    let server = Server::start();
    let device = Arc::new(CountingDevice { inner: MemoryDevice::new(MIB), flushes: AtomicUsize::new(0) });
    server.exports.insert("vol-d", device.clone());
    let (mut client, _) = RawClient::connect(server.addr, "vol-d");
    let flushes = || device.flushes.load(Ordering::SeqCst);

    assert_eq!(client.write(0, &[1; 4096]), 0);
    assert_eq!(flushes(), 0, "a plain write is not flushed");
    assert_eq!(client.call(FLAG_FUA, CMD_WRITE, 0, 4096, &[2; 4096]), 0);
    assert_eq!(flushes(), 1, "FUA write flushed before its reply");
    assert_eq!(client.call(FLAG_FUA, CMD_WRITE_ZEROES, 0, 4096, &[]), 0);
    assert_eq!(flushes(), 2);
    assert_eq!(client.call(FLAG_FUA, CMD_TRIM, 0, 4096, &[]), 0);
    assert_eq!(flushes(), 3);
    assert_eq!(client.call(0, CMD_FLUSH, 0, 0, &[]), 0);
    assert_eq!(flushes(), 4);
}

#[test]
fn file_device_data_is_on_disk_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let (device, path) = file_device(dir.path(), MIB as u64);
    server.exports.insert("vol-f", device);
    let (mut client, _) = RawClient::connect(server.addr, "vol-f");
    assert_eq!(client.write(4096, &[0xcd; 8192]), 0);
    assert_eq!(client.call(0, CMD_FLUSH, 0, 0, &[]), 0);
    // A second, independent open of the file sees the data.
    let reopened = FileDevice::open(&path).unwrap();
    assert_eq!(reopened.size(), MIB as u64);
    let mut buf = vec![0; 8192];
    reopened.read_at(4096, &mut buf).unwrap();
    assert_eq!(buf, vec![0xcd; 8192]);
    assert!(FileDevice::create(&path, MIB as u64).is_err(), "create never clobbers");
}

#[test]
fn pipelined_requests_all_get_their_replies() {
    let (server, device) = Server::with_memory("vol-p", MIB);
    let (mut client, _) = RawClient::connect(server.addr, "vol-p");
    let blocks = 200_u64;

    // All writes first, then all replies (in whatever order the server sends them).
    let mut batch = Vec::new();
    for handle in 0..blocks {
        batch.extend(request_header(0, CMD_WRITE, handle, handle * 4096, 4096));
        batch.extend_from_slice(&[handle as u8; 4096]);
    }
    client.send(&batch);
    let mut seen: Vec<u64> = (0..blocks)
        .map(|_| {
            let (error, handle) = client.reply_header();
            assert_eq!(error, 0);
            handle
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..blocks).collect::<Vec<_>>());

    for handle in 0..blocks {
        client.send_request(0, CMD_READ, handle, handle * 4096, 4096);
    }
    for _ in 0..blocks {
        let (error, handle) = client.reply_header();
        assert_eq!(error, 0);
        assert_eq!(client.read_bytes(4096), vec![handle as u8; 4096]);
    }
    let contents = device.contents();
    for block in 0..blocks as usize {
        assert!(contents[block * 4096..(block + 1) * 4096].iter().all(|&b| b == block as u8));
    }
}

#[test]
fn a_client_taking_its_replies_late_gets_every_one() {
    // Large reads fill the socket while the client does not read, then a burst of invalid
    // requests fills the server's reply queue behind them: requests finishing then must not be
    // lost (nor hold their thread) until the client reads again.
    let size = 8 * MIB;
    let (server, device) = Server::with_memory("vol-late", size);
    let (mut client, _) = RawClient::connect(server.addr, "vol-late");
    let data = test_data(size);
    assert_eq!(client.write(0, &data), 0);
    assert_eq!(device.contents(), data);

    let (reads, invalid) = (8_u64, 200_u64);
    let chunk = 4 * MIB as u64;
    // One burst, so that the invalid requests are answered while the reads are still running.
    let mut burst = Vec::new();
    for handle in 0..reads {
        burst.extend(request_header(0, CMD_READ, handle, (handle % 2) * chunk, chunk as u32));
    }
    for handle in reads..reads + invalid {
        burst.extend(request_header(0, CMD_READ, handle, size as u64, 4096));
    }
    client.send(&burst);
    let mut seen = Vec::new();
    for _ in 0..reads + invalid {
        let (error, handle) = client.reply_header();
        if handle < reads {
            assert_eq!(error, 0);
            let at = ((handle % 2) * chunk) as usize;
            assert!(client.read_bytes(chunk as usize) == data[at..at + chunk as usize], "read {handle}");
        } else {
            assert_eq!(error, EINVAL);
        }
        seen.push(handle);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..reads + invalid).collect::<Vec<_>>());
    assert_eq!(client.read(0, 4096).unwrap(), data[..4096]);
}

#[test]
fn disc_answers_in_flight_requests_then_closes() {
    let (server, device) = Server::with_memory("vol-q", MIB);
    let (mut client, _) = RawClient::connect(server.addr, "vol-q");
    client.send_request(0, CMD_WRITE, 1, 0, 4096);
    client.send(&[8; 4096]);
    client.send_request(0, CMD_DISC, 2, 0, 0);
    assert_eq!(client.reply_header(), (0, 1));
    assert!(client.closed_by_server());
    assert!(device.contents()[..4096].iter().all(|&b| b == 8));
}

#[test]
fn a_client_dropping_mid_write_does_not_disturb_another() {
    let (mut server, device) = Server::with_memory("vol-s", 4 * MIB);
    let (mut steady, _) = RawClient::connect(server.addr, "vol-s");
    let (mut quitter, _) = RawClient::connect(server.addr, "vol-s");

    // The quitter announces 1 MiB, sends half of it and vanishes.
    quitter.send_request(0, CMD_WRITE, 1, 0, MIB as u32);
    quitter.send(&vec![0xee; MIB / 2]);
    assert_eq!(steady.write(2 * MIB as u64, &[0x77; 65536]), 0);
    quitter.stream.shutdown(Shutdown::Both).unwrap();
    drop(quitter);

    // A client that drops mid-header, and one that sends garbage.
    let (mut half, _) = RawClient::connect(server.addr, "vol-s");
    half.send(&REQUEST_MAGIC.to_be_bytes());
    drop(half);
    let (mut garbage, _) = RawClient::connect(server.addr, "vol-s");
    garbage.send(&[0xff; 28]);
    assert!(garbage.closed_by_server(), "bad request magic closes that connection");

    for round in 0..20_u8 {
        let offset = 2 * MIB as u64 + u64::from(round) * 65536;
        assert_eq!(steady.write(offset, &[round; 65536]), 0);
        assert_eq!(steady.read(offset, 65536).unwrap(), vec![round; 65536]);
    }
    assert_eq!(steady.call(0, CMD_FLUSH, 0, 0, &[]), 0);
    drop(steady);

    // Once the server has stopped, every connection is finished: the torn write never landed.
    server.stop();
    assert!(device.contents()[..MIB].iter().all(|&b| b == 0));
}

#[test]
fn shutdown_closes_idle_connections_and_serve_returns() {
    let (mut server, _device) = Server::with_memory("vol-h", MIB);
    let (mut transmitting, _) = RawClient::connect(server.addr, "vol-h");
    assert_eq!(transmitting.write(0, &[1; 4096]), 0);
    let mut negotiating = RawClient::handshake(server.addr);
    negotiating.send_option(OPT_LIST, &[]);
    while negotiating.option_reply().1 != REP_ACK {}
    // Stalled halfway through a write's payload: must not hold the shutdown up.
    let (mut stalled, _) = RawClient::connect(server.addr, "vol-h");
    stalled.send_request(0, CMD_WRITE, 1, 0, 65536);
    stalled.send(&[2; 4096]);

    server.stop();
    assert!(transmitting.closed_by_server());
    assert!(negotiating.closed_by_server());
    assert!(stalled.closed_by_server());
    assert!(TcpStream::connect(server.addr).is_err(), "no longer listening");
}

// ---------------------------------------------------------------------------------------------
// Limits (`nbd::Limits`): connections, bytes in flight across connections, handshake deadline,
// replies a client does not take.

/// Whether the server greets a fresh connection within `wait` (it does not while at its cap).
fn greeted_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut magic = [0; 8];
    match stream.read_exact(&mut magic) {
        Ok(()) => magic == *b"NBDMAGIC",
        Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => false,
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn at_the_connection_cap_accept_pauses_until_a_connection_ends() {
    let server = Server::start_with(nbd::Limits { max_connections: 2, ..nbd::Limits::default() });
    server.exports.insert("vol-cap", Arc::new(MemoryDevice::new(MIB)));
    let (mut first, _) = RawClient::connect(server.addr, "vol-cap");
    let (mut second, _) = RawClient::connect(server.addr, "vol-cap");
    // The third waits in the backlog: connected, not greeted.
    let mut third = TcpStream::connect(server.addr).unwrap();
    assert!(!greeted_within(&mut third, Duration::from_millis(300)), "a third connection was served");
    assert_eq!(second.write(0, &[3; 4096]), 0, "the connections being served go on");
    first.send_request(0, CMD_DISC, 9, 0, 0);
    assert!(first.closed_by_server());
    assert!(greeted_within(&mut third, Duration::from_secs(10)), "the freed slot was not used");
    assert_eq!(second.read(0, 4096).unwrap(), vec![3; 4096]);
}

#[test]
fn a_silent_or_trickling_handshake_is_dropped_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let server = Server::start_with(nbd::Limits { handshake_timeout: deadline, ..nbd::Limits::default() });
    server.exports.insert("vol-slow", Arc::new(MemoryDevice::new(MIB)));
    let started = std::time::Instant::now();
    let mut silent = RawClient::handshake(server.addr);
    assert!(silent.closed_by_server(), "a client that sent no option was kept");
    assert!(started.elapsed() >= deadline && started.elapsed() < Duration::from_secs(10));

    // One byte of an option every 50 ms: never done in time.
    let mut trickling = RawClient::handshake(server.addr);
    let started = std::time::Instant::now();
    let option = option_header(OPT_LIST, 0);
    let mut dropped = false;
    for byte in option.iter().cycle().take(200) {
        if trickling.stream.write_all(&[*byte]).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    assert!(dropped || trickling.closed_by_server(), "a trickling client was kept past the deadline");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A client that negotiates in time is served as before.
    let (mut prompt, _) = RawClient::connect(server.addr, "vol-slow");
    assert_eq!(prompt.write(0, &[1; 4096]), 0);
}

#[test]
fn the_byte_budget_is_shared_and_a_client_not_taking_replies_is_dropped() {
    let limits = nbd::Limits {
        max_bytes_in_flight: 32 * MIB,
        reply_timeout: Duration::from_millis(500),
        ..nbd::Limits::default()
    };
    let server = Server::start_with(limits);
    server.exports.insert("vol-budget", Arc::new(MemoryDevice::new(64 * MIB)));
    // A client that asks for two 32 MiB reads and takes none of the replies: the first holds the whole
    // budget (it does not fit in the socket buffers), the second waits for it.
    let (mut hog, _) = RawClient::connect(server.addr, "vol-budget");
    hog.send_request(0, CMD_READ, 1, 0, 32 << 20);
    hog.send_request(0, CMD_READ, 2, 32 << 20, 32 << 20);
    assert_eq!(hog.reply_header(), (0, 1), "the first read ran");
    // Another client's small read has to wait for the budget too, and gets it once the hog has been
    // dropped for not taking its replies.
    let (mut other, _) = RawClient::connect(server.addr, "vol-budget");
    let started = std::time::Instant::now();
    assert_eq!(other.read(0, 4096).unwrap(), vec![0; 4096]);
    assert!(started.elapsed() >= Duration::from_millis(450), "the small read did not wait for the budget");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The hog's connection is gone: whatever part of its reply reached the socket, then the end.
    hog.stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut sink = Vec::new();
    let ended = hog.stream.read_to_end(&mut sink);
    assert!(ended.is_ok() || ended.unwrap_err().kind() == io::ErrorKind::ConnectionReset);
    assert!(sink.len() < 2 * (16 + (32 << 20)), "the hog got all its replies");
}
