//! `load-density commands`: every action command this binary has, with its parameters.

use std::io::Write as _;

use anyhow::Context as _;
use load_density::executor;

/// `commands`' options.
#[derive(Debug, clap::Args)]
pub struct CommandsArgs {
    /// Print one JSON object per command instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the commands; fails when a command name is registered twice.
pub fn run(args: &CommandsArgs) -> anyhow::Result<bool> {
    executor::check_commands()?;
    let mut stdout = std::io::stdout().lock();
    for info in executor::commands() {
        if args.json {
            let line = serde_json::to_string(&info).context("cannot convert to JSON")?;
            writeln!(stdout, "{line}").context("cannot write to stdout")?;
            continue;
        }
        let mut params = info.params.join(", ");
        if info.more_keywords {
            params.push_str(", ...");
        }
        write!(stdout, "{}({params})  [{}]", info.name, info.provider)
            .context("cannot write to stdout")?;
        if !info.description.is_empty() {
            write!(stdout, " {}", info.description).context("cannot write to stdout")?;
        }
        writeln!(stdout).context("cannot write to stdout")?;
    }
    stdout.flush().context("cannot write to stdout")?;
    Ok(true)
}
