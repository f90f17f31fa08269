//! Signals: SIGHUP reloads the TLS certificate for new connections while established ones
//! carry on; SIGTERM and SIGINT stop the server gracefully.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::support::{DataDir, LineClient, ServerProcess, now, unique_id};

fn ping(client: &mut LineClient) {
    let id = unique_id("ping");
    let line = format!(
        r#"{{"version":"1.0.0","id":"{id}","issuedAt":"{}","action":"PING"}}"#,
        now().to_datetime_string()
    );
    let reply = client.request(&line);
    assert!(reply.ok(), "{:?}", reply.0);
    assert_eq!(reply.message(), "pong");
    assert_eq!(reply.req_id(), Some(id.as_str()));
}

fn der(pem_file: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem_file).unwrap().to_vec()
}

/// Polls the server's stderr for `text`; fails at once when the server exits.
fn wait_for_log(server: &mut ServerProcess, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains(text) {
        if let Some(status) = server.exited() {
            panic!("btps-server exited ({status}):\n{}", server.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} in\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections() {
    let mut dir = DataDir::new();
    let mut server = dir.start();
    let tmp = tempfile::tempdir().unwrap();
    let old_pem = tmp.path().join("old.pem");
    fs::copy(dir.tls_cert_path(), &old_pem).unwrap();
    let old = der(&old_pem);

    // A replacement pair, written over the files the server reads.
    let new = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let new_pem = tmp.path().join("new.pem");
    fs::write(&new_pem, new.cert.pem()).unwrap();
    let roots = [old_pem.as_path(), new_pem.as_path()];

    let mut established = LineClient::connect(server.addr, &roots).unwrap();
    assert_eq!(established.peer_certificate(), old);
    ping(&mut established);

    fs::write(dir.tls_key_path(), new.signing_key.serialize_pem()).unwrap();
    fs::write(dir.tls_cert_path(), new.cert.pem()).unwrap();
    // Nothing changes before the signal.
    assert_eq!(
        LineClient::connect(server.addr, &roots)
            .unwrap()
            .peer_certificate(),
        old
    );
    server.signal("HUP");
    wait_for_log(&mut server, "TLS certificate reloaded");
    let mut fresh = LineClient::connect(server.addr, &roots).unwrap();
    assert_eq!(fresh.peer_certificate(), new.cert.der().to_vec());
    ping(&mut fresh);
    // A client that trusts only the old certificate cannot connect any more.
    assert!(LineClient::connect(server.addr, &[old_pem.as_path()]).is_err());
    // The connection made before the reload keeps working, on its certificate.
    ping(&mut established);
    assert_eq!(established.peer_certificate(), old);

    // A reload that fails (a broken certificate) keeps the current one.
    fs::write(dir.tls_cert_path(), "not a certificate\n").unwrap();
    server.signal("HUP");
    wait_for_log(&mut server, "TLS reload failed");
    let mut after = LineClient::connect(server.addr, &roots).unwrap();
    assert_eq!(after.peer_certificate(), new.cert.der().to_vec());
    ping(&mut after);
    ping(&mut established);
    ping(&mut fresh);
    drop((established, fresh, after));
    server.stop();
}

#[test]
fn sighup_at_once_after_start_is_a_reload() {
    // The handlers are installed before "serving" is printed; SIGHUP's default action would
    // end the process.
    let mut dir = DataDir::new();
    for _ in 0..5 {
        let mut server = dir.start();
        server.signal("HUP");
        wait_for_log(&mut server, "TLS certificate reloaded");
        ping(&mut server.connect());
        server.stop();
    }
}

#[test]
fn sigterm_and_sigint_stop_gracefully() {
    let mut dir = DataDir::new();
    for signal in ["TERM", "INT"] {
        let mut server = dir.start();
        // An idle connection does not hold the shutdown up: the server closes it (the
        // client sees the end of the stream and closes too).
        let mut idle = server.connect();
        ping(&mut idle);
        let closed = std::thread::spawn(move || idle.read_line().is_err());
        let t = Instant::now();
        server.signal(signal);
        let status = server.wait_exit();
        let took = t.elapsed();
        assert!(
            status.success(),
            "SIG{signal}: {status}\n{}",
            server.stderr()
        );
        assert!(
            took < Duration::from_secs(5),
            "SIG{signal}: shutdown took {took:?}"
        );
        assert!(
            server.stdout().ends_with("btps-server: stopped\n"),
            "SIG{signal}: {}",
            server.stdout()
        );
        assert!(closed.join().unwrap(), "the connection was closed");
        let log = server.stderr();
        assert!(log.contains("shutting down"), "{log}");
        assert!(!log.contains('\x1b'), "colours in a log file: {log:?}");
        // The store is released: admin subcommands work again.
        dir.admin_ok(&["identity", "list"]);
    }
}
