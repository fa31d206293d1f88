//! What a simulated user sees while it runs.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use tokio::sync::Notify;

use crate::checks::TaskChecks;
use crate::event::EventBus;
use crate::response::Response;
use crate::shard::Sample;
use crate::variables::UserVariables;

/// The error of a task cut off because the test ended while it was in flight.
pub const CANCELLED_BY_STOP: &str = "stopped by the end of the test";

/// What a [`StopHandle`] and its signals share: one small allocation (a flag, a count and a
/// [`Notify`]) instead of a channel, since every simulated user has a handle of its own.
#[derive(Debug)]
struct StopState {
    /// Set by [`StopHandle::stop`].
    stopped: AtomicBool,
    /// Set when the last handle is dropped: the signals' `stopped()` then resolves (nothing
    /// can stop them any more), while `is_stopped()` still says whether stop was asked.
    closed: AtomicBool,
    /// Live handles (clones of one [`StopHandle`]).
    handles: AtomicUsize,
    /// Wakes the signals waiting in `stopped()`.
    notify: Notify,
}

/// Asks every user of a run to stop.
#[derive(Debug)]
pub struct StopHandle(Arc<StopState>);

/// Tells a user whether it has been asked to stop.
#[derive(Debug, Clone)]
pub struct StopSignal(Arc<StopState>);

impl StopHandle {
    /// A new handle, not stopped.
    pub fn new() -> Self {
        Self(Arc::new(StopState {
            stopped: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            notify: Notify::new(),
        }))
    }

    /// A signal that follows this handle.
    pub fn signal(&self) -> StopSignal {
        StopSignal(self.0.clone())
    }

    /// Asks every signal to stop. Idempotent.
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    /// Whether stop was asked.
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }
}

impl Clone for StopHandle {
    fn clone(&self) -> Self {
        self.0.handles.fetch_add(1, Ordering::Relaxed);
        Self(self.0.clone())
    }
}

impl Drop for StopHandle {
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.store(true, Ordering::Release);
            self.0.notify.notify_waiters();
        }
    }
}

impl Default for StopHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl StopSignal {
    /// Whether stop was asked.
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    /// Whether stop was asked or every handle is gone: two atomic loads, no lock. The state
    /// only ever moves that one way, so a `false` means nothing was sent since the signal was
    /// made, and a `true` says to look with [`StopSignal::is_stopped`] or
    /// [`StopSignal::stopped`].
    pub fn has_changed(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire) || self.0.closed.load(Ordering::Acquire)
    }

    /// Resolves once stop is asked (at once if it already was), or once every handle is
    /// gone (treated as stopped).
    pub async fn stopped(&mut self) {
        let state = &*self.0;
        loop {
            let notified = state.notify.notified();
            tokio::pin!(notified);
            // Registered before the flags are read, so a stop between the two is not missed.
            notified.as_mut().enable();
            if state.stopped.load(Ordering::Acquire) || state.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// The start of one request: one read of the monotonic clock.
///
/// The wall-clock start a record carries is derived from it when the request is recorded
/// ([`RequestTimer::wall`]): the process reads the wall clock once, beside a monotonic
/// instant, and every later start is that wall time plus the monotonic time since. So a
/// request costs two clock reads (its start and its end), and its wall-clock start follows
/// the monotonic clock (a wall-clock step during a run does not move it).
#[derive(Debug, Clone, Copy)]
pub struct RequestTimer {
    start: Instant,
}

/// The monotonic instant and wall-clock time read together once per process (the wall-clock
/// time also in nanoseconds since the Unix epoch).
fn clock_anchor() -> &'static (Instant, SystemTime, u64) {
    static ANCHOR: OnceLock<(Instant, SystemTime, u64)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let wall = SystemTime::now();
        (Instant::now(), wall, crate::wall::epoch_ns(wall))
    })
}

impl RequestTimer {
    /// Starts timing now (one read of the monotonic clock).
    pub fn start() -> Self {
        // The anchor first, so that every start is at or after it.
        clock_anchor();
        Self {
            start: Instant::now(),
        }
    }

    /// A timer that started at `start` (a start read elsewhere, to save a clock read).
    pub fn started_at(start: Instant) -> Self {
        Self { start }
    }

    /// When timing started, on the monotonic clock.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Time since the start.
    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }

    /// The wall-clock time of the start (the process's anchor plus the monotonic time since;
    /// no clock read).
    pub fn wall(&self) -> SystemTime {
        let (instant, wall, _) = *clock_anchor();
        match self.start.checked_duration_since(instant) {
            Some(since) => wall.checked_add(since).unwrap_or(wall),
            None => wall
                .checked_sub(instant.duration_since(self.start))
                .unwrap_or(wall),
        }
    }

    /// [`wall`](Self::wall) in nanoseconds since the Unix epoch, by integer arithmetic.
    pub(crate) fn wall_ns(&self) -> u64 {
        use crate::wall::nanos;
        let (instant, _, wall_ns) = *clock_anchor();
        match self.start.checked_duration_since(instant) {
            Some(since) => wall_ns.saturating_add(nanos(since)),
            None => wall_ns.saturating_sub(nanos(instant.duration_since(self.start))),
        }
    }
}

/// What a request is recorded under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// Protocol verb (`GET`, `WS`, ...).
    pub request_type: Arc<str>,
    /// Statistics name.
    pub name: Arc<str>,
    /// Full URL or address.
    pub url: Arc<str>,
}

impl RequestMeta {
    /// Builds request metadata.
    pub fn new(
        request_type: impl Into<Arc<str>>,
        name: impl Into<Arc<str>>,
        url: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            request_type: request_type.into(),
            name: name.into(),
            url: url.into(),
        }
    }
}

/// One user's view of its run.
///
/// The scenario tells the context which task is running ([`UserContext::begin_task`]), so
/// that [`UserContext::record_response`] applies that task's assertions and extractors
/// ([`crate::checks`]); a protocol only records its requests.
#[derive(Debug)]
pub struct UserContext {
    user_id: u64,
    bus: Arc<EventBus>,
    variables: UserVariables,
    stop: StopSignal,
    /// Set when this user must stop on its own (its data ran out), whatever the run does.
    finished: bool,
    /// The run's stop handle, for a user that must end the whole run.
    run_stop: Option<StopHandle>,
    /// Fires when the tasks still in flight after a stop must be cut off.
    cancel: Option<StopSignal>,
    /// The running task's checks; `None` when it has none (or no task is running), which
    /// keeps recording a response as cheap as without the task language.
    checks: Option<Arc<TaskChecks>>,
    /// How late the running iteration started against its due time, when it has one; copied
    /// into every request it records (the corrected latency).
    start_delay: Option<std::time::Duration>,
    /// Iterations finished and not yet handed to the bus (they travel with the next request,
    /// or when the context is dropped).
    iterations: u64,
    /// When the running task's first request started ([`UserContext::start_timer`]): what a
    /// task cut off or panicking is timed from, so that the scenario reads no clock of its
    /// own per task.
    task_start: Option<Instant>,
    /// The local address this user opens its connections from (`source_addresses`).
    source_address: Option<std::net::IpAddr>,
}

impl Drop for UserContext {
    fn drop(&mut self) {
        self.bus.count_iterations(self.iterations);
    }
}

impl UserContext {
    /// A context for user `user_id`.
    pub fn new(
        user_id: u64,
        bus: Arc<EventBus>,
        variables: UserVariables,
        stop: StopSignal,
    ) -> Self {
        Self {
            user_id,
            bus,
            variables,
            stop,
            finished: false,
            run_stop: None,
            cancel: None,
            checks: None,
            start_delay: None,
            iterations: 0,
            task_start: None,
            source_address: None,
        }
    }

    /// Starts timing a request (one clock read, as [`RequestTimer::start`]). The first timer a
    /// task starts this way is also what the task is timed from if it is cut off by the end
    /// of the test or panics, so protocols should start their timers here.
    pub fn start_timer(&mut self) -> RequestTimer {
        let timer = RequestTimer::start();
        if self.task_start.is_none() {
            self.task_start = Some(timer.started());
        }
        timer
    }

    /// The timer of the running task's first request, when it started one through
    /// [`UserContext::start_timer`]; else a timer started now (a task cut off before its first
    /// request is recorded with the time from then on, about zero).
    pub fn task_timer(&self) -> RequestTimer {
        match self.task_start {
            Some(start) => RequestTimer::started_at(start),
            None => RequestTimer::start(),
        }
    }

    /// Gives the user a local address to open its connections from (its group's
    /// `source_addresses`, round-robin over the group's users).
    pub fn with_source_address(mut self, address: Option<std::net::IpAddr>) -> Self {
        self.source_address = address;
        self
    }

    /// The local address this user's connections bind to, when its group gives
    /// `source_addresses`. A protocol passes it to
    /// [`source_address::connect_tcp`](crate::source_address::connect_tcp) (or its library's
    /// equivalent) wherever it opens a socket.
    pub fn source_address(&self) -> Option<std::net::IpAddr> {
        self.source_address
    }

    /// Sets how late the coming iteration started against its due time (`None`: it has no
    /// due time). Every request recorded until the next call carries it, so statistics keep
    /// its corrected latency too. The loop that runs iterations calls this; a protocol does
    /// not need to.
    pub fn set_start_delay(&mut self, delay: Option<std::time::Duration>) {
        self.start_delay = delay;
    }

    /// The start delay of the running iteration (see [`UserContext::set_start_delay`]).
    pub fn start_delay(&self) -> Option<std::time::Duration> {
        self.start_delay
    }

    /// Counts one finished iteration of this user (for `totals.iterations`). No lock: the
    /// count travels with the user's next request (or when the context is dropped).
    pub fn count_iteration(&mut self) {
        self.iterations += 1;
    }

    /// Counts iterations a schedule wanted that never started.
    pub fn count_dropped(&self, dropped: u64) {
        self.bus.count_dropped(dropped);
    }

    /// The user's id, unique within the run.
    pub fn user_id(&self) -> u64 {
        self.user_id
    }

    /// The user's variables (its own scope over the run's).
    pub fn variables(&self) -> &UserVariables {
        &self.variables
    }

    /// The user's variables, to write to its own scope.
    pub fn variables_mut(&mut self) -> &mut UserVariables {
        &mut self.variables
    }

    /// Gives the context the run's stop handle, so that [`UserContext::stop_run`] can end the
    /// whole run (a data source configured with `on_end: "stop_run"`).
    pub fn with_run_stop(mut self, run_stop: StopHandle) -> Self {
        self.run_stop = Some(run_stop);
        self
    }

    /// Gives the context the run's cancel signal: when it fires (after a stop, once the grace
    /// for tasks in flight is over), the scenario cuts off the running task and records it as
    /// a failure ([`CANCELLED_BY_STOP`]).
    pub fn with_cancel(mut self, cancel: StopSignal) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Takes the cancel signal out of the context, if the run has one, so a caller can wait on
    /// it while the context runs a task; give it back with
    /// [`restore_cancel_signal`](Self::restore_cancel_signal). Moving it costs nothing, where a
    /// clone would touch a reference count every user of the run shares.
    pub fn take_cancel_signal(&mut self) -> Option<StopSignal> {
        self.cancel.take()
    }

    /// Gives back the signal [`take_cancel_signal`](Self::take_cancel_signal) took.
    pub fn restore_cancel_signal(&mut self, cancel: StopSignal) {
        self.cancel = Some(cancel);
    }

    /// Whether this user must stop: the run asked, or the user finished on its own.
    pub fn is_stopping(&self) -> bool {
        self.finished || self.stop.is_stopped()
    }

    /// Resolves when this user must stop.
    pub async fn stopped(&mut self) {
        if self.finished {
            return;
        }
        self.stop.stopped().await
    }

    /// Ends this user after its current task; the rest of the run goes on.
    pub fn finish_user(&mut self) {
        self.finished = true;
    }

    /// Ends this user and asks the whole run to stop.
    pub fn stop_run(&mut self) {
        self.finished = true;
        match &self.run_stop {
            Some(handle) => handle.stop(),
            None => tracing::warn!("stop_run asked by a user that has no run stop handle"),
        }
    }

    /// A copy of the stop signal, to select on while waiting.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Marks the start of a task with these checks; every response recorded until
    /// [`UserContext::end_task`] is judged by them. The scenario calls this; a protocol does
    /// not need to.
    pub fn begin_task(&mut self, checks: &Arc<TaskChecks>) {
        self.task_start = None;
        self.checks = if checks.is_empty() {
            None
        } else {
            Some(Arc::clone(checks))
        };
    }

    /// Marks the end of the running task: responses recorded from now on (in `on_stop`, say)
    /// are judged by the protocol's verdict alone.
    pub fn end_task(&mut self) {
        self.checks = None;
    }

    /// The running task's checks, when it has any.
    pub fn task_checks(&self) -> Option<&TaskChecks> {
        self.checks.as_deref()
    }

    /// Whether the running task's checks read the body: when this is false a protocol may
    /// leave [`Response::body`] empty (and skip buffering the body).
    pub fn needs_body(&self) -> bool {
        self.checks
            .as_ref()
            .is_some_and(|checks| checks.needs_body())
    }

    /// Records a request that got a response.
    ///
    /// Without checks on the running task, it is a failure when the protocol says so
    /// ([`Response::failure`]). Otherwise the task's assertions decide too, and its extractors
    /// write to this user's variables on success; see [`crate::checks`] for the rule.
    pub fn record_response(
        &mut self,
        meta: &RequestMeta,
        timer: RequestTimer,
        response: &dyn Response,
    ) {
        let response_time = timer.elapsed();
        let error = match &self.checks {
            None => response.failure().map(|reason| Arc::from(reason.as_ref())),
            Some(checks) => checks.verdict(response, response_time, &mut self.variables),
        };
        self.bus.record(
            Sample {
                request_type: &meta.request_type,
                name: &meta.name,
                url: &meta.url,
                status: response.status(),
                response_time,
                response_length: response.length(),
                error,
                start_ns: timer.wall_ns(),
                start_delay: self.start_delay,
            },
            std::mem::take(&mut self.iterations),
        );
    }

    /// Records a request measured elsewhere: `start_time` is when it began (wall clock) and
    /// `response_time` how long it took. For end-to-end latencies that span processes, such as
    /// a message stamped by its publisher and received here on the side. The running task did
    /// not make this request, so its assertions and extractors do not apply; only the
    /// protocol's own verdict ([`Response::failure`]) does.
    pub fn record_measured(
        &mut self,
        meta: &RequestMeta,
        start_time: SystemTime,
        response_time: std::time::Duration,
        response: &dyn Response,
    ) {
        let error = response.failure().map(|reason| Arc::from(reason.as_ref()));
        self.bus.record(
            Sample {
                request_type: &meta.request_type,
                name: &meta.name,
                url: &meta.url,
                status: response.status(),
                response_time,
                response_length: response.length(),
                error,
                start_ns: crate::wall::epoch_ns(start_time),
                start_delay: None,
            },
            std::mem::take(&mut self.iterations),
        );
    }

    /// Records a request that failed: no response, or a response that fails a protocol's own
    /// check. The task's assertions and extractors do not run.
    pub fn record_failure(
        &mut self,
        meta: &RequestMeta,
        timer: RequestTimer,
        status: Option<u16>,
        response_length: u64,
        error: impl Display,
    ) {
        let response_time = timer.elapsed();
        self.bus.record(
            Sample {
                request_type: &meta.request_type,
                name: &meta.name,
                url: &meta.url,
                status,
                response_time,
                response_length,
                error: Some(Arc::from(error.to_string())),
                start_ns: timer.wall_ns(),
                start_delay: self.start_delay,
            },
            std::mem::take(&mut self.iterations),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timers_wall_time_in_nanoseconds_is_its_wall_time() {
        for _ in 0..1_000 {
            let timer = RequestTimer::start();
            assert_eq!(timer.wall_ns(), crate::wall::epoch_ns(timer.wall()));
        }
        // A start before the anchor (a timer built from an earlier instant) counts back.
        let anchor = clock_anchor();
        let earlier = RequestTimer {
            start: anchor.0 - std::time::Duration::from_millis(1_500),
        };
        assert_eq!(earlier.wall_ns(), anchor.2 - 1_500_000_000);
        assert_eq!(earlier.wall_ns(), crate::wall::epoch_ns(earlier.wall()));
    }
}
