//! The admin listener (`--admin-listen`, design/CLI.md): a small HTTP/1.1
//! server (hyper) on its own port, meant to stay private.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /metrics` | 200, Prometheus/OpenMetrics text ([`crate::metrics`]) |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 while ready, 503 while draining or shutting down ([`Readiness`]) |
//! | `GET /stats` | 200, the relay's JSON stats (404 with `--no-stats`) |
//! | `HEAD` of those | as `GET`, without the body |
//! | other paths | 404 |
//! | other methods | 405 with `Allow: GET, HEAD` |
//!
//! Bounded: request heads of at most [`MAX_HEADER_BYTES`] bytes and
//! [`MAX_HEADERS`] lines, [`HEADER_TIMEOUT`] to send a head,
//! [`CONNECTION_LIFETIME`] per connection, at most [`MAX_CONNECTIONS`]
//! connections at once (more are closed at accept).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// Largest request head accepted (bytes).
pub const MAX_HEADER_BYTES: usize = 8192;
/// Most header lines in a request.
pub const MAX_HEADERS: usize = 32;
/// Time a client has to send a complete request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one admin connection (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Most admin connections at once.
pub const MAX_CONNECTIONS: usize = 32;

/// Whether the relay accepts new work: `/readyz` answers 200 while set.
/// Cheap to clone; every clone shares one flag.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new(true)
    }
}

impl Readiness {
    /// A flag starting at `ready`.
    pub fn new(ready: bool) -> Readiness {
        Readiness(Arc::new(AtomicBool::new(ready)))
    }

    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Sets the flag (false when a drain or shutdown starts).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

/// Produces the `/stats` JSON at request time.
pub type StatsSource = Arc<dyn Fn() -> String + Send + Sync>;

/// What the admin listener serves.
#[derive(Clone)]
pub struct AdminState {
    /// `/readyz`.
    pub ready: Readiness,
    /// `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `/stats`; `None` → 404 (`--no-stats`).
    pub stats: Option<StatsSource>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("ready", &self.ready)
            .field("stats", &self.stats.is_some())
            .finish_non_exhaustive()
    }
}

/// A bound admin listener, not yet serving.
#[derive(Debug)]
pub struct AdminListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl AdminListener {
    /// Binds `addr` (port 0 = any free port). Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr) -> std::io::Result<AdminListener> {
        // The bind rule of every wsmp listener (wsmp_io::BindAddress): non-blocking.
        let listener = TcpListener::from_std(wsmp_tokio::bind_listener(addr)?)?;
        let addr = listener.local_addr()?;
        Ok(AdminListener { listener, addr })
    }

    /// The bound address (real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `state` on a new task until the returned handle is dropped.
    pub fn spawn(self, state: AdminState) -> AdminHandle {
        let addr = self.addr;
        let task = tokio::spawn(serve(self.listener, state));
        AdminHandle { task, addr }
    }
}

/// A running admin listener; dropping it stops accepting (connections
/// being served finish on their own, within [`CONNECTION_LIFETIME`]).
#[derive(Debug)]
pub struct AdminHandle {
    task: JoinHandle<()>,
    addr: SocketAddr,
}

impl AdminHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: AdminState) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin listener: too many connections; closing");
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, &req)) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_header_size(MAX_HEADER_BYTES)
                .max_headers(MAX_HEADERS)
                .max_buf_size(16 * 1024);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "admin connection ended with an error");
                    }
                }
                () = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(HEADER_TIMEOUT, conn).await;
                }
            }
        });
    }
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The answer to one admin request.
fn answer(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = response(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = match req.uri().path() {
        "/metrics" => response(
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            state.metrics.render(),
        ),
        "/healthz" => response(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" if state.ready.is_ready() => response(StatusCode::OK, TEXT, "ready\n"),
        "/readyz" => response(StatusCode::SERVICE_UNAVAILABLE, TEXT, "draining\n"),
        "/stats" => match &state.stats {
            Some(stats) => response(StatusCode::OK, "application/json", stats()),
            None => response(StatusCode::NOT_FOUND, TEXT, "Not Found\n"),
        },
        _ => response(StatusCode::NOT_FOUND, TEXT, "Not Found\n"),
    };
    if head {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Snapshot;
    use std::sync::atomic::AtomicU64;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn raw(addr: SocketAddr, request: &[u8]) -> String {
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(request).await.expect("write");
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("answered in time")
    }

    async fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let text = raw(
            addr,
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (status, head.to_string(), body.to_string())
    }

    async fn start(stats: bool) -> (AdminHandle, Readiness, Arc<AtomicU64>) {
        let peers = Arc::new(AtomicU64::new(0));
        let p = peers.clone();
        let metrics = Arc::new(Metrics::new(Arc::new(move || Snapshot {
            peers: p.load(Ordering::Relaxed),
            ..Snapshot::default()
        })));
        let ready = Readiness::default();
        let listener = AdminListener::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        assert_ne!(listener.local_addr().port(), 0);
        let state = AdminState {
            ready: ready.clone(),
            metrics,
            stats: stats.then(|| -> StatsSource { Arc::new(|| "{\"peers\":0}".to_string()) }),
        };
        (listener.spawn(state), ready, peers)
    }

    #[tokio::test]
    async fn endpoints() {
        let (h, ready, peers) = start(true).await;
        let a = h.local_addr();
        let (s, head, body) = get(a, "GET", "/metrics").await;
        assert_eq!(s, 200);
        assert!(head.contains("application/openmetrics-text"), "{head}");
        assert!(body.contains("wsmp_relay_peers 0"), "{body}");
        peers.store(5, Ordering::Relaxed);
        let (_, _, body) = get(a, "GET", "/metrics").await;
        assert!(
            body.contains("wsmp_relay_peers 5"),
            "the value moves: {body}"
        );
        assert_eq!(get(a, "GET", "/healthz").await.0, 200);
        assert_eq!(get(a, "GET", "/readyz").await.0, 200);
        ready.set(false);
        let (s, _, body) = get(a, "GET", "/readyz").await;
        assert_eq!((s, body.as_str()), (503, "draining\n"));
        assert_eq!(
            get(a, "GET", "/healthz").await.0,
            200,
            "alive while draining"
        );
        let (s, head, body) = get(a, "GET", "/stats").await;
        assert_eq!((s, body.as_str()), (200, "{\"peers\":0}"));
        assert!(head.contains("application/json"), "{head}");
        assert_eq!(get(a, "GET", "/stats?x=1").await.0, 200);
        assert_eq!(get(a, "GET", "/").await.0, 404);
        assert_eq!(get(a, "GET", "/metricsx").await.0, 404);
        let (s, head, _) = get(a, "POST", "/metrics").await;
        assert_eq!(s, 405);
        assert!(
            head.to_ascii_lowercase().contains("allow: get, head"),
            "{head}"
        );
        let (s, _, body) = get(a, "HEAD", "/healthz").await;
        assert_eq!((s, body.as_str()), (200, ""));
    }

    #[tokio::test]
    async fn no_stats_is_404() {
        let (h, _, _) = start(false).await;
        assert_eq!(get(h.local_addr(), "GET", "/stats").await.0, 404);
        assert_eq!(get(h.local_addr(), "GET", "/metrics").await.0, 200);
    }

    #[tokio::test]
    async fn oversized_and_garbage_requests_are_refused() {
        let (h, _, _) = start(true).await;
        let a = h.local_addr();
        let big = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_BYTES * 2)
        );
        let text = raw(a, big.as_bytes()).await;
        assert!(text.starts_with("HTTP/1.1 431"), "{text:.80}");
        let many: String = (0..MAX_HEADERS + 5)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect();
        let text = raw(
            a,
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 431"), "{text:.80}");
        let text = raw(a, b"\x16\x03\x01 not http\r\n\r\n").await;
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 400"),
            "{text:.80}"
        );
        // Still serving.
        assert_eq!(get(a, "GET", "/healthz").await.0, 200);
    }

    #[tokio::test]
    async fn slow_heads_time_out_and_connections_are_capped() {
        let (h, _, _) = start(true).await;
        let a = h.local_addr();
        // Fill every slot with idle connections.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut s = tokio::net::TcpStream::connect(a).await.expect("connect");
            s.write_all(b"GET /healthz HTTP/1.1\r\n")
                .await
                .expect("partial head");
            idle.push(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // One more is closed at once, unanswered.
        let text = raw(a, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(text, "", "over the cap");
        // The idle ones are closed after the header timeout (with a 408 or nothing).
        let start = tokio::time::Instant::now();
        for mut s in idle {
            let mut buf = Vec::new();
            tokio::time::timeout(HEADER_TIMEOUT * 3, s.read_to_end(&mut buf))
                .await
                .expect("closed by the header timeout")
                .ok();
            let t = String::from_utf8_lossy(&buf);
            assert!(t.is_empty() || t.starts_with("HTTP/1.1 408"), "{t:.80}");
        }
        assert!(start.elapsed() < HEADER_TIMEOUT * 3);
        // Slots are free again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get(a, "GET", "/healthz").await.0, 200);
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_accepting() {
        let (h, _, _) = start(true).await;
        let a = h.local_addr();
        assert_eq!(get(a, "GET", "/healthz").await.0, 200);
        drop(h);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tokio::net::TcpStream::connect(a).await.is_err());
    }
}
