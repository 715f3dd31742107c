//! One non-blocking I/O step between a socket and a protocol endpoint (a
//! [`Connection`] or one peer of a [`Host`]).
//!
//! `pump` writes what the core has queued, reads what the socket has, feeds
//! it to the core, and writes again, all without awaiting; it reports what
//! to wait for next. Received bytes go through one scratch buffer per thread
//! (no per-connection read buffer while idle); bytes the core could not take
//! yet (backpressure) are kept in a small per-connection leftover.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::net::Shutdown;

use tokio::net::TcpStream;
use wsmp_core::connection::Connection;
use wsmp_core::host::{Host, PeerId};
use wsmp_core::Timestamp;

use crate::transport::Tls;

/// Most slices handed to one vectored write.
const MAX_SLICES: usize = 64;
/// Size of the per-thread read scratch buffer.
const SCRATCH: usize = 64 * 1024;
/// Reads per pump before yielding to other connections (fairness).
const MAX_READS: usize = 16;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// A protocol endpoint bound to one socket.
pub(crate) trait Endpoint {
    fn can_read(&self) -> bool;
    fn handle_input(&mut self, now: Timestamp, input: &[u8]) -> usize;
    fn handle_eof(&mut self, now: Timestamp);
    fn transmit_len(&self) -> usize;
    fn fill_slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize;
    fn advance(&mut self, now: Timestamp, n: usize);
    fn should_close_socket(&self) -> bool;
}

impl Endpoint for Connection {
    fn can_read(&self) -> bool {
        Connection::can_read(self)
    }
    fn handle_input(&mut self, now: Timestamp, input: &[u8]) -> usize {
        Connection::handle_input(self, now, input)
    }
    fn handle_eof(&mut self, now: Timestamp) {
        Connection::handle_eof(self, now);
    }
    fn transmit_len(&self) -> usize {
        Connection::transmit_len(self)
    }
    fn fill_slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        fill(self.transmit(), out)
    }
    fn advance(&mut self, now: Timestamp, n: usize) {
        self.advance_transmit(now, n);
    }
    fn should_close_socket(&self) -> bool {
        Connection::should_close_socket(self)
    }
}

/// One peer of a host.
pub(crate) struct HostPeer<'h> {
    pub(crate) host: &'h mut Host,
    pub(crate) id: PeerId,
}

impl Endpoint for HostPeer<'_> {
    fn can_read(&self) -> bool {
        self.host.can_read(self.id)
    }
    fn handle_input(&mut self, now: Timestamp, input: &[u8]) -> usize {
        self.host
            .handle_input(now, self.id, input)
            .unwrap_or(input.len())
    }
    fn handle_eof(&mut self, now: Timestamp) {
        let _ = self.host.handle_eof(now, self.id);
    }
    fn transmit_len(&self) -> usize {
        self.host.transmit_len(self.id)
    }
    fn fill_slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        match self.host.transmit(self.id) {
            Some(chunks) => fill(chunks, out),
            None => 0,
        }
    }
    fn advance(&mut self, now: Timestamp, n: usize) {
        self.host.advance_transmit(now, self.id, n);
    }
    fn should_close_socket(&self) -> bool {
        self.host.should_close_socket(self.id)
    }
}

fn fill<'a>(chunks: impl Iterator<Item = &'a [u8]>, out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
    let mut n = 0;
    for chunk in chunks.take(MAX_SLICES) {
        out[n] = IoSlice::new(chunk);
        n += 1;
    }
    n
}

/// Per-socket I/O state.
pub(crate) struct Io {
    pub(crate) tls: Tls,
    /// Received plaintext the core could not take yet (from `leftover_at`).
    leftover: Vec<u8>,
    leftover_at: usize,
    eof: bool,
    shut: bool,
}

/// What the socket should be waited on for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Want {
    pub(crate) read: bool,
    pub(crate) write: bool,
    /// The socket is finished: close it.
    pub(crate) done: bool,
}

impl Want {
    /// Wait for writability only.
    pub(crate) const WRITE: Want = Want {
        read: false,
        write: true,
        done: false,
    };
    /// Nothing more to wait for: the socket is finished.
    pub(crate) const DONE: Want = Want {
        read: false,
        write: false,
        done: true,
    };
}

impl Io {
    pub(crate) fn new(mut tls: Tls) -> Io {
        tls.limit_buffers();
        Io {
            tls,
            leftover: Vec::new(),
            leftover_at: 0,
            eof: false,
            shut: false,
        }
    }

    /// True once the socket reached end of stream (or failed).
    pub(crate) fn is_eof(&self) -> bool {
        self.eof
    }

    /// Writes, reads and writes again without blocking. I/O errors end the
    /// endpoint (as end of stream) and are returned.
    pub(crate) fn pump<E: Endpoint>(
        &mut self,
        sock: &TcpStream,
        ep: &mut E,
        now: Timestamp,
    ) -> io::Result<Want> {
        match self.pump_inner(sock, ep, now) {
            Ok(w) => Ok(w),
            Err(e) => {
                if !self.eof {
                    self.eof = true;
                    ep.handle_eof(now);
                }
                self.shutdown(sock);
                Err(e)
            }
        }
    }

    fn pump_inner<E: Endpoint>(
        &mut self,
        sock: &TcpStream,
        ep: &mut E,
        now: Timestamp,
    ) -> io::Result<Want> {
        let mut want = Want {
            write: !self.write(sock, ep, now)?,
            ..Want::default()
        };
        if !self.eof {
            want.read = self.read(sock, ep, now)?;
            if !want.write {
                want.write = !self.write(sock, ep, now)?;
            }
        }
        if ep.should_close_socket() && !want.write {
            self.shutdown(sock);
            want = Want {
                read: false,
                write: false,
                done: true,
            };
        } else if self.eof && !ep.should_close_socket() {
            // Half-closed by the peer but the core still owes output: keep writing.
            want.read = false;
        }
        Ok(want)
    }

    /// Writes queued output; `Ok(true)` when all of it is out.
    fn write<E: Endpoint>(
        &mut self,
        sock: &TcpStream,
        ep: &mut E,
        now: Timestamp,
    ) -> io::Result<bool> {
        loop {
            if ep.transmit_len() == 0 {
                return self.tls.try_flush(sock);
            }
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = ep.fill_slices(&mut slices);
                match self.tls.try_write(sock, &slices[..n]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(w) => w,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            };
            ep.advance(now, written);
        }
    }

    /// Reads and feeds input; `Ok(true)` when the socket should be waited on
    /// for readability (false: the core is full, or end of stream).
    fn read<E: Endpoint>(
        &mut self,
        sock: &TcpStream,
        ep: &mut E,
        now: Timestamp,
    ) -> io::Result<bool> {
        if self.leftover_at < self.leftover.len() {
            if !ep.can_read() {
                return Ok(false);
            }
            // An offset, not a drain: feeding a large leftover message by
            // message must stay linear.
            let n = ep.handle_input(now, &self.leftover[self.leftover_at..]);
            self.leftover_at += n;
            if self.leftover_at < self.leftover.len() {
                return Ok(false);
            }
            self.leftover = Vec::new();
            self.leftover_at = 0;
        }
        SCRATCH_BUF.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            for _ in 0..MAX_READS {
                if !ep.can_read() {
                    return Ok(false);
                }
                let n = match self.tls.try_read(sock, &mut buf) {
                    Ok(0) => {
                        self.eof = true;
                        ep.handle_eof(now);
                        return Ok(false);
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) => return Err(e),
                };
                let used = ep.handle_input(now, &buf[..n]);
                if used < n {
                    self.leftover.extend_from_slice(&buf[used..n]);
                    return Ok(false);
                }
            }
            // More may be waiting; the caller polls again promptly.
            Ok(true)
        })
    }

    /// True while received bytes wait for the core to take them.
    pub(crate) fn has_leftover(&self) -> bool {
        self.leftover_at < self.leftover.len()
    }

    fn shutdown(&mut self, sock: &TcpStream) {
        if !self.shut {
            self.shut = true;
            self.tls.send_close_notify();
            let _ = self.tls.try_flush(sock);
            let _ = socket2::SockRef::from(sock).shutdown(Shutdown::Both);
        }
    }
}
