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
