//! Process-wide registrations made before a run: variables and CSV sources
//! (`LD_register_variable(s)`, `LD_register_csv_source(s)`). Every later run takes a snapshot.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::OnceLock;

use load_density_core::Variables;
use parking_lot::RwLock;
use serde_json::{Map, Value};

use crate::error::RunError;

fn variables() -> &'static RwLock<Variables> {
    static VARIABLES: OnceLock<RwLock<Variables>> = OnceLock::new();
    VARIABLES.get_or_init(|| RwLock::new(Variables::new()))
}

/// A registered CSV data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvSource {
    /// The name placeholders use (`${csv.NAME.COLUMN}`).
    pub name: String,
    /// The file.
    pub file_path: String,
    /// Start again at the first row after the last (default true).
    pub cycle: bool,
    /// The header row's columns.
    pub columns: Vec<String>,
}

fn csv_sources() -> &'static RwLock<BTreeMap<String, CsvSource>> {
    static SOURCES: OnceLock<RwLock<BTreeMap<String, CsvSource>>> = OnceLock::new();
    SOURCES.get_or_init(|| RwLock::new(BTreeMap::new()))
}

/// Registers one run-level variable for every later run (replacing an existing one).
pub fn register_variable(name: &str, value: Value) {
    variables().write().insert(name, value);
}

/// Registers several run-level variables.
pub fn register_variables(values: Map<String, Value>) {
    variables().write().extend(values);
}

/// Forgets every registered variable and CSV source.
pub fn clear_variables() {
    *variables().write() = Variables::new();
    csv_sources().write().clear();
}

/// The registered variables.
pub fn registered_variables() -> Variables {
    variables().read().clone()
}

/// Registers a CSV source after checking that the file exists and has a header row.
pub fn register_csv_source(name: &str, file_path: &str, cycle: bool) -> Result<(), RunError> {
    let error = |message: String| RunError::Csv {
        name: name.to_owned(),
        path: file_path.to_owned(),
        message,
    };
    if name.is_empty() {
        return Err(error("the source needs a non-empty name".to_owned()));
    }
    let file = std::fs::File::open(file_path).map_err(|e| error(format!("cannot open: {e}")))?;
    let mut header = String::new();
    BufReader::new(file)
        .read_line(&mut header)
        .map_err(|e| error(format!("cannot read line 1: {e}")))?;
    let header = header
        .trim_start_matches('\u{feff}')
        .trim_end_matches(['\r', '\n']);
    if header.is_empty() {
        return Err(error("line 1: the file has no header row".to_owned()));
    }
    let columns = header.split(',').map(|c| c.trim().to_owned()).collect();
    csv_sources().write().insert(
        name.to_owned(),
        CsvSource {
            name: name.to_owned(),
            file_path: file_path.to_owned(),
            cycle,
            columns,
        },
    );
    Ok(())
}

/// Registers a list of `{"name", "file_path", "cycle"}` sources.
pub fn register_csv_sources(sources: &Value) -> Result<(), RunError> {
    let Value::Array(items) = sources else {
        return Err(RunError::Config(format!(
            "csv_sources must be a list of {{\"name\", \"file_path\", \"cycle\"}} objects, got {sources}"
        )));
    };
    for (index, item) in items.iter().enumerate() {
        let field = |key: &str| item.get(key).and_then(Value::as_str);
        let (Some(name), Some(path)) = (field("name"), field("file_path")) else {
            return Err(RunError::Config(format!(
                "csv_sources[{index}] needs string \"name\" and \"file_path\" keys"
            )));
        };
        let cycle = match item.get("cycle") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(RunError::Config(format!(
                    "csv_sources[{index}].cycle must be true or false, got {other}"
                )))
            }
        };
        register_csv_source(name, path, cycle)?;
    }
    Ok(())
}

/// The registered CSV sources.
pub fn registered_csv_sources() -> Vec<CsvSource> {
    csv_sources().read().values().cloned().collect()
}
