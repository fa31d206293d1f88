//! A `StopHandle` and its signals: `stopped()` resolves on `stop()` (also when asked before
//! the wait), and when the last handle is gone (while `is_stopped()` still says no stop was
//! asked); a clone keeps the handle alive.

use std::time::Duration;

use load_density_core::context::StopHandle;

const BOUND: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(50);

#[tokio::test]
async fn stop_wakes_every_waiting_signal() {
    let handle = StopHandle::new();
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let mut signal = handle.signal();
            tokio::spawn(async move {
                signal.stopped().await;
                signal.is_stopped()
            })
        })
        .collect();
    tokio::task::yield_now().await;
    assert!(!handle.is_stopped());
    handle.stop();
    for task in waiting {
        let stopped = tokio::time::timeout(BOUND, task)
            .await
            .expect("woken by stop")
            .expect("task");
        assert!(stopped);
    }
    // Asked before the wait: resolves at once.
    let mut late = handle.signal();
    tokio::time::timeout(BOUND, late.stopped())
        .await
        .expect("already stopped");
}

#[tokio::test]
async fn the_last_handle_gone_ends_the_wait_without_a_stop() {
    let handle = StopHandle::new();
    let clone = handle.clone();
    let mut signal = handle.signal();
    drop(handle);
    // The clone still holds it: no reason to stop yet.
    assert!(tokio::time::timeout(SHORT, signal.stopped()).await.is_err());
    drop(clone);
    tokio::time::timeout(BOUND, signal.stopped())
        .await
        .expect("resolves once every handle is gone");
    assert!(!signal.is_stopped(), "no stop was asked");
}
