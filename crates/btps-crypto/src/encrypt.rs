//! Document encryption: `signEncrypt` and `decryptVerify` ([PROTOCOL.md §5]).
//!
//! AES-256-GCM (no AAD, 16-byte tag) under a fresh 32-byte content key and 12-byte IV; the
//! content key is wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) for the
//! receiver. Randomness comes from a [`Randomness`] the caller passes in.
//!
//! [PROTOCOL.md §5]: https://btps.invalid/PROTOCOL.md#5-encryption

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use btps_types::json::{Object, ParseLimits, Value, parse, to_js_string};
use btps_types::signing;

use crate::error::{CryptoError, Result};
use crate::key::{KeyPair, KeyType, PublicKey};
use crate::sign::sign_in_place;
use crate::verify::verify;

/// The only `encryption.algorithm` value.
pub const ALGORITHM: &str = "aes-256-gcm";
/// The `encryption.type` Rust writers emit.
pub const STANDARD_ENCRYPT: &str = "standardEncrypt";
/// AES-256 key length in bytes.
pub const KEY_LEN: usize = 32;
/// GCM IV length in bytes.
pub const IV_LEN: usize = 12;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;

/// A source of random bytes for content keys and IVs (sans-IO: tests pass fixed bytes).
pub trait Randomness {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    ///
    /// [`CryptoError::Randomness`] when no randomness is available.
    fn fill(&self, dest: &mut [u8]) -> Result<()>;
}

/// The operating system's CSPRNG, through aws-lc-rs.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRandom;

impl Randomness for SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<()> {
        aws_lc_rs::rand::fill(dest).map_err(|_| CryptoError::Randomness)
    }
}

/// An AES-256-GCM result: ciphertext and tag, separately (the wire keeps them apart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The ciphertext, as long as the plaintext.
    pub ciphertext: Vec<u8>,
    /// The 16-byte authentication tag.
    pub tag: [u8; TAG_LEN],
}

/// An encrypted document: the new `document` string and its `encryption` object.
#[derive(Clone, Debug, PartialEq)]
pub struct Encrypted {
    /// Standard base64 of the ciphertext (tag not included).
    pub document: String,
    /// `{algorithm, encryptedKey, iv, authTag, type}` in that order.
    pub encryption: Object,
}

/// A document after [`decrypt_document`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decrypted {
    /// The exact plaintext text. For an unencrypted artifact, the `JSON.stringify` text of
    /// its `document`.
    pub plaintext: String,
    /// The plaintext parsed as JSON, or the plaintext as a string value when it is not
    /// JSON (a btps-node sender that encrypted a raw string, PROTOCOL.md §5.3 step 6).
    pub document: Value,
    /// Whether the artifact was encrypted.
    pub encrypted: bool,
}

/// AES-256-GCM encryption without AAD.
///
/// # Errors
///
/// [`CryptoError::Backend`] if the backend fails.
///
/// # Examples
///
/// The known answer of PROTOCOL.md Appendix A:
///
/// ```
/// use base64::Engine as _;
/// use btps_crypto::aes_gcm_seal;
/// let sealed = aes_gcm_seal(br#"{"hello":"world","n":1}"#, &[7; 32], &[9; 12]).unwrap();
/// let b64 = base64::engine::general_purpose::STANDARD;
/// assert_eq!(b64.encode(&sealed.ciphertext), "XKfs8dKcrkOaQLxXlIbH/fiSDdEO34o=");
/// assert_eq!(b64.encode(sealed.tag), "X3IMN6BV/HtTl82ekj8Dtw==");
/// ```
pub fn aes_gcm_seal(plaintext: &[u8], key: &[u8; KEY_LEN], iv: &[u8; IV_LEN]) -> Result<Sealed> {
    let key = aes_key(key)?;
    let mut ciphertext = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*iv),
            Aad::empty(),
            &mut ciphertext,
        )
        .map_err(|_| CryptoError::Backend("AES-256-GCM encryption failed"))?;
    let mut tag_bytes = [0; TAG_LEN];
    tag_bytes.copy_from_slice(tag.as_ref());
    Ok(Sealed {
        ciphertext,
        tag: tag_bytes,
    })
}

/// AES-256-GCM decryption without AAD.
///
/// # Errors
///
/// [`CryptoError::Decryption`] when authentication fails.
pub fn aes_gcm_open(
    ciphertext: &[u8],
    tag: &[u8; TAG_LEN],
    key: &[u8; KEY_LEN],
    iv: &[u8; IV_LEN],
) -> Result<Vec<u8>> {
    let key = aes_key(key)?;
    let mut buf = Vec::with_capacity(ciphertext.len() + TAG_LEN);
    buf.extend_from_slice(ciphertext);
    buf.extend_from_slice(tag);
    let len = key
        .open_in_place(Nonce::assume_unique_for_key(*iv), Aad::empty(), &mut buf)
        .map_err(|_| CryptoError::Decryption)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn aes_key(key: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Backend("AES-256-GCM key setup failed"))
}

/// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) encryption of `content_key` for
/// `receiver`. Randomized inside the backend.
///
/// # Errors
///
/// [`CryptoError::WrongKeyType`] for a non-RSA key, [`CryptoError::KeySize`] for an RSA key
/// under 2048 bits (only possible with a relaxed [`KeyPolicy`](crate::KeyPolicy)),
/// [`CryptoError::Backend`] if the backend fails.
pub fn oaep_wrap(receiver: &PublicKey, content_key: &[u8]) -> Result<Vec<u8>> {
    if receiver.key_type() != KeyType::Rsa {
        return Err(CryptoError::WrongKeyType {
            needed: KeyType::Rsa,
        });
    }
    let key = PublicEncryptingKey::from_der(receiver.spki_der())
        .map_err(|_| CryptoError::KeySize {
            bits: receiver.bits(),
        })
        .and_then(|k| {
            OaepPublicEncryptingKey::new(k)
                .map_err(|_| CryptoError::Backend("RSA-OAEP key setup failed"))
        })?;
    let mut out = vec![0; key.ciphertext_size()];
    let len = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, content_key, &mut out, None)
        .map_err(|_| CryptoError::Backend("RSA-OAEP encryption failed"))?
        .len();
    out.truncate(len);
    Ok(out)
}

/// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) decryption of a wrapped content key.
///
/// # Errors
///
/// [`CryptoError::KeyUnwrap`] when the key does not decrypt `wrapped` (or is not RSA).
pub fn oaep_unwrap(receiver: &KeyPair, wrapped: &[u8]) -> Result<Vec<u8>> {
    receiver.oaep_decrypt(wrapped).map_err(|e| match e {
        CryptoError::WrongKeyType { .. } => CryptoError::KeyUnwrap,
        other => other,
    })
}

/// Encrypts `document` for `receiver` with a fresh content key and IV from `rng`
/// (PROTOCOL.md §5.2 steps 2–4).
///
/// The plaintext is the UTF-8 `JSON.stringify` text of `document`; a string document is
/// serialized as a JSON string literal too (**deviation**: btps-node encrypts strings raw
/// and then cannot decrypt them).
///
/// # Errors
///
/// [`CryptoError::Randomness`], or the errors of [`oaep_wrap`].
pub fn encrypt_document<R: Randomness + ?Sized>(
    document: &Value,
    receiver: &PublicKey,
    rng: &R,
) -> Result<Encrypted> {
    let mut key = [0; KEY_LEN];
    let mut iv = [0; IV_LEN];
    rng.fill(&mut key)?;
    rng.fill(&mut iv)?;
    encrypt_document_with(document, receiver, &key, &iv)
}

/// [`encrypt_document`] with an explicit content key and IV (known-answer tests). Never
/// reuse a key and IV pair.
///
/// # Errors
///
/// As [`encrypt_document`].
pub fn encrypt_document_with(
    document: &Value,
    receiver: &PublicKey,
    content_key: &[u8; KEY_LEN],
    iv: &[u8; IV_LEN],
) -> Result<Encrypted> {
    let wrapped = oaep_wrap(receiver, content_key)?;
    let plaintext = to_js_string(document);
    let sealed = aes_gcm_seal(plaintext.as_bytes(), content_key, iv)?;
    let encryption = Object::with_capacity(5)
        .with("algorithm", ALGORITHM)
        .with("encryptedKey", STANDARD.encode(wrapped))
        .with("iv", STANDARD.encode(iv))
        .with("authTag", STANDARD.encode(sealed.tag))
        .with("type", STANDARD_ENCRYPT);
    Ok(Encrypted {
        document: STANDARD.encode(&sealed.ciphertext),
        encryption,
    })
}

/// `signEncrypt` (PROTOCOL.md §5.2): sets `document` and `encryption` on `artifact`, then
/// signs it (encrypt-then-sign) with `signer`, appending `signature` last.
///
/// With a `receiver`, `document` becomes the base64 ciphertext and `encryption` the
/// encryption object; without one, `document` is set as is and `encryption` is `null`
/// (which is part of the signed text). Existing members keep their position.
///
/// # Errors
///
/// The errors of [`encrypt_document`] and of signing.
pub fn sign_encrypt<R: Randomness + ?Sized>(
    artifact: &mut Object,
    document: &Value,
    receiver: Option<&PublicKey>,
    signer: &KeyPair,
    rng: &R,
) -> Result<()> {
    match receiver {
        Some(receiver) => {
            let enc = encrypt_document(document, receiver, rng)?;
            artifact.insert("document", enc.document);
            artifact.insert("encryption", enc.encryption);
        }
        None => {
            artifact.insert("document", document.clone());
            artifact.insert("encryption", Value::Null);
        }
    }
    sign_in_place(artifact, signing::TRANSPORTER, signer)
}

/// The decoded encryption members of an artifact.
struct Envelope {
    ciphertext: Vec<u8>,
    wrapped_key: Vec<u8>,
    iv: [u8; IV_LEN],
    tag: [u8; TAG_LEN],
}

enum Content<'a> {
    Plain(&'a Value),
    Encrypted(Envelope),
}

/// PROTOCOL.md §5.3 steps 2–3.
fn content(artifact: &Object) -> Result<Content<'_>> {
    let document = artifact.get("document");
    let enc = match artifact.get("encryption") {
        None | Some(Value::Null) => {
            return document
                .map(Content::Plain)
                .ok_or(CryptoError::ArtifactMember("document"));
        }
        Some(Value::Object(enc)) => enc,
        Some(_) => {
            return Err(CryptoError::MalformedEncryption(
                "encryption is not an object",
            ));
        }
    };
    if enc.get_str("algorithm") != Some(ALGORITHM) {
        return Err(CryptoError::UnsupportedAlgorithm);
    }
    let b64 = |member: &'static str, value: Option<&str>| -> Result<Vec<u8>> {
        value
            .and_then(|v| STANDARD.decode(v.as_bytes()).ok())
            .ok_or(CryptoError::MalformedEncryption(member))
    };
    let iv = b64("iv", enc.get_str("iv"))?
        .try_into()
        .map_err(|_| CryptoError::MalformedEncryption("iv is not 12 bytes"))?;
    let tag = b64("authTag", enc.get_str("authTag"))?
        .try_into()
        .map_err(|_| CryptoError::MalformedEncryption("authTag is not 16 bytes"))?;
    let wrapped_key = b64("encryptedKey", enc.get_str("encryptedKey"))?;
    let ciphertext = b64("document", document.and_then(Value::as_str))?;
    Ok(Content::Encrypted(Envelope {
        ciphertext,
        wrapped_key,
        iv,
        tag,
    }))
}

/// PROTOCOL.md §5.3 step 4: `Ok(None)` when the key is not for this receiver.
fn unwrap_content_key(env: &Envelope, receiver: &KeyPair) -> Option<[u8; KEY_LEN]> {
    oaep_unwrap(receiver, &env.wrapped_key)
        .ok()
        .and_then(|k| k.try_into().ok())
}

/// PROTOCOL.md §5.3 steps 5–6.
fn open(env: &Envelope, key: &[u8; KEY_LEN]) -> Result<Decrypted> {
    let bytes = aes_gcm_open(&env.ciphertext, &env.tag, key, &env.iv)?;
    let plaintext = String::from_utf8(bytes).map_err(|_| CryptoError::Decryption)?;
    let limits = ParseLimits {
        max_bytes: plaintext.len(),
        ..ParseLimits::DEFAULT
    };
    let document = match parse(plaintext.as_bytes(), &limits) {
        Ok(parsed) => parsed.value,
        Err(_) => Value::from(plaintext.as_str()),
    };
    Ok(Decrypted {
        plaintext,
        document,
        encrypted: true,
    })
}

fn plain(document: &Value) -> Decrypted {
    Decrypted {
        plaintext: to_js_string(document),
        document: document.clone(),
        encrypted: false,
    }
}

/// Decrypts the `document` of an artifact whose signature was **already verified**
/// (PROTOCOL.md §5.3 steps 2–6); see [`decrypt_verify`].
///
/// An artifact with `encryption: null` (or none) is plain: its document is returned as is.
///
/// # Errors
///
/// * [`CryptoError::ArtifactMember`]: an unencrypted artifact without `document`;
/// * [`CryptoError::UnsupportedAlgorithm`]: `algorithm` is not `aes-256-gcm`;
/// * [`CryptoError::MalformedEncryption`]: a member missing or not canonical base64, an IV
///   that is not 12 bytes, a tag that is not 16 bytes, `document` missing or not a string;
/// * [`CryptoError::KeyUnwrap`]: RSA-OAEP unwrap failed or gave no 32-byte key;
/// * [`CryptoError::Decryption`]: GCM authentication failed or the plaintext is not UTF-8.
pub fn decrypt_document(artifact: &Object, receiver: &KeyPair) -> Result<Decrypted> {
    match content(artifact)? {
        Content::Plain(document) => Ok(plain(document)),
        Content::Encrypted(env) => {
            let key = unwrap_content_key(&env, receiver).ok_or(CryptoError::KeyUnwrap)?;
            open(&env, &key)
        }
    }
}

/// [`decrypt_document`] with several private keys (PROTOCOL.md §5.4): the key whose
/// selector equals the artifact's `selector` first, then the others in the given order
/// (put the newest first).
///
/// # Errors
///
/// As [`decrypt_document`]; [`CryptoError::KeyUnwrap`] when no key unwraps the content key.
pub fn decrypt_with_any(artifact: &Object, keys: &[(&str, &KeyPair)]) -> Result<Decrypted> {
    let env = match content(artifact)? {
        Content::Plain(document) => return Ok(plain(document)),
        Content::Encrypted(env) => env,
    };
    let selector = artifact.get_str("selector");
    let preferred = keys.iter().filter(|(s, _)| Some(*s) == selector);
    let others = keys.iter().filter(|(s, _)| Some(*s) != selector);
    for (_, pair) in preferred.chain(others) {
        if let Some(key) = unwrap_content_key(&env, pair) {
            return open(&env, &key);
        }
    }
    Err(CryptoError::KeyUnwrap)
}

/// `decryptVerify` (PROTOCOL.md §5.3): verifies the transporter signature with `sender`
/// first (never decrypts unverified input), then decrypts with `receiver`.
///
/// For a delegated artifact, verify it with
/// [`verify_delegation`](crate::verify_delegation) and then call [`decrypt_document`].
///
/// # Errors
///
/// The errors of [`verify`](crate::verify) (signature), then of [`decrypt_document`].
pub fn decrypt_verify(
    artifact: &Object,
    sender: &PublicKey,
    receiver: &KeyPair,
) -> Result<Decrypted> {
    verify(artifact, signing::TRANSPORTER, sender)?;
    decrypt_document(artifact, receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic "randomness" for tests: a repeated byte.
    struct Fixed(u8);

    impl Randomness for Fixed {
        fn fill(&self, dest: &mut [u8]) -> Result<()> {
            dest.fill(self.0);
            Ok(())
        }
    }

    struct Broken;

    impl Randomness for Broken {
        fn fill(&self, _: &mut [u8]) -> Result<()> {
            Err(CryptoError::Randomness)
        }
    }

    #[test]
    fn appendix_a_known_answer() {
        let sealed = aes_gcm_seal(br#"{"hello":"world","n":1}"#, &[7; 32], &[9; 12]).unwrap();
        assert_eq!(
            STANDARD.encode(&sealed.ciphertext),
            "XKfs8dKcrkOaQLxXlIbH/fiSDdEO34o="
        );
        assert_eq!(STANDARD.encode(sealed.tag), "X3IMN6BV/HtTl82ekj8Dtw==");
        assert_eq!(STANDARD.encode([9; 12]), "CQkJCQkJCQkJCQkJ");
        let back = aes_gcm_open(&sealed.ciphertext, &sealed.tag, &[7; 32], &[9; 12]).unwrap();
        assert_eq!(back, br#"{"hello":"world","n":1}"#);
        let mut bad_tag = sealed.tag;
        bad_tag[0] ^= 1;
        assert_eq!(
            aes_gcm_open(&sealed.ciphertext, &bad_tag, &[7; 32], &[9; 12]),
            Err(CryptoError::Decryption)
        );
    }

    #[test]
    fn rsa_round_trip_with_fixed_randomness() {
        let receiver = KeyPair::generate_rsa2048().unwrap();
        let doc = Value::Object(Object::new().with("hello", "world").with("n", 1_u32));
        let enc = encrypt_document(&doc, receiver.public_key(), &Fixed(7)).unwrap();
        // Fixed randomness: content key and IV are all 0x07; the object keeps writer order.
        let keys: Vec<_> = enc.encryption.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["algorithm", "encryptedKey", "iv", "authTag", "type"]);
        assert_eq!(
            enc.encryption.get_str("iv"),
            Some(STANDARD.encode([7; 12]).as_str())
        );
        let artifact = Object::new()
            .with("document", enc.document.clone())
            .with("encryption", enc.encryption.clone());
        let dec = decrypt_document(&artifact, &receiver).unwrap();
        assert_eq!(dec.plaintext, r#"{"hello":"world","n":1}"#);
        assert_eq!(dec.document, doc);
        assert!(dec.encrypted);
        assert!(matches!(
            encrypt_document(&doc, receiver.public_key(), &Broken),
            Err(CryptoError::Randomness)
        ));
    }

    #[test]
    fn string_documents_are_json_literals() {
        let receiver = KeyPair::generate_rsa2048().unwrap();
        let doc = Value::from("just text");
        let enc = encrypt_document_with(&doc, receiver.public_key(), &[1; 32], &[2; 12]).unwrap();
        let artifact = Object::new()
            .with("document", enc.document)
            .with("encryption", enc.encryption);
        let dec = decrypt_document(&artifact, &receiver).unwrap();
        assert_eq!(dec.plaintext, r#""just text""#);
        assert_eq!(dec.document, doc);
    }

    #[test]
    fn raw_string_plaintext_becomes_a_string_value() {
        // A btps-node sender encrypts a string document raw.
        let receiver = KeyPair::generate_rsa2048().unwrap();
        let (key, iv) = ([3; 32], [4; 12]);
        let sealed = aes_gcm_seal(b"not json", &key, &iv).unwrap();
        let artifact = Object::new()
            .with("document", STANDARD.encode(&sealed.ciphertext))
            .with(
                "encryption",
                Object::new()
                    .with("algorithm", ALGORITHM)
                    .with(
                        "encryptedKey",
                        STANDARD.encode(oaep_wrap(receiver.public_key(), &key).unwrap()),
                    )
                    .with("iv", STANDARD.encode(iv))
                    .with("authTag", STANDARD.encode(sealed.tag))
                    .with("type", STANDARD_ENCRYPT),
            );
        let dec = decrypt_document(&artifact, &receiver).unwrap();
        assert_eq!(dec.plaintext, "not json");
        assert_eq!(dec.document, Value::from("not json"));
    }

    #[test]
    fn plain_and_malformed() {
        let receiver = KeyPair::generate_rsa2048().unwrap();
        let doc = Object::new().with("b", 1.5).with("1", "x");
        let plain_artifact = Object::new()
            .with("document", doc.clone())
            .with("encryption", Value::Null);
        let dec = decrypt_document(&plain_artifact, &receiver).unwrap();
        assert_eq!(dec.plaintext, r#"{"1":"x","b":1.5}"#);
        assert!(!dec.encrypted);

        let enc =
            encrypt_document(&Value::Object(doc), receiver.public_key(), &SystemRandom).unwrap();
        let with = |member: &str, value: Value| {
            let mut e = enc.encryption.clone();
            e.insert(member, value);
            Object::new()
                .with("document", enc.document.clone())
                .with("encryption", e)
        };
        let err = |a: &Object| decrypt_document(a, &receiver).unwrap_err();
        assert_eq!(
            err(&with("algorithm", "aes-128-gcm".into())),
            CryptoError::UnsupportedAlgorithm
        );
        assert!(matches!(
            err(&with("iv", STANDARD.encode([0; 16]).into())),
            CryptoError::MalformedEncryption(_)
        ));
        assert!(matches!(
            err(&with("authTag", "AAAA AAAA".into())),
            CryptoError::MalformedEncryption(_)
        ));
        assert!(matches!(
            err(&with("encryptedKey", Value::Null)),
            CryptoError::MalformedEncryption(_)
        ));
        assert_eq!(
            err(&with("encryptedKey", STANDARD.encode([1; 256]).into())),
            CryptoError::KeyUnwrap
        );
        let mut not_string = with("type", STANDARD_ENCRYPT.into());
        not_string.insert("document", 5_u32);
        assert!(matches!(
            err(&not_string),
            CryptoError::MalformedEncryption(_)
        ));
        not_string.remove("document");
        assert!(matches!(
            err(&not_string),
            CryptoError::MalformedEncryption(_)
        ));
        assert!(matches!(
            err(&Object::new().with("encryption", Value::Null)),
            CryptoError::ArtifactMember("document")
        ));

        // A wrapped key that is not 32 bytes is "not intended for this receiver".
        let short = oaep_wrap(receiver.public_key(), &[1; 16]).unwrap();
        assert_eq!(
            err(&with("encryptedKey", STANDARD.encode(short).into())),
            CryptoError::KeyUnwrap
        );

        // Only RSA keys encrypt; an Ed25519 receiver key is unusable.
        let ed = KeyPair::generate_ed25519().unwrap();
        assert_eq!(
            oaep_wrap(ed.public_key(), &[0; 32])
                .unwrap_err()
                .error_code(),
            btps_types::ErrorCode::ResolvePubkey
        );
        let artifact = with("type", STANDARD_ENCRYPT.into());
        assert_eq!(
            decrypt_document(&artifact, &ed),
            Err(CryptoError::KeyUnwrap)
        );
    }

    #[test]
    fn decrypt_with_any_prefers_selector_then_falls_back() {
        let old = KeyPair::generate_rsa2048().unwrap();
        let new = KeyPair::generate_rsa2048().unwrap();
        let signer = KeyPair::generate_ed25519().unwrap();
        let doc = Value::from("x");
        let mut artifact = Object::new().with("selector", "btps2");
        sign_encrypt(
            &mut artifact,
            &doc,
            Some(old.public_key()),
            &signer,
            &SystemRandom,
        )
        .unwrap();
        // The btps2 key does not fit; the other one does.
        let dec = decrypt_with_any(&artifact, &[("btps1", &old), ("btps2", &new)]).unwrap();
        assert_eq!(dec.document, doc);
        assert_eq!(
            decrypt_with_any(&artifact, &[("btps2", &new)]),
            Err(CryptoError::KeyUnwrap)
        );
        assert_eq!(
            decrypt_with_any(&artifact, &[]),
            Err(CryptoError::KeyUnwrap)
        );
    }

    #[test]
    fn sign_encrypt_then_decrypt_verify() {
        let sender = KeyPair::generate_ed25519().unwrap();
        let receiver = KeyPair::generate_rsa2048().unwrap();
        let doc = Value::Object(Object::new().with("title", "Invoice"));

        let mut plain = Object::new().with("version", "1.0.0").with("from", "a$b.c");
        sign_encrypt(&mut plain, &doc, None, &sender, &SystemRandom).unwrap();
        let keys: Vec<_> = plain.keys().map(|k| k.to_string()).collect();
        assert_eq!(
            keys,
            ["version", "from", "document", "encryption", "signature"]
        );
        assert_eq!(plain.get("encryption"), Some(&Value::Null));
        let dec = decrypt_verify(&plain, sender.public_key(), &receiver).unwrap();
        assert_eq!(dec.document, doc);

        let mut secret = Object::new().with("version", "1.0.0");
        sign_encrypt(
            &mut secret,
            &doc,
            Some(receiver.public_key()),
            &sender,
            &SystemRandom,
        )
        .unwrap();
        assert!(secret.get("document").is_some_and(Value::is_string));
        let dec = decrypt_verify(&secret, sender.public_key(), &receiver).unwrap();
        assert_eq!(dec.plaintext, r#"{"title":"Invoice"}"#);

        // Verification comes first: a tampered ciphertext is a signature failure.
        let mut tampered = secret.clone();
        tampered.insert("document", "AAAA");
        assert_eq!(
            decrypt_verify(&tampered, sender.public_key(), &receiver)
                .unwrap_err()
                .error_code(),
            btps_types::ErrorCode::SigVerification
        );
    }
}
