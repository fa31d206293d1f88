//! Bounds on the user counts and spawn rates a run accepts from outside (the web UI's
//! `/swarm`, [`Environment::set_user_count`](crate::Environment::set_user_count), a master's
//! `set_user_count`), so that no number can make a run panic, allocate without bound or wait
//! for centuries.
//!
//! ```
//! use load_density::limits::{check_spawn_rate, check_user_count};
//!
//! assert_eq!(check_user_count(50), Ok(50));
//! assert!(check_user_count(u64::MAX).is_err());
//! assert_eq!(check_spawn_rate(2.5), Ok(2.5));
//! assert!(check_spawn_rate(1e-300).is_err());
//! ```

use load_density_core::task::options::MAX_SECONDS;

/// The most users a run (all workers together) accepts: far beyond what any machine runs.
pub const MAX_USER_COUNT: u64 = 100_000_000;

/// The smallest spawn rate accepted: one user every [`MAX_SECONDS`] seconds.
pub const MIN_SPAWN_RATE: f64 = 1.0 / MAX_SECONDS;

/// Checks a user count.
///
/// # Errors
/// A message naming the value and the limit when it is above [`MAX_USER_COUNT`].
pub fn check_user_count(user_count: u64) -> Result<u64, String> {
    if user_count > MAX_USER_COUNT {
        return Err(format!(
            "Invalid user_count value: '{user_count}' (must be at most {MAX_USER_COUNT})"
        ));
    }
    Ok(user_count)
}

/// Checks a spawn rate (users per second).
///
/// # Errors
/// A message naming the value when it is not a finite number of at least
/// [`MIN_SPAWN_RATE`].
pub fn check_spawn_rate(spawn_rate: f64) -> Result<f64, String> {
    if !(spawn_rate.is_finite() && spawn_rate >= MIN_SPAWN_RATE) {
        return Err(format!(
            "Invalid spawn_rate value: '{}' (must be a number of at least {} users per second)",
            Short(spawn_rate),
            Short(MIN_SPAWN_RATE)
        ));
    }
    Ok(spawn_rate)
}

/// A number as people write it: `2.5`, and `1e-300` rather than three hundred zeros.
struct Short(f64);

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let magnitude = self.0.abs();
        if magnitude == 0.0 || (1e-4..1e16).contains(&magnitude) || !magnitude.is_finite() {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:e}", self.0)
        }
    }
}
