//! rustls between the socket and the plaintext, without blocking.

use std::io::{self, IoSlice, Read, Write};

use crate::socket::Socket;

/// `Read` over a non-blocking socket (for `read_tls`).
struct SockReader<'a, S: Socket + ?Sized>(&'a S);

impl<S: Socket + ?Sized> Read for SockReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// `Write` over a non-blocking socket (for `write_tls`).
struct SockWriter<'a, S: Socket + ?Sized>(&'a S);

impl<S: Socket + ?Sized> Write for SockWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Reads plaintext into `out`. `Ok(0)`: end of stream (close_notify, or the
/// peer closed TCP without one); `Err(WouldBlock)`: nothing now.
pub(crate) fn read_plaintext<S: Socket + ?Sized>(
    tls: &mut rustls::Connection,
    sock: &S,
    out: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        match tls.read_tls(&mut SockReader(sock)) {
            Ok(0) => return Ok(0),
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    // Let the alert out before reporting the failure.
                    let _ = tls.write_tls(&mut SockWriter(sock));
                    return Err(tls_error(e));
                }
                // Handshake records may be due; a full socket is fine here.
                flush(tls, sock)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes buffered ciphertext. `Ok(true)`: nothing left; `Ok(false)`: the
/// socket is full.
pub(crate) fn flush<S: Socket + ?Sized>(
    tls: &mut rustls::Connection,
    sock: &S,
) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut SockWriter(sock)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
