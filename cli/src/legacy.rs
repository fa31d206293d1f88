//! The Python CLI's hidden flags, for scripts written against it: with no subcommand, each
//! flag given runs, in the order file, directory, string, project (whatever order they were
//! written in).

use std::path::PathBuf;

use load_density::executor;

use crate::output;

/// `-e FILE`, `-d DIR`, `--execute_str JSON`, `-c PATH` (hidden from the help).
#[derive(Debug, Default, clap::Args)]
pub struct LegacyFlags {
    /// Execute one action file (legacy; use `run`).
    #[arg(short = 'e', long = "execute_file", hide = true, value_name = "FILE")]
    execute_file: Option<PathBuf>,
    /// Execute every action file under a directory (legacy; use `run-dir`).
    #[arg(short = 'd', long = "execute_dir", hide = true, value_name = "DIR")]
    execute_dir: Option<PathBuf>,
    /// Execute an action document given as a string (legacy; use `run-str`).
    #[arg(long = "execute_str", hide = true, value_name = "JSON")]
    execute_str: Option<String>,
    /// Write the project template (legacy; use `init`).
    #[arg(short = 'c', long = "create_project", hide = true, value_name = "PATH")]
    create_project: Option<PathBuf>,
}

impl LegacyFlags {
    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        self.execute_file.is_none()
            && self.execute_dir.is_none()
            && self.execute_str.is_none()
            && self.create_project.is_none()
    }

    /// Runs each flag given, in Python's order; an error stops the rest, as an exception did.
    pub fn run(self) -> anyhow::Result<bool> {
        let mut all_ok = true;
        if let Some(file) = self.execute_file {
            all_ok &= output::print_files(&executor::execute_files(&[file]))?;
        }
        if let Some(dir) = self.execute_dir {
            all_ok &= output::print_files(&executor::execute_dir(&dir)?)?;
        }
        if let Some(json) = self.execute_str {
            all_ok &= output::print_results(None, &executor::execute_str(&json)?)?;
        }
        if let Some(path) = self.create_project {
            for file in load_density::project::create_project(&path, false)? {
                println!("{}", file.display());
            }
        }
        Ok(all_ok)
    }
}
