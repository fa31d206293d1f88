//! CSV data sources for `${csv.SOURCE.COLUMN}` placeholders, streamed from disk.
//!
//! A run opens its sources once with [`DataSources::open`] and shares the result
//! (`Arc<DataSources>`) with every user ([`UserVariables::with_data`]). Each source keeps one
//! streaming reader behind a lock; rows are read on demand, never loaded whole, so a source may
//! be far larger than memory.
//!
//! # Binding
//!
//! - A **per-task** source (the default) binds one row per task execution: every
//!   `${csv.users.*}` placeholder of one task reads the same row, and the next task takes the
//!   next row. [`UserVariables::begin_task`] starts a new task.
//! - A **per-user** source (`per_user: true`) binds one row the first time a user reads it and
//!   keeps it for the user's whole life. Rows are handed out in file order, each to one user.
//!
//! Rows are shared out across all users of the run: two users never get the same row in the
//! same pass over the file.
//!
//! # The end of the file
//!
//! | `cycle` | at the end of the file |
//! |---|---|
//! | `true` (the default for per-task sources) | start again at the first row after the header |
//! | `false` (the default for per-user sources) | the source is exhausted: [`UserVariables::take_exhausted`] reports the source's `on_end` (`stop_user`, the default, or `stop_run`), and the scenario, which binds a task's rows before running it, stops the user or the run without running the task: no request carries an unresolved `${csv...}` |
//!
//! A per-user source therefore gives distinct rows to as many users as it has rows, then
//! `on_end` for the next users; with an explicit `cycle: true` later users reuse rows from the
//! top instead.
//!
//! # Errors
//!
//! [`DataSources::open`] checks what is cheap to check: the file opens, the header is valid
//! UTF-8 with non-empty, distinct column names (a UTF-8 byte-order mark is stripped, column
//! names are trimmed), and at least one data row follows. A bad row found later (a field count
//! that differs from the header's, invalid UTF-8) cannot fail a request: the row is skipped,
//! logged once, counted ([`DataSources::skipped_rows`]) and kept for [`DataSources::errors`].
//! Every message names the file and the line: `users.csv line 7: 3 fields, expected 2 (id, email)`.
//!
//! [`DataSources::check_template`] validates the `${csv...}` placeholders of a template against
//! the sources' headers before a run starts.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use load_density_core::data::{DataSourceSpec, DataSources};
//! use load_density_core::template::Template;
//! use load_density_core::variables::{UserVariables, Variables};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("users.csv");
//! std::fs::write(&path, "email,password\na@x,1\nb@x,2\n")?;
//! let data = Arc::new(DataSources::open([DataSourceSpec::new("users", &path)])?);
//! let login = Template::parse("${csv.users.email}:${csv.users.password}");
//! data.check_template(&login)?;
//!
//! let mut vars = UserVariables::with_data(Arc::new(Variables::new()), data, 0);
//! vars.begin_task();
//! assert_eq!(login.render(&vars), "a@x:1");
//! vars.begin_task();
//! assert_eq!(login.render(&vars), "b@x:2");
//! # Ok(())
//! # }
//! ```
//!
//! [`UserVariables::with_data`]: crate::variables::UserVariables::with_data
//! [`UserVariables::begin_task`]: crate::variables::UserVariables::begin_task
//! [`UserVariables::take_exhausted`]: crate::variables::UserVariables::take_exhausted

mod source;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value;

use crate::template::{JsonTemplate, Placeholder, Template};

pub(crate) use source::Fetch;
use source::Source;

/// What happens when a source that does not cycle runs out of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnEnd {
    /// Stop the user that asked for a row (the default).
    #[default]
    StopUser,
    /// Stop the whole run.
    StopRun,
}

impl fmt::Display for OnEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnEnd::StopUser => "stop_user",
            OnEnd::StopRun => "stop_run",
        })
    }
}

/// One CSV data source as configured (`csv_sources` items).
///
/// JSON form: `{"name": "users", "file_path": "users.csv", "cycle": true,
/// "on_end": "stop_user", "per_user": false}`; only `name` and `file_path` are required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceSpec {
    name: String,
    file_path: PathBuf,
    #[serde(default)]
    cycle: Option<bool>,
    #[serde(default)]
    on_end: OnEnd,
    #[serde(default)]
    per_user: bool,
}

impl DataSourceSpec {
    /// A per-task source named `name` reading `file_path`, cycling, stopping the user at the end
    /// if told not to cycle.
    pub fn new(name: impl Into<String>, file_path: impl AsRef<Path>) -> Self {
        Self {
            name: name.into(),
            file_path: file_path.as_ref().to_owned(),
            cycle: None,
            on_end: OnEnd::default(),
            per_user: false,
        }
    }

    /// Sets whether reading starts again at the top after the last row.
    pub fn with_cycle(mut self, cycle: bool) -> Self {
        self.cycle = Some(cycle);
        self
    }

    /// Sets what happens when a source that does not cycle runs out.
    pub fn with_on_end(mut self, on_end: OnEnd) -> Self {
        self.on_end = on_end;
        self
    }

    /// Binds one row per user for its whole life instead of one per task.
    pub fn with_per_user(mut self, per_user: bool) -> Self {
        self.per_user = per_user;
        self
    }

    /// Parses a `csv_sources` list (`null` is an empty list). Errors name the item and key:
    /// `csv_sources[1].on_end: unknown variant ...`.
    pub fn list_from_json(value: &Value) -> Result<Vec<Self>, DataError> {
        if value.is_null() {
            return Ok(Vec::new());
        }
        serde_path_to_error::deserialize::<_, Vec<Self>>(value.clone()).map_err(|error| {
            let path = error.path().to_string();
            // The path reads `[1].on_end` (or `.` for the list itself).
            let location = match path.as_str() {
                "." => "csv_sources".to_owned(),
                p if p.starts_with('[') => format!("csv_sources{p}"),
                p => format!("csv_sources.{p}"),
            };
            DataError::Spec(format!("{location}: {}", error.into_inner()))
        })
    }

    /// The name placeholders use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file.
    pub fn file_path(&self) -> &Path {
        &self.file_path
    }

    /// Whether reading starts again at the top after the last row: as configured, else true
    /// for a per-task source and false for a per-user one.
    pub fn cycle(&self) -> bool {
        self.cycle.unwrap_or(!self.per_user)
    }

    /// What happens when a source that does not cycle runs out.
    pub fn on_end(&self) -> OnEnd {
        self.on_end
    }

    /// Whether a user keeps one row for its whole life.
    pub fn per_user(&self) -> bool {
        self.per_user
    }
}

/// A data-source problem: what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The configuration is invalid (a missing, empty or duplicate name, a bad key).
    #[error("{0}")]
    Spec(String),
    /// A file cannot be opened.
    #[error("data source {name:?}: cannot open {path}: {message}")]
    Open {
        /// The source's name.
        name: String,
        /// The file as configured.
        path: String,
        /// Why.
        message: String,
    },
    /// A problem at one line of a file (the header, a ragged row, invalid UTF-8).
    #[error("{path} line {line}: {message}")]
    Line {
        /// The file as configured.
        path: String,
        /// 1-based line number where the row starts.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A placeholder names a source that does not exist.
    #[error("{placeholder}: unknown data source {data_source:?} (known sources: {known})")]
    UnknownSource {
        /// The placeholder as written.
        placeholder: String,
        /// The source it names.
        data_source: String,
        /// The configured sources, comma-separated.
        known: String,
    },
    /// A placeholder names a column that the source's header lacks.
    #[error(
        "{placeholder}: data source {data_source:?} ({path}) has no column {column:?} (columns: {known})"
    )]
    UnknownColumn {
        /// The placeholder as written.
        placeholder: String,
        /// The source.
        data_source: String,
        /// The source's file.
        path: String,
        /// The column it names.
        column: String,
        /// The header's columns, comma-separated.
        known: String,
    },
}

/// Why a `${csv...}` lookup gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsvMiss {
    /// The user has no data sources.
    #[error("the run has no data sources")]
    NoData,
    /// No source has that name.
    #[error("no data source has that name")]
    UnknownSource,
    /// The source has no such column.
    #[error("the data source has no such column")]
    UnknownColumn,
    /// The source ran out of rows and does not cycle.
    #[error("the data source is exhausted ({0})")]
    Exhausted(OnEnd),
}

/// One field of a bound row.
#[derive(Debug, Clone)]
pub struct Field {
    row: Arc<csv::StringRecord>,
    index: usize,
}

impl Field {
    pub(crate) fn new(row: Arc<csv::StringRecord>, index: usize) -> Self {
        Self { row, index }
    }

    /// The field's text.
    pub fn as_str(&self) -> &str {
        self.row.get(self.index).unwrap_or_default()
    }
}

impl std::ops::Deref for Field {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most this many row errors are kept (and logged); later ones are only counted.
const MAX_KEPT_ERRORS: usize = 1000;

/// Where row errors found while streaming go.
#[derive(Debug, Default)]
struct ErrorSink {
    errors: Mutex<Vec<DataError>>,
    skipped: AtomicU64,
    overflowed: AtomicBool,
}

impl ErrorSink {
    /// Counts a skipped row; keeps and logs its error when `error` is given (the first time the
    /// row is met).
    fn skipped(&self, error: Option<DataError>) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        let Some(error) = error else { return };
        let mut errors = self.errors.lock();
        if errors.len() < MAX_KEPT_ERRORS {
            tracing::warn!("data source row skipped: {error}");
            errors.push(error);
        } else if !self.overflowed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "more than {MAX_KEPT_ERRORS} bad data rows: later ones are skipped and counted, not logged"
            );
        }
    }
}

/// The data sources of one run, shared by all its users.
#[derive(Default)]
pub struct DataSources {
    sources: Vec<Source>,
    by_name: HashMap<String, usize>,
    sink: ErrorSink,
}

impl fmt::Debug for DataSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataSources")
            .field("sources", &self.sources)
            .field("skipped_rows", &self.skipped_rows())
            .finish()
    }
}

impl DataSources {
    /// No sources.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Opens every source: checks the names, opens each file and reads and checks its header.
    /// Rows are read later, on demand.
    pub fn open(specs: impl IntoIterator<Item = DataSourceSpec>) -> Result<Self, DataError> {
        let mut sources = Vec::new();
        let mut by_name = HashMap::new();
        for spec in specs {
            if spec.name.is_empty() {
                return Err(DataError::Spec(format!(
                    "the data source reading {} needs a non-empty name",
                    spec.file_path.display()
                )));
            }
            if spec.name.contains('.') {
                return Err(DataError::Spec(format!(
                    "data source name {:?} must not contain '.' (placeholders are ${{csv.SOURCE.COLUMN}})",
                    spec.name
                )));
            }
            if by_name.contains_key(&spec.name) {
                return Err(DataError::Spec(format!(
                    "two data sources are named {:?}",
                    spec.name
                )));
            }
            by_name.insert(spec.name.clone(), sources.len());
            sources.push(Source::open(spec)?);
        }
        Ok(Self {
            sources,
            by_name,
            sink: ErrorSink::default(),
        })
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The sources' names, in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|s| s.spec().name())
    }

    /// A source's configuration.
    pub fn spec(&self, name: &str) -> Option<&DataSourceSpec> {
        self.index_of(name).map(|i| self.sources[i].spec())
    }

    /// A source's header columns.
    pub fn columns(&self, name: &str) -> Option<&[String]> {
        self.index_of(name).map(|i| self.sources[i].columns())
    }

    /// The row errors met so far (ragged rows, invalid UTF-8, read errors), each once, in the
    /// order found; at most 1000 are kept.
    pub fn errors(&self) -> Vec<DataError> {
        self.sink.errors.lock().clone()
    }

    /// How many rows were skipped so far (every time, including repeats when cycling).
    pub fn skipped_rows(&self) -> u64 {
        self.sink.skipped.load(Ordering::Relaxed)
    }

    /// Checks every `${csv.SOURCE.COLUMN}` of a template: the source exists and its header has
    /// the column.
    pub fn check_template(&self, template: &Template) -> Result<(), DataError> {
        for (placeholder, raw) in template.placeholders_with_text() {
            if let Placeholder::Csv { source, column } = placeholder {
                self.check_column(raw, source, column)?;
            }
        }
        Ok(())
    }

    /// [`check_template`](Self::check_template) for every string of a JSON template.
    pub fn check_json_template(&self, template: &JsonTemplate) -> Result<(), DataError> {
        template
            .templates()
            .into_iter()
            .try_for_each(|t| self.check_template(t))
    }

    fn check_column(&self, raw: &str, source: &str, column: &str) -> Result<(), DataError> {
        let Some(index) = self.index_of(source) else {
            let known = self.names().collect::<Vec<_>>();
            return Err(DataError::UnknownSource {
                placeholder: raw.to_owned(),
                data_source: source.to_owned(),
                known: list(&known),
            });
        };
        let found = &self.sources[index];
        if found.column_index(column).is_none() {
            return Err(DataError::UnknownColumn {
                placeholder: raw.to_owned(),
                data_source: source.to_owned(),
                path: found.path_text().to_owned(),
                column: column.to_owned(),
                known: list(found.columns()),
            });
        }
        Ok(())
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn source(&self, index: usize) -> Option<&Source> {
        self.sources.get(index)
    }

    /// The next row of source `index` (shared by every user).
    pub(crate) fn next_row(&self, index: usize) -> Fetch {
        match self.sources.get(index) {
            Some(source) => source.next_row(&self.sink),
            None => Fetch::Exhausted,
        }
    }
}

fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
