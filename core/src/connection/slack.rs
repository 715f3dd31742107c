//! When a drained queue gives its buffer back.
//!
//! Two goals pull apart here. An idle connection should keep no burst's
//! capacity (issue 11: memory per idle relay client — a newcomer's room sends
//! it an ADD_PEER per member at once). A busy connection should not free its
//! queue on every drain and regrow it for the next batch: each regrowth is a
//! chain of `realloc`s, and once a multi-threaded runtime has moved the
//! connection's task to another thread they take that other thread's malloc
//! arena lock (19 % of the tokio echo server's samples with 64 messages in
//! flight; README "Performance").
//!
//! The rule, for the outbound queue and the event queue alike: when a queue
//! drains, a buffer of at most [`SMALL_CAPACITY`] entries is freed at once (a
//! small burst, cheap to regrow); a larger one only after [`QUIET_DRAINS`]
//! drains in a row in which the queue never held more than a quarter of it
//! (the burst is over: a relay client's heartbeat pings drain it). What a busy
//! connection keeps is bounded by its queue's own limits (`Config`).

/// Capacity (entries) a drained queue keeps in any case: `VecDeque`'s first
/// allocation, enough for a connection that sends a few frames per wake.
pub(crate) const IDLE_CAPACITY: usize = 4;

/// Largest capacity (entries) freed as soon as its queue drains. Eight
/// outbound entries are 832 bytes: within what the allocator serves from its
/// per-thread cache, so regrowing them takes no lock.
pub(crate) const SMALL_CAPACITY: usize = 8;

/// Quiet drains in a row after which a larger buffer is freed.
pub(crate) const QUIET_DRAINS: u8 = 2;

/// Per-queue bookkeeping for the rule above: the queue's peak length since
/// its last drain and the quiet drains counted so far.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Slack {
    peak: u32,
    quiet: u8,
}

impl Slack {
    /// Notes the queue's current length; called before entries leave it, so
    /// the peak is seen (entries only leave through those paths).
    #[inline]
    pub(crate) fn note(&mut self, len: usize) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        if len > self.peak {
            self.peak = len;
        }
    }

    /// The queue is empty and holds `capacity` entries of buffer: should it
    /// be freed? A call with nothing queued since the last one counts for
    /// nothing (an empty queue advanced again is not a new drain).
    pub(crate) fn drained(&mut self, capacity: usize) -> bool {
        let peak = core::mem::take(&mut self.peak) as usize;
        if peak == 0 {
            return false;
        }
        if capacity <= IDLE_CAPACITY {
            self.quiet = 0;
            return false;
        }
        if capacity <= SMALL_CAPACITY {
            self.quiet = 0;
            return true;
        }
        if peak <= capacity / 4 {
            self.quiet += 1;
        } else {
            self.quiet = 0;
        }
        if self.quiet >= QUIET_DRAINS {
            self.quiet = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one fill-and-drain cycle of `len` entries on a queue whose buffer
    /// is `capacity` entries; returns the verdict.
    fn cycle(s: &mut Slack, len: usize, capacity: usize) -> bool {
        s.note(len);
        s.drained(capacity)
    }

    #[test]
    fn a_small_burst_is_freed_at_once() {
        let mut s = Slack::default();
        assert!(cycle(&mut s, 7, 8));
        assert!(cycle(&mut s, 5, 8));
    }

    #[test]
    fn the_first_allocation_is_kept() {
        let mut s = Slack::default();
        assert!(!cycle(&mut s, 3, IDLE_CAPACITY));
        assert!(!cycle(&mut s, 1, IDLE_CAPACITY));
    }

    #[test]
    fn a_busy_queue_keeps_its_buffer() {
        let mut s = Slack::default();
        for _ in 0..100 {
            assert!(!cycle(&mut s, 64, 64));
        }
        // Batches of varying size that still use the buffer keep it too.
        for n in [17, 40, 16, 64, 20] {
            assert!(!cycle(&mut s, n, 64), "{n}");
        }
    }

    #[test]
    fn a_large_buffer_is_freed_after_quiet_drains_in_a_row() {
        let mut s = Slack::default();
        assert!(!cycle(&mut s, 31, 32)); // the burst
        assert!(!cycle(&mut s, 1, 32)); // a heartbeat ping: quiet 1
        assert!(cycle(&mut s, 1, 32)); // quiet 2: freed

        // A busy drain in between starts the count again.
        let mut s = Slack::default();
        assert!(!cycle(&mut s, 1, 32));
        assert!(!cycle(&mut s, 30, 32));
        assert!(!cycle(&mut s, 1, 32));
        assert!(cycle(&mut s, 8, 32));
    }

    #[test]
    fn an_empty_queue_drained_again_is_not_a_quiet_drain() {
        let mut s = Slack::default();
        assert!(!cycle(&mut s, 31, 32));
        for _ in 0..10 {
            assert!(!s.drained(32), "nothing was queued since the last drain");
        }
        assert!(!cycle(&mut s, 2, 32));
        assert!(cycle(&mut s, 2, 32));
    }
}
