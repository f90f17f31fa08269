//! [`CryptoError`], its wire-code mapping, and the crate's [`Result`] alias.

use std::fmt;

use btps_types::ErrorCode;

use crate::key::KeyType;

/// The crate's result type.
pub type Result<T> = std::result::Result<T, CryptoError>;

/// Why one signature object did not verify.
///
/// The same reasons apply to every layer (transporter signature, `S_del`, `S_agent`,
/// `S_att`); the layer decides the wire code (see [`CryptoError::error_code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigFailure {
    /// No `signature` member, or not an object with string `algorithmHash`, `value` and
    /// `fingerprint`.
    Malformed,
    /// `algorithmHash` is not `"sha256"`.
    Algorithm,
    /// `fingerprint` differs from the fingerprint of the key used (PROTOCOL.md §4.4 step 3).
    Fingerprint,
    /// `value` is not canonical standard base64.
    Encoding,
    /// The signature does not verify over the signed text.
    Invalid,
    /// The key that should verify this layer is unusable (an `agentPubKey` that does not
    /// parse, or is outside the key policy).
    UnusableKey,
}

impl fmt::Display for SigFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "signature object missing or malformed",
            Self::Algorithm => "algorithmHash is not sha256",
            Self::Fingerprint => "fingerprint mis-match",
            Self::Encoding => "signature value is not canonical base64",
            Self::Invalid => "signature does not verify",
            Self::UnusableKey => "the verifying key is unusable",
        })
    }
}

/// Which signature of a delegated artifact failed (PROTOCOL.md §9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DelegationLayer {
    /// `S_del`, by the delegator (`delegation.signature`).
    Delegator,
    /// `S_agent`, by the device key `agentPubKey` (the artifact's `signature`).
    Device,
}

impl fmt::Display for DelegationLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Delegator => "delegation",
            Self::Device => "device",
        })
    }
}

/// Everything that can go wrong in this crate.
///
/// Display texts are for logs; the wire only ever sees [`CryptoError::error_code`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A public key that is not usable: bad PEM, base64 or DER, unsupported algorithm.
    #[error("unusable public key: {0}")]
    InvalidKey(&'static str),
    /// An RSA public key outside the accepted modulus sizes (PROTOCOL.md §4.2).
    #[error("RSA key of {bits} bits is outside the accepted sizes")]
    KeySize {
        /// The modulus size in bits.
        bits: u32,
    },
    /// A key type the [`KeyPolicy`](crate::KeyPolicy) refuses (Ed25519 where it is turned
    /// off): treated as "no valid public key", like an RSA key under the minimum size.
    #[error("{0} keys are not accepted by the key policy")]
    KeyTypeRefused(KeyType),
    /// The operation needs another kind of key (RSA-OAEP with an Ed25519 key).
    #[error("this operation needs an {needed} key")]
    WrongKeyType {
        /// The key type the operation needs.
        needed: KeyType,
    },
    /// A private key that could not be loaded.
    #[error("unusable private key: {0}")]
    InvalidPrivateKey(&'static str),
    /// The transporter, agent or reply signature failed.
    #[error("signature verification failed: {0}")]
    Signature(SigFailure),
    /// A delegation signature (`S_del` or `S_agent`) failed.
    #[error("{layer} signature verification failed: {failure}")]
    DelegationSignature {
        /// The layer that failed.
        layer: DelegationLayer,
        /// Why.
        failure: SigFailure,
    },
    /// The attestation signature `S_att` failed.
    #[error("attestation verification failed: {0}")]
    AttestationSignature(SigFailure),
    /// A delegation breaks a rule of PROTOCOL.md §9.3 steps 1–2 or has no delegation object.
    #[error("delegation is invalid: {0}")]
    DelegationInvalid(&'static str),
    /// An attested delegation was verified without the attestor's key.
    #[error("the attestor's public key is needed to verify this delegation")]
    MissingAttestorKey,
    /// The artifact lacks a member the operation needs, or it disagrees with the signer.
    #[error("artifact member {0:?} is missing or does not match the signer")]
    ArtifactMember(&'static str),
    /// `encryption.algorithm` is not `aes-256-gcm`.
    #[error("unsupported encryption algorithm")]
    UnsupportedAlgorithm,
    /// An encryption member or the ciphertext is malformed (PROTOCOL.md §5.3 step 3).
    #[error("malformed encryption: {0}")]
    MalformedEncryption(&'static str),
    /// RSA-OAEP unwrap failed or gave no 32-byte key: not for this receiver (§5.3 step 4).
    #[error("the content key could not be unwrapped: not intended for this receiver")]
    KeyUnwrap,
    /// AES-256-GCM authentication failed, or the plaintext is not UTF-8 (§5.3 step 5).
    #[error("AES-256-GCM decryption failed")]
    Decryption,
    /// The randomness source failed.
    #[error("randomness source failed")]
    Randomness,
    /// The crypto backend failed unexpectedly.
    #[error("crypto backend failure: {0}")]
    Backend(&'static str),
}

impl CryptoError {
    /// The wire error code for this error (PROTOCOL.md §12).
    ///
    /// | error | code |
    /// |---|---|
    /// | [`InvalidKey`](Self::InvalidKey), [`KeySize`](Self::KeySize), [`KeyTypeRefused`](Self::KeyTypeRefused), [`WrongKeyType`](Self::WrongKeyType), [`MissingAttestorKey`](Self::MissingAttestorKey) | `BTP_ERROR_RESOLVE_PUBKEY` |
    /// | [`Signature`](Self::Signature) with [`SigFailure::Fingerprint`] | `BTP_ERROR_SIG_MISMATCH` |
    /// | other [`Signature`](Self::Signature) | `BTP_ERROR_SIG_VERIFICATION` |
    /// | [`DelegationSignature`](Self::DelegationSignature) (fingerprint included) | `BTP_ERROR_DELEGATION_SIG_VERIFICATION` |
    /// | [`AttestationSignature`](Self::AttestationSignature) (fingerprint included) | `BTP_ERROR_ATTESTATION_VERIFICATION` |
    /// | [`DelegationInvalid`](Self::DelegationInvalid) | `BTP_ERROR_DELEGATION_INVALID` |
    /// | [`ArtifactMember`](Self::ArtifactMember) | `BTP_ERROR_VALIDATION` |
    /// | [`UnsupportedAlgorithm`](Self::UnsupportedAlgorithm) | `BTP_ERROR_UNSUPPORTED_ENCRYPT` |
    /// | [`KeyUnwrap`](Self::KeyUnwrap) | `BTP_ERROR_DECRYPTION_UNINTENDED` |
    /// | [`MalformedEncryption`](Self::MalformedEncryption), [`Decryption`](Self::Decryption) | `BTP_ERROR_DECRYPTION_FAILED` |
    /// | [`InvalidPrivateKey`](Self::InvalidPrivateKey), [`Randomness`](Self::Randomness), [`Backend`](Self::Backend) | `BTP_UNKNOWN_ERROR` |
    ///
    /// # Examples
    ///
    /// ```
    /// use btps_crypto::{CryptoError, SigFailure};
    /// use btps_types::ErrorCode;
    /// let e = CryptoError::Signature(SigFailure::Fingerprint);
    /// assert_eq!(e.error_code(), ErrorCode::SigMismatch);
    /// ```
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidKey(_)
            | Self::KeySize { .. }
            | Self::KeyTypeRefused(_)
            | Self::WrongKeyType { .. }
            | Self::MissingAttestorKey => ErrorCode::ResolvePubkey,
            Self::Signature(SigFailure::Fingerprint) => ErrorCode::SigMismatch,
            Self::Signature(_) => ErrorCode::SigVerification,
            Self::DelegationSignature { .. } => ErrorCode::DelegationSigVerification,
            Self::AttestationSignature(_) => ErrorCode::AttestationVerification,
            Self::DelegationInvalid(_) => ErrorCode::DelegationInvalid,
            Self::ArtifactMember(_) => ErrorCode::Validation,
            Self::UnsupportedAlgorithm => ErrorCode::UnsupportedEncrypt,
            Self::KeyUnwrap => ErrorCode::DecryptionUnintended,
            Self::MalformedEncryption(_) | Self::Decryption => ErrorCode::DecryptionFailed,
            Self::InvalidPrivateKey(_) | Self::Randomness | Self::Backend(_) => ErrorCode::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes() {
        use CryptoError as E;
        let cases = [
            (E::InvalidKey("x"), ErrorCode::ResolvePubkey),
            (E::KeySize { bits: 1024 }, ErrorCode::ResolvePubkey),
            (
                E::KeyTypeRefused(KeyType::Ed25519),
                ErrorCode::ResolvePubkey,
            ),
            (
                E::WrongKeyType {
                    needed: KeyType::Rsa,
                },
                ErrorCode::ResolvePubkey,
            ),
            (E::MissingAttestorKey, ErrorCode::ResolvePubkey),
            (
                E::Signature(SigFailure::Fingerprint),
                ErrorCode::SigMismatch,
            ),
            (
                E::Signature(SigFailure::Invalid),
                ErrorCode::SigVerification,
            ),
            (
                E::Signature(SigFailure::Encoding),
                ErrorCode::SigVerification,
            ),
            (
                E::DelegationSignature {
                    layer: DelegationLayer::Device,
                    failure: SigFailure::Fingerprint,
                },
                ErrorCode::DelegationSigVerification,
            ),
            (
                E::AttestationSignature(SigFailure::Fingerprint),
                ErrorCode::AttestationVerification,
            ),
            (E::DelegationInvalid("x"), ErrorCode::DelegationInvalid),
            (E::ArtifactMember("from"), ErrorCode::Validation),
            (E::UnsupportedAlgorithm, ErrorCode::UnsupportedEncrypt),
            (E::KeyUnwrap, ErrorCode::DecryptionUnintended),
            (E::MalformedEncryption("iv"), ErrorCode::DecryptionFailed),
            (E::Decryption, ErrorCode::DecryptionFailed),
            (E::Randomness, ErrorCode::Unknown),
        ];
        for (err, code) in cases {
            assert_eq!(err.error_code(), code, "{err}");
        }
    }

    #[test]
    fn display_is_readable() {
        let e = CryptoError::DelegationSignature {
            layer: DelegationLayer::Delegator,
            failure: SigFailure::Invalid,
        };
        assert_eq!(
            e.to_string(),
            "delegation signature verification failed: signature does not verify"
        );
    }
}
