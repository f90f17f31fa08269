//! Signing and delivery verdicts of the `Transporter` (PROTOCOL.md §3.2, §5.4, §10.2).

use btps_client::{Client, ClientError, DeliveryStatus, Transporter, decrypt_artifact};
use btps_crypto::{PublicKey, verify};
use btps_types::artifact::TransporterType;
use btps_types::json::{Object, Value};
use btps_types::{ErrorCode, Identity, Selector, signing};

use crate::support::{
    Act, Pki, ScriptServer, config, echo, reply_to, vector_dns, vector_key, vector_public_pem,
};

fn trust_req() -> Object {
    Object::new()
        .with("id", "trq-1")
        .with("name", "VendorCorp Billing")
        .with("reason", "monthly invoices")
        .with("phone", "+61 400 000 000")
        .with("email", "billing@vendorcorp.test")
}

#[tokio::test]
async fn artifacts_are_signed_in_writer_order_and_encrypted_per_section_5_4() {
    let pki = Pki::new(&["localhost"]);
    let (_dns_server, dns) = vector_dns().await;
    let client = Client::new(config(&pki), dns.clone()).unwrap();
    let t = Transporter::builder(client.clone())
        .identity("billing$vendorcorp.test".parse().unwrap())
        .selector(Selector::parse("btps1").unwrap())
        .key(vector_key("billing-btps1"))
        .build();
    let to: Identity = "finance$buyer.test".parse().unwrap();
    let a = t
        .artifact(TransporterType::TrustReq, to.clone(), trust_req())
        .id("fixed-id")
        .sign()
        .await
        .unwrap();
    let members: Vec<String> = a.keys().map(ToString::to_string).collect();
    assert_eq!(
        members,
        [
            "version",
            "type",
            "from",
            "to",
            "selector",
            "id",
            "issuedAt",
            "document",
            "encryption",
            "signature"
        ]
    );
    assert_eq!(a.get_str("id"), Some("fixed-id"));
    assert_eq!(a.get("encryption"), Some(&Value::Null));
    let billing = PublicKey::from_pem(&vector_public_pem("billing-btps1")).unwrap();
    verify(&a, signing::TRANSPORTER, &billing).unwrap();

    // Encrypted to the receiver's key at our selector (btps1).
    let e = t
        .artifact(TransporterType::TrustReq, to.clone(), trust_req())
        .encrypt(true)
        .sign()
        .await
        .unwrap();
    assert!(e.get("document").unwrap().is_string());
    let d = decrypt_artifact(
        &dns,
        &e,
        &[(
            Selector::parse("btps1").unwrap(),
            vector_key("finance-btps1"),
        )],
    )
    .await
    .unwrap();
    assert_eq!(d.document, Value::Object(trust_req()));

    // Signing at btps2: encrypted to the receiver's btps2 key, which btps1 cannot open.
    let t2 = Transporter::builder(client.clone())
        .identity("billing$vendorcorp.test".parse().unwrap())
        .selector(Selector::parse("btps2").unwrap())
        .key(vector_key("billing-btps2"))
        .build();
    let e2 = t2
        .artifact(TransporterType::TrustReq, to.clone(), trust_req())
        .encrypt(true)
        .sign()
        .await
        .unwrap();
    let only_btps1 = [(
        Selector::parse("btps1").unwrap(),
        vector_key("finance-btps1"),
    )];
    assert_eq!(
        decrypt_artifact(&dns, &e2, &only_btps1)
            .await
            .unwrap_err()
            .error_code(),
        ErrorCode::DecryptionUnintended
    );
    // admin$vendorcorp.test publishes no btps2 key: its current selector (btps1, the `s`
    // of its host record) is used instead.
    let admin: Identity = "admin$vendorcorp.test".parse().unwrap();
    let e3 = t2
        .artifact(TransporterType::TrustReq, admin, trust_req())
        .encrypt(true)
        .sign()
        .await
        .unwrap();
    let d = decrypt_artifact(
        &dns,
        &e3,
        &[(
            Selector::parse("btps1").unwrap(),
            vector_key("admin-vendorcorp"),
        )],
    )
    .await
    .unwrap();
    assert!(d.encrypted);

    // Documents are checked against their type before signing.
    let bad = t
        .artifact(TransporterType::BtpsDoc, to, trust_req())
        .sign()
        .await;
    assert!(matches!(bad, Err(ClientError::Invalid(_))), "{bad:?}");
}

#[tokio::test]
async fn delivery_verdicts() {
    let pki = Pki::new(&["localhost"]);
    let (_dns_server, dns) = vector_dns().await;
    // Answers by the artifact id's prefix.
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|req| {
            let id = req.get_str("id").unwrap();
            let r = if id.starts_with("again") {
                reply_to(req, 200, "already accepted", None, None)
            } else if id.starts_with("dup") {
                reply_to(
                    req,
                    409,
                    "Artifact already received",
                    Some("BTP_ERROR_DUPLICATE"),
                    None,
                )
            } else if id.starts_with("untrusted") {
                reply_to(
                    req,
                    403,
                    "BTPS trust record does not exist or has been expired",
                    Some("BTP_ERROR_TRUST_NON_EXISTENT"),
                    None,
                )
            } else {
                echo(req)
            };
            vec![Act::Reply(r)]
        })
    })
    .await;
    let client = Client::new(config(&pki).with_override("buyer.test", server.addr()), dns).unwrap();
    let t = Transporter::builder(client)
        .identity("billing$vendorcorp.test".parse().unwrap())
        .selector(Selector::parse("btps1").unwrap())
        .key(vector_key("billing-btps1"))
        .build();
    let to: Identity = "finance$buyer.test".parse().unwrap();
    for (id, status) in [
        ("new-1", DeliveryStatus::Accepted),
        ("again-1", DeliveryStatus::AlreadyAccepted),
        ("dup-1", DeliveryStatus::Duplicate),
    ] {
        let a = t
            .artifact(TransporterType::TrustReq, to.clone(), trust_req())
            .id(id)
            .sign()
            .await
            .unwrap();
        let d = t.send(&a).await.unwrap();
        assert_eq!(d.status, status, "{id}");
        assert_eq!(d.response.req_id(), Some(id));
    }
    let a = t
        .artifact(TransporterType::TrustReq, to, trust_req())
        .id("untrusted-1")
        .sign()
        .await
        .unwrap();
    match t.send(&a).await {
        Err(e @ ClientError::Rejected { code: 403, .. }) => {
            assert_eq!(e.error_code(), ErrorCode::TrustNonExistent);
            assert!(!e.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.count_id("untrusted-1"), vec![1]);
}
