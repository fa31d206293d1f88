//! Warnings that are logged once per process, keyed by their text.
//!
//! A placeholder that cannot be resolved is rendered on every request; logging it every time
//! would drown the log, so each distinct problem is logged the first time only.

use std::collections::HashSet;
use std::sync::OnceLock;

use parking_lot::RwLock;

fn seen() -> &'static RwLock<HashSet<String>> {
    static SEEN: OnceLock<RwLock<HashSet<String>>> = OnceLock::new();
    SEEN.get_or_init(|| RwLock::new(HashSet::new()))
}

/// Logs `message()` at WARN level unless a warning with the same `key` was logged before in
/// this process. Returns whether it logged.
///
/// The common case (already reported) takes a shared read lock only.
pub(crate) fn warn_once(key: &str, message: impl FnOnce() -> String) -> bool {
    if seen().read().contains(key) {
        return false;
    }
    if !seen().write().insert(key.to_owned()) {
        return false;
    }
    tracing::warn!("{}", message());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_each_key_once() {
        assert!(warn_once("warn-once-unit-test", || "first".to_owned()));
        assert!(!warn_once("warn-once-unit-test", || "second".to_owned()));
        assert!(warn_once("warn-once-unit-test-2", || "other".to_owned()));
    }
}
