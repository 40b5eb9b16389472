//! The edge HTTP/1.1 server: accepts connections for the edge [`Router`] within [`ServerLimits`].
//!
//! [`serve`] replaces `axum::serve`, which bounds nothing a client can make it hold. Here:
//!
//! - at most [`ServerLimits::max_connections`] connections are served at once (and at most half
//!   the process's descriptor limit). At the cap the loop accepts one more client and holds it
//!   unserved while it closes the longest-idle connection (failing that, the one whose request
//!   head has been arriving longest; either only after a second in that state) to make room, or
//!   waits for one to close; it accepts nothing else meanwhile, so later clients wait in the
//!   kernel's listen backlog (back-pressure, never a crash). Accept errors (`EMFILE`, ...) back
//!   off briefly and never end the loop;
//! - a request head must arrive whole within [`ServerLimits::header_read_timeout`] of its first
//!   byte, and may be at most [`ServerLimits::max_header_bytes`] long (the socket hands hyper no
//!   more than that while no request is in progress, and closes the connection when a head needs
//!   more), so a slow or huge head costs a bounded buffer for a bounded time. Bodies are read with
//!   hyper's full read buffer ([`BODY_READ_BUFFER`]): a 32 KiB one costs large PUTs about a tenth
//!   of their throughput;
//! - a connection with no request in progress (and none started) is closed after
//!   [`ServerLimits::idle_timeout`];
//! - shutdown stops accepting, closes idle connections, lets in-flight requests finish for up to
//!   [`ServerLimits::shutdown_grace`], then closes the rest, and returns only once every
//!   connection task has ended (and so dropped its clone of the router and the services);
//! - with TLS ([`serve_with_tls`], `--tls`), a connection's handshake must complete within
//!   [`ServerLimits::header_read_timeout`]; its requests are then served as above, the limits
//!   counting the encrypted bytes;
//! - with [`ServerLimits::threads`] set, each connection is served, from accept to close, on one
//!   of that many threads, each a current-thread runtime with its own reactor, handed out in turn
//!   (`ConnectionThreads`); [`serve`] returns once they have ended. By default the connections
//!   are tasks of the runtime `serve` runs on.
//!
//! The two timeouts are kept here rather than by hyper's `header_read_timeout`, because hyper's
//! timer also runs while a keep-alive connection waits for its next request, which would make
//! the idle timeout the header timeout. Each connection's phase (idle → reading a head → busy →
//! idle) follows its socket's reads and its service's calls; one reaper task for all connections
//! closes those past their deadline. A connection task waits on hyper and on one atomic signal
//! (close, or drain at shutdown), so a request costs no timer or channel work.
//!
//! Each request is logged at `debug` (target `kmsim::serve`) once its response has been sent:
//! method, path (never the query: presigned URLs carry signatures), status, duration, the
//! request id the client saw and the access key id — never a secret or signature.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use shared::Peer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// Most [`ServerLimits::threads`].
pub const MAX_THREADS: usize = 256;

/// Default [`ServerLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default [`ServerLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`ServerLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`ServerLimits::max_header_bytes`]: four times the 8 KB of request headers S3
/// documents, room for long SigV4 `Authorization` headers, presigned URLs and large OpenStack /
/// IAM tokens. The socket hands hyper no more than this while a head arrives, so the default cap
/// of connections bounds head buffers to about 32 MiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Default [`ServerLimits::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The smallest [`ServerLimits::max_header_bytes`] hyper accepts; smaller values are raised to it.
pub const MIN_HEADER_BYTES: usize = 8192;

/// The most hyper buffers from a socket while reading a request body: hyper's own default, which
/// large uploads need (smaller reads cost them throughput and CPU; see `docs/benchmarks.md`).
pub const BODY_READ_BUFFER: usize = 8192 + 4096 * 100;

/// First pause after an accept error such as `EMFILE`; doubled on each further error.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause after repeated accept errors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At the connection cap, how often the accept loop looks again for a connection to evict when
/// none could be.
const EVICTION_RETRY: Duration = Duration::from_millis(50);
/// At the connection cap, a connection idle, or reading a request head, for at least this long
/// may be closed to make room (a new client's head normally arrives within a round trip).
const EVICTABLE_AGE: Duration = Duration::from_secs(1);
/// Longest path written to the request log (object keys can be long).
const MAX_LOGGED_PATH: usize = 1024;
/// Longest access key id written to the request log; anything longer is not logged.
const MAX_LOGGED_ACCESS_KEY: usize = 128;
/// Response headers carrying the request id, one per service: S3, OBS, AWS KMS, OTC KMS and EVS,
/// OpenStack.
const REQUEST_ID_HEADERS: [&str; 5] =
    ["x-amz-request-id", "x-obs-request-id", "x-amzn-requestid", "x-request-id", "x-openstack-request-id"];

/// What the edge listener lets a client hold: connections, time and buffer.
///
/// Each limit exists because a client can otherwise make the server keep a socket, a task and a
/// growing buffer for as long as it likes. The defaults suit a simulator on a developer's
/// machine or a CI runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once. At the cap the server closes an idle (or slow) connection
    /// to make room for a waiting client, or holds that client until one closes, and accepts
    /// no other (clients queue in the listen backlog): back-pressure instead of running out of
    /// descriptors, which stops a server answering anyone. Values below 1 count as 1, and
    /// values above half the process's descriptor limit (`ulimit -n`) as that half: the rest is
    /// for files.
    pub max_connections: usize,
    /// Time a client has to send a whole request head once its first byte arrived. A client
    /// trickling a header is closed after it, so it cannot pin a connection and its buffer.
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in progress (a keep-alive connection
    /// between requests, or a new one that sent nothing), so idle sockets are given back.
    pub idle_timeout: Duration,
    /// Longest request head (request line and headers) in bytes. A connection whose head needs
    /// more is closed, the head never buffered further. Values below [`MIN_HEADER_BYTES`] count
    /// as it.
    pub max_header_bytes: usize,
    /// On shutdown, how long in-flight requests may take to finish before their connections
    /// are closed anyway, so a stalled client cannot hold up a stop.
    pub shutdown_grace: Duration,
    /// Threads of their own serving the connections, each running an event loop of its own (a
    /// connection stays on one thread from accept to close, its socket in that thread's epoll
    /// set), at most [`MAX_THREADS`]; 0 (the default): the connections are served by the workers
    /// of the runtime [`serve`] runs on, which take over each other's ready connections. Threads
    /// of their own cost less CPU per call and hold many connections better, but a connection
    /// waits whenever its thread is descheduled: on a machine whose cores are busy with other
    /// work (the load client, a test suite) the latency's tail is several times longer
    /// (`docs/benchmarks.md`, issue 19).
    pub threads: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            threads: 0,
        }
    }
}

impl ServerLimits {
    /// The limits with out-of-range values raised or lowered to what the server can use.
    fn normalized(mut self) -> Self {
        self.max_connections = self.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        self.max_header_bytes = self.max_header_bytes.max(MIN_HEADER_BYTES);
        self.threads = self.threads.min(MAX_THREADS);
        self
    }

    /// The limits with `max_connections` at most half of `descriptors` (the process's limit on
    /// open descriptors), so sockets never take the descriptors the services need for files.
    fn within_descriptors(mut self, descriptors: usize) -> Self {
        self.max_connections = self.max_connections.min(descriptors / 2).max(1);
        self
    }
}

/// The process's soft limit on open descriptors (`ulimit -n`), from `/proc/self/limits`; `None`
/// when unlimited or unknown.
fn descriptor_limit() -> Option<usize> {
    const NAME: &str = "Max open files";
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find_map(|line| line.strip_prefix(NAME))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Serves `router` over HTTP/1.1 (keep-alive) on `listener` within `limits` until `shutdown`
/// completes, then drains (see the module documentation) and returns once every connection
/// task has ended.
pub async fn serve(listener: TcpListener, router: Router, limits: ServerLimits, shutdown: impl Future<Output = ()>) {
    serve_with_tls(listener, router, limits, None, shutdown).await;
}

/// [`serve`], over TLS when `tls` is given: each accepted connection completes its handshake
/// within [`ServerLimits::header_read_timeout`] before its first request.
pub async fn serve_with_tls(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mut limits = limits.normalized();
    if let Some(descriptors) = descriptor_limit() {
        let fitted = limits.clone().within_descriptors(descriptors);
        if fitted.max_connections < limits.max_connections {
            tracing::info!(
                max_connections = fitted.max_connections,
                descriptors,
                "fewer connections than configured: at most half the descriptor limit (ulimit -n)"
            );
        }
        limits = fitted;
    }
    let limits = Arc::new(limits);
    let mut builder = http1::Builder::new();
    // The timeouts are the watchdog's (see the module documentation); hyper's would need a timer.
    builder.keep_alive(true).max_buf_size(limits.max_header_bytes.max(BODY_READ_BUFFER)).header_read_timeout(None);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut tasks = JoinSet::new();
    let registry = Arc::new(Registry::default());
    let _reaper = AbortOnDrop(tokio::spawn(registry.clone().reap(limits.clone())));
    let mut threads = ConnectionThreads::start(limits.threads, limits.shutdown_grace);
    tokio::pin!(shutdown);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    'accept: loop {
        // A permit if one is free; at the cap, none until a connection is waiting (below).
        let permit = permits.clone().try_acquire_owned().ok();
        let (stream, peer) = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break 'accept,
                Some(done) = tasks.join_next() => report_task(done),
                accepted = listener.accept() => match accepted {
                    Ok(pair) => {
                        backoff = ACCEPT_BACKOFF_MIN;
                        break pair;
                    }
                    Err(e) if is_connection_error(&e) => {
                        tracing::debug!(error = %e, "accept: connection gone before it was accepted");
                    }
                    Err(e) => {
                        // EMFILE / ENFILE / ENOMEM: back off and keep listening; connections
                        // closing give the resources back.
                        tracing::warn!(error = %e, pause = ?backoff, "accept failed; pausing");
                        tokio::select! {
                            biased;
                            () = &mut shutdown => break 'accept,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                },
            }
        };
        let permit = match permit {
            Some(permit) => permit,
            None => {
                // At the cap with a client waiting: it is held, unserved, until a connection
                // closes; an idle (or slow) one is closed to make room. Nothing else is accepted
                // meanwhile, so later clients wait in the listen backlog.
                let mut evicted = false;
                loop {
                    if !evicted {
                        evicted = registry.evict_one();
                    }
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break 'accept,
                        permit = permits.clone().acquire_owned() => match permit {
                            Ok(permit) => break permit,
                            Err(_) => break 'accept, // never closed
                        },
                        Some(done) = tasks.join_next() => report_task(done),
                        () = tokio::time::sleep(EVICTION_RETRY), if !evicted => {}
                    }
                }
            }
        };
        let runtime = threads.next().cloned();
        let stream = match runtime {
            None => Socket::Registered(stream),
            Some(_) => match stream.into_std() {
                Ok(stream) => Socket::Moving(stream),
                Err(e) => {
                    tracing::debug!(error = %e, "accept: could not take the connection off the listener's runtime");
                    continue;
                }
            },
        };
        let phase = Arc::new(PhaseWatch::new());
        let connection = Connection {
            stream,
            peer,
            router: router.clone(),
            builder: builder.clone(),
            tls: tls.clone(),
            handshake_timeout: limits.header_read_timeout,
            head_limit: limits.max_header_bytes,
            registered: registry.register(phase.clone()),
            phase,
        };
        let task = async move {
            connection.run().await;
            drop(permit);
        };
        match runtime {
            Some(runtime) => tasks.spawn_on(task, &runtime),
            None => tasks.spawn(task),
        };
    }
    drop(listener);
    registry.drain_all();
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while let Some(done) = tasks.join_next().await {
            report_task(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            grace = ?limits.shutdown_grace,
            "closing connections still busy after the shutdown grace period"
        );
        tasks.shutdown().await;
    }
    threads.stop().await;
}

/// Errors of `accept` that concern only the connection being accepted, not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

fn report_task(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(error = %e, "connection task panicked");
    }
}

/// The threads serving the connections: each runs a current-thread runtime of its own, and a connection handed to
/// one is served there from start to end, its socket registered with that runtime's reactor.
///
/// One multi-thread runtime for every connection costs each call wake-ups between its workers (the worker that
/// polled epoll hands the ready connections to its run queue and wakes another to steal half of them) and, with many
/// connections, the cache misses of connections moving between cores. Here a ready connection is served on the
/// thread whose epoll reported it. What the services spawn from a request runs on that thread too, except work that
/// must outlive the connections or use another core (volume jobs, decryption ahead of the socket), which the
/// services spawn on the runtime they were opened on. The price: no thread takes over another's connections, so a
/// descheduled thread delays all of its own (see [`ServerLimits::threads`]).
struct ConnectionThreads {
    runtimes: Vec<tokio::runtime::Handle>,
    next: usize,
    /// Dropping a sender ends its thread's runtime.
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Each thread's, once its runtime ended.
    stopped: Vec<tokio::sync::oneshot::Receiver<()>>,
}

impl ConnectionThreads {
    /// `count` threads (none for 0), or as many as could be started (none: connections are served on the caller's
    /// runtime). At their end each waits up to `grace` for blocking work its connections started.
    fn start(count: usize, grace: Duration) -> Self {
        let mut threads = ConnectionThreads { runtimes: Vec::new(), next: 0, stop: Vec::new(), stopped: Vec::new() };
        for index in 0..count {
            if let Err(e) = threads.start_one(index, grace) {
                tracing::warn!(error = %e, threads = index, "could not start every connection thread");
                break;
            }
        }
        threads
    }

    fn start_one(&mut self, index: usize, grace: Duration) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
        let (ended, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name(format!("kmsim-edge-{index}")).spawn(move || {
            runtime.block_on(async {
                let _ = stopping.await;
            });
            runtime.shutdown_timeout(grace);
            let _ = ended.send(());
        })?;
        self.runtimes.push(handle);
        self.stop.push(stop);
        self.stopped.push(stopped);
        Ok(())
    }

    /// The runtime for the next connection, in turn; `None`: the caller's.
    fn next(&mut self) -> Option<&tokio::runtime::Handle> {
        let index = self.next;
        self.next = (index + 1) % self.runtimes.len().max(1);
        self.runtimes.get(index)
    }

    /// Ends every thread's runtime (and what still runs there) and waits until they ended, so that nothing they
    /// held (the services) outlives the server.
    async fn stop(mut self) {
        self.stop.clear();
        for stopped in self.stopped.drain(..) {
            let _ = stopped.await;
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The open connections' phases: the reaper closes those past their deadline, the accept loop
/// evicts one at the cap, shutdown drains them all.
#[derive(Debug, Default)]
struct Registry {
    next_id: std::sync::atomic::AtomicU64,
    connections: Mutex<std::collections::HashMap<u64, Arc<PhaseWatch>>>,
}

impl Registry {
    fn register(self: &Arc<Self>, phase: Arc<PhaseWatch>) -> Registered {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.connections.lock().unwrap_or_else(PoisonError::into_inner).insert(id, phase);
        Registered { registry: self.clone(), id }
    }

    /// Closes every connection past its deadline (at `now`); returns when to look again: the
    /// earliest deadline left, and at the latest [`check_period`] from now, so that a connection
    /// whose phase changes after this look is never missed by more than that.
    fn expire(&self, now: Instant, limits: &ServerLimits) -> Instant {
        let mut next = now + check_period(limits);
        for phase in self.connections.lock().unwrap_or_else(PoisonError::into_inner).values() {
            match phase.deadline(limits) {
                Some((at, why)) if at <= now => phase.close(why),
                Some((at, _)) => next = next.min(at),
                None => {}
            }
        }
        next
    }

    /// Looks at every connection's deadline, for as long as the server runs.
    async fn reap(self: Arc<Self>, limits: Arc<ServerLimits>) {
        loop {
            let next = self.expire(Instant::now(), &limits);
            tokio::time::sleep_until(next).await;
        }
    }

    /// Shutdown: every connection closes once the response in progress (if any) is sent.
    fn drain_all(&self) {
        for phase in self.connections.lock().unwrap_or_else(PoisonError::into_inner).values() {
            phase.drain();
        }
    }

    /// Closes the longest-idle connection (or, failing one, the oldest slow head); false if
    /// every connection is answering a request or reading a fresh head.
    fn evict_one(&self) -> bool {
        let now = Instant::now();
        let candidates: Vec<((u8, Instant), Arc<PhaseWatch>)> = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|phase| Some((phase.eviction_rank(now)?, phase.clone())))
            .collect();
        let mut candidates = candidates;
        candidates.sort_by_key(|(rank, _)| *rank);
        candidates.iter().any(|(_, phase)| phase.evict(now))
    }
}

/// A connection's entry in the [`Registry`], removed on drop.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.connections.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

/// An accepted socket: registered with the listener's runtime, or taken off it to be served on a connection thread.
enum Socket {
    Registered(TcpStream),
    Moving(std::net::TcpStream),
}

impl Socket {
    /// The socket registered with the runtime it is served on (the caller's).
    fn registered(self) -> io::Result<TcpStream> {
        match self {
            Socket::Registered(stream) => Ok(stream),
            Socket::Moving(stream) => TcpStream::from_std(stream),
        }
    }
}

/// One accepted connection and what it needs to serve it.
struct Connection {
    stream: Socket,
    peer: SocketAddr,
    router: Router,
    builder: Arc<http1::Builder>,
    /// Completes a TLS handshake first, when the edge speaks HTTPS.
    tls: Option<TlsAcceptor>,
    /// How long that handshake may take.
    handshake_timeout: Duration,
    /// [`ServerLimits::max_header_bytes`].
    head_limit: usize,
    phase: Arc<PhaseWatch>,
    /// Removes the connection from the registry when it ends.
    registered: Registered,
}

impl Connection {
    async fn run(self) {
        let _registered = self.registered;
        let phase = self.phase;
        let stream = match self.stream.registered() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "connection could not be registered with its runtime");
                return;
            }
        };
        let stream =
            WatchedStream { stream, phase: phase.clone(), head_limit: self.head_limit, head_bytes: 0, started: 0 };
        let Some(acceptor) = self.tls else {
            let peer = Peer { addr: self.peer, secure: false };
            return serve_connection(TokioIo::new(stream), &self.builder, self.router, phase, peer).await;
        };
        // Boxed: a TLS session's state is several KiB, and in line it would make every plain connection's task
        // that large too (7 KiB against 1.5 KiB, each idle keep-alive connection).
        let peer = self.peer;
        Box::pin(async move {
            match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let peer = Peer { addr: peer, secure: true };
                    serve_connection(TokioIo::new(tls), &self.builder, self.router, phase, peer).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        })
        .await;
    }
}

/// Serves the requests of one connection (plain or TLS) until it ends, its deadline passes or the
/// server drains.
async fn serve_connection<I>(io: I, builder: &http1::Builder, router: Router, phase: Arc<PhaseWatch>, peer: Peer)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = EdgeService { inner: TowerToHyperService::new(router), phase: phase.clone(), peer };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer.addr, error = %e, "connection ended with an error");
                }
                return;
            }
            signal = phase.signalled(draining) => match signal {
                Signal::Close(why) => {
                    tracing::debug!(peer = %peer.addr, reason = why.as_str(), "closing the connection");
                    return;
                }
                Signal::Drain => {
                    // Closes the connection if idle, else after the response in progress.
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
            },
        }
    }
}

/// How often the reaper looks at every connection's phase at the latest: a quarter of the shorter
/// timeout (at least a millisecond), so a timeout is never missed by more than that.
fn check_period(limits: &ServerLimits) -> Duration {
    (limits.header_read_timeout.min(limits.idle_timeout) / 4).max(Duration::from_millis(1))
}

/// Where a connection is, for its timeouts.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in progress and no byte of the next one read, since the instant.
    Idle(Instant),
    /// The first byte of a request head arrived at the instant; the head is not complete.
    Head(Instant),
    /// This many requests are being answered (their head was complete).
    Busy(usize),
    /// Chosen to make room at the connection cap while idle or slow: close now.
    Evicted,
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Expiry {
    Idle = 1,
    Head = 2,
    Evicted = 3,
}

/// What a connection task is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Close now.
    Close(Expiry),
    /// The server is stopping: finish the response in progress, then close.
    Drain,
}

impl Expiry {
    fn from_u8(value: u8) -> Option<Self> {
        [Expiry::Idle, Expiry::Head, Expiry::Evicted].into_iter().find(|why| *why as u8 == value)
    }

    fn as_str(self) -> &'static str {
        match self {
            Expiry::Idle => "idle timeout",
            Expiry::Head => "request head timeout",
            Expiry::Evicted => "evicted to make room at the connection cap",
        }
    }
}

/// A connection's phase, shared by its socket (reads), its service (requests), the reaper and the
/// accept loop; and the signal those last two send its task.
#[derive(Debug)]
struct PhaseWatch {
    phase: Mutex<Phase>,
    /// 0, or the [`Expiry`] the connection is to be closed for.
    close: AtomicU8,
    /// The server is stopping.
    drain: AtomicBool,
    /// The connection task, waiting for a signal.
    waker: AtomicWaker,
    /// Requests handed to the router so far, so the socket knows when a new head begins.
    started: AtomicU64,
}

impl PhaseWatch {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            close: AtomicU8::new(0),
            drain: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            started: AtomicU64::new(0),
        }
    }

    /// Changes the phase without waking anyone: the reaper looks again at least every
    /// [`check_period`] and exactly at the deadlines it saw, so requests cost no timer work.
    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = change(*phase);
    }

    /// Whether a request is being answered (its head was complete).
    fn is_busy(&self) -> bool {
        matches!(*self.phase.lock().unwrap_or_else(PoisonError::into_inner), Phase::Busy(_))
    }

    /// Bytes arrived: while idle, they start a request head.
    fn bytes_read(&self) {
        let idle = matches!(*self.phase.lock().unwrap_or_else(PoisonError::into_inner), Phase::Idle(_));
        if idle {
            self.update(|phase| match phase {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                other => other,
            });
        }
    }

    /// A request head was complete and the request handed to the router.
    fn request_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n.saturating_add(1)),
            // A head that was already buffered when the connection was evicted wins the race.
            Phase::Idle(_) | Phase::Head(_) | Phase::Evicted => Phase::Busy(1),
        });
    }

    /// A request's response was sent (or abandoned).
    fn request_finished(&self) {
        self.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }

    fn deadline(&self, limits: &ServerLimits) -> Option<(Instant, Expiry)> {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Idle(since) => Some((since + limits.idle_timeout, Expiry::Idle)),
            Phase::Head(since) => Some((since + limits.header_read_timeout, Expiry::Head)),
            Phase::Busy(_) => None,
            Phase::Evicted => Some((Instant::now(), Expiry::Evicted)),
        }
    }

    /// How good a candidate for eviction this connection is: idle ones first (the longest idle
    /// first), then heads pending (the oldest first), each only after [`EVICTABLE_AGE`] in that
    /// phase; `None` for a connection answering a request, or one that just became idle or
    /// started a head (such as a client just accepted).
    fn eviction_rank(&self, now: Instant) -> Option<(u8, Instant)> {
        let old_enough = |since: Instant| now.saturating_duration_since(since) >= EVICTABLE_AGE;
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Idle(since) if old_enough(since) => Some((0, since)),
            Phase::Head(since) if old_enough(since) => Some((1, since)),
            Phase::Idle(_) | Phase::Head(_) | Phase::Busy(_) | Phase::Evicted => None,
        }
    }

    /// Marks the connection for closing if it is still idle or slow; false if it got busy.
    fn evict(&self, now: Instant) -> bool {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let since = match *phase {
            Phase::Idle(since) | Phase::Head(since) => since,
            Phase::Busy(_) | Phase::Evicted => return false,
        };
        if now.saturating_duration_since(since) < EVICTABLE_AGE {
            return false;
        }
        *phase = Phase::Evicted;
        drop(phase);
        self.close(Expiry::Evicted);
        true
    }

    /// Tells the connection task to close now.
    fn close(&self, why: Expiry) {
        self.close.store(why as u8, Ordering::Release);
        self.waker.wake();
    }

    /// Tells the connection task to close after the response in progress.
    fn drain(&self) {
        self.drain.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn signal(&self, draining: bool) -> Option<Signal> {
        if let Some(why) = Expiry::from_u8(self.close.load(Ordering::Acquire)) {
            return Some(Signal::Close(why));
        }
        (!draining && self.drain.load(Ordering::Acquire)).then_some(Signal::Drain)
    }

    /// Completes with the next signal for the connection task (a drain only if not `draining`
    /// already). Polling it costs two atomic loads and registering the waker.
    fn signalled(&self, draining: bool) -> impl Future<Output = Signal> + '_ {
        std::future::poll_fn(move |cx| {
            if let Some(signal) = self.signal(draining) {
                return Poll::Ready(signal);
            }
            self.waker.register(cx.waker());
            match self.signal(draining) {
                Some(signal) => Poll::Ready(signal),
                None => Poll::Pending,
            }
        })
    }
}

/// The TCP stream, telling the connection's [`PhaseWatch`] when bytes arrive, and handing hyper at
/// most `head_limit` bytes while no request is in progress (so a request head can never grow
/// hyper's buffer past it, whatever hyper's read buffer for bodies).
struct WatchedStream {
    stream: TcpStream,
    phase: Arc<PhaseWatch>,
    /// [`ServerLimits::max_header_bytes`].
    head_limit: usize,
    /// Bytes read, while not busy, since the last request was handed to the router.
    head_bytes: usize,
    /// [`PhaseWatch::started`] when `head_bytes` was last reset.
    started: u64,
}

/// The most one read takes from the socket while a head is arriving and hyper offers more room
/// than the head may still take: the bytes then go through this stack buffer (a `ReadBuf` cannot be
/// narrowed without unsafe code).
const HEAD_READ_CHUNK: usize = 8 * 1024;

impl AsyncRead for WatchedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.phase.is_busy() {
            self.head_bytes = 0;
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let started = self.phase.started.load(Ordering::Relaxed);
        if started != self.started {
            // A request began since the last read: what follows is the next head.
            self.started = started;
            self.head_bytes = 0;
        }
        let allowance = self.head_limit.saturating_sub(self.head_bytes);
        if allowance == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request head is longer than max_header_bytes",
            )));
        }
        let before = buf.filled().len();
        let result = if allowance >= buf.remaining() {
            // hyper offers no more than the head may still take: read straight into its buffer.
            Pin::new(&mut self.stream).poll_read(cx, buf)
        } else {
            let mut chunk = [const { MaybeUninit::<u8>::uninit() }; HEAD_READ_CHUNK];
            let take = allowance.min(HEAD_READ_CHUNK);
            let mut limited = ReadBuf::uninit(&mut chunk[..take]);
            let result = Pin::new(&mut self.stream).poll_read(cx, &mut limited);
            buf.put_slice(limited.filled());
            result
        };
        let read = buf.filled().len() - before;
        if matches!(result, Poll::Ready(Ok(()))) && read > 0 {
            self.head_bytes = self.head_bytes.saturating_add(read);
            self.phase.bytes_read();
        }
        result
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router as a hyper service, marking each request busy until its response body is done.
struct EdgeService {
    inner: TowerToHyperService<Router>,
    phase: Arc<PhaseWatch>,
    /// Where the connection comes from: put into every request's extensions for the services'
    /// request context ([`shared::RequestContext`]).
    peer: Peer,
}

impl hyper::service::Service<Request<Incoming>> for EdgeService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        let mut guard = RequestGuard::start(self.phase.clone(), &request);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            guard.responded(&response);
            Ok(response.map(|body| TrackedBody { body, _guard: guard }))
        })
    }
}

/// A response body that keeps its request counted as in progress (and unlogged) until hyper has
/// sent it or dropped it.
struct TrackedBody {
    body: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One request in progress: ends it (and logs it) when dropped.
struct RequestGuard {
    phase: Arc<PhaseWatch>,
    /// Only gathered when `debug` logging is on.
    log: Option<RequestLog>,
}

/// What the request log line says.
struct RequestLog {
    method: Method,
    path: String,
    access_key: Option<String>,
    started: Instant,
    status: Option<StatusCode>,
    request_id: Option<String>,
}

impl RequestGuard {
    fn start(phase: Arc<PhaseWatch>, request: &Request<Incoming>) -> Self {
        phase.request_started();
        let log = tracing::enabled!(tracing::Level::DEBUG).then(|| RequestLog {
            method: request.method().clone(),
            path: logged_path(request.uri().path()),
            access_key: access_key_id(request.headers(), request.uri().query()),
            started: Instant::now(),
            status: None,
            request_id: None,
        });
        Self { phase, log }
    }

    fn responded(&mut self, response: &Response<Body>) {
        if let Some(log) = &mut self.log {
            log.status = Some(response.status());
            log.request_id = request_id(response.headers());
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.phase.request_finished();
        let Some(log) = self.log.take() else { return };
        let elapsed = log.started.elapsed();
        let access_key = log.access_key.as_deref().unwrap_or("-");
        let request_id = log.request_id.as_deref().unwrap_or("-");
        match log.status {
            Some(status) => tracing::debug!(
                method = %log.method,
                path = %log.path,
                status = status.as_u16(),
                elapsed = ?elapsed,
                request_id,
                access_key,
                "request"
            ),
            None => tracing::debug!(
                method = %log.method,
                path = %log.path,
                elapsed = ?elapsed,
                access_key,
                "request abandoned before its response"
            ),
        }
    }
}

/// The path for the log, cut at [`MAX_LOGGED_PATH`] bytes (on a character boundary).
fn logged_path(path: &str) -> String {
    if path.len() <= MAX_LOGGED_PATH {
        return path.to_owned();
    }
    let mut end = MAX_LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &path[..end])
}

/// The first request id header of the response, if its value is printable.
fn request_id(headers: &HeaderMap) -> Option<String> {
    REQUEST_ID_HEADERS.iter().find_map(|name| headers.get(*name)?.to_str().ok().map(str::to_owned))
}

/// The access key id a request names, from its `Authorization` header (`... Credential=AK/...`,
/// `AWS AK:sig`, `OBS AK:sig`, `SDK-HMAC-SHA256 Access=AK, ...`) or its query (`X-Amz-Credential`,
/// `AWSAccessKeyId`, `AccessKeyId`). Only the key id, never the signature; `None` when absent or
/// not shaped like a key id.
fn access_key_id(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let from_header = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|auth| {
        let auth = auth.trim();
        if let Some((_, rest)) = auth.split_once("Credential=") {
            Some(rest.split(['/', ',']).next().unwrap_or(""))
        } else if let Some(rest) = auth.strip_prefix("AWS ").or_else(|| auth.strip_prefix("OBS ")) {
            rest.split_once(':').map(|(ak, _)| ak)
        } else if let Some((_, rest)) = auth.split_once("Access=") {
            Some(rest.split(',').next().unwrap_or(""))
        } else {
            None
        }
    });
    let found = match from_header {
        Some(ak) => ak.trim().to_owned(),
        None => query?.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = percent_encoding::percent_decode_str(value).decode_utf8().ok()?;
            match name {
                "X-Amz-Credential" => value.split('/').next().map(str::to_owned),
                "AWSAccessKeyId" | "AccessKeyId" => Some(value.into_owned()),
                _ => None,
            }
        })?,
    };
    let plausible = !found.is_empty()
        && found.len() <= MAX_LOGGED_ACCESS_KEY
        && found.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plausible.then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", value.parse().unwrap());
        headers
    }

    #[test]
    fn access_key_from_each_authorization_form() {
        let cases = [
            (
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=abcdef",
                Some("AKIDEXAMPLE"),
            ),
            ("SDK-HMAC-SHA256 Access=HUAWEIAK, SignedHeaders=host, Signature=00ff", Some("HUAWEIAK")),
            (
                "SDK-HMAC-SHA256 Credential=HUAWEIAK/20240101/eu-de/kms/sdk_request, SignedHeaders=host, Signature=0",
                Some("HUAWEIAK"),
            ),
            ("AWS test:c2lnbmF0dXJl", Some("test")),
            ("OBS obsak:c2lnbmF0dXJl", Some("obsak")),
            ("Basic dXNlcjpwYXNz", None),
            ("AWS nocolon", None),
            ("AWS4-HMAC-SHA256 Credential=/20240101/us-east-1/s3/aws4_request", None),
            ("AWS ev il:sig", None),
        ];
        for (value, expected) in cases {
            assert_eq!(access_key_id(&auth(value), None).as_deref(), expected, "{value}");
        }
    }

    #[test]
    fn access_key_from_presigned_query_without_the_signature() {
        let empty = HeaderMap::new();
        let cases = [
            (
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request\
                 &X-Amz-Signature=deadbeef",
                Some("AKID"),
            ),
            ("AWSAccessKeyId=V2KEY&Expires=1&Signature=c2ln", Some("V2KEY")),
            ("AccessKeyId=OBSKEY&Expires=1&Signature=c2ln", Some("OBSKEY")),
            ("Signature=c2ln&list-type=2", None),
            ("AccessKeyId=%ZZ", None),
        ];
        for (query, expected) in cases {
            assert_eq!(access_key_id(&empty, Some(query)).as_deref(), expected, "{query}");
        }
        assert_eq!(access_key_id(&empty, None), None);
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        assert_eq!(logged_path("/bucket/key"), "/bucket/key");
        let long = format!("/{}", "é".repeat(MAX_LOGGED_PATH));
        let cut = logged_path(&long);
        assert!(cut.len() <= MAX_LOGGED_PATH + 3 && cut.ends_with("..."));
    }

    #[test]
    fn limits_are_raised_to_what_the_server_can_use() {
        let limits = ServerLimits { max_connections: 0, max_header_bytes: 10, ..ServerLimits::default() }.normalized();
        assert_eq!(limits.max_connections, 1);
        assert_eq!(limits.max_header_bytes, MIN_HEADER_BYTES);
        assert_eq!(ServerLimits::default().normalized(), ServerLimits::default());
        assert_eq!(ServerLimits { threads: 100_000, ..ServerLimits::default() }.normalized().threads, MAX_THREADS);
        assert_eq!(ServerLimits { threads: 3, ..ServerLimits::default() }.normalized().threads, 3);
        assert_eq!(ServerLimits::default().within_descriptors(256).max_connections, 128);
        assert_eq!(ServerLimits::default().within_descriptors(1 << 20).max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(ServerLimits::default().within_descriptors(1).max_connections, 1);
        assert!(descriptor_limit().is_some_and(|n| n > 0), "Linux reports a descriptor limit");
    }

    #[test]
    fn only_connections_idle_or_reading_a_head_for_a_while_are_evicted() {
        let watch = PhaseWatch::new();
        let created = Instant::now();
        let later = created + EVICTABLE_AGE + Duration::from_millis(10);
        assert_eq!(watch.eviction_rank(created), None, "a client just accepted is not evicted");
        assert!(!watch.evict(created));
        assert!(matches!(watch.eviction_rank(later), Some((0, _))), "an idle connection ranks first");
        watch.bytes_read();
        assert!(matches!(watch.eviction_rank(later), Some((1, _))), "then a slow head");
        watch.request_started();
        assert_eq!(watch.eviction_rank(later), None, "never one answering a request");
        assert!(!watch.evict(later));
        watch.request_finished();
        assert!(watch.evict(later));
        assert!(matches!(watch.deadline(&ServerLimits::default()), Some((_, Expiry::Evicted))));
        // A head that was already buffered wins the race: the request is served.
        watch.request_started();
        assert!(watch.deadline(&ServerLimits::default()).is_none());
    }

    #[test]
    fn the_registry_evicts_the_longest_idle_connection_first() {
        let registry = Arc::new(Registry::default());
        let slow_head = Arc::new(PhaseWatch::new());
        slow_head.bytes_read();
        let idle = Arc::new(PhaseWatch::new());
        let slow_entry = registry.register(slow_head.clone());
        let _idle_entry = registry.register(idle.clone());
        // Neither has been idle or pending for EVICTABLE_AGE yet.
        assert!(!registry.evict_one());
        *idle.phase.lock().unwrap() = Phase::Idle(Instant::now() - EVICTABLE_AGE);
        *slow_head.phase.lock().unwrap() = Phase::Head(Instant::now() - 2 * EVICTABLE_AGE);
        assert!(registry.evict_one());
        assert!(matches!(*idle.phase.lock().unwrap(), Phase::Evicted));
        assert!(matches!(*slow_head.phase.lock().unwrap(), Phase::Head(_)));
        assert!(registry.evict_one());
        assert!(matches!(*slow_head.phase.lock().unwrap(), Phase::Evicted));
        drop(slow_entry);
        assert_eq!(registry.connections.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_reaper_closes_connections_past_their_deadline_and_drain_reaches_all() {
        let limits = ServerLimits { idle_timeout: Duration::from_secs(8), ..ServerLimits::default() };
        let registry = Arc::new(Registry::default());
        let now = Instant::now();
        let expired = Arc::new(PhaseWatch::new());
        *expired.phase.lock().unwrap() = Phase::Idle(now - limits.idle_timeout);
        let fresh = Arc::new(PhaseWatch::new());
        *fresh.phase.lock().unwrap() = Phase::Idle(now);
        let busy = Arc::new(PhaseWatch::new());
        busy.request_started();
        let _entries = [&expired, &fresh, &busy].map(|phase| registry.register((*phase).clone()));
        let next = registry.expire(now, &limits);
        assert_eq!(expired.signal(false), Some(Signal::Close(Expiry::Idle)));
        assert_eq!((fresh.signal(false), busy.signal(false)), (None, None));
        assert_eq!(next, now + check_period(&limits), "the check period comes before the fresh deadline");
        *fresh.phase.lock().unwrap() = Phase::Idle(now - Duration::from_secs(7));
        assert_eq!(registry.expire(now, &limits), now + Duration::from_secs(1), "a deadline nearer than the period");
        registry.drain_all();
        assert_eq!((fresh.signal(false), busy.signal(false)), (Some(Signal::Drain), Some(Signal::Drain)));
        assert_eq!(busy.signal(true), None, "a draining connection is not told twice");
    }

    #[tokio::test]
    async fn phases_set_the_deadline() {
        let limits = ServerLimits {
            header_read_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(7),
            ..ServerLimits::default()
        };
        let watch = PhaseWatch::new();
        assert!(matches!(watch.deadline(&limits), Some((_, Expiry::Idle))));
        watch.bytes_read();
        let (head_deadline, why) = watch.deadline(&limits).unwrap();
        assert!(matches!(why, Expiry::Head));
        watch.bytes_read(); // more bytes of the same head do not extend it
        assert_eq!(watch.deadline(&limits).unwrap().0, head_deadline);
        watch.request_started();
        assert!(watch.deadline(&limits).is_none());
        watch.bytes_read(); // the body
        assert!(watch.deadline(&limits).is_none());
        watch.request_finished();
        assert!(matches!(watch.deadline(&limits), Some((_, Expiry::Idle))));
    }

    /// An idle keep-alive connection costs its task's future and hyper's 8 KiB read buffer: the future of a plain
    /// connection stays small (a TLS session's state is boxed, not in every connection's task).
    #[tokio::test]
    async fn a_plain_connection_task_is_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let stream = Socket::Registered(stream);
        let phase = Arc::new(PhaseWatch::new());
        let connection = Connection {
            stream,
            peer,
            router: Router::new(),
            builder: Arc::new(http1::Builder::new()),
            tls: None,
            handshake_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            head_limit: DEFAULT_MAX_HEADER_BYTES,
            registered: Arc::new(Registry::default()).register(phase.clone()),
            phase,
        };
        let task = connection.run();
        assert!(std::mem::size_of_val(&task) <= 2048, "{} bytes", std::mem::size_of_val(&task));
    }

    /// Sends `GET /` on `stream` and returns the answer's body (the handlers below answer a few bytes, no chunks).
    async fn get(stream: &mut TcpStream) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
        let mut data = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            data.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&data);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.parse().ok())
                    .expect("a content-length");
                if body.len() >= length {
                    return body[..length].to_owned();
                }
            }
        }
    }

    /// Each connection is served on one of the connection threads, in turn, every request of it on the same one.
    #[tokio::test]
    async fn connections_are_served_on_their_own_threads_in_turn() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/", axum::routing::get(|| async { std::thread::current().name().unwrap_or("unnamed").to_owned() }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = ServerLimits { threads: 2, ..ServerLimits::default() };
        let server = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        let mut seen = Vec::new();
        for _ in 0..4 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let first = get(&mut stream).await;
            for _ in 0..3 {
                assert_eq!(get(&mut stream).await, first, "a connection stays on its thread");
            }
            seen.push(first);
        }
        assert_eq!(seen, ["kmsim-edge-0", "kmsim-edge-1", "kmsim-edge-0", "kmsim-edge-1"]);
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    /// When `serve` returns, the connection threads have ended with whatever their connections left running there, so
    /// nothing the router holds (the services, and through them the key store's file lock) outlives the server.
    #[tokio::test]
    async fn nothing_started_by_a_connection_outlives_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(());
        let router = Router::new().route(
            "/",
            axum::routing::get({
                let held = held.clone();
                move || async move {
                    // A task on the connection's thread that never ends by itself.
                    tokio::spawn(async move {
                        let _held = held;
                        std::future::pending::<()>().await;
                    });
                    "started"
                }
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = ServerLimits { threads: 2, ..ServerLimits::default() };
        let server = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        assert_eq!(get(&mut stream).await, "started");
        drop(stream);
        assert!(Arc::strong_count(&held) > 1, "the router and the task hold it while serving");
        stop.send(()).unwrap();
        server.await.unwrap();
        assert_eq!(Arc::strong_count(&held), 1, "the task ended with its thread, the router with the server");
    }
}
