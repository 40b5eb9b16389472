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
