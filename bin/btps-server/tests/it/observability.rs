//! The observability listener over plain HTTP: `/healthz`, `/readyz`, and `/metrics`
//! counting the artifacts the server answered.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::{BILLING, DataDir, FINANCE, billing_key, doc_line, invoice, now, unique_id};

/// The value of the sample `name` (with its labels) in a Prometheus text page.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

#[test]
fn health_readiness_and_metrics() {
    let mut dir = DataDir::new();
    dir.admin_ok(&[
        "trust",
        "set",
        BILLING,
        FINANCE,
        "--status",
        "accepted",
        "--privacy",
        "mixed",
    ]);
    let server = dir.start();
    assert_eq!(server.http_get("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(server.http_get("/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(server.http_get("/nothing-here").0, 404);

    let (code, metrics) = server.http_get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("# TYPE btps_requests_total counter"),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"btps_requests_total{kind="BTPS_DOC",outcome="ok"}"#
        ),
        None
    );

    const N: usize = 7;
    let key = billing_key();
    let document = invoice();
    let lines: Vec<String> = (0..N)
        .map(|_| doc_line(&unique_id("inv"), now(), &document, &key))
        .collect();
    let mut client = server.connect();
    client.write_lines(&lines).unwrap();
    for _ in 0..N {
        let reply = crate::support::Reply::parse(&client.read_line().unwrap());
        assert!(reply.ok(), "{:?}", reply.0);
    }
    // One re-send (already accepted) and one line that is not JSON.
    assert_eq!(client.request(&lines[0]).message(), "already accepted");
    let bad = client.request("{not json");
    assert_eq!(
        bad.error_code(),
        Some("BTP_ERROR_INVALID_JSON"),
        "{:?}",
        bad.0
    );

    let (code, metrics) = server.http_get("/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        sample(
            &metrics,
            r#"btps_requests_total{kind="BTPS_DOC",outcome="ok"}"#
        ),
        Some((N + 1) as f64),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "btps_already_accepted_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, r#"btps_request_seconds_count{class="artifact"}"#),
        Some((N + 1) as f64),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"outcome="BTP_ERROR_INVALID_JSON"} 1"#),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "btps_open_connections"), Some(1.0));
    assert_eq!(
        sample(&metrics, "btps_connections_accepted_total"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "btps_rate_limited_total"), Some(0.0));

    // Not GET: refused; a request head without an end is cut off at 8 KiB.
    let mut s = TcpStream::connect(server.http).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
    let mut s = TcpStream::connect(server.http).unwrap();
    let _ = s.write_all(&vec![b'a'; 9 * 1024]);
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");

    drop(client);
    server.stop();
}
