//! A TCP stream, plain or wrapped in a blocking rustls session.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;

use rustls::{ClientConnection, ServerConnection, StreamOwned};

/// The socket under a blocking [`WebSocket`](crate::WebSocket).
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Client(s) => &s.sock,
            Stream::Server(s) => &s.sock,
        }
    }

    /// Sends a TLS close_notify (best effort) and shuts the TCP connection down.
    pub(crate) fn shutdown(&mut self) {
        match self {
            Stream::Plain(_) => {}
            Stream::Client(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
            Stream::Server(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Client(s) => s.read(buf),
            Stream::Server(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Client(s) => s.write(buf),
            Stream::Server(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write_vectored(bufs),
            Stream::Client(s) => tls_write_vectored(&mut s.conn, &mut s.sock, bufs),
            Stream::Server(s) => tls_write_vectored(&mut s.conn, &mut s.sock, bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Client(s) => tls_flush(&mut s.conn, &mut s.sock),
            Stream::Server(s) => tls_flush(&mut s.conn, &mut s.sock),
        }
    }
}

/// Writes every encrypted byte rustls holds.
fn tls_flush<C, D>(conn: &mut C, sock: &mut TcpStream) -> io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
{
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

/// Encrypts as much of `bufs` as rustls takes (one record for several slices) and tries to
/// send it. Earlier output is written first, so an error means nothing of `bufs` was taken;
/// errors after that are reported by the next write or flush.
fn tls_write_vectored<C, D>(
    conn: &mut C,
    sock: &mut TcpStream,
    bufs: &[IoSlice<'_>],
) -> io::Result<usize>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
{
    tls_flush(conn, sock)?;
    let n = conn.writer().write_vectored(bufs)?;
    while conn.wants_write() {
        if conn.write_tls(sock).is_err() {
            break;
        }
    }
    Ok(n)
}
