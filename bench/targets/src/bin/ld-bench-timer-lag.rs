//! `ld-bench-timer-lag`: how late a 1 ms timer fires on the runtime's worker threads (the
//! threads that run the users) while a full-rate `fast_http_user` run goes on.
//!
//! ```sh
//! cargo build --release -p ld-bench-targets
//! ld-bench-timer-lag HOST [USERS] [SECONDS] [--floor]    # HOST: http://127.0.0.1:PORT (nginx)
//! ```
//!
//! The process builds the runtime `start_test` builds (one worker thread per CPU it may use),
//! spawns the probe tasks, then runs USERS (default 50) `fast_http_user`s without wait
//! against `HOST/index.html` for SECONDS (default 10). Each probe loops: note the time,
//! sleep 1 ms, record how much longer than 1 ms the sleep took. Two kinds of probe run side
//! by side:
//!
//! - `tokio`: one per worker thread, sleeping on `tokio::time::sleep`. tokio's timer wheel
//!   has a 1 ms tick, so an idle 1 ms sleep is already up to about 1 ms late: this lag is
//!   the timer's resolution plus what the load adds.
//! - `precise`: one, sleeping on LoadDensity's start clock
//!   ([`load_density_core::start_clock::sleep_until`], the timer the open workload models
//!   start iterations with), which wakes the task within microseconds of the instant: its
//!   lag is how long a woken task waits for its worker thread, which is what a collector
//!   holding a worker thread would show. One only: one per thread would ask the start clock
//!   for about 2,000 waits a second, where it hands dense schedules back to tokio's timer.
//!
//! With `--floor`, the load is not LoadDensity's but the bare HTTP floor
//! (`ld_bench_targets::floor::http`, bare: the same requests on the same runtime, nothing
//! parsed past the first response, timed or recorded): the lag any Tokio-based generator
//! would show on this machine under that load.
//!
//! The probes first run 2 s with no load (the baseline), then during the load. Prints one
//! JSON line: `{"idle": {...}, "load": {...}, "precise_idle": {...}, "precise_load": {...},
//! "requests", "failures", "cpu_s"}`, each lag summary with `samples`, `p50_us`, `p99_us`,
//! `p999_us` and `max_us` of the lag past the 1 ms asked.
//!
//! `bench/timer_lag.py` starts nginx and runs this binary; see it for the full procedure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ld_bench_targets::floor::{self, Target, Work};
use load_density::config::StartTest;
use serde_json::json;

type Lags = Arc<Mutex<Vec<u64>>>;

/// The timer a probe sleeps on.
#[derive(Clone, Copy)]
enum Timer {
    /// `tokio::time::sleep` (1 ms resolution).
    Tokio,
    /// LoadDensity's start clock (microseconds).
    Precise,
}

/// The probes of one phase: the tokio probes' lags and the precise probe's.
struct Probes {
    running: Arc<AtomicBool>,
    tokio: Lags,
    precise: Lags,
}

impl Probes {
    fn start(threads: usize) -> Self {
        let probes = Probes {
            running: Arc::new(AtomicBool::new(true)),
            tokio: Lags::default(),
            precise: Lags::default(),
        };
        spawn_probes(threads, Timer::Tokio, &probes.running, &probes.tokio);
        spawn_probes(1, Timer::Precise, &probes.running, &probes.precise);
        probes
    }

    /// Stops the probes and returns the tokio and precise lags.
    async fn stop(self) -> (Vec<u64>, Vec<u64>) {
        self.running.store(false, Ordering::Relaxed);
        // Let every probe finish its last sleep and hand its samples over.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let take =
            |lags: &Lags| std::mem::take(&mut *lags.lock().unwrap_or_else(PoisonError::into_inner));
        (take(&self.tokio), take(&self.precise))
    }
}

fn spawn_probes(count: usize, timer: Timer, running: &Arc<AtomicBool>, lags: &Lags) {
    for _ in 0..count {
        let running = running.clone();
        let lags = lags.clone();
        tokio::spawn(async move {
            let mut mine = Vec::with_capacity(1 << 14);
            while running.load(Ordering::Relaxed) {
                let start = Instant::now();
                match timer {
                    Timer::Tokio => tokio::time::sleep(Duration::from_millis(1)).await,
                    Timer::Precise => {
                        load_density_core::start_clock::sleep_until(
                            start + Duration::from_millis(1),
                        )
                        .await
                    }
                }
                let late = start.elapsed().saturating_sub(Duration::from_millis(1));
                mine.push(u64::try_from(late.as_micros()).unwrap_or(u64::MAX));
            }
            lags.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(mine);
        });
    }
}

fn summary(mut lags: Vec<u64>) -> serde_json::Value {
    lags.sort_unstable();
    let at = |q: f64| {
        if lags.is_empty() {
            0
        } else {
            let rank = ((lags.len() as f64 * q).ceil() as usize).clamp(1, lags.len());
            lags[rank - 1]
        }
    };
    json!({
        "samples": lags.len(),
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": lags.last().copied().unwrap_or(0),
    })
}

async fn probe_for(threads: usize, seconds: f64) -> (Vec<u64>, Vec<u64>) {
    let probes = Probes::start(threads);
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    probes.stop().await
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let bare_floor = args.iter().any(|arg| arg == "--floor");
    args.retain(|arg| arg != "--floor");
    let Some(host) = args.first().cloned() else {
        bail!("usage: ld-bench-timer-lag HOST [USERS] [SECONDS] [--floor]");
    };
    if !host.starts_with("http://127.") {
        bail!("HOST must be a loopback URL (http://127.x.y.z:PORT), got {host}");
    }
    let users: u64 = args
        .get(1)
        .map(|v| v.parse())
        .transpose()
        .context("USERS")?
        .unwrap_or(50);
    let seconds: f64 = args
        .get(2)
        .map(|v| v.parse())
        .transpose()
        .context("SECONDS")?
        .unwrap_or(10.0);
    let threads = load_density::env::worker_threads();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(threads).enable_all();
    // Exploring the scheduler's intervals without rebuilding (bench/RESULTS.md section 12).
    if let Some(interval) = interval_from_env("LD_BENCH_GLOBAL_QUEUE_INTERVAL")? {
        builder.global_queue_interval(interval);
    }
    if let Some(interval) = interval_from_env("LD_BENCH_EVENT_INTERVAL")? {
        builder.event_interval(interval);
    }
    let runtime = builder.build()?;
    let config: StartTest = serde_json::from_value(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": users,
        "spawn_rate": 100000,
        "test_time": seconds,
        "host": host,
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/index.html"}],
    }))
    .context("the start_test configuration")?;
    let report = runtime.block_on(async move {
        let (idle, precise_idle) = probe_for(threads, 2.0).await;
        let cpu_before = cpu_seconds();
        let probes = Probes::start(threads);
        let outcome = if bare_floor {
            floor_load(&host, users, seconds).await
        } else {
            load_density::start_test_async(config)
                .await
                .map(|run| (run.totals.requests, run.totals.failures))
                .context("the run")
        };
        let (load, precise_load) = probes.stop().await;
        let cpu = cpu_seconds() - cpu_before;
        let (requests, failures) = outcome?;
        anyhow::Ok(json!({
            "load_by": if bare_floor { "floor" } else { "load-density" },
            "threads": threads,
            "users": users,
            "seconds": seconds,
            "idle": summary(idle),
            "load": summary(load),
            "precise_idle": summary(precise_idle),
            "precise_load": summary(precise_load),
            "requests": requests,
            "failures": failures,
            "cpu_s": cpu,
        }))
    })?;
    println!("{report}");
    Ok(())
}

/// Runs `users` bare HTTP floor users against `host`/index.html for `seconds` on the
/// current runtime; returns the requests done and 0 failures (a floor user stops the run at
/// its first error).
async fn floor_load(host: &str, users: u64, seconds: f64) -> anyhow::Result<(u64, u64)> {
    let target = Target::parse(&format!("{host}/index.html"), "http")?;
    let until = Instant::now() + Duration::try_from_secs_f64(seconds).context("SECONDS")?;
    let users = usize::try_from(users).context("USERS")?;
    let done = floor::run_users(users, until, |count| {
        floor::http(target.clone(), Work::Bare, until, count)
    })
    .await?;
    Ok((done, 0))
}

/// A positive scheduler interval from the environment variable `name`, if set.
fn interval_from_env(name: &str) -> anyhow::Result<Option<u32>> {
    match std::env::var(name) {
        Ok(value) => {
            let interval: u32 = value.parse().with_context(|| format!("{name}={value}"))?;
            if interval == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(Some(interval))
        }
        Err(_) => Ok(None),
    }
}
