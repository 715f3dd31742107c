//! The socket side: a non-blocking byte stream, and the TCP options every
//! wsmp socket gets.

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// A connected, non-blocking stream socket. `read` and `write_vectored`
/// never block: `Err(WouldBlock)` means "wait for readiness".
pub trait Socket {
    /// Reads into `buf`; `Ok(0)` is end of stream.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes from `bufs`; returns how much was taken.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// The socket, for options and shutdown.
    fn sock_ref(&self) -> SockRef<'_>;
}

impl Socket for std::net::TcpStream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut &*self, buf)
    }
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        io::Write::write_vectored(&mut &*self, bufs)
    }
    fn sock_ref(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

#[cfg(feature = "mio")]
impl Socket for mio::net::TcpStream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut &*self, buf)
    }
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        io::Write::write_vectored(&mut &*self, bufs)
    }
    fn sock_ref(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

#[cfg(feature = "tokio")]
impl Socket for tokio::net::TcpStream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // `try_*` clear tokio's readiness on WouldBlock, so the next
        // `readable()`/`writable()` really waits.
        self.try_read(buf)
    }
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.try_write_vectored(bufs)
    }
    fn sock_ref(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

/// Idle time before the first keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Time between keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the kernel drops the connection.
const KEEPALIVE_RETRIES: u32 = 3;
/// Longest time written data may stay unacknowledged before the kernel
/// drops the connection (Linux `TCP_USER_TIMEOUT`).
const USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The TCP options of every wsmp connection: `TCP_NODELAY` (messages are
/// latency-sensitive and already batched by the driver), keepalive probes
/// after 30 s idle (every 10 s, 3 tries) and, on Linux, `TCP_USER_TIMEOUT`
/// 30 s — so a peer that vanished (no FIN, no RST) cannot pin a socket and
/// its buffers: the kernel reports an error within about a minute, which the
/// driver turns into end of stream. Options the platform lacks are skipped.
pub fn tune_stream(sock: SockRef<'_>) -> io::Result<()> {
    sock.set_tcp_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(not(any(target_os = "openbsd", target_os = "redox", target_os = "solaris")))]
    let keepalive = keepalive.with_retries(KEEPALIVE_RETRIES);
    let _ = KEEPALIVE_RETRIES;
    sock.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    sock.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
    let _ = USER_TIMEOUT;
    Ok(())
}

/// Graceful end of our side: a FIN after what the kernel holds; the peer's
/// side is still read (until its end of stream).
pub(crate) fn shutdown_write(sock: SockRef<'_>) {
    let _ = sock.shutdown(Shutdown::Write);
}

/// Graceful end of both directions: a FIN after what the kernel holds.
pub(crate) fn shutdown_both(sock: SockRef<'_>) {
    let _ = sock.shutdown(Shutdown::Both);
}

/// Abortive end: `SO_LINGER` 0, so closing the socket sends a reset and the
/// kernel drops its buffers at once instead of keeping an orphaned
/// connection alive for a peer that does not read.
pub(crate) fn abort(sock: SockRef<'_>) {
    let _ = sock.set_linger(Some(Duration::ZERO));
    let _ = sock.shutdown(Shutdown::Both);
}
