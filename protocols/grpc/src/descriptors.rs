//! Service descriptors: compiled from `.proto` files in-process (protox), read from a
//! descriptor set file, or fetched by server reflection ([`crate::reflection`]); and looking a
//! task's service and method up in them.

use std::path::{Path, PathBuf};

use prost_reflect::{DescriptorPool, MethodDescriptor, ServiceDescriptor};

/// Compiles `files` with their imports. Without `import_paths`, each file's own directory is
/// the import path.
pub(crate) fn compile_proto_files(
    files: &[String],
    import_paths: &[String],
) -> Result<DescriptorPool, String> {
    let includes: Vec<PathBuf> = if import_paths.is_empty() {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for file in files {
            let parent = Path::new(file)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            if !dirs.contains(&parent) {
                dirs.push(parent);
            }
        }
        dirs
    } else {
        import_paths.iter().map(PathBuf::from).collect()
    };
    for file in files {
        if !Path::new(file).is_file() {
            return Err(format!("proto file {file:?} does not exist"));
        }
    }
    let mut compiler =
        protox::Compiler::new(&includes).map_err(|e| format!("import paths {includes:?}: {e}"))?;
    compiler.include_imports(true);
    compiler
        .open_files(files)
        .map_err(|e| format!("cannot compile {}: {}", files.join(", "), describe(&e)))?;
    Ok(compiler.descriptor_pool())
}

/// A protox error with its file, line and column when it has them.
fn describe(error: &protox::Error) -> String {
    use miette::Diagnostic as _;
    let text = error.to_string();
    let line = error.source_code().and_then(|source| {
        let label = error.labels()?.next()?;
        let span = source.read_span(label.inner(), 0, 0).ok()?;
        Some(format!("{}:{}", span.line() + 1, span.column() + 1))
    });
    match (error.file(), line) {
        (Some(file), Some(line)) => format!("{file}:{line}: {text}"),
        (Some(file), None) if !text.contains(file) => format!("{file}: {text}"),
        _ => text,
    }
}

/// Reads a binary `FileDescriptorSet` (`protoc --descriptor_set_out --include_imports`,
/// `buf build -o`).
pub(crate) fn load_descriptor_set(path: &str, bytes: &[u8]) -> Result<DescriptorPool, String> {
    DescriptorPool::decode(bytes).map_err(|e| {
        format!("descriptor set {path:?} is not a valid FileDescriptorSet (with its imports): {e}")
    })
}

/// Every service of a pool, sorted by full name.
pub(crate) fn service_names(pool: &DescriptorPool) -> Vec<String> {
    let mut names: Vec<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
    names.sort_unstable();
    names
}

/// Finds a service by full name (`pkg.Service`) or, when that is unambiguous, by its short
/// name (`Service`).
pub(crate) fn find_service(pool: &DescriptorPool, name: &str) -> Result<ServiceDescriptor, String> {
    let name = name.trim_start_matches('.');
    if let Some(service) = pool.get_service_by_name(name) {
        return Ok(service);
    }
    let short: Vec<ServiceDescriptor> = pool.services().filter(|s| s.name() == name).collect();
    match short.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let known = service_names(pool);
            Err(format!(
                "unknown service {name:?} (known services: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        }
        many => Err(format!(
            "service name {name:?} is ambiguous; use one of {}",
            many.iter()
                .map(|s| s.full_name().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Finds a method of a service.
pub(crate) fn find_method(
    service: &ServiceDescriptor,
    name: &str,
) -> Result<MethodDescriptor, String> {
    service.methods().find(|m| m.name() == name).ok_or_else(|| {
        let mut methods: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
        methods.sort_unstable();
        format!(
            "service {} has no method {name:?} (methods: {})",
            service.full_name(),
            if methods.is_empty() {
                "none".to_owned()
            } else {
                methods.join(", ")
            }
        )
    })
}
