//! The Locust CSV files of one run, written by the run monitor ([`crate::monitor`]): the
//! history gets a row each second, the other three files are rewritten with the statistics
//! of that second (see [`super::locust_csv`] for the formats).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use load_density_core::RequestStats;

use super::locust_csv;
use crate::error::RunError;

/// The Locust CSV files of a run.
pub(crate) struct LocustFiles {
    prefix: String,
    full_history: bool,
    history: BufWriter<File>,
    /// (type, name, message) → (first seen, last seen, occurrences), unix seconds.
    seen: HashMap<ErrorKey, (f64, f64, u64)>,
}

/// An error group's key: (type, name, message).
type ErrorKey = (Arc<str>, Arc<str>, Arc<str>);

impl LocustFiles {
    pub(crate) fn create(prefix: &str, full_history: bool) -> Result<Self, RunError> {
        let path = PathBuf::from(format!("{prefix}_stats_history.csv"));
        let mut history = File::create(&path)
            .map(BufWriter::new)
            .map_err(|e| file_error(&path, &e))?;
        locust_csv::write_history_header(&mut history).map_err(|e| file_error(&path, &e))?;
        let mut files = Self {
            prefix: prefix.to_owned(),
            full_history,
            history,
            seen: HashMap::new(),
        };
        // The other three exist from the start, with their headers, as Locust's do.
        files.rewrite(&RequestStats::new(), SystemTime::now())?;
        Ok(files)
    }

    fn path(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}_{suffix}.csv", self.prefix))
    }

    /// One second: a history row, and the three snapshot files rewritten.
    pub(crate) fn sample(
        &mut self,
        stats: &RequestStats,
        users: u64,
        now: SystemTime,
    ) -> Result<(), RunError> {
        let path = self.path("stats_history");
        locust_csv::write_history_rows(&mut self.history, stats, users, now, self.full_history)
            .and_then(|()| self.history.flush())
            .map_err(|e| file_error(&path, &e))?;
        self.rewrite(stats, now)
    }

    fn rewrite(&mut self, stats: &RequestStats, now: SystemTime) -> Result<(), RunError> {
        let now_f = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        for group in stats.errors() {
            let key = (
                group.request_type.clone(),
                group.name.clone(),
                group.message.clone(),
            );
            let entry = self
                .seen
                .entry(key)
                .or_insert((now_f, now_f, group.occurrences));
            if entry.2 != group.occurrences {
                entry.1 = now_f;
                entry.2 = group.occurrences;
            }
        }
        let seen = &self.seen;
        write_whole(self.path("stats"), |out| {
            locust_csv::write_stats(out, stats)
        })?;
        write_whole(self.path("failures"), |out| {
            locust_csv::write_failures(out, stats, |group| {
                let key = (
                    group.request_type.clone(),
                    group.name.clone(),
                    group.message.clone(),
                );
                seen.get(&key).map_or((now_f, now_f), |(f, l, _)| (*f, *l))
            })
        })?;
        write_whole(self.path("exceptions"), locust_csv::write_exceptions)
    }
}

fn file_error(path: &std::path::Path, error: &std::io::Error) -> RunError {
    RunError::Config(format!(
        "csv_prefix: cannot write {}: {error}",
        path.display()
    ))
}

fn write_whole(
    path: PathBuf,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), RunError> {
    crate::reports::text::write_file(path.clone(), write)
        .map(|_| ())
        .map_err(|e| match e {
            crate::report::ReportError::Write { source, .. } => file_error(&path, &source),
            other => RunError::Config(other.to_string()),
        })
}
