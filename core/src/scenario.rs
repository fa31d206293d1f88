//! The user loop: walk the task list once per iteration, until the run stops.

use std::sync::Arc;

use rand::Rng;
use serde_json::Value;

use crate::context::UserContext;
use crate::task::{PlanError, ScenarioMode, TaskList};
use crate::user::UserTemplate;

/// How one group's users pick tasks each iteration.
#[derive(Debug, Clone)]
pub struct Scenario {
    mode: ScenarioMode,
    len: usize,
    /// Cumulative weights (weighted mode only).
    cumulative: Vec<u64>,
}

impl Scenario {
    /// Builds the scenario of a task list, validating the keys core handles.
    pub fn new(tasks: &TaskList) -> Result<Self, PlanError> {
        let mut cumulative = Vec::with_capacity(tasks.len());
        let mut sum = 0u64;
        for task in tasks.tasks() {
            let common = task.common();
            for (key, value) in [
                ("run_if", &common.run_if),
                ("skip_if", &common.skip_if),
                ("assertions", &common.assertions),
                ("extract", &common.extract),
            ] {
                if value.is_some() {
                    return Err(PlanError::task(
                        task.index(),
                        key,
                        format!("\"{key}\" is not supported yet"),
                    ));
                }
            }
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
        }
        Ok(Self {
            mode: tasks.mode(),
            len: tasks.len(),
            cumulative,
        })
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.len == 0 || (self.mode == ScenarioMode::Weighted && self.total_weight() == 0)
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

    /// Runs one iteration for one user. Stops early when the run stops.
    pub async fn run_iteration(&self, user: &mut dyn UserTemplate, ctx: &mut UserContext) {
        match self.mode {
            ScenarioMode::Weighted => {
                if let Some(index) = self.pick_weighted() {
                    ctx.variables_mut().begin_task();
                    user.run_task(index, ctx).await;
                }
            }
            ScenarioMode::Sequence | ScenarioMode::Conditional => {
                for index in 0..self.len {
                    if ctx.is_stopping() {
                        return;
                    }
                    ctx.variables_mut().begin_task();
                    user.run_task(index, ctx).await;
                }
            }
        }
    }
}

/// Runs one user until the run stops: `on_start`, iterations, `on_stop`.
///
/// The request in flight when stop is asked finishes (or times out) and is recorded; no new
/// task starts after it.
pub async fn run_user(
    mut user: Box<dyn UserTemplate>,
    mut ctx: UserContext,
    scenario: Arc<Scenario>,
) {
    user.on_start(&mut ctx).await;
    if scenario.is_empty() {
        ctx.stopped().await;
    }
    while !ctx.is_stopping() {
        scenario.run_iteration(user.as_mut(), &mut ctx).await;
        // Let other users run even when every task completed without waiting.
        tokio::task::yield_now().await;
    }
    user.on_stop(&mut ctx).await;
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
