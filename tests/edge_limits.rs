//! The edge listener's limits over raw sockets: header and idle timeouts, the connection cap
//! (and idle connections evicted at it), oversize request heads, and a shutdown bounded by its
//! grace period.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use kmsim::Stack;
use kmsim::serve::ServerLimits;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// How long a test waits for something that must happen; far above every limit it configures.
const OUTER: Duration = Duration::from_secs(10);
/// The short limit under test; the others are set far above `OUTER`.
const SHORT: Duration = Duration::from_secs(1);
/// Some slack on timer firing when asserting a limit was not cut short.
const SLACK: Duration = Duration::from_millis(100);

const HEALTH: &[u8] = b"GET /_sim/health HTTP/1.1\r\nhost: localhost\r\n\r\n";

/// Limits whose timeouts cannot fire during a test, to be overridden one at a time.
fn relaxed() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
        ..ServerLimits::default()
    }
}

async fn stack_with(limits: ServerLimits) -> Stack {
    Stack::builder().limits(limits).start().await.expect("stack starts")
}

/// Reads one response (head and `content-length` body) and returns its status and head.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<(u16, String)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut have = data.len() - head_end;
    while have < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok((status, head))
}

/// A fresh connection that has had one health request answered and stays open (keep-alive).
async fn served_connection(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(HEALTH).await.expect("write");
    let (status, _) = timeout(OUTER, read_response(&mut stream)).await.expect("answered").expect("a response");
    assert_eq!(status, 200);
    stream
}

/// The status of a health request on a fresh connection.
async fn health(addr: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(HEALTH).await.expect("write");
    timeout(OUTER, read_response(&mut stream)).await.expect("answered in time").expect("a response").0
}

/// Everything the server sends until it closes the connection (EOF or reset); panics if it has
/// not closed it within `OUTER`.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let read = async {
        let mut data = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return data,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
            }
        }
    };
    timeout(OUTER, read).await.expect("the server closes the connection")
}

/// Sends a KMS request head announcing a 2-byte body with `expect: 100-continue` and waits for
/// the `100 Continue`, which hyper sends once the handler reads the body: the request is then
/// in flight, its handler waiting for the body.
async fn request_in_flight(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = "POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-target: TrentService.ListKeys\r\n\
                content-type: application/x-amz-json-1.1\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    let (status, _) = timeout(OUTER, read_response(&mut stream)).await.expect("100 in time").expect("a response");
    assert_eq!(status, 100);
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_request_head_is_closed_after_the_header_timeout_while_others_are_served() {
    let stack = stack_with(ServerLimits { header_read_timeout: SHORT, ..relaxed() }).await;
    let addr = stack.addr();
    let (mut reader, mut writer) = TcpStream::connect(addr).await.expect("connect").into_split();
    let started = Instant::now();
    // The client's pace, not synchronisation: one header byte every 50 ms, until refused.
    let trickle = tokio::spawn(async move {
        writer.write_all(b"GET /_sim/health HTTP/1.1\r\nhost: localhost\r\nx-slow: ").await?;
        loop {
            writer.write_all(b"a").await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), io::Error>(())
    });
    assert_eq!(health(addr).await, 200, "another client is served meanwhile");
    let answer = read_until_closed(&mut reader).await;
    assert!(started.elapsed() >= SHORT - SLACK, "closed after {:?}", started.elapsed());
    assert!(answer.is_empty(), "no answer to a head that never completed: {}", String::from_utf8_lossy(&answer));
    trickle.abort();
    assert_eq!(health(addr).await, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let stack = stack_with(ServerLimits { idle_timeout: SHORT, ..relaxed() }).await;
    let addr = stack.addr();
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let mut kept_alive = served_connection(addr).await;
    let answered = Instant::now();
    assert!(read_until_closed(&mut kept_alive).await.is_empty());
    assert!(answered.elapsed() >= SHORT - SLACK, "closed after {:?}", answered.elapsed());
    // A connection that never sent a byte is idle too.
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert_eq!(health(addr).await, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_connections_a_client_waits_until_a_connection_closes() {
    let stack = stack_with(ServerLimits { max_connections: 2, ..relaxed() }).await;
    let addr = stack.addr();
    // Two connections answering requests (their handlers wait for the body): none can be evicted.
    let mut first = request_in_flight(addr).await;
    let second = request_in_flight(addr).await;
    // The kernel completes the third handshake (the listen backlog), but the server does not
    // accept it while two connections are open.
    let mut third = TcpStream::connect(addr).await.expect("connect");
    third.write_all(HEALTH).await.expect("write");
    assert!(
        timeout(Duration::from_millis(500), read_response(&mut third)).await.is_err(),
        "the third connection is not served while two are busy"
    );
    // The first request ends and its client leaves.
    first.write_all(b"{}").await.expect("write the body");
    timeout(OUTER, read_response(&mut first)).await.expect("answered").expect("a response");
    drop(first);
    let (status, _) = timeout(OUTER, read_response(&mut third)).await.expect("served once one closed").expect("ok");
    assert_eq!(status, 200);
    drop(second); // its request would otherwise hold the shutdown for the grace period
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_max_connections_the_longest_idle_connection_makes_room() {
    let stack = stack_with(ServerLimits { max_connections: 2, ..relaxed() }).await;
    let addr = stack.addr();
    let mut older = served_connection(addr).await;
    let mut newer = served_connection(addr).await;
    let (status, _) = timeout(OUTER, async {
        let mut third = TcpStream::connect(addr).await?;
        third.write_all(HEALTH).await?;
        read_response(&mut third).await
    })
    .await
    .expect("a new client is served at the cap")
    .expect("a response");
    assert_eq!(status, 200);
    assert!(read_until_closed(&mut older).await.is_empty(), "the longest-idle connection was closed");
    // The newer one is still open and served.
    newer.write_all(HEALTH).await.expect("write");
    let (status, _) = timeout(OUTER, read_response(&mut newer)).await.expect("answered").expect("a response");
    assert_eq!(status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_max_connections_a_slow_request_head_makes_room() {
    let stack = stack_with(ServerLimits { max_connections: 1, ..relaxed() }).await;
    let addr = stack.addr();
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /_sim/health HTTP/1.1\r\nhost: localhost\r\nx-slow: a").await.expect("write");
    // Served once the slow head has been pending for a second, long before the header timeout.
    let started = Instant::now();
    assert_eq!(health(addr).await, 200);
    assert!(started.elapsed() < OUTER);
    assert!(read_until_closed(&mut slow).await.is_empty(), "the slow head's connection was closed");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_request_head_is_refused_not_buffered() {
    let stack = stack_with(ServerLimits { max_header_bytes: 16 * 1024, ..relaxed() }).await;
    let addr = stack.addr();
    // 200 KiB of header: within hyper's default buffer (about 400 KiB), beyond the limit.
    let (mut reader, mut writer) = TcpStream::connect(addr).await.expect("connect").into_split();
    // The write half stays open (a half-closed client would make hyper drop the request).
    let big = tokio::spawn(async move {
        writer.write_all(b"GET /_sim/health HTTP/1.1\r\nhost: localhost\r\nx-big: ").await?;
        writer.write_all(&vec![b'a'; 200 * 1024]).await?;
        writer.write_all(b"\r\n\r\n").await?;
        Ok::<_, io::Error>(writer)
    });
    let answer = String::from_utf8_lossy(&read_until_closed(&mut reader).await).into_owned();
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431 "), "refused: {answer}");
    let _ = big.await;
    // 64 MiB of header: the server stops reading and closes long before the client could send it all.
    let (_reader, mut writer) = TcpStream::connect(addr).await.expect("connect").into_split();
    let sent = timeout(OUTER, async {
        writer.write_all(b"GET /_sim/health HTTP/1.1\r\nhost: localhost\r\nx-big: ").await?;
        writer.write_all(&vec![b'a'; 64 << 20]).await
    })
    .await
    .expect("the write fails or ends in time");
    assert!(sent.is_err(), "the server closed the connection before taking 64 MiB of head");
    assert_eq!(health(addr).await, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_a_request_in_flight_and_closes_idle_connections() {
    let stack = stack_with(relaxed()).await;
    let addr = stack.addr();
    let mut idle = served_connection(addr).await;
    let mut busy = request_in_flight(addr).await;
    let shutdown = tokio::spawn(stack.shutdown());
    assert!(read_until_closed(&mut idle).await.is_empty(), "the idle connection is closed at once");
    busy.write_all(b"{}").await.expect("write the body");
    let (status, head) = timeout(OUTER, read_response(&mut busy)).await.expect("answered").expect("a response");
    assert!((400..500).contains(&status), "the unsigned request gets its answer: {head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    timeout(OUTER, shutdown).await.expect("shutdown returns").expect("no panic");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_a_stalled_request_after_the_grace_period() {
    let stack = stack_with(ServerLimits { shutdown_grace: SHORT, ..relaxed() }).await;
    let mut stalled = request_in_flight(stack.addr()).await;
    let started = Instant::now();
    timeout(OUTER, stack.shutdown()).await.expect("shutdown returns after the grace period");
    assert!(started.elapsed() >= SHORT - SLACK, "waited {:?} for the request", started.elapsed());
    assert!(read_until_closed(&mut stalled).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_head_limit_applies_to_each_request_not_to_a_connection() {
    let limits = ServerLimits { max_header_bytes: kmsim::serve::MIN_HEADER_BYTES, ..relaxed() };
    let stack = stack_with(limits).await;
    let mut stream = TcpStream::connect(stack.addr()).await.expect("connect");
    // Forty heads of about 2 KiB each: ten times the limit over the connection's life.
    let padding = "p".repeat(2000);
    for n in 0..40 {
        let head = format!("GET /_sim/health HTTP/1.1\r\nhost: localhost\r\nx-padding: {padding}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let (status, _) = timeout(OUTER, read_response(&mut stream))
            .await
            .expect("answered in time")
            .unwrap_or_else(|e| panic!("request {n} on the connection got no response: {e}"));
        assert_eq!(status, 200, "request {n}");
    }
    stack.shutdown().await;
}
