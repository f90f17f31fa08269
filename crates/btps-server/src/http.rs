//! The HTTP listeners: a small HTTP/1.1 server for `/healthz`, `/readyz`, the Prometheus
//! `/metrics` and the `.well-known` documents (`/.well-known/btp-key-rotation.json`, and
//! `/.well-known/btps-trust.json` when published), plain or over TLS. One request per
//! connection (`Connection: close`), bounded request head and time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::transport::TlsReloader;

/// What the endpoints report. Implemented by the server.
pub trait Probe: Send + Sync + 'static {
    /// `/readyz`: `Ok` when the stores answer and accept writes and DNS is reachable, else
    /// the reason.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// `/metrics`: the Prometheus text.
    fn metrics(&self) -> String;
    /// A `.well-known` document at `path`: `None` when not served here (404), `Err` when it
    /// cannot be produced now (503).
    fn well_known(&self, path: &str)
    -> impl Future<Output = Option<Result<String, String>>> + Send;
}

/// Which endpoints a listener answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routes {
    /// Health, readiness, metrics and the `.well-known` documents.
    All,
    /// Only the `.well-known` documents (a public listener).
    WellKnown,
}

const MAX_HEAD: usize = 8 * 1024;

/// Serves `listener` until `shutdown` resolves: plain HTTP, or HTTPS with `tls`.
pub async fn serve_http<P: Probe>(
    listener: TcpListener,
    probe: Arc<P>,
    tls: Option<TlsReloader>,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let probe = Arc::clone(&probe);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), async move {
                        match tls {
                            None => handle(stream, peer, probe, routes).await,
                            Some(tls) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                                let stream = acceptor.accept(stream).await?;
                                handle(stream, peer, probe, routes).await
                            }
                        }
                    })
                    .await;
                });
            }
        }
    }
}

async fn handle<P: Probe, S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    _peer: SocketAddr,
    probe: Arc<P>,
    routes: Routes,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD {
            return respond(&mut stream, 431, "text/plain", "request head too large\n").await;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", "method not allowed\n").await;
    }
    let path = path.split('?').next().unwrap_or("");
    if path.starts_with("/.well-known/") {
        return match probe.well_known(path).await {
            Some(Ok(body)) => respond(&mut stream, 200, "application/json", &body).await,
            Some(Err(why)) => {
                tracing::warn!(path, error = %why, "a .well-known document failed");
                respond(&mut stream, 503, "text/plain", "unavailable\n").await
            }
            None => respond(&mut stream, 404, "text/plain", "not found\n").await,
        };
    }
    if routes == Routes::WellKnown {
        return respond(&mut stream, 404, "text/plain", "not found\n").await;
    }
    match path {
        "/healthz" => respond(&mut stream, 200, "text/plain", "ok\n").await,
        "/readyz" => match probe.ready().await {
            Ok(()) => respond(&mut stream, 200, "text/plain", "ready\n").await,
            Err(why) => respond(&mut stream, 503, "text/plain", &format!("{why}\n")).await,
        },
        "/metrics" => {
            let body = probe.metrics();
            respond(&mut stream, 200, "text/plain; version=0.0.4", &body).await
        }
        _ => respond(&mut stream, 404, "text/plain", "not found\n").await,
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
