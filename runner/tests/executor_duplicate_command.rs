//! A command name registered twice (by two crates, or by a crate and the built-in table) makes
//! every action fail with an error naming both providers. This test binary registers
//! duplicates on purpose, so it holds nothing else.

use load_density::executor::{self, error_chain, ExecutorError};
use load_density::register_command;

fn nothing(_: serde_json::Value) -> Result<(), std::convert::Infallible> {
    Ok(())
}

mod first {
    use super::nothing;
    load_density::register_command! {
        name: "LD_twice", description: "first", params: [], args: serde_json::Value, run: nothing,
    }
}

mod second {
    use super::nothing;
    load_density::register_command! {
        name: "LD_twice", description: "second", params: [], args: serde_json::Value, run: nothing,
    }
}

register_command! {
    name: "LD_summary", description: "shadows a built-in", params: [], args: serde_json::Value,
    run: nothing,
}

#[test]
fn duplicates_name_both_providers_and_fail_every_action() {
    let error = executor::check_commands().expect_err("duplicates are registered");
    let text = error_chain(&error);
    assert!(matches!(error, ExecutorError::DuplicateCommand { .. }));
    assert!(
        text.contains("executor_duplicate_command::first")
            && text.contains("executor_duplicate_command::second"),
        "{text}"
    );
    assert!(text.contains("\"LD_twice\""), "{text}");
    assert!(
        text.contains("\"LD_summary\" by load-density (built in) and load-density (executor_duplicate_command)"),
        "{text}"
    );
    let results = executor::execute_str(r#"[["LD_clear_resolver"]]"#).expect("valid document");
    let failure = results[0].outcome.as_ref().expect_err("every action fails");
    assert!(error_chain(failure).contains("registered more than once"));
}
