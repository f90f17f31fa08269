//! [`DnsError`], the temporary / permanent verdict, the wire-code mapping, and the crate's
//! [`Result`] alias.

use std::fmt;

use btps_types::ErrorCode;

use crate::resolver::{Absence, LookupError};

/// The crate's result type.
pub type Result<T> = std::result::Result<T, DnsError>;

/// Which BTPS record a lookup was for (PROTOCOL.md §6.1). It decides the wire code of a
/// permanent failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// `_btps.host.<domain>`.
    Host,
    /// `<selector>._btps.identity.<account>.<domain>`.
    IdentityKey,
    /// `_btps.delegation.<account>.<domain>` (§6.6 extension).
    DelegationList,
    /// `<deviceId>._btps.device.<account>.<domain>` (§6.6 extension).
    DeviceKey,
}

impl RecordKind {
    /// A short name for messages: `host`, `identity key`, `delegation list`, `device key`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::IdentityKey => "identity key",
            Self::DelegationList => "delegation list",
            Self::DeviceKey => "device key",
        }
    }

    /// The wire code of a permanent failure (not found, unusable, ambiguous) for this kind:
    /// `BTP_ERROR_RESOLVE_DNS` for host records, `BTP_ERROR_RESOLVE_PUBKEY` for key records,
    /// `BTP_ERROR_DELEGATION_REVOKED` for delegation lists (an unusable list authorises no
    /// device: fail closed).
    pub const fn permanent_code(self) -> ErrorCode {
        match self {
            Self::Host => ErrorCode::ResolveDns,
            Self::IdentityKey | Self::DeviceKey => ErrorCode::ResolvePubkey,
            Self::DelegationList => ErrorCode::DelegationRevoked,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a failure may go away by itself (PROTOCOL.md §6.5), in the spirit of RFC 8601's
/// `temperror` / `permerror`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// Timeout, SERVFAIL, REFUSED, network trouble: retry later (`BTP_ERROR_DNS_UNAVAILABLE`).
    Temporary,
    /// NXDOMAIN, NODATA, no usable record, ambiguous records, revoked device: the answer itself
    /// says no.
    Permanent,
}

/// Why a device of a delegated artifact is not authorised by DNS (PROTOCOL.md §6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedReason {
    /// The delegation list exists but does not list the device.
    NotListed,
    /// The device is listed but its device key record is missing or unusable.
    NoDeviceKey,
    /// The device key published in DNS is not `delegation.agentPubKey`.
    KeyMismatch,
    /// The delegation list record exists but is unusable (no `d=` tag, or several distinct
    /// lists).
    UnusableList,
}

impl fmt::Display for RevokedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotListed => "the device is not in the delegation list",
            Self::NoDeviceKey => "the device has no usable device key record",
            Self::KeyMismatch => "the device key in DNS differs from agentPubKey",
            Self::UnusableList => "the delegation list record is unusable",
        })
    }
}

/// Everything that can go wrong in this crate.
///
/// `Clone + Eq` so that negative answers can be cached and compared. Display texts are for
/// logs and the CLI; the wire only ever sees [`DnsError::error_code`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name does not exist or has no TXT record (or, with DNSSEC `require`, the answer
    /// was not validated as secure). Permanent.
    #[error("{kind} record {name}: not found ({absence})")]
    NotFound {
        /// Which record.
        kind: RecordKind,
        /// The record name.
        name: String,
        /// NXDOMAIN, NODATA, or a DNSSEC verdict.
        absence: Absence,
    },
    /// TXT records exist but none is usable (PROTOCOL.md §6.2 step 3). Permanent.
    #[error("{kind} record {name}: no usable record: {reason}")]
    Unusable {
        /// Which record.
        kind: RecordKind,
        /// The record name.
        name: String,
        /// Why the (first) record is unusable.
        reason: String,
    },
    /// Several distinct usable records where exactly one is allowed (host discovery,
    /// encryption key, delegation list; PROTOCOL.md §6.2). A configuration error. Permanent.
    #[error("{kind} record {name}: {count} distinct usable records where one is expected")]
    Ambiguous {
        /// Which record.
        kind: RecordKind,
        /// The record name.
        name: String,
        /// How many distinct usable records.
        count: usize,
    },
    /// The query failed in a way that may go away: timeout, SERVFAIL, REFUSED, network.
    /// Temporary.
    #[error("{kind} record {name}: DNS temporarily unavailable: {cause}")]
    Unavailable {
        /// Which record.
        kind: RecordKind,
        /// The record name.
        name: String,
        /// What failed.
        cause: LookupError,
    },
    /// A selector, device id or domain that cannot be part of a DNS name. Permanent.
    #[error("{kind} record {name:?}: not a valid DNS name: {reason}")]
    InvalidName {
        /// Which record.
        kind: RecordKind,
        /// The offending name or label.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A delegated device is not (or no longer) authorised by the delegation records of its
    /// identity (PROTOCOL.md §6.6). Permanent.
    #[error("device {device_id} of {identity}: {reason}")]
    DeviceRevoked {
        /// The identity (`from`) whose records were consulted.
        identity: String,
        /// The agent id of the delegation.
        device_id: String,
        /// Why it is refused.
        reason: RevokedReason,
    },
    /// The resolver or a table could not be set up (bad nameserver, unreadable file,
    /// malformed JSON).
    #[error("DNS configuration: {0}")]
    Config(String),
}

impl DnsError {
    /// The error for a lookup of `name` that produced no answer: [`DnsError::InvalidName`]
    /// for a name that cannot be queried, else [`DnsError::Unavailable`].
    pub fn from_lookup(kind: RecordKind, name: &str, cause: LookupError) -> Self {
        match cause {
            LookupError::InvalidName(reason) => Self::InvalidName {
                kind,
                name: name.to_owned(),
                reason,
            },
            cause => Self::Unavailable {
                kind,
                name: name.to_owned(),
                cause,
            },
        }
    }

    /// Temporary or permanent (PROTOCOL.md §6.5).
    pub fn failure(&self) -> Failure {
        match self {
            Self::Unavailable { cause, .. } if cause.is_temporary() => Failure::Temporary,
            _ => Failure::Permanent,
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.failure() == Failure::Temporary
    }

    /// Whether the record does not exist (NXDOMAIN / NODATA / not validated).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// The record kind the error is about, where there is one.
    pub fn kind(&self) -> Option<RecordKind> {
        match self {
            Self::NotFound { kind, .. }
            | Self::Unusable { kind, .. }
            | Self::Ambiguous { kind, .. }
            | Self::Unavailable { kind, .. }
            | Self::InvalidName { kind, .. } => Some(*kind),
            Self::DeviceRevoked { .. } => Some(RecordKind::DelegationList),
            Self::Config(_) => None,
        }
    }

    /// The wire error code (PROTOCOL.md §6.5, §6.6, §12):
    ///
    /// | error | code |
    /// |---|---|
    /// | temporary ([`DnsError::Unavailable`]) | `BTP_ERROR_DNS_UNAVAILABLE` |
    /// | host record missing, unusable or ambiguous | `BTP_ERROR_RESOLVE_DNS` |
    /// | identity or device key missing, unusable or ambiguous | `BTP_ERROR_RESOLVE_PUBKEY` |
    /// | device not authorised, unusable delegation list | `BTP_ERROR_DELEGATION_REVOKED` |
    /// | configuration | `BTP_UNKNOWN_ERROR` |
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Unavailable { cause, kind, .. } => {
                if cause.is_temporary() {
                    ErrorCode::DnsUnavailable
                } else {
                    kind.permanent_code()
                }
            }
            Self::NotFound { kind, .. }
            | Self::Unusable { kind, .. }
            | Self::Ambiguous { kind, .. }
            | Self::InvalidName { kind, .. } => kind.permanent_code(),
            Self::DeviceRevoked { .. } => ErrorCode::DelegationRevoked,
            Self::Config(_) => ErrorCode::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found(kind: RecordKind) -> DnsError {
        DnsError::NotFound {
            kind,
            name: "n".into(),
            absence: Absence::NxDomain,
        }
    }

    #[test]
    fn codes_follow_section_12() {
        assert_eq!(
            not_found(RecordKind::Host).error_code(),
            ErrorCode::ResolveDns
        );
        assert_eq!(
            not_found(RecordKind::IdentityKey).error_code(),
            ErrorCode::ResolvePubkey
        );
        assert_eq!(
            not_found(RecordKind::DeviceKey).error_code(),
            ErrorCode::ResolvePubkey
        );
        let temp = DnsError::Unavailable {
            kind: RecordKind::IdentityKey,
            name: "n".into(),
            cause: LookupError::ServFail,
        };
        assert_eq!(temp.error_code(), ErrorCode::DnsUnavailable);
        assert!(temp.is_temporary());
        assert_eq!(temp.failure(), Failure::Temporary);
        assert!(!not_found(RecordKind::Host).is_temporary());
        let revoked = DnsError::DeviceRevoked {
            identity: "a$b.c".into(),
            device_id: "d".into(),
            reason: RevokedReason::NotListed,
        };
        assert_eq!(revoked.error_code(), ErrorCode::DelegationRevoked);
        assert_eq!(revoked.failure(), Failure::Permanent);
        let bad_name = DnsError::Unavailable {
            kind: RecordKind::Host,
            name: "n".into(),
            cause: LookupError::InvalidName("x".into()),
        };
        assert_eq!(bad_name.failure(), Failure::Permanent);
        assert_eq!(bad_name.error_code(), ErrorCode::ResolveDns);
        assert_eq!(
            DnsError::Config("x".into()).error_code(),
            ErrorCode::Unknown
        );
    }
}
