//! Process-wide registrations made before a run: variables and CSV sources
//! (`LD_register_variable(s)`, `LD_register_csv_source(s)`). Every later run takes a snapshot:
//! the variables as they are when it starts, and its own readers over the registered files.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use load_density_core::data::{DataSourceSpec, DataSources};
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
    /// Start again at the first row after the last.
    pub cycle: bool,
    /// The header row's columns.
    pub columns: Vec<String>,
    spec: DataSourceSpec,
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

/// Registers a data source after opening it (the file exists, its header is valid). A source
/// registered again under the same name replaces the old one.
pub fn register_data_source(spec: DataSourceSpec) -> Result<(), RunError> {
    let opened = DataSources::open([spec.clone()])?;
    let columns = opened
        .columns(spec.name())
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    csv_sources().write().insert(
        spec.name().to_owned(),
        CsvSource {
            name: spec.name().to_owned(),
            file_path: spec.file_path().display().to_string(),
            cycle: spec.cycle(),
            columns,
            spec,
        },
    );
    Ok(())
}

/// Registers a CSV source (`LD_register_csv_source`).
pub fn register_csv_source(name: &str, file_path: &str, cycle: bool) -> Result<(), RunError> {
    register_data_source(DataSourceSpec::new(name, file_path).with_cycle(cycle))
}

/// Registers a `csv_sources` list: `[{"name", "file_path", "cycle", "on_end", "per_user"}]`.
pub fn register_csv_sources(sources: &Value) -> Result<(), RunError> {
    for spec in DataSourceSpec::list_from_json(sources)? {
        register_data_source(spec)?;
    }
    Ok(())
}

/// The registered CSV sources.
pub fn registered_csv_sources() -> Vec<CsvSource> {
    csv_sources().read().values().cloned().collect()
}

/// Opens the data sources of one run: every registered source, and the run's own `csv_sources`
/// (which replace registered ones of the same name, for this run only).
pub fn open_data_sources(run_sources: Option<&Value>) -> Result<DataSources, RunError> {
    let mut specs: BTreeMap<String, DataSourceSpec> = csv_sources()
        .read()
        .iter()
        .map(|(name, s)| (name.clone(), s.spec.clone()))
        .collect();
    if let Some(value) = run_sources {
        for spec in DataSourceSpec::list_from_json(value)? {
            specs.insert(spec.name().to_owned(), spec);
        }
    }
    Ok(DataSources::open(specs.into_values())?)
}
