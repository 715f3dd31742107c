//! Certificate reload of the relay: SIGHUP and `--tls-reload-interval`
//! re-read `--tls-cert`/`--tls-key` through a [`wsmp_tls::CertReloader`];
//! established connections keep their session, new handshakes get the new
//! pair; a bad pair is refused with a log line and the current one stays.

use std::time::Duration;

use tokio::task::JoinHandle;
use wsmp_tls::CertReloader;

/// What started a reload (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// `--tls-reload-interval`.
    Interval,
}

/// Reloads once and logs the outcome; returns whether a new pair is in use.
/// SIGHUP always re-reads; the interval only acts on changed files.
pub fn reload_and_log(reloader: &CertReloader, trigger: Trigger) -> bool {
    let result = match trigger {
        Trigger::Signal => reloader.reload().map(|()| true),
        Trigger::Interval => reloader.reload_if_changed(),
    };
    match result {
        Ok(false) => false,
        Ok(true) => {
            tracing::info!(
                ?trigger,
                cert = %reloader.cert_path().display(),
                "TLS certificate reloaded"
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                ?trigger,
                cert = %reloader.cert_path().display(),
                key = %reloader.key_path().display(),
                error = %e,
                "TLS certificate reload refused; the current certificate stays"
            );
            false
        }
    }
}

/// Spawns the reload task: on every SIGHUP (Unix), and every `interval`
/// when it is not zero. Must be called inside a tokio runtime; the SIGHUP
/// handler is installed before this returns. Abort the handle to stop.
pub fn spawn(reloader: CertReloader, interval: Duration) -> JoinHandle<()> {
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the SIGHUP handler; no reload on SIGHUP");
            None
        }
    };
    tokio::spawn(async move {
        let mut tick = (!interval.is_zero()).then(|| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let hup_recv = async {
                #[cfg(unix)]
                if let Some(h) = hup.as_mut() {
                    return h.recv().await.is_some();
                }
                std::future::pending::<bool>().await
            };
            let tick_next = async {
                match tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                got = hup_recv => {
                    if !got {
                        return;
                    }
                    reload_and_log(&reloader, Trigger::Signal);
                }
                () = tick_next => {
                    reload_and_log(&reloader, Trigger::Interval);
                }
            }
        }
    })
}
