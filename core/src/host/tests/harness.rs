//! The in-memory network used by the host tests.
//!
//! Each client host is joined to the server by a pair of byte pipes. The
//! harness drives every host the way an adapter does: it writes output of
//! the peers named by `poll_dirty`, feeds input (keeping what was not
//! consumed), closes sockets on `should_close_socket`, calls `release`, and
//! runs timers on a virtual clock. After every pump it checks that
//! `poll_dirty` did not miss a peer with output or a socket to close.

extern crate std;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use rand_core::RngCore;

use crate::config::Config;
use crate::connection::{Admission, Rng};
use crate::host::{Host, HostEvent, PeerId};
use crate::time::Timestamp;

pub(crate) use crate::test_rng::SplitMix64;

/// An RNG that returns the given `u32`s in order, then SplitMix64 values.
pub(crate) struct Scripted(pub(crate) Vec<u32>, pub(crate) SplitMix64);

impl RngCore for Scripted {
    fn next_u32(&mut self) -> u32 {
        if self.0.is_empty() {
            self.1.next_u32()
        } else {
            self.0.remove(0)
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.1.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.1.fill_bytes(dst)
    }
}

pub(crate) fn rng(seed: u64) -> Rng {
    Box::new(SplitMix64(seed))
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) const URL: &str = "ws://127.0.0.1:9080/game";

/// One client host and the pipes between it and the server.
pub(crate) struct Link {
    pub(crate) client: Host,
    /// Bytes written by the server, not yet consumed by the client.
    pub(crate) to_client: Vec<u8>,
    /// Bytes written by the client, not yet consumed by the server.
    pub(crate) to_server: Vec<u8>,
    /// Every byte the server ever wrote on this link.
    pub(crate) server_log: Vec<u8>,
    /// Every byte the client ever wrote on this link.
    pub(crate) client_log: Vec<u8>,
    pub(crate) server_open: bool,
    pub(crate) client_open: bool,
    server_eof_sent: bool,
    client_eof_sent: bool,
    /// The server does not write this socket (its send buffer is full).
    pub(crate) stall_server_write: bool,
    /// The client does not write this socket.
    pub(crate) stall_client_write: bool,
    /// The client does not read this socket.
    pub(crate) stall_client_read: bool,
    pub(crate) addr: SocketAddr,
}

/// A server and its clients on a virtual clock.
pub(crate) struct Net {
    pub(crate) now: Timestamp,
    pub(crate) server: Host,
    pub(crate) links: BTreeMap<PeerId, Link>,
    pub(crate) config: Config,
    seed: u64,
}

impl Net {
    pub(crate) fn new(config: Config) -> Net {
        Net::with_admission(config, Admission::Automatic)
    }

    pub(crate) fn with_admission(config: Config, admission: Admission) -> Net {
        let server = Host::server(config.clone(), admission, rng(0x5EED)).expect("valid config");
        Net {
            now: Timestamp::from_millis(1000),
            server,
            links: BTreeMap::new(),
            config,
            seed: 1,
        }
    }

    /// A client host and its accepted socket on the server (not pumped).
    pub(crate) fn connect(&mut self) -> PeerId {
        self.seed += 1;
        let client =
            Host::client(self.config.clone(), URL, self.now, rng(self.seed)).expect("client");
        let port = 10_000 + (self.seed % 50_000) as u16;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let id = self.server.accept(self.now, Some(addr)).expect("accept");
        assert!(
            self.links.get(&id).is_none_or(|l| !l.server_open),
            "id {id} reused while its socket is open"
        );
        self.links.insert(
            id,
            Link {
                client,
                to_client: Vec::new(),
                to_server: Vec::new(),
                server_log: Vec::new(),
                client_log: Vec::new(),
                server_open: true,
                client_open: true,
                server_eof_sent: false,
                client_eof_sent: false,
                stall_server_write: false,
                stall_client_write: false,
                stall_client_read: false,
                addr,
            },
        );
        id
    }

    /// Connects a client and pumps until it has its id.
    pub(crate) fn join(&mut self) -> PeerId {
        let id = self.connect();
        self.pump();
        let link = &self.links[&id];
        assert_eq!(link.client.unique_id(), id.get(), "client got its id");
        id
    }

    pub(crate) fn link(&mut self, id: PeerId) -> &mut Link {
        self.links.get_mut(&id).expect("known link")
    }

    pub(crate) fn client(&mut self, id: PeerId) -> &mut Host {
        &mut self.link(id).client
    }

    /// Every event queued on the server.
    pub(crate) fn server_events(&mut self) -> Vec<HostEvent> {
        core::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Every event queued on a client.
    pub(crate) fn client_events(&mut self, id: PeerId) -> Vec<HostEvent> {
        let c = self.client(id);
        core::iter::from_fn(|| c.poll_event()).collect()
    }

    /// Server writes peer `id`'s output (what an adapter does for a dirty peer).
    fn flush_server(&mut self, id: PeerId) -> bool {
        let now = self.now;
        let Some(link) = self.links.get_mut(&id) else {
            return false;
        };
        if !link.server_open {
            return false;
        }
        let mut progress = false;
        if !link.stall_server_write {
            let mut n = 0;
            if let Some(chunks) = self.server.transmit(id) {
                for c in chunks {
                    link.to_client.extend_from_slice(c);
                    link.server_log.extend_from_slice(c);
                    n += c.len();
                }
            }
            if n > 0 {
                self.server.advance_transmit(now, id, n);
                progress = true;
            }
        }
        if self.server.should_close_socket(id) && self.server.transmit_len(id) == 0 {
            self.server.release(now, id);
            link.server_open = false;
            // Unread bytes toward a closed socket are lost.
            link.to_server.clear();
            progress = true;
        }
        progress
    }

    fn flush_client(&mut self, id: PeerId) -> bool {
        let now = self.now;
        let Some(link) = self.links.get_mut(&id) else {
            return false;
        };
        if !link.client_open {
            return false;
        }
        let c = &mut link.client;
        let mut progress = false;
        if !link.stall_client_write {
            let mut n = 0;
            if let Some(chunks) = c.transmit(PeerId::SERVER) {
                for ch in chunks {
                    link.to_server.extend_from_slice(ch);
                    link.client_log.extend_from_slice(ch);
                    n += ch.len();
                }
            }
            if n > 0 {
                c.advance_transmit(now, PeerId::SERVER, n);
                progress = true;
            }
        }
        if c.should_close_socket(PeerId::SERVER) && c.transmit_len(PeerId::SERVER) == 0 {
            c.release(now, PeerId::SERVER);
            link.client_open = false;
            link.to_client.clear();
            progress = true;
        }
        progress
    }

    /// The server's socket for `id` became writable again.
    pub(crate) fn writable(&mut self, id: PeerId) {
        self.link(id).stall_server_write = false;
        self.flush_server(id);
        self.pump();
    }

    /// The client's socket on link `id` became writable again.
    pub(crate) fn client_writable(&mut self, id: PeerId) {
        self.link(id).stall_client_write = false;
        self.flush_client(id);
        self.pump();
    }

    /// Moves bytes until nothing changes.
    pub(crate) fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut progress = false;
            // Output, as an adapter does: only the peers poll_dirty names.
            while let Some(id) = self.server.poll_dirty() {
                progress |= self.flush_server(id);
            }
            let ids: Vec<PeerId> = self.links.keys().copied().collect();
            for &id in &ids {
                while let Some(p) = self.links.get_mut(&id).and_then(|l| l.client.poll_dirty()) {
                    assert_eq!(p, PeerId::SERVER, "a client only has peer 1");
                    progress |= self.flush_client(id);
                }
            }
            // A host that forgot a peer (close(), a client reset) has nothing
            // more to say on its socket: the adapter closes it.
            for &id in &ids {
                let link = self.links.get_mut(&id).expect("link");
                if link.server_open && self.server.connection(id).is_none() {
                    link.server_open = false;
                    link.to_server.clear();
                    progress = true;
                }
                if link.client_open && link.client.connection(PeerId::SERVER).is_none() {
                    link.client_open = false;
                    link.to_client.clear();
                    progress = true;
                }
            }
            // Input, keeping what was not consumed (backpressure).
            for &id in &ids {
                progress |= self.deliver(id);
            }
            if !progress {
                self.check_dirty_invariant();
                return;
            }
        }
        panic!("pump did not settle");
    }

    fn deliver(&mut self, id: PeerId) -> bool {
        let now = self.now;
        let link = self.links.get_mut(&id).expect("link");
        let mut progress = false;
        if link.server_open && !link.to_server.is_empty() {
            let n = self
                .server
                .handle_input(now, id, &link.to_server)
                .expect("server knows an open socket's peer");
            assert!(n <= link.to_server.len());
            if n > 0 {
                link.to_server.drain(..n);
                progress = true;
            }
        }
        if link.server_open
            && !link.client_open
            && link.to_server.is_empty()
            && !link.server_eof_sent
        {
            link.server_eof_sent = true;
            let _ = self.server.handle_eof(now, id);
            progress = true;
        }
        if link.client_open && !link.stall_client_read && !link.to_client.is_empty() {
            let n = link
                .client
                .handle_input(now, PeerId::SERVER, &link.to_client)
                .expect("client knows peer 1 while its socket is open");
            assert!(n <= link.to_client.len());
            if n > 0 {
                link.to_client.drain(..n);
                progress = true;
            }
        }
        if link.client_open
            && !link.server_open
            && link.to_client.is_empty()
            && !link.client_eof_sent
        {
            link.client_eof_sent = true;
            let _ = link.client.handle_eof(now, PeerId::SERVER);
            progress = true;
        }
        progress
    }

    /// `poll_dirty` must have named every peer with output or a socket to
    /// close.
    fn check_dirty_invariant(&self) {
        for (id, link) in &self.links {
            if link.server_open && !link.stall_server_write && self.server.connection(*id).is_some()
            {
                assert_eq!(
                    self.server.transmit_len(*id),
                    0,
                    "poll_dirty missed server output for {id}"
                );
                assert!(
                    !self.server.should_close_socket(*id),
                    "poll_dirty missed a server socket to close ({id})"
                );
            }
            if link.client_open
                && !link.stall_client_write
                && link.client.connection(PeerId::SERVER).is_some()
            {
                assert_eq!(
                    link.client.transmit_len(PeerId::SERVER),
                    0,
                    "poll_dirty missed client output on link {id}"
                );
                assert!(
                    !link.client.should_close_socket(PeerId::SERVER),
                    "poll_dirty missed a client socket to close (link {id})"
                );
            }
        }
    }

    /// Lets `d` pass, running every timer when it is due.
    pub(crate) fn advance(&mut self, d: Duration) {
        let target = self.now.saturating_add(d);
        for _ in 0..100_000 {
            self.pump();
            let mut next = self.server.poll_timeout();
            for link in self.links.values_mut() {
                if let Some(t) = link.client.poll_timeout() {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            match next {
                Some(t) if t <= target => {
                    if t > self.now {
                        self.now = t;
                    }
                    self.fire_timers();
                }
                _ => break,
            }
        }
        self.now = target;
        self.fire_timers();
        self.pump();
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        for link in self.links.values_mut() {
            if link.client.poll_timeout().is_some_and(|t| t <= now) {
                link.client.handle_timeout(now);
            }
        }
    }
}

/// The bytes after the HTTP head in `log` (panics if there is no head).
pub(crate) fn after_head(log: &[u8]) -> &[u8] {
    let end = log
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    &log[end + 4..]
}
