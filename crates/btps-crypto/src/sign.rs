//! Producing signature objects ([PROTOCOL.md §4.2], §4.5).
//!
//! A signature object is `{"algorithmHash":"sha256","value":…,"fingerprint":…}` in exactly
//! that member order, computed over a signed text from [`btps_types::signing`], never over
//! a re-serialized typed struct.
//!
//! [PROTOCOL.md §4.2]: https://btps.invalid/PROTOCOL.md#42-signature-object-and-algorithm

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use btps_types::json::{Object, Value};
use btps_types::signing::{self, StripSet};
use btps_types::{Identity, Selector};

use crate::encrypt::{self, Randomness};
use crate::error::{CryptoError, Result};
use crate::key::{KeyPair, PublicKey};

/// The only `algorithmHash` value (PROTOCOL.md §4.2).
pub const ALGORITHM_HASH: &str = "sha256";

/// The signature object over `signed_text`: `{algorithmHash, value, fingerprint}`.
///
/// # Errors
///
/// [`CryptoError::Backend`] if the backend fails to sign.
pub fn sign_text(signed_text: &[u8], key: &KeyPair) -> Result<Object> {
    let sig = key.sign_raw(signed_text)?;
    Ok(Object::with_capacity(3)
        .with("algorithmHash", ALGORITHM_HASH)
        .with("value", STANDARD.encode(sig))
        .with("fingerprint", key.public_key().fingerprint()))
}

/// The signature object over `obj` minus the members of `strip`
/// ([`signing::signing_input`]).
///
/// # Errors
///
/// As [`sign_text`].
///
/// # Examples
///
/// ```
/// use btps_crypto::{KeyPair, sign_value, verify_signed_text};
/// use btps_types::{json::Object, signing};
/// let key = KeyPair::generate_ed25519().unwrap();
/// let obj = Object::new().with("a", 1_u32);
/// let sig = sign_value(&obj, signing::TRANSPORTER, &key).unwrap();
/// let keys: Vec<_> = sig.keys().map(|k| k.to_string()).collect();
/// assert_eq!(keys, ["algorithmHash", "value", "fingerprint"]);
/// verify_signed_text(&sig, br#"{"a":1}"#, key.public_key()).unwrap();
/// ```
pub fn sign_value(obj: &Object, strip: StripSet, key: &KeyPair) -> Result<Object> {
    sign_text(&signing::signing_input(obj, strip), key)
}

/// Signs `obj` (minus `strip`) and sets its `signature` member as the **last** member,
/// removing any previous `signature` first (PROTOCOL.md §4.5).
///
/// # Errors
///
/// As [`sign_text`]; `obj` is unchanged on error except that an old `signature` is gone.
pub fn sign_in_place(obj: &mut Object, strip: StripSet, key: &KeyPair) -> Result<()> {
    obj.remove("signature");
    let sig = sign_value(obj, strip, key)?;
    obj.insert("signature", sig);
    Ok(())
}

/// Typestate marker: [`TransporterSigner`] has no identity yet.
#[derive(Clone, Copy, Debug)]
pub struct NeedIdentity;

/// Typestate marker: [`TransporterSigner`] has no selector yet.
#[derive(Clone, Copy, Debug)]
pub struct NeedSelector;

/// Signs transporter artifacts as one identity with one key: it cannot sign before it
/// knows the identity (`from`) and the selector under which the key is published.
///
/// [`sign`](TransporterSigner::sign) sets `from` and `selector` when they are absent and
/// refuses an artifact whose values differ, so the receiver resolves the key that signed.
///
/// # Examples
///
/// ```
/// use btps_crypto::{KeyPair, TransporterSigner, verify};
/// use btps_types::{json::Object, signing, Identity, Selector};
/// let key = KeyPair::generate_ed25519().unwrap();
/// let signer = TransporterSigner::new(&key)
///     .identity(Identity::parse("billing$vendorcorp.test").unwrap())
///     .selector(Selector::parse("btps1").unwrap());
/// let mut artifact = Object::new().with("version", "1.0.0").with("type", "TRUST_REQ");
/// signer.sign(&mut artifact).unwrap();
/// assert_eq!(artifact.get_str("from"), Some("billing$vendorcorp.test"));
/// verify(&artifact, signing::TRANSPORTER, key.public_key()).unwrap();
/// ```
#[derive(Debug)]
pub struct TransporterSigner<'k, I = NeedIdentity, S = NeedSelector> {
    key: &'k KeyPair,
    identity: I,
    selector: S,
}

impl<'k> TransporterSigner<'k> {
    /// A signer using `key`; give it an identity and a selector next.
    pub fn new(key: &'k KeyPair) -> Self {
        Self {
            key,
            identity: NeedIdentity,
            selector: NeedSelector,
        }
    }
}

impl<'k, S> TransporterSigner<'k, NeedIdentity, S> {
    /// The identity that signs (`from`).
    pub fn identity(self, identity: Identity) -> TransporterSigner<'k, Identity, S> {
        TransporterSigner {
            key: self.key,
            identity,
            selector: self.selector,
        }
    }
}

impl<'k, I> TransporterSigner<'k, I, NeedSelector> {
    /// The selector the key is published under (`selector`).
    pub fn selector(self, selector: Selector) -> TransporterSigner<'k, I, Selector> {
        TransporterSigner {
            key: self.key,
            identity: self.identity,
            selector,
        }
    }
}

impl TransporterSigner<'_, Identity, Selector> {
    /// The signing identity.
    pub fn signer_identity(&self) -> &Identity {
        &self.identity
    }

    /// The signing key's selector.
    pub fn signer_selector(&self) -> &Selector {
        &self.selector
    }

    /// Signs a transporter artifact in place: checks or sets `from` and `selector`, then
    /// appends `signature` as the last member (over the artifact minus `signature`).
    ///
    /// # Errors
    ///
    /// [`CryptoError::ArtifactMember`] when `from` is not this identity (compared
    /// case-insensitively) or `selector` is not this selector; signing errors.
    pub fn sign(&self, artifact: &mut Object) -> Result<()> {
        self.bind(artifact)?;
        sign_in_place(artifact, signing::TRANSPORTER, self.key)
    }

    /// `signEncrypt` as this signer: binds `from` and `selector`, then
    /// [`sign_encrypt`](crate::sign_encrypt) (encrypt for `receiver` if given, then sign).
    ///
    /// # Errors
    ///
    /// As [`sign`](Self::sign) and [`sign_encrypt`](crate::sign_encrypt).
    pub fn sign_encrypt<R: Randomness + ?Sized>(
        &self,
        artifact: &mut Object,
        document: &Value,
        receiver: Option<&PublicKey>,
        rng: &R,
    ) -> Result<()> {
        self.bind(artifact)?;
        encrypt::sign_encrypt(artifact, document, receiver, self.key, rng)
    }

    fn bind(&self, artifact: &mut Object) -> Result<()> {
        match artifact.get("from") {
            None => {
                artifact.insert("from", self.identity.as_str());
            }
            Some(v) => {
                let same = v
                    .as_str()
                    .and_then(|s| Identity::parse(s).ok())
                    .is_some_and(|from| from.eq_ignore_case(&self.identity));
                if !same {
                    return Err(CryptoError::ArtifactMember("from"));
                }
            }
        }
        match artifact.get("selector") {
            None => {
                artifact.insert("selector", self.selector.as_str());
            }
            Some(v) if v.as_str() == Some(self.selector.as_str()) => {}
            Some(_) => return Err(CryptoError::ArtifactMember("selector")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::verify;

    fn signer(key: &KeyPair) -> TransporterSigner<'_, Identity, Selector> {
        // Selector first, identity second: both orders reach the signing state.
        TransporterSigner::new(key)
            .selector(Selector::parse("btps1").unwrap())
            .identity(Identity::parse("billing$vendorcorp.test").unwrap())
    }

    #[test]
    fn sign_in_place_replaces_and_appends_last() {
        let key = KeyPair::generate_ed25519().unwrap();
        let mut obj = Object::new()
            .with("signature", "old")
            .with("a", 1_u32)
            .with("b", "x");
        sign_in_place(&mut obj, signing::TRANSPORTER, &key).unwrap();
        let keys: Vec<_> = obj.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["a", "b", "signature"]);
        verify(&obj, signing::TRANSPORTER, key.public_key()).unwrap();
    }

    #[test]
    fn transporter_signer_checks_from_and_selector() {
        let key = KeyPair::generate_ed25519().unwrap();
        let s = signer(&key);
        assert_eq!(s.signer_identity().as_str(), "billing$vendorcorp.test");
        assert_eq!(s.signer_selector().as_str(), "btps1");

        let mut ok = Object::new()
            .with("from", "Billing$VendorCorp.test")
            .with("selector", "btps1");
        s.sign(&mut ok).unwrap();
        assert_eq!(ok.get_str("from"), Some("Billing$VendorCorp.test"));
        verify(&ok, signing::TRANSPORTER, key.public_key()).unwrap();

        let mut other_from = Object::new().with("from", "x$evil.test");
        assert_eq!(
            s.sign(&mut other_from),
            Err(CryptoError::ArtifactMember("from"))
        );
        let mut other_selector = Object::new().with("selector", "btps2");
        assert_eq!(
            s.sign(&mut other_selector),
            Err(CryptoError::ArtifactMember("selector"))
        );
        let mut not_a_string = Object::new().with("from", 1_u32);
        assert!(s.sign(&mut not_a_string).is_err());
    }
}
