//! Delegation and attestation (PROTOCOL.md §9).

use btps_crypto::{
    CryptoError, DelegationLayer, SystemRandom, attest, check_delegation_rules, delegate,
    sign_encrypt, verify_delegated, verify_delegation,
};
use btps_types::json::{Object, Value, parse_str, to_js_string};
use btps_types::{ErrorCode, Identity, Selector};

use crate::common::{Case, case, dns_key, key_pair, public_key, public_key_at, str_of};

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn reparse(obj: &Object) -> Object {
    let line = to_js_string(&Value::Object(obj.clone()));
    parse_str(&line).unwrap().value.as_object().unwrap().clone()
}

fn delegation_of(obj: &Object) -> &Object {
    obj.get_object("delegation").expect("delegation")
}

fn keys_of(obj: &Object) -> Vec<String> {
    obj.keys().map(ToString::to_string).collect()
}

/// The keys a receiver resolves from DNS for a delegated vector (PROTOCOL.md §6.4).
fn dns_keys(artifact: &Object) -> (btps_crypto::PublicKey, Option<btps_crypto::PublicKey>) {
    let d = delegation_of(artifact);
    let delegator = dns_key(str_of(d, "signedBy"), str_of(d, "selector")).unwrap();
    let attestor = d
        .get_object("attestation")
        .map(|a| dns_key(str_of(a, "signedBy"), str_of(a, "selector")).unwrap());
    (delegator, attestor)
}

#[test]
fn saas_delegation_verifies() {
    let c = case("transporter_delegated_saas");
    let delegator = public_key_at(c.meta_str("/delegatorPublicKey"));
    let device = verify_delegated(&c.artifact, &delegator, None).unwrap();
    assert_eq!(device, public_key("agent-device"));
    let (dns_delegator, attestor) = dns_keys(&c.artifact);
    assert!(attestor.is_none());
    assert_eq!(dns_delegator, delegator);
    verify_delegation(&c.artifact, &dns_delegator, None).unwrap();
    // An attestor key is not needed, and ignored when given.
    verify_delegated(&c.artifact, &delegator, Some(&public_key("evil-admin"))).unwrap();
}

#[test]
fn attested_delegation_verifies() {
    // PROTOCOL.md §9.3 deviation: btps-node rejects this; Rust must accept it.
    let c = case("transporter_delegated_attested");
    assert_eq!(c.meta["expectRust"]["signatureValid"], true);
    let delegator = public_key_at(c.meta_str("/delegatorPublicKey"));
    let attestor = public_key_at(c.meta_str("/attestorPublicKey"));
    let device = verify_delegated(&c.artifact, &delegator, Some(&attestor)).unwrap();
    assert_eq!(device, public_key("agent-device"));
    let (dns_delegator, dns_attestor) = dns_keys(&c.artifact);
    assert_eq!(dns_attestor.as_ref(), Some(&attestor));
    verify_delegated(&c.artifact, &dns_delegator, dns_attestor.as_ref()).unwrap();

    // Attested but no attestor key: "no valid public key".
    let err = verify_delegated(&c.artifact, &delegator, None).unwrap_err();
    assert_eq!(err, CryptoError::MissingAttestorKey);
    assert_eq!(err.error_code(), ErrorCode::ResolvePubkey);
    // The wrong attestor key fails the attestation layer, fingerprint first.
    let err =
        verify_delegated(&c.artifact, &delegator, Some(&public_key("evil-admin"))).unwrap_err();
    assert_eq!(
        err.error_code(),
        ErrorCode::AttestationVerification,
        "{err}"
    );
}

#[test]
fn agent_key_swapped_and_member_moved_fail_the_delegation_signature() {
    for name in [
        "neg_delegation_agent_key_swapped",
        "neg_delegation_member_moved",
    ] {
        let c = case(name);
        let delegator = public_key_at(c.meta_str("/delegatorPublicKey"));
        let err = verify_delegated(&c.artifact, &delegator, None).unwrap_err();
        assert_eq!(
            err.error_code(),
            ErrorCode::DelegationSigVerification,
            "{name}: {err}"
        );
        assert_eq!(
            c.meta_str("/expect/errorCode"),
            err.error_code().as_str(),
            "{name}"
        );
        let (dns_delegator, _) = dns_keys(&c.artifact);
        let err = verify_delegation(&c.artifact, &dns_delegator, None).unwrap_err();
        assert_eq!(
            err.error_code(),
            ErrorCode::DelegationSigVerification,
            "{name}: {err}"
        );
    }
}

#[test]
fn delegation_rules() {
    for name in [
        "neg_delegation_other_domain",
        "neg_delegation_self_without_attestation",
    ] {
        let c = case(name);
        let from = id(str_of(&c.artifact, "from"));
        let err = check_delegation_rules(&from, delegation_of(&c.artifact)).unwrap_err();
        assert_eq!(
            err.error_code(),
            ErrorCode::DelegationInvalid,
            "{name}: {err}"
        );
        let any_key = public_key("admin-vendorcorp");
        let err = verify_delegated(&c.artifact, &any_key, None).unwrap_err();
        assert_eq!(
            err.error_code(),
            ErrorCode::DelegationInvalid,
            "{name}: {err}"
        );
    }
    let from = id("alice$Saas.test");
    let ok = |signed_by: &str, attested: bool| {
        let mut d = Object::new().with("signedBy", signed_by);
        if attested {
            d.insert("attestation", Object::new());
        }
        check_delegation_rules(&from, &d)
    };
    assert!(ok("admin$saas.test", false).is_ok());
    assert!(
        ok("ADMIN$SAAS.TEST", false).is_ok(),
        "same domain, case-insensitive"
    );
    assert!(ok("alice$saas.test", true).is_ok());
    assert!(
        ok("Alice$saas.TEST", false).is_err(),
        "self needs an attestation"
    );
    assert!(ok("admin$other.test", true).is_err());
    assert!(
        ok("admin$sub.saas.test", false).is_err(),
        "a subdomain is another domain"
    );
    assert!(ok("not an identity", false).is_err());
    assert!(check_delegation_rules(&from, &Object::new()).is_err());
    let unsigned_from = Object::new().with("type", "BTPS_DOC");
    let err = verify_delegated(&unsigned_from, &public_key("admin-vendorcorp"), None).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DelegationInvalid);
}

#[test]
fn wrong_delegator_key_is_a_delegation_signature_failure() {
    // A fingerprint mismatch on the delegation layer is not BTP_ERROR_SIG_MISMATCH.
    let c = case("transporter_delegated_saas");
    let err = verify_delegated(&c.artifact, &public_key("evil-admin"), None).unwrap_err();
    assert_eq!(
        err.error_code(),
        ErrorCode::DelegationSigVerification,
        "{err}"
    );
    assert!(matches!(
        err,
        CryptoError::DelegationSignature {
            layer: DelegationLayer::Delegator,
            ..
        }
    ));
}

#[test]
fn tampering_each_layer() {
    let saas = case("transporter_delegated_saas");
    let admin = public_key("admin-vendorcorp");
    let edit = |c: &Case, f: &dyn Fn(&mut Object)| {
        let mut a = c.artifact.clone();
        f(&mut a);
        a
    };
    // The artifact body is covered by S_del (which covers the device signature too).
    let a = edit(&saas, &|a| {
        a.insert("to", "finance$evil.test");
    });
    let err = verify_delegated(&a, &admin, None).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DelegationSigVerification);
    let a = edit(&saas, &|a| {
        a.get_mut("delegation")
            .and_then(Value::as_object_mut)
            .unwrap()
            .insert("issuedAt", "2030-01-01T00:00:00.000Z");
    });
    let err = verify_delegated(&a, &admin, None).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DelegationSigVerification);
    // An agentPubKey that is not a key at all.
    let a = edit(&saas, &|a| {
        a.get_mut("delegation")
            .and_then(Value::as_object_mut)
            .unwrap()
            .insert("agentPubKey", "garbage");
    });
    let err = verify_delegated(&a, &admin, None).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DelegationSigVerification);

    let attested = case("transporter_delegated_attested");
    let billing = public_key("billing-btps1");
    let authority = public_key("attest-trustauthority");
    // S_att covers the delegation (with S_del) and the attestation members.
    let a = edit(&attested, &|a| {
        let d = a
            .get_mut("delegation")
            .and_then(Value::as_object_mut)
            .unwrap();
        d.get_mut("attestation")
            .and_then(Value::as_object_mut)
            .unwrap()
            .insert("issuedAt", "2030-01-01T00:00:00.000Z");
    });
    let err = verify_delegated(&a, &billing, Some(&authority)).unwrap_err();
    assert_eq!(
        err.error_code(),
        ErrorCode::AttestationVerification,
        "{err}"
    );
    let a = edit(&attested, &|a| {
        a.get_mut("delegation")
            .and_then(Value::as_object_mut)
            .unwrap()
            .insert("agentId", "btps_ag_other");
    });
    let err = verify_delegated(&a, &billing, Some(&authority)).unwrap_err();
    assert_eq!(
        err.error_code(),
        ErrorCode::AttestationVerification,
        "{err}"
    );
}

#[test]
fn delegating_the_reference_artifacts_reproduces_their_bytes() {
    // RSASSA-PKCS1-v1_5 is deterministic, so our delegate()/attest() over the device-signed
    // artifact must give exactly the reference's lines.
    let saas = case("transporter_delegated_saas");
    let d = delegation_of(&saas.artifact).clone();
    let mut artifact = saas.artifact.clone();
    artifact.remove("delegation");
    delegate(
        &mut artifact,
        str_of(&d, "agentId"),
        str_of(&d, "agentPubKey"),
        &id(str_of(&d, "signedBy")),
        &sel(str_of(&d, "selector")),
        str_of(&d, "issuedAt"),
        &key_pair("admin-vendorcorp"),
    )
    .unwrap();
    assert_eq!(
        to_js_string(&Value::Object(artifact)),
        saas.meta_str("/line")
    );

    let attested = case("transporter_delegated_attested");
    let d = delegation_of(&attested.artifact).clone();
    let att = d.get_object("attestation").unwrap().clone();
    let mut artifact = attested.artifact.clone();
    artifact.remove("delegation");
    delegate(
        &mut artifact,
        str_of(&d, "agentId"),
        str_of(&d, "agentPubKey"),
        &id(str_of(&d, "signedBy")),
        &sel(str_of(&d, "selector")),
        str_of(&d, "issuedAt"),
        &key_pair("billing-btps1"),
    )
    .unwrap();
    attest(
        &mut artifact,
        &id(str_of(&att, "signedBy")),
        &sel(str_of(&att, "selector")),
        str_of(&att, "issuedAt"),
        &key_pair("attest-trustauthority"),
    )
    .unwrap();
    assert_eq!(
        to_js_string(&Value::Object(artifact)),
        attested.meta_str("/line")
    );
}

/// A device-signed, encrypted artifact from `billing$vendorcorp.test`, as an agent makes it.
fn device_signed_artifact() -> Object {
    let mut artifact = Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", "billing$vendorcorp.test")
        .with("to", "finance$buyer.test")
        .with("selector", "btps1")
        .with("id", "3f0c2a51-0000-4000-8000-00000000000a")
        .with("issuedAt", "2026-11-22T17:00:00.000Z");
    let document = parse_str(r#"{"title":"Invoice","n":1.50}"#).unwrap().value;
    sign_encrypt(
        &mut artifact,
        &document,
        Some(&public_key("finance-btps1")),
        &key_pair("agent-device"),
        &SystemRandom,
    )
    .unwrap();
    artifact
}

#[test]
fn own_saas_delegation_verifies() {
    let agent = public_key("agent-device");
    let mut artifact = device_signed_artifact();
    let signature_before = artifact.get("signature").cloned();
    delegate(
        &mut artifact,
        "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60",
        &agent.to_pem(),
        &id("admin$vendorcorp.test"),
        &sel("btps1"),
        "2026-11-22T17:00:01.000Z",
        &key_pair("admin-vendorcorp"),
    )
    .unwrap();
    assert_eq!(artifact.keys().last().unwrap(), "delegation");
    assert_eq!(
        artifact.get("signature").cloned(),
        signature_before,
        "S_agent unchanged"
    );
    let d = delegation_of(&artifact);
    assert_eq!(
        keys_of(d),
        [
            "agentId",
            "agentPubKey",
            "signedBy",
            "issuedAt",
            "selector",
            "signature"
        ]
    );
    assert_eq!(str_of(d, "agentPubKey"), agent.to_pem());
    let received = reparse(&artifact);
    let (delegator, _) = dns_keys(&received);
    assert_eq!(
        verify_delegated(&received, &delegator, None).unwrap(),
        agent
    );
    let out = btps_crypto::decrypt_document(&received, &key_pair("finance-btps1")).unwrap();
    assert_eq!(out.plaintext, r#"{"title":"Invoice","n":1.5}"#);

    // Re-delegating (a delivery retry) replaces the delegation.
    delegate(
        &mut artifact,
        "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60",
        &agent.to_pem_with_newline(),
        &id("admin$vendorcorp.test"),
        &sel("btps1"),
        "2026-11-22T17:05:00.000Z",
        &key_pair("admin-vendorcorp"),
    )
    .unwrap();
    assert_eq!(artifact.keys().filter(|k| *k == "delegation").count(), 1);
    assert_eq!(
        str_of(delegation_of(&artifact), "issuedAt"),
        "2026-11-22T17:05:00.000Z"
    );
    verify_delegated(&reparse(&artifact), &delegator, None).unwrap();
}

#[test]
fn own_attested_delegation_verifies() {
    let agent = public_key("agent-device");
    let mut artifact = device_signed_artifact();
    delegate(
        &mut artifact,
        "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60",
        &agent.to_pem_with_newline(),
        &id("billing$vendorcorp.test"),
        &sel("btps1"),
        "2026-11-22T17:00:01.000Z",
        &key_pair("billing-btps1"),
    )
    .unwrap();
    // Self-signed without attestation is not acceptable yet.
    let err = verify_delegated(&artifact, &public_key("billing-btps1"), None).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::DelegationInvalid);

    attest(
        &mut artifact,
        &id("attest$trustauthority.test"),
        &sel("btps1"),
        "2026-11-22T17:00:02.000Z",
        &key_pair("attest-trustauthority"),
    )
    .unwrap();
    let d = delegation_of(&artifact);
    assert_eq!(
        keys_of(d),
        [
            "agentId",
            "agentPubKey",
            "signedBy",
            "issuedAt",
            "selector",
            "signature",
            "attestation"
        ]
    );
    assert_eq!(
        keys_of(d.get_object("attestation").unwrap()),
        ["signedBy", "issuedAt", "selector", "signature"]
    );
    let received = reparse(&artifact);
    let (delegator, attestor) = dns_keys(&received);
    assert_eq!(
        verify_delegated(&received, &delegator, attestor.as_ref()).unwrap(),
        agent
    );
}

#[test]
fn delegate_refuses_artifacts_the_agent_did_not_sign() {
    let mut artifact = device_signed_artifact();
    // Claiming another device key than the one that signed.
    let err = delegate(
        &mut artifact,
        "btps_ag_x",
        &public_key("mallory-unpublished").to_pem(),
        &id("admin$vendorcorp.test"),
        &sel("btps1"),
        "2026-11-22T17:00:01.000Z",
        &key_pair("admin-vendorcorp"),
    )
    .unwrap_err();
    assert_eq!(
        err.error_code(),
        ErrorCode::DelegationSigVerification,
        "{err}"
    );
    assert!(!artifact.contains_key("delegation"));

    // Not signed at all.
    let mut unsigned = device_signed_artifact();
    unsigned.remove("signature");
    assert!(
        delegate(
            &mut unsigned,
            "btps_ag_x",
            &public_key("agent-device").to_pem(),
            &id("admin$vendorcorp.test"),
            &sel("btps1"),
            "2026-11-22T17:00:01.000Z",
            &key_pair("admin-vendorcorp"),
        )
        .is_err()
    );
    // Nothing to attest without a delegation.
    let mut plain = device_signed_artifact();
    assert!(
        attest(
            &mut plain,
            &id("attest$trustauthority.test"),
            &sel("btps1"),
            "2026-11-22T17:00:02.000Z",
            &key_pair("attest-trustauthority"),
        )
        .is_err()
    );
}
