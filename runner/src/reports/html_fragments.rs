//! `LD_generate_html`: the Python version's HTML fragments, one table per record.
//!
//! This is the in-memory form only, for action documents that use it; the file written by
//! `LD_generate_html_report` is the run report of [`html`](super::html) instead, since a table
//! per record is unusable past a few thousand records. Each fragment is the Python template
//! with its values HTML-escaped; an empty store gives two empty lists instead of raising.

use std::fmt::Write as _;

use load_density_core::TestRecord;

use super::fields::{failure_fields, success_fields};
use super::text::escape_html;

/// (success fragments, failure fragments), in record order.
pub fn generate_html(store: &TestRecord) -> (Vec<String>, Vec<String>) {
    store.with_records(|successes, failures| {
        let s = successes
            .iter()
            .map(|r| {
                let fields = success_fields(r);
                table(
                    "success_table_head",
                    4,
                    fields.iter().map(|(k, v)| (*k, v.as_ref())),
                )
            })
            .collect();
        let f = failures
            .iter()
            .map(|r| {
                let fields = failure_fields(r);
                // The Python failure table titles the method `http_method`.
                let renamed = fields.iter().map(|(k, v)| {
                    let key = if *k == "Method" { "http_method" } else { k };
                    (key, v.as_ref())
                });
                table("failure_table_head", 8, renamed)
            })
            .collect();
        (s, f)
    })
}

/// One table, indented as the Python templates are (`indent` spaces before rows).
fn table<'a>(
    head_class: &str,
    indent: usize,
    fields: impl Iterator<Item = (&'a str, &'a str)>,
) -> String {
    let pad = " ".repeat(indent);
    let cell = " ".repeat(indent + 4);
    let mut out = String::new();
    let _ = write!(
        out,
        "<table class=\"main_table\">\n{pad}<thead>\n{pad}<tr>\n{cell}<th colspan=\"2\" \
         class=\"{head_class}\">Test Report</th>\n{pad}</tr>\n{pad}</thead>\n{pad}<tbody>\n"
    );
    for (key, value) in fields {
        let _ = write!(
            out,
            "{pad}<tr>\n{cell}<td class=\"table_data_field_title\">{key}</td>\n{cell}<td \
             class=\"table_data_field_text\">{}</td>\n{pad}</tr>\n",
            escape_html(value)
        );
    }
    let _ = write!(out, "{pad}</tbody>\n    </table>\n    <br>");
    out
}
