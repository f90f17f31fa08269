//! Server discovery through host records, identity lookups and the DNS-first key
//! resolution, over a real authoritative DNS server (PROTOCOL.md §2.2, §3.6, §6).

use std::sync::{Arc, Mutex};

use btps_client::{Client, ClientError, RequestOptions};
use btps_crypto::PublicKey;
use btps_dns::{CacheConfig, DnsCache};
use btps_test_support::dns_server::{Mode, TestServer as DnsServer};
use btps_types::json::{Object, Value};
use btps_types::{ErrorCode, Identity, Selector};

use crate::support::{
    Act, Pki, ScriptServer, config, echo, line, ping, reply, sign_reply, vector_dns, vector_key,
    vector_public_pem,
};

#[tokio::test]
async fn the_server_comes_from_the_host_record() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| Box::new(|req| vec![Act::Reply(echo(req))])).await;
    let dns_server = DnsServer::start().await;
    dns_server
        .add_txt(
            "_btps.host.acme.test",
            300,
            &format!("v=1.0.0;u=btps://localhost:{};s=btps1", server.port()),
        )
        .await;
    let dns = DnsCache::with_config(dns_server.resolver(), CacheConfig::default());
    let client = Client::new(config(&pki), dns).unwrap();
    let to: Identity = "pay$Acme.test".parse().unwrap();
    assert_eq!(client.server_for(&to).await.unwrap(), server.addr());

    // `send` goes to the server of `to`.
    let artifact = ping("to-acme").with("to", to.as_str());
    let r = client.send(&artifact).await.unwrap();
    assert_eq!(r.req_id(), Some("to-acme"));
    assert_eq!(server.count_id("to-acme"), vec![1]);

    // No host record: BTP_ERROR_RESOLVE_DNS.
    let nowhere: Identity = "pay$nowhere.test".parse().unwrap();
    match client.server_for(&nowhere).await {
        Err(e @ ClientError::Dns(_)) => assert_eq!(e.error_code(), ErrorCode::ResolveDns),
        other => panic!("{other:?}"),
    }
    // An override wins over DNS.
    let client = Client::new(
        config(&pki).with_override("NOWHERE.test", server.addr()),
        DnsCache::with_config(dns_server.resolver(), CacheConfig::default()),
    )
    .unwrap();
    assert_eq!(client.server_for(&nowhere).await.unwrap(), server.addr());
    // A DNS failure is temporary.
    dns_server.set_mode(Mode::ServFail);
    let other: Identity = "pay$other.test".parse().unwrap();
    match client.server_for(&other).await {
        Err(e @ ClientError::Dns(_)) => {
            assert_eq!(e.error_code(), ErrorCode::DnsUnavailable);
            assert!(e.is_retryable());
        }
        r => panic!("{r:?}"),
    }
}

/// A server for `buyer.test` answering identity lookups with `document`, signed as
/// `signed_by` with the vectors key `key`. Records the lookups it gets.
async fn lookup_server(
    pki: &Pki,
    signed_by: &'static str,
    key: &'static str,
    document: Object,
) -> (ScriptServer, Arc<Mutex<Vec<Object>>>) {
    let seen: Arc<Mutex<Vec<Object>>> = Arc::default();
    let server = {
        let seen = seen.clone();
        ScriptServer::start(pki, move |_| {
            let seen = seen.clone();
            let document = document.clone();
            let key = vector_key(key);
            Box::new(move |req| {
                seen.lock().unwrap().push(req.clone());
                let r = reply(
                    req.get_str("id"),
                    200,
                    "success",
                    None,
                    Some(Value::Object(document.clone())),
                );
                vec![Act::Reply(line(&sign_reply(r, signed_by, &key)))]
            })
        })
        .await
    };
    (server, seen)
}

fn key_document(selector: &str, pem_name: &str) -> Object {
    Object::new()
        .with("selector", selector)
        .with("publicKey", vector_public_pem(pem_name))
        .with("keyType", "rsa")
        .with("version", "1.0.0")
}

#[tokio::test]
async fn identity_lookups_are_verified_and_bound_to_the_domain() {
    let pki = Pki::new(&["localhost"]);
    let (_dns_server, dns) = vector_dns().await;
    let finance: Identity = "finance$buyer.test".parse().unwrap();
    let btps7 = Selector::parse("btps7").unwrap();

    // Signed by the server identity of buyer.test.
    let (server, seen) = lookup_server(
        &pki,
        "server$buyer.test",
        "server-buyer",
        key_document("btps7", "finance-btps2"),
    )
    .await;
    let client = Client::new(
        config(&pki).with_override("buyer.test", server.addr()),
        dns.clone(),
    )
    .unwrap();
    let key = client
        .lookup_identity(&finance, Some(&btps7))
        .await
        .unwrap();
    let expected = PublicKey::from_pem(&vector_public_pem("finance-btps2")).unwrap();
    assert_eq!(key, expected);
    let request = seen.lock().unwrap()[0].clone();
    let members: Vec<String> = request.keys().map(ToString::to_string).collect();
    assert_eq!(
        members,
        [
            "identity",
            "from",
            "hostSelector",
            "version",
            "id",
            "issuedAt",
            "identitySelector"
        ]
    );
    assert_eq!(request.get_str("hostSelector"), Some("btps1"));
    assert_eq!(request.get_str("identitySelector"), Some("btps7"));

    // The DNS key is used when DNS has one: no lookup.
    let btps1 = Selector::parse("btps1").unwrap();
    let key = client.resolve_key(&finance, &btps1).await.unwrap();
    assert_eq!(
        key,
        PublicKey::from_pem(&vector_public_pem("finance-btps1")).unwrap()
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    // NXDOMAIN for the selector: the lookup answers.
    assert_eq!(
        client.resolve_key(&finance, &btps7).await.unwrap(),
        expected
    );
    assert_eq!(seen.lock().unwrap().len(), 2);

    // Asked for btps7, answered another selector: refused.
    let btps8 = Selector::parse("btps8").unwrap();
    assert!(matches!(
        client.lookup_identity(&finance, Some(&btps8)).await,
        Err(ClientError::Invalid(_))
    ));

    // Signed by an identity of another domain (with a valid signature): refused.
    let (server, _) = lookup_server(
        &pki,
        "billing$vendorcorp.test",
        "billing-btps1",
        key_document("btps7", "finance-btps2"),
    )
    .await;
    let client = Client::new(
        config(&pki).with_override("buyer.test", server.addr()),
        dns.clone(),
    )
    .unwrap();
    assert!(matches!(
        client.lookup_identity(&finance, Some(&btps7)).await,
        Err(ClientError::BadSignature(_))
    ));

    // Signed with a key that is not server$buyer.test's: refused.
    let (server, _) = lookup_server(
        &pki,
        "server$buyer.test",
        "mallory-unpublished",
        key_document("btps7", "finance-btps2"),
    )
    .await;
    let client = Client::new(config(&pki).with_override("buyer.test", server.addr()), dns).unwrap();
    let r = client.lookup_identity(&finance, Some(&btps7)).await;
    match r {
        Err(e @ ClientError::BadSignature(_)) => assert_eq!(e.error_code(), ErrorCode::SigMismatch),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unsigned_reply_is_refused_where_a_signed_one_is_required() {
    let pki = Pki::new(&["localhost"]);
    let (_dns_server, dns) = vector_dns().await;
    let server = ScriptServer::start(&pki, |_| Box::new(|req| vec![Act::Reply(echo(req))])).await;
    let client = Client::new(config(&pki), dns).unwrap();
    let r = client
        .request(
            &server.addr(),
            &ping("u1"),
            RequestOptions::default().signed(),
        )
        .await;
    assert_eq!(r, Err(ClientError::Unsigned));
    assert_eq!(
        ClientError::Unsigned.error_code(),
        ErrorCode::SigVerification
    );
    // Unsigned error replies grant nothing and come back as they are.
    let refusing = ScriptServer::start(&pki, |_| {
        Box::new(|req| {
            vec![Act::Reply(crate::support::reply_to(
                req,
                404,
                "Identity not found",
                Some("BTP_ERROR_IDENTITY_NOT_FOUND"),
                None,
            ))]
        })
    })
    .await;
    let r = client
        .request(
            &refusing.addr(),
            &ping("u2"),
            RequestOptions::default().signed(),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code(), Some(ErrorCode::IdentityNotFound));
}

#[tokio::test]
async fn temporary_dns_failures_never_fall_back_to_a_lookup() {
    let pki = Pki::new(&["localhost"]);
    let (dns_server, dns) = vector_dns().await;
    let (server, seen) = lookup_server(
        &pki,
        "server$buyer.test",
        "server-buyer",
        key_document("btps7", "finance-btps2"),
    )
    .await;
    let client = Client::new(config(&pki).with_override("buyer.test", server.addr()), dns).unwrap();
    dns_server.set_mode(Mode::ServFail);
    let finance: Identity = "finance$buyer.test".parse().unwrap();
    let r = client
        .resolve_key(&finance, &Selector::parse("btps7").unwrap())
        .await;
    match r {
        Err(e @ ClientError::Dns(_)) => assert_eq!(e.error_code(), ErrorCode::DnsUnavailable),
        other => panic!("{other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(server.handshakes(), 0);
}
