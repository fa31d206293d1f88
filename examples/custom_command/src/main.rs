//! Runs action documents with `LD_expect_requests` available:
//! `cargo run -p example-custom-command -- DOCUMENT.json...`.

use anyhow::Context as _;
use load_density::executor::{self, error_chain};
// Names the crate so that the linker keeps its registration.
use example_custom_command as _;

fn main() -> anyhow::Result<()> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        !files.is_empty(),
        "usage: example-custom-command DOCUMENT.json..."
    );
    let mut failed = false;
    for file in executor::execute_files(&files) {
        let results = file
            .outcome
            .with_context(|| format!("cannot run {}", file.path.display()))?;
        for result in &results {
            match &result.outcome {
                Ok(value) => println!("{}: {value}", result.command.as_deref().unwrap_or("?")),
                Err(error) => {
                    failed = true;
                    eprintln!("error: action {}: {}", result.index, error_chain(error));
                }
            }
        }
    }
    anyhow::ensure!(!failed, "some actions failed");
    Ok(())
}
