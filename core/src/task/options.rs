//! Group options every protocol shares, parsed once by core.
//!
//! A group's options ([`GroupPlan::options`]) hold the `start_test` keywords and user-detail
//! keys a protocol reads. Three mean the same thing for every protocol that talks over the
//! network, so core parses them: [`COMMON_OPTION_NAMES`] (`timeout`, `verify`, `ca_file`),
//! into a [`GroupOptions`]. A protocol that reads them returns [`COMMON_OPTION_NAMES`] (and
//! its own keys) from [`Protocol::option_names`], or the runner rejects them as unknown.
//!
//! [`seconds`] is the one rule for "a positive number of seconds", for options and task keys
//! alike; [`option_seconds`] applies it to an option and [`task_seconds`] to a task key.
//!
//! ```
//! use load_density_core::task::options::{GroupOptions, COMMON_OPTION_NAMES};
//! use load_density_core::{GroupPlan, TaskList};
//! use serde_json::json;
//!
//! let options = json!({"timeout": 2.5, "verify": false});
//! let plan = GroupPlan::new("my_user", TaskList::default())
//!     .with_options(options.as_object().expect("an object").clone());
//! let options = GroupOptions::from_plan(&plan).expect("valid options");
//! assert_eq!(options.timeout(), Some(std::time::Duration::from_millis(2500)));
//! assert_eq!(options.verify(), Some(false));
//! assert!(COMMON_OPTION_NAMES.contains(&"ca_file"));
//! ```
//!
//! [`Protocol::option_names`]: crate::Protocol::option_names

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use serde_json::{Map, Value};

use crate::task::{GroupPlan, PlanError};
use crate::tls::{client_config, TlsSettings};

/// The option keys [`GroupOptions`] reads, sorted.
pub const COMMON_OPTION_NAMES: &[&str] = &["ca_file", "timeout", "verify"];

/// [`COMMON_OPTION_NAMES`] followed by a protocol's `own` option keys: the option names of a
/// protocol that reads the common options and some of its own. `N` is the total count; a
/// wrong `N` fails to compile when used in a `const`.
///
/// ```
/// use load_density_core::task::options::with_common_options;
///
/// const OPTION_NAMES: &[&str] = &with_common_options::<5>(&["broker", "protocol_version"]);
/// assert_eq!(
///     OPTION_NAMES,
///     ["ca_file", "timeout", "verify", "broker", "protocol_version"]
/// );
/// ```
pub const fn with_common_options<const N: usize>(own: &[&'static str]) -> [&'static str; N] {
    let common = COMMON_OPTION_NAMES;
    assert!(
        common.len() + own.len() == N,
        "N must be the number of common and own option names"
    );
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        names[i] = if i < common.len() {
            common[i]
        } else {
            own[i - common.len()]
        };
        i += 1;
    }
    names
}

/// The largest number of seconds [`seconds`] accepts (about 31 years).
pub const MAX_SECONDS: f64 = 1e9;

/// `secs` seconds as a [`Duration`] that never panics: NaN and negative values are zero, values
/// above [`MAX_SECONDS`] are [`MAX_SECONDS`] (far below what `Instant + Duration` can hold).
///
/// For numbers already accepted elsewhere (a validated rate's period, a delay computed from
/// one) where an error has no place; input is checked with [`seconds`].
///
/// ```
/// use std::time::Duration;
/// use load_density_core::task::options::{saturating_seconds, MAX_SECONDS};
///
/// assert_eq!(saturating_seconds(0.5), Duration::from_millis(500));
/// assert_eq!(saturating_seconds(1e300), Duration::from_secs(MAX_SECONDS as u64));
/// assert_eq!(saturating_seconds(f64::NAN), Duration::ZERO);
/// assert_eq!(saturating_seconds(-3.0), Duration::ZERO);
/// ```
pub fn saturating_seconds(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs.min(MAX_SECONDS)).unwrap_or(Duration::ZERO)
}

/// Parses a positive number of seconds (`5`, `0.25`) into a [`Duration`].
///
/// `what` names the value in the message (`"timeout"`, `"option \"timeout\""`).
///
/// # Errors
/// A message naming `what` and the value when it is not a number, not finite, not above zero,
/// too large for a [`Duration`] or below one nanosecond.
///
/// ```
/// use std::time::Duration;
/// use load_density_core::task::options::seconds;
/// use serde_json::json;
///
/// assert_eq!(seconds(&json!(0.5), "timeout"), Ok(Duration::from_millis(500)));
/// assert_eq!(
///     seconds(&json!("soon"), "timeout").unwrap_err(),
///     "timeout must be a positive number of seconds, got \"soon\""
/// );
/// ```
pub fn seconds(value: &Value, what: &str) -> Result<Duration, String> {
    let not_positive = || format!("{what} must be a positive number of seconds, got {value}");
    // A number, or a duration string as Locust writes them ("30s", "1m30s").
    let secs = value
        .as_f64()
        .or_else(|| {
            value
                .as_str()
                .and_then(|text| crate::task::values::parse_duration(text).ok())
        })
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .ok_or_else(not_positive)?;
    // Far beyond any real timeout, and far below what `Instant + Duration` can hold, so no
    // protocol can overflow a deadline with a value accepted here.
    if secs > MAX_SECONDS {
        return Err(format!(
            "{what} is too large: {value} seconds (at most {MAX_SECONDS} seconds)"
        ));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(duration) if duration.is_zero() => Err(format!(
            "{what} must be at least one nanosecond, got {value} seconds"
        )),
        Ok(duration) => Ok(duration),
        Err(_) => Err(format!(
            "{what} is too large: {value} seconds (at most {} seconds)",
            Duration::MAX.as_secs()
        )),
    }
}

/// Task `index`'s `key` (`timeout`, ...) as deserialized into an `f64`, checked by [`seconds`].
///
/// # Errors
/// A [`PlanError::Task`] naming the task and key: `task 0 (tasks[0].timeout): timeout must
/// be a positive number of seconds, got 0.0`.
pub fn task_seconds(index: usize, key: &str, secs: f64) -> Result<Duration, PlanError> {
    seconds(&Value::from(secs), key).map_err(|message| PlanError::task(index, key, message))
}

/// The value of option `key`; `null` counts as not given.
fn option<'a>(options: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    options.get(key).filter(|value| !value.is_null())
}

/// Option `key` as a positive number of seconds ([`seconds`]); `None` when not given (or
/// `null`).
///
/// # Errors
/// A [`PlanError::Config`] naming the option: `option "timeout" must be a positive number of
/// seconds, got "soon"`.
pub fn option_seconds(
    options: &Map<String, Value>,
    key: &str,
) -> Result<Option<Duration>, PlanError> {
    option(options, key)
        .map(|value| seconds(value, &format!("option {key:?}")))
        .transpose()
        .map_err(PlanError::Config)
}

/// Option `key` as a positive whole number of bytes (a size limit such as `max_body_size`);
/// `None` when not given (or `null`).
///
/// # Errors
/// A [`PlanError::Config`] naming the option: `option "max_body_size" must be a positive
/// whole number of bytes, got 0`.
///
/// ```
/// use load_density_core::task::options::option_bytes;
/// use serde_json::json;
///
/// let options = json!({"max_body_size": 1024, "bad": 1.5});
/// let options = options.as_object().expect("an object");
/// assert_eq!(option_bytes(options, "max_body_size"), Ok(Some(1024)));
/// assert_eq!(option_bytes(options, "absent"), Ok(None));
/// assert!(option_bytes(options, "bad").is_err());
/// ```
pub fn option_bytes(options: &Map<String, Value>, key: &str) -> Result<Option<u64>, PlanError> {
    option(options, key)
        .map(|value| {
            value.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                PlanError::Config(format!(
                    "option {key:?} must be a positive whole number of bytes, got {value}"
                ))
            })
        })
        .transpose()
}

/// A `ca_file` option: its path (for messages) and the PEM text read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CaFile {
    path: String,
    pem: String,
}

/// The options in [`COMMON_OPTION_NAMES`], parsed and checked.
///
/// - `timeout`: a positive number of seconds, the default for tasks without their own;
/// - `verify`: `true` or `false`, the default certificate check for tasks without their own;
/// - `ca_file`: the path of a PEM file of extra trusted CA certificates, read once when parsed.
///
/// Each is `None` when not given (or `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOptions {
    timeout: Option<Duration>,
    verify: Option<bool>,
    ca_file: Option<CaFile>,
}

impl GroupOptions {
    /// Parses the common options of `plan`, and reads its `ca_file`. Other keys are left to
    /// the protocol and the runner.
    ///
    /// # Errors
    /// A [`PlanError::Config`] naming the option: a `timeout` that is not a positive number of
    /// seconds, a `verify` that is not a boolean, a `ca_file` that is not a string, or a
    /// `ca_file` that cannot be read (naming its path).
    pub fn from_plan(plan: &GroupPlan) -> Result<Self, PlanError> {
        Self::from_map(plan.options())
    }

    /// [`GroupOptions::from_plan`] on an options map.
    ///
    /// # Errors
    /// As [`GroupOptions::from_plan`].
    pub fn from_map(options: &Map<String, Value>) -> Result<Self, PlanError> {
        let verify = match option(options, "verify") {
            None => None,
            Some(value) if crate::task::values::bool_of(value).is_some() => {
                crate::task::values::bool_of(value)
            }
            Some(other) => {
                return Err(PlanError::Config(format!(
                    "option \"verify\" must be true or false (or 0 / 1), got {other}"
                )))
            }
        };
        let ca_file = match option(options, "ca_file") {
            None => None,
            Some(Value::String(path)) => {
                // Read once per group, before the run: a blocking read of a small file.
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    PlanError::Config(format!("option \"ca_file\": cannot read {path:?}: {e}"))
                })?;
                Some(CaFile {
                    path: path.clone(),
                    pem,
                })
            }
            Some(other) => {
                return Err(PlanError::Config(format!(
                    "option \"ca_file\" must be a file path (a string), got {other}"
                )))
            }
        };
        Ok(Self {
            timeout: option_seconds(options, "timeout")?,
            verify,
            ca_file,
        })
    }

    /// `timeout`: the default timeout of the group's tasks.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// `verify`: the default certificate check of the group's tasks.
    pub fn verify(&self) -> Option<bool> {
        self.verify
    }

    /// The path `ca_file` named.
    pub fn ca_file(&self) -> Option<&str> {
        self.ca_file.as_ref().map(|ca| ca.path.as_str())
    }

    /// The PEM text read from `ca_file`.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_file.as_ref().map(|ca| ca.pem.as_str())
    }

    /// The TLS settings of a connection that checks certificates (`verify`: with the
    /// `ca_file` CAs) or not, offering the `alpn` protocols (e.g. `[b"http/1.1"]`).
    pub fn tls_settings(&self, verify: bool, alpn: &[&[u8]]) -> TlsSettings {
        TlsSettings {
            insecure: !verify,
            // Without verification no CA is consulted: leave it out, so every group without
            // verification shares one configuration.
            extra_ca_pem: if verify {
                self.ca_pem().map(str::to_owned)
            } else {
                None
            },
            alpn: alpn.iter().map(|protocol| protocol.to_vec()).collect(),
        }
    }

    /// The shared client configuration for [`GroupOptions::tls_settings`].
    ///
    /// # Errors
    /// A [`PlanError::Config`]: naming `ca_file` and its path when it holds no usable
    /// certificate, otherwise `TLS configuration: ...`.
    pub fn tls_config(&self, verify: bool, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, PlanError> {
        client_config(&self.tls_settings(verify, alpn)).map_err(|e| {
            PlanError::Config(match (verify, &self.ca_file) {
                (true, Some(ca)) => format!("option \"ca_file\": {:?}: {e}", ca.path),
                (true, None) => format!("TLS configuration: {e}"),
                (false, _) => format!("TLS configuration (verify: false): {e}"),
            })
        })
    }

    /// The configurations a group's tasks need, given each task's `verify` setting: the
    /// verifying one when a task verifies or `ca_file` is given (so a bad `ca_file` is
    /// reported whatever the tasks say), the non-verifying one when a task does not verify.
    ///
    /// # Errors
    /// As [`GroupOptions::tls_config`].
    pub fn group_tls(
        &self,
        task_verify: impl IntoIterator<Item = bool>,
        alpn: &[&[u8]],
    ) -> Result<GroupTls, PlanError> {
        let (mut any_verified, mut any_insecure) = (self.ca_file.is_some(), false);
        for verify in task_verify {
            any_verified |= verify;
            any_insecure |= !verify;
        }
        let build =
            |needed: bool, verify: bool| needed.then(|| self.tls_config(verify, alpn)).transpose();
        Ok(GroupTls {
            verified: build(any_verified, true)?,
            insecure: build(any_insecure, false)?,
        })
    }
}

/// The TLS client configurations a group's users share (see [`GroupOptions::group_tls`]): one
/// checking certificates and one not, each present only when a task needs it.
#[derive(Debug, Clone, Default)]
pub struct GroupTls {
    verified: Option<Arc<ClientConfig>>,
    insecure: Option<Arc<ClientConfig>>,
}

impl GroupTls {
    /// The configuration for a task's `verify` setting; `None` when no task of the group
    /// needed it.
    pub fn get(&self, verify: bool) -> Option<&Arc<ClientConfig>> {
        if verify {
            self.verified.as_ref()
        } else {
            self.insecure.as_ref()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write as _;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("options must be an object, got {other}"),
        }
    }

    fn config_error(options: Value) -> String {
        match GroupOptions::from_map(&map(options.clone())) {
            Err(PlanError::Config(message)) => message,
            other => panic!("{options}: expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn seconds_accepts_positive_numbers_only() {
        assert_eq!(seconds(&json!(5), "t"), Ok(Duration::from_secs(5)));
        assert_eq!(seconds(&json!(0.2), "t"), Ok(Duration::from_millis(200)));
        assert_eq!(seconds(&json!("1m30s"), "t"), Ok(Duration::from_secs(90)));
        for (value, expected) in [
            (
                json!(0),
                "timeout must be a positive number of seconds, got 0",
            ),
            (
                json!(-1.5),
                "timeout must be a positive number of seconds, got -1.5",
            ),
            (
                json!("5 minutes"),
                "timeout must be a positive number of seconds, got \"5 minutes\"",
            ),
            (
                json!(true),
                "timeout must be a positive number of seconds, got true",
            ),
            (
                json!([1]),
                "timeout must be a positive number of seconds, got [1]",
            ),
            (
                json!(1e-12),
                "timeout must be at least one nanosecond, got 1e-12 seconds",
            ),
            (json!(1e30), "timeout is too large: 1e+30 seconds (at most"),
        ] {
            let error = seconds(&value, "timeout").expect_err("rejected");
            assert!(error.starts_with(expected), "{value}: {error}");
        }
        // Not finite: only a typed number can be; JSON has no infinity.
        let error = seconds(&Value::from(f64::INFINITY), "timeout").expect_err("infinite");
        assert!(error.contains("positive number of seconds"), "{error}");
        let error = seconds(&Value::from(f64::NAN), "timeout").expect_err("NaN");
        assert!(error.contains("positive number of seconds"), "{error}");
    }

    #[test]
    fn with_common_options_puts_the_common_names_first() {
        const NAMES: [&str; 4] = with_common_options(&["target"]);
        assert_eq!(NAMES, ["ca_file", "timeout", "verify", "target"]);
        assert_eq!(with_common_options::<3>(&[]), COMMON_OPTION_NAMES);
        let wrong = std::panic::catch_unwind(|| with_common_options::<5>(&["target"]));
        assert!(wrong.is_err(), "a wrong count is refused");
    }

    #[test]
    fn task_seconds_names_the_task_and_key() {
        assert_eq!(
            task_seconds(0, "timeout", 0.5),
            Ok(Duration::from_millis(500))
        );
        let error = task_seconds(2, "connect_timeout", -1.0).expect_err("negative");
        assert_eq!(
            error.to_string(),
            "task 2 (tasks[2].connect_timeout): connect_timeout must be a positive number of seconds, got -1.0"
        );
        let error = task_seconds(0, "timeout", f64::NAN).expect_err("NaN");
        assert!(
            error
                .to_string()
                .starts_with("task 0 (tasks[0].timeout): timeout must be a positive number"),
            "{error}"
        );
    }

    #[test]
    fn option_seconds_names_the_option_and_skips_null() {
        let options = map(json!({"a": 1.5, "b": null, "c": "x"}));
        assert_eq!(
            option_seconds(&options, "a"),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert_eq!(option_seconds(&options, "b"), Ok(None));
        assert_eq!(option_seconds(&options, "missing"), Ok(None));
        assert_eq!(
            option_seconds(&options, "c"),
            Err(PlanError::Config(
                "option \"c\" must be a positive number of seconds, got \"x\"".to_owned()
            ))
        );
    }

    #[test]
    fn common_options_parse_and_default_to_none() {
        assert_eq!(
            GroupOptions::from_map(&Map::new()),
            Ok(GroupOptions::default())
        );
        let options = GroupOptions::from_map(&map(
            json!({"timeout": 3, "verify": false, "ca_file": null, "other": [1]}),
        ))
        .expect("valid");
        assert_eq!(options.timeout(), Some(Duration::from_secs(3)));
        assert_eq!(options.verify(), Some(false));
        assert_eq!((options.ca_file(), options.ca_pem()), (None, None));
        let plan = GroupPlan::new("u", crate::TaskList::default())
            .with_options(map(json!({"verify": true})));
        assert_eq!(
            GroupOptions::from_plan(&plan).expect("valid").verify(),
            Some(true)
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        let cases = [
            (
                json!({"timeout": "soon"}),
                "option \"timeout\" must be a positive number of seconds, got \"soon\"",
            ),
            (
                json!({"timeout": 0}),
                "option \"timeout\" must be a positive number of seconds, got 0",
            ),
            (
                json!({"verify": "yes"}),
                "option \"verify\" must be true or false (or 0 / 1), got \"yes\"",
            ),
            (
                json!({"ca_file": 7}),
                "option \"ca_file\" must be a file path (a string), got 7",
            ),
        ];
        for (options, expected) in cases {
            assert_eq!(config_error(options), expected);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pem");
        let missing = missing.to_str().expect("utf-8 path");
        let message = config_error(json!({ "ca_file": missing }));
        assert!(
            message.starts_with(&format!("option \"ca_file\": cannot read {missing:?}: ")),
            "{message}"
        );
    }

    #[test]
    fn ca_file_is_read_once_and_goes_into_verifying_settings_only() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(b"not a certificate").expect("write");
        let path = file.path().to_str().expect("utf-8 path").to_owned();
        let options =
            GroupOptions::from_map(&map(json!({ "ca_file": path }))).expect("readable file");
        assert_eq!(options.ca_file(), Some(path.as_str()));
        assert_eq!(options.ca_pem(), Some("not a certificate"));
        // Read once: later changes to the file are not seen.
        file.write_all(b" more").expect("write");
        assert_eq!(options.ca_pem(), Some("not a certificate"));

        let verified = options.tls_settings(true, &[b"h2", b"http/1.1"]);
        assert!(!verified.insecure);
        assert_eq!(verified.extra_ca_pem.as_deref(), Some("not a certificate"));
        assert_eq!(verified.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        let insecure = options.tls_settings(false, &[b"http/1.1"]);
        assert!(insecure.insecure);
        assert_eq!(insecure.extra_ca_pem, None);

        // The PEM is checked when the verifying configuration is built.
        let error = options.tls_config(true, &[]).expect_err("no certificate");
        assert!(
            matches!(&error, PlanError::Config(m) if m.starts_with(&format!("option \"ca_file\": {path:?}: "))),
            "{error}"
        );
        assert!(options.tls_config(false, &[]).is_ok());
        // A ca_file is checked even when every task skips verification.
        let error = options
            .group_tls([false], &[])
            .expect_err("a bad ca_file is always reported");
        assert!(error.to_string().contains("ca_file"), "{error}");
    }

    #[test]
    fn group_tls_builds_what_the_tasks_need() {
        let options = GroupOptions::default();
        let tls = options.group_tls([true, true], &[]).expect("verified");
        assert!(tls.get(true).is_some() && tls.get(false).is_none());
        let tls = options.group_tls([false], &[]).expect("insecure");
        assert!(tls.get(true).is_none() && tls.get(false).is_some());
        let tls = options.group_tls([true, false], &[]).expect("both");
        let (verified, insecure) = (
            tls.get(true).expect("verified"),
            tls.get(false).expect("insecure"),
        );
        assert!(!Arc::ptr_eq(verified, insecure));
        let tls = options.group_tls([], &[]).expect("none");
        assert!(tls.get(true).is_none() && tls.get(false).is_none());
    }
}
