//! Where a run's files go: one rule for every file LoadDensity writes (reports, CSV, HTML...).
//!
//! [`report_path`] resolves a report's name:
//! - a name without an extension gets the writer's (`summary` -> `summary.json`); a name that
//!   already has one keeps it as given (`report.html` stays `report.html`, never
//!   `report.html.json`);
//! - a relative name goes under the output directory: the one the action gives
//!   (`output_dir`), else the process-wide one ([`set_output_dir`], the CLI's `--output-dir`),
//!   else the current directory; an absolute name is used as it is;
//! - the output directory is created when missing.
//!
//! ```
//! use std::path::Path;
//! use load_density::output_dir::report_path;
//!
//! let dir = std::env::temp_dir().join("ld-doc-output-dir");
//! assert_eq!(report_path("summary", "json", Some(&dir))?, dir.join("summary.json"));
//! assert_eq!(report_path("report.html", "json", Some(&dir))?, dir.join("report.html"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A report writer calls `report_path(name, "its extension", output_dir_keyword)` and writes
//! to the path it returns.

use std::path::{Path, PathBuf};

use parking_lot::RwLock;

static OUTPUT_DIR: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Sets the process-wide output directory (`None`: the current directory). The CLI's
/// `--output-dir` sets it; an action's `output_dir` keyword overrides it for that action.
pub fn set_output_dir(dir: Option<PathBuf>) {
    *OUTPUT_DIR.write() = dir;
}

/// The process-wide output directory, if one was set.
pub fn output_dir() -> Option<PathBuf> {
    OUTPUT_DIR.read().clone()
}

/// The path a file named `name` is written to (see the [module docs](self)): `extension`
/// (without the dot) is added when `name` has none; a relative name goes under `dir`, else the
/// process-wide output directory. Creates that directory when it is missing.
///
/// # Errors
/// The output directory cannot be created.
pub fn report_path(name: &str, extension: &str, dir: Option<&Path>) -> std::io::Result<PathBuf> {
    let mut file = PathBuf::from(name);
    if file.extension().is_none() {
        let mut with_extension = file.into_os_string();
        with_extension.push(".");
        with_extension.push(extension);
        file = PathBuf::from(with_extension);
    }
    if file.is_absolute() {
        return Ok(file);
    }
    let dir = dir.map(Path::to_path_buf).or_else(output_dir);
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            Ok(dir.join(file))
        }
        None => Ok(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extension_given_is_kept_and_a_missing_one_added() {
        assert_eq!(
            report_path("summary", "json", None).expect("path"),
            PathBuf::from("summary.json")
        );
        assert_eq!(
            report_path("report.html", "json", None).expect("path"),
            PathBuf::from("report.html")
        );
        assert_eq!(
            report_path("out/run.v2", "json", None).expect("path"),
            PathBuf::from("out/run.v2")
        );
    }

    #[test]
    fn relative_names_go_under_the_output_dir_which_is_created() {
        let base = std::env::temp_dir().join(format!("ld-output-dir-{}", std::process::id()));
        let dir = base.join("nested");
        let path = report_path("summary", "json", Some(&dir)).expect("path");
        assert_eq!(path, dir.join("summary.json"));
        assert!(dir.is_dir());
        let absolute = base.join("elsewhere.json");
        assert_eq!(
            report_path(absolute.to_str().expect("utf-8"), "json", Some(&dir)).expect("path"),
            absolute
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
