//! A request timeout that costs no timer registration per request.
//!
//! `tokio::time::timeout` makes a new timer per call: it locks the runtime's timer driver when
//! the timer is first polled, and again when it is dropped. A [`RequestDeadline`] is one timer
//! per user, moved to each request's deadline with `Sleep::reset`. When the new deadline is
//! later than the one the timer is registered for (the usual case: each request starts after
//! the last), tokio only stores it (one atomic compare-and-swap), and the driver re-files the
//! timer when its old slot comes round, at most once per timeout period. The deadline is the
//! request timer's start plus the timeout, so no clock is read for it either.
//!
//! ```
//! use std::time::Duration;
//! use load_density_core::{deadline::RequestDeadline, RequestTimer};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let mut deadline = RequestDeadline::new();
//! let timer = RequestTimer::start();
//! assert_eq!(deadline.within(&timer, Duration::from_secs(5), async { 7 }).await, Some(7));
//! let slow = tokio::time::sleep(Duration::from_secs(60));
//! assert_eq!(deadline.within(&timer, Duration::from_millis(10), slow).await, None);
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

use crate::context::RequestTimer;

/// One user's reusable request timeout (see the module docs). The timer is made on first use.
#[derive(Debug, Default)]
pub struct RequestDeadline {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl RequestDeadline {
    /// A deadline with no timer yet.
    pub const fn new() -> Self {
        Self { sleep: None }
    }

    /// Runs `request` until it finishes (`Some(output)`) or until `timeout` after the timer's
    /// start (`None`; the request is dropped). A timeout too large to represent never fires.
    ///
    /// The timer is moved to the deadline now; the returned future holds `request` once (an
    /// `async fn` would hold it twice, its argument and its pinned copy, and the request's
    /// future is most of a user's task).
    pub fn within<F: Future>(
        &mut self,
        timer: &RequestTimer,
        timeout: Duration,
        request: F,
    ) -> Within<'_, F> {
        let sleep = timer.started().checked_add(timeout).map(|deadline| {
            let deadline = tokio::time::Instant::from_std(deadline);
            if let Some(sleep) = self.sleep.as_mut() {
                sleep.as_mut().reset(deadline);
            }
            self.sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)))
                .as_mut()
        });
        Within { request, sleep }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestDeadline::within`]: the request's output, or `None` when the
    /// deadline passed first.
    #[must_use = "futures do nothing unless polled"]
    pub struct Within<'a, F> {
        #[pin]
        request: F,
        // `None` when the deadline cannot be represented (it never fires).
        sleep: Option<Pin<&'a mut Sleep>>,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The request first: a response that is ready counts even if the deadline passed too.
        if let Poll::Ready(output) = this.request.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let expired = match this.sleep {
            Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if expired {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}
