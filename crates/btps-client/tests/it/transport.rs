//! Connections, pipelining, pooling, timeouts and retries against scripted servers over
//! real TLS (PROTOCOL.md §2.3, §2.4, §11.1).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use btps_client::{ClientError, RequestOptions};
use btps_types::ErrorCode;
use btps_types::json::Value;

use crate::support::{
    Act, Behaviour, Pki, ScriptServer, client, config, dead_addr, echo, ping, reply, reply_to,
};

fn echo_all(_: usize) -> Behaviour {
    Box::new(|req| vec![Act::Reply(echo(req))])
}

fn echoed(r: &btps_client::Response) -> &str {
    r.document_object().and_then(|d| d.get_str("echo")).unwrap()
}

#[tokio::test]
async fn hundred_pipelined_requests_on_one_connection_are_matched_by_req_id() {
    let pki = Pki::new(&["localhost"]);
    // Replies in reverse order, ten at a time: only reqId can match them.
    let server = ScriptServer::start(&pki, |_| {
        let mut held = Vec::new();
        Box::new(move |req| {
            held.push(echo(req));
            if held.len() == 10 {
                held.drain(..).rev().map(Act::Reply).collect()
            } else {
                Vec::new()
            }
        })
    })
    .await;
    let mut cfg = config(&pki);
    cfg.max_in_flight = 128;
    let client = client(cfg);
    let addr = server.addr();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = client.clone();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("req-{i}");
            let r = client
                .request(&addr, &ping(&id), RequestOptions::default())
                .await
                .unwrap();
            assert_eq!(r.req_id(), Some(id.as_str()));
            assert_eq!(echoed(&r), id);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.handshakes(), 1);
    assert_eq!(server.lines()[0].len(), 100);
    assert_eq!(client.stats().connections_opened, 1);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn a_reply_for_an_unknown_req_id_is_never_delivered() {
    let pki = Pki::new(&["localhost"]);
    // Holds the first request's reply until the second arrives, then answers the first
    // with a reqId nobody asked for and the second correctly.
    let server = ScriptServer::start(&pki, |conn| {
        let mut first = None;
        Box::new(move |req| {
            if conn > 0 {
                return vec![Act::Reply(echo(req))];
            }
            match first.take() {
                None => {
                    first = Some(req.clone());
                    Vec::new()
                }
                Some(_) => vec![
                    Act::Reply(crate::support::line(&reply(
                        Some("somebody-else"),
                        200,
                        "success",
                        None,
                        None,
                    ))),
                    Act::Reply(echo(req)),
                ],
            }
        })
    })
    .await;
    let client = client(config(&pki));
    let addr = server.addr();
    let a = {
        let (client, addr) = (client.clone(), addr.clone());
        tokio::spawn(async move {
            client
                .request(&addr, &ping("a"), RequestOptions::default())
                .await
        })
    };
    // Make sure `a` is written first.
    while server.lines().first().is_none_or(Vec::is_empty) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b = client
        .request(&addr, &ping("b"), RequestOptions::default())
        .await;
    let a = a.await.unwrap();
    assert!(matches!(a, Err(ClientError::Protocol(_))), "{a:?}");
    assert!(matches!(b, Err(ClientError::Protocol(_))), "{b:?}");
    assert_eq!(a.unwrap_err().error_code(), ErrorCode::Validation);
    // The connection was closed; the next request gets a new one.
    let c = client
        .request(&addr, &ping("c"), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(echoed(&c), "c");
    assert_eq!(server.handshakes(), 2);
}

#[tokio::test]
async fn a_reply_to_someone_else_is_not_taken_for_mine() {
    let pki = Pki::new(&["localhost"]);
    // Always answers with the reqId of the previous request.
    let server = ScriptServer::start(&pki, |_| {
        let mut previous: Option<String> = None;
        Box::new(move |req| {
            let this = req.get_str("id").unwrap().to_owned();
            let answer = previous.replace(this).unwrap_or_else(|| "nobody".into());
            vec![Act::Reply(crate::support::line(&reply(
                Some(&answer),
                200,
                "success",
                None,
                None,
            )))]
        })
    })
    .await;
    let client = client(config(&pki));
    let r = client
        .request(&server.addr(), &ping("x1"), RequestOptions::default())
        .await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
}

#[tokio::test]
async fn a_timed_out_idempotent_request_is_retried_on_a_new_connection_only() {
    let pki = Pki::new(&["localhost"]);
    // The first connection answers after 1.5 s; later ones at once.
    let server = ScriptServer::start(&pki, |conn| {
        Box::new(move |req| {
            if conn == 0 {
                vec![
                    Act::Sleep(Duration::from_millis(1500)),
                    Act::Reply(echo(req)),
                ]
            } else {
                vec![Act::Reply(echo(req))]
            }
        })
    })
    .await;
    let mut cfg = config(&pki);
    cfg.request_timeout = Duration::from_millis(300);
    let client = client(cfg);
    let addr = server.addr();
    let r = client
        .request(&addr, &ping("slow-1"), RequestOptions::idempotent())
        .await
        .unwrap();
    assert_eq!(echoed(&r), "slow-1");
    assert_eq!(server.handshakes(), 2);
    // Written once on each connection: never re-sent on the one that timed out.
    assert_eq!(server.count_id("slow-1"), vec![1, 1]);
    assert_eq!(client.stats().retries, 1);
    // The late reply on the first connection is dropped quietly; the client keeps working.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = client
        .request(&addr, &ping("after"), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(echoed(&r), "after");
    assert_eq!(server.count_id("after").iter().sum::<usize>(), 1);
}

#[tokio::test]
async fn a_timed_out_request_that_is_not_idempotent_is_not_re_sent() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|req| {
            vec![
                Act::Sleep(Duration::from_millis(800)),
                Act::Reply(echo(req)),
            ]
        })
    })
    .await;
    let mut cfg = config(&pki);
    cfg.request_timeout = Duration::from_millis(200);
    let client = client(cfg);
    let r = client
        .request(&server.addr(), &ping("once"), RequestOptions::default())
        .await;
    assert!(matches!(r, Err(ClientError::Timeout { .. })), "{r:?}");
    assert_eq!(r.unwrap_err().error_code(), ErrorCode::Timeout);
    assert_eq!(server.count_id("once"), vec![1]);
    // The timed-out connection takes no new request.
    let r = client
        .request(
            &server.addr(),
            &ping("next"),
            RequestOptions::default().with_timeout(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert_eq!(echoed(&r), "next");
    assert_eq!(server.count_id("next"), vec![0, 1]);
}

#[tokio::test]
async fn a_connection_dropped_mid_reply() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |conn| {
        Box::new(move |req| {
            if conn == 0 {
                let full = echo(req);
                vec![
                    Act::Raw(full.as_bytes()[..full.len() / 2].to_vec()),
                    Act::Close,
                ]
            } else {
                vec![Act::Reply(echo(req))]
            }
        })
    })
    .await;
    let client = client(config(&pki));
    let addr = server.addr();
    let r = client
        .request(&addr, &ping("half"), RequestOptions::default())
        .await;
    assert!(
        matches!(r, Err(ClientError::ConnectionClosed { .. })),
        "{r:?}"
    );
    assert_eq!(server.count_id("half"), vec![1]);

    // Idempotent: retried on a new connection (the second one answers in full).
    let server = ScriptServer::start(&pki, |conn| {
        Box::new(move |req| {
            if conn == 0 {
                vec![
                    Act::Raw(b"{\"version\":\"1.0.0\",\"sta".to_vec()),
                    Act::Close,
                ]
            } else {
                vec![Act::Reply(echo(req))]
            }
        })
    })
    .await;
    let r = client
        .request(
            &server.addr(),
            &ping("half-2"),
            RequestOptions::idempotent(),
        )
        .await
        .unwrap();
    assert_eq!(echoed(&r), "half-2");
    assert_eq!(server.count_id("half-2"), vec![1, 1]);
}

#[tokio::test]
async fn an_over_long_reply_fails_and_closes_the_connection() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|req| {
            let big = "x".repeat(4096);
            let id = req.get_str("id").unwrap();
            if id.starts_with("big") {
                vec![Act::Reply(reply_to(
                    req,
                    200,
                    "success",
                    None,
                    Some(Value::from(big)),
                ))]
            } else {
                vec![Act::Reply(echo(req))]
            }
        })
    })
    .await;
    let mut cfg = config(&pki);
    cfg.max_reply_bytes = 1024;
    let client = client(cfg);
    let addr = server.addr();
    let r = client
        .request(&addr, &ping("big-1"), RequestOptions::idempotent())
        .await;
    assert_eq!(r, Err(ClientError::ReplyTooLong { limit: 1024 }));
    assert_eq!(
        ClientError::ReplyTooLong { limit: 1024 }.error_code(),
        ErrorCode::LineTooLong
    );
    // Not retryable: sent once.
    assert_eq!(server.count_id("big-1").iter().sum::<usize>(), 1);
    let r = client
        .request(&addr, &ping("small"), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(echoed(&r), "small");
    assert_eq!(server.handshakes(), 2);
}

#[tokio::test]
async fn connection_level_errors_without_req_id_fail_the_pending_requests() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|_| {
            vec![
                Act::Reply(crate::support::line(&reply(
                    None,
                    408,
                    "Socket timeout. Connection closed",
                    Some("BTP_ERROR_SOCKET_TIMEOUT"),
                    None,
                ))),
                Act::Close,
            ]
        })
    })
    .await;
    let mut cfg = config(&pki);
    cfg.retry.max_attempts = 1;
    let client = client(cfg);
    let r = client
        .request(&server.addr(), &ping("t"), RequestOptions::default())
        .await;
    match r {
        Err(e @ ClientError::Rejected { code: 408, .. }) => {
            assert_eq!(e.error_code(), ErrorCode::SocketTimeout);
            assert!(e.is_retryable());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn error_replies_503_are_retried_when_idempotent_on_another_connection() {
    let pki = Pki::new(&["localhost"]);
    let busy = Arc::new(AtomicUsize::new(0));
    let server = {
        let busy = busy.clone();
        ScriptServer::start(&pki, move |conn| {
            let busy = busy.clone();
            Box::new(move |req| {
                if conn == 0 {
                    busy.fetch_add(1, Ordering::SeqCst);
                    vec![Act::Reply(reply_to(
                        req,
                        503,
                        "Server busy, retry later",
                        Some("BTP_ERROR_SERVER_BUSY"),
                        None,
                    ))]
                } else {
                    vec![Act::Reply(echo(req))]
                }
            })
        })
        .await
    };
    let client = client(config(&pki));
    let addr = server.addr();
    // Not idempotent: the error reply comes back as a Response.
    let r = client
        .request(&addr, &ping("n1"), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!((r.ok(), r.code()), (false, 503));
    assert_eq!(r.error_code(), Some(ErrorCode::ServerBusy));
    assert!(matches!(
        r.into_result(),
        Err(ClientError::Rejected { code: 503, .. })
    ));
    // Idempotent: retried, and not on the connection it was written to.
    let r = client
        .request(&addr, &ping("i1"), RequestOptions::idempotent())
        .await
        .unwrap();
    assert!(r.ok());
    assert_eq!(server.count_id("i1"), vec![1, 1]);
    assert_eq!(busy.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn final_error_replies_are_not_retried() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|req| {
            // A btps-node peer: 500 without errorCode for a refusal.
            vec![Act::Reply(reply_to(
                req,
                500,
                "BTPS artifact validation failed",
                None,
                None,
            ))]
        })
    })
    .await;
    let client = client(config(&pki));
    let r = client
        .request(&server.addr(), &ping("f1"), RequestOptions::idempotent())
        .await
        .unwrap();
    assert_eq!(r.code(), 500);
    assert_eq!(server.count_id("f1"), vec![1]);
}

#[tokio::test]
async fn the_pool_reuses_one_connection_and_closes_it_when_idle() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, echo_all).await;
    let mut cfg = config(&pki);
    cfg.idle_ttl = Duration::from_millis(300);
    let client = client(cfg);
    let addr = server.addr();
    for i in 0..20 {
        let id = format!("seq-{i}");
        let r = client
            .request(&addr, &ping(&id), RequestOptions::default())
            .await
            .unwrap();
        assert_eq!(echoed(&r), id);
    }
    assert_eq!(server.handshakes(), 1);
    assert_eq!(client.open_connections(&addr), 1);
    // Idle for longer than the TTL (measured from the last use): QUIT, closed.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(client.open_connections(&addr), 0);
    let first = &server.lines()[0];
    assert_eq!(first.len(), 21);
    assert!(first[20].contains("\"action\":\"QUIT\""), "{first:?}");
    let r = client
        .request(&addr, &ping("later"), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(echoed(&r), "later");
    assert_eq!(server.handshakes(), 2);
}

#[tokio::test]
async fn the_idle_ttl_counts_from_the_last_use() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, echo_all).await;
    let mut cfg = config(&pki);
    cfg.idle_ttl = Duration::from_millis(1000);
    let client = client(cfg);
    let addr = server.addr();
    // Used every 250 ms for 2 s: older than the TTL, but never idle that long.
    for i in 0..8 {
        client
            .request(&addr, &ping(&format!("u-{i}")), RequestOptions::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(server.handshakes(), 1);
}

#[tokio::test]
async fn a_saturated_connection_makes_the_pool_open_another() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|req| {
            vec![
                Act::Sleep(Duration::from_millis(100)),
                Act::Reply(echo(req)),
            ]
        })
    })
    .await;
    let mut cfg = config(&pki);
    cfg.max_in_flight = 2;
    cfg.max_connections_per_server = 2;
    let client = client(cfg);
    let addr = server.addr();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, addr) = (client.clone(), addr.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("sat-{i}");
            let r = client
                .request(&addr, &ping(&id), RequestOptions::default())
                .await
                .unwrap();
            assert_eq!(echoed(&r), id);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.handshakes(), 2);

    // Both connections busy and the limit reached: a request waits for a slot, up to its
    // timeout, then gives up.
    let blocked = ScriptServer::start(&pki, |_| {
        Box::new(|req| vec![Act::Sleep(Duration::from_secs(2)), Act::Reply(echo(req))])
    })
    .await;
    let mut cfg = config(&pki);
    cfg.max_in_flight = 1;
    cfg.max_connections_per_server = 1;
    cfg.retry.max_attempts = 1;
    let client = crate::support::client(cfg);
    let addr = blocked.addr();
    let first = {
        let (client, addr) = (client.clone(), addr.clone());
        tokio::spawn(async move {
            client
                .request(&addr, &ping("hog"), RequestOptions::default())
                .await
        })
    };
    while blocked.lines().first().is_none_or(Vec::is_empty) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = client
        .request(
            &addr,
            &ping("waiter"),
            RequestOptions::default().with_timeout(Duration::from_millis(200)),
        )
        .await;
    match r {
        Err(e @ ClientError::PoolExhausted { .. }) => {
            assert_eq!(e.error_code(), ErrorCode::MaxConnectionsReached);
        }
        other => panic!("{other:?}"),
    }
    assert!(first.await.unwrap().is_ok());
}

#[tokio::test]
async fn connect_failures_are_retried_with_backoff() {
    let pki = Pki::new(&["localhost"]);
    let client = client(config(&pki));
    let addr = dead_addr().await;
    let started = std::time::Instant::now();
    // Not idempotent, but never sent: tried again.
    let r = client
        .request(&addr, &ping("nobody-home"), RequestOptions::default())
        .await;
    match r {
        Err(e @ ClientError::Connect { .. }) => {
            assert!(e.is_retryable());
            assert_eq!(e.error_code(), ErrorCode::ConnectionEnded);
        }
        other => panic!("{other:?}"),
    }
    let stats = client.stats();
    assert_eq!((stats.attempts, stats.retries), (3, 2));
    assert_eq!(stats.connect_failures, 3);
    // Two waits of at least 10 ms and 20 ms (the reconnect backoff of 20 ms → 40 ms with
    // half jitter).
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn ping_and_concurrent_first_requests_share_one_connection() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|req| vec![Act::Reply(reply_to(req, 200, "pong", None, None))])
    })
    .await;
    let client = client(config(&pki));
    let addr = server.addr();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (client, addr) = (client.clone(), addr.clone());
        tasks.push(tokio::spawn(async move { client.ping(&addr).await }));
    }
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.message(), "pong");
    }
    assert_eq!(server.handshakes(), 1);
    assert!(server.lines()[0][0].contains("\"action\":\"PING\""));
}

#[tokio::test]
async fn a_success_reply_without_req_id_is_a_protocol_violation() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|_| {
            vec![Act::Reply(crate::support::line(&reply(
                None, 200, "success", None, None,
            )))]
        })
    })
    .await;
    let client = client(config(&pki));
    let r = client
        .request(&server.addr(), &ping("p"), RequestOptions::default())
        .await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
    // Not JSON at all: a violation too.
    let server =
        ScriptServer::start(&pki, |_| Box::new(|_| vec![Act::Reply("<html>".into())])).await;
    let r = client
        .request(&server.addr(), &ping("q"), RequestOptions::default())
        .await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
}

#[tokio::test]
async fn requests_need_an_id() {
    let pki = Pki::new(&["localhost"]);
    let client = client(config(&pki));
    let addr = dead_addr().await;
    let mut no_id = ping("x");
    no_id.remove("id");
    assert!(matches!(
        client
            .request(&addr, &no_id, RequestOptions::default())
            .await,
        Err(ClientError::Invalid(_))
    ));
    assert_eq!(client.stats().attempts, 0);
}

#[tokio::test]
async fn a_malformed_reply_naming_its_request_fails_that_request_only() {
    let pki = Pki::new(&["localhost"]);
    let server = ScriptServer::start(&pki, |_| {
        Box::new(|req| {
            let id = req.get_str("id").unwrap();
            if id == "bad" {
                vec![Act::Reply(format!(
                    "{{\"version\":\"1.0.0\",\"reqId\":\"{id}\",\"type\":\"btps_response\"}}"
                ))]
            } else {
                vec![Act::Reply(echo(req))]
            }
        })
    })
    .await;
    let client = client(config(&pki));
    let addr = server.addr();
    let r = client
        .request(&addr, &ping("bad"), RequestOptions::default())
        .await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
    let r = client
        .request(&addr, &ping("good"), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(echoed(&r), "good");
    assert_eq!(server.handshakes(), 1);
}
