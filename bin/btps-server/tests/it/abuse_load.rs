//! Abuse of a running `btps-server` process over TLS on loopback, all at the same time:
//! 10 000 malformed, deeply nested and oversized lines; 1 000 slowloris connections (half
//! trickle a partial line byte by byte, half stay silent); 250 TLS handshakes that never
//! finish (nothing sent, or half a ClientHello); a flood of signed artifacts from one IP (the
//! per-IP rate limit) and one from one identity over ten IPs (the per-sender limit).
//!
//! Meanwhile a well-behaved client on its own connection sends pings and signed documents
//! and measures each round trip, and the server's resident memory is sampled from
//! `/proc/<pid>/status`. Asserted: every malformed line gets one error reply; oversized lines
//! get `BTP_ERROR_LINE_TOO_LONG` and a close; the server closes every slowloris connection
//! and every stuck handshake by its timeouts; the floods get 429 `BTP_ERROR_RATE_LIMITER`
//! beyond their budgets and nothing refused is stored, while everything acknowledged is
//! stored once; the good client's p99 and the server's peak RSS stay under generous bounds
//! (see the constants). The figures are printed on lines starting with `abuse-load:`.
//!
//! Clients use distinct loopback source addresses (127.0.0.0/8) so that the default
//! per-IP connection limit (64) applies to each as it would to separate hosts.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use btps_crypto::KeyPair;
use rustls_pki_types::ServerName;

use crate::support::{
    BILLING, DataDir, FINANCE, LineClient, Reply, auth_request, device_key, doc_line_from,
    edit_config, heavy_test, inbox_ids, invoice, key_pair, now, tcp_from, unique_id,
};

/// Malformed lines in all, the oversized ones included.
const MALFORMED: usize = 10_000;
/// Of them, lines over `max_line_bytes` (4 MiB, the default), each on its own connection.
const OVERSIZED: usize = 10;
/// Connections the other malformed lines are spread over, evenly.
const MALFORMED_CONNECTIONS: usize = 10;
const _: () = assert!((MALFORMED - OVERSIZED).is_multiple_of(MALFORMED_CONNECTIONS));
/// Lines written at once before their replies are read.
const BATCH: usize = 50;
/// Slowloris connections (TLS established), 50 per source address.
const SLOWLORIS: usize = 1_000;
/// TCP connections whose TLS handshake never finishes, `STUCK_PER_IP` per source address.
const STUCK_HANDSHAKES: usize = 250;
const STUCK_PER_IP: usize = 50;
/// Signed documents sent from one IP, and the per-IP budget per minute.
const IP_FLOOD: usize = 400;
const PER_IP_PER_MINUTE: u32 = 120;
/// Signed documents of one sender sent over `SENDER_FLOOD_IPS` addresses, and the
/// per-sender budget per minute.
const SENDER_FLOOD: usize = 500;
const SENDER_FLOOD_IPS: u8 = 10;
const PER_SENDER_PER_MINUTE: u32 = 240;
/// Server timeouts of this test (shorter than the defaults so that the test takes seconds).
const HANDSHAKE_MS: u64 = 2_000;
const LINE_READ_MS: u64 = 3_000;
const IDLE_MS: u64 = 4_000;

/// The good client's p99 bound. The server's target is 5 ms (measured on an optimised build
/// by `cargo xtask bench server`); this test runs the unoptimised build of `cargo test`,
/// with the abuse generated on the same two or so cores (1 250 TLS handshakes on both ends,
/// RSA verification of 900 flood documents), so it only asserts that the good client is
/// never starved: every way of starving it the server has (a handshake slot, a read paused
/// behind other connections, a timeout) would cost it 2 s or more.
const P99_BOUND: Duration = Duration::from_secs(1);
/// The bound of the server's peak RSS. Measured: about 20 MiB idle, 52 MiB at the peak
/// (about 1 270 connections open at once with their TLS state and read buffers, one 4 MiB
/// oversized line buffered at a time). The bound leaves more than twice that; a leak of a
/// few KiB per line (10 000 lines) or of the buffers of closed connections (2 500
/// connections in all) would exceed it.
const PEAK_RSS_BOUND_MIB: u64 = 128;

/// Another sender with a key in the vectors: the well-behaved client.
const GOOD_SENDER: &str = "finance$buyer.test";
/// The identity whose budget the sender flood spends.
const FLOOD_SENDER: &str = "admin$vendorcorp.test";

fn ip(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

fn ping(id: &str) -> String {
    format!(
        r#"{{"version":"1.0.0","id":"{id}","issuedAt":"{}","action":"PING"}}"#,
        now().to_datetime_string()
    )
}

/// Percentile `p` (0..=100) of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn mib(kib: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "a printed figure")]
    let v = kib as f64 / 1024.0;
    v
}

/// The malformed line number `n` (never blank, never over the line limit).
fn malformed(n: usize) -> Vec<u8> {
    match n % 10 {
        0 => format!("{{\"id\":\"m-{n}\",\"ver").into_bytes(),
        1 => ["[1,2,3]", "\"text\"", "42", "null", "{}"][n / 10 % 5]
            .as_bytes()
            .to_vec(),
        // Deep nesting: just over the limit (64), far over it, and 100 000 levels.
        2 => {
            let depth = if n % 1000 == 2 { 100_000 } else { 65 + n % 200 };
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }
        3 => "{\"a\":".repeat(2_000).into_bytes(),
        4 => {
            let mut b = format!("{{\"id\":\"m-{n}\",\"x\":\"").into_bytes();
            b.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, b'"', b'}']);
            b
        }
        5 => format!(
            r#"{{"version":"1.0.0","type":"BTPS_DOC","from":"x","to":"y","id":"m-{n}"}}"#
        )
        .into_bytes(),
        6 => format!(r#"{{"id":"m-{n}","id":"other-{n}","action":"PING"}}"#).into_bytes(),
        7 => {
            let keys: Vec<String> = (0..500).map(|k| format!("\"k{k}\":{k}")).collect();
            format!("{{{}}}", keys.join(",")).into_bytes()
        }
        8 => vec![0x7f, 0x01, b'{', 0x00, b'}', 0x1b, b'['],
        // Well-formed but forged: a signature that verifies for no key.
        _ => format!(
            r#"{{"version":"1.0.0","type":"BTPS_DOC","from":"attest$trustauthority.test","to":"{FINANCE}","selector":"btps1","id":"m-{n}","issuedAt":"{}","document":{{}},"encryption":null,"signature":{{"algorithmHash":"sha256","value":"AAAA","fingerprint":"AAAA"}}}}"#,
            now().to_datetime_string()
        )
        .into_bytes(),
    }
}

/// Reads from `c` until the server closes the connection; the lines read and whether it
/// closed (false: the read timed out with the connection still open).
fn drain(c: &mut LineClient) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    loop {
        match c.read_line() {
            Ok(l) => lines.push(l),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (lines, false);
            }
            Err(_) => return (lines, true),
        }
    }
}

/// Whether the server closed a raw TCP connection (EOF or reset) before `wait` passed.
fn tcp_closed(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// The first flight of a TLS client: a ClientHello.
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// Signs `n` documents from `from` with `key`, on two threads.
fn sign_docs(
    prefix: &str,
    from: &'static str,
    key_file: &'static str,
    n: usize,
) -> Vec<(String, String)> {
    let at = now();
    let doc = invoice();
    let sign = |range: std::ops::Range<usize>| {
        let key: KeyPair = key_pair(key_file);
        range
            .map(|i| {
                let id = unique_id(&format!("{prefix}-{i}"));
                (id.clone(), doc_line_from(from, &key, &id, at, &doc))
            })
            .collect::<Vec<_>>()
    };
    thread::scope(|s| {
        let half = s.spawn(|| sign(0..n / 2));
        let mut rest = sign(n / 2..n);
        let mut all = half.join().unwrap();
        all.append(&mut rest);
        all
    })
}

/// Sends `lines` over `clients`, each connection from its own thread with its share; the
/// ids acknowledged and the ids refused with 429, and the elapsed time. Any other reply
/// fails the test.
fn flood(
    what: &str,
    clients: Vec<LineClient>,
    lines: &[(String, String)],
) -> (Vec<String>, Vec<String>, Duration) {
    let start = Instant::now();
    let share = lines.len().div_ceil(clients.len());
    let (mut acked, mut limited) = (Vec::new(), Vec::new());
    thread::scope(|s| {
        let senders: Vec<_> = clients
            .into_iter()
            .zip(lines.chunks(share))
            .map(|(mut c, lines)| {
                s.spawn(move || {
                    let (mut acked, mut limited) = (Vec::new(), Vec::new());
                    for batch in lines.chunks(16) {
                        c.write_lines(&batch.iter().map(|(_, l)| l).collect::<Vec<_>>())
                            .unwrap();
                        for (id, _) in batch {
                            let r = Reply::parse(&c.read_line().unwrap());
                            assert_eq!(r.req_id(), Some(id.as_str()), "{what}: {:?}", r.0);
                            if r.ok() {
                                assert_eq!(r.message(), "success", "{what}: {:?}", r.0);
                                acked.push(id.clone());
                            } else {
                                assert_eq!(
                                    r.error_code(),
                                    Some("BTP_ERROR_RATE_LIMITER"),
                                    "{what}: {:?}",
                                    r.0
                                );
                                assert_eq!(r.code(), Some(429), "{what}: {:?}", r.0);
                                limited.push(id.clone());
                            }
                        }
                    }
                    (acked, limited)
                })
            })
            .collect();
        for t in senders {
            let (a, l) = t.join().unwrap();
            acked.extend(a);
            limited.extend(l);
        }
    });
    (acked, limited, start.elapsed())
}

/// `n` slowloris connections from `source`: TLS established, then every other one sends a
/// partial line one byte every 200 ms for half the line-read timeout (which counts from a
/// line's first byte) and the others stay silent. Each must get one 408 (line-read or idle
/// timeout) and be closed by the server; returns how many got the 408 and how many were
/// closed. Bytes still unread when the server closes would make its kernel reset the
/// connection and lose the reply, so nothing is written after the first half.
fn slowloris(server: &crate::support::ServerProcess, source: IpAddr, n: usize) -> (usize, usize) {
    let partial = b"{\"version\":\"1.0.0\",\"id\":\"slow\",\"action\":\"PI";
    let trickle_for = Duration::from_millis(LINE_READ_MS / 2);
    // (connection, time of its first byte, bytes sent)
    let mut conns: Vec<(LineClient, Option<Instant>, usize)> = Vec::new();
    let mut last_pass = Instant::now();
    let pass = |conns: &mut Vec<(LineClient, Option<Instant>, usize)>| {
        for (c, first, sent) in conns.iter_mut() {
            if let Some(t) = first
                && t.elapsed() < trickle_for
            {
                let b = *sent % partial.len();
                c.write_raw(&partial[b..=b]).unwrap();
                *sent += 1;
            }
        }
    };
    for i in 0..n {
        let mut c = server.connect_from(source).unwrap();
        let first = (i % 2 == 0).then(|| {
            c.write_raw(&partial[..1]).unwrap();
            Instant::now()
        });
        conns.push((c, first, 1));
        if last_pass.elapsed() >= Duration::from_millis(200) {
            pass(&mut conns);
            last_pass = Instant::now();
        }
    }
    while conns
        .iter()
        .any(|(_, first, _)| first.is_some_and(|t| t.elapsed() < trickle_for))
    {
        thread::sleep(Duration::from_millis(200));
        pass(&mut conns);
    }
    let (mut timed_out, mut closed) = (0, 0);
    for (i, (c, first, sent)) in conns.iter_mut().enumerate() {
        c.set_read_timeout(Duration::from_millis(LINE_READ_MS.max(IDLE_MS) + 3_000));
        let (lines, is_closed) = drain(c);
        closed += usize::from(is_closed);
        assert_eq!(
            lines.len(),
            1,
            "slowloris connection {source} #{i} ({}): {lines:?}",
            if first.is_some() {
                format!("{sent} bytes of a line")
            } else {
                "silent".to_owned()
            }
        );
        let r = Reply::parse(&lines[0]);
        assert_eq!(
            r.error_code(),
            Some("BTP_ERROR_SOCKET_TIMEOUT"),
            "{:?}",
            r.0
        );
        assert_eq!(r.code(), Some(408), "{:?}", r.0);
        timed_out += 1;
    }
    (timed_out, closed)
}

/// Tokens a bucket of `per_minute` can have handed out within `elapsed` from full.
fn budget(per_minute: u32, elapsed: Duration) -> usize {
    let refill = f64::from(per_minute) * elapsed.as_secs_f64() / 60.0;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "small, positive"
    )]
    let refill = refill.ceil() as usize;
    per_minute as usize + refill + 1
}

#[test]
fn abuse_under_load_keeps_a_good_client_served_and_memory_bounded() {
    let _heavy = heavy_test();
    let started = Instant::now();
    let nofile = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        nofile >= 4_096,
        "this test opens about 1 300 connections at once (on both ends, in two processes); \
         the open-files limit is {nofile} (raise it with ulimit -n)"
    );

    let mut dir = DataDir::new();
    for name in [
        "btps1._btps.identity.finance.buyer.test",
        "btps1._btps.identity.admin.vendorcorp.test",
    ] {
        dir.publish_vector_record(name);
    }
    for sender in [BILLING, GOOD_SENDER, FLOOD_SENDER] {
        dir.admin_ok(&[
            "trust",
            "set",
            sender,
            FINANCE,
            "--status",
            "accepted",
            "--privacy",
            "mixed",
        ]);
    }
    let token = dir.admin_ok(&["agent", "token", FINANCE]);
    edit_config(&dir.path, |section, key| match (section, key) {
        ("rate_limits", "per_ip_per_minute") => Some(format!("{key} = {PER_IP_PER_MINUTE}")),
        ("rate_limits", "per_sender_per_minute") => {
            Some(format!("{key} = {PER_SENDER_PER_MINUTE}"))
        }
        ("timeouts", "handshake_ms") => Some(format!("{key} = {HANDSHAKE_MS}")),
        // All 50 stuck handshakes of an address wait for their timeout (the per-IP bound,
        // 16 by default, would close most of them at once): 250 of the 256 slots are held.
        ("limits", "max_handshakes_per_ip") => Some(format!("{key} = {STUCK_PER_IP}")),
        ("timeouts", "line_read_ms") => Some(format!("{key} = {LINE_READ_MS}")),
        ("timeouts", "idle_ms") => Some(format!("{key} = {IDLE_MS}")),
        _ => None,
    });

    let ip_flood = sign_docs("ipflood", BILLING, "billing-btps1-private.pem", IP_FLOOD);
    let sender_flood = sign_docs(
        "senderflood",
        FLOOD_SENDER,
        "admin-vendorcorp-private.pem",
        SENDER_FLOOD,
    );
    let signed = started.elapsed();

    let server = dir.start();
    let pid = server.pid();
    thread::sleep(Duration::from_millis(300));
    let (rss_before, _) = server.memory_kib();

    let stop = AtomicBool::new(false);
    let peak_sampled = AtomicU64::new(rss_before);
    let good_latencies = Mutex::new((Vec::new(), Vec::new()));
    let good_acked = Mutex::new(Vec::new());
    let server = &server;

    let (
        malformed_replies,
        (oversized_413, oversized_closed),
        slow,
        stuck,
        ip_result,
        sender_result,
        fresh_handshake,
    ) = thread::scope(|s| {
        // RSS sampler.
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                {
                    peak_sampled.fetch_max(kib, Ordering::SeqCst);
                }
                thread::sleep(Duration::from_millis(20));
            }
        });

        // The well-behaved client: pings, and a signed document every 400 ms.
        s.spawn(|| {
            let key = key_pair("finance-btps1-private.pem");
            let doc = invoice();
            let mut c = server.connect_from(ip(0, 0, 1)).unwrap();
            let mut last_doc: Option<Instant> = None;
            while !stop.load(Ordering::SeqCst) {
                let id = unique_id("good");
                // A document every 400 ms keeps within this address's budget.
                let is_doc = last_doc.is_none_or(|t| t.elapsed() >= Duration::from_millis(400));
                if is_doc {
                    last_doc = Some(Instant::now());
                }
                let line = if is_doc {
                    doc_line_from(GOOD_SENDER, &key, &id, now(), &doc)
                } else {
                    ping(&id)
                };
                let t = Instant::now();
                let r = c.request(&line);
                let took = t.elapsed();
                assert_eq!(r.req_id(), Some(id.as_str()), "{:?}", r.0);
                let mut l = good_latencies.lock().unwrap();
                if is_doc {
                    assert!(
                        r.ok() && r.message() == "success",
                        "good document: {:?}",
                        r.0
                    );
                    l.1.push(took);
                    good_acked.lock().unwrap().push(id);
                } else {
                    assert_eq!(r.message(), "pong", "{:?}", r.0);
                    l.0.push(took);
                }
                drop(l);
                thread::sleep(Duration::from_millis(10));
            }
        });

        // Malformed lines, pipelined in batches over several connections.
        let per_connection = (MALFORMED - OVERSIZED) / MALFORMED_CONNECTIONS;
        let malformed_threads: Vec<_> = (0..MALFORMED_CONNECTIONS)
            .map(|k| {
                s.spawn(move || {
                    let source = ip(0, 3, u8::try_from(k + 1).unwrap());
                    let mut c = server.connect_from(source).unwrap();
                    let mut replies = 0;
                    let lines: Vec<Vec<u8>> = (0..per_connection)
                        .map(|i| malformed(k * per_connection + i))
                        .collect();
                    for batch in lines.chunks(BATCH) {
                        let mut bytes = Vec::new();
                        for l in batch {
                            bytes.extend_from_slice(l);
                            bytes.push(b'\n');
                        }
                        c.write_raw(&bytes).unwrap();
                        for _ in batch {
                            let r = Reply::parse(&c.read_line().unwrap());
                            assert!(!r.ok(), "a malformed line was accepted: {:?}", r.0);
                            assert!(r.error_code().is_some(), "{:?}", r.0);
                            replies += 1;
                        }
                    }
                    replies
                })
            })
            .collect();

        // Oversized: a ping, then more than max_line_bytes without a line end.
        // Oversized: a ping, then more than max_line_bytes without a line end. The server
        // refuses the line (413) once it holds more than the limit, or, if the 4 MiB took the
        // client longer than the line-read timeout, for that (408); either way it closes the
        // connection. (A reply can be lost to the reset of a close with bytes in flight.)
        let oversized = s.spawn(|| {
            let (mut too_long, mut closed) = (0, 0);
            let big = vec![b'x'; 4 * 1024 * 1024 + 1];
            for k in 0..OVERSIZED {
                let mut c = server.connect_from(ip(0, 3, 100)).unwrap();
                let id = format!("before-big-{k}");
                c.write_lines(&[ping(&id)]).unwrap();
                let _ = c.write_raw(&big);
                let (lines, is_closed) = drain(&mut c);
                closed += usize::from(is_closed);
                let replies: Vec<Reply> = lines.iter().map(|l| Reply::parse(l)).collect();
                assert!(!replies.is_empty() && replies.len() <= 2, "{lines:?}");
                assert_eq!(replies[0].message(), "pong", "{lines:?}");
                if let Some(r) = replies.get(1) {
                    let code = r.error_code();
                    assert!(
                        code == Some("BTP_ERROR_LINE_TOO_LONG") && r.code() == Some(413)
                            || code == Some("BTP_ERROR_SOCKET_TIMEOUT") && r.code() == Some(408),
                        "{:?}",
                        r.0
                    );
                    too_long += usize::from(r.code() == Some(413));
                }
            }
            (too_long, closed)
        });

        // Slowloris: TLS established, then half trickle a partial line one byte at a time
        // and half stay silent.
        let slowloris = s.spawn(|| {
            let per_ip = 50;
            let started = Instant::now();
            let connectors: Vec<_> = (0..SLOWLORIS / per_ip)
                .map(|k| {
                    thread::Builder::new()
                        .spawn_scoped(s, move || {
                            slowloris(server, ip(0, 1, u8::try_from(k + 1).unwrap()), per_ip)
                        })
                        .unwrap()
                })
                .collect();
            let (timed_out, closed) = connectors
                .into_iter()
                .map(|t| t.join().unwrap())
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            (timed_out, closed, started.elapsed())
        });

        // Handshakes that never finish: nothing sent, or half a ClientHello.
        let stuck = s.spawn(|| {
            let hello = client_hello();
            let mut socks = Vec::new();
            for k in 0..STUCK_HANDSHAKES {
                let source = ip(0, 2, u8::try_from(k / STUCK_PER_IP + 1).unwrap());
                let mut tcp = tcp_from(source, server.addr).unwrap();
                if k % 2 == 1 {
                    tcp.write_all(&hello[..hello.len() / 2]).unwrap();
                }
                socks.push(tcp);
            }
            let opened = Instant::now();
            // Meanwhile a new client still completes its handshake.
            let t = Instant::now();
            let mut fresh = server.connect_from(ip(0, 0, 9)).unwrap();
            let handshake = t.elapsed();
            assert_eq!(fresh.request(&ping("fresh")).message(), "pong");
            let slack = Duration::from_millis(HANDSHAKE_MS + 3_000);
            let closed = socks
                .iter_mut()
                .map(|s| {
                    let left = slack.saturating_sub(opened.elapsed());
                    tcp_closed(s, left.max(Duration::from_millis(100)))
                })
                .filter(|&closed| closed)
                .count();
            (closed, opened.elapsed(), handshake)
        });

        // Flood from one IP; flood of one sender over several IPs.
        let ip_flood = s.spawn(|| {
            let c = vec![server.connect_from(ip(0, 0, 2)).unwrap()];
            flood("ip flood", c, &ip_flood)
        });
        let sender_flood = s.spawn(|| {
            let clients: Vec<LineClient> = (1..=SENDER_FLOOD_IPS)
                .map(|k| server.connect_from(ip(0, 4, k)).unwrap())
                .collect();
            flood("sender flood", clients, &sender_flood)
        });

        let malformed_replies: usize = malformed_threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        let results = (
            malformed_replies,
            oversized.join().unwrap(),
            slowloris.join().unwrap(),
            stuck.join().unwrap(),
            ip_flood.join().unwrap(),
            sender_flood.join().unwrap(),
        );
        stop.store(true, Ordering::SeqCst);
        let (a, b, c, (d0, d1, d2), e, f) = results;
        (a, b, c, (d0, d1), e, f, d2)
    });
    let abuse_done = started.elapsed();

    // Every abusive connection is gone: only what this test still holds may stay open.
    let deadline = Instant::now() + Duration::from_secs(15);
    let open = loop {
        let open = server.metric("btps_open_connections");
        if open <= 2.0 || Instant::now() > deadline {
            break open;
        }
        thread::sleep(Duration::from_millis(100));
    };
    thread::sleep(Duration::from_millis(500));
    let (rss_after, rss_peak) = server.memory_kib();

    // Storage: exactly the acknowledged documents, once each; nothing refused.
    let device = device_key();
    let mut lister = server.connect_from(ip(0, 5, 1)).unwrap();
    let auth = auth_request(&mut lister, token.trim_end(), &device);
    assert!(auth.ok(), "{:?}", auth.0);
    let agent_id = auth.document()["agentId"].as_str().unwrap().to_owned();
    let stored = inbox_ids(&mut lister, &agent_id, &device);
    let stored_set: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(stored_set.len(), stored.len(), "an artifact stored twice");
    let good_acked = good_acked.into_inner().unwrap();
    let (ip_acked, ip_limited, ip_elapsed) = ip_result;
    let (sender_acked, sender_limited, sender_elapsed) = sender_result;
    let acked: BTreeSet<&String> = good_acked
        .iter()
        .chain(&ip_acked)
        .chain(&sender_acked)
        .collect();
    assert_eq!(stored_set, acked, "stored ≠ acknowledged");
    for id in ip_limited.iter().chain(&sender_limited) {
        assert!(
            !stored_set.contains(id),
            "{id} was refused with 429 and stored"
        );
    }

    let (pings, docs) = good_latencies.into_inner().unwrap();
    let mut all: Vec<Duration> = pings.iter().chain(&docs).copied().collect();
    let (mut pings, mut docs) = (pings, docs);
    all.sort();
    pings.sort();
    docs.sort();
    let (slow_timed_out, slow_closed, slow_elapsed) = slow;
    let (stuck_closed, stuck_elapsed) = stuck;
    eprintln!(
        "abuse-load: good client {} round trips ({} pings, {} signed documents): \
         p50 {:?}, p99 {:?}, max {:?}; pings p50 {:?} p99 {:?}; documents p50 {:?} p99 {:?}",
        all.len(),
        pings.len(),
        docs.len(),
        percentile(&all, 50),
        percentile(&all, 99),
        all.last().copied().unwrap_or_default(),
        percentile(&pings, 50),
        percentile(&pings, 99),
        percentile(&docs, 50),
        percentile(&docs, 99),
    );
    eprintln!(
        "abuse-load: server RSS before {:.1} MiB, peak {:.1} MiB (VmHWM; sampled {:.1} MiB), \
         after {:.1} MiB; bound {PEAK_RSS_BOUND_MIB} MiB",
        mib(rss_before),
        mib(rss_peak),
        mib(peak_sampled.load(Ordering::SeqCst)),
        mib(rss_after),
    );
    eprintln!(
        "abuse-load: {malformed_replies} malformed lines answered with errors, {OVERSIZED} \
         oversized lines: {oversized_closed} closed by the server, {oversized_413} of them \
         with a 413 reply (else 408: the 4 MiB outlasted the line-read timeout); {SLOWLORIS} slowloris connections: \
         {slow_timed_out} answered 408 (line-read or idle timeout) and {slow_closed} closed by the server \
         in {slow_elapsed:?}; {stuck_closed}/{STUCK_HANDSHAKES} stuck handshakes closed in \
         {stuck_elapsed:?} (a fresh handshake meanwhile took {fresh_handshake:?}); open \
         connections afterwards {open}"
    );
    eprintln!(
        "abuse-load: ip flood {} acknowledged, {} refused 429 in {ip_elapsed:?} (budget \
         {PER_IP_PER_MINUTE}/min); sender flood {} acknowledged, {} refused 429 in \
         {sender_elapsed:?} (budget {PER_SENDER_PER_MINUTE}/min); {} stored = acknowledged; \
         signing {signed:?}, abuse {:?}, total {:?}",
        ip_acked.len(),
        ip_limited.len(),
        sender_acked.len(),
        sender_limited.len(),
        stored.len(),
        abuse_done.saturating_sub(signed),
        started.elapsed()
    );

    assert_eq!(malformed_replies, MALFORMED - OVERSIZED);
    assert_eq!(oversized_closed, OVERSIZED);
    assert_eq!(slow_timed_out, SLOWLORIS);
    assert_eq!(slow_closed, SLOWLORIS);
    assert_eq!(stuck_closed, STUCK_HANDSHAKES);
    assert!(open <= 2.0, "{open} connections still open");
    assert!(
        ip_acked.len() <= budget(PER_IP_PER_MINUTE, ip_elapsed),
        "{}",
        ip_acked.len()
    );
    assert!(
        ip_acked.len() >= PER_IP_PER_MINUTE as usize / 2,
        "{}",
        ip_acked.len()
    );
    assert!(
        sender_acked.len() <= budget(PER_SENDER_PER_MINUTE, sender_elapsed),
        "{}",
        sender_acked.len()
    );
    assert!(
        sender_acked.len() >= PER_SENDER_PER_MINUTE as usize / 2,
        "{}",
        sender_acked.len()
    );
    assert!(
        docs.len() >= 5 && pings.len() >= 50,
        "too few good round trips"
    );
    assert!(
        percentile(&all, 99) < P99_BOUND,
        "good client p99 {:?} over {P99_BOUND:?}",
        percentile(&all, 99)
    );
    assert!(
        rss_peak < PEAK_RSS_BOUND_MIB * 1024,
        "peak RSS {:.1} MiB over {PEAK_RSS_BOUND_MIB} MiB",
        mib(rss_peak)
    );
}
