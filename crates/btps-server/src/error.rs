//! [`ServerError`] and the one mapping from internal failures to wire error codes.

use btps_types::ErrorCode;

/// Why a request or the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The pipeline refused the request with a wire code.
    #[error("{code}: {detail}")]
    Refused {
        /// The wire code.
        code: ErrorCode,
        /// What happened (logs only; never on the wire).
        detail: String,
    },
    /// A store failed (fail closed: `BTP_ERROR_SERVER_BUSY`).
    #[error("store: {0}")]
    Store(#[from] btps_trust::TrustError),
    /// Configuration problem at start.
    #[error("configuration: {0}")]
    Config(String),
    /// TLS setup problem (certificate, key).
    #[error("tls: {0}")]
    Tls(String),
    /// I/O at start or in the delivery log.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl ServerError {
    /// A refusal with `code`.
    pub fn refused(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Refused {
            code,
            detail: detail.into(),
        }
    }

    /// An I/O error with context.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// The wire code of this failure (PROTOCOL.md §12). Store and I/O failures are
    /// `BTP_ERROR_SERVER_BUSY` (retryable, nothing acknowledged); an invalid cursor is
    /// `BTP_ERROR_VALIDATION`.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Refused { code, .. } => *code,
            Self::Store(btps_trust::TrustError::InvalidCursor) => ErrorCode::Validation,
            Self::Store(btps_trust::TrustError::InvalidRecord(_)) => ErrorCode::Validation,
            Self::Store(_) | Self::Io { .. } => ErrorCode::ServerBusy,
            Self::Config(_) | Self::Tls(_) => ErrorCode::Unknown,
        }
    }
}

impl From<btps_crypto::VerifyError> for ServerError {
    fn from(e: btps_crypto::VerifyError) -> Self {
        Self::refused(e.error_code(), e.to_string())
    }
}

impl From<btps_crypto::CryptoError> for ServerError {
    fn from(e: btps_crypto::CryptoError) -> Self {
        Self::refused(e.error_code(), e.to_string())
    }
}

impl From<btps_dns::DnsError> for ServerError {
    fn from(e: btps_dns::DnsError) -> Self {
        Self::refused(e.error_code(), e.to_string())
    }
}

/// `Result` with [`ServerError`].
pub type Result<T, E = ServerError> = std::result::Result<T, E>;
