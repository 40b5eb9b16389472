//! Races on one key or one bucket: GETs racing overwrites and DELETEs of the same key answer the
//! old object, the new one or 404, never an error (durable SSE-KMS and in-memory plain objects).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

/// How long writers and readers race (what the issue that found the race asked for).
const RACE_DURATION: Duration = Duration::from_secs(10);

/// An `aws-sdk-s3` client for `stack` without retries: a 500 must show, not be retried away.
fn client(stack: &kmsim::Stack) -> aws_sdk_s3::Client {
    let (ak, sk) = stack.credentials();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(stack.endpoint())
        .region(aws_sdk_s3::config::Region::new(stack.region().to_owned()))
        .credentials_provider(aws_credential_types::Credentials::new(ak, sk, None, None, "kmsim-tests"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The payload of writer `w`: distinct bytes per writer, over two frames of an encrypted body.
fn payload(w: usize) -> Vec<u8> {
    (0..100_000usize).map(|i| (i.wrapping_mul(31) ^ (w * 97)) as u8).collect()
}

/// Writes writer `w`'s payload to `race`/`k`.
async fn put(s3: &aws_sdk_s3::Client, w: usize, sse: Option<ServerSideEncryption>) {
    s3.put_object()
        .bucket("race")
        .key("k")
        .set_server_side_encryption(sse)
        .body(ByteStream::from(payload(w)))
        .send()
        .await
        .expect("PUT");
}

/// Four writers overwrite (and now and then delete) one key while four readers read it for
/// [`RACE_DURATION`]: every read is 200 with one writer's exact bytes, or 404.
async fn overwrite_race(stack: &kmsim::Stack, sse: Option<ServerSideEncryption>) {
    let s3 = client(stack);
    s3.create_bucket().bucket("race").send().await.unwrap();
    put(&s3, 0, sse.clone()).await;
    let payloads: Arc<Vec<Vec<u8>>> = Arc::new((0..4).map(payload).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, found, missing) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (s3, stop, sse) = (s3.clone(), stop.clone(), sse.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if w == 3 && n % 4 == 3 {
                    s3.delete_object().bucket("race").key("k").send().await.expect("DELETE");
                } else {
                    put(&s3, w, sse.clone()).await;
                }
                n += 1;
            }
        }));
    }
    for _ in 0..4 {
        let (s3, stop, payloads) = (s3.clone(), stop.clone(), payloads.clone());
        let (reads, found, missing) = (reads.clone(), found.clone(), missing.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                reads.fetch_add(1, Ordering::Relaxed);
                match s3.get_object().bucket("race").key("k").send().await {
                    Ok(out) => {
                        let bytes = out.body.collect().await.expect("a whole body").into_bytes();
                        assert!(
                            payloads.iter().any(|p| p[..] == bytes[..]),
                            "a body of {} bytes that no writer wrote",
                            bytes.len()
                        );
                        found.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let status = e.raw_response().map(|r| r.status().as_u16());
                        assert_eq!(status, Some(404), "a GET racing writes failed: {e:?}");
                        missing.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    while started.elapsed() < RACE_DURATION && !tasks.iter().any(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("no task failed");
    }
    let (reads, found) = (reads.load(Ordering::Relaxed), found.load(Ordering::Relaxed));
    assert!(found > 10, "{found} of {reads} reads found the object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_racing_overwrites_of_a_durable_sse_kms_object_never_fail() {
    let dir = crate::common::private_dir();
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    overwrite_race(&stack, Some(ServerSideEncryption::AwsKms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_racing_overwrites_of_an_in_memory_plain_object_never_fail() {
    let stack = kmsim::Stack::builder().start().await.unwrap();
    overwrite_race(&stack, None).await;
}
