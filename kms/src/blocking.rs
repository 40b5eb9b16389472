//! Running KMS work off the async workers: store mutations (they fsync) and, a few at a time, the operations that
//! may generate an RSA key pair ([`Cost::KeyGen`](crate::operation::Cost)), so that an RSA_4096 key generation — up
//! to seconds of one core — never stalls the edge's other requests.

use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;
use tokio::task::JoinError;

/// How many key generations run at once: one core fewer than the machine has (at least one), so the async workers
/// keep a core to answer everything else.
static KEY_GENERATIONS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Arc::new(Semaphore::new(cores.saturating_sub(1).max(1)))
});

/// Runs `work` on the blocking pool; when `generates_keys`, first waits (asynchronously) for one of the few key
/// generation slots, held until `work` ends — even if the caller stops waiting, since the work runs on.
pub async fn run<T: Send + 'static>(
    generates_keys: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JoinError> {
    run_with_slots(KEY_GENERATIONS.clone(), generates_keys, work).await
}

async fn run_with_slots<T: Send + 'static>(
    slots: Arc<Semaphore>,
    generates_keys: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JoinError> {
    let permit = if generates_keys {
        // The semaphore is never closed, so acquiring only fails if it were; run unthrottled rather than fail.
        slots.acquire_owned().await.ok()
    } else {
        None
    };
    tokio::task::spawn_blocking(move || {
        let result = work();
        drop(permit);
        result
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_generations_hold_a_slot_until_they_end() {
        let slots = Arc::new(Semaphore::new(1));
        let (started, wait) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn(run_with_slots(slots.clone(), true, move || {
            started.send(()).unwrap();
            released.recv().unwrap();
            7
        }));
        tokio::task::spawn_blocking(move || wait.recv().unwrap()).await.unwrap();
        assert_eq!(slots.available_permits(), 0, "a running key generation holds the slot");
        assert_eq!(run_with_slots(slots.clone(), false, || 1).await.unwrap(), 1, "other work does not wait for a slot");
        let second = tokio::spawn(run_with_slots(slots.clone(), true, || 8));
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "a second key generation waits for the slot");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 7);
        assert_eq!(second.await.unwrap().unwrap(), 8);
        assert_eq!(slots.available_permits(), 1);
    }
}
