//! Python's `set_wrapper_http_user`: tasks for `http_user` in the task proxy.

use load_density_core::locust_wrapper_proxy;
use load_density_core::proxy::ProxyEntry;
use serde_json::{Map, Value};

/// The name this crate registers.
pub const USER_TYPE: &str = "http_user";

/// Stores `tasks` (any shape [`TaskList::from_json`](load_density_core::TaskList::from_json)
/// accepts) and `user_detail_dict` for `http_user` in the process-wide task proxy
/// ([`locust_wrapper_proxy`]), replacing what was there, as Python's `set_wrapper_http_user`
/// does. A run that is given no tasks of its own takes them from there when it starts.
///
/// The tasks are validated when a run prepares them, not here.
///
/// ```
/// use serde_json::{json, Map};
///
/// load_density_http::set_wrapper_http_user(Map::new(), json!([{"method": "get", "url": "/"}]));
/// let entry = load_density_core::locust_wrapper_proxy().get("http_user").expect("configured");
/// assert_eq!(entry.tasks, json!([{"method": "get", "url": "/"}]));
/// ```
pub fn set_wrapper_http_user(user_detail_dict: Map<String, Value>, tasks: Value) {
    locust_wrapper_proxy().configure(
        USER_TYPE,
        ProxyEntry {
            user_detail: user_detail_dict,
            tasks,
            ..ProxyEntry::default()
        },
    );
}
