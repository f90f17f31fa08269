//! The `response` cases of the interoperability vectors through `Response::verify`, keys
//! from a real DNS server serving the vectors' table (PROTOCOL.md §2.5, §13.2).

use btps_client::{ClientError, Response};
use btps_test_support::vectors::VectorSet;
use btps_types::ErrorCode;

use crate::support::{vector_dns, vectors_dir};

#[tokio::test]
async fn response_vectors_verify_exactly_as_received() {
    let set = VectorSet::load(&vectors_dir()).unwrap();
    let (_dns_server, dns) = vector_dns().await;
    let mut seen = Vec::new();
    for case in set.cases.iter().filter(|c| c.kind == "response") {
        let reply = Response::from_line(case.line.as_bytes(), 8 << 20)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let expected = case.expected();
        let verdict = reply.verify(&dns).await;
        if !case.signed {
            assert_eq!(verdict, Err(ClientError::Unsigned), "{}", case.name);
            assert!(reply.ok(), "{}", case.name);
        } else if expected.signature_valid == Some(true) {
            let key = verdict.unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(
                Some(key.fingerprint()),
                reply
                    .as_object()
                    .get_object("signature")
                    .and_then(|s| s.get_str("fingerprint")),
                "{}",
                case.name
            );
            // The received object is kept as is: no `encryption` member was added.
            assert!(
                !reply.as_object().contains_key("encryption"),
                "{}",
                case.name
            );
        } else {
            let e = verdict.expect_err(&case.name);
            assert!(
                matches!(e, ClientError::BadSignature(_)),
                "{}: {e:?}",
                case.name
            );
            let code = expected.error_code.as_deref().unwrap();
            assert_eq!(
                e.error_code(),
                code.parse::<ErrorCode>().unwrap(),
                "{}",
                case.name
            );
        }
        seen.push(case.name.clone());
    }
    for name in [
        "response_auth_signed",
        "response_identity_lookup_signed",
        "neg_response_tampered_public_key",
        "response_success_unsigned",
    ] {
        assert!(
            seen.iter().any(|s| s == name),
            "missing case {name}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn a_tampered_signed_reply_fails() {
    let set = VectorSet::load(&vectors_dir()).unwrap();
    let (_dns_server, dns) = vector_dns().await;
    let case = set
        .cases
        .iter()
        .find(|c| c.name == "response_auth_signed")
        .unwrap();
    // Adding `"encryption":null` (what btps-node's client verifies) breaks the signature.
    let with_null = case
        .line
        .replacen(",\"signature\":", ",\"encryption\":null,\"signature\":", 1);
    let reply = Response::from_line(with_null.as_bytes(), 1 << 20).unwrap();
    let e = reply.verify(&dns).await.unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::SigVerification);
    // Re-encoded with whitespace and the signature first, it still verifies (the signed
    // text is rebuilt from the parsed object).
    let parsed = btps_types::json::parse_str(&case.line).unwrap().value;
    let obj = parsed.as_object().unwrap();
    let mut text = String::from("{ \"signature\" : ");
    text.push_str(&btps_types::json::to_js_string(
        obj.get("signature").unwrap(),
    ));
    for (k, v) in obj.iter().filter(|(k, _)| k.as_str() != Some("signature")) {
        text.push_str(&format!(
            " , {} : {}",
            btps_types::json::to_js_string(&btps_types::json::Value::String(k.clone())),
            btps_types::json::to_js_string(v)
        ));
    }
    text.push('}');
    let reply = Response::from_line(text.as_bytes(), 1 << 20).unwrap();
    reply.verify(&dns).await.unwrap();
}
