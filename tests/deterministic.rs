//! Deterministic runs (`--deterministic SEED`): the same scripted calls against two fresh stacks of one seed get
//! byte-identical responses (head and body, but for the wall-clock `Date` header: resources carry the frozen
//! simulated clock's times), another seed gets other ones, a reset replays the same answers, and a data dir made
//! without the seed is refused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{RawResponse, evs_raw as evs, kms_raw, private_dir, raw_request_to, s3_signed_headers};

const PROJECT: &str = "00000000000000000000000000000000";

/// The one response header that is not the simulated clock's: `Date`, the wall-clock time of the answer (SDKs
/// correct their clock skew by it; docs/testing.md, "Deterministic runs").
const WALL_CLOCK_HEADER: &str = "date";

/// One response as compared: status line, headers but `Date`, and body, byte for byte.
fn normalized(response: &RawResponse) -> String {
    let head: Vec<&str> = response
        .head
        .lines()
        .filter(|line| !line.split(':').next().unwrap_or_default().eq_ignore_ascii_case(WALL_CLOCK_HEADER))
        .collect();
    format!("{}\n\n{}", head.join("\n"), response.body)
}

/// Records the script's responses.
struct Transcript {
    addr: SocketAddr,
    responses: Vec<String>,
}

impl Transcript {
    fn keep(&mut self, what: &str, response: RawResponse) -> Value {
        assert!((200..300).contains(&response.status), "{what}: {} {}", response.status, response.body);
        self.responses.push(format!("== {what}\n{}", normalized(&response)));
        serde_json::from_str(&response.body).unwrap_or(Value::Null)
    }

    fn kms(&mut self, target: &str, body: Value) -> Value {
        let response = kms_raw(self.addr, target, body.to_string().as_bytes(), "test", "test");
        self.keep(target, response)
    }

    fn s3(&mut self, method: &str, path: &str, query: &str, extra: &[(&str, &str)], body: &[u8]) -> RawResponse {
        let headers = s3_signed_headers(self.addr, method, path, query, extra, "UNSIGNED-PAYLOAD");
        let head: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
        let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
        let response = raw_request_to(self.addr, method, &target, &head, body);
        let kept = RawResponse { status: response.status, head: response.head.clone(), body: response.body.clone() };
        self.keep(&format!("S3 {method} {target}"), kept);
        response
    }
}

/// Text between `<tag>` and `</tag>`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> &'a str {
    let start = xml.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no {tag} in {xml}")) + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    &xml[start..end]
}

/// The header `name` of a response.
fn header<'a>(response: &'a RawResponse, name: &str) -> &'a str {
    response
        .head
        .lines()
        .find_map(|line| line.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no {name} in {}", response.head))
}

/// The script: KMS keys of every family, alias, data key, encryption, random bytes, a grant, signatures and a MAC
/// (the deterministic algorithms), the public keys, the OTC dialect; S3 SSE-KMS objects, single and multipart; an
/// encrypted EVS volume. Waits for the volume's job at the end (its polls are not part of the transcript).
fn script(addr: SocketAddr) -> Vec<String> {
    let mut t = Transcript { addr, responses: Vec::new() };
    let symmetric = t.kms("CreateKey", json!({"Description": "deterministic"}));
    let key_id = symmetric["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let rsa = t.kms("CreateKey", json!({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}));
    let rsa_id = rsa["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let ecc = t.kms("CreateKey", json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}));
    let ecc_id = ecc["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let hmac = t.kms("CreateKey", json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}));
    let hmac_id = hmac["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    t.kms("CreateKey", json!({"MultiRegion": true}));
    t.kms("CreateAlias", json!({"AliasName": "alias/deterministic", "TargetKeyId": key_id}));
    t.kms("GenerateDataKey", json!({"KeyId": "alias/deterministic", "KeySpec": "AES_256"}));
    t.kms("Encrypt", json!({"KeyId": key_id, "Plaintext": "aGVsbG8=", "EncryptionContext": {"k": "v"}}));
    t.kms("GenerateRandom", json!({"NumberOfBytes": 64}));
    t.kms("GenerateDataKeyPair", json!({"KeyId": key_id, "KeyPairSpec": "ECC_NIST_P384"}));
    t.kms(
        "CreateGrant",
        json!({"KeyId": key_id, "GranteePrincipal": "arn:aws:iam::000000000000:root", "Operations": ["Decrypt"]}),
    );
    t.kms("GetPublicKey", json!({"KeyId": rsa_id}));
    t.kms("GetPublicKey", json!({"KeyId": ecc_id}));
    let message = "c2lnbiBtZQ==";
    for algorithm in ["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_512"] {
        t.kms("Sign", json!({"KeyId": rsa_id, "Message": message, "SigningAlgorithm": algorithm}));
    }
    t.kms("Sign", json!({"KeyId": ecc_id, "Message": message, "SigningAlgorithm": "ECDSA_SHA_256"}));
    let digest = "Xd/81x5QNKXw3pdWCvhoA2H4aS7Yd9F8hxlfyUtUVwg="; // SHA-256 of "sign me"
    t.kms(
        "Sign",
        json!({"KeyId": ecc_id, "Message": digest, "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"}),
    );
    let oaep = t.kms("CreateKey", json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}));
    let oaep_id = oaep["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    t.kms("Encrypt", json!({"KeyId": oaep_id, "Plaintext": "aGVsbG8=", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}));
    t.kms("ScheduleKeyDeletion", json!({"KeyId": oaep_id, "PendingWindowInDays": 7}));
    t.kms("GenerateMac", json!({"KeyId": hmac_id, "Message": message, "MacAlgorithm": "HMAC_SHA_256"}));
    // The OTC dialect: its own request ids, the same key store.
    let otc = format!("/v1.0/{PROJECT}/kms");
    t.keep("OTC create-key", evs(addr, "POST", &format!("{otc}/create-key"), &json!({"key_alias": "det-otc"})));
    t.keep("OTC gen-random", evs(addr, "POST", &format!("{otc}/gen-random"), &json!({"random_data_length": "256"})));

    t.s3("PUT", "/det-bucket", "", &[], b"");
    let sse = [("x-amz-server-side-encryption", "aws:kms"), ("x-amz-server-side-encryption-aws-kms-key-id", &key_id)];
    t.s3("PUT", "/det-bucket/object", "", &sse, b"the same bytes every run");
    t.s3("GET", "/det-bucket/object", "", &[], b"");
    let initiated = t.s3("POST", "/det-bucket/multi", "uploads=", &sse, b"");
    let upload_id = xml_text(&initiated.body, "UploadId").to_owned();
    let part = t.s3("PUT", "/det-bucket/multi", &format!("partNumber=1&uploadId={upload_id}"), &[], b"part one");
    let etag = header(&part, "etag").to_owned();
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    t.s3("POST", "/det-bucket/multi", &format!("uploadId={upload_id}"), &[], complete.as_bytes());
    t.s3("GET", "/det-bucket", "list-type=2", &[], b"");
    t.s3("GET", "/", "", &[], b"");

    let volume = json!({"volume": {
        "size": 10, "volume_type": "SSD", "availability_zone": "az1", "name": "deterministic",
        "metadata": {"__system__encrypted": "1", "__system__cmkid": key_id},
    }});
    let path = format!("/v2/{PROJECT}/cloudvolumes");
    let created = t.keep("EVS create volume", evs(addr, "POST", &path, &volume));
    let job_id = created["job_id"].as_str().unwrap().to_owned();
    // The job formats the volume (drawing its LUKS keys) in the background: wait for it, out of the transcript.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = evs(addr, "GET", &format!("/v1/{PROJECT}/jobs/{job_id}"), &Value::Null);
        let status = serde_json::from_str::<Value>(&job.body).unwrap()["status"].as_str().unwrap_or("").to_owned();
        match status.as_str() {
            "SUCCESS" => break,
            "FAIL" => panic!("volume job failed: {}", job.body),
            _ => assert!(Instant::now() < deadline, "volume job not done: {}", job.body),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    t.responses
}

/// The first line where two transcripts differ, for a readable failure.
fn first_difference(a: &[String], b: &[String]) -> Option<String> {
    a.iter().zip(b).find(|(x, y)| x != y).map(|(x, y)| format!("first run:\n{x}\n\nsecond run:\n{y}"))
}

fn reset(stack: &kmsim::Stack) {
    let head = vec![
        ("host".to_owned(), stack.addr().to_string()),
        ("authorization".to_owned(), format!("Bearer {}", stack.admin_token())),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let response = raw_request_to(stack.addr(), "POST", "/_sim/reset", &head, b"{}");
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_seed_same_answers_other_seed_other_answers_and_reset_replays() {
    let first = kmsim::Stack::builder().deterministic("seed-one").start().await.unwrap();
    let second = kmsim::Stack::builder().deterministic("seed-one").start().await.unwrap();
    let other = kmsim::Stack::builder().deterministic("seed-two").start().await.unwrap();
    assert!(first.is_deterministic());
    let (a1, a2, b) = tokio::task::spawn_blocking({
        let (x, y, z) = (first.addr(), second.addr(), other.addr());
        move || (script(x), script(y), script(z))
    })
    .await
    .unwrap();
    assert_eq!(a1.len(), a2.len());
    assert!(a1 == a2, "{}", first_difference(&a1, &a2).unwrap_or_default());
    // Another seed: every response that carries an id, a key or a request id differs.
    let same: Vec<&String> = a1.iter().zip(&b).filter(|(x, y)| x == y).map(|(x, _)| x).collect();
    assert!(same.is_empty(), "the same under another seed: {same:?}");
    // The answers really carry the seeded values: the key ids are the same in both runs.
    assert!(a1[0].contains("\"KeyId\"") && a1[0] == a2[0]);
    // And the frozen clock's time: 2026-01-01T00:00:00Z until a test advances it.
    assert!(a1[0].contains("\"CreationDate\":1767225600"), "{}", a1[0]);
    let listing = a1.iter().find(|r| r.starts_with("== S3 GET /det-bucket?list-type=2")).unwrap();
    assert!(listing.contains("<LastModified>2026-01-01T00:00:00.000Z</LastModified>"), "{listing}");
    // A reset starts every stream again: replaying the script gives the same transcript.
    reset(&first);
    let replay = tokio::task::spawn_blocking({
        let addr = first.addr();
        move || script(addr)
    })
    .await
    .unwrap();
    assert!(replay == a1, "{}", first_difference(&a1, &replay).unwrap_or_default());
    assert_eq!(first.admin_token(), second.admin_token());
    assert_ne!(first.admin_token(), other.admin_token());
    for stack in [first, second, other] {
        stack.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_dir_made_without_the_seed_is_refused() {
    let dir = private_dir();
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let created = kms_raw(stack.addr(), "CreateKey", b"{}", "test", "test");
    assert_eq!(created.status, 200, "{}", created.body);
    stack.shutdown().await;
    let error = kmsim::Stack::builder().data_dir(dir.path()).deterministic("s").start().await.unwrap_err();
    assert!(error.to_string().contains("refusing --deterministic"), "{error}");
    // Refused before anything was written: the data dir still serves without the seed, with its key.
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let listed = kms_raw(stack.addr(), "ListKeys", b"{}", "test", "test");
    assert_eq!(serde_json::from_str::<Value>(&listed.body).unwrap()["Keys"].as_array().unwrap().len(), 1);
    stack.shutdown().await;

    // A data dir made with a seed serves that seed again, and refuses another.
    let dir = private_dir();
    let stack = kmsim::Stack::builder().data_dir(dir.path()).deterministic("s").start().await.unwrap();
    stack.shutdown().await;
    let stack = kmsim::Stack::builder().data_dir(dir.path()).deterministic("s").start().await.unwrap();
    stack.shutdown().await;
    let error = kmsim::Stack::builder().data_dir(dir.path()).deterministic("t").start().await.unwrap_err();
    assert!(error.to_string().contains("another seed"), "{error}");
}
