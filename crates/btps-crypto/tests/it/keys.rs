//! Key loading, encodings, fingerprints and the key size policy (PROTOCOL.md §4.2, §6.1, §6.3).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use btps_crypto::{CryptoError, KeyPair, KeyPolicy, KeyType, PublicKey};
use btps_types::ErrorCode;

use crate::common::{case, dns_key, key_pair, public_key, read_data, read_vector, str_of};

const VECTOR_KEYS: &[&str] = &[
    "admin-vendorcorp",
    "agent-device",
    "attest-trustauthority",
    "billing-btps1",
    "billing-btps2",
    "evil-admin",
    "finance-btps1",
    "finance-btps2",
    "mallory-unpublished",
    "server-buyer",
];

#[test]
fn every_vector_key_pair_matches_its_public_key() {
    for name in VECTOR_KEYS {
        let public = public_key(name);
        let pair = key_pair(name);
        assert_eq!(pair.public_key(), &public, "{name}");
        assert_eq!(public.key_type(), KeyType::Rsa, "{name}");
        assert_eq!(public.bits(), 2048, "{name}");
        assert_eq!(public.fingerprint().len(), 44, "{name}");
        pair.check_matches(&public).unwrap();
    }
    let other = public_key("billing-btps2");
    assert!(key_pair("billing-btps1").check_matches(&other).is_err());
}

#[test]
fn fingerprint_is_the_one_btps_node_wrote() {
    // The signature of transporter_doc_invoice_plain names billing-btps1 by fingerprint.
    let c = case("transporter_doc_invoice_plain");
    let sig = c.artifact.get_object("signature").unwrap();
    assert_eq!(
        public_key("billing-btps1").fingerprint(),
        str_of(sig, "fingerprint")
    );
    assert_eq!(
        public_key("billing-btps1").fingerprint(),
        "YJY/RIXLGkZafXlLSmLA/HtgadrWddVjJc4sMz09L9w="
    );
}

#[test]
fn pem_forms_round_trip() {
    let file = read_vector("keys/billing-btps1-public.pem");
    let key = PublicKey::from_pem(&file).unwrap();
    // PROTOCOL.md §6.1: 64-character lines joined by LF, no trailing LF.
    assert_eq!(key.to_pem(), file.trim_end());
    assert!(!key.to_pem().ends_with('\n'));
    assert!(key.to_pem().lines().all(|l| l.len() <= 64));
    assert_eq!(key.to_pem_with_newline(), format!("{}\n", key.to_pem()));
    for text in [
        key.to_pem(),
        key.to_pem_with_newline(),
        key.to_pem().replace('\n', "\r\n"),
    ] {
        assert_eq!(PublicKey::from_pem(&text).unwrap(), key);
    }
    assert_eq!(
        PublicKey::from_spki_der(key.spki_der())
            .unwrap()
            .fingerprint(),
        key.fingerprint()
    );
}

#[test]
fn dns_p_value_is_the_base64_spki() {
    let key = public_key("billing-btps1");
    let from_dns = dns_key("billing$vendorcorp.test", "btps1").expect("dns record");
    assert_eq!(from_dns, key);
    let table = read_vector("dns.json");
    assert!(table.contains(&format!("p={}", key.to_base64_spki())));
    assert_eq!(
        PublicKey::from_base64_spki(&key.to_base64_spki()).unwrap(),
        key
    );
    // Different keys at different selectors.
    assert_ne!(dns_key("billing$vendorcorp.test", "btps2").unwrap(), key);
    assert!(dns_key("billing$vendorcorp.test", "nope").is_none());
}

#[test]
fn agent_pub_key_in_btps_node_form() {
    // btps-node writes agentPubKey as Node's PEM export: with a trailing "\n".
    let c = case("transporter_delegated_saas");
    let delegation = c.artifact.get_object("delegation").unwrap();
    let pem = str_of(delegation, "agentPubKey");
    let agent = public_key("agent-device");
    assert_eq!(pem, agent.to_pem_with_newline());
    assert_eq!(PublicKey::from_pem(pem).unwrap(), agent);
}

#[test]
fn pkcs1_public_pem_equals_spki() {
    let pkcs1 = read_data("billing-btps1-public-pkcs1.pem");
    assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    let key = PublicKey::from_pem(&pkcs1).unwrap();
    let spki = public_key("billing-btps1");
    assert_eq!(key, spki);
    assert_eq!(key.spki_der(), spki.spki_der());
    assert_eq!(key.fingerprint(), spki.fingerprint());
    assert_eq!(key.to_pem(), spki.to_pem());
}

#[test]
fn pkcs1_private_pem_equals_pkcs8() {
    let pkcs1 = read_data("billing-btps1-private-pkcs1.pem");
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let from_pkcs1 = KeyPair::from_pem(&pkcs1).unwrap();
    let from_pkcs8 = key_pair("billing-btps1");
    assert_eq!(from_pkcs1.public_key(), from_pkcs8.public_key());
    // RSASSA-PKCS1-v1_5 is deterministic: same key, same signature.
    let msg = b"btps-key-validation";
    assert_eq!(
        from_pkcs1.sign_raw(msg).unwrap(),
        from_pkcs8.sign_raw(msg).unwrap()
    );
    // And it can decrypt (OAEP) like the PKCS#8 form.
    let wrapped = btps_crypto::oaep_wrap(from_pkcs8.public_key(), &[5; 32]).unwrap();
    assert_eq!(
        btps_crypto::oaep_unwrap(&from_pkcs1, &wrapped).unwrap(),
        [5; 32]
    );
    // PKCS#8 export of the PKCS#1-loaded key reloads to the same key.
    let again = KeyPair::from_pem(&from_pkcs1.to_pkcs8_pem().unwrap()).unwrap();
    assert_eq!(again.public_key(), from_pkcs8.public_key());
}

#[test]
fn rsa_1024_rejected_by_default() {
    let pem = read_data("rsa1024-public.pem");
    let err = PublicKey::from_pem(&pem).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::ResolvePubkey, "{err}");
    assert!(
        matches!(err, CryptoError::KeySize { bits: 1024 }),
        "{err:?}"
    );
    let key_b64 = KeyPolicy::DEFAULT
        .allowing_rsa_1024()
        .parse_pem(&pem)
        .unwrap()
        .to_base64_spki();
    assert_eq!(
        PublicKey::from_base64_spki(&key_b64)
            .unwrap_err()
            .error_code(),
        ErrorCode::ResolvePubkey
    );
    // Signing keys below 2048 bits are never loaded.
    assert!(KeyPair::from_pem(&read_data("rsa1024-private.pem")).is_err());
}

#[test]
fn rsa_1024_accepted_when_allowed() {
    let policy = KeyPolicy::DEFAULT.allowing_rsa_1024();
    let key = policy.parse_pem(&read_data("rsa1024-public.pem")).unwrap();
    assert_eq!(key.bits(), 1024);
    assert_eq!(key.key_type(), KeyType::Rsa);
    // `openssl dgst -sha256 -sign` over the ASCII text `btps-key-validation`.
    let sig = STANDARD
        .decode(read_data("rsa1024-btps-key-validation.sig.b64").trim())
        .unwrap();
    key.verify_raw(b"btps-key-validation", &sig).unwrap();
    assert!(key.verify_raw(b"btps-key-validatioN", &sig).is_err());
    assert_eq!(
        policy.parse_base64_spki(&key.to_base64_spki()).unwrap(),
        key
    );
}

#[test]
fn rsa_3072_accepted() {
    let key = PublicKey::from_pem(&read_data("rsa3072-public.pem")).unwrap();
    assert_eq!(key.bits(), 3072);
}

#[test]
fn ed25519_fixture_matches_openssl() {
    let public = PublicKey::from_pem(&read_data("ed25519-public.pem")).unwrap();
    let pair = KeyPair::from_pem(&read_data("ed25519-private.pem")).unwrap();
    assert_eq!(public.key_type(), KeyType::Ed25519);
    assert_eq!(pair.key_type(), KeyType::Ed25519);
    assert_eq!(pair.public_key(), &public);
    assert_eq!(public.spki_der().len(), 44);
    // `openssl pkeyutl -sign -rawin` over `btps-key-validation`; Ed25519 is deterministic.
    let sig = STANDARD
        .decode(read_data("ed25519-btps-key-validation.sig.b64").trim())
        .unwrap();
    public.verify_raw(b"btps-key-validation", &sig).unwrap();
    assert!(public.verify_raw(b"btps-key-validation!", &sig).is_err());
    assert_eq!(pair.sign_raw(b"btps-key-validation").unwrap(), sig);
    // Padded base64 (`=`) parses: an Ed25519 `p=` value ends in `=`.
    assert!(public.to_base64_spki().ends_with('='));
    assert_eq!(
        PublicKey::from_base64_spki(&public.to_base64_spki()).unwrap(),
        public
    );
}

#[test]
fn ed25519_keys_do_not_encrypt() {
    let ed = PublicKey::from_pem(&read_data("ed25519-public.pem")).unwrap();
    let err = btps_crypto::oaep_wrap(&ed, &[1; 32]).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::ResolvePubkey);
}

#[test]
fn generated_keys_round_trip() {
    let rsa = KeyPair::generate_rsa2048().unwrap();
    assert_eq!(rsa.key_type(), KeyType::Rsa);
    assert_eq!(rsa.public_key().bits(), 2048);
    let pem = rsa.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let again = KeyPair::from_pem(&pem).unwrap();
    assert_eq!(again.public_key(), rsa.public_key());
    assert_eq!(again.sign_raw(b"x").unwrap(), rsa.sign_raw(b"x").unwrap());

    let ed = KeyPair::generate_ed25519().unwrap();
    let again = KeyPair::from_pem(&ed.to_pkcs8_pem().unwrap()).unwrap();
    assert_eq!(again.public_key(), ed.public_key());
    assert_ne!(
        ed.public_key(),
        KeyPair::generate_ed25519().unwrap().public_key()
    );
}

#[test]
fn key_pair_debug_has_no_private_material() {
    let pem = read_vector("keys/billing-btps1-private.pem");
    let pair = KeyPair::from_pem(&pem).unwrap();
    let private_der = STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    for debug in [format!("{pair:?}"), format!("{pair:#?}")] {
        assert!(!debug.contains("PRIVATE"), "{debug}");
        // No line of the private PEM body, in any case.
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            if let Some(chunk) = line.get(..16) {
                assert!(!debug.contains(chunk), "{debug}");
            }
        }
        // No hex or base64 of any 16-byte window of the private DER past the public prefix.
        let hex: String = private_der.iter().map(|b| format!("{b:02x}")).collect();
        let lower = debug.to_lowercase();
        for start in (300..private_der.len() - 16).step_by(16) {
            assert!(!lower.contains(&hex[start * 2..start * 2 + 32]), "{debug}");
        }
        // Short and useful: the fingerprint is shown.
        assert!(debug.contains(pair.public_key().fingerprint()), "{debug}");
        assert!(debug.len() < 400, "{debug}");
    }
    let ed = KeyPair::from_pem(&read_data("ed25519-private.pem")).unwrap();
    let debug = format!("{ed:?}");
    let ed_der = STANDARD
        .decode(
            read_data("ed25519-private.pem")
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let seed = &ed_der[ed_der.len() - 32..];
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!debug.to_lowercase().contains(&seed_hex[..16]), "{debug}");
    assert!(!debug.contains(&STANDARD.encode(seed)[..12]), "{debug}");
}

#[test]
fn malformed_public_keys_are_rejected() {
    let key = public_key("billing-btps1");
    let der = key.spki_der().to_vec();
    let mut trailing = der.clone();
    trailing.push(0);
    let mut truncated = der.clone();
    truncated.pop();
    let mut wrong_oid = der.clone();
    // rsaEncryption ...01 01 01 → ...01 01 0b (sha256WithRSAEncryption).
    let oid_end = der.windows(3).position(|w| w == [1, 1, 1]).unwrap() + 2;
    wrong_oid[oid_end] = 0x0b;
    for bad in [
        &trailing[..],
        &truncated[..],
        &wrong_oid[..],
        &[][..],
        &[0x30, 0x00][..],
    ] {
        let err = PublicKey::from_spki_der(bad).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::ResolvePubkey, "{err}");
    }
    let b64 = key.to_base64_spki();
    for bad in [
        format!("{b64}="),
        format!(" {b64}"),
        b64.replace('A', "*"),
        b64[..b64.len() - 4].to_owned(),
        String::new(),
    ] {
        assert!(PublicKey::from_base64_spki(&bad).is_err(), "{bad}");
    }
    let pem = key.to_pem();
    for bad in [
        pem.replace("PUBLIC KEY-----\n", "CERTIFICATE-----\n"),
        pem.replace("-----END PUBLIC KEY-----", ""),
        pem.replace("-----END PUBLIC KEY-----", "-----END PRIVATE KEY-----"),
        format!("{pem}\ntrailing"),
        read_vector("keys/billing-btps1-private.pem"),
        String::new(),
    ] {
        assert!(PublicKey::from_pem(&bad).is_err(), "{bad}");
    }
    // A private key PEM is not a public key, and a public key PEM is not a key pair.
    assert!(KeyPair::from_pem(&pem).is_err());
}
