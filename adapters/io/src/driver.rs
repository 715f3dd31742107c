//! [`Driver`]: one non-blocking step between a socket and an [`Endpoint`].

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::time::Duration;

use wsmp_core::connection::TransmitBatch;
use wsmp_core::Timestamp;

use crate::endpoint::{Endpoint, Exchange, Status, LEASE_FRAMES};
use crate::socket::{self, Socket};
use crate::tls;

/// Bytes read from a socket at a time (into a per-thread buffer); also the
/// most a connection holds when the core cannot take its input yet.
pub const READ_CHUNK: usize = 64 * 1024;

/// Most ciphertext rustls may buffer for one connection.
pub const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// Socket reads per step before the connection yields to the others
/// (fairness; [`Want::again`] says there may be more).
const MAX_READS: usize = 16;

/// Up to this many bytes written in all, a close does not wait for the
/// peer's end of stream (`Driver::close`): below any receive window a TCP
/// peer opens, so it can strand at most this much in the kernel.
pub(crate) const QUICK_CLOSE_BYTES: usize = 16 * 1024;

/// Exchanges per step (a bound on the work of one step whatever the core
/// keeps producing).
const MAX_ROUNDS: usize = 64;

/// Slices handed to one vectored write (a frame is a header part and a
/// shared body).
const MAX_SLICES: usize = 2 * LEASE_FRAMES;

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers {
        scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        batch: TransmitBatch::new(),
    });
}

/// Per-thread buffers: an idle connection holds none of them.
struct Buffers {
    scratch: Box<[u8]>,
    batch: TransmitBatch,
}

/// Runs `f` with this thread's buffers (fresh ones if they are in use, so a
/// nested step can never fail).
fn with_buffers<T>(f: impl FnOnce(&mut Buffers) -> T) -> T {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let out = f(&mut bufs);
            // Release the shared bodies the lease pinned.
            bufs.batch.clear();
            out
        }
        Err(_) => f(&mut Buffers {
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            batch: TransmitBatch::new(),
        }),
    })
}

/// What the socket should be waited on for after a [`Driver::step`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    /// Wait for readability (a read would block).
    pub read: bool,
    /// Wait for writability (output is waiting and a write would block).
    pub write: bool,
    /// Step again soon without waiting: the step stopped at its work bound
    /// with more possibly ready (fairness towards other connections).
    pub again: bool,
    /// Step again at this time at the latest (the endpoint's timers, or the
    /// bound on closing).
    pub deadline: Option<Timestamp>,
    /// The socket is finished: drop it (and tell the core, for a host peer,
    /// with `Host::release`).
    pub done: bool,
}

impl Want {
    /// Nothing more to wait for: the socket is finished.
    pub const DONE: Want = Want {
        read: false,
        write: false,
        again: false,
        deadline: None,
        done: true,
    };

    /// This `Want` once events were (`took_events`) or were not taken from
    /// the core after the step that made it.
    ///
    /// The core stops reading while its events wait (backpressure), so a
    /// step made while events waited says "nothing to read" although input
    /// is held: once they are taken that is stale, and waiting on it (an
    /// edge-triggered wait above all) could wait forever. So the answer is
    /// `again`: step once more before waiting. Every adapter loop that takes
    /// events applies this rule here (Autobahn 2.7–2.9: a pong and a close
    /// in one segment left the close unanswered while it was missing).
    #[must_use]
    pub fn after_events(self, took_events: bool) -> Want {
        if took_events && !self.done {
            Want {
                again: true,
                ..self
            }
        } else {
            self
        }
    }
}

/// The I/O state of one socket: its TLS session, input held back by
/// backpressure, and where closing stands. See the [crate docs](crate).
#[derive(Debug)]
pub struct Driver {
    tls: Option<Box<rustls::Connection>>,
    /// Received plaintext the core has not taken yet: `held[held_at..]`.
    held: Vec<u8>,
    held_at: usize,
    /// Plaintext bytes written (to the socket, or handed to rustls) and not
    /// yet reported to the core.
    unreported: usize,
    /// The socket reached end of stream, or failed.
    read_eof: bool,
    eof_reported: bool,
    /// A write failed: nothing more can be sent.
    broken: bool,
    /// The core took input at the last exchange.
    can_read: bool,
    /// When the core first asked for the socket to be closed.
    close_asked: Option<Timestamp>,
    /// Our FIN is queued (graceful close): waiting for the peer's end of
    /// stream, at most until `close_asked + linger`.
    fin_sent: bool,
    /// Plaintext bytes written to this socket in all (saturating): decides
    /// whether a close must wait for the peer's end (see `close`).
    sent: usize,
    linger: Duration,
    error: Option<io::Error>,
    done: bool,
}

impl Driver {
    /// A driver for a fresh socket, with a TLS session for `wss://` (its
    /// buffers are bounded here). `linger` bounds closing: once the core asks
    /// for the socket to be closed, output still waiting after this long is
    /// abandoned and the connection reset (use the core's `close_timeout`).
    pub fn new(tls: Option<Box<rustls::Connection>>, linger: Duration) -> Driver {
        let tls = tls.map(|mut t| {
            t.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
            t
        });
        Driver {
            tls,
            held: Vec::new(),
            held_at: 0,
            unreported: 0,
            read_eof: false,
            eof_reported: false,
            broken: false,
            can_read: true,
            close_asked: None,
            fin_sent: false,
            sent: 0,
            linger,
            error: None,
            done: false,
        }
    }

    /// The TLS session, if any.
    pub fn tls(&self) -> Option<&rustls::Connection> {
        self.tls.as_deref()
    }

    /// True once the socket is finished.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// True once the socket reached end of stream (or failed).
    pub fn is_eof(&self) -> bool {
        self.read_eof
    }

    /// Received bytes held because the core could not take them yet.
    pub fn held_len(&self) -> usize {
        self.held.len() - self.held_at
    }

    /// The first I/O or TLS error, if one ended the socket.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Ends the socket at once with a reset (no close_notify, nothing more
    /// written): for a connection dropped by the application.
    pub fn abort<S: Socket + ?Sized>(&mut self, sock: &S) {
        if !self.done {
            socket::abort(sock.sock_ref());
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.tls = None;
        self.held = Vec::new();
        self.held_at = 0;
    }

    /// Starts ending the socket gracefully: close_notify (best effort, not
    /// waited for) and a FIN after what the kernel still holds (a half
    /// close); the TLS session and buffers are freed at once. The socket is
    /// finished when the peer ends its side too (it read everything, our
    /// FIN included) — or, at `close_asked + linger`, with a reset: a peer
    /// that stopped reading leaves our FIN stuck behind unsent data in the
    /// kernel, and closing the descriptor then would leave an orphaned
    /// connection (FIN-WAIT-1, zero-window probes) holding the kernel
    /// buffers for minutes while the peer's side stays ESTABLISHED.
    ///
    /// A socket that never carried more than [`QUICK_CLOSE_BYTES`] (a
    /// refused or timed-out handshake, a short session) is shut down both
    /// ways and finished at once, as a lone HTTP error answer is: what the
    /// kernel may still hold for it is too small to matter, and a caller
    /// such as `accept` must not wait `linger` for a client that reads our
    /// answer before it closes. Returns true when the socket is finished.
    fn close<S: Socket + ?Sized>(&mut self, sock: &S, now: Timestamp) -> bool {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = tls::flush(tls, sock);
        }
        if self.sent <= QUICK_CLOSE_BYTES {
            socket::shutdown_both(sock.sock_ref());
            self.finish();
            return true;
        }
        socket::shutdown_write(sock.sock_ref());
        self.close_asked.get_or_insert(now);
        self.fin_sent = true;
        self.tls = None;
        self.held = Vec::new();
        self.held_at = 0;
        false
    }

    /// After our FIN: discards what the peer still sends until its end of
    /// stream (then the socket is finished), or waits for more.
    fn await_peer_fin<S: Socket + ?Sized>(&mut self, sock: &S, scratch: &mut [u8]) -> Want {
        for _ in 0..MAX_READS {
            match sock.read(scratch) {
                Ok(0) => {
                    self.finish();
                    return Want::DONE;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Want {
                        read: true,
                        deadline: self.close_asked.map(|at| at.saturating_add(self.linger)),
                        ..Want::default()
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error.get_or_insert(e);
                    self.abort(sock);
                    return Want::DONE;
                }
            }
        }
        Want {
            again: true,
            deadline: self.close_asked.map(|at| at.saturating_add(self.linger)),
            ..Want::default()
        }
    }

    /// Reads, exchanges with the core and writes until nothing more can be
    /// done now (or a fairness bound is reached); never blocks. See the
    /// [crate docs](crate).
    pub fn step<S, E>(&mut self, sock: &S, ep: &mut E, now: Timestamp) -> Want
    where
        S: Socket + ?Sized,
        E: Endpoint + ?Sized,
    {
        if self.done {
            return Want::DONE;
        }
        if self
            .close_asked
            .is_some_and(|at| now >= at.saturating_add(self.linger))
        {
            // The core gave up and the output did not drain in time: drop it,
            // whatever TLS or the kernel still hold (a reset frees them).
            self.abort(sock);
            return Want::DONE;
        }
        if self.fin_sent {
            return with_buffers(|bufs| self.await_peer_fin(sock, &mut bufs.scratch));
        }
        with_buffers(|bufs| self.run(sock, ep, now, bufs, true))
    }

    /// Like [`step`](Self::step) without reading the socket: writes what the
    /// core has queued (and reports it), for a sender waiting for room while
    /// its application is not reading (the socket's input then waits in the
    /// kernel: backpressure towards the peer).
    pub fn flush<S, E>(&mut self, sock: &S, ep: &mut E, now: Timestamp) -> Want
    where
        S: Socket + ?Sized,
        E: Endpoint + ?Sized,
    {
        if self.done {
            return Want::DONE;
        }
        if self.fin_sent {
            // Nothing more to write; `step` waits for the peer's end.
            return Want {
                deadline: self.close_asked.map(|at| at.saturating_add(self.linger)),
                ..Want::default()
            };
        }
        with_buffers(|bufs| self.run(sock, ep, now, bufs, false))
    }

    fn run<S, E>(
        &mut self,
        sock: &S,
        ep: &mut E,
        now: Timestamp,
        bufs: &mut Buffers,
        reading: bool,
    ) -> Want
    where
        S: Socket + ?Sized,
        E: Endpoint + ?Sized,
    {
        let mut reads = 0;
        let mut read_blocked = false;
        let mut write_blocked = false;
        let mut status = Status::default();
        let mut rounds = 0;
        loop {
            rounds += 1;
            // 1. Ciphertext that is already encrypted goes first.
            let flushed = match self.tls.as_deref_mut() {
                Some(tls) if !self.broken => Some(tls::flush(tls, sock)),
                _ => None,
            };
            match flushed {
                Some(Ok(flushed)) => write_blocked = !flushed,
                Some(Err(e)) => self.fail(e),
                None => {}
            }
            // 2. Input: what is held back first, else what the socket has.
            let from_held = self.held_at < self.held.len();
            let mut fresh = 0;
            let closing = status.close;
            if reading
                && !from_held
                && self.can_read
                && !self.read_eof
                && !read_blocked
                && !closing
                && reads < MAX_READS
            {
                reads += 1;
                match self.read(sock, &mut bufs.scratch) {
                    Ok(0) => self.read_eof = true,
                    Ok(n) => fresh = n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => read_blocked = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => self.fail(e),
                }
            }
            let input: &[u8] = if from_held && reading {
                &self.held[self.held_at..]
            } else {
                &bufs.scratch[..fresh]
            };
            let eof = self.read_eof && !self.eof_reported && !from_held && fresh == 0 && reading;
            // 3. One exchange with the core.
            let lease = !write_blocked && !self.broken;
            let written = std::mem::take(&mut self.unreported);
            status = ep.exchange(
                now,
                Exchange {
                    written,
                    input,
                    eof,
                    batch: lease.then_some(&mut bufs.batch),
                },
            );
            self.eof_reported |= eof;
            // Reading may resume: the application took events since.
            let resumed = status.can_read && !self.can_read;
            self.can_read = status.can_read;
            let consumed = status.consumed.min(input.len());
            if from_held && reading {
                self.held_at += consumed;
                if self.held_at == self.held.len() {
                    self.held = Vec::new();
                    self.held_at = 0;
                }
            } else if consumed < fresh {
                // Backpressure: keep the rest (at most one read).
                self.held.extend_from_slice(&bufs.scratch[consumed..fresh]);
            }
            // 4. Output.
            let out_empty = lease && bufs.batch.is_empty();
            let mut wrote = 0;
            if !bufs.batch.is_empty() {
                match self.write(sock, &bufs.batch) {
                    Ok(n) => {
                        wrote = n;
                        self.sent = self.sent.saturating_add(n);
                        write_blocked = match self.tls.as_deref() {
                            Some(t) => t.wants_write(),
                            None => n < bufs.batch.len(),
                        };
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => write_blocked = true,
                    Err(e) => self.fail(e),
                }
                bufs.batch.clear();
                self.unreported = wrote;
            }
            // 5. Closing.
            if self.broken && self.eof_reported {
                // Nothing can be written any more and the core knows.
                self.abort(sock);
                return Want::DONE;
            }
            if status.close {
                let tls_flushed = self.tls.as_deref().is_none_or(|t| !t.wants_write());
                if out_empty && wrote == 0 && tls_flushed {
                    if self.close(sock, now) {
                        return Want::DONE;
                    }
                    return if reading {
                        self.await_peer_fin(sock, &mut bufs.scratch)
                    } else {
                        Want {
                            deadline: self.close_asked.map(|at| at.saturating_add(self.linger)),
                            ..Want::default()
                        }
                    };
                }
                self.close_asked.get_or_insert(now);
            }
            let progress = consumed > 0
                || wrote > 0
                || eof
                || (resumed && reading)
                || (self.broken && !self.eof_reported);
            if !progress {
                break;
            }
            if rounds >= MAX_ROUNDS {
                return self.want(&status, read_blocked, write_blocked, true);
            }
        }
        let again = reading
            && !read_blocked
            && self.can_read
            && !self.read_eof
            && !status.close
            && (reads >= MAX_READS || self.held_at < self.held.len());
        self.want(&status, read_blocked, write_blocked, again)
    }

    fn want(&self, status: &Status, read_blocked: bool, write_blocked: bool, again: bool) -> Want {
        let linger = self.close_asked.map(|at| at.saturating_add(self.linger));
        let deadline = match (status.deadline, linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Want {
            read: read_blocked && self.can_read && !self.read_eof && !status.close,
            write: write_blocked && !self.broken,
            again,
            deadline,
            done: false,
        }
    }

    /// An I/O error ends the socket: reported to the core as end of stream.
    fn fail(&mut self, e: io::Error) {
        self.error.get_or_insert(e);
        self.read_eof = true;
        self.broken = true;
        // Nothing read can be answered any more.
        self.held = Vec::new();
        self.held_at = 0;
    }

    fn read<S: Socket + ?Sized>(&mut self, sock: &S, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            None => sock.read(buf),
            Some(tls) => tls::read_plaintext(tls, sock, buf),
        }
    }

    /// Writes the leased output; returns the plaintext bytes taken.
    fn write<S: Socket + ?Sized>(&mut self, sock: &S, batch: &TransmitBatch) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut k = 0;
        for chunk in batch.chunks() {
            if k == MAX_SLICES {
                break;
            }
            slices[k] = IoSlice::new(chunk);
            k += 1;
        }
        let Some(tls) = self.tls.as_deref_mut() else {
            loop {
                return match sock.write_vectored(&slices[..k]) {
                    // A socket that takes nothing without WouldBlock is broken.
                    Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
            }
        };
        // More plaintext only once earlier ciphertext is out: this bounds
        // what rustls buffers to about one write.
        if !tls::flush(tls, sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // 0 while the handshake runs and its buffer is full: the handshake
        // progresses on reads, the output waits.
        let n = io::Write::write_vectored(&mut tls.writer(), &slices[..k])?;
        tls::flush(tls, sock)?;
        Ok(n)
    }
}
