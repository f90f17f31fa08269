//! [`ClientError`], its wire-code mapping, the retry verdict, and the crate's [`Result`]
//! alias.

use std::time::Duration;

use btps_crypto::CryptoError;
use btps_dns::DnsError;
use btps_types::{ErrorCode, IdentityError, SchemaError};

/// The crate's result type.
pub type Result<T> = std::result::Result<T, ClientError>;

/// Everything that can go wrong in this crate.
///
/// `Clone + Eq` so that one connection failure can be handed to every request waiting on
/// that connection, and so that tests can compare errors. Foreign errors that are neither
/// (I/O, rustls) are kept as text. Display texts are for logs;
/// [`error_code`](Self::error_code) gives the `BTP_ERROR_*` code and
/// [`is_retryable`](Self::is_retryable) says whether trying again may succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// DNS failed: host record, identity key or device records (temporary or permanent,
    /// see [`DnsError::is_temporary`]).
    #[error("DNS: {0}")]
    Dns(#[from] DnsError),
    /// The TCP connection to the server could not be opened (refused, unreachable, connect
    /// timeout, or the server is in its reconnect backoff).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The server address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The TLS handshake failed for a reason other than the server's certificate (reset,
    /// timeout, protocol error).
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The server address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The server's certificate was refused: untrusted chain, wrong host name, expired,
    /// or not one of the pinned certificates. Not retried: it will not fix itself.
    #[error("certificate of {addr} refused: {reason}")]
    Certificate {
        /// The server address.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
    /// No reply within the request timeout. The connection the request was written on is
    /// no longer used for new requests (PROTOCOL.md §2.4).
    #[error("no reply from {addr} within {after:?}")]
    Timeout {
        /// The server address.
        addr: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection closed (or failed while writing) before the reply arrived.
    #[error("connection to {addr} closed before the reply")]
    ConnectionClosed {
        /// The server address.
        addr: String,
    },
    /// Every connection to the server was busy up to the request timeout, and no further
    /// connection may be opened (`BTP_TRANSPORTER_ERROR_MAX_CONNECTIONS_REACHED`).
    #[error("all {max} connections to {addr} stayed busy")]
    PoolExhausted {
        /// The server address.
        addr: String,
        /// The connection limit.
        max: usize,
    },
    /// A reply line longer than the client's limit (PROTOCOL.md §2.3); the connection is
    /// closed, framing being lost.
    #[error("reply line longer than {limit} bytes")]
    ReplyTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The server broke the protocol: a reply that is not JSON or not a valid response
    /// envelope, a reply whose `reqId` matches no request in flight, and the like. The
    /// connection is closed; no reply is ever handed to another request.
    #[error("protocol violation by the server: {0}")]
    Protocol(String),
    /// The server answered with an error reply (`status.ok` false), or a connection-level
    /// error without `reqId` (408 idle timeout, 413 line too long).
    #[error("rejected by the server: {code} {message}{}", error_code.map(|c| format!(" ({c})")).unwrap_or_default())]
    Rejected {
        /// `status.code`.
        code: u16,
        /// `status.errorCode`, when present and known (Rust servers send it; btps-node
        /// servers do not).
        error_code: Option<ErrorCode>,
        /// `status.message` (for people; never parsed).
        message: String,
    },
    /// A signed reply was required but the reply carries no signature.
    #[error("the reply is not signed, but a signed reply is required")]
    Unsigned,
    /// A reply's signature, or an artifact's signature or delegation, does not verify; or
    /// the reply was signed by an identity that may not speak for what was asked.
    #[error("signature check failed: {0}")]
    BadSignature(CryptoError),
    /// A delegator's or attestor's private key is not the key its identity publishes in
    /// DNS at its selector (PROTOCOL.md §9.4): it refuses to sign.
    #[error("the private key of {identity} is not its DNS key at selector {selector}")]
    KeyNotPublished {
        /// The identity.
        identity: String,
        /// The selector.
        selector: String,
    },
    /// Signing, encryption or decryption failed, or a key is unusable.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// An identity or selector argument is malformed.
    #[error("invalid identity or selector: {0}")]
    Identity(#[from] IdentityError),
    /// An artifact, document or reply document does not have the required shape.
    #[error("invalid artifact: {0}")]
    Invalid(String),
    /// The client configuration cannot be used (no trust anchors, unreadable CA file, …).
    #[error("client configuration: {0}")]
    Config(String),
    /// An HTTPS fetch of a `.well-known` document failed: an error status, too many
    /// redirects, a body over the limit, or a malformed HTTP reply.
    #[error("HTTPS {url}: {reason}")]
    Http {
        /// The URL asked for.
        url: String,
        /// What went wrong.
        reason: String,
        /// Whether asking again later may succeed (5xx, 429).
        temporary: bool,
    },
}

impl From<SchemaError> for ClientError {
    fn from(e: SchemaError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl ClientError {
    /// The `BTP_ERROR_*` code for this error (PROTOCOL.md §12).
    ///
    /// | error | code |
    /// |---|---|
    /// | [`Dns`](Self::Dns) | [`DnsError::error_code`] |
    /// | [`Connect`](Self::Connect), [`Tls`](Self::Tls), [`Certificate`](Self::Certificate) | `BTP_ERROR_CONNECTION_ENDED` |
    /// | [`Timeout`](Self::Timeout) | `BTP_ERROR_TIMEOUT` |
    /// | [`ConnectionClosed`](Self::ConnectionClosed) | `BTP_ERROR_CONNECTION_CLOSED` |
    /// | [`PoolExhausted`](Self::PoolExhausted) | `BTP_TRANSPORTER_ERROR_MAX_CONNECTIONS_REACHED` |
    /// | [`ReplyTooLong`](Self::ReplyTooLong) | `BTP_ERROR_LINE_TOO_LONG` |
    /// | [`Protocol`](Self::Protocol), [`Invalid`](Self::Invalid) | `BTP_ERROR_VALIDATION` |
    /// | [`Rejected`](Self::Rejected) | its `errorCode`; without one, by `code`: 408 `BTP_ERROR_SOCKET_TIMEOUT`, 413 `BTP_ERROR_LINE_TOO_LONG`, 429 `BTP_ERROR_RATE_LIMITER`, 503 `BTP_ERROR_SERVER_BUSY`, else `BTP_UNKNOWN_ERROR` |
    /// | [`Unsigned`](Self::Unsigned) | `BTP_ERROR_SIG_VERIFICATION` |
    /// | [`KeyNotPublished`](Self::KeyNotPublished) | `BTP_ERROR_SIG_MISMATCH` |
    /// | [`BadSignature`](Self::BadSignature), [`Crypto`](Self::Crypto) | [`CryptoError::error_code`] |
    /// | [`Identity`](Self::Identity) | `BTP_ERROR_IDENTITY` |
    /// | [`Config`](Self::Config) | `BTP_UNKNOWN_ERROR` |
    /// | [`Http`](Self::Http) | `BTP_ERROR_CONNECTION_ENDED` when temporary, else `BTP_ERROR_VALIDATION` |
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Dns(e) => e.error_code(),
            Self::Connect { .. } | Self::Tls { .. } | Self::Certificate { .. } => {
                ErrorCode::ConnectionEnded
            }
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::ConnectionClosed { .. } => ErrorCode::ConnectionClosed,
            Self::PoolExhausted { .. } => ErrorCode::MaxConnectionsReached,
            Self::ReplyTooLong { .. } => ErrorCode::LineTooLong,
            Self::Protocol(_) | Self::Invalid(_) => ErrorCode::Validation,
            Self::Rejected {
                code, error_code, ..
            } => error_code.unwrap_or(match code {
                408 => ErrorCode::SocketTimeout,
                413 => ErrorCode::LineTooLong,
                429 => ErrorCode::RateLimiter,
                503 => ErrorCode::ServerBusy,
                _ => ErrorCode::Unknown,
            }),
            Self::Unsigned => ErrorCode::SigVerification,
            Self::KeyNotPublished { .. } => ErrorCode::SigMismatch,
            Self::BadSignature(e) | Self::Crypto(e) => e.error_code(),
            Self::Identity(_) => ErrorCode::Identity,
            Self::Config(_) => ErrorCode::Unknown,
            Self::Http { temporary, .. } => {
                if *temporary {
                    ErrorCode::ConnectionEnded
                } else {
                    ErrorCode::Validation
                }
            }
        }
    }

    /// Whether the same request may succeed if sent again later (PROTOCOL.md §2.6, §11.1):
    ///
    /// * connection failures: [`Connect`](Self::Connect), [`Tls`](Self::Tls),
    ///   [`Timeout`](Self::Timeout), [`ConnectionClosed`](Self::ConnectionClosed),
    ///   [`PoolExhausted`](Self::PoolExhausted);
    /// * temporary DNS failures;
    /// * [`Rejected`](Self::Rejected) with a `status.errorCode` whose class is 408, 429,
    ///   500 or 503, and 429 / 503 without one. An error without `errorCode` otherwise
    ///   comes from a btps-node peer, which answers 500 for every refusal (trust and
    ///   validation included): that is final.
    ///
    /// Everything else (certificate refusals, protocol violations, signatures, 4xx
    /// refusals, `BTP_ERROR_DUPLICATE`) is final. Whether a retryable request is actually
    /// re-sent also depends on the request being idempotent
    /// ([`RequestOptions::idempotent`](crate::RequestOptions::idempotent)).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Tls { .. }
            | Self::Timeout { .. }
            | Self::ConnectionClosed { .. }
            | Self::PoolExhausted { .. } => true,
            Self::Dns(e) => e.is_temporary(),
            Self::Http { temporary, .. } => *temporary,
            Self::Rejected {
                code, error_code, ..
            } => match error_code {
                Some(c) => c.is_retryable(),
                None => matches!(code, 429 | 503),
            },
            _ => false,
        }
    }

    /// Whether the request provably never reached the server, so that sending it again is
    /// safe even when it is not idempotent: no connection could be had.
    pub(crate) fn is_unsent(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Tls { .. } | Self::PoolExhausted { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: u16, error_code: Option<ErrorCode>) -> ClientError {
        ClientError::Rejected {
            code,
            error_code,
            message: "m".into(),
        }
    }

    #[test]
    fn codes_and_retry_verdicts() {
        let closed = ClientError::ConnectionClosed { addr: "h:1".into() };
        assert_eq!(closed.error_code(), ErrorCode::ConnectionClosed);
        assert!(closed.is_retryable() && !closed.is_unsent());
        let connect = ClientError::Connect {
            addr: "h:1".into(),
            reason: "refused".into(),
        };
        assert!(connect.is_retryable() && connect.is_unsent());
        let cert = ClientError::Certificate {
            addr: "h:1".into(),
            reason: "unknown issuer".into(),
        };
        assert!(!cert.is_retryable());

        assert!(rejected(503, Some(ErrorCode::ServerBusy)).is_retryable());
        assert!(rejected(429, None).is_retryable());
        assert!(rejected(503, None).is_retryable());
        // A btps-node peer answers 500 for every refusal: final.
        assert!(!rejected(500, None).is_retryable());
        assert!(rejected(500, Some(ErrorCode::Unknown)).is_retryable());
        assert!(!rejected(409, Some(ErrorCode::Duplicate)).is_retryable());
        assert!(!rejected(401, Some(ErrorCode::SigVerification)).is_retryable());
        assert_eq!(rejected(408, None).error_code(), ErrorCode::SocketTimeout);
        assert_eq!(rejected(413, None).error_code(), ErrorCode::LineTooLong);
        assert_eq!(rejected(500, None).error_code(), ErrorCode::Unknown);
        assert_eq!(
            rejected(403, Some(ErrorCode::TrustBlocked)).error_code(),
            ErrorCode::TrustBlocked
        );
        assert_eq!(
            rejected(409, Some(ErrorCode::Duplicate)).to_string(),
            "rejected by the server: 409 m (BTP_ERROR_DUPLICATE)"
        );
    }
}
