//! Iteration models: `per_user_iterations` (each user runs `iterations`) and
//! `shared_iterations` (the users share `iterations`), all users started at once, ending when
//! the iterations are done or after `max_duration`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use load_density_core::context::StopHandle;
use tokio::task::JoinSet;

use super::{log_join, NewUser, RunShared};
use crate::plan::IterationModel;

/// Runs group `group`'s iterations until done, `max_duration`, or the run stops.
pub(crate) async fn drive(shared: Arc<RunShared>, group: usize, model: IterationModel) {
    let users_stop = StopHandle::new();
    let claimed = Arc::new(AtomicU64::new(0));
    let mut users = JoinSet::new();
    for _ in 0..model.users() {
        let new = shared.new_user(group, users_stop.signal());
        users.spawn(user_loop(new, model, claimed.clone()));
    }
    let mut stop = shared.stop.signal();
    let limit = async {
        match model.max_duration() {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit);
    loop {
        tokio::select! {
            joined = users.join_next() => match joined {
                Some(joined) => log_join(joined),
                None => return,
            },
            _ = &mut limit => {
                tracing::info!(group = %shared.groups[group].name, "max_duration reached: the iterations stop");
                break;
            }
            _ = stop.stopped() => break,
        }
    }
    users_stop.stop();
    while let Some(joined) = users.join_next().await {
        log_join(joined);
    }
}

async fn user_loop(new: NewUser, model: IterationModel, claimed: Arc<AtomicU64>) {
    let NewUser {
        mut user,
        mut ctx,
        scenario,
        pacing,
        active: _active,
    } = new;
    user.on_start(&mut ctx).await;
    let mut stop = ctx.stop_signal();
    let mut done = 0u64;
    while !ctx.is_stopping() {
        let more = if model.shared() {
            claimed.fetch_add(1, Ordering::Relaxed) < model.iterations()
        } else {
            done < model.iterations()
        };
        if !more {
            break;
        }
        // The clock is read only for a pacing that needs the iteration's start.
        let started = pacing.period().map(|_| Instant::now());
        let ran = scenario.run_iteration(user.as_mut(), &mut ctx).await;
        // An iteration cut off by the stop before its first task did not happen.
        if ran > 0 || !ctx.is_stopping() {
            ctx.count_iteration();
        }
        done += 1;
        let wait = match started {
            Some(started) => pacing.wait_after(started),
            None => pacing.wait_unscheduled(),
        };
        if wait.is_zero() {
            // Others get their turn when this task's co-operative budget runs out.
            tokio::task::coop::consume_budget().await;
        } else {
            user.on_idle();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.stopped() => {}
            }
        }
    }
    user.on_stop(&mut ctx).await;
}
