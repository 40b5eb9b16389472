//! The object store through the Rust `object_store` crate's S3 client (`AmazonS3Builder` with
//! `with_sse_kms_encryption`), as data systems built on it would use kmsim.

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::common::{kms_client, s3_client, stack};

#[tokio::test(flavor = "multi_thread")]
async fn object_store_s3_client_with_sse_kms() {
    let stack = stack().await;
    let key_id = kms_client(&stack).create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    s3_client(&stack).create_bucket().bucket("lake").send().await.unwrap();
    let store = AmazonS3Builder::new()
        .with_endpoint(stack.endpoint())
        .with_allow_http(true)
        .with_region(stack.region())
        .with_bucket_name("lake")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_virtual_hosted_style_request(false)
        .with_sse_kms_encryption(&key_id)
        .build()
        .unwrap();
    let small = Path::from("tables/a/part-0.parquet");
    store.put(&small, PutPayload::from_static(b"column data")).await.unwrap();
    let got = store.get(&small).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), b"column data");
    let range = store.get_range(&small, 7..11).await.unwrap();
    assert_eq!(range.as_ref(), b"data");

    // A multipart write, as object_store does for large objects.
    let large = Path::from("tables/a/part-1.parquet");
    let mut writer = WriteMultipart::new_with_chunk_size(store.put_multipart(&large).await.unwrap(), 5 * 1024 * 1024);
    let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    writer.write(&data);
    writer.finish().await.unwrap();
    let got = store.get(&large).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got.as_ref() == data.as_slice());

    let listed: Vec<_> = store.list(Some(&Path::from("tables"))).try_collect().await.unwrap();
    assert_eq!(listed.len(), 2);
    let head = s3_client(&stack).head_object().bucket("lake").key("tables/a/part-1.parquet").send().await.unwrap();
    assert_eq!(head.ssekms_key_id.unwrap(), format!("arn:aws:kms:us-east-1:000000000000:key/{key_id}"));
    store.delete(&small).await.unwrap();
    assert!(matches!(store.get(&small).await, Err(object_store::Error::NotFound { .. })));
}

/// A kmsim whose objects live on another S3 service (here: a second kmsim): the bodies arrive
/// there already encrypted, and the first kmsim's KMS still decides who can read them.
#[tokio::test(flavor = "multi_thread")]
async fn objects_can_live_on_a_remote_s3_service() {
    let backend = stack().await;
    s3_client(&backend).create_bucket().bucket("cluster").send().await.unwrap();
    let config = kmsim::Config {
        object_store: Some(kmsim::config::ObjectStoreConfig {
            url: "s3://cluster/kmsim".into(),
            endpoint: Some(backend.endpoint()),
            region: "us-east-1".into(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        }),
        ..kmsim::Config::default()
    };
    let front = kmsim::Stack::builder().config(config.clone()).start().await.unwrap();
    let s3 = s3_client(&front);
    s3.create_bucket().bucket("app").send().await.unwrap();
    let marker = b"REMOTE-PLAINTEXT-MARKER".repeat(5000);
    s3.put_object()
        .bucket("app")
        .key("doc")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(aws_sdk_s3::primitives::ByteStream::from(marker.clone()))
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("app").key("doc").send().await.unwrap().body.collect().await.unwrap();
    assert!(got.into_bytes().as_ref() == marker.as_slice());
    // On the backend: records and an encrypted body, never the plaintext.
    let remote = s3_client(&backend).list_objects_v2().bucket("cluster").prefix("kmsim/").send().await.unwrap();
    let keys: Vec<String> = remote.contents.unwrap().into_iter().filter_map(|o| o.key).collect();
    assert!(keys.iter().any(|k| k.starts_with("kmsim/data/app/")), "{keys:?}");
    for key in keys {
        let body = s3_client(&backend).get_object().bucket("cluster").key(&key).send().await.unwrap();
        let bytes = body.body.collect().await.unwrap().into_bytes();
        assert!(!bytes.windows(23).any(|w| w == b"REMOTE-PLAINTEXT-MARKER"), "plaintext in {key}");
    }
    // Another front end on the same remote store sees the bucket and the object (its index is
    // loaded from the records), but needs the first one's KMS keys to read it.
    front.shutdown().await;
    let again = kmsim::Stack::builder().config(config).start().await.unwrap();
    let listed = s3_client(&again).list_objects_v2().bucket("app").send().await.unwrap();
    assert_eq!(listed.key_count, Some(1));
}
