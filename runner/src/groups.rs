//! User groups: several user types (or task lists) in one run, like Locust's user classes.

use serde_json::{Map, Value};

use crate::config::StartTest;
use crate::error::RunError;

/// One group as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    /// Unique name (defaults to the user type for the single-group shorthand).
    pub name: String,
    /// User type.
    pub user_type: String,
    /// Relative share of the users not taken by fixed counts.
    pub weight: u64,
    /// An exact number of users, taken before weights are applied.
    pub fixed_count: Option<u64>,
    /// The task payload as written.
    pub tasks: Value,
    /// `wait_time` as written.
    pub wait_time: Option<Value>,
    /// Base host.
    pub host: Option<String>,
    /// Protocol options.
    pub options: Map<String, Value>,
}

const GROUP_KEYS: &[&str] = &[
    "name",
    "user",
    "weight",
    "fixed_count",
    "tasks",
    "wait_time",
    "host",
    "load_model",
    "thresholds",
];

fn count(value: &Value, what: &str) -> Result<u64, RunError> {
    value
        .as_u64()
        .ok_or_else(|| RunError::Config(format!("{what} must be a whole number >= 0, got {value}")))
}

impl GroupSpec {
    /// Reads `user_groups[index]`.
    pub fn from_json(index: usize, value: &Value, config: &StartTest) -> Result<Self, RunError> {
        let at = |key: &str| format!("user_groups[{index}].{key}");
        let Value::Object(map) = value else {
            return Err(RunError::Config(format!(
                "user_groups[{index}] must be an object, got {value}"
            )));
        };
        let text = |key: &str| -> Result<Option<String>, RunError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(RunError::Config(format!(
                    "{} must be a string, got {other}",
                    at(key)
                ))),
            }
        };
        let user_type = text("user")?.ok_or_else(|| {
            RunError::Config(format!("{} is required (a user type name)", at("user")))
        })?;
        let name = text("name")?.unwrap_or_else(|| format!("{user_type}#{index}"));
        let fixed_count = match map.get("fixed_count") {
            None | Some(Value::Null) => None,
            Some(v) => Some(count(v, &at("fixed_count"))?),
        };
        let weight = match map.get("weight") {
            None | Some(Value::Null) => 1,
            Some(v) => {
                if fixed_count.is_some() {
                    return Err(RunError::Config(format!(
                        "user_groups[{index}] gives both weight and fixed_count; give one"
                    )));
                }
                count(v, &at("weight"))?
            }
        };
        // Top-level keyword options apply to every group; the group's own keys win.
        let mut options = config.extra.clone();
        options.extend(
            map.iter()
                .filter(|(k, _)| !GROUP_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(Self {
            name,
            user_type,
            weight,
            fixed_count,
            tasks: map.get("tasks").cloned().unwrap_or(Value::Null),
            wait_time: map
                .get("wait_time")
                .cloned()
                .or_else(|| config.wait_time.clone()),
            host: text("host")?.or_else(|| config.host.clone()),
            options,
        })
    }
}

/// The groups of a configuration: `user_groups`, or the single-group shorthand.
pub fn groups_of(config: &StartTest) -> Result<Vec<GroupSpec>, RunError> {
    if let Some(groups) = &config.user_groups {
        if groups.is_empty() {
            return Err(RunError::Config("user_groups is empty".to_owned()));
        }
        if config.tasks.is_some() {
            return Err(RunError::Config(
                "give tasks inside each of user_groups, not beside them".to_owned(),
            ));
        }
        let specs = groups
            .iter()
            .enumerate()
            .map(|(i, g)| GroupSpec::from_json(i, g, config))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, spec) in specs.iter().enumerate() {
            if specs[..i].iter().any(|s| s.name == spec.name) {
                return Err(RunError::Config(format!(
                    "user_groups[{i}].name {:?} is used twice",
                    spec.name
                )));
            }
        }
        if specs
            .iter()
            .all(|s| s.fixed_count.is_none() && s.weight == 0)
        {
            return Err(RunError::Config("every user group has weight 0".to_owned()));
        }
        return Ok(specs);
    }
    let user_type = config.user_type().map_err(RunError::Config)?.to_owned();
    let mut options = Map::new();
    let mut host = config.host.clone();
    let mut wait_time = config.wait_time.clone();
    for (key, value) in &config.user_detail_dict {
        match key.as_str() {
            "user" => {}
            "host" if host.is_none() => host = value.as_str().map(str::to_owned),
            "wait_time" if wait_time.is_none() => wait_time = Some(value.clone()),
            _ => {
                options.insert(key.clone(), value.clone());
            }
        }
    }
    options.extend(config.extra.clone());
    let tasks = match &config.tasks {
        Some(tasks) => tasks.clone(),
        None => load_density_core::locust_wrapper_proxy()
            .get(&user_type)
            .map(|entry| entry.tasks)
            .unwrap_or(Value::Null),
    };
    Ok(vec![GroupSpec {
        name: user_type.clone(),
        user_type,
        weight: 1,
        fixed_count: None,
        tasks,
        wait_time,
        host,
        options,
    }])
}

/// How many users each group gets out of `user_count`: fixed counts first (in group order),
/// then the rest split by weight, rounding by largest remainder (ties to the earlier group).
pub fn distribute(user_count: u64, groups: &[GroupSpec]) -> Vec<u64> {
    let mut targets = vec![0u64; groups.len()];
    let mut left = user_count;
    for (i, g) in groups.iter().enumerate() {
        if let Some(fixed) = g.fixed_count {
            targets[i] = fixed.min(left);
            left -= targets[i];
        }
    }
    let weighted: Vec<usize> = (0..groups.len())
        .filter(|&i| groups[i].fixed_count.is_none() && groups[i].weight > 0)
        .collect();
    let total_weight: u64 = weighted.iter().map(|&i| groups[i].weight).sum();
    if total_weight == 0 || left == 0 {
        return targets;
    }
    let mut remainders = Vec::with_capacity(weighted.len());
    let mut given = 0;
    for &i in &weighted {
        let exact = u128::from(left) * u128::from(groups[i].weight);
        let share = (exact / u128::from(total_weight)) as u64;
        targets[i] = share;
        given += share;
        remainders.push((exact % u128::from(total_weight), i));
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.into_iter().take((left - given) as usize) {
        targets[i] += 1;
    }
    targets
}

/// One step towards a target: start a user of a group, or stop one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Start one user of this group.
    Spawn(usize),
    /// Stop one user of this group.
    Stop(usize),
}

/// The next step from `current` users per group towards `desired`: stops first (so a smaller
/// target never overshoots memory), then starts, each time in the group furthest from its
/// target relative to its size — so a ramp keeps every group near its share all along.
pub fn next_step(desired: &[u64], current: &[u64]) -> Option<Step> {
    let relative = |gap: u64, size: u64| gap as f64 / size.max(1) as f64;
    let surplus = (0..desired.len())
        .filter(|&i| current[i] > desired[i])
        .max_by(|&a, &b| {
            relative(current[a] - desired[a], current[a])
                .total_cmp(&relative(current[b] - desired[b], current[b]))
                .then(b.cmp(&a))
        });
    if let Some(i) = surplus {
        return Some(Step::Stop(i));
    }
    (0..desired.len())
        .filter(|&i| current[i] < desired[i])
        .max_by(|&a, &b| {
            relative(desired[a] - current[a], desired[a])
                .total_cmp(&relative(desired[b] - current[b], desired[b]))
                .then(b.cmp(&a))
        })
        .map(Step::Spawn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(weight: u64, fixed: Option<u64>) -> GroupSpec {
        GroupSpec {
            name: String::new(),
            user_type: "x".into(),
            weight,
            fixed_count: fixed,
            tasks: Value::Null,
            wait_time: None,
            host: None,
            options: Map::new(),
        }
    }

    #[test]
    fn fixed_counts_first_then_weights() {
        assert_eq!(
            distribute(100, &[spec(9, None), spec(1, Some(50))]),
            vec![50, 50]
        );
        assert_eq!(distribute(10, &[spec(3, None), spec(1, None)]), vec![8, 2]);
        assert_eq!(
            distribute(3, &[spec(1, Some(5)), spec(1, None)]),
            vec![3, 0]
        );
        assert_eq!(
            distribute(7, &[spec(1, None), spec(0, None), spec(1, None)]),
            vec![4, 0, 3]
        );
    }

    fn walk(desired: &[u64], mut current: Vec<u64>) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(step) = next_step(desired, &current) {
            match step {
                Step::Spawn(i) => current[i] += 1,
                Step::Stop(i) => current[i] -= 1,
            }
            steps.push(step);
            assert!(steps.len() < 1000, "does not converge");
        }
        assert_eq!(current, desired);
        steps
    }

    #[test]
    fn steps_interleave_groups_and_converge_both_ways() {
        let up = walk(&[6, 2], vec![0, 0]);
        assert_eq!(up.len(), 8);
        // The small group is not left to the end.
        assert!(up[..5].contains(&Step::Spawn(1)), "{up:?}");
        let down = walk(&[2, 1], vec![6, 2]);
        assert_eq!(down.len(), 5);
        assert!(down.iter().all(|s| matches!(s, Step::Stop(_))));
        let mixed = walk(&[0, 4], vec![3, 1]);
        assert_eq!(mixed.len(), 6);
    }

    #[test]
    fn group_errors_name_the_group_and_key() {
        let config = StartTest::default();
        let text = GroupSpec::from_json(
            1,
            &json!({"user": "a", "weight": 1, "fixed_count": 2}),
            &config,
        )
        .expect_err("both")
        .to_string();
        assert!(text.contains("user_groups[1]"), "{text}");
        let text = GroupSpec::from_json(0, &json!({"weight": 1}), &config)
            .expect_err("no user")
            .to_string();
        assert!(text.contains("user_groups[0].user"), "{text}");
        let text = GroupSpec::from_json(0, &json!({"user": "a", "weight": "lots"}), &config)
            .expect_err("weight")
            .to_string();
        assert!(text.contains("user_groups[0].weight"), "{text}");
    }
}
