//! Action commands added by other crates: [`register_command!`](crate::register_command).
//!
//! The Python executor loads arbitrary modules at run time (`LD_add_package_to_executor`); here
//! a crate adds commands at build time, the way protocol crates add user types: it calls
//! [`register_command!`](crate::register_command) once per command, and linking the crate into a
//! binary makes the commands available to every action document that binary runs.
//!
//! ```
//! use load_density::register_command;
//! use serde::Deserialize;
//!
//! /// `LD_greet`'s keyword arguments, validated by serde (unknown keys are rejected).
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Greet {
//!     who: String,
//!     #[serde(default = "one")]
//!     times: u32,
//! }
//!
//! fn one() -> u32 {
//!     1
//! }
//!
//! fn greet(args: Greet) -> Result<String, std::convert::Infallible> {
//!     Ok(vec![format!("hello {}", args.who); args.times as usize].join(", "))
//! }
//!
//! register_command! {
//!     name: "LD_greet",
//!     description: "Greets someone, `times` times",
//!     params: ["who", "times"],
//!     args: Greet,
//!     run: greet,
//! }
//!
//! let results = load_density::executor::execute_str(
//!     r#"[["LD_greet", {"who": "world", "times": 2}], ["LD_greet", ["you"]]]"#,
//! )?;
//! assert_eq!(results[0].outcome.as_ref().ok(), Some(&serde_json::json!("hello world, hello world")));
//! assert_eq!(results[1].outcome.as_ref().ok(), Some(&serde_json::json!("hello you")));
//! # Ok::<(), load_density::executor::ExecutorError>(())
//! ```
//!
//! `params` lists the keyword arguments in positional order: `["LD_greet", ["you", 2]]` is the
//! same as `["LD_greet", {"who": "you", "times": 2}]`. A command's name must be unique among
//! the built-in commands and every linked crate's commands: a name registered twice makes every
//! command lookup fail with [`ExecutorError::DuplicateCommand`], naming both crates, since
//! picking one would depend on link order.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::sync::OnceLock;

use load_density_core::__private::inventory;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::ExecutorError;

/// The error type a plugin command's function may return.
pub type PluginError = Box<dyn StdError + Send + Sync + 'static>;

/// Runs a plugin command with its keyword arguments (built by [`register_command!`](crate::register_command)).
pub type PluginRun = fn(Map<String, Value>) -> Result<Value, PluginError>;

/// One command registered by a crate: plain data, built in a `const` context by
/// [`register_command!`](crate::register_command).
pub struct CommandRegistration {
    name: &'static str,
    description: &'static str,
    params: &'static [&'static str],
    package: &'static str,
    module: &'static str,
    run: PluginRun,
}

impl CommandRegistration {
    /// Builds a registration. Use [`register_command!`](crate::register_command) rather than
    /// calling this directly.
    pub const fn new(
        name: &'static str,
        description: &'static str,
        params: &'static [&'static str],
        package: &'static str,
        module: &'static str,
        run: PluginRun,
    ) -> Self {
        Self {
            name,
            description,
            params,
            package,
            module,
            run,
        }
    }

    /// The command's name, e.g. `"LD_greet"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A one-line description for listings.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The keyword arguments, in positional order.
    pub fn params(&self) -> &'static [&'static str] {
        self.params
    }

    /// The package (crate) that registered it, and the module the registration is in.
    pub fn provider(&self) -> String {
        format!("{} ({})", self.package, self.module)
    }

    pub(super) fn run(&self, arguments: Map<String, Value>) -> Result<Value, PluginError> {
        (self.run)(arguments)
    }
}

impl std::fmt::Debug for CommandRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandRegistration")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("package", &self.package)
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

inventory::collect!(CommandRegistration);

/// Deserializes the keyword arguments into `T`, runs `run` and converts its result to JSON.
/// Called by the function [`register_command!`](crate::register_command) generates.
#[doc(hidden)]
pub fn invoke<T, R, E>(
    arguments: Map<String, Value>,
    run: fn(T) -> Result<R, E>,
) -> Result<Value, PluginError>
where
    T: DeserializeOwned,
    R: Serialize,
    E: Into<PluginError>,
{
    let args: T = serde_json::from_value(Value::Object(arguments))
        .map_err(|error| PluginError::from(ArgumentsError(error.to_string())))?;
    let value = run(args).map_err(Into::into)?;
    serde_json::to_value(value).map_err(|error| PluginError::from(OutputError(error)))
}

/// The arguments did not deserialize into the command's argument type.
#[derive(Debug, thiserror::Error)]
#[error("invalid arguments: {0}")]
pub(super) struct ArgumentsError(String);

/// The command's result did not serialize to JSON.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert the result to JSON")]
struct OutputError(#[source] serde_json::Error);

/// The index of registered commands, built once.
pub(super) struct Index {
    by_name: BTreeMap<&'static str, &'static CommandRegistration>,
    /// `(name, providers)` of every name registered more than once (built-ins count).
    duplicates: Vec<(&'static str, Vec<String>)>,
}

/// What provides a built-in command.
pub(super) const BUILT_IN: &str = "load-density (built in)";

pub(super) fn index(builtin: &[&'static str]) -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut providers: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for name in builtin {
            providers.entry(name).or_default().push(BUILT_IN.to_owned());
        }
        let mut by_name = BTreeMap::new();
        for registration in inventory::iter::<CommandRegistration> {
            providers
                .entry(registration.name)
                .or_default()
                .push(registration.provider());
            by_name.insert(registration.name, registration);
        }
        let duplicates = providers
            .into_iter()
            .filter(|(_, list)| list.len() > 1)
            .map(|(name, mut list)| {
                list.sort();
                (name, list)
            })
            .collect();
        Index {
            by_name,
            duplicates,
        }
    })
}

impl Index {
    /// The duplicate-name error, if any name is registered twice.
    pub(super) fn check(&self) -> Result<(), ExecutorError> {
        match self.duplicates.first() {
            None => Ok(()),
            Some(_) => Err(ExecutorError::DuplicateCommand {
                duplicates: self
                    .duplicates
                    .iter()
                    .map(|(name, providers)| format!("{name:?} by {}", providers.join(" and ")))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&'static CommandRegistration> {
        self.by_name.get(name).copied()
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &'static CommandRegistration> + '_ {
        self.by_name.values().copied()
    }
}

/// Registers an action command with LoadDensity's executor.
///
/// ```text
/// register_command! {
///     name: "LD_my_command",            // unique among all commands
///     description: "What it does",      // shown by `load-density commands`
///     params: ["first", "second"],      // keyword arguments, in positional order
///     args: MyArgs,                     // a serde::Deserialize type for the keyword arguments
///     run: my_function,                 // fn(MyArgs) -> Result<impl Serialize, impl Into<PluginError>>
/// }
/// ```
///
/// The registration records the calling crate's package name and module, so that a duplicate
/// name can be reported with both providers. See [`executor::plugin`](crate::executor::plugin).
#[macro_export]
macro_rules! register_command {
    (
        name: $name:expr,
        description: $description:expr,
        params: [$($param:expr),* $(,)?],
        args: $args:ty,
        run: $run:expr $(,)?
    ) => {
        const _: () = {
            fn __load_density_run(
                arguments: $crate::__private::serde_json::Map<
                    ::std::string::String,
                    $crate::__private::serde_json::Value,
                >,
            ) -> ::std::result::Result<
                $crate::__private::serde_json::Value,
                $crate::executor::plugin::PluginError,
            > {
                $crate::executor::plugin::invoke::<$args, _, _>(arguments, $run)
            }
            $crate::core::__private::inventory::submit! {
                $crate::executor::plugin::CommandRegistration::new(
                    $name,
                    $description,
                    &[$($param),*],
                    ::std::env!("CARGO_PKG_NAME"),
                    ::std::module_path!(),
                    __load_density_run,
                )
            }
        };
    };
}

/// Runs a registered command with an action's second element: keyword arguments, or positional
/// ones matched to `params` in order.
pub(super) fn dispatch(
    registration: &'static CommandRegistration,
    arguments: Option<&Value>,
) -> Result<Value, ExecutorError> {
    let command = registration.name;
    let params = registration.params;
    let arguments_error = |message: String| ExecutorError::Arguments { command, message };
    let accepted = || {
        if params.is_empty() {
            "it takes no arguments".to_owned()
        } else {
            format!("accepted: {}", params.join(", "))
        }
    };
    let values = match arguments {
        None => Map::new(),
        Some(Value::Object(map)) => {
            if let Some(unknown) = map.keys().find(|k| !params.contains(&k.as_str())) {
                return Err(arguments_error(format!(
                    "unknown argument {unknown:?} ({})",
                    accepted()
                )));
            }
            map.clone()
        }
        Some(Value::Array(list)) => {
            if list.len() > params.len() {
                return Err(arguments_error(format!(
                    "takes at most {} positional arguments ({}), got {}",
                    params.len(),
                    accepted(),
                    list.len()
                )));
            }
            params
                .iter()
                .zip(list)
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect()
        }
        Some(other) => {
            return Err(arguments_error(format!(
                "arguments must be an object (keyword arguments) or a list (positional \
                 arguments), got {}",
                super::kind(other)
            )))
        }
    };
    registration
        .run(values)
        .map_err(|source| match source.downcast::<ArgumentsError>() {
            Ok(invalid) => arguments_error(format!("{} ({})", invalid.0, accepted())),
            Err(source) => ExecutorError::Plugin { command, source },
        })
}
