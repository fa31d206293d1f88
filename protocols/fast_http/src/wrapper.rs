//! Python's `set_wrapper_fasthttp_user`.

use load_density_core::locust_wrapper_proxy;
use load_density_core::proxy::ProxyEntry;
use serde_json::{Map, Value};

use crate::USER_TYPE;

/// Stores `tasks` for `fast_http_user` in the process-wide task proxy
/// ([`locust_wrapper_proxy`]), replacing what was configured before, as Python's
/// `set_wrapper_fasthttp_user(user_detail_dict, tasks=...)` does.
///
/// The entry's `host` is taken from `user_detail_dict["host"]` when it is a string; its other
/// keys are kept as the entry's `user_detail`. A run takes a snapshot of the proxy when it
/// starts.
///
/// ```
/// use serde_json::json;
///
/// load_density_fast_http::set_wrapper_fasthttp_user(
///     json!({"user": "fast_http_user"}).as_object().cloned().unwrap_or_default(),
///     json!([{"method": "get", "request_url": "http://127.0.0.1:8080/"}]),
/// );
/// let entry = load_density_core::locust_wrapper_proxy()
///     .get("fast_http_user")
///     .expect("configured");
/// assert_eq!(entry.tasks[0]["method"], "get");
/// ```
pub fn set_wrapper_fasthttp_user(user_detail_dict: Map<String, Value>, tasks: Value) {
    let host = user_detail_dict
        .get("host")
        .and_then(Value::as_str)
        .map(str::to_owned);
    locust_wrapper_proxy().configure(
        USER_TYPE,
        ProxyEntry {
            user_detail: user_detail_dict,
            tasks,
            host,
            extra: Map::new(),
        },
    );
}
