//! Signature objects, signing and verification (PROTOCOL.md §4).

use btps_crypto::{
    CryptoError, KeyPair, PublicKey, SigFailure, TransporterSigner, select_by_fingerprint,
    sign_in_place, sign_text, sign_value, signature_fingerprint, verify, verify_signed_text,
    verify_with_buffer,
};
use btps_types::json::{Object, Value, parse_str, to_js_string};
use btps_types::signing::{AGENT, TRANSPORTER};
use btps_types::{ErrorCode, Identity, Selector};

use crate::common::{case, dns_key, key_pair, public_key, read_data, str_of};

fn reparse(obj: &Object) -> Object {
    let line = to_js_string(&Value::Object(obj.clone()));
    parse_str(&line).unwrap().value.as_object().unwrap().clone()
}

fn sample_artifact() -> Object {
    Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", "billing$vendorcorp.test")
        .with("to", "finance$buyer.test")
        .with("selector", "btps1")
        .with("id", "7c1f0b7e-0000-4000-8000-000000000001")
        .with("issuedAt", "2026-11-22T16:03:46.407Z")
        .with(
            "document",
            Object::new()
                .with("title", "Invoice é ✓")
                .with("2", 1.5)
                .with("n", 1e21),
        )
        .with("encryption", Value::Null)
}

fn code(err: &CryptoError) -> ErrorCode {
    err.error_code()
}

#[test]
fn sign_verify_round_trip_rsa() {
    let pair = key_pair("billing-btps1");
    let mut artifact = sample_artifact();
    sign_in_place(&mut artifact, TRANSPORTER, &pair).unwrap();

    // `signature` is the last member, with members in the reference order.
    assert_eq!(artifact.keys().last().unwrap(), "signature");
    let sig = artifact.get_object("signature").unwrap();
    let keys: Vec<String> = sig.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["algorithmHash", "value", "fingerprint"]);
    assert_eq!(str_of(sig, "algorithmHash"), "sha256");
    assert_eq!(str_of(sig, "value").len(), 344);
    assert_eq!(str_of(sig, "fingerprint"), pair.public_key().fingerprint());

    // The receiver verifies what it parsed from the line.
    let received = reparse(&artifact);
    verify(&received, TRANSPORTER, pair.public_key()).unwrap();
    verify(
        &received,
        TRANSPORTER,
        &dns_key("billing$vendorcorp.test", "btps1").unwrap(),
    )
    .unwrap();

    // Deterministic, and re-signing replaces (does not duplicate) the signature.
    let before = to_js_string(&Value::Object(artifact.clone()));
    sign_in_place(&mut artifact, TRANSPORTER, &pair).unwrap();
    assert_eq!(to_js_string(&Value::Object(artifact.clone())), before);
    assert_eq!(artifact.keys().filter(|k| *k == "signature").count(), 1);

    // sign_value gives the same object without touching the artifact.
    let unsigned = {
        let mut a = artifact.clone();
        a.remove("signature");
        a
    };
    assert_eq!(
        &sign_value(&unsigned, TRANSPORTER, &pair).unwrap(),
        artifact.get_object("signature").unwrap()
    );
}

#[test]
fn resigning_a_vector_reproduces_btps_node_bytes() {
    // RSASSA-PKCS1-v1_5 is deterministic, so signing the reference's artifact with the same
    // key must give exactly the reference's signature object and line.
    for name in [
        "transporter_doc_invoice_plain",
        "transporter_doc_invoice_encrypted",
        "transporter_doc_unicode_plain",
        "transporter_doc_numbers_plain",
        "transporter_doc_nested_plain",
        "transporter_trust_req_plain",
    ] {
        let c = case(name);
        let mut artifact = c.artifact.clone();
        let original = artifact.remove("signature").unwrap();
        sign_in_place(&mut artifact, TRANSPORTER, &key_pair("billing-btps1")).unwrap();
        assert_eq!(artifact.get("signature"), Some(&original), "{name}");
        assert_eq!(
            to_js_string(&Value::Object(artifact)),
            c.meta_str("/line"),
            "{name}"
        );
    }
}

#[test]
fn invoice_plain_verifies() {
    let c = case("transporter_doc_invoice_plain");
    verify(&c.artifact, TRANSPORTER, &public_key("billing-btps1")).unwrap();
    let from = str_of(&c.artifact, "from");
    let selector = str_of(&c.artifact, "selector");
    let key = dns_key(from, selector).unwrap();
    verify(&c.artifact, TRANSPORTER, &key).unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        verify_with_buffer(&c.artifact, TRANSPORTER, &key, &mut buf).unwrap();
    }
}

#[test]
fn tampered_document_value_fails_verification() {
    let c = case("neg_tampered_document_value");
    let err = verify(&c.artifact, TRANSPORTER, &public_key("billing-btps1")).unwrap_err();
    assert_eq!(code(&err), ErrorCode::SigVerification, "{err}");
    assert_eq!(err, CryptoError::Signature(SigFailure::Invalid));
}

#[test]
fn selector_sender_key_mismatch_is_a_fingerprint_mismatch() {
    let c = case("neg_selector_sender_key_mismatch");
    let from = str_of(&c.artifact, "from");
    let selector = str_of(&c.artifact, "selector");
    assert_eq!(selector, "btps2");
    let dns = dns_key(from, selector).unwrap();
    let err = verify(&c.artifact, TRANSPORTER, &dns).unwrap_err();
    assert_eq!(code(&err), ErrorCode::SigMismatch, "{err}");
    // The signature itself is fine: it was made with the btps1 key.
    verify(
        &c.artifact,
        TRANSPORTER,
        &crate::common::public_key_at(c.meta_str("/signerPublicKey")),
    )
    .unwrap();
}

#[test]
fn fingerprint_is_checked_before_the_signature() {
    let c = case("transporter_doc_invoice_plain");
    let mut artifact = c.artifact.clone();
    let other = public_key("billing-btps2");
    // Valid value, foreign fingerprint: mismatch, although the RSA check would pass.
    artifact
        .get_mut("signature")
        .and_then(Value::as_object_mut)
        .unwrap()
        .insert("fingerprint", other.fingerprint());
    let err = verify(&artifact, TRANSPORTER, &public_key("billing-btps1")).unwrap_err();
    assert_eq!(code(&err), ErrorCode::SigMismatch);
    // The other key has the right fingerprint now, but the signature is not its own.
    let err = verify(&artifact, TRANSPORTER, &other).unwrap_err();
    assert_eq!(code(&err), ErrorCode::SigVerification);
}

#[test]
fn malformed_signature_objects_fail_verification() {
    let key = public_key("billing-btps1");
    let c = case("transporter_doc_invoice_plain");
    let with_sig = |f: &dyn Fn(&mut Object)| {
        let mut a = c.artifact.clone();
        f(a.get_mut("signature")
            .and_then(Value::as_object_mut)
            .unwrap());
        a
    };
    let value = str_of(c.artifact.get_object("signature").unwrap(), "value").to_owned();
    let cases = [
        with_sig(&|s| {
            s.insert("algorithmHash", "sha512");
        }),
        with_sig(&|s| {
            s.insert("value", format!("{value}="));
        }),
        with_sig(&|s| {
            s.insert("value", value.replace('+', "-"));
        }),
        with_sig(&|s| {
            s.insert("value", format!(" {value}"));
        }),
        with_sig(&|s| {
            s.insert("value", 1_u32);
        }),
        with_sig(&|s| {
            s.remove("value");
        }),
        with_sig(&|s| {
            s.insert("value", &value[4..]);
        }),
        {
            let mut a = c.artifact.clone();
            a.remove("signature");
            a
        },
        {
            let mut a = c.artifact.clone();
            a.insert("signature", "x");
            a
        },
    ];
    for artifact in &cases {
        let err = verify(artifact, TRANSPORTER, &key).unwrap_err();
        assert_eq!(code(&err), ErrorCode::SigVerification, "{err} {artifact:?}");
    }
}

#[test]
fn signature_position_is_irrelevant_other_positions_are_not() {
    let key = public_key("billing-btps1");
    verify(
        &case("reencoded_signature_first").artifact,
        TRANSPORTER,
        &key,
    )
    .unwrap();
    for name in ["neg_field_order_top_level", "neg_field_order_document"] {
        let err = verify(&case(name).artifact, TRANSPORTER, &key).unwrap_err();
        assert_eq!(code(&err), ErrorCode::SigVerification, "{name}");
    }
}

#[test]
fn select_candidate_by_fingerprint() {
    let c = case("transporter_doc_invoice_plain");
    let candidates = [public_key("billing-btps2"), public_key("billing-btps1")];
    let fp = signature_fingerprint(&c.artifact).unwrap();
    let chosen = select_by_fingerprint(&candidates, fp).unwrap();
    assert_eq!(chosen, &candidates[1]);
    verify(&c.artifact, TRANSPORTER, chosen).unwrap();
    assert!(select_by_fingerprint(&candidates[..1], fp).is_none());
    assert!(signature_fingerprint(&Object::new()).is_none());
}

#[test]
fn sign_text_and_verify_signed_text() {
    // PROTOCOL.md §9.4: a delegator checks its key against DNS by signing this text.
    for pair in [
        key_pair("admin-vendorcorp"),
        KeyPair::from_pem(&read_data("ed25519-private.pem")).unwrap(),
    ] {
        let sig = sign_text(b"btps-key-validation", &pair).unwrap();
        verify_signed_text(&sig, b"btps-key-validation", pair.public_key()).unwrap();
        let err = verify_signed_text(&sig, b"btps-key-validation.", pair.public_key()).unwrap_err();
        assert_eq!(code(&err), ErrorCode::SigVerification);
        let err = verify_signed_text(&sig, b"btps-key-validation", &public_key("evil-admin"))
            .unwrap_err();
        assert_eq!(code(&err), ErrorCode::SigMismatch);
    }
}

#[test]
fn ed25519_artifacts_sign_and_verify() {
    let pair = KeyPair::from_pem(&read_data("ed25519-private.pem")).unwrap();
    let public = PublicKey::from_pem(&read_data("ed25519-public.pem")).unwrap();
    let mut artifact = sample_artifact();
    sign_in_place(&mut artifact, TRANSPORTER, &pair).unwrap();
    let sig = artifact.get_object("signature").unwrap();
    assert_eq!(str_of(sig, "algorithmHash"), "sha256");
    assert_eq!(str_of(sig, "value").len(), 88); // 64 bytes
    let received = reparse(&artifact);
    verify(&received, TRANSPORTER, &public).unwrap();

    let mut tampered = received.clone();
    tampered.insert("to", "finance$evil.test");
    let err = verify(&tampered, TRANSPORTER, &public).unwrap_err();
    assert_eq!(code(&err), ErrorCode::SigVerification);
    let err = verify(&received, TRANSPORTER, &public_key("billing-btps1")).unwrap_err();
    assert_eq!(code(&err), ErrorCode::SigMismatch);
}

#[test]
fn agent_vectors_verify_with_the_agent_key() {
    let key = public_key("agent-device");
    for name in [
        "agent_inbox_fetch",
        "agent_system_ping",
        "agent_draft_update",
    ] {
        verify(&case(name).artifact, AGENT, &key).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = verify(&case("neg_agent_tampered_query").artifact, AGENT, &key).unwrap_err();
    assert_eq!(code(&err), ErrorCode::SigVerification);
}

#[test]
fn transporter_signer_binds_identity_and_selector() {
    let pair = key_pair("billing-btps1");
    let signer = TransporterSigner::new(&pair)
        .identity(Identity::parse("billing$vendorcorp.test").unwrap())
        .selector(Selector::parse("btps1").unwrap());

    // Sets missing `from` and `selector`.
    let mut artifact = Object::new().with("type", "BTPS_DOC").with("document", "x");
    signer.sign(&mut artifact).unwrap();
    assert_eq!(str_of(&artifact, "from"), "billing$vendorcorp.test");
    assert_eq!(str_of(&artifact, "selector"), "btps1");
    assert_eq!(artifact.keys().last().unwrap(), "signature");
    verify(
        &reparse(&artifact),
        TRANSPORTER,
        &dns_key("billing$vendorcorp.test", "btps1").unwrap(),
    )
    .unwrap();

    // Accepts its own identity in another case; keeps the wire spelling.
    let mut artifact = sample_artifact();
    artifact.insert("from", "Billing$VendorCorp.test");
    signer.sign(&mut artifact).unwrap();
    assert_eq!(str_of(&artifact, "from"), "Billing$VendorCorp.test");

    // Refuses to sign for someone else or under another selector.
    for (member, value) in [("from", "finance$buyer.test"), ("selector", "btps2")] {
        let mut artifact = sample_artifact();
        artifact.insert(member, value);
        let before = artifact.clone();
        let err = signer.sign(&mut artifact).unwrap_err();
        assert_eq!(code(&err), ErrorCode::Validation, "{member}");
        assert_eq!(err, CryptoError::ArtifactMember(member));
        assert_eq!(artifact, before, "artifact untouched on error");
    }

    // Either order of the builder steps works.
    let signer2 = TransporterSigner::new(&pair)
        .selector(Selector::parse("btps1").unwrap())
        .identity(Identity::parse("billing$vendorcorp.test").unwrap());
    let mut a = sample_artifact();
    let mut b = sample_artifact();
    signer.sign(&mut a).unwrap();
    signer2.sign(&mut b).unwrap();
    assert_eq!(a, b);
}
