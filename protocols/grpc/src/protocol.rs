//! Preparing a group: options, descriptors (once per group, shared by every user), task
//! compilation, endpoints and TLS.

use std::collections::HashMap;
use std::sync::Arc;

use load_density_core::checks::TaskChecks;
use load_density_core::task::options::with_common_options;
use load_density_core::{
    async_trait, GroupOptions, GroupPlan, PlanError, Protocol, UserFactory, UserTemplate,
};
use prost_reflect::DescriptorPool;
use serde_json::{Map, Value};

use crate::channel::{ChannelSlot, Endpoint, Target};
use crate::descriptors::{compile_proto_files, load_descriptor_set};
use crate::reflection::{reflect, Reflected};
use crate::task::{parse_compression, CompiledTask, Defaults, GrpcTask, TaskSpec};
use crate::user::GrpcUser;
use crate::{DEFAULT_TARGET, DEFAULT_TIMEOUT};

/// The `grpc_user` protocol: loads the group's service descriptors, validates its gRPC tasks
/// against them and makes [`grpc_user`](crate) users.
///
/// Registered under [`USER_TYPE`](crate::USER_TYPE); see the [crate docs](crate) for the task
/// keys and options.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcProtocol;

/// The group options this protocol reads: the common ones
/// ([`COMMON_OPTION_NAMES`](load_density_core::COMMON_OPTION_NAMES): `ca_file`, `timeout`,
/// `verify`) and its own.
pub(crate) const OPTION_NAMES: &[&str] = &with_common_options::<10>(&[
    "proto_files",
    "import_paths",
    "descriptor_set",
    "reflection",
    "target",
    "share_channel",
    "compression",
]);

fn config_type(key: &str, expected: &str, got: impl std::fmt::Display) -> PlanError {
    PlanError::Config(format!("option {key:?} must be {expected}, got {got}"))
}

/// Where the descriptors come from.
#[derive(Debug)]
enum Source {
    /// `proto_files` (+ `import_paths`) or `descriptor_set`: one pool for every target.
    Pool(DescriptorPool),
    /// `reflection: true`: asked of each target.
    Reflection,
}

#[derive(Debug, Default)]
struct Options {
    /// `timeout`, `verify` and `ca_file`.
    common: GroupOptions,
    proto_files: Vec<String>,
    import_paths: Vec<String>,
    descriptor_set: Option<String>,
    reflection: bool,
    target: Option<String>,
    share_channel: bool,
    gzip: bool,
}

fn string_list(options: &Map<String, Value>, key: &str) -> Result<Vec<String>, PlanError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                other => Err(config_type(key, "a list of paths", other)),
            })
            .collect(),
        Some(other) => Err(config_type(key, "a path or a list of paths", other)),
    }
}

fn optional_bool(options: &Map<String, Value>, key: &str) -> Result<Option<bool>, PlanError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) if load_density_core::task::values::bool_of(value).is_some() => {
            Ok(load_density_core::task::values::bool_of(value))
        }
        Some(other) => Err(config_type(key, "true or false (or 0 / 1)", other)),
    }
}

fn optional_string(options: &Map<String, Value>, key: &str) -> Result<Option<String>, PlanError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(config_type(key, "a string", other)),
    }
}

impl Options {
    fn from_map(options: &Map<String, Value>) -> Result<Self, PlanError> {
        let common = GroupOptions::from_map(options)?;
        let gzip = match optional_string(options, "compression")? {
            None => false,
            Some(text) => parse_compression(&text)
                .map_err(|m| PlanError::Config(format!("option \"compression\": {m}")))?,
        };
        Ok(Self {
            common,
            proto_files: string_list(options, "proto_files")?,
            import_paths: string_list(options, "import_paths")?,
            descriptor_set: optional_string(options, "descriptor_set")?,
            reflection: optional_bool(options, "reflection")?.unwrap_or(false),
            target: optional_string(options, "target")?,
            share_channel: optional_bool(options, "share_channel")?.unwrap_or(false),
            gzip,
        })
    }

    /// Loads the descriptor pool from files, or says reflection is to be used.
    async fn source(&self) -> Result<Source, PlanError> {
        if !self.proto_files.is_empty() {
            if self.descriptor_set.is_some() || self.reflection {
                tracing::warn!("grpc_user: \"proto_files\" is set, so \"descriptor_set\" and \"reflection\" are not used");
            }
            let files = self.proto_files.clone();
            let imports = self.import_paths.clone();
            // protox reads and parses files: keep it off the async workers.
            let pool = tokio::task::spawn_blocking(move || compile_proto_files(&files, &imports))
                .await
                .map_err(|e| PlanError::Config(format!("option \"proto_files\": {e}")))?
                .map_err(|m| PlanError::Config(format!("option \"proto_files\": {m}")))?;
            return Ok(Source::Pool(pool));
        }
        if !self.import_paths.is_empty() {
            return Err(PlanError::Config(
                "option \"import_paths\" needs \"proto_files\"".to_owned(),
            ));
        }
        if let Some(path) = &self.descriptor_set {
            if self.reflection {
                tracing::warn!(
                    "grpc_user: \"descriptor_set\" is set, so \"reflection\" is not used"
                );
            }
            let bytes = tokio::fs::read(path).await.map_err(|e| {
                PlanError::Config(format!(
                    "option \"descriptor_set\": cannot read {path:?}: {e}"
                ))
            })?;
            let pool = load_descriptor_set(path, &bytes)
                .map_err(|m| PlanError::Config(format!("option \"descriptor_set\": {m}")))?;
            return Ok(Source::Pool(pool));
        }
        if self.reflection {
            return Ok(Source::Reflection);
        }
        Err(PlanError::Config(
            "grpc_user needs service descriptors: set the option \"proto_files\" (with \"import_paths\"), \"descriptor_set\" or \"reflection\": true".to_owned(),
        ))
    }
}

/// What every user of a group shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) tasks: Vec<CompiledTask>,
    pub(crate) endpoints: Vec<Endpoint>,
    /// One connection per endpoint for the whole group, with `share_channel`.
    pub(crate) shared_slots: Option<Vec<Arc<ChannelSlot>>>,
}

struct GrpcFactory {
    shared: Arc<Shared>,
}

impl UserFactory for GrpcFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(GrpcUser::new(self.shared.clone()))
    }
}

#[async_trait]
impl Protocol for GrpcProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let options = Options::from_map(plan.options())?;
        let defaults = Defaults {
            target: options
                .target
                .clone()
                .or_else(|| plan.host().map(str::to_owned))
                .unwrap_or_else(|| DEFAULT_TARGET.to_owned()),
            timeout: options.common.timeout().unwrap_or(DEFAULT_TIMEOUT),
            verify: options.common.verify().unwrap_or(true),
            gzip: options.gzip,
        };
        // Everything that needs no descriptors first, so a typo fails fast.
        let specs = plan
            .tasks()
            .compile_each(|index, task: GrpcTask| TaskSpec::new(index, task, &defaults))?;
        let source = options.source().await?;

        // Endpoints: one per distinct (target, TLS setting).
        let tls_verify = specs.iter().filter(|s| s.target.tls).map(|s| s.verify);
        let tls = options.common.group_tls(tls_verify, &[b"h2"])?;
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut endpoint_of: Vec<usize> = Vec::with_capacity(specs.len());
        let mut keys: Vec<(Target, Option<bool>)> = Vec::new();
        for spec in &specs {
            let key = (spec.target.clone(), spec.target.tls.then_some(spec.verify));
            let position = match keys.iter().position(|k| *k == key) {
                Some(position) => position,
                None => {
                    let config = tls.get(spec.verify).cloned();
                    let endpoint = Endpoint::new(spec.target.clone(), config)
                        .map_err(|m| PlanError::task(spec.index, "target", m))?;
                    endpoints.push(endpoint);
                    keys.push(key);
                    endpoints.len() - 1
                }
            };
            endpoint_of.push(position);
        }

        // Descriptors by reflection: once per target, for the services its tasks call.
        let mut reflected: HashMap<String, Reflected> = HashMap::new();
        if let Source::Reflection = source {
            let mut wanted: Vec<(usize, Vec<String>)> = Vec::new();
            for (spec, endpoint) in specs.iter().zip(&endpoint_of) {
                let authority = &endpoints[*endpoint].target.authority;
                match wanted
                    .iter_mut()
                    .find(|(e, _)| endpoints[*e].target.authority == *authority)
                {
                    Some((_, names)) => names.push(spec.service.0.clone()),
                    None => wanted.push((*endpoint, vec![spec.service.0.clone()])),
                }
            }
            for (endpoint, names) in wanted {
                let endpoint = &endpoints[endpoint];
                let found = tokio::time::timeout(defaults.timeout, reflect(endpoint, &names))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "DEADLINE_EXCEEDED: no answer within {}s (the group's timeout)",
                            defaults.timeout.as_secs_f64()
                        ))
                    })
                    .map_err(|m| {
                        PlanError::Config(format!(
                            "option \"reflection\": {}: {m}",
                            endpoint.target.origin_text()
                        ))
                    })?;
                reflected.insert(endpoint.target.authority.clone(), found);
            }
        }

        let defs = plan.tasks().tasks();
        let mut tasks = Vec::with_capacity(specs.len());
        for ((spec, endpoint), def) in specs.into_iter().zip(endpoint_of).zip(defs) {
            let (pool, listed) = match &source {
                Source::Pool(pool) => (pool, None),
                Source::Reflection => match reflected.get(&endpoints[endpoint].target.authority) {
                    Some(found) => (&found.pool, Some(found.services.as_slice())),
                    None => {
                        return Err(PlanError::task(
                            spec.index,
                            "target",
                            "no descriptors were reflected for this target",
                        ))
                    }
                },
            };
            // Per-message events are recorded without the task's checks; the call event is
            // judged with them, so the task keeps its own compiled copy.
            let checks = TaskChecks::compile(def)?;
            let checks = (!checks.is_empty()).then(|| Arc::new(checks));
            let origin = endpoints[endpoint].target.origin_text();
            tasks.push(spec.compile(pool, listed, endpoint, &origin, checks)?);
        }

        let shared_slots = options.share_channel.then(|| {
            endpoints
                .iter()
                .map(|_| Arc::new(ChannelSlot::default()))
                .collect()
        });
        Ok(Arc::new(GrpcFactory {
            shared: Arc::new(Shared {
                tasks,
                endpoints,
                shared_slots,
            }),
        }))
    }

    fn option_names(&self) -> &'static [&'static str] {
        OPTION_NAMES
    }

    fn binds_source_address(&self) -> bool {
        true
    }
}
