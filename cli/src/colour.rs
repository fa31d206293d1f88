//! Whether logs use ANSI colour: `--color auto|always|never`, `NO_COLOR` and `CLICOLOR_FORCE`.
//!
//! `never` and `always` decide. `auto` (the default) uses no colour when `NO_COLOR` is set and
//! not empty, colour when `CLICOLOR_FORCE` is set and not `0`, and otherwise colour only when
//! stderr (where logs and tables go) is a terminal: files and pipes get plain text.

use std::io::IsTerminal as _;

/// The `--color` choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless `NO_COLOR`; always with `CLICOLOR_FORCE`.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Whether to colour, given the choice, the two variables' values and whether stderr is a
/// terminal.
pub fn use_colour(
    choice: ColorChoice,
    no_color: Option<&str>,
    clicolor_force: Option<&str>,
    terminal: bool,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if no_color.is_some_and(|v| !v.is_empty()) {
                false
            } else if clicolor_force.is_some_and(|v| !v.is_empty() && v != "0") {
                true
            } else {
                terminal
            }
        }
    }
}

/// [`use_colour`] for this process: its environment and its stderr.
pub fn colour_for_stderr(choice: ColorChoice) -> bool {
    let no_color = std::env::var("NO_COLOR").ok();
    let force = std::env::var("CLICOLOR_FORCE").ok();
    use_colour(
        choice,
        no_color.as_deref(),
        force.as_deref(),
        std::io::stderr().is_terminal(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_terminal_no_color_and_clicolor_force() {
        use ColorChoice::*;
        assert!(use_colour(Auto, None, None, true));
        assert!(!use_colour(Auto, None, None, false));
        assert!(!use_colour(Auto, Some("1"), None, true));
        assert!(!use_colour(Auto, Some("1"), Some("1"), true));
        assert!(use_colour(Auto, Some(""), None, true));
        assert!(use_colour(Auto, None, Some("1"), false));
        assert!(!use_colour(Auto, None, Some("0"), false));
        assert!(use_colour(Always, Some("1"), None, false));
        assert!(!use_colour(Never, None, Some("1"), true));
    }
}
