//! Signed key-rotation proofs (docs/keys.md): the old identity key vouches for the new one.
//!
//! A proof is a JSON object signed like every other BTPS object — the signature is over JS
//! `JSON.stringify` of the object minus `signature` — but by the **old** key:
//!
//! ```json
//! {"version":"1.0.0","type":"BTPS_KEY_ROTATION","identity":"billing$vendorcorp.com",
//!  "oldSelector":"btps1","oldPublicKeyFingerprint":"…","newSelector":"btps2",
//!  "newPublicKey":"<bare base64 SPKI>","newPublicKeyFingerprint":"…",
//!  "issuedAt":"…","validFrom":"…","validUntil":"…",
//!  "signature":{"algorithmHash":"sha256","value":"…","fingerprint":"<old key's>"}}
//! ```
//!
//! Identities publish their proofs at `https://<domain>/.well-known/btp-key-rotation.json` as
//! `{"version":"1.0.0","proofs":[proof, …]}` ([`RotationDocument`]), and a sender may carry
//! the proof of its current key in-band, as the artifact member `keyRotation` (covered by the
//! artifact's own signature, ignored by receivers that do not pin keys).
//!
//! A receiver that pinned key K₀ accepts key Kₙ when a chain of proofs K₀→K₁→…→Kₙ exists in
//! which every proof names the sender, is signed by its old key, and is valid now
//! ([`find_rotation_chain`]).

use btps_types::json::{Object, ParseLimits, Value, parse};
use btps_types::signing::{TRANSPORTER, signing_input};
use btps_types::{Identity, Selector, UnixMillis};

use crate::error::SigFailure;
use crate::key::{KeyPair, KeyPolicy, PublicKey};
use crate::sign::sign_text;
use crate::verify::check;

/// The `type` member of a rotation proof.
pub const ROTATION_PROOF_TYPE: &str = "BTPS_KEY_ROTATION";

/// The artifact member that carries a rotation proof in-band.
pub const IN_BAND_MEMBER: &str = "keyRotation";

/// The longest chain of proofs [`find_rotation_chain`] follows.
pub const MAX_CHAIN: usize = 8;

/// The largest rotation document accepted (bytes).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why a rotation proof or a chain of them was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The proof (or document) does not have the shape of docs/keys.md.
    #[error("malformed rotation proof: {0}")]
    Malformed(&'static str),
    /// The proof's signature by the old key does not verify.
    #[error("rotation proof signature: {0}")]
    Signature(SigFailure),
    /// The proof is not valid yet (`validFrom` in the future).
    #[error("rotation proof is not valid yet")]
    NotYetValid,
    /// The proof's `validUntil` has passed.
    #[error("rotation proof has expired")]
    Expired,
    /// No chain of valid proofs leads from the pinned key to the new one.
    #[error("no rotation proof links the pinned key to the new key")]
    NoChain,
}

/// A parsed rotation proof. The received object is kept as is, so it can be re-published
/// or verified byte-exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct RotationProof {
    object: Object,
    identity: Identity,
    old_selector: Selector,
    old_fingerprint: String,
    new_selector: Selector,
    new_key: PublicKey,
    issued_at: UnixMillis,
    valid_from: UnixMillis,
    valid_until: UnixMillis,
}

/// What a new proof says: see [`RotationProof::create`].
#[derive(Clone, Copy, Debug)]
pub struct RotationTerms<'a> {
    /// The identity whose key rotates.
    pub identity: &'a Identity,
    /// The selector of the old key.
    pub old_selector: &'a Selector,
    /// The selector of the new key.
    pub new_selector: &'a Selector,
    /// The new public key.
    pub new_key: &'a PublicKey,
    /// `issuedAt`.
    pub issued_at: UnixMillis,
    /// `validFrom`.
    pub valid_from: UnixMillis,
    /// `validUntil`.
    pub valid_until: UnixMillis,
}

impl RotationProof {
    /// Builds and signs a proof with `old_key` (the key being replaced).
    ///
    /// # Errors
    ///
    /// [`RotationError::Malformed`] when `valid_until` is not after `valid_from`;
    /// [`RotationError::Signature`] when the backend cannot sign.
    ///
    /// # Examples
    ///
    /// ```
    /// use btps_crypto::{KeyPair, RotationProof, RotationTerms};
    /// use btps_types::{Identity, Selector, UnixMillis};
    /// let old = KeyPair::generate_ed25519().unwrap();
    /// let new = KeyPair::generate_ed25519().unwrap();
    /// let id = Identity::parse("billing$vendorcorp.com").unwrap();
    /// let (s1, s2) = (Selector::parse("btps1").unwrap(), Selector::parse("btps2").unwrap());
    /// let t0 = UnixMillis::from_millis(1_750_000_000_000);
    /// let proof = RotationProof::create(RotationTerms {
    ///     identity: &id, old_selector: &s1, new_selector: &s2, new_key: new.public_key(),
    ///     issued_at: t0, valid_from: t0, valid_until: t0.saturating_add_millis(86_400_000),
    /// }, &old).unwrap();
    /// proof.verify(old.public_key(), t0).unwrap();
    /// assert!(proof.verify(new.public_key(), t0).is_err());
    /// ```
    pub fn create(terms: RotationTerms<'_>, old_key: &KeyPair) -> Result<Self, RotationError> {
        if terms.valid_until <= terms.valid_from {
            return Err(RotationError::Malformed(
                "validUntil is not after validFrom",
            ));
        }
        let mut object = Object::with_capacity(12)
            .with("version", "1.0.0")
            .with("type", ROTATION_PROOF_TYPE)
            .with("identity", terms.identity.as_str())
            .with("oldSelector", terms.old_selector.as_str())
            .with(
                "oldPublicKeyFingerprint",
                old_key.public_key().fingerprint(),
            )
            .with("newSelector", terms.new_selector.as_str())
            .with("newPublicKey", terms.new_key.to_base64_spki())
            .with("newPublicKeyFingerprint", terms.new_key.fingerprint())
            .with("issuedAt", terms.issued_at.to_datetime_string())
            .with("validFrom", terms.valid_from.to_datetime_string())
            .with("validUntil", terms.valid_until.to_datetime_string());
        let signature = sign_text(&signing_input(&object, TRANSPORTER), old_key)
            .map_err(|_| RotationError::Signature(SigFailure::UnusableKey))?;
        object.insert("signature", signature);
        Self::from_object(object, KeyPolicy::DEFAULT)
    }

    /// Checks the shape of a received proof (not its signature: see [`verify`](Self::verify)).
    ///
    /// # Errors
    ///
    /// [`RotationError::Malformed`] naming the first member that is missing or wrong.
    pub fn from_object(object: Object, policy: KeyPolicy) -> Result<Self, RotationError> {
        use RotationError::Malformed;
        let text = |name: &'static str| object.get_str(name).ok_or(Malformed(name));
        let time = |name: &'static str| {
            text(name).and_then(|t| UnixMillis::parse(t).map_err(|_| Malformed(name)))
        };
        if text("type")? != ROTATION_PROOF_TYPE {
            return Err(Malformed("type"));
        }
        text("version")?;
        let identity = Identity::parse(text("identity")?).map_err(|_| Malformed("identity"))?;
        let old_selector =
            Selector::parse(text("oldSelector")?).map_err(|_| Malformed("oldSelector"))?;
        let new_selector =
            Selector::parse(text("newSelector")?).map_err(|_| Malformed("newSelector"))?;
        let old_fingerprint = text("oldPublicKeyFingerprint")?.to_owned();
        let new_key = policy
            .parse_base64_spki(text("newPublicKey")?)
            .map_err(|_| Malformed("newPublicKey"))?;
        if text("newPublicKeyFingerprint")? != new_key.fingerprint() {
            return Err(Malformed("newPublicKeyFingerprint"));
        }
        if new_key.fingerprint() == old_fingerprint {
            return Err(Malformed("newPublicKey"));
        }
        let issued_at = time("issuedAt")?;
        let valid_from = time("validFrom")?;
        let valid_until = time("validUntil")?;
        if valid_until <= valid_from {
            return Err(Malformed("validUntil"));
        }
        let signature = object
            .get_object("signature")
            .ok_or(Malformed("signature"))?;
        if signature.get_str("fingerprint") != Some(old_fingerprint.as_str()) {
            return Err(Malformed("signature"));
        }
        Ok(Self {
            object,
            identity,
            old_selector,
            old_fingerprint,
            new_selector,
            new_key,
            issued_at,
            valid_from,
            valid_until,
        })
    }

    /// Verifies the proof's signature with `old_key` and its validity dates at `now`.
    ///
    /// # Errors
    ///
    /// [`RotationError::Signature`] (wrong key or a tampered proof),
    /// [`RotationError::NotYetValid`], [`RotationError::Expired`].
    pub fn verify(&self, old_key: &PublicKey, now: UnixMillis) -> Result<(), RotationError> {
        if old_key.fingerprint() != self.old_fingerprint {
            return Err(RotationError::Signature(SigFailure::Fingerprint));
        }
        check(
            self.object.get_object("signature"),
            &signing_input(&self.object, TRANSPORTER),
            old_key,
        )
        .map_err(RotationError::Signature)?;
        if now < self.valid_from {
            return Err(RotationError::NotYetValid);
        }
        if now > self.valid_until {
            return Err(RotationError::Expired);
        }
        Ok(())
    }

    /// The proof as received (or created).
    pub fn as_object(&self) -> &Object {
        &self.object
    }

    /// The identity whose key rotated.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The old key's selector.
    pub fn old_selector(&self) -> &Selector {
        &self.old_selector
    }

    /// The old key's fingerprint.
    pub fn old_fingerprint(&self) -> &str {
        &self.old_fingerprint
    }

    /// The new key's selector.
    pub fn new_selector(&self) -> &Selector {
        &self.new_selector
    }

    /// The new key.
    pub fn new_key(&self) -> &PublicKey {
        &self.new_key
    }

    /// `issuedAt`.
    pub fn issued_at(&self) -> UnixMillis {
        self.issued_at
    }

    /// `validFrom`.
    pub fn valid_from(&self) -> UnixMillis {
        self.valid_from
    }

    /// `validUntil`.
    pub fn valid_until(&self) -> UnixMillis {
        self.valid_until
    }
}

/// The document at `/.well-known/btp-key-rotation.json`: `{"version":"1.0.0","proofs":[…]}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RotationDocument {
    /// The proofs that parsed; see [`RotationDocument::parse`].
    pub proofs: Vec<RotationProof>,
}

impl RotationDocument {
    /// Parses a document. Entries that are not well-formed proofs are skipped (one bad entry
    /// must not hide the others); their number is returned with the document.
    ///
    /// # Errors
    ///
    /// [`RotationError::Malformed`] when the text is not JSON, is larger than
    /// [`MAX_DOCUMENT_BYTES`], or has no `proofs` array.
    pub fn parse(bytes: &[u8], policy: KeyPolicy) -> Result<(Self, usize), RotationError> {
        let limits = ParseLimits {
            max_bytes: MAX_DOCUMENT_BYTES,
            ..ParseLimits::DEFAULT
        };
        let parsed = parse(bytes, &limits).map_err(|_| RotationError::Malformed("document"))?;
        let Value::Object(root) = parsed.value else {
            return Err(RotationError::Malformed("document"));
        };
        let Some(Value::Array(items)) = root.get("proofs") else {
            return Err(RotationError::Malformed("proofs"));
        };
        let mut proofs = Vec::with_capacity(items.len());
        let mut skipped = 0;
        for item in items {
            match item
                .as_object()
                .map(|o| RotationProof::from_object(o.clone(), policy))
            {
                Some(Ok(p)) => proofs.push(p),
                _ => skipped += 1,
            }
        }
        Ok((Self { proofs }, skipped))
    }

    /// The document's JSON text (JS serialization, one line).
    pub fn to_json(&self) -> String {
        let proofs: Vec<Value> = self
            .proofs
            .iter()
            .map(|p| Value::Object(p.object.clone()))
            .collect();
        let root = Object::with_capacity(2)
            .with("version", "1.0.0")
            .with("proofs", proofs);
        btps_types::json::object_to_js_string(&root)
    }
}

/// Finds a chain of proofs from `pinned` to the key with fingerprint `new_fingerprint`, for
/// `identity`, every proof signed by the key before it and valid at `now`. Returns the
/// chain, oldest first.
///
/// # Errors
///
/// The most telling failure among the candidates: [`RotationError::Expired`] or
/// [`RotationError::NotYetValid`] when a proof would have linked the keys but is outside its
/// dates, [`RotationError::Signature`] when one claims to but is not signed by the old key,
/// else [`RotationError::NoChain`].
///
/// # Examples
///
/// ```
/// use btps_crypto::{KeyPair, RotationError, RotationProof, RotationTerms, find_rotation_chain};
/// use btps_types::{Identity, Selector, UnixMillis};
/// let k1 = KeyPair::generate_ed25519().unwrap();
/// let k2 = KeyPair::generate_ed25519().unwrap();
/// let id = Identity::parse("billing$vendorcorp.com").unwrap();
/// let (s1, s2) = (Selector::parse("btps1").unwrap(), Selector::parse("btps2").unwrap());
/// let t0 = UnixMillis::from_millis(1_750_000_000_000);
/// let day = 86_400_000;
/// let proof = RotationProof::create(RotationTerms {
///     identity: &id, old_selector: &s1, new_selector: &s2, new_key: k2.public_key(),
///     issued_at: t0, valid_from: t0, valid_until: t0.saturating_add_millis(day),
/// }, &k1).unwrap();
/// let proofs = [proof];
/// let chain = find_rotation_chain(&proofs, &id, k1.public_key(), k2.public_key().fingerprint(), t0).unwrap();
/// assert_eq!(chain.len(), 1);
/// let later = t0.saturating_add_millis(2 * day);
/// assert_eq!(
///     find_rotation_chain(&proofs, &id, k1.public_key(), k2.public_key().fingerprint(), later),
///     Err(RotationError::Expired)
/// );
/// ```
pub fn find_rotation_chain<'p>(
    proofs: &'p [RotationProof],
    identity: &Identity,
    pinned: &PublicKey,
    new_fingerprint: &str,
    now: UnixMillis,
) -> Result<Vec<&'p RotationProof>, RotationError> {
    let mut chain: Vec<&RotationProof> = Vec::new();
    let mut current = pinned;
    let mut worst = RotationError::NoChain;
    'steps: for _ in 0..MAX_CHAIN {
        let mut next = None;
        for proof in proofs.iter().filter(|p| {
            p.identity.eq_ignore_case(identity) && p.old_fingerprint == current.fingerprint()
        }) {
            if chain
                .iter()
                .any(|seen| seen.new_key.fingerprint() == proof.new_key.fingerprint())
                || proof.new_key.fingerprint() == pinned.fingerprint()
            {
                continue; // a cycle
            }
            match proof.verify(current, now) {
                Ok(()) => {
                    // Prefer the proof that reaches the target directly.
                    if proof.new_key.fingerprint() == new_fingerprint {
                        chain.push(proof);
                        return Ok(chain);
                    }
                    next.get_or_insert(proof);
                }
                Err(e) => worst = more_telling(worst, e),
            }
        }
        match next {
            Some(proof) => {
                chain.push(proof);
                current = &proof.new_key;
            }
            None => break 'steps,
        }
    }
    Err(worst)
}

fn more_telling(a: RotationError, b: RotationError) -> RotationError {
    fn rank(e: &RotationError) -> u8 {
        match e {
            RotationError::NoChain => 0,
            RotationError::Malformed(_) => 1,
            RotationError::Signature(_) => 2,
            RotationError::NotYetValid => 3,
            RotationError::Expired => 4,
        }
    }
    if rank(&b) > rank(&a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn t(ms: i64) -> UnixMillis {
        UnixMillis::from_millis(1_750_000_000_000 + ms)
    }

    fn id() -> Identity {
        Identity::parse("billing$vendorcorp.com").unwrap()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    fn proof(old: &KeyPair, new: &KeyPair, from: i64, until: i64) -> RotationProof {
        RotationProof::create(
            RotationTerms {
                identity: &id(),
                old_selector: &sel("btps1"),
                new_selector: &sel("btps2"),
                new_key: new.public_key(),
                issued_at: t(from),
                valid_from: t(from),
                valid_until: t(until),
            },
            old,
        )
        .unwrap()
    }

    #[test]
    fn member_order_and_round_trip_through_a_document() {
        let (k1, k2) = (
            KeyPair::generate_ed25519().unwrap(),
            KeyPair::generate_ed25519().unwrap(),
        );
        let p = proof(&k1, &k2, 0, DAY);
        let keys: Vec<String> = p.as_object().keys().map(|k| k.to_string_lossy()).collect();
        assert_eq!(
            keys,
            [
                "version",
                "type",
                "identity",
                "oldSelector",
                "oldPublicKeyFingerprint",
                "newSelector",
                "newPublicKey",
                "newPublicKeyFingerprint",
                "issuedAt",
                "validFrom",
                "validUntil",
                "signature"
            ]
        );
        let doc = RotationDocument {
            proofs: vec![p.clone()],
        };
        let text = doc.to_json();
        let (back, skipped) = RotationDocument::parse(text.as_bytes(), KeyPolicy::DEFAULT).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(back.proofs, std::slice::from_ref(&p));
        back.proofs[0].verify(k1.public_key(), t(1)).unwrap();
    }

    #[test]
    fn tampering_dates_or_keys_breaks_the_signature() {
        let (k1, k2, k3) = (
            KeyPair::generate_ed25519().unwrap(),
            KeyPair::generate_ed25519().unwrap(),
            KeyPair::generate_ed25519().unwrap(),
        );
        let p = proof(&k1, &k2, 0, DAY);
        let mut o = p.as_object().clone();
        o.insert("validUntil", t(100 * DAY).to_datetime_string());
        let stretched = RotationProof::from_object(o, KeyPolicy::DEFAULT).unwrap();
        assert_eq!(
            stretched.verify(k1.public_key(), t(1)),
            Err(RotationError::Signature(SigFailure::Invalid))
        );
        // Swapping in another new key needs its fingerprint too; both are signed.
        let mut o = p.as_object().clone();
        o.insert("newPublicKey", k3.public_key().to_base64_spki());
        o.insert("newPublicKeyFingerprint", k3.public_key().fingerprint());
        let swapped = RotationProof::from_object(o, KeyPolicy::DEFAULT).unwrap();
        assert!(swapped.verify(k1.public_key(), t(1)).is_err());
        // Signed by the new key instead of the old one.
        let forged = proof(&k3, &k2, 0, DAY);
        assert_eq!(
            forged.verify(k1.public_key(), t(1)),
            Err(RotationError::Signature(SigFailure::Fingerprint))
        );
    }

    #[test]
    fn dates_are_enforced() {
        let (k1, k2) = (
            KeyPair::generate_ed25519().unwrap(),
            KeyPair::generate_ed25519().unwrap(),
        );
        let p = proof(&k1, &k2, DAY, 2 * DAY);
        assert_eq!(
            p.verify(k1.public_key(), t(0)),
            Err(RotationError::NotYetValid)
        );
        p.verify(k1.public_key(), t(DAY)).unwrap();
        p.verify(k1.public_key(), t(2 * DAY)).unwrap();
        assert_eq!(
            p.verify(k1.public_key(), t(2 * DAY + 1)),
            Err(RotationError::Expired)
        );
    }

    #[test]
    fn malformed_proofs_are_named() {
        let (k1, k2) = (
            KeyPair::generate_ed25519().unwrap(),
            KeyPair::generate_ed25519().unwrap(),
        );
        let good = proof(&k1, &k2, 0, DAY).as_object().clone();
        for (member, value) in [
            ("type", Value::from("BTPS_DOC")),
            ("identity", Value::from("not an identity")),
            ("newPublicKey", Value::from("QUJD")),
            ("newPublicKeyFingerprint", Value::from("QUJD")),
            ("validFrom", Value::from("yesterday")),
            ("validUntil", Value::from(t(-DAY).to_datetime_string())),
        ] {
            let mut o = good.clone();
            o.insert(member, value);
            assert!(
                matches!(
                    RotationProof::from_object(o, KeyPolicy::DEFAULT),
                    Err(RotationError::Malformed(_))
                ),
                "{member}"
            );
        }
        let mut o = good.clone();
        o.remove("signature");
        assert_eq!(
            RotationProof::from_object(o, KeyPolicy::DEFAULT),
            Err(RotationError::Malformed("signature"))
        );
        let doc = format!(
            r#"{{"version":"1.0.0","proofs":[{},{{"type":"x"}},7]}}"#,
            btps_types::json::object_to_js_string(&good)
        );
        let (d, skipped) = RotationDocument::parse(doc.as_bytes(), KeyPolicy::DEFAULT).unwrap();
        assert_eq!((d.proofs.len(), skipped), (1, 2));
        assert!(RotationDocument::parse(b"[]", KeyPolicy::DEFAULT).is_err());
        assert!(RotationDocument::parse(b"{\"proofs\":{}}", KeyPolicy::DEFAULT).is_err());
    }

    #[test]
    fn chains_are_followed_and_cycles_and_strangers_ignored() {
        let keys: Vec<KeyPair> = (0..4)
            .map(|_| KeyPair::generate_ed25519().unwrap())
            .collect();
        let other = Identity::parse("mallory$evil.test").unwrap();
        let stranger = RotationProof::create(
            RotationTerms {
                identity: &other,
                old_selector: &sel("a"),
                new_selector: &sel("b"),
                new_key: keys[3].public_key(),
                issued_at: t(0),
                valid_from: t(0),
                valid_until: t(DAY),
            },
            &keys[0],
        )
        .unwrap();
        let proofs = vec![
            stranger,
            proof(&keys[2], &keys[1], 0, DAY), // back-link: a cycle
            proof(&keys[1], &keys[2], 0, DAY),
            proof(&keys[0], &keys[1], 0, DAY),
            proof(&keys[2], &keys[3], 0, DAY),
        ];
        let target = keys[3].public_key().fingerprint();
        let chain =
            find_rotation_chain(&proofs, &id(), keys[0].public_key(), target, t(1)).unwrap();
        let hops: Vec<&str> = chain.iter().map(|p| p.new_key().fingerprint()).collect();
        assert_eq!(
            hops,
            [
                keys[1].public_key().fingerprint(),
                keys[2].public_key().fingerprint(),
                target
            ]
        );
        // Another identity's proof does not count, even when signed by the pinned key.
        assert_eq!(
            find_rotation_chain(&proofs[..1], &id(), keys[0].public_key(), target, t(1)),
            Err(RotationError::NoChain)
        );
        // A broken middle link breaks the chain.
        let gap = [proofs[3].clone(), proofs[4].clone()];
        assert_eq!(
            find_rotation_chain(&gap, &id(), keys[0].public_key(), target, t(1)),
            Err(RotationError::NoChain)
        );
    }
}
