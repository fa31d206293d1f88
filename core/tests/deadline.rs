//! One `RequestDeadline` reused across requests: each request gets its own deadline, whether
//! the one before finished, timed out, or had a later deadline.

use std::time::Duration;

use load_density_core::deadline::RequestDeadline;
use load_density_core::RequestTimer;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_reused_deadline_fires_for_each_request_at_its_own_time() {
    let mut deadline = RequestDeadline::new();
    let hang = || std::future::pending::<()>();

    // Finished in time, with a long timeout (the timer is registered far away).
    let timer = RequestTimer::start();
    assert_eq!(deadline.within(&timer, LONG, async { 1 }).await, Some(1));
    let timer = RequestTimer::start();
    let slow = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        2
    };
    assert_eq!(deadline.within(&timer, LONG, slow).await, Some(2));

    // A shorter timeout than the one registered: the deadline moves earlier and fires.
    let timer = RequestTimer::start();
    let short = Duration::from_millis(20);
    assert_eq!(deadline.within(&timer, short, hang()).await, None);
    assert!(
        timer.elapsed() >= short,
        "fired early: {:?}",
        timer.elapsed()
    );

    // After it fired, the next request is not timed out at once.
    let timer = RequestTimer::start();
    let after = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        3
    };
    assert_eq!(deadline.within(&timer, LONG, after).await, Some(3));

    // The deadline counts from the timer's start, not from the call.
    let timer = RequestTimer::start();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let started_late = tokio::time::Instant::now();
    assert_eq!(
        deadline
            .within(&timer, Duration::from_millis(40), hang())
            .await,
        None
    );
    // (A timeout counted from the call could not fire before 40 ms.)
    assert!(
        started_late.elapsed() < Duration::from_millis(40),
        "waited {:?} of a 40 ms timeout that had 10 ms left",
        started_late.elapsed()
    );

    // A timeout too large to represent never fires.
    let timer = RequestTimer::start();
    assert_eq!(
        deadline.within(&timer, Duration::MAX, async { 4 }).await,
        Some(4)
    );
}

#[tokio::test]
async fn the_deadline_holds_the_request_once() {
    // A request whose future carries 4 KiB across its await: `within`'s future must not
    // carry it twice (an `async fn` taking the request would: its argument and its pinned
    // copy), since it sits in every user's task.
    let request = async {
        let state = [7u8; 4096];
        tokio::task::yield_now().await;
        state[4095]
    };
    let request_size = std::mem::size_of_val(&request);
    assert!(request_size >= 4096);
    let mut deadline = RequestDeadline::new();
    let timer = RequestTimer::start();
    let within = deadline.within(&timer, LONG, request);
    assert!(
        std::mem::size_of_val(&within) < request_size + 64,
        "{} bytes for a {request_size}-byte request",
        std::mem::size_of_val(&within)
    );
    assert_eq!(within.await, Some(7));
}
