//! A group's `source_addresses`, compiled: parsed, checked to be this machine's, and refused
//! for a protocol that cannot bind them.

use std::sync::Arc;

use load_density_core::source_address::SourceAddresses;
use serde_json::Value;

use super::json::invalid;
use crate::error::RunError;

/// The option's key.
pub(crate) const KEY: &str = "source_addresses";

/// Compiles `value` (a string, or a list of strings), found at `path`, for a group of user
/// type `user_type` whose protocol binds source addresses when `binds` is true.
pub(crate) fn compile(
    value: &Value,
    path: &str,
    user_type: &str,
    binds: bool,
) -> Result<Arc<SourceAddresses>, RunError> {
    let entries: Vec<&str> = match value {
        Value::String(one) => vec![one.as_str()],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().ok_or_else(|| {
                    invalid(
                        &format!("{path}[{i}]"),
                        format!("must be a string (an address, A-B or A/n), got {item}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(invalid(
                path,
                format!(
                    "must be a string or a list of strings (addresses, ranges A-B, blocks A/n), \
                     got {other}"
                ),
            ))
        }
    };
    let at = |index: usize| match value {
        Value::Array(_) => format!("{path}[{index}]"),
        _ => path.to_owned(),
    };
    let sources = SourceAddresses::parse(&entries).map_err(|(i, e)| match e {
        load_density_core::source_address::SourceAddressError::Empty => invalid(path, e),
        _ => invalid(&at(i), e),
    })?;
    if !binds {
        return Err(invalid(
            path,
            format!("user type {user_type:?} cannot bind its connections to a source address"),
        ));
    }
    sources.check_local().map_err(|(i, e)| invalid(&at(i), e))?;
    Ok(Arc::new(sources))
}
