//! The fields the Python JSON, XML and HTML reports give each record, as strings.
//!
//! Successes: `Method, test_url, name, status_code, text, content, headers`; failures:
//! `Method, test_url, name, status_code, error`. Values are Python's `str()` of the record's
//! field, so a missing value is `"None"`. The store keeps no response bodies or headers (the
//! Python store keeping them all is what made it run out of memory), so `text`, `content` and
//! `headers` are always `"None"`.

use std::borrow::Cow;

use load_density_core::Record;

use super::text::py_status;

/// The value written for a field the store does not keep.
pub const NOT_KEPT: &str = "None";

/// The fields of a success record, in the Python order.
pub fn success_fields(record: &Record) -> [(&'static str, Cow<'_, str>); 7] {
    [
        ("Method", Cow::Borrowed(&*record.method)),
        ("test_url", Cow::Borrowed(&*record.test_url)),
        ("name", Cow::Borrowed(&*record.name)),
        ("status_code", Cow::Owned(py_status(record.status_code))),
        ("text", Cow::Borrowed(NOT_KEPT)),
        ("content", Cow::Borrowed(NOT_KEPT)),
        ("headers", Cow::Borrowed(NOT_KEPT)),
    ]
}

/// The fields of a failure record, in the Python order.
pub fn failure_fields(record: &Record) -> [(&'static str, Cow<'_, str>); 5] {
    [
        ("Method", Cow::Borrowed(&*record.method)),
        ("test_url", Cow::Borrowed(&*record.test_url)),
        ("name", Cow::Borrowed(&*record.name)),
        ("status_code", Cow::Owned(py_status(record.status_code))),
        (
            "error",
            Cow::Borrowed(record.error.as_deref().unwrap_or("None")),
        ),
    ]
}

/// Records the store counted but did not keep, as (successes, failures): the store's exact
/// statistics count every request, its lists only the first `capacity`.
pub fn dropped_split(store: &load_density_core::TestRecord) -> (u64, u64) {
    if store.dropped() == 0 {
        return (0, 0);
    }
    let stats = store.stats();
    let total = stats.total();
    let (kept_s, kept_f) = store.counts();
    (
        total.num_successes().saturating_sub(kept_s as u64),
        total.num_failures().saturating_sub(kept_f as u64),
    )
}
