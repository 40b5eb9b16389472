//! The object store through the Rust `aws-sdk-s3`: buckets, objects with and without SSE-KMS,
//! ranges, multipart, copy, and the KMS key state reaching S3 clients.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};

use crate::common::{kms_client, s3_client, stack};

fn code<T: std::fmt::Debug, E: ProvideErrorMetadata>(result: Result<T, E>) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or("<no code>").to_owned(),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

async fn body(output: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    output.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_and_objects_round_trip_with_and_without_sse_kms() {
    let stack = stack().await;
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("data").send().await.unwrap();
    // Re-creating one's own bucket in us-east-1 answers 200, as S3 does there.
    s3.create_bucket().bucket("data").send().await.unwrap();
    assert_eq!(code(s3.create_bucket().bucket("Bad_Name").send().await), "InvalidBucketName");
    let buckets = s3.list_buckets().send().await.unwrap().buckets.unwrap();
    assert_eq!(buckets[0].name.as_deref(), Some("data"));
    for (i, len) in [0, 1, 65_535, 65_536, 65_537, 200_000].into_iter().enumerate() {
        let data = pattern(len, i as u8);
        for sse in [false, true] {
            let key = format!("obj-{len}-{sse}");
            let mut put = s3.put_object().bucket("data").key(&key).body(ByteStream::from(data.clone()));
            if sse {
                put = put.server_side_encryption(ServerSideEncryption::AwsKms);
            }
            let out = put.send().await.unwrap();
            // Without SSE headers S3 encrypts with SSE-S3.
            let expected = if sse { ServerSideEncryption::AwsKms } else { ServerSideEncryption::Aes256 };
            assert_eq!(out.server_side_encryption, Some(expected));
            let got = s3.get_object().bucket("data").key(&key).send().await.unwrap();
            if sse {
                assert_eq!(got.server_side_encryption, Some(ServerSideEncryption::AwsKms));
                assert!(got.ssekms_key_id.as_deref().unwrap().starts_with("arn:aws:kms:us-east-1:000000000000:key/"));
            }
            assert_eq!(body(got).await, data, "{key}");
        }
    }
    let listed = s3.list_objects_v2().bucket("data").prefix("obj-65").send().await.unwrap();
    assert_eq!(listed.key_count, Some(6));
    assert_eq!(code(s3.delete_bucket().bucket("data").send().await), "BucketNotEmpty");
    assert_eq!(code(s3.get_object().bucket("data").key("missing").send().await), "NoSuchKey");
    assert_eq!(code(s3.get_object().bucket("nope").key("x").send().await), "NoSuchBucket");
}

#[tokio::test(flavor = "multi_thread")]
async fn range_reads_decrypt_only_what_they_need() {
    let stack = stack().await;
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("rng").send().await.unwrap();
    let data = pattern(300_000, 7);
    s3.put_object()
        .bucket("rng")
        .key("k")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    for (range, expected) in [
        ("bytes=0-0", 0..1),
        ("bytes=65530-65545", 65_530..65_546),
        ("bytes=131072-262143", 131_072..262_144),
        ("bytes=-10", 299_990..300_000),
        ("bytes=299999-", 299_999..300_000),
    ] {
        let got = s3.get_object().bucket("rng").key("k").range(range).send().await.unwrap();
        assert_eq!(
            got.content_range.as_deref(),
            Some(format!("bytes {}-{}/300000", expected.start, expected.end - 1).as_str())
        );
        assert_eq!(body(got).await, data[expected].to_vec(), "{range}");
    }
    assert_eq!(code(s3.get_object().bucket("rng").key("k").range("bytes=300000-").send().await), "InvalidRange");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_state_reaches_s3_clients() {
    let stack = stack().await;
    let s3 = s3_client(&stack);
    let kms = kms_client(&stack);
    let key_id = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    s3.create_bucket().bucket("kst").send().await.unwrap();
    let put = s3
        .put_object()
        .bucket("kst")
        .key("secret")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .body(ByteStream::from_static(b"crypto-shredding"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.ssekms_key_id.unwrap(), format!("arn:aws:kms:us-east-1:000000000000:key/{key_id}"));
    kms.disable_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(code(s3.get_object().bucket("kst").key("secret").send().await), "KMS.DisabledException");
    let put_disabled = s3
        .put_object()
        .bucket("kst")
        .key("other")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(put_disabled), "KMS.DisabledException");
    assert_eq!(code(s3.head_object().bucket("kst").key("other").send().await), "NotFound");
    kms.enable_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(body(s3.get_object().bucket("kst").key("secret").send().await.unwrap()).await, b"crypto-shredding");
    kms.schedule_key_deletion().key_id(&key_id).send().await.unwrap();
    assert_eq!(code(s3.get_object().bucket("kst").key("secret").send().await), "KMS.KMSInvalidStateException");
    let unknown = s3
        .put_object()
        .bucket("kst")
        .key("x")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/does-not-exist")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(unknown), "KMS.NotFoundException");
    // Every KMS call OBS made is in the audit log, as made via S3 on the caller's behalf.
    let events = stack
        .kms()
        .audit
        .query(&kms::audit::AuditQuery { via_service: Some("s3.amazonaws.com".into()), ..Default::default() });
    assert!(events.iter().any(|e| e.operation == "Decrypt" && e.outcome == "DisabledException"));
    let put_event = events.iter().find(|e| e.operation == "GenerateDataKey").unwrap();
    assert_eq!(put_event.encryption_context.as_ref().unwrap()["aws:s3:arn"], "arn:aws:s3:::kst/secret");
    assert_eq!(put_event.access_key, "test");
    assert_eq!(put_event.source.as_deref(), Some("s3.amazonaws.com"), "a call S3 made names S3 as its source");
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_and_copy() {
    let stack = stack().await;
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("mpu").send().await.unwrap();
    let created = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key("big")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .content_type("application/x-test")
        .send()
        .await
        .unwrap();
    let upload_id = created.upload_id.unwrap();
    let parts = [pattern(5 * 1024 * 1024, 1), pattern(5 * 1024 * 1024 + 17, 2), pattern(1000, 3)];
    let mut completed = Vec::new();
    // Out of order, as parallel clients do.
    for number in [2, 1, 3] {
        let out = s3
            .upload_part()
            .bucket("mpu")
            .key("big")
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(parts[number as usize - 1].clone()))
            .send()
            .await
            .unwrap();
        completed.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag.unwrap()).build());
    }
    completed.sort_by_key(|p| p.part_number);
    let listed = s3.list_parts().bucket("mpu").key("big").upload_id(&upload_id).send().await.unwrap();
    assert_eq!(listed.parts.unwrap().len(), 3);
    let done = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap();
    assert!(done.e_tag.unwrap().ends_with("-3\""));
    assert_eq!(done.server_side_encryption, Some(ServerSideEncryption::AwsKms));
    let got = s3.get_object().bucket("mpu").key("big").send().await.unwrap();
    assert_eq!(got.content_type.as_deref(), Some("application/x-test"));
    assert_eq!(body(got).await, parts.concat());
    let again = s3.list_parts().bucket("mpu").key("big").upload_id(&upload_id).send().await;
    assert_eq!(code(again), "NoSuchUpload");

    // A too-small first part.
    let small = s3.create_multipart_upload().bucket("mpu").key("small").send().await.unwrap().upload_id.unwrap();
    let mut small_parts = Vec::new();
    for number in 1..=2 {
        let out = s3
            .upload_part()
            .bucket("mpu")
            .key("small")
            .upload_id(&small)
            .part_number(number)
            .body(ByteStream::from_static(b"tiny"))
            .send()
            .await
            .unwrap();
        small_parts.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag.unwrap()).build());
    }
    let result = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("small")
        .upload_id(&small)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(small_parts)).build())
        .send()
        .await;
    assert_eq!(code(result), "EntityTooSmall");
    s3.abort_multipart_upload().bucket("mpu").key("small").upload_id(&small).send().await.unwrap();

    // Copy: the destination's encryption comes from the request (or S3's default, SSE-S3), never
    // from the source.
    s3.copy_object().bucket("mpu").key("plain-copy").copy_source("mpu/big").send().await.unwrap();
    let head = s3.head_object().bucket("mpu").key("plain-copy").send().await.unwrap();
    assert_eq!(head.server_side_encryption, Some(ServerSideEncryption::Aes256));
    assert_eq!(head.content_length, Some(parts.iter().map(Vec::len).sum::<usize>() as i64));
    let encrypted = s3
        .copy_object()
        .bucket("mpu")
        .key("kms-copy")
        .copy_source("mpu/plain-copy")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .send()
        .await
        .unwrap();
    assert_eq!(encrypted.server_side_encryption, Some(ServerSideEncryption::AwsKms));
    assert_eq!(body(s3.get_object().bucket("mpu").key("kms-copy").send().await.unwrap()).await, parts.concat());
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_survive_a_restart_and_no_plaintext_reaches_the_disk() {
    let dir = crate::common::private_dir();
    let marker = b"KMSIM-PLAINTEXT-MARKER-7f3a9c";
    let data: Vec<u8> = marker.iter().copied().cycle().take(200_000).collect();
    {
        let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
        let s3 = s3_client(&stack);
        s3.create_bucket().bucket("dur").send().await.unwrap();
        s3.put_object()
            .bucket("dur")
            .key("k")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        stack.shutdown().await;
    }
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let s3 = s3_client(&stack);
    assert_eq!(body(s3.get_object().bucket("dur").key("k").send().await.unwrap()).await, data);
    let mut stack_dirs = vec![dir.path().to_owned()];
    while let Some(d) = stack_dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack_dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(!bytes.windows(marker.len()).any(|w| w == marker), "plaintext in {}", path.display());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_keys_cut_kms_calls_by_99_percent() {
    use aws_sdk_s3::types::{
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    };
    let stack = stack().await;
    let s3 = s3_client(&stack);
    let kms = kms_client(&stack);
    let key_id = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    s3.create_bucket().bucket("bkeys").send().await.unwrap();
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .kms_master_key_id(&key_id)
                .build()
                .unwrap(),
        )
        .bucket_key_enabled(true)
        .build();
    let config = ServerSideEncryptionConfiguration::builder().rules(rule).build().unwrap();
    s3.put_bucket_encryption().bucket("bkeys").server_side_encryption_configuration(config).send().await.unwrap();
    let got = s3.get_bucket_encryption().bucket("bkeys").send().await.unwrap();
    assert_eq!(got.server_side_encryption_configuration.unwrap().rules[0].bucket_key_enabled, Some(true));

    let puts = 10_000;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let s3 = s3.clone();
        tasks.spawn(async move {
            for i in (worker..puts).step_by(8) {
                let out = s3
                    .put_object()
                    .bucket("bkeys")
                    .key(format!("small/{i}"))
                    .body(ByteStream::from(format!("object {i}").into_bytes()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(out.bucket_key_enabled, Some(true));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let calls = stack.kms().audit.query(&kms::audit::AuditQuery {
        via_service: Some("s3.amazonaws.com".into()),
        operation: Some("GenerateDataKey".into()),
        ..Default::default()
    });
    assert!(calls.len() * 100 <= puts, "{} KMS calls for {puts} PUTs", calls.len());
    assert_eq!(calls[0].encryption_context.as_ref().unwrap()["aws:s3:arn"], "arn:aws:s3:::bkeys");
    assert_eq!(body(s3.get_object().bucket("bkeys").key("small/4242").send().await.unwrap()).await, b"object 4242");
    // Reads still ask the KMS, so disabling the key makes the objects unreadable at once.
    kms.disable_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(code(s3.get_object().bucket("bkeys").key("small/7").send().await), "KMS.DisabledException");
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_s3_encrypts_without_the_kms() {
    let stack = stack().await;
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("sses3").send().await.unwrap();
    let data = pattern(150_000, 9);
    let put = s3
        .put_object()
        .bucket("sses3")
        .key("k")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.server_side_encryption, Some(ServerSideEncryption::Aes256));
    let got = s3.get_object().bucket("sses3").key("k").range("bytes=70000-140000").send().await.unwrap();
    assert_eq!(got.server_side_encryption, Some(ServerSideEncryption::Aes256));
    assert_eq!(body(got).await, data[70_000..140_001].to_vec());
    let upload = s3
        .create_multipart_upload()
        .bucket("sses3")
        .key("mp")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let part = s3
        .upload_part()
        .bucket("sses3")
        .key("mp")
        .upload_id(&upload)
        .part_number(1)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("sses3")
        .key("mp")
        .upload_id(&upload)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag.unwrap()).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("sses3").key("mp").send().await.unwrap();
    assert_eq!(got.server_side_encryption, Some(ServerSideEncryption::Aes256));
    assert_eq!(body(got).await, data);
    let conflicting = s3
        .put_object()
        .bucket("sses3")
        .key("x")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .ssekms_key_id("alias/aws/s3")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(conflicting), "InvalidArgument");
    let via_s3 = kms::audit::AuditQuery { via_service: Some("s3.amazonaws.com".into()), ..Default::default() };
    assert!(stack.kms().audit.query(&via_s3).is_empty(), "SSE-S3 does not call the KMS");
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_c_needs_the_customer_key_on_every_read() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let md5 = |bytes: &[u8]| b64(&<md5_digest::Md5 as md5_digest::Digest>::digest(bytes));
    let (key, other) = ([7u8; 32], [8u8; 32]);
    let dir = crate::common::private_dir();
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("ssec").send().await.unwrap();
    let data = pattern(100_000, 5);
    let put = s3
        .put_object()
        .bucket("ssec")
        .key("k")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&key))
        .sse_customer_key_md5(md5(&key))
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.sse_customer_key_md5.as_deref(), Some(md5(&key).as_str()));
    assert_eq!(code(s3.get_object().bucket("ssec").key("k").send().await), "InvalidRequest");
    let wrong = s3
        .get_object()
        .bucket("ssec")
        .key("k")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&other))
        .sse_customer_key_md5(md5(&other))
        .send()
        .await;
    assert_eq!(code(wrong), "AccessDenied");
    let got = s3
        .get_object()
        .bucket("ssec")
        .key("k")
        .range("bytes=1000-1999")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&key))
        .sse_customer_key_md5(md5(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(got.sse_customer_algorithm.as_deref(), Some("AES256"));
    assert_eq!(body(got).await, data[1000..2000].to_vec());
    // Copy out of SSE-C into SSE-KMS, naming the source key.
    s3.copy_object()
        .bucket("ssec")
        .key("copy")
        .copy_source("ssec/k")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(b64(&key))
        .copy_source_sse_customer_key_md5(md5(&key))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .send()
        .await
        .unwrap();
    assert_eq!(body(s3.get_object().bucket("ssec").key("copy").send().await.unwrap()).await, data);
    // Only a salted HMAC of the key is stored: the key itself is in no file.
    let mut dirs = vec![dir.path().to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(!bytes.windows(32).any(|w| w == key), "the customer key is in {}", path.display());
                let text = String::from_utf8_lossy(&bytes);
                assert!(!text.contains(&b64(&key)) && !text.contains(&md5(&key)), "key material in {}", path.display());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_c_multipart_needs_the_key_on_every_part() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let key = [3u8; 32];
    let md5 = b64(&<md5_digest::Md5 as md5_digest::Digest>::digest(key));
    let stack = stack().await;
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("ssecmp").send().await.unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("ssecmp")
        .key("k")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&key))
        .sse_customer_key_md5(&md5)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let without_key = s3
        .upload_part()
        .bucket("ssecmp")
        .key("k")
        .upload_id(&upload)
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(without_key), "InvalidRequest");
    let parts = [pattern(5 * 1024 * 1024, 1), pattern(70_000, 2)];
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let out = s3
            .upload_part()
            .bucket("ssecmp")
            .key("k")
            .upload_id(&upload)
            .part_number(i as i32 + 1)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(b64(&key))
            .sse_customer_key_md5(&md5)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        completed.push(CompletedPart::builder().part_number(i as i32 + 1).e_tag(out.e_tag.unwrap()).build());
    }
    s3.complete_multipart_upload()
        .bucket("ssecmp")
        .key("k")
        .upload_id(&upload)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&key))
        .sse_customer_key_md5(&md5)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("ssecmp")
        .key("k")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&key))
        .sse_customer_key_md5(&md5)
        .send()
        .await
        .unwrap();
    assert_eq!(body(got).await, parts.concat());
}
