//! Arrival-rate models: iterations start on a schedule, whatever the target's speed.
//!
//! The driver walks the due times of its share of the schedule
//! ([`ArrivalCursor`](crate::plan::ArrivalCursor)); at each one it hands the iteration to a
//! free user, starts a new user while fewer than `max_users` run, or else applies `when_busy`:
//! `"drop"` counts it dropped at once; `"delay"` waits for a free user and drops it only once
//! it is later than `max_start_delay`. A user measures how late its iteration started against
//! its due time, and every request of that iteration carries that delay (the corrected
//! latency).

use load_density_core::task::options::saturating_seconds;
use std::sync::Arc;
use std::time::Instant;

use load_density_core::context::StopHandle;
use tokio::sync::{mpsc, watch, Mutex, Semaphore};
use tokio::task::JoinSet;

use super::{log_join, NewUser, RunShared, Share};
use crate::plan::{ArrivalCursor, ArrivalModel, WhenBusy};

type Orders = Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>;

/// Runs group `group`'s arrival schedule, for the shares `share` gives (nothing until it
/// gives one), until the schedule ends or the run stops; then waits for its users.
pub(crate) async fn drive(
    shared: Arc<RunShared>,
    group: usize,
    model: ArrivalModel,
    mut share: watch::Receiver<Option<Share>>,
) {
    let mut stop = shared.stop.signal();
    let first = tokio::select! {
        first = share.wait_for(Option::is_some) => match first {
            Ok(first) => *first,
            Err(_) => return,
        },
        _ = stop.stopped() => return,
    };
    let Some(first) = first else { return };
    let origin = Instant::now()
        .checked_sub(first.elapsed)
        .unwrap_or_else(Instant::now);
    let cursor = |share: Share| {
        ArrivalCursor::new(
            model.curve().clone(),
            model.poisson(),
            share.index,
            share.count,
            share.from.as_secs_f64(),
        )
    };
    let mut schedule = cursor(first);
    let users_stop = StopHandle::new();
    let (orders_tx, orders_rx) = mpsc::unbounded_channel::<Instant>();
    let orders: Orders = Arc::new(Mutex::new(orders_rx));
    let free = Arc::new(Semaphore::new(0));
    let mut users = JoinSet::new();
    let mut started_users = 0u64;
    let start_user = |users: &mut JoinSet<()>, preassigned: bool| {
        let new = shared.new_user(group, users_stop.signal());
        users.spawn(user_loop(new, orders.clone(), free.clone(), preassigned));
    };
    for _ in 0..model.pre_allocated_users() {
        start_user(&mut users, false);
        started_users += 1;
    }
    tracing::info!(
        group = %shared.groups[group].name,
        share = first.index,
        of = first.count,
        "arrival-rate schedule starts"
    );
    'schedule: while let Some(due_secs) = schedule.next_due() {
        let due = origin + saturating_seconds(due_secs);
        if due > Instant::now() {
            tokio::select! {
                _ = load_density_core::start_clock::sleep_until(due) => {
                    // The generator's own timer: how late it fired is its start lag (an
                    // iteration already due when reached is late because users were busy).
                    let lag = Instant::now().saturating_duration_since(due);
                    shared.bus.record_start_lag(u64::try_from(lag.as_micros()).unwrap_or(u64::MAX));
                }
                changed = share.changed() => {
                    if changed.is_ok() {
                        if let Some(mut next) = *share.borrow_and_update() {
                            next.from = origin.elapsed();
                            tracing::info!(share = next.index, of = next.count, "arrival share changed");
                            schedule = cursor(next);
                        }
                    }
                    continue;
                }
                _ = stop.stopped() => break,
            }
        } else {
            // Already due (the driver is behind): no timer to wait for.
            if shared.stop.is_stopped() {
                break;
            }
            if share.has_changed().unwrap_or(false) {
                if let Some(mut next) = *share.borrow_and_update() {
                    next.from = origin.elapsed();
                    schedule = cursor(next);
                    continue;
                }
            }
        }
        if let Ok(permit) = free.try_acquire() {
            permit.forget();
            let _ = orders_tx.send(due);
            continue;
        }
        if started_users < model.max_users() {
            start_user(&mut users, true);
            started_users += 1;
            let _ = orders_tx.send(due);
            continue;
        }
        match model.when_busy() {
            WhenBusy::Drop => shared.groups[group].bus.count_dropped(1),
            WhenBusy::Delay => {
                let deadline = due + model.max_start_delay();
                if Instant::now() >= deadline {
                    shared.groups[group].bus.count_dropped(1);
                    continue;
                }
                tokio::select! {
                    permit = free.acquire() => match permit {
                        Ok(permit) => {
                            permit.forget();
                            let _ = orders_tx.send(due);
                        }
                        Err(_) => break 'schedule,
                    },
                    _ = tokio::time::sleep_until(deadline.into()) => shared.groups[group].bus.count_dropped(1),
                    _ = stop.stopped() => {
                        // It was due and never started: counted, not lost.
                        shared.groups[group].bus.count_dropped(1);
                        break 'schedule;
                    }
                }
            }
        }
    }
    // The schedule is over (or the run stopped): users finish the iteration they run.
    drop(orders_tx);
    if shared.stop.is_stopped() {
        users_stop.stop();
    }
    while let Some(joined) = users.join_next().await {
        log_join(joined);
    }
    tracing::info!(group = %shared.groups[group].name, "arrival-rate schedule ended");
}

/// One user of an arrival-rate model: waits for an iteration, runs it, is free again.
async fn user_loop(new: NewUser, orders: Orders, free: Arc<Semaphore>, preassigned: bool) {
    let NewUser {
        mut user,
        mut ctx,
        scenario,
        active: _active,
        ..
    } = new;
    user.on_start(&mut ctx).await;
    let mut stop = ctx.stop_signal();
    let mut first = preassigned;
    while !ctx.is_stopping() {
        if !first {
            free.add_permits(1);
        }
        first = false;
        let due = {
            let mut orders = orders.lock().await;
            tokio::select! {
                due = orders.recv() => due,
                _ = stop.stopped() => None,
            }
        };
        let Some(due) = due else { break };
        ctx.set_start_delay(Some(Instant::now().saturating_duration_since(due)));
        let ran = scenario.run_iteration(user.as_mut(), &mut ctx).await;
        // An iteration cut off by the stop before its first task never started: it was due,
        // so it counts as dropped rather than vanishing.
        if ran > 0 || !ctx.is_stopping() {
            ctx.count_iteration();
        } else {
            ctx.count_dropped(1);
        }
    }
    user.on_stop(&mut ctx).await;
}
