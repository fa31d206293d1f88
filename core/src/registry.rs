//! The user-type registry: protocol crates register themselves here through [`register_user!`](crate::register_user).
//!
//! Registrations are collected with `inventory` at link time. The name index is built once, on
//! first use; a name registered twice makes every lookup fail with
//! [`RegistryError::DuplicateUser`], since picking one of the two silently would depend on link
//! order.
//!
//! A protocol crate that nothing in a binary names is dropped by the linker together with its
//! registration. Binaries therefore name the protocol crates they expect (`use
//! load_density_mqtt as _;`), or get them through the runner's cargo features.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::user::Protocol;

/// One registered user type: plain data, built in a `const` context by [`register_user!`](crate::register_user).
pub struct UserRegistration {
    name: &'static str,
    description: &'static str,
    protocol: &'static dyn Protocol,
}

impl UserRegistration {
    /// Builds a registration. Use [`register_user!`](crate::register_user) rather than calling this directly.
    pub const fn new(
        name: &'static str,
        description: &'static str,
        protocol: &'static dyn Protocol,
    ) -> Self {
        Self {
            name,
            description,
            protocol,
        }
    }

    /// The name users select in `user_detail_dict`, e.g. `"fast_http_user"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A one-line description for listings.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The protocol implementation.
    pub fn protocol(&self) -> &'static dyn Protocol {
        self.protocol
    }
}

impl std::fmt::Debug for UserRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRegistration")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

inventory::collect!(UserRegistration);

/// Errors from looking a user type up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No protocol crate registered this name.
    #[error("unsupported user type: {name:?} (known user types: {})", known.join(", "))]
    UnsupportedUser {
        /// The name that was asked for.
        name: String,
        /// Every registered name, sorted.
        known: Vec<String>,
    },
    /// Two crates registered the same name.
    #[error(
        "user type {name:?} is registered more than once; link only one crate that provides it"
    )]
    DuplicateUser {
        /// The name registered twice.
        name: String,
    },
}

struct Index {
    by_name: HashMap<&'static str, &'static UserRegistration>,
    duplicate: Option<&'static str>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut by_name = HashMap::new();
        let mut duplicate = None;
        for registration in inventory::iter::<UserRegistration> {
            if by_name.insert(registration.name, registration).is_some() {
                duplicate.get_or_insert(registration.name);
            }
        }
        Index { by_name, duplicate }
    })
}

/// Finds the registration for a user type name.
///
/// # Errors
/// [`RegistryError::UnsupportedUser`] for an unknown name (listing the known ones), or
/// [`RegistryError::DuplicateUser`] when some name was registered twice.
pub fn lookup(name: &str) -> Result<&'static UserRegistration, RegistryError> {
    let index = index();
    if let Some(duplicate) = index.duplicate {
        return Err(RegistryError::DuplicateUser {
            name: duplicate.to_owned(),
        });
    }
    index
        .by_name
        .get(name)
        .copied()
        .ok_or_else(|| RegistryError::UnsupportedUser {
            name: name.to_owned(),
            known: known_user_types().iter().map(|n| (*n).to_owned()).collect(),
        })
}

/// Every registered user type name, sorted.
pub fn known_user_types() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = index().by_name.keys().copied().collect();
    names.sort_unstable();
    names
}

/// Every registration, sorted by name.
pub fn registrations() -> Vec<&'static UserRegistration> {
    let mut all: Vec<&'static UserRegistration> = index().by_name.values().copied().collect();
    all.sort_unstable_by_key(|r| r.name);
    all
}

/// Registers a user type with LoadDensity.
///
/// `protocol` is a constant expression (usually a unit struct) whose type implements
/// [`Protocol`](crate::Protocol). See the [crate docs](crate) for a full example.
#[macro_export]
macro_rules! register_user {
    (name: $name:expr, description: $description:expr, protocol: $protocol:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::registry::UserRegistration::new($name, $description, &$protocol)
        }
    };
}
