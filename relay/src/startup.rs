//! Start-up checks of the process: the open-file limit.
//!
//! Every peer holds one socket; listeners, the admin port, log files and
//! pending handshakes take more. At start the relay raises its soft
//! `RLIMIT_NOFILE` to the hard limit (`rlimit` crate) and warns when the
//! result is below `--max-peers` plus [`FD_MARGIN`].

/// Descriptors kept for everything but peers: listeners, the admin port,
/// pending handshakes beyond `--max-peers`, files.
pub const FD_MARGIN: u64 = 256;

/// The outcome of [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// Soft limit before.
    pub before: u64,
    /// Soft limit now.
    pub now: u64,
    /// Hard limit.
    pub hard: u64,
    /// Descriptors the flags need: `--max-peers` + [`FD_MARGIN`].
    pub needed: u64,
}

impl NofileLimit {
    /// Whether the soft limit is below what the flags need.
    pub fn too_low(&self) -> bool {
        self.now < self.needed
    }
}

/// Raises the soft open-file limit to the hard one and reports it against
/// `max_peers` (`Err` when the limit cannot be read or set).
pub fn raise_nofile_limit(max_peers: usize) -> std::io::Result<NofileLimit> {
    let (before, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let now = rlimit::increase_nofile_limit(hard)?;
    Ok(NofileLimit {
        before,
        now,
        hard,
        needed: (max_peers as u64).saturating_add(FD_MARGIN),
    })
}

/// [`raise_nofile_limit`] with its outcome logged: info when raised, a
/// warning when still below the need (with the fix), a warning on error.
pub fn check_nofile_limit(max_peers: usize) {
    match raise_nofile_limit(max_peers) {
        Ok(l) if l.too_low() => tracing::warn!(
            soft = l.now,
            hard = l.hard,
            needed = l.needed,
            "open-file limit below --max-peers + {FD_MARGIN}: connections will fail with EMFILE \
             before --max-peers is reached; raise it (systemd LimitNOFILE=, docker --ulimit nofile=, ulimit -n)"
        ),
        Ok(l) if l.now > l.before => {
            tracing::info!(from = l.before, to = l.now, "raised the open-file limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_to_the_hard_limit() {
        let l = raise_nofile_limit(10).expect("rlimit works on this platform");
        assert!(l.now >= l.before);
        #[cfg(target_os = "linux")]
        assert_eq!(l.now, l.hard, "soft limit raised to the hard one");
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("get");
        assert_eq!((soft, hard), (l.now, l.hard));
        assert_eq!(l.needed, 10 + FD_MARGIN);
        // A need beyond any real limit is reported as too low.
        let huge = raise_nofile_limit(usize::MAX).expect("ok");
        assert!(huge.too_low() || huge.hard == rlimit::INFINITY);
    }
}
