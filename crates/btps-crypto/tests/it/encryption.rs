//! `signEncrypt` / `decryptVerify` (PROTOCOL.md §5) and the AES and OAEP primitives.

use std::cell::Cell;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use btps_crypto::{
    CryptoError, Randomness, SystemRandom, aes_gcm_open, aes_gcm_seal, decrypt_document,
    decrypt_verify, decrypt_with_any, encrypt_document, encrypt_document_with, oaep_unwrap,
    oaep_wrap, sign_encrypt, verify,
};
use btps_types::ErrorCode;
use btps_types::json::{Object, Value, parse_str, to_js_string};
use btps_types::signing::TRANSPORTER;

use crate::common::{case, dns_key, key_pair, key_pair_at, public_key, str_of};

/// Hands out fixed bytes: 32 × `0x07` (the content key), then 12 × `0x09` (the IV).
struct AppendixA {
    calls: Cell<usize>,
}

impl Randomness for AppendixA {
    fn fill(&self, dest: &mut [u8]) -> btps_crypto::Result<()> {
        let byte = match self.calls.get() {
            0 => 0x07,
            1 => 0x09,
            n => panic!("unexpected randomness request {n}"),
        };
        self.calls.set(self.calls.get() + 1);
        dest.fill(byte);
        Ok(())
    }
}

/// A randomness source that always fails.
struct Broken;

impl Randomness for Broken {
    fn fill(&self, _dest: &mut [u8]) -> btps_crypto::Result<()> {
        Err(CryptoError::Randomness)
    }
}

fn reparse(obj: &Object) -> Object {
    let line = to_js_string(&Value::Object(obj.clone()));
    parse_str(&line).unwrap().value.as_object().unwrap().clone()
}

fn document_json(name: &str) -> String {
    case(name).meta_str("/decrypt/documentJson").to_owned()
}

#[test]
fn appendix_a_aes_known_answer() {
    let sealed = aes_gcm_seal(br#"{"hello":"world","n":1}"#, &[0x07; 32], &[0x09; 12]).unwrap();
    assert_eq!(
        STANDARD.encode(&sealed.ciphertext),
        "XKfs8dKcrkOaQLxXlIbH/fiSDdEO34o="
    );
    assert_eq!(STANDARD.encode(sealed.tag), "X3IMN6BV/HtTl82ekj8Dtw==");
    assert_eq!(STANDARD.encode([0x09; 12]), "CQkJCQkJCQkJCQkJ");
    let opened = aes_gcm_open(&sealed.ciphertext, &sealed.tag, &[0x07; 32], &[0x09; 12]).unwrap();
    assert_eq!(opened, br#"{"hello":"world","n":1}"#);

    let mut bad_tag = sealed.tag;
    bad_tag[0] ^= 1;
    let err = aes_gcm_open(&sealed.ciphertext, &bad_tag, &[0x07; 32], &[0x09; 12]).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionFailed);
    let err = aes_gcm_open(&sealed.ciphertext, &sealed.tag, &[0x08; 32], &[0x09; 12]).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionFailed);
}

#[test]
fn appendix_a_through_encrypt_document() {
    // The injected randomness is the only source of the content key and IV.
    let receiver = public_key("finance-btps1");
    let document = parse_str(r#"{"hello":"world","n":1.0}"#).unwrap().value;
    let rng = AppendixA {
        calls: Cell::new(0),
    };
    let enc = encrypt_document(&document, &receiver, &rng).unwrap();
    assert_eq!(enc.document, "XKfs8dKcrkOaQLxXlIbH/fiSDdEO34o=");
    let keys: Vec<String> = enc.encryption.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["algorithm", "encryptedKey", "iv", "authTag", "type"]);
    assert_eq!(str_of(&enc.encryption, "algorithm"), "aes-256-gcm");
    assert_eq!(str_of(&enc.encryption, "iv"), "CQkJCQkJCQkJCQkJ");
    assert_eq!(
        str_of(&enc.encryption, "authTag"),
        "X3IMN6BV/HtTl82ekj8Dtw=="
    );
    assert_eq!(str_of(&enc.encryption, "type"), "standardEncrypt");
    assert_eq!(str_of(&enc.encryption, "encryptedKey").len(), 344);
    // The wrapped key is the content key, for this receiver.
    let wrapped = STANDARD
        .decode(str_of(&enc.encryption, "encryptedKey"))
        .unwrap();
    assert_eq!(
        oaep_unwrap(&key_pair("finance-btps1"), &wrapped).unwrap(),
        [0x07; 32]
    );

    let fixed = encrypt_document_with(&document, &receiver, &[0x07; 32], &[0x09; 12]).unwrap();
    assert_eq!(fixed.document, enc.document);
    assert_eq!(
        fixed.encryption.get("authTag"),
        enc.encryption.get("authTag")
    );

    let err = encrypt_document(&document, &receiver, &Broken).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::Unknown);
}

#[test]
fn oaep_round_trip() {
    let pair = key_pair("finance-btps1");
    let content_key = [0xA5_u8; 32];
    let a = oaep_wrap(pair.public_key(), &content_key).unwrap();
    let b = oaep_wrap(pair.public_key(), &content_key).unwrap();
    assert_eq!(a.len(), 256);
    assert_ne!(a, b, "OAEP is randomized");
    assert_eq!(oaep_unwrap(&pair, &a).unwrap(), content_key);
    assert_eq!(oaep_unwrap(&pair, &b).unwrap(), content_key);
    // Another receiver cannot unwrap it.
    let err = oaep_unwrap(&key_pair("finance-btps2"), &a).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionUnintended);
    let mut flipped = a.clone();
    flipped[100] ^= 0x40;
    let err = oaep_unwrap(&pair, &flipped).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionUnintended);
}

#[test]
fn invoice_encrypted_decrypts_byte_for_byte() {
    let name = "transporter_doc_invoice_encrypted";
    let c = case(name);
    let receiver = key_pair_at(c.meta_str("/decrypt/receiverPrivateKey"));
    let out = decrypt_document(&c.artifact, &receiver).unwrap();
    assert!(out.encrypted);
    assert_eq!(out.plaintext, document_json(name));
    assert_eq!(to_js_string(&out.document), document_json(name));
    assert_eq!(out.document, parse_str(&document_json(name)).unwrap().value);

    // decryptVerify: signature first, then decryption.
    let sender = dns_key(str_of(&c.artifact, "from"), str_of(&c.artifact, "selector")).unwrap();
    assert_eq!(
        decrypt_verify(&c.artifact, &sender, &receiver).unwrap(),
        out
    );
    let err = decrypt_verify(&c.artifact, &public_key("billing-btps2"), &receiver).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::SigMismatch);
}

#[test]
fn every_encrypted_vector_decrypts_byte_for_byte() {
    for name in [
        "transporter_doc_invoice_encrypted",
        "transporter_doc_unicode_encrypted",
        "transporter_doc_escapes_encrypted",
        "transporter_doc_nested_encrypted",
        "transporter_doc_rotated_selector_btps2",
        "transporter_delegated_saas",
        "transporter_delegated_attested",
    ] {
        let c = case(name);
        let receiver = key_pair_at(c.meta_str("/decrypt/receiverPrivateKey"));
        let out =
            decrypt_document(&c.artifact, &receiver).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.plaintext, document_json(name), "{name}");
    }
}

#[test]
fn encrypted_for_other_receiver_is_unintended() {
    let c = case("neg_encrypted_for_other_receiver");
    verify(&c.artifact, TRANSPORTER, &public_key("billing-btps1")).unwrap();
    let receiver = key_pair_at(c.meta_str("/decrypt/receiverPrivateKey"));
    let err = decrypt_document(&c.artifact, &receiver).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionUnintended, "{err}");
    assert_eq!(err, CryptoError::KeyUnwrap);
    // It was wrapped for admin$evil.test.
    let out = decrypt_document(&c.artifact, &key_pair("evil-admin")).unwrap();
    assert_eq!(
        out.plaintext,
        document_json("neg_encrypted_for_other_receiver")
    );
}

#[test]
fn gcm_failure_after_valid_signature_is_decryption_failed() {
    let c = case("neg_gcm_auth_fails_resigned");
    let sender = public_key("billing-btps1");
    verify(&c.artifact, TRANSPORTER, &sender).unwrap();
    let receiver = key_pair_at(c.meta_str("/decrypt/receiverPrivateKey"));
    let err = decrypt_document(&c.artifact, &receiver).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionFailed, "{err}");
    let err = decrypt_verify(&c.artifact, &sender, &receiver).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionFailed, "{err}");
    // The signature is checked before any decryption: the tampered-ciphertext case fails
    // on the signature, never reaching AES.
    let t = case("neg_tampered_ciphertext");
    let err = decrypt_verify(&t.artifact, &sender, &receiver).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::SigVerification, "{err}");
}

#[test]
fn decrypt_with_any_tries_the_selector_key_first() {
    let btps1 = key_pair("finance-btps1");
    let btps2 = key_pair("finance-btps2");
    let rotated = case("transporter_doc_rotated_selector_btps2");
    assert_eq!(str_of(&rotated.artifact, "selector"), "btps2");
    let expected = document_json("transporter_doc_rotated_selector_btps2");
    for keys in [
        [("btps1", &btps1), ("btps2", &btps2)],
        [("btps2", &btps2), ("btps1", &btps1)],
    ] {
        let out = decrypt_with_any(&rotated.artifact, &keys).unwrap();
        assert_eq!(out.plaintext, expected);
    }
    // Only the old key: not for us (vector neg_rotated_decrypt_with_old_key).
    let old = case("neg_rotated_decrypt_with_old_key");
    let receiver = key_pair_at(old.meta_str("/decrypt/receiverPrivateKey"));
    let err = decrypt_with_any(&old.artifact, &[("btps1", &receiver)]).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionUnintended);
    let err = decrypt_with_any(&old.artifact, &[]).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionUnintended);
    // A mislabelled selector still finds the right key among the others.
    let out = decrypt_with_any(&rotated.artifact, &[("btps2", &btps1), ("x", &btps2)]).unwrap();
    assert_eq!(out.plaintext, expected);
}

#[test]
fn sign_encrypt_round_trip() {
    let sender = key_pair("billing-btps1");
    let receiver = key_pair("finance-btps1");
    let document = parse_str(r#"{"b":1,"2":"x","a":[1e21,-0,"é\u00e9"],"s":"\"quoted\""}"#)
        .unwrap()
        .value;
    let mut artifact = Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", "billing$vendorcorp.test")
        .with("to", "finance$buyer.test")
        .with("selector", "btps1")
        .with("id", "id-1")
        .with("issuedAt", "2026-11-22T16:03:46.407Z");
    sign_encrypt(
        &mut artifact,
        &document,
        Some(receiver.public_key()),
        &sender,
        &SystemRandom,
    )
    .unwrap();
    let keys: Vec<String> = artifact.keys().map(ToString::to_string).collect();
    assert_eq!(
        &keys[7..],
        ["document", "encryption", "signature"],
        "document, encryption and signature are appended in the reference order"
    );
    assert!(artifact.get("document").unwrap().is_string());

    let received = reparse(&artifact);
    let out = decrypt_verify(&received, sender.public_key(), &receiver).unwrap();
    assert_eq!(out.plaintext, to_js_string(&document));
    assert_eq!(
        out.plaintext,
        r#"{"2":"x","b":1,"a":[1e+21,0,"éé"],"s":"\"quoted\""}"#
    );
    // Same value; member order is the serializer's (array-index keys first).
    assert_eq!(to_js_string(&out.document), to_js_string(&document));

    // Encrypt-then-sign: changing the ciphertext breaks the signature.
    let mut tampered = received.clone();
    tampered.insert("document", "AAAA");
    let err = decrypt_verify(&tampered, sender.public_key(), &receiver).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::SigVerification);

    // Fresh randomness every time.
    let mut again = artifact.clone();
    sign_encrypt(
        &mut again,
        &document,
        Some(receiver.public_key()),
        &sender,
        &SystemRandom,
    )
    .unwrap();
    assert_ne!(again.get("document"), artifact.get("document"));
}

#[test]
fn string_documents_are_encrypted_as_json_strings() {
    // PROTOCOL.md §5.2 deviation: a string document is serialized as a JSON string literal.
    let receiver = key_pair("finance-btps1");
    let mut artifact = Object::new().with("from", "billing$vendorcorp.test");
    let document = Value::from("plain text \"quoted\"");
    sign_encrypt(
        &mut artifact,
        &document,
        Some(receiver.public_key()),
        &key_pair("billing-btps1"),
        &SystemRandom,
    )
    .unwrap();
    let out = decrypt_document(&artifact, &receiver).unwrap();
    assert_eq!(out.plaintext, r#""plain text \"quoted\"""#);
    assert_eq!(out.document, document);
}

#[test]
fn raw_string_plaintext_becomes_a_string_document() {
    // A btps-node sender encrypts a string document raw; §5.3 step 6 keeps it as text.
    let pair = key_pair("finance-btps1");
    let sealed = aes_gcm_seal(b"not json", &[3; 32], &[4; 12]).unwrap();
    let wrapped = oaep_wrap(pair.public_key(), &[3; 32]).unwrap();
    let artifact = Object::new()
        .with("document", STANDARD.encode(&sealed.ciphertext))
        .with(
            "encryption",
            Object::new()
                .with("algorithm", "aes-256-gcm")
                .with("encryptedKey", STANDARD.encode(wrapped))
                .with("iv", STANDARD.encode([4; 12]))
                .with("authTag", STANDARD.encode(sealed.tag))
                .with("type", "standardEncrypt"),
        );
    let out = decrypt_document(&artifact, &pair).unwrap();
    assert_eq!(out.plaintext, "not json");
    assert_eq!(out.document, Value::from("not json"));
}

#[test]
fn unencrypted_artifacts_pass_through() {
    let c = case("transporter_doc_invoice_plain");
    let out = decrypt_document(&c.artifact, &key_pair("finance-btps1")).unwrap();
    assert!(!out.encrypted);
    assert_eq!(&out.document, c.artifact.get("document").unwrap());
    assert_eq!(
        out.plaintext,
        to_js_string(c.artifact.get("document").unwrap())
    );

    // sign_encrypt without a receiver writes `encryption: null` and signs it.
    let sender = key_pair("billing-btps1");
    let mut artifact = Object::new().with("from", "billing$vendorcorp.test");
    let document: Value = Object::new().with("k", "v").into();
    sign_encrypt(&mut artifact, &document, None, &sender, &SystemRandom).unwrap();
    assert_eq!(artifact.get("encryption"), Some(&Value::Null));
    assert_eq!(artifact.get("document"), Some(&document));
    verify(&reparse(&artifact), TRANSPORTER, sender.public_key()).unwrap();
}

#[test]
fn malformed_encryption_members() {
    let c = case("transporter_doc_invoice_encrypted");
    let receiver = key_pair("finance-btps1");
    let edit = |f: &dyn Fn(&mut Object)| {
        let mut a = c.artifact.clone();
        f(a.get_mut("encryption")
            .and_then(Value::as_object_mut)
            .unwrap());
        a
    };
    let iv = str_of(c.artifact.get_object("encryption").unwrap(), "iv").to_owned();
    let failed = [
        edit(&|e| {
            e.insert("iv", "CQkJCQkJCQkJCQkJCQ=="); // 13 bytes
        }),
        edit(&|e| {
            e.insert("iv", format!("{iv}="));
        }),
        edit(&|e| {
            e.remove("iv");
        }),
        edit(&|e| {
            e.insert("authTag", "X3IMN6BV/HtTl82ekj8D"); // 15 bytes
        }),
        edit(&|e| {
            e.insert("authTag", 5_u32);
        }),
        edit(&|e| {
            e.insert("encryptedKey", "not base64!");
        }),
        {
            let mut a = c.artifact.clone();
            a.insert("document", "%%%");
            a
        },
        {
            let mut a = c.artifact.clone();
            a.insert("document", Object::new());
            a
        },
        {
            let mut a = c.artifact.clone();
            a.insert("encryption", "aes-256-gcm");
            a
        },
    ];
    for artifact in &failed {
        let err = decrypt_document(artifact, &receiver).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::DecryptionFailed, "{err}");
    }
    for algorithm in ["aes-128-gcm", "AES-256-GCM", ""] {
        let artifact = edit(&|e| {
            e.insert("algorithm", algorithm);
        });
        let err = decrypt_document(&artifact, &receiver).unwrap_err();
        assert_eq!(
            err.error_code(),
            ErrorCode::UnsupportedEncrypt,
            "{algorithm}: {err}"
        );
    }
    // A wrapped key that is not 32 bytes is "not for this receiver".
    let short = oaep_wrap(receiver.public_key(), &[1; 16]).unwrap();
    let artifact = edit(&|e| {
        e.insert("encryptedKey", STANDARD.encode(&short));
    });
    let err = decrypt_document(&artifact, &receiver).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DecryptionUnintended, "{err}");
}
