//! Turning recorded or described traffic into tasks: HAR files ([`har`]) and OpenAPI 3
//! documents ([`openapi`]).

pub mod har;
pub mod openapi;

use std::path::PathBuf;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("{}: {what} does not parse: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was expected (`HAR JSON`, `OpenAPI YAML`, ...).
        what: &'static str,
        /// The parser's message, with its line and column.
        message: String,
    },
    /// The document parses but is not what was expected; the message names the key.
    #[error("{0}")]
    Invalid(String),
    /// An include or exclude pattern is not a valid regex.
    #[error("{which} pattern {pattern:?} is not a valid regex: {message}")]
    Pattern {
        /// `include` or `exclude`.
        which: &'static str,
        /// The pattern.
        pattern: String,
        /// The regex error.
        message: String,
    },
}
