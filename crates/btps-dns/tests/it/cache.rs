//! The cache over the real resolver and server: TTLs on a stepped clock, negative caching,
//! coalescing counted at the server, clamping, refresh-ahead.

use std::sync::Arc;
use std::time::Duration;

use btps_dns::{CacheConfig, DnsError, LookupError};
use btps_types::ErrorCode;

use crate::common::{cache, eventually, id, key_txt, no_refresh, vector_key};
use btps_test_support::dns_server::{Mode, TestServer};

const KEY_NAME: &str = "btps1._btps.identity.billing.vendorcorp.test";

#[tokio::test]
async fn removed_record_is_seen_after_its_ttl_not_before() {
    let server = TestServer::start().await;
    server
        .add_txt(KEY_NAME, 60, &key_txt(&vector_key("billing-btps1")))
        .await;
    let (dns, clock) = cache(server.resolver(), no_refresh());
    let billing = id("billing$vendorcorp.test");

    assert!(dns.identity_keys(&billing, "btps1").await.is_ok());
    assert_eq!(server.queries_for(KEY_NAME), 1);
    server.remove_txt(KEY_NAME).await;

    clock.advance(Duration::from_secs(59));
    assert!(
        dns.identity_keys(&billing, "btps1").await.is_ok(),
        "still cached before the TTL"
    );
    assert_eq!(server.queries_for(KEY_NAME), 1, "no query before the TTL");

    clock.advance(Duration::from_secs(2));
    let e = dns.identity_keys(&billing, "btps1").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.error_code(), ErrorCode::ResolvePubkey);
    assert_eq!(server.queries_for(KEY_NAME), 2);
}

#[tokio::test]
async fn negative_answers_are_cached_with_the_capped_soa_ttl() {
    // SOA minimum 3600 s: capped at max_negative_ttl (60 s).
    let server = TestServer::start_with_negative_ttl(3600).await;
    let (dns, clock) = cache(server.resolver(), no_refresh());
    let billing = id("billing$vendorcorp.test");

    assert!(
        dns.identity_keys(&billing, "btps1")
            .await
            .unwrap_err()
            .is_not_found()
    );
    server
        .add_txt(KEY_NAME, 300, &key_txt(&vector_key("billing-btps1")))
        .await;
    clock.advance(Duration::from_secs(59));
    assert!(
        dns.identity_keys(&billing, "btps1")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(server.queries_for(KEY_NAME), 1);
    clock.advance(Duration::from_secs(2));
    assert!(dns.identity_keys(&billing, "btps1").await.is_ok());
    assert_eq!(server.queries_for(KEY_NAME), 2);

    // A short SOA minimum is honoured.
    let server = TestServer::start_with_negative_ttl(5).await;
    let (dns, clock) = cache(server.resolver(), no_refresh());
    assert!(dns.host("vendorcorp.test").await.is_err());
    clock.advance(Duration::from_secs(4));
    assert!(dns.host("vendorcorp.test").await.is_err());
    assert_eq!(server.queries(), 1);
    clock.advance(Duration::from_secs(2));
    assert!(dns.host("vendorcorp.test").await.is_err());
    assert_eq!(server.queries(), 2);
}

#[tokio::test]
async fn ttl_is_clamped_by_max_and_min() {
    let server = TestServer::start().await;
    server
        .add_txt(
            "_btps.host.long.test",
            86_400,
            "v=1.0.0;u=h.long.test;s=btps1",
        )
        .await;
    server
        .add_txt("_btps.host.short.test", 1, "v=1.0.0;u=h.short.test;s=btps1")
        .await;
    let mut config = no_refresh();
    config.max_ttl = Duration::from_secs(300);
    config.min_ttl = Duration::from_secs(10);
    let (dns, clock) = cache(server.resolver(), config);

    dns.host("long.test").await.unwrap();
    dns.host("short.test").await.unwrap();
    assert_eq!(server.queries(), 2);
    clock.advance(Duration::from_secs(9));
    dns.host("short.test").await.unwrap();
    assert_eq!(
        server.queries_for("_btps.host.short.test"),
        1,
        "1 s TTL raised to 10 s"
    );
    clock.advance(Duration::from_secs(2));
    dns.host("short.test").await.unwrap();
    assert_eq!(server.queries_for("_btps.host.short.test"), 2);

    clock.advance(Duration::from_secs(288)); // 299 s since the first lookup
    dns.host("long.test").await.unwrap();
    assert_eq!(server.queries_for("_btps.host.long.test"), 1);
    clock.advance(Duration::from_secs(2)); // 301 s: a day's TTL capped at 300 s
    dns.host("long.test").await.unwrap();
    assert_eq!(server.queries_for("_btps.host.long.test"), 2);

    // max_ttl 0 disables caching.
    let mut config = no_refresh();
    config.max_ttl = Duration::ZERO;
    let (dns, _clock) = cache(server.resolver(), config);
    let before = server.queries_for("_btps.host.long.test");
    dns.host("long.test").await.unwrap();
    dns.host("long.test").await.unwrap();
    assert_eq!(server.queries_for("_btps.host.long.test"), before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_are_coalesced_into_one_query() {
    let server = TestServer::start().await;
    server
        .add_txt(KEY_NAME, 300, &key_txt(&vector_key("billing-btps1")))
        .await;
    server.set_delay(Duration::from_millis(150));
    let (dns, _clock) = cache(server.resolver(), no_refresh());
    let billing = id("billing$vendorcorp.test");

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let dns = dns.clone();
        let billing = billing.clone();
        tasks.push(tokio::spawn(async move {
            dns.identity_keys(&billing, "btps1").await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().len(), 1);
    }
    assert_eq!(server.queries_for(KEY_NAME), 1, "one query for 50 lookups");
    let stats = dns.stats();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.coalesced + stats.hits, 49);

    // Negative answers and failures coalesce too.
    server.set_mode(Mode::ServFail);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let dns = dns.clone();
        tasks.push(tokio::spawn(
            async move { dns.host("vendorcorp.test").await },
        ));
    }
    for task in tasks {
        let e = task.await.unwrap().unwrap_err();
        assert!(matches!(
            e,
            DnsError::Unavailable {
                cause: LookupError::ServFail,
                ..
            }
        ));
    }
    assert_eq!(server.queries_for("_btps.host.vendorcorp.test"), 1);
}

#[tokio::test]
async fn cancelled_first_lookup_hands_over_to_a_waiter() {
    let server = TestServer::start().await;
    server
        .add_txt(KEY_NAME, 300, &key_txt(&vector_key("billing-btps1")))
        .await;
    server.set_delay(Duration::from_millis(100));
    let (dns, _clock) = cache(server.resolver(), no_refresh());
    let billing = id("billing$vendorcorp.test");
    let first = {
        let (dns, billing) = (dns.clone(), billing.clone());
        tokio::spawn(async move { dns.identity_keys(&billing, "btps1").await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = {
        let (dns, billing) = (dns.clone(), billing.clone());
        tokio::spawn(async move { dns.identity_keys(&billing, "btps1").await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    first.abort();
    assert!(second.await.unwrap().is_ok());
}

#[tokio::test]
async fn temporary_failures_are_remembered_briefly_and_never_replace_a_live_entry() {
    let server = TestServer::start().await;
    let mut config = no_refresh();
    config.temporary_failure_ttl = Duration::from_secs(2);
    let (dns, clock) = cache(server.resolver(), config);

    server.set_mode(Mode::ServFail);
    assert!(
        dns.host("vendorcorp.test")
            .await
            .unwrap_err()
            .is_temporary()
    );
    server.set_mode(Mode::Normal);
    server
        .add_txt(
            "_btps.host.vendorcorp.test",
            10,
            "v=1.0.0;u=h.vendorcorp.test;s=btps1",
        )
        .await;
    clock.advance(Duration::from_secs(1));
    assert!(
        dns.host("vendorcorp.test")
            .await
            .unwrap_err()
            .is_temporary(),
        "damped"
    );
    assert_eq!(server.queries(), 1);
    clock.advance(Duration::from_secs(2));
    assert!(
        dns.host("vendorcorp.test").await.is_ok(),
        "retried after 2 s"
    );
    assert_eq!(server.queries(), 2);
}

#[tokio::test]
async fn refresh_ahead_serves_the_cached_value_and_refreshes_in_the_background() {
    let server = TestServer::start().await;
    server
        .add_txt(KEY_NAME, 100, &key_txt(&vector_key("billing-btps1")))
        .await;
    let mut config = CacheConfig::default();
    config.refresh_ahead = 0.1;
    let (dns, clock) = cache(server.resolver(), config);
    let billing = id("billing$vendorcorp.test");
    let old = vector_key("billing-btps1");
    let new = vector_key("billing-btps2");

    assert_eq!(dns.identity_keys(&billing, "btps1").await.unwrap()[0], old);
    server.replace_txt(KEY_NAME, 100, &key_txt(&new)).await;

    clock.advance(Duration::from_secs(89));
    assert_eq!(dns.identity_keys(&billing, "btps1").await.unwrap()[0], old);
    assert_eq!(
        server.queries_for(KEY_NAME),
        1,
        "no refresh before the last 10 %"
    );

    clock.advance(Duration::from_secs(2)); // 91 s: inside the refresh window
    // Served at once from the cache, while a background query starts.
    assert_eq!(dns.identity_keys(&billing, "btps1").await.unwrap()[0], old);
    assert_eq!(dns.stats().refreshes, 1);
    assert!(
        eventually(Duration::from_secs(5), || server.queries_for(KEY_NAME) == 2).await,
        "background refresh queried the server"
    );
    let dns2 = dns.clone();
    let refreshed = eventually(Duration::from_secs(5), || dns2.stats().entries == 1).await;
    assert!(refreshed);
    // The refreshed value is served before the original entry would have expired.
    let mut got = None;
    for _ in 0..100 {
        let keys = dns.identity_keys(&billing, "btps1").await.unwrap();
        if keys[0] == new {
            got = Some(keys);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(got.is_some(), "refreshed value served");
    assert_eq!(server.queries_for(KEY_NAME), 2);
    // It has a fresh lifetime: no query until its own refresh window.
    clock.advance(Duration::from_secs(80));
    assert_eq!(dns.identity_keys(&billing, "btps1").await.unwrap()[0], new);
    assert_eq!(server.queries_for(KEY_NAME), 2);
}

#[tokio::test]
async fn refresh_ahead_failure_keeps_the_live_entry_until_expiry() {
    let server = TestServer::start().await;
    server
        .add_txt(KEY_NAME, 100, &key_txt(&vector_key("billing-btps1")))
        .await;
    let (dns, clock) = cache(server.resolver(), CacheConfig::default());
    let billing = id("billing$vendorcorp.test");
    dns.identity_keys(&billing, "btps1").await.unwrap();

    server.set_mode(Mode::ServFail);
    clock.advance(Duration::from_secs(95));
    assert!(dns.identity_keys(&billing, "btps1").await.is_ok());
    assert!(eventually(Duration::from_secs(5), || server.queries_for(KEY_NAME) == 2).await);
    // Give the refresh task time to store (or not store) its answer.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        dns.identity_keys(&billing, "btps1").await.is_ok(),
        "still live"
    );
    assert_eq!(server.queries_for(KEY_NAME), 2, "one refresh per entry");
    clock.advance(Duration::from_secs(6)); // expired
    let e = dns.identity_keys(&billing, "btps1").await.unwrap_err();
    assert!(e.is_temporary());
    assert_eq!(e.error_code(), ErrorCode::DnsUnavailable);
}

#[tokio::test]
async fn cached_entries_are_shared_between_clones_and_cleared() {
    let server = TestServer::start().await;
    server
        .add_txt(
            "_btps.host.vendorcorp.test",
            300,
            "v=1.0.0;u=h.vendorcorp.test;s=btps1",
        )
        .await;
    let (dns, _clock) = cache(Arc::new(server.resolver()), no_refresh());
    let other = dns.clone();
    dns.host("vendorcorp.test").await.unwrap();
    other.host("VendorCorp.TEST").await.unwrap();
    assert_eq!(server.queries(), 1);
    dns.clear();
    other.host("vendorcorp.test").await.unwrap();
    assert_eq!(server.queries(), 2);
}
