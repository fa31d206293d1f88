//! Caps on how many distinct statistics entries and error groups a [`RequestStats`] keeps.
//!
//! Entries are keyed by request names and error groups by failure messages, and both can come
//! from the target: a reason phrase, a received MQTT topic, a URL with placeholders and no
//! `name`. Without a cap, a hostile or noisy target grows them without limit, each entry with
//! its own HDR histogram. Past the cap, new names are counted under one [`OTHER`] entry and new
//! error groups under one [`OTHER`] group, with a warning naming the first one that did not
//! fit, so totals stay exact.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use load_density_core::cardinality::{Limits, OTHER};
//! use load_density_core::{RequestEvent, RequestStats};
//!
//! let mut stats = RequestStats::with_limits(Limits::new(2, 1));
//! for name in ["/a", "/b", "/c", "/d"] {
//!     stats.add(&RequestEvent {
//!         request_type: Arc::from("GET"),
//!         name: Arc::from(name),
//!         url: Arc::from(name),
//!         status: Some(500),
//!         response_time: Duration::from_millis(1),
//!         response_length: 0,
//!         error: Some(Arc::from(format!("HTTP 500 on {name}"))),
//!         start_time: SystemTime::now(),
//!     });
//! }
//! assert_eq!(stats.total().num_requests(), 4);
//! assert_eq!(stats.entry("", OTHER).map(|e| e.num_requests()), Some(2));
//! assert_eq!(stats.errors().len(), 2); // one group, and (other) with 3 occurrences
//! ```
//!
//! [`RequestStats`]: crate::RequestStats

use std::sync::Arc;

/// The name (and message) overflow is counted under.
pub const OTHER: &str = "(other)";
/// Distinct `(request type, name)` entries kept by default.
pub const DEFAULT_MAX_NAMES: usize = 10_000;
/// Distinct error groups kept by default.
pub const DEFAULT_MAX_ERROR_GROUPS: usize = 1_000;

/// The caps of one [`RequestStats`](crate::RequestStats), and whether each was hit yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    max_names: usize,
    max_error_groups: usize,
    names_hit: bool,
    errors_hit: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_NAMES, DEFAULT_MAX_ERROR_GROUPS)
    }
}

impl Limits {
    /// Keeps at most `max_names` entries and `max_error_groups` error groups (each at least 1),
    /// plus one [`OTHER`] of each.
    pub fn new(max_names: usize, max_error_groups: usize) -> Self {
        Self {
            max_names: max_names.max(1),
            max_error_groups: max_error_groups.max(1),
            names_hit: false,
            errors_hit: false,
        }
    }

    /// The entry cap.
    pub fn max_names(&self) -> usize {
        self.max_names
    }

    /// The error group cap.
    pub fn max_error_groups(&self) -> usize {
        self.max_error_groups
    }

    /// Whether a new entry `(request_type, name)` must go to [`OTHER`] when `entries` exist;
    /// warns the first time.
    pub(crate) fn name_overflows(
        &mut self,
        entries: usize,
        request_type: &str,
        name: &str,
    ) -> bool {
        if entries < self.max_names {
            return false;
        }
        if !self.names_hit {
            self.names_hit = true;
            tracing::warn!(
                "statistics: {} distinct request names reached; new ones (the first: {request_type} {name:?}) are counted under \"{OTHER}\". \
                 Names come from each task's `name`, else its URL or topic: give tasks whose URL, topic or reply varies a fixed `name`",
                self.max_names
            );
        }
        true
    }

    /// Whether a new error group `message` must go to [`OTHER`] when `groups` exist; warns the
    /// first time.
    pub(crate) fn error_overflows(&mut self, groups: usize, name: &str, message: &str) -> bool {
        if groups < self.max_error_groups {
            return false;
        }
        if !self.errors_hit {
            self.errors_hit = true;
            tracing::warn!(
                "statistics: {} distinct failure groups reached; new ones (the first: {message:?} on {name:?}) are counted under \"{OTHER}\". \
                 Failure messages come from the target (reason phrases, errors)",
                self.max_error_groups
            );
        }
        true
    }
}

/// The key of the one overflow entry.
pub(crate) fn other_entry() -> (Arc<str>, Arc<str>) {
    (Arc::from(""), Arc::from(OTHER))
}

/// The key of the one overflow error group.
pub(crate) fn other_error() -> (Arc<str>, Arc<str>, Arc<str>) {
    (Arc::from(""), Arc::from(OTHER), Arc::from(OTHER))
}
