//! Ctrl-C for a whole process: the first stops the running test gracefully and marks the
//! process interrupted, so that an action document skips its remaining `LD_start_test`
//! actions while its report and summary actions still run (the CLI then exits with 130); a
//! second Ctrl-C exits at once, with status 130.
//!
//! [`start_test`](crate::start_test) installs the handler; the CLI installs it when it
//! starts. Once installed, it stays for the life of the process.

use std::sync::{Once, OnceLock};

use tokio::sync::watch;

/// The exit status of a process ended by Ctrl-C (128 + SIGINT).
pub const EXIT_CODE: u8 = 130;

/// The number of Ctrl-C seen, for the waiters.
fn presses() -> &'static watch::Sender<u32> {
    static PRESSES: OnceLock<watch::Sender<u32>> = OnceLock::new();
    PRESSES.get_or_init(|| watch::channel(0).0)
}

/// Installs the process's Ctrl-C handler (once; later calls do nothing).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("ctrl-c".to_owned())
            .spawn(listen);
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot watch for Ctrl-C");
        }
    });
}

/// Counts each Ctrl-C; exits the process at the second.
fn listen() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot watch for Ctrl-C");
            return;
        }
    };
    runtime.block_on(async {
        loop {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot watch for Ctrl-C");
                return;
            }
            presses().send_modify(|n| *n += 1);
            if *presses().borrow() == 1 {
                tracing::warn!(
                    "Ctrl-C: stopping the run gracefully (requests in flight finish and are \
                     recorded); the remaining LD_start_test actions are skipped, reports still \
                     run. Press Ctrl-C again to exit at once"
                );
            } else {
                crate::console::eprint_line("Ctrl-C again: exiting now");
                std::process::exit(i32::from(EXIT_CODE));
            }
        }
    });
}

/// Whether Ctrl-C was pressed since the process started.
pub fn interrupted() -> bool {
    *presses().borrow() > 0
}

/// Resolves once Ctrl-C has been pressed (at once if it was already).
pub async fn wait() {
    let mut presses = presses().subscribe();
    let _ = presses.wait_for(|n| *n > 0).await;
}

/// [`wait`], then `true`: where code waited for `tokio::signal::ctrl_c()`.
pub async fn ctrl_c() -> bool {
    wait().await;
    true
}
