//! Non-blocking byte transport: a TCP stream, optionally with rustls in
//! between, driven with `try_*` calls and readiness awaits.
//!
//! Nothing here awaits while a lock is held: every operation is a
//! non-blocking attempt (`WouldBlock` means "wait for readiness"), so the
//! protocol state can live behind a plain mutex and every future that waits
//! only waits on socket readiness — which is what makes the public futures
//! cancellation-safe.

use std::io::{self, IoSlice, Read, Write};

use tokio::net::TcpStream;

/// TLS state of one connection (none for `ws://`).
pub(crate) enum Tls {
    /// Plain TCP.
    None,
    /// rustls client or server session.
    Rustls(Box<rustls::Connection>),
}

/// Bytes of ciphertext rustls may hold before we stop handing it plaintext.
const TLS_WRITE_LIMIT: usize = 64 * 1024;

struct TryReader<'a>(&'a TcpStream);

impl Read for TryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

struct TryWriter<'a>(&'a TcpStream);

impl Write for TryWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Tls {
    /// Reads plaintext into `out`. `Ok(0)` is end of stream;
    /// `Err(WouldBlock)` means nothing is available now.
    pub(crate) fn try_read(&mut self, sock: &TcpStream, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Tls::None => sock.try_read(out),
            Tls::Rustls(tls) => read_plaintext(tls, sock, out),
        }
    }

    /// Writes plaintext; returns how much was taken.
    pub(crate) fn try_write(
        &mut self,
        sock: &TcpStream,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let Tls::Rustls(tls) = self else {
            return sock.try_write_vectored(bufs);
        };
        // Hand rustls more plaintext only once its ciphertext is out: this
        // bounds what it buffers to about one write.
        if !flush(tls, sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.writer().write_vectored(bufs)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            // rustls' plaintext buffer is full (handshake still running).
            return Err(io::ErrorKind::WouldBlock.into());
        }
        flush(tls, sock)?;
        Ok(n)
    }

    /// Writes buffered ciphertext. `Ok(true)`: nothing left; `Ok(false)`:
    /// the socket is full.
    pub(crate) fn try_flush(&mut self, sock: &TcpStream) -> io::Result<bool> {
        match self {
            Tls::None => Ok(true),
            Tls::Rustls(tls) => flush(tls, sock),
        }
    }

    /// Queues a close_notify alert (best effort).
    pub(crate) fn send_close_notify(&mut self) {
        if let Tls::Rustls(tls) = self {
            tls.send_close_notify();
        }
    }

    /// Bounds rustls' internal buffers.
    pub(crate) fn limit_buffers(&mut self) {
        if let Tls::Rustls(tls) = self {
            tls.set_buffer_limit(Some(TLS_WRITE_LIMIT));
        }
    }
}

fn read_plaintext(
    tls: &mut rustls::Connection,
    sock: &TcpStream,
    out: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The peer closed without close_notify: end of stream all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        match tls.read_tls(&mut TryReader(sock)) {
            Ok(0) => return Ok(0),
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    // Let the alert out before reporting the failure.
                    let _ = tls.write_tls(&mut TryWriter(sock));
                    return Err(tls_error(e));
                }
                // Handshake messages may be due; a full socket is fine here.
                flush(tls, sock)?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn flush(tls: &mut rustls::Connection, sock: &TcpStream) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut TryWriter(sock)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
