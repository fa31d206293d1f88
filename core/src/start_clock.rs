//! Starting iterations on time: a wait that ends within microseconds of its due instant.
//!
//! tokio's timer wheel ticks once a millisecond, so a `sleep_until` fires up to about a
//! millisecond (1.2 ms at the median on an idle machine) after its deadline. For a schedule
//! that lateness is part of every iteration's start delay, and so of the corrected latency.
//! [`sleep_until`] keeps tokio's timer for the bulk of the wait and ends it precisely:
//!
//! 1. it sleeps on tokio's timer until [`COARSE_MARGIN`] before the due instant;
//! 2. it hands the last stretch to the one start clock of the process: a thread that holds
//!    every pending due instant in a heap, parks until shortly before the earliest (the
//!    *lead*, learnt from how late its own parks end), spins the rest on [`Instant`], and
//!    wakes each waiting task once its instant has passed — never before.
//!
//! The cost is bounded: only that one thread ever spins, never a user; it spins at most
//! [`SPIN_SHARE`] of the wall time (beyond that it parks to the instant itself and is a few
//! tens of microseconds late); with nothing due within [`COARSE_MARGIN`] it parks and costs
//! nothing. Each wait it ends costs a wake-up from another thread (a few microseconds), so
//! above [`DENSE_RATE`] waits a second, where tokio's timer ends dozens of waits per tick for
//! less, waits go to tokio's timer alone (and end up to about a millisecond late, as
//! before).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::{Duration, Instant};
//!
//! let due = Instant::now() + Duration::from_millis(3);
//! load_density_core::start_clock::sleep_until(due).await;
//! assert!(Instant::now() >= due);
//! # }
//! ```

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long before its due instant a wait leaves tokio's timer for the start clock: more
/// than tokio's lateness (one 1 ms tick, plus scheduling) on a machine that keeps up.
pub const COARSE_MARGIN: Duration = Duration::from_millis(2);

/// The largest share of the wall time the start clock spends spinning. Past it, it parks
/// straight to the due instant (and ends a few tens of microseconds late).
pub const SPIN_SHARE: f64 = 0.02;

/// Above this many waits a second (over the last [`RATE_WINDOW_MS`] window), [`sleep_until`]
/// leaves the start clock out: its wake-up per wait would cost more than the precision is
/// worth at that density. It comes back once waits fall below [`SPARSE_RATE`]: on tokio's
/// timer a dense schedule wakes about once a millisecond and starts what is due in one go, so
/// it asks for far fewer waits than it has due instants.
pub const DENSE_RATE: u64 = 2_000;

/// Below this many waits a second, waits use the start clock again (see [`DENSE_RATE`]).
pub const SPARSE_RATE: u64 = 100;

/// The window over which the rate of waits is counted, in milliseconds.
const RATE_WINDOW_MS: u64 = 100;

/// The most spinning saved up for a burst.
const SPIN_BURST: Duration = Duration::from_millis(20);
/// How far before a due instant the clock first parks to (before it has measured itself).
const INITIAL_LEAD: Duration = Duration::from_micros(80);
/// Bounds on the learnt lead.
const MIN_LEAD: Duration = Duration::from_micros(10);
const MAX_LEAD: Duration = Duration::from_micros(400);
/// Added to the mean lateness of a park: most parks then end before the due instant.
const LEAD_MARGIN: Duration = Duration::from_micros(15);

/// Waits until `due`: returns at `due` or within microseconds after it, never before (see
/// the [module docs](self)). An instant already past returns at once.
pub async fn sleep_until(due: Instant) {
    if WAIT_RATE.count(Instant::now()) {
        tokio::time::sleep_until(due.into()).await;
        return;
    }
    if let Some(coarse) = due.checked_sub(COARSE_MARGIN) {
        if coarse > Instant::now() {
            tokio::time::sleep_until(coarse.into()).await;
        }
    }
    match clock() {
        Some(clock) => {
            Precise {
                clock,
                due,
                registered: None,
            }
            .await
        }
        // No start clock (its thread could not start): tokio's timer alone.
        None => tokio::time::sleep_until(due.into()).await,
    }
}

/// How many waits began over the last whole window, and in the current one.
struct WaitRate {
    /// The process's time origin for the windows.
    base: OnceLock<Instant>,
    /// The current window's index since `base`.
    window: AtomicU64,
    /// Waits counted in the current window.
    count: AtomicU64,
    /// Whether waits are dense now (see [`DENSE_RATE`] and [`SPARSE_RATE`]).
    dense: AtomicBool,
}

static WAIT_RATE: WaitRate = WaitRate {
    base: OnceLock::new(),
    window: AtomicU64::new(0),
    count: AtomicU64::new(0),
    dense: AtomicBool::new(false),
};

impl WaitRate {
    /// Counts a wait beginning at `now`; true when waits are dense: they went above
    /// [`DENSE_RATE`] a second over a whole window, and have not fallen below [`SPARSE_RATE`]
    /// since.
    fn count(&self, now: Instant) -> bool {
        let base = *self.base.get_or_init(|| now);
        let elapsed_ms =
            u64::try_from(now.saturating_duration_since(base).as_millis()).unwrap_or(u64::MAX);
        self.count_at(elapsed_ms / RATE_WINDOW_MS)
    }

    fn count_at(&self, window: u64) -> bool {
        let current = self.window.load(Ordering::Relaxed);
        if window > current
            && self
                .window
                .compare_exchange(current, window, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let counted = self.count.swap(0, Ordering::Relaxed);
            let rate = if window == current + 1 {
                counted.saturating_mul(1_000 / RATE_WINDOW_MS)
            } else {
                0
            };
            if rate > DENSE_RATE {
                self.dense.store(true, Ordering::Relaxed);
            } else if rate < SPARSE_RATE {
                self.dense.store(false, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.dense.load(Ordering::Relaxed)
    }
}

/// The last stretch of a [`sleep_until`]: woken by the start clock.
struct Precise {
    clock: &'static Clock,
    due: Instant,
    /// The waker the clock holds for this wait, to register again if the task's changes.
    registered: Option<Waker>,
}

impl Future for Precise {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.due {
            return Poll::Ready(());
        }
        let stale = self
            .registered
            .as_ref()
            .is_none_or(|w| !w.will_wake(cx.waker()));
        if stale {
            self.clock.register(self.due, cx.waker().clone());
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

struct Entry {
    due: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

/// The process's start clock (see the [module docs](self)).
struct Clock {
    base: Instant,
    queue: Mutex<Queue>,
    /// The earliest pending due instant, in nanoseconds after `base` (`u64::MAX`: none);
    /// written under the queue's lock, read by the spinning thread without it.
    earliest: AtomicU64,
    /// Whether the thread parks (or is about to): only then does an earlier wait unpark it.
    parked: AtomicBool,
    thread: Thread,
}

static CLOCK: OnceLock<Option<Clock>> = OnceLock::new();

/// The process's start clock, started on first use (`None` if its thread cannot start).
fn clock() -> Option<&'static Clock> {
    CLOCK
        .get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("ld-start-clock".to_owned())
                .spawn(|| {
                    // Waits for this initialisation to finish.
                    if let Some(clock) = clock() {
                        run(clock);
                    }
                });
            match spawned {
                Ok(handle) => Some(handle.thread().clone()),
                Err(error) => {
                    tracing::error!(%error, "cannot start the start-clock thread: iterations start on tokio's timer");
                    None
                }
            }
            .map(Clock::new)
        })
        .as_ref()
}

impl Clock {
    fn new(thread: Thread) -> Self {
        Self {
            base: Instant::now(),
            queue: Mutex::new(Queue {
                heap: BinaryHeap::new(),
                seq: 0,
            }),
            earliest: AtomicU64::new(u64::MAX),
            parked: AtomicBool::new(false),
            thread,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn register(&self, due: Instant, waker: Waker) {
        let at = self.nanos(due);
        let earlier = {
            let mut queue = self.queue.lock();
            let seq = queue.seq;
            queue.seq += 1;
            queue.heap.push(Reverse(Entry { due, seq, waker }));
            self.earliest.fetch_min(at, Ordering::SeqCst) > at
        };
        // Either the thread reads the new earliest instant before it parks, or it has said it
        // parks and is unparked here (both sides use SeqCst).
        if earlier && self.parked.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
    }

    /// Wakes every wait due by `now`; returns the next due instant.
    fn release(&self, now: Instant, ready: &mut Vec<Waker>) -> Option<Instant> {
        let mut queue = self.queue.lock();
        while queue.heap.peek().is_some_and(|e| e.0.due <= now) {
            if let Some(Reverse(entry)) = queue.heap.pop() {
                ready.push(entry.waker);
            }
        }
        let next = queue.heap.peek().map(|e| e.0.due);
        self.earliest
            .store(next.map_or(u64::MAX, |d| self.nanos(d)), Ordering::SeqCst);
        next
    }

    /// The earliest pending instant (it may have moved earlier while the thread spins).
    fn earliest(&self) -> Option<Instant> {
        match self.earliest.load(Ordering::SeqCst) {
            u64::MAX => None,
            at => Some(self.base + Duration::from_nanos(at)),
        }
    }
}

/// How long the clock may still spin: [`SPIN_SHARE`] of the wall time, saved up to
/// [`SPIN_BURST`].
struct SpinBudget {
    left: Duration,
    since: Instant,
}

impl SpinBudget {
    fn refill(&mut self, now: Instant) {
        let earned = now
            .saturating_duration_since(self.since)
            .mul_f64(SPIN_SHARE);
        self.left = (self.left + earned).min(SPIN_BURST);
        self.since = now;
    }
}

/// The start clock's thread: release what is due, park until shortly before the next, spin
/// the rest while the budget allows.
fn run(clock: &Clock) {
    let mut ready = Vec::new();
    let mut lead = INITIAL_LEAD;
    let mut budget = SpinBudget {
        left: SPIN_BURST,
        since: Instant::now(),
    };
    loop {
        let next = clock.release(Instant::now(), &mut ready);
        for waker in ready.drain(..) {
            waker.wake();
        }
        if next.is_none() {
            clock.parked.store(true, Ordering::SeqCst);
            if clock.earliest().is_none() {
                std::thread::park();
            }
            clock.parked.store(false, Ordering::SeqCst);
            continue;
        }
        clock.parked.store(true, Ordering::SeqCst);
        // Read again after saying it parks: a wait registered since counts.
        let Some(due) = clock.earliest() else {
            clock.parked.store(false, Ordering::SeqCst);
            continue;
        };
        let now = Instant::now();
        budget.refill(now);
        let remaining = due.saturating_duration_since(now);
        if remaining > lead {
            let target = due - lead;
            std::thread::park_timeout(target - now);
            clock.parked.store(false, Ordering::SeqCst);
            let woke = Instant::now();
            if woke >= target {
                // A timed-out park: learn how late parks end (a moving mean).
                let late = (woke - target).min(MAX_LEAD);
                let mean = (lead.saturating_sub(LEAD_MARGIN) * 7 + late) / 8;
                lead = (mean + LEAD_MARGIN).clamp(MIN_LEAD, MAX_LEAD);
            }
            continue;
        }
        if remaining.is_zero() {
            clock.parked.store(false, Ordering::SeqCst);
            continue;
        }
        if budget.left >= remaining {
            clock.parked.store(false, Ordering::SeqCst);
            let spun_from = Instant::now();
            let mut turns = 0u32;
            while let Some(target) = clock.earliest() {
                if Instant::now() >= target {
                    break;
                }
                turns = turns.wrapping_add(1);
                if turns.is_multiple_of(64) {
                    // Let a runtime thread pinned to the same CPU run meanwhile.
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            budget.left = budget.left.saturating_sub(spun_from.elapsed());
        } else {
            std::thread::park_timeout(remaining);
            clock.parked.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate() -> WaitRate {
        WaitRate {
            base: OnceLock::new(),
            window: AtomicU64::new(0),
            count: AtomicU64::new(0),
            dense: AtomicBool::new(false),
        }
    }

    #[test]
    fn dense_waits_are_left_to_tokios_timer_and_sparse_ones_are_not() {
        let meter = rate();
        let per_window = DENSE_RATE * RATE_WINDOW_MS / 1_000;
        // Window 0 at exactly the dense rate: not above it.
        assert!((0..per_window).all(|_| !meter.count_at(0)));
        assert!(!meter.count_at(1), "at the rate is not above it");
        // Window 1 above it: window 2 sees dense waits.
        (0..per_window).for_each(|_| {
            meter.count_at(1);
        });
        assert!(meter.count_at(2), "above the rate");
        // On tokio's timer a dense schedule asks for fewer waits: it stays dense down to the
        // sparse rate...
        let sparse_per_window = SPARSE_RATE * RATE_WINDOW_MS / 1_000;
        (0..sparse_per_window * 5).for_each(|_| {
            meter.count_at(2);
        });
        assert!(meter.count_at(3), "between the two rates: still dense");
        // ...and below it, or after a quiet window, the start clock is back.
        assert!(!meter.count_at(5), "after a quiet window");
    }
    use std::sync::Arc;
    use std::task::Wake;

    struct Recorder {
        id: usize,
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.log.lock().push(self.id);
        }
    }

    #[test]
    fn the_clock_releases_waits_in_due_order_and_none_before_its_instant() {
        let clock = Clock::new(std::thread::current());
        let log = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now() + Duration::from_secs(60);
        // Registered out of order; 3 and 4 share an instant (kept in registration order).
        let offsets_us = [500u64, 100, 300, 200, 200, 900];
        for (id, offset) in offsets_us.iter().enumerate() {
            let waker = Waker::from(Arc::new(Recorder {
                id,
                log: log.clone(),
            }));
            clock.register(origin + Duration::from_micros(*offset), waker);
        }
        assert_eq!(clock.earliest(), Some(origin + Duration::from_micros(100)));
        let mut ready = Vec::new();
        // Just before the earliest instant: nothing.
        let next = clock.release(origin + Duration::from_micros(99), &mut ready);
        assert!(ready.is_empty());
        assert_eq!(next, Some(origin + Duration::from_micros(100)));
        let next = clock.release(origin + Duration::from_micros(300), &mut ready);
        ready.drain(..).for_each(Waker::wake);
        assert_eq!(*log.lock(), vec![1, 3, 4, 2]);
        assert_eq!(next, Some(origin + Duration::from_micros(500)));
        let next = clock.release(origin + Duration::from_secs(1), &mut ready);
        ready.drain(..).for_each(Waker::wake);
        assert_eq!(*log.lock(), vec![1, 3, 4, 2, 0, 5]);
        assert_eq!(next, None);
        assert_eq!(clock.earliest(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_never_end_early() {
        let origin = Instant::now() + Duration::from_millis(5);
        let dues: Vec<Instant> = (0..200u64)
            // Out of order on purpose, some sharing an instant.
            .map(|i| origin + Duration::from_micros((i * 7919) % 4000 / 2 * 2))
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        for due in dues {
            tasks.spawn(async move {
                sleep_until(due).await;
                let woke = Instant::now();
                assert!(woke >= due, "woke {:?} early", due - woke);
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("a wait");
        }
        // A past instant returns at once.
        sleep_until(Instant::now() - Duration::from_millis(1)).await;
    }
}
