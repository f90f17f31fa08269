//! The full server over TLS against malformed, oversized, pipelined and slow input: every
//! request gets exactly one reply with its `reqId`, and other clients stay served.

use std::time::{Duration, Instant};

use btps_server::PipelineOptions;
use btps_server::config::{Limits, RateLimits, Timeouts};
use btps_types::UnixMillis;

use crate::build::{Parsed, doc_line};
use crate::harness::{TrustState, harness, harness_with};
use crate::wire::TestServer;

const T0: i64 = 1_800_000_000_000;

fn ping(id: &str) -> String {
    format!(
        r#"{{"version":"1.0.0","id":"{id}","issuedAt":"2025-07-01T09:30:00.000Z","action":"PING"}}"#
    )
}

#[tokio::test]
async fn malformed_lines_get_errors_and_the_connection_stays_open() {
    let h = harness(UnixMillis::from_millis(T0), TrustState::Accepted, None).await;
    let server = TestServer::start(h.pipeline.clone()).await;
    let mut c = server.connect().await;
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let lines = [
        "{\"id\":\"x\",",              // truncated
        "[1,2,3]",                     // not an object
        deep.as_str(),                 // too deep
        "{\"id\":\"v1\",\"hello\":1}", // unclassifiable
        "{\"id\":\"v2\",\"id\":\"v3\",\"action\":\"PING\",\"version\":\"1\",\"issuedAt\":\"2025-07-01T09:30:00.000Z\"}", // conflicting duplicate
        "{\"version\":\"1.0.0\",\"id\":\"c1\",\"issuedAt\":\"2025-07-01T09:30:00.000Z\",\"action\":\"NOOP\"}",
        "   ", // blank: no reply
        "\u{7f}\u{1}garbage",
    ];
    let replies = c.send_lines(&lines).await;
    let codes: Vec<(Option<String>, Option<String>)> = replies
        .iter()
        .map(|r| {
            let p = Parsed::new(r);
            (
                p.error_code().map(str::to_owned),
                p.req_id().map(str::to_owned),
            )
        })
        .collect();
    let e = |c: &str, id: Option<&str>| (Some(c.to_owned()), id.map(str::to_owned));
    assert_eq!(
        codes,
        [
            e("BTP_ERROR_INVALID_JSON", None),
            e("BTP_ERROR_VALIDATION", None),
            e("BTP_ERROR_VALIDATION", None),
            e("BTP_ERROR_VALIDATION", Some("v1")),
            e("BTP_ERROR_VALIDATION", Some("v3")),
            e("BTP_ERROR_VALIDATION", Some("c1")),
            e("BTP_ERROR_INVALID_JSON", None),
        ]
    );
    // Still open and serving.
    let pong = c.send_lines(&[&ping("after")]).await;
    assert_eq!(Parsed::new(&pong[0]).message(), "pong");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_their_req_ids() {
    let h = harness(UnixMillis::from_millis(T0), TrustState::Accepted, None).await;
    let server = TestServer::start(h.pipeline.clone()).await;
    let mut c = server.connect().await;
    let mut lines = Vec::new();
    let now = UnixMillis::from_millis(T0);
    for i in 0..40 {
        if i % 2 == 0 {
            lines.push(ping(&format!("req-{i}")));
        } else {
            lines.push(doc_line(
                "billing$vendorcorp.test",
                "finance$buyer.test",
                &format!("req-{i}"),
                now,
            ));
        }
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = c.send_lines(&refs).await;
    assert_eq!(replies.len(), 40);
    for (i, r) in replies.iter().enumerate() {
        let p = Parsed::new(r);
        assert_eq!(p.req_id(), Some(format!("req-{i}").as_str()));
        assert!(p.ok(), "{r}");
    }
}

#[tokio::test]
async fn an_oversized_line_closes_only_its_connection() {
    let h = harness(UnixMillis::from_millis(T0), TrustState::Accepted, None).await;
    let limits = Limits {
        max_line_bytes: 4096,
        ..Limits::default()
    };
    let server = TestServer::start_with(h.pipeline.clone(), limits, Timeouts::default()).await;
    let mut bad = server.connect().await;
    let mut good = server.connect().await;
    let big = format!("{{\"id\":\"big\",\"pad\":\"{}\"}}\n", "x".repeat(10_000));
    bad.write(format!("{}\n", ping("before")).as_bytes()).await;
    bad.write(big.as_bytes()).await;
    let first = Parsed::new(&bad.read_line().await.unwrap());
    assert_eq!(first.message(), "pong");
    let too_long = Parsed::new(&bad.read_line().await.unwrap());
    assert_eq!(too_long.error_code(), Some("BTP_ERROR_LINE_TOO_LONG"));
    assert_eq!(too_long.req_id(), None);
    assert!(bad.is_closed().await);
    let pong = good.send_lines(&[&ping("other")]).await;
    assert_eq!(Parsed::new(&pong[0]).message(), "pong");
}

#[tokio::test]
async fn slow_clients_do_not_hold_up_others() {
    let h = harness(UnixMillis::from_millis(T0), TrustState::Accepted, None).await;
    let timeouts = Timeouts {
        line_read_ms: 1_500,
        idle_ms: 3_000,
        ..Timeouts::default()
    };
    let server = TestServer::start_with(h.pipeline.clone(), Limits::default(), timeouts).await;
    // 30 connections each send half a line and stall (slowloris), 10 more stay silent.
    let mut slow = Vec::new();
    for i in 0..30 {
        let mut c = server.connect().await;
        c.write(format!("{{\"id\":\"slow-{i}\",\"action\":").as_bytes())
            .await;
        slow.push(c);
    }
    for _ in 0..10 {
        slow.push(server.connect().await);
    }
    let mut good = server.connect().await;
    for i in 0..20 {
        let start = Instant::now();
        let r = good.send_lines(&[&ping(&format!("g{i}"))]).await;
        assert_eq!(Parsed::new(&r[0]).message(), "pong");
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
    }
    // The stalled partial lines hit the line-read timeout: 408 without reqId, then close.
    let r = slow[0].read_line().await.expect("a timeout reply");
    assert_eq!(
        Parsed::new(&r).error_code(),
        Some("BTP_ERROR_SOCKET_TIMEOUT")
    );
    assert!(slow[0].is_closed().await);
    server.stop().await;
}

#[tokio::test]
async fn consecutive_rate_limit_rejections_close_the_connection() {
    let now = UnixMillis::from_millis(T0);
    let h = harness_with(
        now,
        TrustState::Accepted,
        None,
        PipelineOptions {
            domains: vec!["buyer.test".into()],
            rate_limits: RateLimits {
                per_ip_per_minute: 1,
                close_after_rejections: 3,
                ..RateLimits::unlimited()
            },
            ..PipelineOptions::default()
        },
    )
    .await;
    let server = TestServer::start(h.pipeline.clone()).await;
    let doc = |id: &str| doc_line("billing$vendorcorp.test", "finance$buyer.test", id, now);
    let code = |reply: &str| Parsed::new(reply).error_code().map(str::to_owned);
    let limited = Some("BTP_ERROR_RATE_LIMITER".to_owned());
    let mut c = server.connect().await;

    // The bucket holds one artifact; then 429s. A reply that is not a 429 (the pong) starts
    // the count again, so two more 429s leave the connection open.
    let replies = c
        .send_lines(&[
            &doc("d0"),
            &doc("d1"),
            &doc("d2"),
            &ping("p0"),
            &doc("d3"),
            &doc("d4"),
        ])
        .await;
    let codes: Vec<_> = replies.iter().map(|r| code(r)).collect();
    assert_eq!(
        codes,
        [
            None,
            limited.clone(),
            limited.clone(),
            None,
            limited.clone(),
            limited.clone()
        ]
    );
    assert!(!c.is_closed().await);

    // The third 429 in a row is written, then the connection closes: the ping pipelined
    // after it gets no reply.
    c.write(format!("{}\n{}\n", doc("d5"), ping("late")).as_bytes())
        .await;
    let third = Parsed::new(&c.read_line().await.expect("the third 429"));
    assert_eq!(third.error_code(), Some("BTP_ERROR_RATE_LIMITER"));
    assert_eq!(third.req_id(), Some("d5"));
    assert!(c.is_closed().await);

    // Another connection from the same address is served.
    let mut other = server.connect().await;
    let pong = other.send_lines(&[&ping("other")]).await;
    assert_eq!(Parsed::new(&pong[0]).message(), "pong");
    server.stop().await;
}
