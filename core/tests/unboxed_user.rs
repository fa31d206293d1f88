//! A `StaticUser` (tasks not boxed one per request) runs through core's user loop like any
//! user: its hooks are called, its requests recorded, a panic or a cut-off is recorded and
//! timed from the task's first request, and `on_idle` is called while it waits.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use load_density_core::context::{StopHandle, CANCELLED_BY_STOP};
use load_density_core::scenario::{run_user, PANIC_REQUEST_TYPE};
use load_density_core::{Pacing, RequestMeta, StaticUser, Unboxed, UserContext};
use serde_json::json;
use support::{FakeResponse, Harness};

/// How the test user's task behaves.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Records one response at once.
    Answer,
    /// Starts a timer, waits this long, then panics.
    PanicAfter(Duration),
    /// Starts a timer and never finishes.
    Hang,
    /// The first this many tasks wait a millisecond (so they are polled more than once) and
    /// record a response; the next one hangs.
    WaitThenHang(usize),
}

#[derive(Default)]
struct Calls {
    start: AtomicUsize,
    tasks: AtomicUsize,
    idle: AtomicUsize,
    stop: AtomicUsize,
}

struct TestUser {
    behaviour: Behaviour,
    calls: Arc<Calls>,
}

impl StaticUser for TestUser {
    async fn on_start(&mut self, _ctx: &mut UserContext) {
        self.calls.start.fetch_add(1, Ordering::SeqCst);
    }

    async fn run_task(&mut self, _index: usize, ctx: &mut UserContext) {
        let done = self.calls.tasks.fetch_add(1, Ordering::SeqCst);
        let timer = ctx.start_timer();
        match self.behaviour {
            Behaviour::Answer => {
                let meta = RequestMeta::new("GET", "answer", "/answer");
                ctx.record_response(&meta, timer, &FakeResponse::ok("ok"));
            }
            Behaviour::PanicAfter(wait) => {
                tokio::time::sleep(wait).await;
                panic!("the test user panics");
            }
            Behaviour::Hang => std::future::pending().await,
            Behaviour::WaitThenHang(waits) => {
                if done == waits {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                let meta = RequestMeta::new("GET", "answer", "/answer");
                ctx.record_response(&meta, timer, &FakeResponse::ok("ok"));
            }
        }
    }

    fn on_idle(&mut self) {
        self.calls.idle.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_stop(&mut self, _ctx: &mut UserContext) {
        self.calls.stop.fetch_add(1, Ordering::SeqCst);
    }
}

fn user(behaviour: Behaviour) -> (Box<Unboxed<TestUser>>, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let user = TestUser {
        behaviour,
        calls: calls.clone(),
    };
    (Box::new(Unboxed::new(user)), calls)
}

#[tokio::test]
async fn a_static_user_runs_its_tasks_and_hooks_and_idles_between_waits() {
    let harness = Harness::new(&[]);
    let scenario = Arc::new(support::scenario(&json!([{}])));
    let (user, calls) = user(Behaviour::Answer);
    let run = tokio::spawn(run_user(
        user,
        harness.context(1),
        scenario,
        Pacing::Constant(Duration::from_millis(5)),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    harness.stop.stop();
    run.await.expect("the user ends");
    let events = harness.take_events();
    let tasks = calls.tasks.load(Ordering::SeqCst);
    assert!(tasks >= 2, "{tasks} tasks in 100 ms with 5 ms waits");
    assert_eq!(events.len(), tasks, "one event per task");
    assert!(events
        .iter()
        .all(|e| e.is_success() && &*e.name == "answer"));
    assert_eq!(calls.start.load(Ordering::SeqCst), 1);
    assert_eq!(calls.stop.load(Ordering::SeqCst), 1);
    // Every task was followed by a wait, but the last one may have been cut short by the stop.
    assert!(calls.idle.load(Ordering::SeqCst) >= tasks - 1);
}

#[tokio::test]
async fn a_panic_in_a_static_user_is_recorded_and_timed_from_its_first_request() {
    let harness = Harness::new(&[]);
    let scenario = Arc::new(support::scenario(&json!([{}])));
    let wait = Duration::from_millis(30);
    let (user, calls) = user(Behaviour::PanicAfter(wait));
    // The user stops on its own after the panic: no stop is asked.
    tokio::time::timeout(
        Duration::from_secs(10),
        run_user(user, harness.context(1), scenario, Pacing::None),
    )
    .await
    .expect("a panicking user ends");
    let events = harness.take_events();
    assert_eq!(events.len(), 1, "one failure");
    let event = &events[0];
    assert_eq!(&*event.request_type, PANIC_REQUEST_TYPE);
    assert_eq!(&*event.name, "task 0");
    assert!(
        event.response_time >= wait,
        "timed from the task's first request: {:?}",
        event.response_time
    );
    assert_eq!(calls.stop.load(Ordering::SeqCst), 1, "on_stop still runs");
}

#[tokio::test]
async fn a_cut_off_task_is_timed_from_its_first_request() {
    let harness = Harness::new(&[]);
    let scenario = Arc::new(support::scenario(
        &json!([{"method": "get", "request_url": "/hang"}]),
    ));
    let cancel = StopHandle::new();
    let ctx = harness.context(1).with_cancel(cancel.signal());
    let (user, _calls) = user(Behaviour::Hang);
    let run = tokio::spawn(run_user(user, ctx, scenario, Pacing::None));
    let hung = Duration::from_millis(40);
    tokio::time::sleep(hung).await;
    harness.stop.stop();
    cancel.stop();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the user ends once cut off")
        .expect("no panic");
    let events = harness.take_events();
    assert_eq!(events.len(), 1, "the cut-off task is recorded once");
    let event = &events[0];
    assert_eq!(event.error.as_deref(), Some(CANCELLED_BY_STOP));
    assert_eq!(&*event.name, "/hang");
    assert!(
        event.response_time >= hung,
        "timed from the task's first request: {:?}",
        event.response_time
    );
}

/// The cancel signal is watched once per user, not once per task: a task that hangs after
/// several that waited (and returned) is still woken and cut off when the signal fires.
#[tokio::test]
async fn a_task_hanging_after_others_is_still_cut_off() {
    let harness = Harness::new(&[]);
    let scenario = Arc::new(support::scenario(
        &json!([{"method": "get", "request_url": "/hang"}]),
    ));
    let cancel = StopHandle::new();
    let ctx = harness.context(1).with_cancel(cancel.signal());
    let waits = 5;
    let (user, calls) = user(Behaviour::WaitThenHang(waits));
    let run = tokio::spawn(run_user(user, ctx, scenario, Pacing::None));
    tokio::time::timeout(Duration::from_secs(10), async {
        while calls.tasks.load(Ordering::SeqCst) <= waits {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the user reaches its hanging task");
    tokio::time::sleep(Duration::from_millis(20)).await;
    harness.stop.stop();
    cancel.stop();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the hanging task is cut off")
        .expect("no panic");
    let events = harness.take_events();
    assert_eq!(events.len(), waits + 1, "{events:?}");
    assert!(events[..waits].iter().all(|e| e.is_success()));
    assert_eq!(events[waits].error.as_deref(), Some(CANCELLED_BY_STOP));
    assert_eq!(calls.tasks.load(Ordering::SeqCst), waits + 1);
}
