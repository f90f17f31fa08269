//! The observability listener: a small HTTP/1.1 server for `/healthz`, `/readyz` and the
//! Prometheus `/metrics`. One request per connection (`Connection: close`), bounded request
//! head and time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the endpoints report. Implemented by the server.
pub trait Probe: Send + Sync + 'static {
    /// `/readyz`: `Ok` when the stores answer and DNS is reachable, else the reason.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// `/metrics`: the Prometheus text.
    fn metrics(&self) -> String;
}

const MAX_HEAD: usize = 8 * 1024;

/// Serves `listener` until `shutdown` resolves.
pub async fn serve_http<P: Probe>(
    listener: TcpListener,
    probe: Arc<P>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let probe = Arc::clone(&probe);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), handle(stream, peer, probe)).await;
                });
            }
        }
    }
}

async fn handle<P: Probe>(
    mut stream: TcpStream,
    _peer: SocketAddr,
    probe: Arc<P>,
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
    match path.split('?').next().unwrap_or("") {
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

async fn respond(
    stream: &mut TcpStream,
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
