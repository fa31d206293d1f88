//! Splitting users over workers, as Locust's dispatcher does: absolute per-worker, per-class
//! targets, ramped in steps.
//!
//! The master computes each step's per-class totals with the run's group weights and fixed
//! counts ([`crate::groups::distribute`]), then [`Dispatcher::assign`] places them on the
//! workers:
//! - every worker's total stays within one of every other's;
//! - a step that only adds users only adds (no user moves during a ramp-up);
//! - when a worker leaves or joins, the fewest users move.
//!
//! Workers are ordered as Locust orders them (index within their host, then id; the host is
//! the part of the node id before the first `_`), so users spread over hosts first.

use std::collections::BTreeMap;

/// `max(1, floor(spawn_rate))` users per step, one step every `users / spawn_rate` seconds.
pub fn step_size(spawn_rate: f64) -> u64 {
    if spawn_rate.is_finite() && spawn_rate >= 1.0 {
        spawn_rate.floor() as u64
    } else {
        1
    }
}

/// The totals a ramp from `from` to `to` goes through, one per step (the last is `to`),
/// computed as they are taken: a ramp to 2^64-1 users costs nothing until it is walked.
pub fn ramp_totals(from: u64, to: u64, step: u64) -> impl Iterator<Item = u64> {
    let step = step.max(1);
    let next = move |current: &u64| {
        let current = *current;
        match current.cmp(&to) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Less => Some(current.saturating_add(step).min(to)),
            std::cmp::Ordering::Greater => Some(current.saturating_sub(step).max(to)),
        }
    };
    std::iter::successors(next(&from), move |current| next(current))
}

/// Workers in Locust's dispatch order: by index within their host, then by id.
pub fn ordered_workers<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut seen_per_host: BTreeMap<&str, usize> = BTreeMap::new();
    let mut keyed: Vec<(usize, &str)> = ids
        .into_iter()
        .map(|id| {
            let host = id.split('_').next().unwrap_or(id);
            let index = seen_per_host.entry(host).or_insert(0);
            let key = (*index, id);
            *index += 1;
            key
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, id)| id.to_owned()).collect()
}

/// Which worker runs how many users of each class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatcher {
    classes: Vec<String>,
    /// Workers in dispatch order, with their per-class counts.
    workers: Vec<(String, Vec<u64>)>,
}

impl Dispatcher {
    /// An empty dispatch over these classes (user groups), in configuration order.
    pub fn new(classes: Vec<String>) -> Self {
        Self {
            classes,
            workers: Vec::new(),
        }
    }

    /// The class names.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Places `class_totals` (one per class) on `workers`, moving as few users as possible
    /// from the current placement. With no worker, nothing is placed.
    pub fn assign<'a>(&mut self, workers: impl IntoIterator<Item = &'a str>, class_totals: &[u64]) {
        let order = ordered_workers(workers);
        let classes = self.classes.len();
        let mut previous: BTreeMap<String, Vec<u64>> = self.workers.drain(..).collect();
        self.workers = order
            .into_iter()
            .map(|id| {
                let counts = previous.remove(&id).unwrap_or_else(|| vec![0; classes]);
                (id, counts)
            })
            .collect();
        if self.workers.is_empty() {
            return;
        }
        let want = |k: usize| class_totals.get(k).copied().unwrap_or(0);
        let total_of = |counts: &Vec<u64>| counts.iter().sum::<u64>();

        // 1. Remove surplus users of each class from the busiest workers.
        for k in 0..classes {
            let mut have: u64 = self.workers.iter().map(|(_, c)| c[k]).sum();
            while have > want(k) {
                let Some(i) = (0..self.workers.len())
                    .filter(|&i| self.workers[i].1[k] > 0)
                    .max_by_key(|&i| (total_of(&self.workers[i].1), self.workers[i].1[k], i))
                else {
                    break;
                };
                self.workers[i].1[k] -= 1;
                have -= 1;
            }
        }
        // 2. Add missing users, classes interleaved (largest relative gap first), each on the
        //    least busy worker.
        let mut have: Vec<u64> = (0..classes)
            .map(|k| self.workers.iter().map(|(_, c)| c[k]).sum())
            .collect();
        loop {
            let next = (0..classes)
                .filter(|&k| have[k] < want(k))
                .max_by(|&a, &b| {
                    let gap = |k: usize| (want(k) - have[k]) as f64 / want(k).max(1) as f64;
                    gap(a).total_cmp(&gap(b)).then(b.cmp(&a))
                });
            let Some(k) = next else { break };
            let i = (0..self.workers.len())
                .min_by_key(|&i| (total_of(&self.workers[i].1), self.workers[i].1[k], i))
                .unwrap_or(0);
            self.workers[i].1[k] += 1;
            have[k] += 1;
        }
        // 3. Even out the totals (a worker joined or left): move one user at a time from the
        //    busiest worker to the idlest, of the class where the two differ most.
        loop {
            let busiest = (0..self.workers.len())
                .max_by_key(|&i| (total_of(&self.workers[i].1), i))
                .unwrap_or(0);
            let idlest = (0..self.workers.len())
                .min_by_key(|&i| (total_of(&self.workers[i].1), i))
                .unwrap_or(0);
            if total_of(&self.workers[busiest].1) <= total_of(&self.workers[idlest].1) + 1 {
                break;
            }
            let Some(k) = (0..classes)
                .filter(|&k| self.workers[busiest].1[k] > 0)
                .max_by_key(|&k| {
                    (
                        self.workers[busiest].1[k] as i64 - self.workers[idlest].1[k] as i64,
                        std::cmp::Reverse(k),
                    )
                })
            else {
                break;
            };
            self.workers[busiest].1[k] -= 1;
            self.workers[idlest].1[k] += 1;
        }
    }

    /// Forgets a worker's users (it left); call [`Dispatcher::assign`] to place them again.
    pub fn remove_worker(&mut self, id: &str) {
        self.workers.retain(|(w, _)| w != id);
    }

    /// A worker's per-class counts, every class included (zeros too).
    pub fn counts_of(&self, id: &str) -> Vec<(String, u64)> {
        let counts = self
            .workers
            .iter()
            .find(|(w, _)| w == id)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| vec![0; self.classes.len()]);
        self.classes.iter().cloned().zip(counts).collect()
    }

    /// The workers placed, in dispatch order.
    pub fn workers(&self) -> impl Iterator<Item = &str> {
        self.workers.iter().map(|(w, _)| w.as_str())
    }

    /// Users placed in total.
    pub fn total(&self) -> u64 {
        self.workers.iter().flat_map(|(_, c)| c.iter()).sum()
    }

    /// Users placed per class.
    pub fn class_totals(&self) -> Vec<u64> {
        (0..self.classes.len())
            .map(|k| self.workers.iter().map(|(_, c)| c[k]).sum())
            .collect()
    }
}
