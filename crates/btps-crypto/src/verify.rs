//! Verifying signature objects ([PROTOCOL.md §4.4]).
//!
//! The signed text is always rebuilt from the **received** object with
//! [`btps_types::signing`]; the fingerprint is compared before any RSA work.
//!
//! [PROTOCOL.md §4.4]: https://btps.invalid/PROTOCOL.md#44-verification-order

use std::cell::RefCell;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use btps_types::json::Object;
use btps_types::signing::{self, StripSet};

use crate::error::{CryptoError, Result, SigFailure};
use crate::key::PublicKey;
use crate::sign::ALGORITHM_HASH;

/// Verifies the `signature` member of `obj` over `obj` minus `strip`, with `key`.
///
/// Order (PROTOCOL.md §4.4): shape of the signature object, `algorithmHash == "sha256"`,
/// **fingerprint first** (`signature.fingerprint` must equal [`PublicKey::fingerprint`]
/// exactly), canonical base64 of `value`, then RSASSA-PKCS1-v1_5/SHA-256 (or pure Ed25519
/// for an Ed25519 key) over the signed text.
///
/// # Errors
///
/// [`CryptoError::Signature`]: with [`SigFailure::Fingerprint`] (wire code
/// `BTP_ERROR_SIG_MISMATCH`) or another [`SigFailure`] (`BTP_ERROR_SIG_VERIFICATION`).
///
/// # Examples
///
/// ```
/// use btps_crypto::{KeyPair, sign_in_place, verify, CryptoError, SigFailure};
/// use btps_types::{json::Object, signing::TRANSPORTER};
/// let key = KeyPair::generate_ed25519().unwrap();
/// let mut obj = Object::new().with("to", "finance$buyer.test");
/// sign_in_place(&mut obj, TRANSPORTER, &key).unwrap();
/// verify(&obj, TRANSPORTER, key.public_key()).unwrap();
/// obj.insert("to", "mallory$evil.test");
/// assert_eq!(
///     verify(&obj, TRANSPORTER, key.public_key()),
///     Err(CryptoError::Signature(SigFailure::Invalid))
/// );
/// ```
pub fn verify(obj: &Object, strip: StripSet, key: &PublicKey) -> Result<()> {
    thread_local! {
        // The signed text of the last verification on this thread: its allocation is
        // reused, so verifying allocates nothing per artifact once warm.
        static SIGNED_TEXT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SIGNED_TEXT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let result = verify_with_buffer(obj, strip, key, &mut buf);
            if buf.capacity() > KEEP_SIGNED_TEXT {
                // A large artifact does not keep its memory.
                *buf = Vec::new();
            }
            result
        }
        // Not reentrant in practice; a fresh buffer keeps it correct if it ever is.
        Err(_) => verify_with_buffer(obj, strip, key, &mut Vec::new()),
    })
}

/// Capacity of the per-thread signed-text buffer kept between verifications.
const KEEP_SIGNED_TEXT: usize = 64 * 1024;

/// [`verify`] building the signed text in a caller-owned buffer (cleared first), so a hot
/// loop allocates nothing per artifact.
///
/// # Errors
///
/// As [`verify`].
pub fn verify_with_buffer(
    obj: &Object,
    strip: StripSet,
    key: &PublicKey,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let sig = parts(obj.get_object("signature")).map_err(CryptoError::Signature)?;
    precheck(&sig, key).map_err(CryptoError::Signature)?;
    signing::write_signing_input(buf, obj, strip);
    check_value(&sig, buf, key).map_err(CryptoError::Signature)
}

/// Verifies a signature object (`{algorithmHash, value, fingerprint}`) over an already
/// built signed text, in the order of [`verify`].
///
/// # Errors
///
/// As [`verify`].
pub fn verify_signed_text(signature: &Object, signed_text: &[u8], key: &PublicKey) -> Result<()> {
    check(Some(signature), signed_text, key).map_err(CryptoError::Signature)
}

/// The key among `candidates` whose fingerprint equals `fingerprint` exactly: with several
/// usable records at one DNS name, this is the one to verify with (PROTOCOL.md §6.2).
///
/// # Examples
///
/// ```
/// use btps_crypto::{KeyPair, select_by_fingerprint};
/// let a = KeyPair::generate_ed25519().unwrap().public_key().clone();
/// let b = KeyPair::generate_ed25519().unwrap().public_key().clone();
/// let keys = [a, b];
/// let fp = keys[1].fingerprint().to_owned();
/// assert_eq!(select_by_fingerprint(&keys, &fp), Some(&keys[1]));
/// assert_eq!(select_by_fingerprint(&keys, "nope"), None);
/// ```
pub fn select_by_fingerprint<'a>(
    candidates: &'a [PublicKey],
    fingerprint: &str,
) -> Option<&'a PublicKey> {
    candidates.iter().find(|k| k.fingerprint() == fingerprint)
}

/// `obj.signature.fingerprint`, when present as a string (to pick a key with
/// [`select_by_fingerprint`]).
pub fn signature_fingerprint(obj: &Object) -> Option<&str> {
    obj.get_object("signature")?.get_str("fingerprint")
}

/// The three members of a signature object.
struct SigParts<'a> {
    algorithm_hash: &'a str,
    value: &'a str,
    fingerprint: &'a str,
}

/// Reads a signature object's members (shape only).
fn parts(sig: Option<&Object>) -> std::result::Result<SigParts<'_>, SigFailure> {
    let sig = sig.ok_or(SigFailure::Malformed)?;
    match (
        sig.get_str("algorithmHash"),
        sig.get_str("value"),
        sig.get_str("fingerprint"),
    ) {
        (Some(algorithm_hash), Some(value), Some(fingerprint)) => Ok(SigParts {
            algorithm_hash,
            value,
            fingerprint,
        }),
        _ => Err(SigFailure::Malformed),
    }
}

/// `algorithmHash`, then the fingerprint: the checks that need no signed text.
fn precheck(sig: &SigParts<'_>, key: &PublicKey) -> std::result::Result<(), SigFailure> {
    if sig.algorithm_hash != ALGORITHM_HASH {
        return Err(SigFailure::Algorithm);
    }
    if sig.fingerprint != key.fingerprint() {
        return Err(SigFailure::Fingerprint);
    }
    Ok(())
}

/// Strict base64 of `value`, then the cryptographic check.
fn check_value(
    sig: &SigParts<'_>,
    signed_text: &[u8],
    key: &PublicKey,
) -> std::result::Result<(), SigFailure> {
    let raw = STANDARD
        .decode(sig.value.as_bytes())
        .map_err(|_| SigFailure::Encoding)?;
    key.verify_raw(signed_text, &raw)
        .map_err(|_| SigFailure::Invalid)
}

/// The whole check of one signature object over `signed_text`; the caller maps the
/// failure to its layer's error.
pub(crate) fn check(
    sig: Option<&Object>,
    signed_text: &[u8],
    key: &PublicKey,
) -> std::result::Result<(), SigFailure> {
    let sig = parts(sig)?;
    precheck(&sig, key)?;
    check_value(&sig, signed_text, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyPair;
    use crate::sign::sign_in_place;
    use btps_types::json::Value;
    use btps_types::signing::TRANSPORTER;

    fn signed(key: &KeyPair) -> Object {
        let mut obj = Object::new().with("a", 1_u32).with("b", "two");
        sign_in_place(&mut obj, TRANSPORTER, key).unwrap();
        obj
    }

    fn set_sig_member(obj: &mut Object, member: &str, value: Value) {
        obj.get_mut("signature")
            .and_then(Value::as_object_mut)
            .unwrap()
            .insert(member, value);
    }

    #[test]
    fn failure_reasons_in_order() {
        let key = KeyPair::generate_ed25519().unwrap();
        let other = KeyPair::generate_ed25519().unwrap();
        let pk = key.public_key();
        let fail = |obj: &Object, k: &PublicKey| match verify(obj, TRANSPORTER, k) {
            Err(CryptoError::Signature(f)) => f,
            other => panic!("{other:?}"),
        };

        let good = signed(&key);
        verify(&good, TRANSPORTER, pk).unwrap();
        assert_eq!(fail(&good, other.public_key()), SigFailure::Fingerprint);

        let mut no_sig = good.clone();
        no_sig.remove("signature");
        assert_eq!(fail(&no_sig, pk), SigFailure::Malformed);

        let mut bad_alg = good.clone();
        set_sig_member(&mut bad_alg, "algorithmHash", "sha512".into());
        assert_eq!(fail(&bad_alg, pk), SigFailure::Algorithm);

        // The algorithm is checked before the fingerprint, the fingerprint before base64.
        let mut bad_b64 = good.clone();
        set_sig_member(&mut bad_b64, "value", "not base64!".into());
        assert_eq!(fail(&bad_b64, pk), SigFailure::Encoding);
        assert_eq!(fail(&bad_b64, other.public_key()), SigFailure::Fingerprint);

        let mut non_canonical = good.clone();
        let value = good
            .get_object("signature")
            .and_then(|s| s.get_str("value"))
            .unwrap()
            .trim_end_matches('=')
            .to_owned();
        set_sig_member(&mut non_canonical, "value", value.into());
        assert_eq!(fail(&non_canonical, pk), SigFailure::Encoding);

        let mut tampered = good.clone();
        tampered.insert("b", "three");
        assert_eq!(fail(&tampered, pk), SigFailure::Invalid);
        assert_eq!(
            verify(&tampered, TRANSPORTER, other.public_key())
                .unwrap_err()
                .error_code(),
            btps_types::ErrorCode::SigMismatch
        );
    }

    #[test]
    fn buffer_variant_and_fingerprint_helpers() {
        let key = KeyPair::generate_ed25519().unwrap();
        let obj = signed(&key);
        let mut buf = b"garbage".to_vec();
        verify_with_buffer(&obj, TRANSPORTER, key.public_key(), &mut buf).unwrap();
        assert_eq!(buf, br#"{"a":1,"b":"two"}"#);
        assert_eq!(
            signature_fingerprint(&obj),
            Some(key.public_key().fingerprint())
        );
        let sig = obj.get_object("signature").unwrap();
        verify_signed_text(sig, &buf, key.public_key()).unwrap();
        assert!(verify_signed_text(sig, b"{}", key.public_key()).is_err());
    }
}
