//! Delegators, attestors and the device send (PROTOCOL.md §6.6, §9), and verifying and
//! decrypting received artifacts (§5.3, §5.4) with the vectors.

use std::sync::{Arc, Mutex};

use btps_client::{
    Attestor, Client, ClientError, Delegator, DeliveryStatus, DeviceSender, decrypt_artifact,
    device_delegation_records,
};
use btps_crypto::{KeyPair, PublicKey, verify_delegated};
use btps_test_support::vectors::VectorSet;
use btps_types::artifact::TransporterType;
use btps_types::json::{Object, parse_str};
use btps_types::{ErrorCode, Identity, Selector};

use crate::support::{
    Act, Pki, ScriptServer, config, echo, vector_dns, vector_key, vector_public_pem, vectors_dir,
};

fn invoice() -> Object {
    let set = VectorSet::load(&vectors_dir()).unwrap();
    let case = set
        .cases
        .iter()
        .find(|c| c.name == "transporter_doc_invoice_plain")
        .unwrap();
    let line = parse_str(&case.line).unwrap().value;
    line.as_object()
        .unwrap()
        .get_object("document")
        .unwrap()
        .clone()
}

fn id(s: &str) -> Identity {
    s.parse().unwrap()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

#[tokio::test]
async fn delegators_refuse_keys_that_are_not_in_dns() {
    let (_dns_server, dns) = vector_dns().await;
    Delegator::new(
        id("admin$vendorcorp.test"),
        sel("btps1"),
        vector_key("admin-vendorcorp"),
        &dns,
    )
    .await
    .unwrap();
    let wrong = Delegator::new(
        id("admin$vendorcorp.test"),
        sel("btps1"),
        vector_key("mallory-unpublished"),
        &dns,
    )
    .await;
    match wrong {
        Err(e @ ClientError::KeyNotPublished { .. }) => {
            assert_eq!(e.error_code(), ErrorCode::SigMismatch);
        }
        other => panic!("{other:?}"),
    }
    let missing = Delegator::new(
        id("admin$vendorcorp.test"),
        sel("btps9"),
        vector_key("admin-vendorcorp"),
        &dns,
    )
    .await;
    assert!(matches!(missing, Err(ClientError::Dns(_))), "{missing:?}");
    assert!(
        Attestor::new(
            id("attest$trustauthority.test"),
            sel("btps1"),
            vector_key("billing-btps1"),
            &dns,
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn the_device_send_delegates_afresh_for_every_attempt() {
    let pki = Pki::new(&["localhost"]);
    let (_dns_server, dns) = vector_dns().await;
    let received: Arc<Mutex<Vec<Object>>> = Arc::default();
    let server = {
        let received = received.clone();
        ScriptServer::start(&pki, move |conn| {
            let received = received.clone();
            Box::new(move |req| {
                received.lock().unwrap().push(req.clone());
                if conn == 0 {
                    // Lost: the connection drops before any reply.
                    vec![Act::Close]
                } else {
                    vec![Act::Reply(echo(req))]
                }
            })
        })
        .await
    };
    let client = Client::new(
        config(&pki).with_override("buyer.test", server.addr()),
        dns.clone(),
    )
    .unwrap();
    let delegator = Delegator::new(
        id("admin$vendorcorp.test"),
        sel("btps1"),
        vector_key("admin-vendorcorp"),
        &dns,
    )
    .await
    .unwrap();
    let device = KeyPair::generate_rsa2048().unwrap();
    let device_public = device.public_key().clone();
    let sender = DeviceSender::new(
        client,
        id("billing$vendorcorp.test"),
        "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60",
        device,
        delegator,
    );
    let signed = sender
        .sign(
            TransporterType::BtpsDoc,
            &id("finance$buyer.test"),
            invoice(),
            None,
            true,
        )
        .await
        .unwrap();
    assert!(!signed.contains_key("delegation"));
    // The selector names the receiver's key (its host record's `s`).
    assert_eq!(signed.get_str("selector"), Some("btps1"));
    let delivery = sender.send(&signed).await.unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Accepted);
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    let admin = PublicKey::from_pem(&vector_public_pem("admin-vendorcorp")).unwrap();
    for artifact in &received {
        // Same device signature, each with a valid delegation of its own.
        assert_eq!(artifact.get("signature"), signed.get("signature"));
        assert_eq!(
            verify_delegated(artifact, &admin, None).unwrap(),
            device_public
        );
        let keys: Vec<String> = artifact.keys().map(ToString::to_string).collect();
        assert_eq!(keys.last().map(String::as_str), Some("delegation"));
    }
    assert_ne!(
        received[0]
            .get_object("delegation")
            .unwrap()
            .get("signature"),
        received[1]
            .get_object("delegation")
            .unwrap()
            .get("signature")
    );
    // The receiver can decrypt it after verifying the delegation against DNS.
    let finance = vector_key("finance-btps1");
    let decrypted = decrypt_artifact(&dns, &received[1], &[(sel("btps1"), finance)])
        .await
        .unwrap();
    assert!(decrypted.encrypted);
    assert_eq!(
        decrypted.document,
        btps_types::json::Value::Object(invoice())
    );

    let records = sender.device_records(120).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].name, "_btps.delegation.billing.vendorcorp.test");
    assert_eq!(
        records[0].text,
        "v=1.0.0;d=btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60"
    );
    assert_eq!(
        records[1].name,
        "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60._btps.device.billing.vendorcorp.test"
    );
    assert!(records[1].text.starts_with("v=1.0.0;k=rsa;p=MIIB"));
    assert_eq!(records[1].ttl, 120);
}

#[tokio::test]
async fn attested_delegations() {
    let (_dns_server, dns) = vector_dns().await;
    let pki = Pki::new(&["localhost"]);
    let client = Client::new(config(&pki), dns.clone()).unwrap();
    // A custom-domain user delegating for itself, attested by a third identity.
    let delegator = Delegator::new(
        id("billing$vendorcorp.test"),
        sel("btps1"),
        vector_key("billing-btps1"),
        &dns,
    )
    .await
    .unwrap();
    let attestor = Attestor::new(
        id("attest$trustauthority.test"),
        sel("btps1"),
        vector_key("attest-trustauthority"),
        &dns,
    )
    .await
    .unwrap();
    let sender = DeviceSender::new(
        client,
        id("billing$vendorcorp.test"),
        "btps_ag_1",
        KeyPair::generate_rsa2048().unwrap(),
        delegator,
    )
    .with_attestor(attestor);
    let signed = sender
        .sign(
            TransporterType::BtpsDoc,
            &id("finance$buyer.test"),
            invoice(),
            None,
            false,
        )
        .await
        .unwrap();
    let delegated = sender
        .delegated(
            &signed,
            btps_types::UnixMillis::parse("2025-07-01T09:30:00Z").unwrap(),
        )
        .unwrap();
    let attestation = delegated
        .get_object("delegation")
        .unwrap()
        .get_object("attestation")
        .unwrap();
    assert_eq!(
        attestation.get_str("signedBy"),
        Some("attest$trustauthority.test")
    );
    let plain = decrypt_artifact(&dns, &delegated, &[]).await.unwrap();
    assert!(!plain.encrypted);
    // Without the attestation, a self-delegation is invalid.
    let mut bare = delegated.clone();
    if let Some(btps_types::json::Value::Object(d)) = bare.get_mut("delegation") {
        d.remove("attestation");
    }
    assert!(matches!(
        decrypt_artifact(&dns, &bare, &[]).await,
        Err(ClientError::BadSignature(_))
    ));
}

#[tokio::test]
async fn received_artifacts_are_verified_then_decrypted_with_the_right_key() {
    let set = VectorSet::load(&vectors_dir()).unwrap();
    let (_dns_server, dns) = vector_dns().await;
    let case = |name: &str| {
        let c = set.cases.iter().find(|c| c.name == name).unwrap();
        let v = parse_str(&c.line).unwrap().value;
        (v.as_object().unwrap().clone(), c.decrypt.clone())
    };
    let keys = || {
        // Newest first.
        vec![
            (sel("btps2"), vector_key("finance-btps2")),
            (sel("btps1"), vector_key("finance-btps1")),
        ]
    };
    for name in [
        "transporter_doc_invoice_encrypted",
        "transporter_doc_unicode_encrypted",
        "transporter_doc_rotated_selector_btps2",
        "transporter_delegated_saas",
    ] {
        let (artifact, decrypt) = case(name);
        let d = decrypt_artifact(&dns, &artifact, &keys())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(expected) = decrypt {
            assert_eq!(d.plaintext, expected.document_json, "{name}");
        }
    }
    // Only the old key: not for us.
    let (artifact, _) = case("neg_rotated_decrypt_with_old_key");
    let e = decrypt_artifact(
        &dns,
        &artifact,
        &[(sel("btps1"), vector_key("finance-btps1"))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::DecryptionUnintended);
    // Never decrypts what does not verify.
    let (artifact, _) = case("neg_tampered_ciphertext");
    let e = decrypt_artifact(&dns, &artifact, &keys())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::BadSignature(_)), "{e:?}");
    assert_eq!(e.error_code(), ErrorCode::SigVerification);
    let (artifact, _) = case("neg_gcm_auth_fails_resigned");
    let e = decrypt_artifact(&dns, &artifact, &keys())
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::DecryptionFailed);
}

#[test]
fn device_delegation_records_for_several_devices() {
    let a = KeyPair::generate_ed25519().unwrap();
    let b = KeyPair::generate_ed25519().unwrap();
    let records = device_delegation_records(
        &id("alice$saas.test"),
        &[("btps_ag_a", a.public_key()), ("btps_ag_b", b.public_key())],
        0,
    )
    .unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].text, "v=1.0.0;d=btps_ag_a,btps_ag_b");
    assert_eq!(records[0].ttl, 300);
    assert!(
        records[2]
            .name
            .starts_with("btps_ag_b._btps.device.alice.saas.test")
    );
    assert!(
        device_delegation_records(
            &id("alice$saas.test"),
            &[("not a label", a.public_key())],
            0
        )
        .is_err()
    );
    // The key record names the key type (PROTOCOL.md §6.6): Ed25519 and RSA devices mixed.
    let rsa = KeyPair::generate_rsa2048().unwrap();
    let records = device_delegation_records(
        &id("alice$saas.test"),
        &[
            ("btps_ag_a", a.public_key()),
            ("btps_ag_r", rsa.public_key()),
        ],
        60,
    )
    .unwrap();
    assert!(
        records[1].text.starts_with("v=1.0.0;k=ed25519;p="),
        "{}",
        records[1].text
    );
    assert_eq!(
        records[1].text,
        format!("v=1.0.0;k=ed25519;p={}", a.public_key().to_base64_spki())
    );
    assert!(records[2].text.starts_with("v=1.0.0;k=rsa;p="));
}

#[tokio::test]
async fn an_ed25519_device_sender_signs_delegates_and_publishes_k_ed25519() {
    let (_dns_server, dns) = vector_dns().await;
    let pki = Pki::new(&["localhost"]);
    let client = Client::new(config(&pki), dns.clone()).unwrap();
    let delegator = Delegator::new(
        id("admin$vendorcorp.test"),
        sel("btps1"),
        vector_key("admin-vendorcorp"),
        &dns,
    )
    .await
    .unwrap();
    let device = KeyPair::generate_ed25519().unwrap();
    let device_public = device.public_key().clone();
    let sender = DeviceSender::new(
        client,
        id("billing$vendorcorp.test"),
        "btps_ag_ed",
        device,
        delegator,
    );
    let signed = sender
        .sign(
            TransporterType::BtpsDoc,
            &id("finance$buyer.test"),
            invoice(),
            None,
            true,
        )
        .await
        .unwrap();
    let delegated = sender
        .delegated(
            &signed,
            btps_types::UnixMillis::parse("2025-07-01T09:30:00Z").unwrap(),
        )
        .unwrap();
    let admin = PublicKey::from_pem(&vector_public_pem("admin-vendorcorp")).unwrap();
    let verified = verify_delegated(&delegated, &admin, None).unwrap();
    assert_eq!(verified, device_public);
    assert_eq!(verified.key_type(), btps_crypto::KeyType::Ed25519);
    let records = sender.device_records(0).unwrap();
    assert_eq!(
        records[1].name,
        "btps_ag_ed._btps.device.billing.vendorcorp.test"
    );
    assert!(records[1].text.starts_with("v=1.0.0;k=ed25519;p="));
}
