//! The floor under kmsim's edge: an HTTP/1.1 server on the same transport as kmsim (tokio's multi-thread runtime
//! with its default workers, hyper's HTTP/1.1 server, keep-alive) that reads each request's body and answers a
//! constant GenerateDataKey-sized JSON body, doing nothing else (a `harness = false` bench target).
//!
//! `edge_floor [--port P] [--work-us N] [--connection-threads N]` prints `{"endpoint": "http://127.0.0.1:PORT"}` on stdout and serves until killed.
//! `scripts/bench-wrk` drives it with the same `wrk` script as kmsim, so its server CPU per call is what the kernel
//! (loopback TCP, epoll, wake-ups of the client's threads) and hyper cost per call on this machine: the part of
//! kmsim's CPU per call that no change in kmsim's own code can remove. Unknown flags (cargo passes `--bench`) are
//! ignored.
//!
//! `--work-us N` spins for N µs of CPU on each request before answering: a server with the transport's cost plus
//! a given amount of its own work, to see what that work alone does to the latency at a constant rate.
//! `--connection-threads N` hands each connection, in turn, to one of N current-thread runtimes on threads of their
//! own, as kmsim does with `[server] threads = N`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// An answer the size and shape of kmsim's GenerateDataKey answer (about 330 bytes of JSON).
const ANSWER: &str = concat!(
    r#"{"CiphertextBlob":"ASQ1NTBjODQyNy03NmVhLTQyYTQtOTlmMC1iZGQ4YWMyYTA0ODAAAAAAsHTve4Qb+XQvjCV5rS0QM+Tt"#,
    r#"/YskTN8NLvxSkJR2EvVWlKCtp30ZXAH/KBNns4LWHk3m5jju1ji0PZkzUx+oAw==","#,
    r#""Plaintext":"xU4Pqr0MGENPQ0or9YWq14/cf1ckS3xKDxg/3dsknZ0=","#,
    r#""KeyId":"arn:aws:kms:us-east-1:000000000000:key/550c8427-76ea-42a4-99f0-bdd8ac2a0480"}"#
);

async fn answer(request: Request<Incoming>, work: Duration) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole body, as kmsim does before it can verify the signature.
    let _ = request.into_body().collect().await;
    if !work.is_zero() {
        let start = Instant::now();
        while start.elapsed() < work {
            std::hint::spin_loop();
        }
    }
    let mut response = Response::new(Full::new(Bytes::from_static(ANSWER.as_bytes())));
    let headers = response.headers_mut();
    headers.insert("content-type", "application/x-amz-json-1.1".parse().expect("a header value"));
    headers.insert("x-amzn-requestid", "3f0c3a52-9a8c-4b6e-8a3c-1f2e3d4c5b6a".parse().expect("a header value"));
    Ok(response)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .map_or(0, |p| p.parse().expect("--port takes a number"));
    let work = Duration::from_micros(
        args.iter()
            .position(|a| a == "--work-us")
            .and_then(|i| args.get(i + 1))
            .map_or(0, |n| n.parse().expect("--work-us takes a number")),
    );
    let threads: Vec<tokio::runtime::Handle> = (0..args
        .iter()
        .position(|a| a == "--connection-threads")
        .and_then(|i| args.get(i + 1))
        .map_or(0, |n| n.parse().expect("--connection-threads takes a number")))
        .map(|_| connection_thread())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("a listener");
        println!("{{\"endpoint\":\"http://{}\"}}", listener.local_addr().expect("an address"));
        for turn in 0.. {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let serve = move |stream: TcpStream| async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(move |r| answer(r, work)))
                    .await;
            };
            if threads.is_empty() {
                tokio::spawn(serve(stream));
                continue;
            }
            let Ok(stream) = stream.into_std() else { continue };
            threads[turn % threads.len()].spawn(async move {
                if let Ok(stream) = TcpStream::from_std(stream) {
                    serve(stream).await;
                }
            });
        }
    });
}

/// A current-thread runtime on a thread of its own, running until the process ends.
fn connection_thread() -> tokio::runtime::Handle {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let handle = runtime.handle().clone();
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    handle
}
