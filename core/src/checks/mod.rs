//! Assertions and extractors: the checks of one task, compiled once when the scenario is built
//! and applied by core to every response the task records, whatever the protocol.
//!
//! A task lists them under `assertions` and `extract`:
//!
//! ```json
//! {"method": "post", "url": "/login",
//!  "assertions": [{"type": "status_code", "value": 200},
//!                 {"type": "json_path", "path": "data.user", "value": "${var.name}"}],
//!  "extract": [{"var": "token", "path": "data.token"},
//!              {"var": "session", "from": "header", "name": "X-Session"}]}
//! ```
//!
//! # Assertions
//!
//! `type` is matched case-insensitively. Values may hold `${...}` placeholders, rendered with
//! the user's variables for each response. Assertions run in order; the first that fails
//! becomes the request's error, with the message shown here.
//!
//! | `type` | fields | passes when | failure message |
//! |---|---|---|---|
//! | `status_code` | `value`: a code (`201`, `"201"`) or a status name (`"NOT_FOUND"`) | [`Response::status`] equals the code; a name is compared case-insensitively with [`Response::status_name`] | `status_code expected 201, got 200` (`got none` without a status) |
//! | `contains` | `value` | the body, read as UTF-8 (invalid bytes replaced), contains the text | `body does not contain 'abc'` |
//! | `not_contains` | `value` | the body does not contain it | `body unexpectedly contains 'abc'` |
//! | `json_path` | `path`, `value` (any JSON; `null` allowed) | the value at `path` ([`crate::json_path`]) equals `value`; a missing value or a body that is not JSON is `null`; numbers compare by value, other types strictly | `json_path data.id expected 5, got null` |
//! | `header` | `name`, `value` | the header (looked up case-insensitively) equals `value` exactly | `header X-Id expected "a", got "b"` (`got none` when absent) |
//! | `regex` | `pattern` | the regex finds a match in the body | `body does not match regex 'id=\d+'` |
//! | `max_response_time_ms` | `value` (milliseconds) | the response time is at most `value` | `response time 812.3 ms exceeds 500 ms` |
//!
//! Values shown in messages are cut to 120 characters. A `regex` pattern is compiled once and
//! is not a template: `$` and `{` keep their regex meaning.
//!
//! # Extractors
//!
//! `{"var": NAME, "from": SOURCE, ...}`, `from` defaulting to `json_path`:
//!
//! | `from` | field | value |
//! |---|---|---|
//! | `json_path` | `path` | the value at the path, with its JSON type |
//! | `header` | `name` | the header value, a string |
//! | `status_code` | | the status code, a number |
//! | `regex` | `pattern` (with at least one capture group) | the text of group 1, a string |
//!
//! The value is written to the user's own variable scope
//! ([`UserVariables::set`](crate::variables::UserVariables::set)), so users never see each
//! other's values; later tasks read it as `${var.NAME}`. When there is no value (a missing
//! path, a JSON `null`, an absent header, no regex match) the variable keeps whatever value it
//! had. Extractors run only when the request is recorded as a success: every assertion passed
//! and the protocol's verdict (below) did not fail it.
//!
//! # The outcome of a request
//!
//! - [`Response::failure`] (an HTTP 4xx/5xx, a non-OK gRPC status) makes the request a failure
//!   with that reason, even when every assertion passes; the assertions are then not run.
//! - Unless the task has a `status_code` assertion: then that assertion decides about the
//!   status, and the protocol's verdict is ignored.
//! - Otherwise the first failing assertion's message is the error.
//!
//! # For protocol crates
//!
//! Nothing to do: the scenario hands the task's checks to the [`UserContext`] before it runs
//! the task, and [`UserContext::record_response`] applies them. A protocol must make
//! [`Response::body`] return the received body (or frame, or message) whenever the task has
//! body-based checks; [`UserContext::needs_body`] (or [`TaskChecks::needs_body`]) says so, so a
//! protocol may skip buffering bodies otherwise.
//!
//! [`UserContext`]: crate::UserContext
//! [`UserContext::record_response`]: crate::UserContext::record_response
//! [`UserContext::needs_body`]: crate::UserContext::needs_body

mod assertion;
mod extract;
mod fields;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::response::Response;
use crate::task::{PlanError, TaskDef};
use crate::variables::UserVariables;

use assertion::Assertion;
use extract::Extractor;

/// The compiled assertions and extractors of one task.
///
/// ```
/// use std::time::Duration;
/// use load_density_core::checks::TaskChecks;
/// use load_density_core::task::TaskList;
/// use load_density_core::variables::UserVariables;
/// use load_density_core::Response;
/// use serde_json::json;
///
/// struct Reply(&'static str);
/// impl Response for Reply {
///     fn status(&self) -> Option<u16> { Some(200) }
///     fn body(&self) -> &[u8] { self.0.as_bytes() }
///     fn length(&self) -> u64 { self.0.len() as u64 }
/// }
///
/// let tasks = TaskList::from_json(&json!([{
///     "assertions": [{"type": "json_path", "path": "id", "value": 7}],
///     "extract": [{"var": "id", "path": "id"}],
/// }]))?;
/// let checks = TaskChecks::compile(&tasks.tasks()[0])?;
/// let mut vars = UserVariables::default();
/// let time = Duration::from_millis(3);
///
/// assert_eq!(checks.verdict(&Reply(r#"{"id": 7}"#), time, &mut vars), None);
/// assert_eq!(vars.get("id"), Some(&json!(7)));
///
/// let error = checks.verdict(&Reply(r#"{"id": 8}"#), time, &mut vars);
/// assert_eq!(error.as_deref(), Some("json_path id expected 7, got 8"));
/// # Ok::<(), load_density_core::PlanError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct TaskChecks {
    assertions: Vec<Assertion>,
    extractors: Vec<Extractor>,
    asserts_status: bool,
    needs_body: bool,
}

impl TaskChecks {
    /// Compiles the `assertions` and `extract` keys of a task. Errors name the task index and
    /// the key (`tasks[2].assertions[0].pattern`).
    pub fn compile(task: &TaskDef) -> Result<Self, PlanError> {
        let common = task.common();
        let index = task.index();
        let assertions = match &common.assertions {
            None => Vec::new(),
            Some(value) => fields::list(index, "assertions", value)?
                .iter()
                .enumerate()
                .map(|(position, item)| Assertion::compile(index, position, item))
                .collect::<Result<_, _>>()?,
        };
        let extractors = match &common.extract {
            None => Vec::new(),
            Some(value) => fields::list(index, "extract", value)?
                .iter()
                .enumerate()
                .map(|(position, item)| Extractor::compile(index, position, item))
                .collect::<Result<_, _>>()?,
        };
        let asserts_status = assertions.iter().any(Assertion::is_status);
        let needs_body = assertions.iter().any(Assertion::needs_body)
            || extractors.iter().any(Extractor::needs_body);
        Ok(Self {
            assertions,
            extractors,
            asserts_status,
            needs_body,
        })
    }

    /// Whether the task has neither assertions nor extractors.
    pub fn is_empty(&self) -> bool {
        self.assertions.is_empty() && self.extractors.is_empty()
    }

    /// Whether some assertion or extractor reads the body: a protocol must then keep the body
    /// for [`Response::body`].
    pub fn needs_body(&self) -> bool {
        self.needs_body
    }

    /// Whether the task asserts the status code, which overrides [`Response::failure`].
    pub fn asserts_status(&self) -> bool {
        self.asserts_status
    }

    /// Number of assertions.
    pub fn assertion_count(&self) -> usize {
        self.assertions.len()
    }

    /// Number of extractors.
    pub fn extractor_count(&self) -> usize {
        self.extractors.len()
    }

    /// Decides the outcome of one response (see the module docs) and, on success, runs the
    /// extractors into `vars`. Returns the error, or `None` for a success.
    pub fn verdict(
        &self,
        response: &dyn Response,
        response_time: Duration,
        vars: &mut UserVariables,
    ) -> Option<Arc<str>> {
        if !self.asserts_status {
            if let Some(reason) = response.failure() {
                return Some(Arc::from(reason.as_ref()));
            }
        }
        let input = Input::new(response, response_time);
        for (index, assertion) in self.assertions.iter().enumerate() {
            if let Err(message) = assertion.check(&input, vars) {
                count_assertions(index as u64, 1);
                return Some(Arc::from(message));
            }
        }
        if !self.assertions.is_empty() {
            count_assertions(self.assertions.len() as u64, 0);
        }
        for extractor in &self.extractors {
            extractor.apply(&input, vars);
        }
        None
    }
}

static ASSERTIONS_PASSED: AtomicU64 = AtomicU64::new(0);
static ASSERTIONS_FAILED: AtomicU64 = AtomicU64::new(0);

fn count_assertions(passed: u64, failed: u64) {
    if passed > 0 {
        ASSERTIONS_PASSED.fetch_add(passed, Ordering::Relaxed);
    }
    if failed > 0 {
        ASSERTIONS_FAILED.fetch_add(failed, Ordering::Relaxed);
    }
}

/// Assertions evaluated in this process so far, as (passed, failed): the `checks` threshold
/// reads the difference between two readings. Assertions after the first failing one of a
/// response are not evaluated and not counted; responses the protocol already failed are not
/// checked. Tasks without assertions cost nothing here.
pub fn assertion_counts() -> (u64, u64) {
    (
        ASSERTIONS_PASSED.load(Ordering::Relaxed),
        ASSERTIONS_FAILED.load(Ordering::Relaxed),
    )
}

/// One response as checks read it: the body as text and as JSON are computed at most once,
/// and only when a check asks.
pub(crate) struct Input<'a> {
    pub(crate) response: &'a dyn Response,
    pub(crate) response_time: Duration,
    text: OnceCell<Cow<'a, str>>,
    json: OnceCell<Option<Value>>,
}

impl<'a> Input<'a> {
    fn new(response: &'a dyn Response, response_time: Duration) -> Self {
        Self {
            response,
            response_time,
            text: OnceCell::new(),
            json: OnceCell::new(),
        }
    }

    /// The body as UTF-8, invalid bytes replaced (borrowed when the body is valid UTF-8).
    pub(crate) fn text(&self) -> &str {
        self.text
            .get_or_init(|| String::from_utf8_lossy(self.response.body()))
    }

    /// The body parsed as JSON; `None` when it is not JSON.
    pub(crate) fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(self.response.body()).ok())
            .as_ref()
    }
}

/// Longest text shown for one value in a failure message, in characters.
const CLIP_CHARS: usize = 120;

/// `text`, cut to [`CLIP_CHARS`] characters with `...` appended when it was longer.
pub(crate) fn clip(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(CLIP_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}...", &text[..end])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_checks_can_be_shared_across_user_tasks() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<TaskChecks>();
        shared::<crate::predicate::Predicate>();
        shared::<crate::scenario::Scenario>();
        fn sendable<T: Send>() {}
        sendable::<crate::UserContext>();
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(200);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), CLIP_CHARS + 3);
        assert!(clipped.ends_with("é..."));
    }
}
