//! Every case of `shared/vectors/index.json` through the crypto layer: the signature verdict
//! (transporter, delegated, agent, response), then decryption where the case has a
//! `decrypt` member, compared with `expectRust` (when present) or `expect`.
//!
//! Schema-level outcomes (a missing `selector`, a missing document field, an unknown
//! identity) belong to other crates and are listed in [`NOT_CRYPTO`].

use btps_crypto::{PublicKey, decrypt_document, verify, verify_delegated};
use btps_types::ErrorCode;
use btps_types::json::{Object, ParseLimits, parse};
use btps_types::signing::{AGENT, RESPONSE, TRANSPORTER};

use crate::common::{case_meta, dns_key, key_pair_at, public_key_at, read_vector};

/// Cases whose expected outcome is decided outside this crate, with the reason.
const NOT_CRYPTO: &[(&str, &str)] = &[
    (
        "neg_missing_selector",
        "schema: BTP_ERROR_VALIDATION before key lookup",
    ),
    (
        "neg_document_missing_required_field",
        "schema: BTP_ERROR_VALIDATION, the signature itself is valid",
    ),
    ("identity_lookup_unknown", "server: identity not hosted"),
];

/// The first error this crate reports for a case (`None`: accepted).
fn crypto_verdict(meta: &serde_json::Value) -> Option<String> {
    let line = meta["line"].as_str().unwrap();
    let parsed = match parse(line.as_bytes(), &ParseLimits::DEFAULT) {
        Ok(p) => p,
        Err(e) => return Some(e.error_code().as_str().to_owned()),
    };
    if parsed.duplicates.has_conflicting() {
        return Some(ErrorCode::Validation.as_str().to_owned());
    }
    let Some(artifact) = parsed.value.as_object() else {
        return Some(ErrorCode::Validation.as_str().to_owned());
    };
    if meta["signed"] == true {
        if !artifact.contains_key("signature") {
            return Some(ErrorCode::Validation.as_str().to_owned());
        }
        if let Err(code) = check_signature(meta, artifact) {
            return Some(code.as_str().to_owned());
        }
    }
    if let Some(decrypt) = meta.get("decrypt") {
        let target = if decrypt["artifactPath"] == "document" {
            artifact.get_object("document").expect("envelope")
        } else {
            artifact
        };
        let receiver = key_pair_at(decrypt["receiverPrivateKey"].as_str().unwrap());
        match decrypt_document(target, &receiver) {
            Ok(out) => {
                if out.plaintext != decrypt["documentJson"].as_str().unwrap() {
                    return Some("PLAINTEXT_MISMATCH".to_owned());
                }
            }
            Err(e) => return Some(e.error_code().as_str().to_owned()),
        }
    }
    None
}

fn check_signature(meta: &serde_json::Value, a: &Object) -> Result<(), ErrorCode> {
    let s = |o: &Object, k: &str| o.get_str(k).unwrap_or_default().to_owned();
    let resolve = |identity: &str, selector: &str| -> Result<PublicKey, ErrorCode> {
        dns_key(identity, selector).ok_or(ErrorCode::ResolvePubkey)
    };
    match meta["kind"].as_str().unwrap() {
        "transporter" if a.contains_key("delegation") => {
            let d = a.get_object("delegation").ok_or(ErrorCode::Validation)?;
            let delegator = resolve(&s(d, "signedBy"), &s(d, "selector"))?;
            let attestor = match d.get_object("attestation") {
                Some(att) => Some(resolve(&s(att, "signedBy"), &s(att, "selector"))?),
                None => None,
            };
            verify_delegated(a, &delegator, attestor.as_ref()).map(drop)
        }
        "transporter" => verify(a, TRANSPORTER, &resolve(&s(a, "from"), &s(a, "selector"))?),
        "response" => verify(a, RESPONSE, &resolve(&s(a, "signedBy"), &s(a, "selector"))?),
        "agent" => {
            // Onboarding: the key travels in the request (PROTOCOL.md §8.2).
            let key = if a.get_str("action") == Some("auth.request") {
                let pem = a
                    .get_object("document")
                    .and_then(|d| d.get_str("publicKey"))
                    .ok_or(ErrorCode::Validation)?;
                PublicKey::from_pem(pem).map_err(|e| e.error_code())?
            } else {
                public_key_at(meta["signerPublicKey"].as_str().unwrap())
            };
            verify(a, AGENT, &key)
        }
        other => panic!("unexpected signed kind {other}"),
    }
    .map_err(|e| e.error_code())
}

#[test]
fn every_vector_case_through_the_crypto_layer() {
    let index: serde_json::Value = serde_json::from_str(&read_vector("index.json")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in index.as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let name = file.trim_start_matches("cases/").trim_end_matches(".json");
        if NOT_CRYPTO.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let meta = case_meta(name);
        let expect = meta.get("expectRust").unwrap_or_else(|| &meta["expect"]);
        let expected = match expect["errorCode"].as_str() {
            // Codes decided after the crypto layer (action catalogue, agent schemas).
            Some("BTP_ERROR_INVALID_ACTION") | None => None,
            Some("ENOTFOUND") => Some("BTP_ERROR_RESOLVE_PUBKEY"),
            Some(code) => Some(code),
        };
        let got = crypto_verdict(&meta);
        checked += 1;
        if got.as_deref() != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(checked >= 65, "only {checked} cases checked");
}
