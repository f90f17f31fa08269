//! The wire error codes (`BTP_ERROR_*`) with their catalogue message and numeric status
//! ([PROTOCOL.md §12], numeric classes §2.6).
//!
//! [PROTOCOL.md §12]: https://btps.invalid/PROTOCOL.md#12-error-code-catalogue

use std::fmt;
use std::str::FromStr;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($wire:literal, $msg:literal, $status:literal), )*) => {
        /// A BTPS error code as it appears in `status.errorCode` on the wire.
        ///
        /// `status()` is the numeric `status.code` a Rust server sends (PROTOCOL.md §2.6);
        /// client-side codes, never sent by a server, report 400.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )* ];

            /// The code string, e.g. `"BTP_ERROR_VALIDATION"`.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $wire, )* }
            }

            /// The catalogue message sent in `status.message`.
            pub const fn message(self) -> &'static str {
                match self { $( Self::$variant => $msg, )* }
            }

            /// The numeric `status.code`.
            pub const fn status(self) -> u16 {
                match self { $( Self::$variant => $status, )* }
            }
        }

        impl FromStr for ErrorCode {
            type Err = UnknownErrorCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $wire => Ok(Self::$variant), )*
                    _ => Err(UnknownErrorCode),
                }
            }
        }
    };
}

error_codes! {
    /// Line is not UTF-8 JSON.
    InvalidJson = ("BTP_ERROR_INVALID_JSON", "Invalid JSON format", 400),
    /// Unclassifiable line, schema violation, conflicting duplicate keys, bad identity.
    Validation = ("BTP_ERROR_VALIDATION", "BTPS artifact validation failed", 400),
    /// An agent action the server does not implement.
    InvalidAction = ("BTP_ERROR_INVALID_ACTION", "Invalid action", 400),
    /// Invalid identity argument (mostly client side).
    Identity = ("BTP_ERROR_IDENTITY", "BTPS identity is expected in the format username$domain.", 400),
    /// Identity lookup miss, or `to` not hosted here.
    IdentityNotFound = ("BTP_ERROR_IDENTITY_NOT_FOUND", "Identity not found", 404),
    /// Host record missing or unusable.
    ResolveDns = ("BTP_ERROR_RESOLVE_DNS", "No valid DNS record found", 404),
    /// No usable key at (identity, selector).
    ResolvePubkey = ("BTP_ERROR_RESOLVE_PUBKEY", "No valid public-key found", 401),
    /// Signature fingerprint differs from the resolved key's.
    SigMismatch = ("BTP_ERROR_SIG_MISMATCH", "fingerprint mis-match", 401),
    /// RSA verification failed.
    SigVerification = ("BTP_ERROR_SIG_VERIFICATION", "Signature verification failed", 401),
    /// Delegator not allowed, attestation missing.
    DelegationInvalid = ("BTP_ERROR_DELEGATION_INVALID", "Delegation is invalid", 403),
    /// Delegation or device signature invalid.
    DelegationSigVerification = ("BTP_ERROR_DELEGATION_SIG_VERIFICATION", "Delegation signature verification failed", 401),
    /// Attestation signature invalid.
    AttestationVerification = ("BTP_ERROR_ATTESTATION_VERIFICATION", "Attestation verification failed", 401),
    /// No trust record.
    TrustNonExistent = ("BTP_ERROR_TRUST_NON_EXISTENT", "BTPS trust record does not exist or has been expired", 403),
    /// Trust inactive, pending, or retry-after not reached.
    TrustNotAllowed = ("BTP_ERROR_TRUST_NOT_ALLOWED", "BTPS trust request is not allowed at this time. Contact receiver", 403),
    /// Sender is blocked.
    TrustBlocked = ("BTP_ERROR_TRUST_BLOCKED", "BTPS trust request is not allowed. Contact receiver", 403),
    /// `TRUST_REQ` while trust is active.
    TrustAlreadyActive = ("BTP_ERROR_TRUST_ALREADY_ACTIVE", "BTPS trust record already exist. Request invalid", 409),
    /// Rate limit exceeded.
    RateLimiter = ("BTP_ERROR_RATE_LIMITER", "Too many requests", 429),
    /// Bad auth or refresh token, identity mismatch, revoked agent on refresh.
    AuthenticationInvalid = ("BTP_ERROR_AUTHENTICATION_INVALID", "Authentication failed", 401),
    /// Unknown encryption algorithm, or an encrypted agent document without a decryptor.
    UnsupportedEncrypt = ("BTP_ERROR_UNSUPPORTED_ENCRYPT", "Unsupported encryption algorithm", 400),
    /// RSA-OAEP unwrap failed (client side).
    DecryptionUnintended = ("BTP_ERROR_DECRYPTION_UNINTENDED", "Decryption failed: Message was not intended for this receiver.", 400),
    /// Idle or line-read timeout.
    SocketTimeout = ("BTP_ERROR_SOCKET_TIMEOUT", "Socket timeout. Connection closed", 408),
    /// Internal failure.
    Unknown = ("BTP_UNKNOWN_ERROR", "Unknown error", 500),
    /// Per-request timeout (client side).
    Timeout = ("BTP_ERROR_TIMEOUT", "Timeout", 400),
    /// Connection closed with requests pending (client side).
    ConnectionClosed = ("BTP_ERROR_CONNECTION_CLOSED", "Connection closed", 400),
    /// Peer ended the connection (client side).
    ConnectionEnded = ("BTP_ERROR_CONNECTION_ENDED", "Connection ended", 400),
    /// Write on a closed socket (client side).
    SocketClosed = ("BTP_ERROR_SOCKET_CLOSED", "Socket already closed", 400),
    /// Reserved by the reference, unused.
    ActionType = ("BTPS_ERROR_ACTION_TYPE", "BTPS action type is not valid", 400),
    /// Connection pool: connection already exists (client side).
    ConnectionAlreadyExists = ("BTP_TRANSPORTER_ERROR_CONNECTION_ALREADY_EXISTS", "Connection already exists", 400),
    /// Connection pool: maximum reached (client side).
    MaxConnectionsReached = ("BTP_TRANSPORTER_ERROR_MAX_CONNECTIONS_REACHED", "Max connections reached", 400),
    /// Line longer than the limit (§2.3).
    LineTooLong = ("BTP_ERROR_LINE_TOO_LONG", "Line exceeds the maximum length", 413),
    /// `issuedAt` outside the freshness window (§10.1).
    StaleArtifact = ("BTP_ERROR_STALE_ARTIFACT", "Artifact issuedAt is outside the accepted window", 400),
    /// Artifact id already received with another signature (§10.2).
    Duplicate = ("BTP_ERROR_DUPLICATE", "Artifact already received", 409),
    /// Trust requires an encrypted document (§7.3).
    TrustPrivacy = ("BTP_ERROR_TRUST_PRIVACY", "Trust requires an encrypted document", 403),
    /// DNS temporarily unavailable (§6.5).
    DnsUnavailable = ("BTP_ERROR_DNS_UNAVAILABLE", "DNS temporarily unavailable", 503),
    /// Request deadline, store unavailable, overload.
    ServerBusy = ("BTP_ERROR_SERVER_BUSY", "Server busy, retry later", 503),
    /// AES-GCM authentication failed or malformed encryption fields (client side).
    DecryptionFailed = ("BTP_ERROR_DECRYPTION_FAILED", "Decryption failed", 400),
    /// Delegated device not listed in DNS (§6.6).
    DelegationRevoked = ("BTP_ERROR_DELEGATION_REVOKED", "Delegated device is not authorized", 403),
}

impl ErrorCode {
    /// Whether a sender should retry after this code (PROTOCOL.md §2.6: 408, 429, 500, 503).
    pub const fn is_retryable(self) -> bool {
        matches!(self.status(), 408 | 429 | 500 | 503)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not a known BTPS error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown BTPS error code")]
pub struct UnknownErrorCode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_classes() {
        for &c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c));
            assert!(!c.message().is_empty());
        }
        assert_eq!(ErrorCode::Unknown.as_str(), "BTP_UNKNOWN_ERROR");
        assert_eq!(
            ErrorCode::SigVerification.message(),
            "Signature verification failed"
        );
        assert_eq!(ErrorCode::IdentityNotFound.status(), 404);
        assert_eq!(ErrorCode::DnsUnavailable.status(), 503);
        assert!(ErrorCode::RateLimiter.is_retryable());
        assert!(!ErrorCode::Duplicate.is_retryable());
        assert!("ENOTFOUND".parse::<ErrorCode>().is_err());
    }
}
