//! The executor's errors.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use crate::error::RunError;
use crate::report::ReportError;

/// Why an action document, or one action in it, could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// An action file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read action file {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A directory of action files could not be listed.
    #[error("cannot read action directory {}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A directory holds no `*.json` file.
    #[error("no *.json action files in {}", path.display())]
    NoActionFiles {
        /// The directory.
        path: PathBuf,
    },
    /// The document is not valid JSON.
    #[error("{}invalid JSON at line {line}, column {column}: {message}", origin(path.as_deref()))]
    Json {
        /// The file, when the document came from one.
        path: Option<PathBuf>,
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// The document is valid JSON but not an action document.
    #[error("{}invalid action document: {reason}", origin(path.as_deref()))]
    Document {
        /// The file, when the document came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// One action has the wrong shape.
    #[error("action {index}: {reason}")]
    Action {
        /// Position of the action, from 0.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// No command has this name.
    #[error("unknown command {name:?}; known commands: {}", known.join(", "))]
    UnknownCommand {
        /// The name given.
        name: String,
        /// Every command name, sorted.
        known: Vec<&'static str>,
    },
    /// A command's arguments are wrong: unknown, missing, or of the wrong type.
    #[error("{command}: {message}")]
    Arguments {
        /// The command.
        command: &'static str,
        /// What is wrong, naming the argument.
        message: String,
    },
    /// The command ran and failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Two crates (or a crate and the built-in table) registered the same command name.
    #[error(
        "action commands registered more than once: {duplicates}; link only one crate that \
         provides each name"
    )]
    DuplicateCommand {
        /// Each duplicated name with the crates (and modules) that register it.
        duplicates: String,
    },
    /// A command registered by a crate ran and failed.
    #[error("{command}")]
    Plugin {
        /// The command.
        command: &'static str,
        /// The command's error.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
    /// The command exists for compatibility with the Python version and cannot work here.
    #[error("{command}: {explanation}")]
    Unsupported {
        /// The command.
        command: &'static str,
        /// Why, and what to do instead.
        explanation: String,
    },
    /// Some actions of a nested document (`LD_execute_action`, `LD_execute_files`) failed.
    #[error("{command}: {failed} of {total} failed")]
    Nested {
        /// The command.
        command: &'static str,
        /// How many nested actions (or files) failed.
        failed: usize,
        /// How many there were.
        total: usize,
        /// Every nested result, in order.
        results: serde_json::Value,
    },
    /// Documents nest deeper than [`MAX_DEPTH`](crate::executor::MAX_DEPTH) levels.
    #[error("{command}: documents nest more than {max} levels deep (does a file run itself?)")]
    TooDeep {
        /// The command.
        command: &'static str,
        /// The limit.
        max: usize,
    },
    /// The control socket could not start.
    #[error(transparent)]
    SocketServer(#[from] crate::socket_server::SocketServerError),
    /// An exporter, persistence or import command failed (the source says why).
    #[error("{command}")]
    Command {
        /// The command.
        command: &'static str,
        /// What went wrong.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
    /// A command's return value could not be turned into JSON.
    #[error("{command}: cannot convert the result to JSON")]
    Output {
        /// The command.
        command: &'static str,
        /// The serialization error.
        #[source]
        source: serde_json::Error,
    },
}

impl ExecutorError {
    /// A parse error, with serde_json's location taken out of its message and kept as fields.
    pub(crate) fn json(path: Option<&Path>, error: &serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let text = error.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        ExecutorError::Json {
            path: path.map(Path::to_path_buf),
            line,
            column,
            message,
        }
    }
}

fn origin(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

/// An error and its causes on one line, separated by `": "` (what `{:#}` prints in `anyhow`).
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message; do not print it twice.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
