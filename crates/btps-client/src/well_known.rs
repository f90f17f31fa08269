//! Fetching `.well-known` documents over HTTPS: the signed key-rotation proofs a receiver
//! needs when a pinned sender's key changed (docs/keys.md).
//!
//! A deliberately small HTTP/1.1 client: `GET` only, `https` only (redirects too), one
//! request per connection (`Connection: close`), rustls with the same [`TlsTrust`] choices
//! as [`Client`](crate::Client), and hard limits on time, size and redirects
//! ([`WellKnownConfig`]). Bodies may be sent with `Content-Length`, chunked, or until the
//! server closes.

use std::collections::BTreeMap;
use std::time::Duration;

use btps_crypto::{KeyPolicy, RotationDocument};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use crate::config::TlsTrust;
use crate::error::{ClientError, Result};
use crate::tls::{client_config, handshake_error};

/// The path of the key-rotation document.
pub const KEY_ROTATION_PATH: &str = "/.well-known/btp-key-rotation.json";

/// The path of the published trust list.
pub const TRUST_LIST_PATH: &str = "/.well-known/btps-trust.json";

const MAX_HEAD: usize = 16 * 1024;

/// Settings of a [`WellKnownClient`].
#[derive(Clone, Debug)]
pub struct WellKnownConfig {
    /// Which server certificates to trust (default: the system roots).
    pub trust: TlsTrust,
    /// Bound on the whole fetch, redirects included (default 5 s).
    pub timeout: Duration,
    /// Largest body accepted (default 256 KiB).
    pub max_bytes: usize,
    /// Redirects followed (default 3; `https` targets only).
    pub max_redirects: u8,
    /// Per-domain base URLs used instead of `https://<domain>` (lower-case domain →
    /// `https://host[:port]`), for domains whose documents are served elsewhere and for
    /// tests.
    pub overrides: BTreeMap<String, String>,
}

impl Default for WellKnownConfig {
    fn default() -> Self {
        Self {
            trust: TlsTrust::SystemRoots,
            timeout: Duration::from_secs(5),
            max_bytes: btps_crypto::MAX_DOCUMENT_BYTES,
            max_redirects: 3,
            overrides: BTreeMap::new(),
        }
    }
}

/// Fetches `.well-known` documents over HTTPS.
#[derive(Clone)]
pub struct WellKnownClient {
    config: WellKnownConfig,
    connector: TlsConnector,
}

impl std::fmt::Debug for WellKnownClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WellKnownClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WellKnownClient {
    /// A client with `config`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] when the trust anchors cannot be loaded.
    pub fn new(config: WellKnownConfig) -> Result<Self> {
        let tls = client_config(&config.trust)?;
        Ok(Self {
            config,
            connector: TlsConnector::from(tls),
        })
    }

    /// The URL of `path` for `domain`: `https://<domain><path>`, or the override's base.
    pub fn url_for(&self, domain: &str, path: &str) -> String {
        let domain = domain.to_ascii_lowercase();
        match self.config.overrides.get(&domain) {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => format!("https://{domain}{path}"),
        }
    }

    /// The key-rotation proofs `domain` publishes (proofs that do not parse are skipped).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); [`ClientError::Invalid`] when the document is malformed.
    pub async fn rotation_proofs(
        &self,
        domain: &str,
        policy: KeyPolicy,
    ) -> Result<RotationDocument> {
        let url = self.url_for(domain, KEY_ROTATION_PATH);
        let body = self.get(&url).await?;
        let (doc, skipped) = RotationDocument::parse(&body, policy)
            .map_err(|e| ClientError::Invalid(format!("{url}: {e}")))?;
        if skipped > 0 {
            tracing::debug!(%url, skipped, "malformed rotation proofs skipped");
        }
        Ok(doc)
    }

    /// `GET url`: the body of a `200` reply, following up to
    /// [`max_redirects`](WellKnownConfig::max_redirects) `https` redirects, all within
    /// [`timeout`](WellKnownConfig::timeout).
    ///
    /// # Errors
    ///
    /// [`ClientError::Http`] for a non-`https` URL, an error status (temporary for 5xx and
    /// 429), too many redirects, an over-long body or a malformed reply;
    /// [`ClientError::Timeout`], [`ClientError::Connect`], [`ClientError::Tls`],
    /// [`ClientError::Certificate`] as for BTPS connections.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.config.timeout;
        let mut current = url.to_owned();
        for _ in 0..=self.config.max_redirects {
            match timeout_at(deadline, self.get_once(&current)).await {
                Err(_) => {
                    return Err(ClientError::Timeout {
                        addr: current,
                        after: self.config.timeout,
                    });
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Fetched::Body(body))) => return Ok(body),
                Ok(Ok(Fetched::Redirect(next))) => current = next,
            }
        }
        Err(http_error(url, "too many redirects", false))
    }

    async fn get_once(&self, url: &str) -> Result<Fetched> {
        let parsed = url::Url::parse(url).map_err(|e| http_error(url, &e.to_string(), false))?;
        if parsed.scheme() != "https" {
            return Err(http_error(url, "only https URLs are fetched", false));
        }
        let (server_name, host) = match parsed.host() {
            Some(url::Host::Domain(d)) => (
                ServerName::try_from(d.to_owned())
                    .map_err(|e| http_error(url, &e.to_string(), false))?,
                d.to_owned(),
            ),
            Some(url::Host::Ipv4(ip)) => (ServerName::IpAddress(ip.into()), ip.to_string()),
            Some(url::Host::Ipv6(ip)) => (ServerName::IpAddress(ip.into()), format!("[{ip}]")),
            None => return Err(http_error(url, "no host", false)),
        };
        let port = parsed.port_or_known_default().unwrap_or(443);
        let connect_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((connect_host, port))
            .await
            .map_err(|e| ClientError::Connect {
                addr: url.to_owned(),
                reason: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let mut tls = self
            .connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| handshake_error(url, &e))?;
        let host_header = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let path = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: btps\r\n\
             Accept: application/json\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|_| ClientError::ConnectionClosed {
                addr: url.to_owned(),
            })?;
        let limit = MAX_HEAD + self.config.max_bytes;
        let mut raw = Vec::with_capacity(4096);
        let mut chunk = [0_u8; 8192];
        loop {
            let n = match tls.read(&mut chunk).await {
                Ok(n) => n,
                // Servers that close without close_notify: what arrived is what there is.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(_) => {
                    return Err(ClientError::ConnectionClosed {
                        addr: url.to_owned(),
                    });
                }
            };
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
            if raw.len() > limit {
                return Err(http_error(url, "reply larger than the limit", false));
            }
            if let Some(done) = complete(&raw) {
                raw.truncate(done);
                break;
            }
        }
        let reply =
            parse_reply(&raw, self.config.max_bytes).map_err(|r| http_error(url, r, false))?;
        match reply.status {
            200 => Ok(Fetched::Body(reply.body)),
            301 | 302 | 303 | 307 | 308 => {
                let location = reply
                    .location
                    .ok_or_else(|| http_error(url, "redirect without Location", false))?;
                let next = parsed
                    .join(&location)
                    .map_err(|e| http_error(url, &format!("redirect: {e}"), false))?;
                Ok(Fetched::Redirect(next.into()))
            }
            s => Err(http_error(
                url,
                &format!("status {s}"),
                s == 429 || (500..600).contains(&s),
            )),
        }
    }
}

enum Fetched {
    Body(Vec<u8>),
    Redirect(String),
}

fn http_error(url: &str, reason: &str, temporary: bool) -> ClientError {
    ClientError::Http {
        url: url.to_owned(),
        reason: reason.to_owned(),
        temporary,
    }
}

struct Reply {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

struct Head<'a> {
    status: u16,
    headers: Vec<(&'a str, &'a str)>,
    body_start: usize,
}

impl Head<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

fn parse_head(raw: &[u8]) -> std::result::Result<Option<Head<'_>>, &'static str> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if raw.len() > MAX_HEAD {
            Err("reply head too large")
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "reply head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty reply")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err("not an HTTP/1.x reply");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or("malformed status line")?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').ok_or("malformed header")?;
        headers.push((k.trim(), v.trim()));
    }
    Ok(Some(Head {
        status,
        headers,
        body_start: end + 4,
    }))
}

/// When the reply in `raw` is complete before the server closes, its length.
fn complete(raw: &[u8]) -> Option<usize> {
    let head = parse_head(raw).ok()??;
    if head.chunked() {
        let (_, used) = dechunk(&raw[head.body_start..], usize::MAX).ok()??;
        return Some(head.body_start + used);
    }
    let len: usize = head.header("content-length")?.parse().ok()?;
    (raw.len() >= head.body_start + len).then_some(head.body_start + len)
}

fn parse_reply(raw: &[u8], max_body: usize) -> std::result::Result<Reply, &'static str> {
    let head = parse_head(raw)?.ok_or("reply ended inside its head")?;
    let rest = &raw[head.body_start..];
    let body = if head.chunked() {
        dechunk(rest, max_body)?
            .ok_or("chunked body ended early")?
            .0
    } else if let Some(len) = head.header("content-length") {
        let len: usize = len.parse().map_err(|_| "malformed Content-Length")?;
        if len > max_body {
            return Err("body larger than the limit");
        }
        if rest.len() < len {
            return Err("body shorter than Content-Length");
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > max_body {
        return Err("body larger than the limit");
    }
    Ok(Reply {
        status: head.status,
        location: head.header("location").map(str::to_owned),
        body,
    })
}

/// Decodes a chunked body: `Ok(None)` when incomplete, else the body and the bytes used.
fn dechunk(
    mut data: &[u8],
    max_body: usize,
) -> std::result::Result<Option<(Vec<u8>, usize)>, &'static str> {
    let total = data.len();
    let mut body = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "malformed chunk")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "malformed chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            // Trailers end with an empty line.
            let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
                return Ok(None);
            };
            if end == 0 {
                return Ok(Some((body, total - data.len() + 2)));
            }
            data = &data[end + 2..];
            continue;
        }
        if body.len().saturating_add(size) > max_body {
            return Err("body larger than the limit");
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[..size]);
        if &data[size..size + 2] != b"\r\n" {
            return Err("malformed chunk");
        }
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_chunked_and_until_close() {
        let r = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", 10).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(complete(chunked), Some(chunked.len()));
        assert_eq!(parse_reply(chunked, 10).unwrap().body, b"abcde");
        assert_eq!(complete(&chunked[..chunked.len() - 3]), None);
        let r = parse_reply(b"HTTP/1.0 404 Not Found\r\n\r\nnope", 10).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
        let r = parse_reply(b"HTTP/1.1 302 Found\r\nlocation: /x\r\n\r\n", 10).unwrap();
        assert_eq!(r.location.as_deref(), Some("/x"));
    }

    #[test]
    fn limits_and_malformed_replies() {
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 10).is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n\r\n01234567890", 10).is_err());
        let big_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n";
        assert!(parse_reply(big_chunk, 10).is_err());
        assert!(parse_reply(b"SMTP 220 hello\r\n\r\n", 10).is_err());
        assert!(parse_reply(b"HTTP/1.1 2000 OK\r\n\r\n", 10).is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", 10).is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 10).is_err());
        assert!(parse_head(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn overrides_replace_the_origin() {
        let mut config = WellKnownConfig::default();
        config
            .overrides
            .insert("vendorcorp.test".into(), "https://127.0.0.1:8443/".into());
        let trust = TlsTrust::Pinned(vec![[0; 32]]);
        config.trust = trust;
        let c = WellKnownClient::new(config).unwrap();
        assert_eq!(
            c.url_for("VendorCorp.test", KEY_ROTATION_PATH),
            "https://127.0.0.1:8443/.well-known/btp-key-rotation.json"
        );
        assert_eq!(
            c.url_for("buyer.test", TRUST_LIST_PATH),
            "https://buyer.test/.well-known/btps-trust.json"
        );
    }
}
