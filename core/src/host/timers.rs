//! One timer heap for all peers of a host.
//!
//! Each peer is filed under its earliest deadline. When a peer's deadline
//! changes, a new entry is pushed and the old one becomes stale; stale
//! entries are recognised (the peer's current deadline differs) and skipped.

use alloc::collections::BinaryHeap;
use core::cmp::Reverse;

use super::PeerId;
use crate::time::Timestamp;

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Timestamp, PeerId)>>,
}

impl Timers {
    pub(super) fn push(&mut self, id: PeerId, at: Timestamp) {
        self.heap.push(Reverse((at, id)));
    }

    /// The earliest live deadline; stale entries on top are discarded.
    pub(super) fn peek(
        &mut self,
        mut live: impl FnMut(PeerId, Timestamp) -> bool,
    ) -> Option<Timestamp> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if live(id, at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// The next entry due at `now` (possibly stale: the caller checks).
    pub(super) fn pop_due(&mut self, now: Timestamp) -> Option<(PeerId, Timestamp)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((at, id))| (id, at))
            }
            _ => None,
        }
    }

    /// Entries filed, stale ones included (bounded: tests check it).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_live_deadline_first_and_stale_entries_skipped() {
        let mut t = Timers::default();
        let a = PeerId::new(2).unwrap_or(PeerId::SERVER);
        let b = PeerId::new(3).unwrap_or(PeerId::SERVER);
        t.push(a, Timestamp::from_millis(5));
        t.push(b, Timestamp::from_millis(3));
        t.push(a, Timestamp::from_millis(9));
        // a's live deadline is 9: the 5 entry is stale.
        let live = |id: PeerId, at: Timestamp| (id == a && at.as_micros() == 9000) || id == b;
        assert_eq!(t.peek(live), Some(Timestamp::from_millis(3)));
        assert_eq!(
            t.pop_due(Timestamp::from_millis(4)),
            Some((b, Timestamp::from_millis(3)))
        );
        assert_eq!(t.peek(live), Some(Timestamp::from_millis(9)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(Timestamp::from_millis(8)), None);
    }
}
