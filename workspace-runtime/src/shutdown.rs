//! SIGTERM and SIGINT (Ctrl-C) taken over at one moment a process chooses.
//!
//! A `tokio::signal::ctrl_c()` future only replaces the default action (die) when it is
//! first polled, so a signal sent after a process has announced itself but before that
//! poll kills it. Every long-running command — the runtime, `coditect up`, `events -f` —
//! installs a [`Shutdown`] before its first line of output and awaits it afterwards.

/// The process's stop signals, registered when installed.
#[derive(Debug)]
pub struct Shutdown {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Shutdown {
    /// Takes SIGTERM and SIGINT over from their default action, now. Needs a Tokio runtime.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => {
                    tracing::warn!("could not take SIGTERM/SIGINT; stopping on Ctrl-C only");
                    None
                }
            };
            Shutdown { signals }
        }
        #[cfg(not(unix))]
        Shutdown {}
    }

    /// Resolves at the next SIGTERM or SIGINT after installation (one that arrived while
    /// nobody was waiting counts). Can be awaited again, e.g. in every turn of a loop.
    pub async fn wait(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.signals {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::Shutdown;
    use nix::sys::signal::{Signal, raise};

    #[tokio::test]
    async fn a_signal_sent_before_anyone_waits_is_not_lost_and_does_not_kill() {
        let mut shutdown = Shutdown::install();
        // Before any wait: with the default action this would end the test process.
        raise(Signal::SIGTERM).expect("raise");
        shutdown.wait().await;
        raise(Signal::SIGINT).expect("raise");
        shutdown.wait().await;
    }
}
