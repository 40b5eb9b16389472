//! The `Stack` as a library: it runs under either runtime flavour, a reset leaves every service
//! empty and consistent, and a shutdown lets the next stack open the same data dir at once.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use kmsim::Stack;

use crate::common;

/// Creates a key, a bucket and an SSE-KMS object under the account's default `aws/s3` key (a
/// service-managed key the store creates on first use), and reads the object back.
async fn envelope_round_trip(stack: &Stack) {
    let kms = common::kms_client(stack);
    let key = kms.create_key().send().await.unwrap().key_metadata().unwrap().key_id().to_owned();
    kms.create_alias().alias_name("alias/lifecycle").target_key_id(&key).send().await.unwrap();
    let s3 = common::s3_client(stack);
    s3.create_bucket().bucket("lifecycle").send().await.unwrap();
    for (name, key_id) in [("own-key", Some(key.as_str())), ("default-key", None)] {
        s3.put_object()
            .bucket("lifecycle")
            .key(name)
            .body(ByteStream::from_static(b"envelope"))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(key_id.map(str::to_owned))
            .send()
            .await
            .unwrap();
        let got = s3.get_object().bucket("lifecycle").key(name).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"envelope");
    }
}

/// `#[tokio::test]` is a current-thread runtime: nothing may call `block_in_place`.
#[tokio::test]
async fn a_stack_runs_on_a_current_thread_runtime() {
    let stack = common::stack().await;
    envelope_round_trip(&stack).await;
    stack.shutdown().await;

    let dir = common::private_dir();
    let stack = Stack::builder().data_dir(dir.path()).start().await.unwrap();
    envelope_round_trip(&stack).await;
    stack.shutdown().await;
    let again = Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let s3 = common::s3_client(&again);
    let got = s3.get_object().bucket("lifecycle").key("own-key").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"envelope");
    again.shutdown().await;
}

/// With connection threads of their own (`[server] threads`), the services work as on the runtime's workers, and a
/// shutdown still lets the next stack open the same data dir at once: nothing the threads ran holds the key store.
#[tokio::test(flavor = "multi_thread")]
async fn a_stack_serves_on_connection_threads_and_hands_its_data_dir_on() {
    let limits = kmsim::serve::ServerLimits { threads: 2, ..Default::default() };
    let dir = common::private_dir();
    let stack = Stack::builder().data_dir(dir.path()).limits(limits.clone()).start().await.unwrap();
    envelope_round_trip(&stack).await;
    stack.shutdown().await;
    let again = Stack::builder().data_dir(dir.path()).limits(limits).start().await.unwrap();
    let s3 = common::s3_client(&again);
    for name in ["own-key", "default-key"] {
        let got = s3.get_object().bucket("lifecycle").key(name).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"envelope");
    }
    again.shutdown().await;
}

/// A stack started from a state archive (`StackBuilder::state`, `kmsim --state`) serves the archived keys and
/// objects from its first call, and a wrong passphrase stops the start with the archive's name in the error.
#[tokio::test(flavor = "multi_thread")]
async fn a_stack_starts_from_a_state_archive() {
    use kmsim::state::archive::Passphrase;
    let dir = common::private_dir();
    let data = dir.path().join("data");
    let stack = Stack::builder().data_dir(&data).start().await.unwrap();
    envelope_round_trip(&stack).await;
    stack.shutdown().await;
    let archive = dir.path().join("fixture.kmsim");
    let passphrase = Passphrase::new(b"a passphrase for the fixture").unwrap();
    kmsim::state::cli::export(kmsim::state::cli::StateCommand {
        file: archive.clone(),
        data_dir: data,
        config: kmsim::config::Config::default(),
        passphrase: passphrase.clone(),
    })
    .await
    .unwrap();

    let started = Stack::builder().state(&archive, passphrase).start().await.unwrap();
    let imported = started.imported().expect("the archive's summary");
    assert!(imported.keys >= 2, "the customer key and aws/s3: {imported:?}");
    assert_eq!(imported.objects, 2);
    let s3 = common::s3_client(&started);
    for name in ["own-key", "default-key"] {
        let got = s3.get_object().bucket("lifecycle").key(name).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"envelope");
    }
    let alias = common::kms_client(&started).describe_key().key_id("alias/lifecycle").send().await.unwrap();
    assert!(alias.key_metadata().is_some());
    started.shutdown().await;

    let wrong = Passphrase::new(b"not the passphrase").unwrap();
    let Err(error) = Stack::builder().state(&archive, wrong).start().await else {
        panic!("a wrong passphrase is refused")
    };
    let text = error.to_string();
    assert!(text.contains("fixture.kmsim") && text.contains("passphrase"), "{text}");
}

/// `RUST_LOG` works like `--log`; at `debug` each request is one line with its method, path,
/// status, request id and access key id, and never a signature or a query string.
#[tokio::test(flavor = "multi_thread")]
async fn rust_log_debug_logs_one_line_per_request_without_secrets() {
    use std::io::BufRead;
    let dir = common::private_dir();
    let log = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kmsim"))
        .args(["--port", "0", "--in-memory"])
        .env("RUST_LOG", "kmsim=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    let endpoint = line["endpoint"].as_str().unwrap();
    common::kms_client_at(endpoint).create_key().send().await.unwrap();
    let s3 = common::s3_client_at(endpoint);
    s3.create_bucket().bucket("logged").send().await.unwrap();
    let presigned = s3
        .get_object()
        .bucket("logged")
        .key("missing")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let signature = presigned.uri().split("X-Amz-Signature=").nth(1).unwrap().to_owned();
    let status = http_get_status(presigned.uri());
    assert_eq!(status, 404);
    let rc = std::process::Command::new("kill").arg(child.id().to_string()).status().unwrap();
    assert!(rc.success());
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let requests: Vec<&str> = text.lines().filter(|l| l.contains("DEBUG") && l.contains("status")).collect();
    assert!(requests.iter().any(|l| l.contains("POST") && l.contains("200") && l.contains("test")), "{text}");
    assert!(requests.iter().any(|l| l.contains("/logged/missing") && l.contains("404")), "{text}");
    assert!(!text.contains(&signature) && !text.contains("X-Amz-Signature"), "a signature was logged: {text}");
}

/// A plain GET of `url` (`http://host:port/path?query`) over a fresh connection; its status.
fn http_get_status(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, target) = rest.split_once('/').unwrap();
    let addr: std::net::SocketAddr = host.parse().unwrap();
    let head = vec![("host".to_owned(), host.to_owned())];
    common::raw_request_to(addr, "GET", &format!("/{target}"), &head, b"").status
}
