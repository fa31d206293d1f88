//! A third-party action command in one crate: `LD_expect_requests`, which checks the summary
//! of the runs so far (`LD_summary`) against limits and fails the action when they are not met.
//!
//! Run the example with `cargo run -p example-custom-command -- DOCUMENT.json`: it runs an
//! action document with this crate linked, so the document may use `LD_expect_requests`.
//!
//! Everything a command needs is here: an argument type validated by serde (unknown keys
//! rejected, defaults filled in), a function returning a serializable value or an error, and one
//! [`register_command!`] call. Nothing in the runner or the CLI changes; linking this crate into
//! a binary is enough (name it somewhere, e.g. `use example_custom_command as _;`).

use load_density::register_command;
use serde::{Deserialize, Serialize};

/// `LD_expect_requests`'s keyword arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectRequests {
    /// At least this many requests were recorded.
    #[serde(default)]
    pub min_requests: u64,
    /// At most this share of them failed, from 0 to 1.
    #[serde(default)]
    pub max_failure_rate: f64,
}

/// What `LD_expect_requests` returns when the limits are met.
#[derive(Debug, Serialize, PartialEq)]
pub struct Verdict {
    /// Requests recorded.
    pub requests: u64,
    /// Failures recorded.
    pub failures: u64,
    /// `"passed"`.
    pub status: &'static str,
}

/// Why the limits were not met.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExpectError {
    /// `max_failure_rate` is not between 0 and 1.
    #[error("max_failure_rate must be between 0 and 1, got {0}")]
    BadRate(f64),
    /// Too few requests.
    #[error("expected at least {min} requests, recorded {recorded}")]
    TooFewRequests {
        /// The limit.
        min: u64,
        /// What was recorded.
        recorded: u64,
    },
    /// Too many failures.
    #[error("failure rate {rate:.4} is above the limit {max}")]
    TooManyFailures {
        /// The rate recorded.
        rate: f64,
        /// The limit.
        max: f64,
    },
}

/// Checks the recorded requests against `args`.
pub fn expect_requests(args: ExpectRequests) -> Result<Verdict, ExpectError> {
    if !(0.0..=1.0).contains(&args.max_failure_rate) {
        return Err(ExpectError::BadRate(args.max_failure_rate));
    }
    let stats = load_density::core::test_record_instance().stats();
    let total = stats.total();
    let (requests, failures) = (total.num_requests(), total.num_failures());
    if requests < args.min_requests {
        return Err(ExpectError::TooFewRequests {
            min: args.min_requests,
            recorded: requests,
        });
    }
    let rate = failures as f64 / requests.max(1) as f64;
    if rate > args.max_failure_rate {
        return Err(ExpectError::TooManyFailures {
            rate,
            max: args.max_failure_rate,
        });
    }
    Ok(Verdict {
        requests,
        failures,
        status: "passed",
    })
}

register_command! {
    name: "LD_expect_requests",
    description: "Fails unless the runs so far recorded at least min_requests requests with a \
                  failure rate of at most max_failure_rate",
    params: ["min_requests", "max_failure_rate"],
    args: ExpectRequests,
    run: expect_requests,
}
