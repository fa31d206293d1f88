//! The project template (`load-density init PATH`, the MCP tool `load_density.create_project`):
//! Python's `create_project_dir`, pointed at a target that runs in-process instead of a public
//! host.
//!
//! `create_project(PATH, force)` writes:
//!
//! ```text
//! PATH/LoadDensity/
//!   keyword/keyword1.json   LD_start_demo_target, then LD_start_test: fast_http_user, 50 users,
//!                           10/s, 5 s, GET ${var.demo_http}/get and POST ${var.demo_http}/post
//!   keyword/keyword2.json   the same with http_user
//!   README.md               what the files are and how to run them
//!   run.sh                  load-density run-dir on keyword/
//! ```
//!
//! `LD_start_demo_target` is a command of the `load-density` binary (it starts the testkit's
//! HTTP target on 127.0.0.1 and registers its address as the variable `demo_http`); to load-test
//! your own service, drop that action and write its URL instead of `${var.demo_http}`.
//! Unlike Python, an existing file is not overwritten unless `force` is set, and nothing is
//! written then (every file is checked first).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The folder created under the given path.
pub const PARENT_NAME: &str = "LoadDensity";

/// Why the project could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectError {
    /// A file exists already and `force` was not given.
    #[error("{} exists already; nothing was written (use --force to overwrite)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file or folder could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The `LD_start_test` of a keyword file, for `user`.
fn keyword_document(user: &str) -> Value {
    json!([
        ["LD_start_demo_target"],
        ["LD_start_test", {
            "user_detail_dict": {"user": user},
            "user_count": 50,
            "spawn_rate": 10,
            "test_time": 5,
            "tasks": {
                "get": {"request_url": "${var.demo_http}/get"},
                "post": {"request_url": "${var.demo_http}/post"}
            }
        }]
    ])
}

const README: &str = "\
# A LoadDensity project

`keyword/` holds action documents (JSON lists of `[\"LD_command\", {arguments}]`):

- `keyword1.json` load-tests with `fast_http_user` (a lean HTTP/1.1 client): 50 users, started
  10 per second, for 5 seconds, each sending `GET /get` and `POST /post` in turn;
- `keyword2.json` does the same with `http_user` (cookies, redirects, HTTP/2).

Each starts with `LD_start_demo_target`, which starts LoadDensity's built-in HTTP target on
127.0.0.1 inside the `load-density` process and sets the variable `demo_http` to its address,
so the documents run anywhere, offline. To load-test your own service, remove that action and
replace `${var.demo_http}` with its base URL (or register the variable with
`[\"LD_register_variable\", {\"name\": \"demo_http\", \"value\": \"http://...\"}]`).

Run them all:

```sh
./run.sh                          # load-density run-dir keyword
load-density run keyword/keyword1.json
```

Each action prints one JSON line with its result; the exit status is 0 when every action
succeeded. `load-density commands` lists every command with its parameters.
";

const RUN_SH: &str = "\
#!/bin/sh
# Runs every action document under keyword/ (set LOAD_DENSITY to the binary if it is not on PATH).
set -e
cd \"$(dirname \"$0\")\"
exec \"${LOAD_DENSITY:-load-density}\" run-dir keyword
";

/// Writes the template under `path/LoadDensity/` and returns the files written.
///
/// # Errors
/// [`ProjectError::Exists`] when a file exists and `force` is false (nothing is written then);
/// [`ProjectError::Write`] when a folder or file cannot be written.
pub fn create_project(path: &Path, force: bool) -> Result<Vec<PathBuf>, ProjectError> {
    let root = path.join(PARENT_NAME);
    let keyword = root.join("keyword");
    let files: Vec<(PathBuf, String)> = vec![
        (
            keyword.join("keyword1.json"),
            pretty(&keyword_document("fast_http_user")),
        ),
        (
            keyword.join("keyword2.json"),
            pretty(&keyword_document("http_user")),
        ),
        (root.join("README.md"), README.to_owned()),
        (root.join("run.sh"), RUN_SH.to_owned()),
    ];
    if !force {
        if let Some((existing, _)) = files.iter().find(|(file, _)| file.exists()) {
            return Err(ProjectError::Exists {
                path: existing.clone(),
            });
        }
    }
    fs::create_dir_all(&keyword).map_err(|source| ProjectError::Write {
        path: keyword.clone(),
        source,
    })?;
    for (file, text) in &files {
        fs::write(file, text).map_err(|source| ProjectError::Write {
            path: file.clone(),
            source,
        })?;
    }
    make_executable(&root.join("run.sh"))?;
    Ok(files.into_iter().map(|(file, _)| file).collect())
}

/// JSON indented by 4 spaces, as Python writes it.
fn pretty(value: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serializing a Value into memory cannot fail.
    if serde::Serialize::serialize(value, &mut serializer).is_err() {
        return value.to_string();
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push('\n');
    text
}

#[cfg(unix)]
fn make_executable(file: &Path) -> Result<(), ProjectError> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(file, fs::Permissions::from_mode(0o755)).map_err(|source| {
        ProjectError::Write {
            path: file.to_path_buf(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn make_executable(_file: &Path) -> Result<(), ProjectError> {
    Ok(())
}
