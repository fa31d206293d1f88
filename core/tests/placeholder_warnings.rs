//! Unknown and missing placeholders are reported once each.
//!
//! Alone in its test binary: `tracing` caches per call site whether anyone listens, and a test
//! thread hitting the same warning call site with no subscriber while this test installs its
//! own can leave that cache saying "nobody" (the test then sees no warning at all).

use std::io::Write;
use std::sync::Arc;

use load_density_core::template::Template;
use load_density_core::variables::{UserVariables, Variables};
use parking_lot::Mutex;

fn vars() -> UserVariables {
    UserVariables::new(Arc::new(Variables::new()))
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

#[test]
fn unresolved_placeholders_are_reported_once_each() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // Another test thread may have hit these callsites first with no subscriber, which
        // caches them as disabled; recompute with this subscriber registered.
        tracing::callsite::rebuild_interest_cache();
        let v = vars();
        // Unknown at parse time: reported when parsed, not when rendered.
        let unknown = "${bogus_prefix_once.x}";
        for _ in 0..3 {
            let template = Template::parse(&format!("{unknown}/{unknown}"));
            assert_eq!(template.render(&v), format!("{unknown}/{unknown}"));
        }
        // Missing at render time: reported the first time.
        let missing = Template::parse("${var.missing_once} ${env.LD_MISSING_ONCE_ENV}");
        for _ in 0..3 {
            assert_eq!(
                missing.render(&v),
                "${var.missing_once} ${env.LD_MISSING_ONCE_ENV}"
            );
        }
        let bad_args = Template::parse("${randint(5,1)}");
        let _ = bad_args.render(&v);
        let _ = Template::parse("${randint(5,1)}");
    });
    let log = captured.text();
    let count = |needle: &str| log.matches(needle).count();
    assert_eq!(count("${bogus_prefix_once.x}"), 1, "{log}");
    assert!(log.contains("unknown prefix"), "{log}");
    assert_eq!(count("${var.missing_once}"), 1, "{log}");
    assert!(log.contains("\"missing_once\" is not set"), "{log}");
    assert_eq!(count("${env.LD_MISSING_ONCE_ENV}"), 1, "{log}");
    assert_eq!(count("${randint(5,1)}"), 1, "{log}");
    assert!(log.contains("WARN"), "{log}");
}
