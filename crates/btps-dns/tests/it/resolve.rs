//! The hickory resolver against the in-process server: record parsing over real DNS, and
//! the temporary / permanent verdicts.

use std::time::{Duration, Instant};

use btps_crypto::{KeyPair, KeyPolicy};
use btps_dns::{
    Absence, CacheConfig, DnsCache, DnsError, DnssecMode, Failure, HickoryConfig, HickoryResolver,
    LookupError, RecordKind, SelectorSource, TxtAnswer, TxtResolver, inspect_identity,
};
use btps_types::ErrorCode;

use crate::common::{data_key, id, key_txt, vector_key};
use btps_test_support::dns_server::{Mode, TestServer, silent_socket};

#[tokio::test]
async fn rsa_2048_key_in_several_character_strings() {
    let server = TestServer::start().await;
    let key = vector_key("billing-btps1");
    let txt = key_txt(&key);
    assert!(txt.len() > 255);
    server
        .add_txt("btps1._btps.identity.billing.vendorcorp.test", 300, &txt)
        .await;
    let resolver = server.resolver();
    // Raw answer: one record, two character-strings, joined correctly.
    let TxtAnswer::Records { records, ttl } = resolver
        .lookup_txt("btps1._btps.identity.billing.vendorcorp.test")
        .await
        .unwrap()
    else {
        panic!("expected records")
    };
    assert_eq!(ttl, 300);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].strings().len(), 2);
    assert_eq!(records[0].text().unwrap(), txt);

    let dns = DnsCache::new(resolver);
    let keys = dns
        .identity_keys(&id("Billing$VendorCorp.test"), "btps1")
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].fingerprint(), key.fingerprint());
}

#[tokio::test]
async fn odd_character_string_boundaries_join() {
    // A publisher may split anywhere, e.g. inside a tag, into many short strings.
    let server = TestServer::start().await;
    let key = vector_key("finance-btps1");
    let txt = key_txt(&key);
    let bytes = txt.as_bytes();
    let parts: Vec<&[u8]> = bytes.chunks(7).collect();
    server
        .add_txt_strings("btps1._btps.identity.finance.buyer.test", 60, &parts)
        .await;
    let dns = DnsCache::new(server.resolver());
    let keys = dns
        .identity_keys(&id("finance$buyer.test"), "btps1")
        .await
        .unwrap();
    assert_eq!(keys[0], key);
}

#[tokio::test]
async fn padded_keys_survive() {
    // Ed25519 (44 base64 characters, one `=`) and RSA-3072 (564 characters, `=`, three
    // character-strings): btps-node drops both.
    let server = TestServer::start().await;
    let ed = KeyPair::generate_ed25519().unwrap();
    let rsa3072 = data_key("rsa3072-public.pem");
    assert!(ed.public_key().to_base64_spki().ends_with('='));
    assert!(rsa3072.to_base64_spki().ends_with('='));
    server
        .add_txt(
            "ed1._btps.identity.alice.example.test",
            300,
            &format!("v=1.0.0; k=ed25519; p={}", ed.public_key().to_base64_spki()),
        )
        .await;
    server
        .add_txt(
            "rsa3k._btps.identity.alice.example.test",
            300,
            &key_txt(&rsa3072),
        )
        .await;
    let dns = DnsCache::new(server.resolver());
    let alice = id("alice$example.test");
    let keys = dns.identity_keys(&alice, "ed1").await.unwrap();
    assert_eq!(&keys[0], ed.public_key());
    let keys = dns.identity_keys(&alice, "rsa3k").await.unwrap();
    assert_eq!(keys[0], rsa3072);
    assert_eq!(keys[0].bits(), 3072);
}

#[tokio::test]
async fn rotation_selectors() {
    let server = TestServer::start().await;
    let (k1, k2) = (vector_key("billing-btps1"), vector_key("billing-btps2"));
    server
        .add_txt(
            "_btps.host.vendorcorp.test",
            300,
            "v=1.0.0;u=btps.vendorcorp.test:3443;s=btps2",
        )
        .await;
    server
        .add_txt(
            "btps1._btps.identity.billing.vendorcorp.test",
            300,
            &key_txt(&k1),
        )
        .await;
    server
        .add_txt(
            "btps2._btps.identity.billing.vendorcorp.test",
            300,
            &key_txt(&k2),
        )
        .await;
    let billing = id("billing$vendorcorp.test");
    let resolver = server.resolver();

    // The CLI view: current selector from the host record.
    let report = inspect_identity(&resolver, &billing, None, KeyPolicy::DEFAULT)
        .await
        .unwrap();
    assert_eq!(report.selector, "btps2");
    assert_eq!(report.selector_source, SelectorSource::HostRecord);
    assert_eq!(report.keys, std::slice::from_ref(&k2));
    assert_eq!((report.host_ttl, report.key_ttl), (300, 300));
    let report = inspect_identity(&resolver, &billing, Some("btps1"), KeyPolicy::DEFAULT)
        .await
        .unwrap();
    assert_eq!(report.keys, std::slice::from_ref(&k1));
    assert!(report.to_json().contains(k1.fingerprint()));

    // Artifacts signed with the old selector still verify during the rollover.
    let dns = DnsCache::new(resolver);
    assert_eq!(dns.host("vendorcorp.test").await.unwrap().selector, "btps2");
    assert_eq!(dns.identity_keys(&billing, "btps1").await.unwrap()[0], k1);
    assert_eq!(dns.encryption_key(&billing, "btps2").await.unwrap(), k2);
    let e = dns.identity_keys(&billing, "btps3").await.unwrap_err();
    assert!(matches!(
        e,
        DnsError::NotFound {
            absence: Absence::NxDomain,
            ..
        }
    ));
    assert_eq!(e.error_code(), ErrorCode::ResolvePubkey);
}

#[tokio::test]
async fn several_records_at_one_name() {
    let server = TestServer::start().await;
    let (k1, k2) = (vector_key("billing-btps1"), vector_key("billing-btps2"));
    let name = "btps1._btps.identity.billing.vendorcorp.test";
    server.add_txt(name, 300, &key_txt(&k1)).await;
    server
        .add_txt(name, 300, "some-other-service=verification-token")
        .await;
    server.add_txt(name, 300, &key_txt(&k2)).await;
    server
        .add_txt(
            "_btps.host.vendorcorp.test",
            300,
            "v=1.0.0;u=a.vendorcorp.test;s=btps1",
        )
        .await;
    server
        .add_txt(
            "_btps.host.vendorcorp.test",
            300,
            "v=1.0.0;u=b.vendorcorp.test;s=btps1",
        )
        .await;
    // Same host record twice (as two records with different spelling) is one candidate.
    server
        .add_txt(
            "_btps.host.buyer.test",
            300,
            "v=1.0.0;u=h.buyer.test;s=btps1",
        )
        .await;
    server
        .add_txt(
            "_btps.host.buyer.test",
            300,
            " s=btps1 ; u=h.buyer.test:3443 ; v=1.0.0 ",
        )
        .await;
    let dns = DnsCache::new(server.resolver());
    let billing = id("billing$vendorcorp.test");

    // Verification: both usable keys are candidates.
    let keys = dns.identity_keys(&billing, "btps1").await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&k1) && keys.contains(&k2));
    // Encryption: two distinct candidates are a configuration error.
    let e = dns.encryption_key(&billing, "btps1").await.unwrap_err();
    assert!(matches!(e, DnsError::Ambiguous { count: 2, .. }));
    assert_eq!(e.error_code(), ErrorCode::ResolvePubkey);
    // Host discovery: more than one distinct record is an error.
    let e = dns.host("vendorcorp.test").await.unwrap_err();
    assert!(matches!(e, DnsError::Ambiguous { .. }));
    assert_eq!(e.error_code(), ErrorCode::ResolveDns);
    assert_eq!(e.failure(), Failure::Permanent);
    assert_eq!(
        dns.host("buyer.test").await.unwrap().host.to_string(),
        "h.buyer.test"
    );
}

#[tokio::test]
async fn malformed_records_are_permanent() {
    let server = TestServer::start().await;
    server
        .add_txt(
            "btps1._btps.identity.bad.example.test",
            300,
            "v=1.0.0;k=rsa;p=not*base64",
        )
        .await;
    server
        .add_txt(
            "btps2._btps.identity.bad.example.test",
            300,
            "v=1.0.0;k=rsa;p=QUJD",
        )
        .await;
    server
        .add_txt("_btps.host.example.test", 300, "v=1.0.0;s=btps1")
        .await;
    server
        .add_txt_strings(
            "btps3._btps.identity.bad.example.test",
            300,
            &[b"p=\xff\xfe"],
        )
        .await;
    let dns = DnsCache::new(server.resolver());
    let bad = id("bad$example.test");
    for (selector, needle) in [
        ("btps1", "base64"),
        ("btps2", "unusable public key"),
        ("btps3", "UTF-8"),
    ] {
        let e = dns.identity_keys(&bad, selector).await.unwrap_err();
        assert!(
            matches!(&e, DnsError::Unusable { reason, .. } if reason.contains(needle)),
            "{selector}: {e}"
        );
        assert_eq!(e.error_code(), ErrorCode::ResolvePubkey);
        assert!(!e.is_temporary());
    }
    let e = dns.host("example.test").await.unwrap_err();
    assert!(e.to_string().contains("`u=`"), "{e}");
    assert_eq!(e.error_code(), ErrorCode::ResolveDns);
    // Names that cannot be queried.
    let e = dns.identity_keys(&bad, "a.b").await.unwrap_err();
    assert!(matches!(e, DnsError::InvalidName { .. }));
    assert_eq!(e.error_code(), ErrorCode::ResolvePubkey);
}

#[tokio::test]
async fn nxdomain_and_nodata_are_permanent() {
    let server = TestServer::start().await;
    server.add_a("_btps.host.nodata.test", 300).await;
    let resolver = server.resolver();
    assert!(matches!(
        resolver
            .lookup_txt("_btps.host.nowhere.test")
            .await
            .unwrap(),
        TxtAnswer::NotFound {
            absence: Absence::NxDomain,
            negative_ttl: Some(30)
        }
    ));
    assert!(matches!(
        resolver.lookup_txt("_btps.host.nodata.test").await.unwrap(),
        TxtAnswer::NotFound {
            absence: Absence::NoData,
            ..
        }
    ));
    let dns = DnsCache::new(resolver);
    for domain in ["nowhere.test", "nodata.test"] {
        let e = dns.host(domain).await.unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.failure(), Failure::Permanent);
        assert_eq!(e.error_code(), ErrorCode::ResolveDns);
    }
}

#[tokio::test]
async fn servfail_and_refused_are_temporary() {
    let server = TestServer::start().await;
    server
        .add_txt(
            "_btps.host.vendorcorp.test",
            300,
            "v=1.0.0;u=h.vendorcorp.test;s=btps1",
        )
        .await;
    let resolver = server.resolver();
    for (mode, expected) in [
        (Mode::ServFail, LookupError::ServFail),
        (Mode::Refused, LookupError::Refused),
    ] {
        server.set_mode(mode);
        let e = resolver
            .lookup_txt("_btps.host.vendorcorp.test")
            .await
            .unwrap_err();
        assert_eq!(e, expected);
        assert!(e.is_temporary());
    }
    let dns = DnsCache::with_config(resolver, CacheConfig::no_caching());
    let e = dns.host("vendorcorp.test").await.unwrap_err();
    assert!(matches!(
        e,
        DnsError::Unavailable {
            kind: RecordKind::Host,
            cause: LookupError::Refused,
            ..
        }
    ));
    assert_eq!(e.failure(), Failure::Temporary);
    assert_eq!(e.error_code(), ErrorCode::DnsUnavailable);
    server.set_mode(Mode::Normal);
    assert!(dns.host("vendorcorp.test").await.is_ok());
}

#[tokio::test]
async fn timeouts_are_temporary_and_bounded() {
    // A socket that never answers, then a server that stops answering.
    let (_socket, addr) = silent_socket().await;
    let mut config = HickoryConfig::with_nameservers([addr]);
    config.timeout = Duration::from_millis(150);
    config.attempts = 2;
    let resolver = HickoryResolver::new(&config).unwrap();
    let start = Instant::now();
    let e = resolver
        .lookup_txt("_btps.host.vendorcorp.test")
        .await
        .unwrap_err();
    assert_eq!(e, LookupError::Timeout);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    let server = TestServer::start().await;
    server.set_mode(Mode::Silent);
    let dns = DnsCache::new(server.resolver());
    let e = dns
        .identity_keys(&id("billing$vendorcorp.test"), "btps1")
        .await
        .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert_eq!(e.error_code(), ErrorCode::DnsUnavailable);
}

#[tokio::test]
async fn truncated_udp_answers_are_retried_over_tcp() {
    let server = TestServer::start().await;
    // A 2.4 kB delegation list (50 device ids) does not fit a UDP answer.
    let devices: Vec<String> = (0..50)
        .map(|i| format!("btps_ag_00000000-0000-4000-8000-{i:012}"))
        .collect();
    let txt = format!("v=1.0.0;d={}", devices.join(","));
    assert!(txt.len() > 2000);
    server
        .add_txt("_btps.delegation.alice.example.test", 60, &txt)
        .await;
    let dns = DnsCache::new(server.resolver());
    let list = dns
        .delegation_list(&id("alice$example.test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.devices, devices);
    assert!(server.tcp_queries() >= 1, "the answer came over TCP");
}

#[tokio::test]
async fn dnssec_require_refuses_an_unsigned_zone() {
    let server = TestServer::start().await;
    server
        .add_txt(
            "_btps.host.vendorcorp.test",
            300,
            "v=1.0.0;u=h.vendorcorp.test;s=btps1",
        )
        .await;
    let mut config = server.config();
    config.dnssec = DnssecMode::Require;
    let resolver = HickoryResolver::new(&config).unwrap();
    let answer = resolver.lookup_txt("_btps.host.vendorcorp.test").await;
    let dns = DnsCache::new(resolver);
    let e = dns.host("vendorcorp.test").await.unwrap_err();
    assert!(
        matches!(
            e,
            DnsError::NotFound {
                absence: Absence::DnssecInsecure | Absence::DnssecBogus,
                ..
            }
        ),
        "{answer:?} / {e}"
    );
    assert_eq!(e.error_code(), ErrorCode::ResolveDns);

    // `prefer` uses the unvalidated answer.
    config.dnssec = DnssecMode::Prefer;
    let dns = DnsCache::new(HickoryResolver::new(&config).unwrap());
    assert_eq!(dns.host("vendorcorp.test").await.unwrap().selector, "btps1");
}
