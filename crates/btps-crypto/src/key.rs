//! Public keys and key pairs ([PROTOCOL.md §4.2], §6.1, §6.3).
//!
//! A [`PublicKey`] is parsed once (strict DER, algorithm from the SPKI OID, RSA size policy)
//! and keeps the backend's parsed verifier and its fingerprint, so verifying many artifacts
//! with one key costs no re-parsing. A [`KeyPair`] holds the private key in the forms the
//! backend needs for signing and for RSA-OAEP decryption.
//!
//! [PROTOCOL.md §4.2]: https://btps.invalid/PROTOCOL.md#42-signature-object-and-algorithm

mod der;
mod pem;

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{self as lc_sig, KeyPair as _, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{CryptoError, Result};

/// The key algorithm, taken from the SubjectPublicKeyInfo (PROTOCOL.md §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// RSA (`rsaEncryption`); signatures are RSASSA-PKCS1-v1_5 with SHA-256. Interoperable.
    Rsa,
    /// Ed25519; signatures are pure Ed25519 over the same signed text. An opt-in extension
    /// between Rust peers only: btps-node can neither produce nor verify them.
    Ed25519,
}

impl KeyType {
    /// The DNS `k=` value: `"rsa"` or `"ed25519"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

impl std::str::FromStr for KeyType {
    type Err = CryptoError;

    /// Parses a DNS `k=` value (`rsa` or `ed25519`, ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("rsa") {
            Ok(Self::Rsa)
        } else if s.eq_ignore_ascii_case("ed25519") {
            Ok(Self::Ed25519)
        } else {
            Err(CryptoError::InvalidKey("key type is not rsa or ed25519"))
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which public keys are accepted (PROTOCOL.md §4.2, §6.3).
///
/// The default accepts RSA moduli of 2048 to 8192 bits and Ed25519. **Deviation from
/// btps-node**, which accepts RSA-1024: smaller keys count as "no valid public key"
/// (`BTP_ERROR_RESOLVE_PUBKEY`) unless [`KeyPolicy::allowing_rsa_1024`] is used. Ed25519 is
/// an opt-in extension between Rust peers (btps-node can neither produce nor verify it);
/// [`KeyPolicy::with_ed25519`]`(false)` refuses those keys the same way
/// ([`CryptoError::KeyTypeRefused`]).
///
/// # Examples
///
/// ```
/// use btps_crypto::{CryptoError, KeyPair, KeyPolicy, KeyType};
/// assert_eq!(KeyPolicy::DEFAULT.min_rsa_bits(), 2048);
/// assert_eq!(KeyPolicy::DEFAULT.allowing_rsa_1024().min_rsa_bits(), 1024);
/// let ed = KeyPair::generate_ed25519().unwrap();
/// KeyPolicy::DEFAULT.check(ed.public_key()).unwrap();
/// let rsa_only = KeyPolicy::DEFAULT.with_ed25519(false);
/// assert_eq!(
///     rsa_only.check(ed.public_key()),
///     Err(CryptoError::KeyTypeRefused(KeyType::Ed25519))
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    min_rsa_bits: u32,
    ed25519: bool,
}

impl KeyPolicy {
    /// RSA 2048–8192 bits, Ed25519.
    pub const DEFAULT: Self = Self {
        min_rsa_bits: 2048,
        ed25519: true,
    };
    /// The largest RSA modulus accepted, in bits.
    pub const MAX_RSA_BITS: u32 = 8192;

    /// This policy, also accepting RSA moduli from 1024 bits. For tests and explicitly
    /// configured legacy peers only: RSA-1024 is not a safe signature key.
    #[must_use]
    pub const fn allowing_rsa_1024(self) -> Self {
        Self {
            min_rsa_bits: 1024,
            ..self
        }
    }

    /// This policy, accepting Ed25519 keys or not (RSA only).
    #[must_use]
    pub const fn with_ed25519(self, accept: bool) -> Self {
        Self {
            ed25519: accept,
            ..self
        }
    }

    /// The smallest RSA modulus accepted, in bits.
    pub const fn min_rsa_bits(self) -> u32 {
        self.min_rsa_bits
    }

    /// Whether Ed25519 keys are accepted.
    pub const fn accepts_ed25519(self) -> bool {
        self.ed25519
    }

    /// Checks an already parsed key against this policy (a key parsed under another
    /// policy, for instance a stored agent key after the policy changed).
    ///
    /// # Errors
    ///
    /// [`CryptoError::KeySize`] for an RSA modulus outside the policy,
    /// [`CryptoError::KeyTypeRefused`] for an Ed25519 key the policy refuses.
    pub fn check(self, key: &PublicKey) -> Result<()> {
        self.check_type(key.key_type, key.bits)
    }

    fn check_type(self, key_type: KeyType, bits: u32) -> Result<()> {
        match key_type {
            KeyType::Rsa if bits < self.min_rsa_bits || bits > Self::MAX_RSA_BITS => {
                Err(CryptoError::KeySize { bits })
            }
            KeyType::Ed25519 if !self.ed25519 => Err(CryptoError::KeyTypeRefused(key_type)),
            _ => Ok(()),
        }
    }

    /// Parses a DER SubjectPublicKeyInfo under this policy.
    ///
    /// # Errors
    ///
    /// [`CryptoError::InvalidKey`] for malformed DER (trailing data included), an algorithm
    /// other than rsaEncryption (with NULL parameters) or Ed25519, or a key the backend
    /// rejects; [`CryptoError::KeySize`] for an RSA modulus outside the policy;
    /// [`CryptoError::KeyTypeRefused`] for an Ed25519 key the policy refuses.
    pub fn parse_spki_der(self, der: &[u8]) -> Result<PublicKey> {
        PublicKey::parse(der, self)
    }

    /// Parses a PEM public key under this policy: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1
    /// (`BEGIN RSA PUBLIC KEY`), with or without a trailing newline.
    ///
    /// # Errors
    ///
    /// As [`parse_spki_der`](Self::parse_spki_der), plus [`CryptoError::InvalidKey`] for
    /// malformed PEM or another PEM label.
    pub fn parse_pem(self, text: &str) -> Result<PublicKey> {
        let (label, der) = pem::decode(text).map_err(CryptoError::InvalidKey)?;
        match label {
            "PUBLIC KEY" => self.parse_spki_der(&der),
            "RSA PUBLIC KEY" => {
                // Check the PKCS#1 structure is one complete element before wrapping it.
                let mut r = der::Reader::new(&der);
                r.sequence().map_err(CryptoError::InvalidKey)?;
                r.finish().map_err(CryptoError::InvalidKey)?;
                self.parse_spki_der(&der::spki_from_pkcs1(&der))
            }
            _ => Err(CryptoError::InvalidKey("PEM label is not a public key")),
        }
    }

    /// Parses the standard-base64 SPKI DER of a DNS `p=` value under this policy.
    ///
    /// # Errors
    ///
    /// As [`parse_spki_der`](Self::parse_spki_der), plus [`CryptoError::InvalidKey`] when
    /// the text is not canonical standard base64.
    pub fn parse_base64_spki(self, b64: &str) -> Result<PublicKey> {
        let der = STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| CryptoError::InvalidKey("p= value is not canonical base64"))?;
        self.parse_spki_der(&der)
    }
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A parsed public key: RSA or Ed25519, with its fingerprint.
///
/// Parse it once (from DNS, PEM or DER) and reuse it: it holds the backend's parsed
/// verifier. Two keys are equal when their SPKI DER bytes are.
///
/// # Examples
///
/// ```
/// use btps_crypto::{KeyPair, KeyType, PublicKey};
/// let pair = KeyPair::generate_ed25519().unwrap();
/// let key = PublicKey::from_pem(&pair.public_key().to_pem()).unwrap();
/// assert_eq!(key.key_type(), KeyType::Ed25519);
/// assert_eq!(key.fingerprint().len(), 44);
/// assert_eq!(&key, pair.public_key());
/// ```
#[derive(Clone)]
pub struct PublicKey {
    key_type: KeyType,
    bits: u32,
    fingerprint: String,
    /// Holds the SPKI DER it was parsed from (`AsRef<[u8]>`).
    verifier: ParsedPublicKey,
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo with the [default policy](KeyPolicy::DEFAULT).
    ///
    /// # Errors
    ///
    /// See [`KeyPolicy::parse_spki_der`].
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        KeyPolicy::DEFAULT.parse_spki_der(der)
    }

    /// Parses a PEM public key (SPKI or PKCS#1) with the [default policy](KeyPolicy::DEFAULT).
    ///
    /// # Errors
    ///
    /// See [`KeyPolicy::parse_pem`].
    pub fn from_pem(text: &str) -> Result<Self> {
        KeyPolicy::DEFAULT.parse_pem(text)
    }

    /// Parses the base64 SPKI of a DNS `p=` value with the [default policy](KeyPolicy::DEFAULT).
    ///
    /// # Errors
    ///
    /// See [`KeyPolicy::parse_base64_spki`].
    pub fn from_base64_spki(b64: &str) -> Result<Self> {
        KeyPolicy::DEFAULT.parse_base64_spki(b64)
    }

    fn parse(der: &[u8], policy: KeyPolicy) -> Result<Self> {
        let (key_type, bits) = parse_spki(der).map_err(CryptoError::InvalidKey)?;
        policy.check_type(key_type, bits)?;
        let algorithm: &'static dyn lc_sig::VerificationAlgorithm = match key_type {
            KeyType::Rsa => {
                if bits < 2048 {
                    &lc_sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
                } else {
                    &lc_sig::RSA_PKCS1_2048_8192_SHA256
                }
            }
            KeyType::Ed25519 => &lc_sig::ED25519,
        };
        let verifier = ParsedPublicKey::new(algorithm, der)
            .map_err(|_| CryptoError::InvalidKey("key rejected by the crypto backend"))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        Ok(Self {
            key_type,
            bits,
            fingerprint: STANDARD.encode(digest.as_ref()),
            verifier,
        })
    }

    /// The key algorithm.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key size in bits (the RSA modulus size; 256 for Ed25519).
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        self.verifier.as_ref()
    }

    /// Standard base64 of SHA-256 over the SPKI DER (44 characters): the value a
    /// `signature.fingerprint` made with this key carries (PROTOCOL.md §4.2).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The standard base64 of the SPKI DER, as published in a DNS `p=` value.
    pub fn to_base64_spki(&self) -> String {
        STANDARD.encode(self.spki_der())
    }

    /// The PEM form of PROTOCOL.md §6.1: `-----BEGIN PUBLIC KEY-----`, the base64 in
    /// 64-character lines, `-----END PUBLIC KEY-----`, joined by LF, **no** trailing LF.
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", self.spki_der())
    }

    /// [`to_pem`](Self::to_pem) followed by one LF: the form Node's
    /// `KeyObject.export({type: "spki", format: "pem"})` writes, found in btps-node's
    /// `delegation.agentPubKey`.
    pub fn to_pem_with_newline(&self) -> String {
        let mut pem = self.to_pem();
        pem.push('\n');
        pem
    }

    /// Verifies a raw signature over `message`: RSASSA-PKCS1-v1_5 with SHA-256 for RSA keys,
    /// pure Ed25519 for Ed25519 keys. No fingerprint check; see [`crate::verify`] for
    /// signature objects.
    ///
    /// # Errors
    ///
    /// [`CryptoError::Signature`] with [`SigFailure::Invalid`](crate::SigFailure::Invalid).
    pub fn verify_raw(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        self.verifier
            .verify_sig(message, signature)
            .map_err(|_| CryptoError::Signature(crate::SigFailure::Invalid))
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der() == other.spki_der()
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_type", &self.key_type)
            .field("bits", &self.bits)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Strictly parses a SubjectPublicKeyInfo: returns the key type and size in bits.
fn parse_spki(der: &[u8]) -> std::result::Result<(KeyType, u32), &'static str> {
    let mut outer = der::Reader::new(der);
    let mut spki = outer.sequence()?;
    outer.finish()?;
    let (oid, params) = der::algorithm_identifier(&mut spki)?;
    let bit_string = spki.expect(der::BIT_STRING)?;
    spki.finish()?;
    let Some((0, key)) = bit_string.split_first() else {
        return Err("SPKI key BIT STRING has unused bits");
    };
    if oid == der::OID_RSA_ENCRYPTION {
        if params != Some((der::NULL, &[])) {
            return Err("rsaEncryption needs NULL parameters");
        }
        let mut outer = der::Reader::new(key);
        let mut rsa = outer.sequence()?;
        outer.finish()?;
        let modulus = rsa.positive_integer()?;
        let exponent = rsa.positive_integer()?;
        rsa.finish()?;
        if exponent.is_empty() || exponent.last().is_some_and(|b| b & 1 == 0) {
            return Err("RSA public exponent must be odd");
        }
        Ok((KeyType::Rsa, der::bit_length(modulus)))
    } else if oid == der::OID_ED25519 {
        if params.is_some() {
            return Err("Ed25519 takes no parameters");
        }
        if key.len() != 32 {
            return Err("Ed25519 public key is not 32 bytes");
        }
        Ok((KeyType::Ed25519, 256))
    } else {
        Err("unsupported key algorithm (RSA and Ed25519 only)")
    }
}

enum Private {
    Rsa {
        signer: lc_sig::RsaKeyPair,
        decrypter: OaepPrivateDecryptingKey,
    },
    Ed25519(lc_sig::Ed25519KeyPair),
}

/// A private key and its [`PublicKey`]: RSA (2048–8192 bits) or Ed25519.
///
/// RSA key pairs sign (RSASSA-PKCS1-v1_5, SHA-256) and unwrap RSA-OAEP content keys;
/// Ed25519 key pairs only sign. `Debug` shows the public half only.
///
/// # Examples
///
/// ```
/// use btps_crypto::KeyPair;
/// let pair = KeyPair::generate_ed25519().unwrap();
/// let again = KeyPair::from_pem(&pair.to_pkcs8_pem().unwrap()).unwrap();
/// assert_eq!(again.public_key(), pair.public_key());
/// assert!(!format!("{pair:?}").contains("PRIVATE"));
/// ```
pub struct KeyPair {
    private: Private,
    public: PublicKey,
}

impl KeyPair {
    /// Loads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or Ed25519) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`). Encrypted keys are not supported.
    ///
    /// # Errors
    ///
    /// [`CryptoError::InvalidPrivateKey`] for malformed PEM or DER, another label, an
    /// unsupported algorithm, or a key the backend rejects (RSA outside 2048–8192 bits).
    pub fn from_pem(text: &str) -> Result<Self> {
        let (label, der) = pem::decode(text).map_err(CryptoError::InvalidPrivateKey)?;
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "RSA PRIVATE KEY" => Self::from_pkcs8_der(&der::pkcs8_from_pkcs1(&der)),
            _ => Err(CryptoError::InvalidPrivateKey(
                "PEM label is not an unencrypted private key",
            )),
        }
    }

    /// Loads an unencrypted PKCS#8 DER private key (v1 or v2), RSA or Ed25519.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](Self::from_pem).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let oid = der::pkcs8_algorithm(der).map_err(CryptoError::InvalidPrivateKey)?;
        if oid == der::OID_RSA_ENCRYPTION {
            let rejected = |_| CryptoError::InvalidPrivateKey("RSA key rejected by the backend");
            let signer = lc_sig::RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
            let decrypter = PrivateDecryptingKey::from_pkcs8(der)
                .map_err(rejected)
                .and_then(|k| {
                    OaepPrivateDecryptingKey::new(k)
                        .map_err(|_| CryptoError::Backend("RSA-OAEP key setup failed"))
                })?;
            let spki = signer
                .public_key()
                .as_der()
                .map_err(|_| CryptoError::Backend("SPKI encoding failed"))?;
            let public = PublicKey::from_spki_der(spki.as_ref())?;
            Ok(Self {
                private: Private::Rsa { signer, decrypter },
                public,
            })
        } else if oid == der::OID_ED25519 {
            let pair = lc_sig::Ed25519KeyPair::from_pkcs8(der).map_err(|_| {
                CryptoError::InvalidPrivateKey("Ed25519 key rejected by the backend")
            })?;
            Self::from_ed25519(pair)
        } else {
            Err(CryptoError::InvalidPrivateKey(
                "unsupported private key algorithm (RSA and Ed25519 only)",
            ))
        }
    }

    fn from_ed25519(pair: lc_sig::Ed25519KeyPair) -> Result<Self> {
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Backend("SPKI encoding failed"))?;
        let public = PublicKey::from_spki_der(spki.as_ref())?;
        Ok(Self {
            private: Private::Ed25519(pair),
            public,
        })
    }

    /// Generates a fresh RSA-2048 key pair (exponent 65537) from the system's CSPRNG, the
    /// default key of PROTOCOL.md §4.2.
    ///
    /// # Errors
    ///
    /// [`CryptoError::Backend`] if generation fails.
    pub fn generate_rsa2048() -> Result<Self> {
        Self::generate_rsa(2048)
    }

    /// Generates a fresh RSA key pair of `bits` (2048, 3072, 4096 or 8192; exponent 65537)
    /// from the system's CSPRNG.
    ///
    /// # Errors
    ///
    /// [`CryptoError::KeySize`] for another size (RSA under 2048 bits is never generated);
    /// [`CryptoError::Backend`] if generation fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use btps_crypto::{CryptoError, KeyPair};
    /// assert_eq!(
    ///     KeyPair::generate_rsa(1024).unwrap_err(),
    ///     CryptoError::KeySize { bits: 1024 }
    /// );
    /// ```
    pub fn generate_rsa(bits: u32) -> Result<Self> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            _ => return Err(CryptoError::KeySize { bits }),
        };
        let pair = lc_sig::RsaKeyPair::generate(size)
            .map_err(|_| CryptoError::Backend("RSA key generation failed"))?;
        let pkcs8 = pair
            .as_der()
            .map_err(|_| CryptoError::Backend("PKCS#8 encoding failed"))?;
        Self::from_pkcs8_der(pkcs8.as_ref())
    }

    /// Generates a fresh key pair of `key_type`: RSA-2048 (the default of PROTOCOL.md §4.2)
    /// or Ed25519 (opt-in, between Rust peers only, §6.3).
    ///
    /// # Errors
    ///
    /// [`CryptoError::Backend`] if generation fails.
    pub fn generate(key_type: KeyType) -> Result<Self> {
        match key_type {
            KeyType::Rsa => Self::generate_rsa2048(),
            KeyType::Ed25519 => Self::generate_ed25519(),
        }
    }

    /// Generates a fresh Ed25519 key pair from the system's CSPRNG (opt-in extension between
    /// Rust peers, PROTOCOL.md §6.3).
    ///
    /// # Errors
    ///
    /// [`CryptoError::Backend`] if generation fails.
    pub fn generate_ed25519() -> Result<Self> {
        let pair = lc_sig::Ed25519KeyPair::generate()
            .map_err(|_| CryptoError::Backend("Ed25519 key generation failed"))?;
        Self::from_ed25519(pair)
    }

    /// The private key as PKCS#8 v1 PEM (`BEGIN PRIVATE KEY`, 64-character lines, ending in
    /// LF as key files conventionally do).
    ///
    /// # Errors
    ///
    /// [`CryptoError::Backend`] if the backend cannot encode the key.
    pub fn to_pkcs8_pem(&self) -> Result<String> {
        let failed = |_| CryptoError::Backend("PKCS#8 encoding failed");
        let mut pem = match &self.private {
            Private::Rsa { signer, .. } => {
                let der = signer.as_der().map_err(failed)?;
                pem::encode("PRIVATE KEY", der.as_ref())
            }
            Private::Ed25519(pair) => {
                let der = pair.to_pkcs8v1().map_err(failed)?;
                pem::encode("PRIVATE KEY", der.as_ref())
            }
        };
        pem.push('\n');
        Ok(pem)
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key algorithm.
    pub fn key_type(&self) -> KeyType {
        self.public.key_type
    }

    /// Signs `message`: RSASSA-PKCS1-v1_5 with SHA-256 (deterministic) for RSA, pure
    /// Ed25519 for Ed25519. Returns the raw signature bytes.
    ///
    /// # Errors
    ///
    /// [`CryptoError::Backend`] if the backend fails.
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>> {
        match &self.private {
            Private::Rsa { signer, .. } => {
                let mut sig = vec![0; signer.public_modulus_len()];
                // aws-lc-rs ignores the RNG for PKCS#1 v1.5 (deterministic padding).
                let rng = aws_lc_rs::rand::SystemRandom::new();
                signer
                    .sign(&lc_sig::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| CryptoError::Backend("RSA signing failed"))?;
                Ok(sig)
            }
            Private::Ed25519(pair) => pair
                .try_sign(message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CryptoError::Backend("Ed25519 signing failed")),
        }
    }

    /// Checks that this private key belongs to `published` (for example the key in DNS) by
    /// signing and verifying the ASCII text `btps-key-validation` (PROTOCOL.md §9.4).
    ///
    /// # Errors
    ///
    /// [`CryptoError::Signature`] with [`SigFailure::Fingerprint`](crate::SigFailure) when the
    /// keys differ, or the signing error.
    pub fn check_matches(&self, published: &PublicKey) -> Result<()> {
        const TEXT: &[u8] = b"btps-key-validation";
        let sig = self.sign_raw(TEXT)?;
        published
            .verify_raw(TEXT, &sig)
            .map_err(|_| CryptoError::Signature(crate::SigFailure::Fingerprint))
    }

    /// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) decryption of `wrapped`.
    pub(crate) fn oaep_decrypt(&self, wrapped: &[u8]) -> Result<Vec<u8>> {
        let Private::Rsa { decrypter, .. } = &self.private else {
            return Err(CryptoError::WrongKeyType {
                needed: KeyType::Rsa,
            });
        };
        let mut out = vec![0; decrypter.min_output_size()];
        let len = decrypter
            .decrypt(
                &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
                wrapped,
                &mut out,
                None,
            )
            .map_err(|_| CryptoError::KeyUnwrap)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

impl fmt::Debug for KeyPair {
    /// Shows the public half only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("key_type", &self.public.key_type)
            .field("bits", &self.public.bits)
            .field("fingerprint", &self.public.fingerprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_round_trips() {
        let pair = KeyPair::generate_ed25519().unwrap();
        let public = pair.public_key();
        assert_eq!(public.key_type(), KeyType::Ed25519);
        assert_eq!(public.bits(), 256);
        assert_eq!(public.spki_der().len(), 44);
        assert_eq!(
            PublicKey::from_base64_spki(&public.to_base64_spki()).unwrap(),
            *public
        );
        assert_eq!(
            PublicKey::from_pem(&public.to_pem_with_newline()).unwrap(),
            *public
        );
        let sig = pair.sign_raw(b"hello").unwrap();
        assert_eq!(sig.len(), 64);
        public.verify_raw(b"hello", &sig).unwrap();
        assert!(public.verify_raw(b"hellO", &sig).is_err());
        pair.check_matches(public).unwrap();
        let other = KeyPair::generate_ed25519().unwrap();
        assert!(other.check_matches(public).is_err());
        assert_eq!(
            pair.oaep_decrypt(&[0; 256]),
            Err(CryptoError::WrongKeyType {
                needed: KeyType::Rsa
            })
        );
    }

    #[test]
    fn spki_parser_is_strict() {
        let pair = KeyPair::generate_ed25519().unwrap();
        let good = pair.public_key().spki_der().to_vec();
        // Trailing data.
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            PublicKey::from_spki_der(&trailing),
            Err(CryptoError::InvalidKey(_))
        ));
        // Unknown OID (Ed448 1.3.101.113).
        let mut ed448 = good.clone();
        let pos = ed448
            .windows(3)
            .position(|w| w == der::OID_ED25519)
            .unwrap();
        ed448[pos + 2] = 113;
        assert!(PublicKey::from_spki_der(&ed448).is_err());
        // Truncated.
        assert!(PublicKey::from_spki_der(&good[..good.len() - 1]).is_err());
        assert!(PublicKey::from_spki_der(&[]).is_err());
    }

    #[test]
    fn pem_label_must_match_kind() {
        let pair = KeyPair::generate_ed25519().unwrap();
        let private = pair.to_pkcs8_pem().unwrap();
        assert!(PublicKey::from_pem(&private).is_err());
        assert!(KeyPair::from_pem(&pair.public_key().to_pem()).is_err());
    }

    #[test]
    fn key_type_names() {
        assert_eq!(KeyType::Rsa.as_str(), "rsa");
        assert_eq!(KeyType::Ed25519.to_string(), "ed25519");
        assert_eq!("ED25519".parse::<KeyType>(), Ok(KeyType::Ed25519));
        assert_eq!("rsa".parse::<KeyType>(), Ok(KeyType::Rsa));
        assert!("ecdsa".parse::<KeyType>().is_err());
    }

    #[test]
    fn policy_can_refuse_ed25519() {
        let pair = KeyPair::generate_ed25519().unwrap();
        let der = pair.public_key().spki_der();
        let rsa_only = KeyPolicy::DEFAULT.with_ed25519(false);
        assert!(KeyPolicy::DEFAULT.accepts_ed25519());
        assert!(!rsa_only.accepts_ed25519());
        assert_eq!(
            rsa_only.parse_spki_der(der),
            Err(CryptoError::KeyTypeRefused(KeyType::Ed25519))
        );
        assert_eq!(
            rsa_only.parse_pem(&pair.public_key().to_pem()),
            Err(CryptoError::KeyTypeRefused(KeyType::Ed25519))
        );
        assert_eq!(
            rsa_only.allowing_rsa_1024(),
            KeyPolicy::DEFAULT.allowing_rsa_1024().with_ed25519(false)
        );
        KeyPolicy::DEFAULT.check(pair.public_key()).unwrap();
        let rsa = KeyPair::generate(KeyType::Rsa).unwrap();
        assert_eq!(rsa.public_key().bits(), 2048);
        rsa_only.check(rsa.public_key()).unwrap();
        assert_eq!(
            KeyPair::generate(KeyType::Ed25519).unwrap().key_type(),
            KeyType::Ed25519
        );
    }

    #[test]
    fn rsa_generation_sizes() {
        for bits in [0, 512, 1024, 2047, 2049, 5000, 16384] {
            assert_eq!(
                KeyPair::generate_rsa(bits).unwrap_err(),
                CryptoError::KeySize { bits }
            );
        }
        let key = KeyPair::generate_rsa(3072).unwrap();
        assert_eq!(key.public_key().bits(), 3072);
    }
}
