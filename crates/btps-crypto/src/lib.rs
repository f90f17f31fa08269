//! BTPS cryptography: keys, signature objects, `signEncrypt` / `decryptVerify`, and
//! delegation and attestation ([PROTOCOL.md §4, §5, §6.3, §9]), over aws-lc-rs.
//!
//! Byte-exact with the reference implementation: every signed text comes from
//! [`btps_types::signing`] over the **received** JSON value, and every signature object is
//! `{"algorithmHash":"sha256","value":…,"fingerprint":…}` (RSASSA-PKCS1-v1_5 with SHA-256;
//! the fingerprint is base64 SHA-256 of the SPKI DER).
//!
//! * [`PublicKey`] (parsed once, reusable) and [`KeyPair`], with [`KeyPolicy`] for the RSA
//!   size rule;
//! * [`sign_value`], [`sign_in_place`] and the typestate [`TransporterSigner`];
//! * [`verify`] (fingerprint first), [`verify_with_buffer`], [`select_by_fingerprint`];
//! * [`sign_encrypt`], [`decrypt_document`], [`decrypt_verify`], [`decrypt_with_any`];
//! * [`delegate`], [`attest`], [`check_delegation_rules`], [`verify_delegation`];
//! * [`verify_artifact`] over a whole validated artifact with keys from a [`KeySource`]
//!   ([`required_keys`] lists them), and [`verify_response`] for signed replies;
//! * [`RotationProof`], [`RotationDocument`] and [`find_rotation_chain`]: signed key-rotation
//!   proofs for receivers that pin a sender's key (docs/keys.md).
//!
//! The crate is sans-IO: it never reads the clock, files, DNS or sockets. Keys, `issuedAt`
//! strings and randomness ([`Randomness`]) are passed in. Errors are [`CryptoError`];
//! [`CryptoError::error_code`] gives the wire code.
//!
//! [PROTOCOL.md §4, §5, §6.3, §9]: https://btps.invalid/PROTOCOL.md#4-signing
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod artifact;
mod delegation;
mod encrypt;
mod error;
mod key;
mod rotation;
mod sign;
mod verify;

pub use artifact::{
    KeyRef, KeySource, ResolvedKeys, Verified, VerifyError, required_keys, verify_artifact,
    verify_response, verify_response_object,
};
pub use delegation::{
    attest, check_delegation_rules, delegate, verify_delegated, verify_delegation,
};
pub use encrypt::{
    ALGORITHM, Decrypted, Encrypted, IV_LEN, KEY_LEN, Randomness, STANDARD_ENCRYPT, Sealed,
    SystemRandom, TAG_LEN, aes_gcm_open, aes_gcm_seal, decrypt_document, decrypt_verify,
    decrypt_with_any, encrypt_document, encrypt_document_with, oaep_unwrap, oaep_wrap,
    sign_encrypt,
};
pub use error::{CryptoError, DelegationLayer, Result, SigFailure};
pub use key::{KeyPair, KeyPolicy, KeyType, PublicKey};
pub use rotation::{
    IN_BAND_MEMBER, MAX_CHAIN, MAX_DOCUMENT_BYTES, ROTATION_PROOF_TYPE, RotationDocument,
    RotationError, RotationProof, RotationTerms, find_rotation_chain,
};
pub use sign::{
    ALGORITHM_HASH, NeedIdentity, NeedSelector, TransporterSigner, sign_in_place, sign_text,
    sign_value,
};
pub use verify::{
    select_by_fingerprint, signature_fingerprint, verify, verify_signed_text, verify_with_buffer,
};
