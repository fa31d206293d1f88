//! How late a schedule's waits end, and what that costs: one task walks evenly spaced due
//! instants at each rate, waiting on tokio's timer, then on the start clock
//! (`load_density_core::start_clock`); prints the lateness p50/p99/max and the process's CPU
//! per wait for each.
//!
//! Run: `cargo run --release -p load-density-core --example start_lag -- [SECONDS] [RATES]`
//! (defaults: 5 seconds, rates 200,1000,10000,50000 per second). Pin it to a CPU with
//! `taskset -c 0` to measure it as the benchmarks run the generator.

use std::time::{Duration, Instant};

use load_density_core::start_clock;

/// User plus system CPU seconds of this process so far (from `/proc/self/stat`, in clock
/// ticks of 10 ms).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

#[derive(Clone, Copy, PartialEq)]
enum Timer {
    Tokio,
    StartClock,
}

async fn walk(timer: Timer, rate: f64, seconds: f64) -> (Vec<u64>, f64) {
    let count = (rate * seconds) as u64;
    let origin = Instant::now() + Duration::from_millis(20);
    let cpu_before = cpu_seconds().unwrap_or(0.0);
    let mut lags = Vec::with_capacity(count as usize);
    for i in 0..count {
        let due = origin + Duration::from_secs_f64(i as f64 / rate);
        if due > Instant::now() {
            match timer {
                Timer::Tokio => tokio::time::sleep_until(due.into()).await,
                Timer::StartClock => start_clock::sleep_until(due).await,
            }
        }
        lags.push(Instant::now().saturating_duration_since(due).as_micros() as u64);
    }
    let cpu = cpu_seconds().unwrap_or(0.0) - cpu_before;
    lags.sort_unstable();
    (lags, cpu / count.max(1) as f64 * 1e6)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let rates: Vec<f64> = args
        .next()
        .unwrap_or_else(|| "200,1000,10000,50000".to_owned())
        .split(',')
        .filter_map(|r| r.parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("rate/s   timer        lag p50 us  p99 us   max us   CPU us/wait");
    for rate in rates {
        for timer in [Timer::Tokio, Timer::StartClock] {
            let (lags, cpu_us) = runtime.block_on(walk(timer, rate, seconds));
            let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
            println!(
                "{rate:>7}  {:<11}  {:>10}  {:>6}  {:>7}  {cpu_us:>10.2}",
                if timer == Timer::Tokio {
                    "tokio"
                } else {
                    "start_clock"
                },
                at(0.5),
                at(0.99),
                lags.last().copied().unwrap_or(0),
            );
        }
    }
    Ok(())
}
