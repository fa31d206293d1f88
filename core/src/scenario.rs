//! The user loop: walk the task list once per iteration, until the run stops.
//!
//! [`Scenario::new`] compiles, once per group, what core handles for every protocol: weights,
//! the `run_if` / `skip_if` conditions ([`crate::predicate`]) and the assertions and extractors
//! ([`crate::checks`]). Each iteration then picks tasks by the scenario mode, checks their
//! conditions with the user's variables, and hands the task's checks to the user's context
//! before running it.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use crate::checks::TaskChecks;
use crate::context::{RequestMeta, RequestTimer, StopSignal, UserContext, CANCELLED_BY_STOP};
use crate::data::OnEnd;
use crate::pacing::{PacedSchedule, Pacing};
use crate::predicate::Predicate;
use crate::task::{PlanError, ScenarioMode, TaskDef, TaskList};
use crate::template::{JsonTemplate, Placeholder, Template};
use crate::unwind::CatchPanic;
use crate::user::{StaticUser, UserTemplate};
use crate::variables::UserVariables;

/// After this many iterations in a row that ran no task, a user pauses.
const IDLE_ITERATIONS: u32 = 64;

/// How long a user pauses when its iterations keep running no task.
const IDLE_PAUSE: Duration = Duration::from_millis(10);

/// What core compiled for one task.
#[derive(Debug, Clone)]
struct TaskSetup {
    run_if: Option<Predicate>,
    skip_if: Option<Predicate>,
    checks: Arc<TaskChecks>,
    /// What the task is recorded under when it is cut off by the end of the test.
    cancel_meta: RequestMeta,
    /// One `(source, column)` per CSV source the task reads, to bind its rows before the
    /// task builds anything.
    csv: Vec<(String, String)>,
}

impl TaskSetup {
    fn compile(task: &TaskDef) -> Result<Self, PlanError> {
        let common = task.common();
        let condition = |key: &str, value: &Option<Value>| {
            value
                .as_ref()
                .map(|value| Predicate::compile(task.index(), key, value))
                .transpose()
        };
        Ok(Self {
            run_if: condition("run_if", &common.run_if)?,
            skip_if: condition("skip_if", &common.skip_if)?,
            checks: Arc::new(TaskChecks::compile(task)?),
            cancel_meta: cancel_meta(task),
            csv: csv_sources_of(task),
        })
    }

    /// `run_if` (if any) holds and `skip_if` (if any) does not.
    fn allows(&self, vars: &UserVariables) -> bool {
        self.run_if.as_ref().is_none_or(|p| p.evaluate(vars))
            && !self.skip_if.as_ref().is_some_and(|p| p.evaluate(vars))
    }
}

/// What a task cut off by the end of the test is recorded under: its method (upper case; the
/// protocol's own verb is not known here) and its `name`, else its URL or topic as written.
fn cancel_meta(task: &TaskDef) -> RequestMeta {
    let text = |key: &str| task.keys().get(key).and_then(Value::as_str);
    let request_type = text("method").map_or_else(|| "TASK".to_owned(), str::to_uppercase);
    let url = ["request_url", "url", "topic", "address"]
        .iter()
        .find_map(|key| text(key))
        .map_or_else(|| format!("tasks[{}]", task.index()), str::to_owned);
    let name = text("name").map_or_else(|| url.clone(), str::to_owned);
    RequestMeta::new(request_type, name, url)
}

/// One `(source, column)` for each CSV source a task's strings read (its protocol keys and
/// core's keys alike).
fn csv_sources_of(task: &TaskDef) -> Vec<(String, String)> {
    let common = task.common();
    let mut all = Value::Object(task.keys().clone());
    if let Value::Object(map) = &mut all {
        for (key, value) in [
            ("run_if", &common.run_if),
            ("skip_if", &common.skip_if),
            ("assertions", &common.assertions),
            ("extract", &common.extract),
        ] {
            if let Some(value) = value {
                map.insert(key.to_owned(), value.clone());
            }
        }
    }
    let template = JsonTemplate::new(all);
    let mut found: Vec<(String, String)> = Vec::new();
    for placeholder in template
        .templates()
        .into_iter()
        .flat_map(Template::placeholders)
    {
        if let Placeholder::Csv { source, column } = placeholder {
            if !found.iter().any(|(s, _)| s == source) {
                found.push((source.clone(), column.clone()));
            }
        }
    }
    found
}

/// How one group's users pick tasks each iteration.
#[derive(Debug, Clone)]
pub struct Scenario {
    mode: ScenarioMode,
    tasks: Vec<TaskSetup>,
    /// Cumulative weights (weighted mode only).
    cumulative: Vec<u64>,
}

impl Scenario {
    /// Builds the scenario of a task list, validating and compiling the keys core handles:
    /// `weight`, `run_if`, `skip_if`, `assertions`, `extract`. An error names the task index
    /// and the key (`tasks[1].assertions[0].pattern`).
    pub fn new(tasks: &TaskList) -> Result<Self, PlanError> {
        let mut cumulative = Vec::with_capacity(tasks.len());
        let mut setups = Vec::with_capacity(tasks.len());
        let mut sum = 0u64;
        for task in tasks.tasks() {
            let common = task.common();
            let weight = match &common.weight {
                None => 1,
                Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                    PlanError::task(
                        task.index(),
                        "weight",
                        format!("weight must be a whole number >= 0, got {n}"),
                    )
                })?,
                Some(other) => {
                    return Err(PlanError::task(
                        task.index(),
                        "weight",
                        format!("weight must be a whole number >= 0, got {other}"),
                    ))
                }
            };
            sum += weight;
            cumulative.push(sum);
            setups.push(TaskSetup::compile(task)?);
        }
        Ok(Self {
            mode: tasks.mode(),
            tasks: setups,
            cumulative,
        })
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() || (self.mode == ScenarioMode::Weighted && self.total_weight() == 0)
    }

    /// The compiled assertions and extractors of the task at `index`.
    pub fn checks(&self, index: usize) -> Option<&Arc<TaskChecks>> {
        self.tasks.get(index).map(|task| &task.checks)
    }

    /// Whether the task at `index` would run for a user with these variables (its `run_if`
    /// and `skip_if`); `false` for an index out of range.
    pub fn conditions_hold(&self, index: usize, vars: &UserVariables) -> bool {
        self.tasks.get(index).is_some_and(|task| task.allows(vars))
    }

    fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    fn pick_weighted(&self) -> Option<usize> {
        let total = self.total_weight();
        if total == 0 {
            return None;
        }
        let ticket = rand::rng().random_range(0..total);
        Some(self.cumulative.partition_point(|&c| c <= ticket))
    }

    /// Runs one iteration for one user and returns how many tasks ran. Stops early when the
    /// run stops.
    ///
    /// - Sequence and conditional modes: every task in order, skipping those whose
    ///   conditions do not hold ("conditional" is the same as "sequence": conditions apply in
    ///   every mode).
    /// - Weighted mode: one task picked by weight (a weight of 0 is never picked), which runs
    ///   only if its conditions hold; nothing runs otherwise.
    pub async fn run_iteration(&self, user: &mut dyn UserTemplate, ctx: &mut UserContext) -> usize {
        self.iterate(user, ctx, &mut None).await
    }

    /// [`Scenario::run_iteration`] for any user the loop can drive (boxed or not); `cancel`
    /// watches the run's cancel signal across iterations (else each task watches it anew).
    async fn iterate<U: Driven + ?Sized>(
        &self,
        user: &mut U,
        ctx: &mut UserContext,
        cancel: &mut Option<CancelWatch<'_>>,
    ) -> usize {
        match self.mode {
            ScenarioMode::Weighted => match self.pick_weighted() {
                Some(index) => usize::from(self.run_task(index, user, ctx, cancel).await),
                None => 0,
            },
            ScenarioMode::Sequence | ScenarioMode::Conditional => {
                let mut ran = 0;
                for index in 0..self.tasks.len() {
                    if ctx.is_stopping() {
                        break;
                    }
                    if self.run_task(index, user, ctx, cancel).await {
                        ran += 1;
                    }
                }
                ran
            }
        }
    }

    /// Runs the task at `index` if its conditions hold; returns whether it ran.
    async fn run_task<U: Driven + ?Sized>(
        &self,
        index: usize,
        user: &mut U,
        ctx: &mut UserContext,
        cancel: &mut Option<CancelWatch<'_>>,
    ) -> bool {
        let Some(task) = self.tasks.get(index) else {
            return false;
        };
        // A fresh CSV row per task execution, bound before the conditions so that the
        // conditions and the task see the same values.
        ctx.variables_mut().begin_task();
        // Bind the rows now: a source that has run out ends the user (or the run) before a
        // request is built, so no request ever carries an unresolved `${csv...}`.
        for (source, column) in &task.csv {
            let _ = ctx.variables().csv_field(source, column);
        }
        if let Some(on_end) = ctx.variables_mut().take_exhausted() {
            match on_end {
                OnEnd::StopUser => ctx.finish_user(),
                OnEnd::StopRun => ctx.stop_run(),
            }
            return false;
        }
        if !task.allows(ctx.variables()) {
            return false;
        }
        // No clock is read here: a task cut off or panicking is timed from its first request
        // (the protocol's own timer, `UserContext::start_timer`).
        ctx.begin_task(&task.checks);
        // `None`: the run's stop cut the task off.
        let finished = match (cancel.as_mut(), ctx.take_cancel_signal()) {
            (Some(watch), signal) => {
                if let Some(signal) = signal {
                    ctx.restore_cancel_signal(signal);
                }
                let mut task = CatchPanic(pin!(user.task(index, ctx)));
                poll_fn(|cx| match Pin::new(&mut task).poll(cx) {
                    Poll::Ready(outcome) => Poll::Ready(Some(outcome)),
                    Poll::Pending => watch.poll_cancelled(cx).map(|()| None),
                })
                .await
            }
            (None, None) => Some(CatchPanic(pin!(user.task(index, ctx))).await),
            (None, Some(mut cancel)) => {
                let finished = {
                    let task = pin!(user.task(index, ctx));
                    tokio::select! {
                        outcome = CatchPanic(task) => Some(outcome),
                        () = cancel.stopped() => None,
                    }
                };
                ctx.restore_cancel_signal(cancel);
                finished
            }
        };
        let Some(outcome) = finished else {
            let timer = ctx.task_timer();
            ctx.end_task();
            ctx.record_failure(&task.cancel_meta, timer, None, 0, CANCELLED_BY_STOP);
            return true;
        };
        if let Err(message) = outcome {
            let timer = ctx.task_timer();
            ctx.end_task();
            record_panic(ctx, &format!("task {index}"), timer, &message);
            return true;
        }
        ctx.end_task();
        match ctx.variables_mut().take_exhausted() {
            Some(OnEnd::StopUser) => ctx.finish_user(),
            Some(OnEnd::StopRun) => ctx.stop_run(),
            None => {}
        }
        true
    }
}

/// Runs one user until the run stops: `on_start`, iterations separated by `pacing`, `on_stop`.
///
/// A user that panics (in a task, `on_start` or `on_stop`) is caught: the panic is recorded as
/// a failure of request type [`PANIC_REQUEST_TYPE`] named after where it happened (`task 2`),
/// with the panic's message, and the user stops (after its `on_stop`), so the run counts it as
/// stopped and goes on.
///
/// The request in flight when stop is asked finishes (or times out) and is recorded; no new
/// task starts after it. A user whose iterations keep running no task (every condition false)
/// pauses briefly now and then instead of spinning.
///
/// Every iteration is counted ([`UserContext::count_iteration`]). Under `constant_pacing` /
/// `constant_throughput` the user keeps a schedule ([`PacedSchedule`]): each iteration's
/// start delay goes into its requests' corrected latency, and the slots an overrun jumps
/// over are counted as dropped iterations.
///
/// A user type that runs its tasks without a box each ([`StaticUser`], wrapped in
/// [`Unboxed`](crate::user::Unboxed)) is driven by a copy of this loop made for its type: one
/// box for the user's whole run instead of one per task.
///
/// The returned future holds the user's context once: an `async fn` would hold it twice (its
/// argument and the local it is moved into), in every user's task.
// Not an `async fn`: it would hold the context twice (see above).
#[allow(clippy::manual_async_fn)]
pub fn run_user(
    mut user: Box<dyn UserTemplate>,
    mut ctx: UserContext,
    scenario: Arc<Scenario>,
    pacing: Pacing,
) -> impl Future<Output = ()> + Send {
    async move {
        if let Some(run) = user.drive(&mut ctx, &scenario, pacing) {
            run.await;
            return;
        }
        // Boxed: inline, this path's future would take room in every user's task, also for
        // the users that take the path above.
        Box::pin(drive_user(user.as_mut(), &mut ctx, &scenario, pacing)).await;
    }
}

/// The user loop of [`run_user`], for any user it can drive.
pub(crate) async fn drive_user<U: Driven + ?Sized>(
    user: &mut U,
    ctx: &mut UserContext,
    scenario: &Scenario,
    pacing: Pacing,
) {
    let ctx = &mut *ctx;
    let timer = RequestTimer::start();
    let started = CatchPanic(pin!(user.start(ctx))).await;
    if let Err(message) = started {
        record_panic(ctx, "on_start", timer, &message);
        return;
    }
    if scenario.is_empty() {
        ctx.stopped().await;
    }
    let mut stop = ctx.stop_signal();
    // The run's cancel signal, watched once for the user's whole life rather than once per
    // task: its wait is registered with the user's waker on the first task, and later tasks
    // only check whether it fired (an atomic load) while the waker stays the same.
    let probe = ctx.take_cancel_signal();
    let stopped = probe
        .clone()
        .map(|mut signal| async move { signal.stopped().await });
    let mut stopped = pin!(stopped);
    let mut cancel = match (stopped.as_mut().as_pin_mut(), probe) {
        (Some(stopped), Some(probe)) => Some(CancelWatch::new(stopped, probe)),
        _ => None,
    };
    let mut idle = 0u32;
    let mut schedule = pacing
        .period()
        .map(|period| PacedSchedule::new(Instant::now(), period));
    while !ctx.is_stopping() {
        // The clock is read here only for a paced schedule.
        if let Some(schedule) = schedule.as_mut() {
            let (delay, missed) = schedule.begin(Instant::now());
            ctx.count_dropped(missed);
            ctx.set_start_delay(Some(delay));
        }
        let ran = scenario.iterate(user, ctx, &mut cancel).await;
        if ran == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
        // An iteration cut off by the stop before its first task did not happen.
        if ran > 0 || !ctx.is_stopping() {
            ctx.count_iteration();
        }
        let mut wait = match &schedule {
            Some(schedule) => schedule.wait(Instant::now()),
            None => pacing.wait_unscheduled(),
        };
        if idle >= IDLE_ITERATIONS {
            idle = 0;
            wait = wait.max(IDLE_PAUSE);
        } else if let (Some(schedule), false) = (&schedule, wait.is_zero()) {
            // A slot is due: start on it within microseconds, not on tokio's millisecond.
            tokio::select! {
                _ = crate::start_clock::sleep_until(schedule.next_due()) => {}
                _ = stop.stopped() => {}
            }
            continue;
        }
        if wait.is_zero() {
            // Other users get their turn when this task's budget runs out (tokio's
            // co-operative budget, which I/O spends too), not after every iteration: a user
            // whose requests never wait (a task that fails before sending, say) still cannot
            // hold its worker thread.
            tokio::task::coop::consume_budget().await;
        } else {
            // The user sleeps: it gives back what it only needs while it works.
            user.idle();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.stopped() => {}
            }
        }
    }
    if let Some(watch) = cancel {
        ctx.restore_cancel_signal(watch.probe);
    }
    let timer = RequestTimer::start();
    let stopped = CatchPanic(pin!(user.stop(ctx))).await;
    if let Err(message) = stopped {
        record_panic(ctx, "on_stop", timer, &message);
    }
}

/// The run's cancel signal as one user's loop watches it, across its tasks.
///
/// Waiting on a `watch` channel costs a lock of its waiter list to register, one per poll
/// and one to unregister; per task, that was the largest cost of a request after the
/// protocol's own. Here the wait is made once, and polled again only when the user's waker
/// changed or the signal's version moved (an atomic load): a task of the same user is woken
/// by the same waker, so the registration made by an earlier task still wakes it.
pub(crate) struct CancelWatch<'a> {
    /// `StopSignal::stopped` on a copy of the signal, pinned in the user loop's frame.
    stopped: Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>,
    /// The signal itself: whether it changed since the wait was registered, without a lock.
    probe: StopSignal,
    /// The waker `stopped` was last polled with.
    waker: Option<Waker>,
    /// `stopped` finished (it must not be polled again).
    fired: bool,
}

impl<'a> CancelWatch<'a> {
    fn new(stopped: Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>, probe: StopSignal) -> Self {
        Self {
            stopped,
            probe,
            waker: None,
            fired: false,
        }
    }

    /// Ready once the run's tasks in flight must be cut off.
    fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired {
            return Poll::Ready(());
        }
        let registered = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if registered && !self.probe.has_changed() {
            return Poll::Pending;
        }
        match self.stopped.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.fired = true;
                self.waker = None;
                Poll::Ready(())
            }
            Poll::Pending => {
                if !registered {
                    self.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// What the user loop needs of a user: implemented for `dyn UserTemplate` (each call's future
/// is the box `#[async_trait]` makes) and for every [`StaticUser`] (each call's future is its
/// own type, nothing boxed).
pub(crate) trait Driven: Send {
    fn start<'a>(&'a mut self, ctx: &'a mut UserContext) -> impl Future<Output = ()> + Send + 'a;
    fn task<'a>(
        &'a mut self,
        index: usize,
        ctx: &'a mut UserContext,
    ) -> impl Future<Output = ()> + Send + 'a;
    fn idle(&mut self);
    fn stop<'a>(&'a mut self, ctx: &'a mut UserContext) -> impl Future<Output = ()> + Send + 'a;
}

impl Driven for dyn UserTemplate + '_ {
    fn start<'a>(&'a mut self, ctx: &'a mut UserContext) -> impl Future<Output = ()> + Send + 'a {
        self.on_start(ctx)
    }

    fn task<'a>(
        &'a mut self,
        index: usize,
        ctx: &'a mut UserContext,
    ) -> impl Future<Output = ()> + Send + 'a {
        self.run_task(index, ctx)
    }

    fn idle(&mut self) {
        self.on_idle();
    }

    fn stop<'a>(&'a mut self, ctx: &'a mut UserContext) -> impl Future<Output = ()> + Send + 'a {
        self.on_stop(ctx)
    }
}

impl<T: StaticUser> Driven for T {
    fn start<'a>(&'a mut self, ctx: &'a mut UserContext) -> impl Future<Output = ()> + Send + 'a {
        StaticUser::on_start(self, ctx)
    }

    fn task<'a>(
        &'a mut self,
        index: usize,
        ctx: &'a mut UserContext,
    ) -> impl Future<Output = ()> + Send + 'a {
        StaticUser::run_task(self, index, ctx)
    }

    fn idle(&mut self) {
        StaticUser::on_idle(self);
    }

    fn stop<'a>(&'a mut self, ctx: &'a mut UserContext) -> impl Future<Output = ()> + Send + 'a {
        StaticUser::on_stop(self, ctx)
    }
}

/// The request type of the failure recorded for a user that panicked.
pub const PANIC_REQUEST_TYPE: &str = "PANIC";

/// Records the failure of a user that panicked in `place` (`task 2`, `on_start`, ...) and
/// ends the user: its state is unknown, so it runs no further task.
fn record_panic(ctx: &mut UserContext, place: &str, timer: RequestTimer, message: &str) {
    tracing::error!(
        user = ctx.user_id(),
        place,
        message,
        "a user panicked; it is stopped"
    );
    let meta = RequestMeta::new(PANIC_REQUEST_TYPE, place, "");
    let error = format!("the user panicked in {place}: {message}");
    ctx.record_failure(&meta, timer, None, 0, error);
    ctx.finish_user();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn weights_validate_and_pick_proportionally() {
        let list = TaskList::from_json(&json!({"mode": "weighted", "tasks": [
            {"weight": 3}, {"weight": 0}, {"weight": 1}
        ]}))
        .expect("tasks");
        let scenario = Scenario::new(&list).expect("scenario");
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[scenario.pick_weighted().expect("pick")] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = f64::from(counts[0]) / f64::from(counts[2]);
        assert!((2.7..3.3).contains(&ratio), "ratio {ratio}");
        let bad = TaskList::from_json(&json!([{"weight": "x"}])).expect("tasks");
        let text = Scenario::new(&bad).expect_err("bad weight").to_string();
        assert!(text.contains("tasks[0].weight"), "{text}");
    }
}
