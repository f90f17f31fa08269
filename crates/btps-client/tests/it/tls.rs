//! Server authentication (PROTOCOL.md §2.1): CA trust, pinning, host names, and the
//! test-only mode.

use btps_client::{ClientError, RequestOptions, TlsTrust, certificate_fingerprint};

use crate::support::{Act, Pki, ScriptServer, client, config, echo, ping};

async fn echo_server(pki: &Pki) -> ScriptServer {
    ScriptServer::start(pki, |_| Box::new(|req| vec![Act::Reply(echo(req))])).await
}

async fn try_request(
    trust: TlsTrust,
    pki: &Pki,
    addr: &btps_client::ServerAddr,
) -> Result<(), ClientError> {
    let mut cfg = config(pki);
    cfg.tls = trust;
    let client = client(cfg);
    let r = client
        .request(addr, &ping("tls"), RequestOptions::idempotent())
        .await
        .map(|_| ());
    if r.is_err() {
        // Certificate refusals are final: one attempt only.
        if matches!(r, Err(ClientError::Certificate { .. })) {
            assert_eq!(client.stats().attempts, 1);
        }
    }
    r
}

#[tokio::test]
async fn a_certificate_from_the_configured_ca_is_accepted() {
    let pki = Pki::new(&["localhost"]);
    let server = echo_server(&pki).await;
    try_request(
        TlsTrust::CaPem(pki.ca_pem.clone().into_bytes()),
        &pki,
        &server.addr(),
    )
    .await
    .unwrap();
    // From a file too.
    let path = std::env::temp_dir().join(format!("btps-client-ca-{}.pem", server.port()));
    std::fs::write(&path, &pki.ca_pem).unwrap();
    try_request(TlsTrust::CaFile(path.clone()), &pki, &server.addr())
        .await
        .unwrap();
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let pki = Pki::new(&["localhost"]);
    let other = Pki::new(&["localhost"]);
    let server = echo_server(&pki).await;
    let r = try_request(
        TlsTrust::CaPem(other.ca_pem.clone().into_bytes()),
        &pki,
        &server.addr(),
    )
    .await;
    match r {
        Err(e @ ClientError::Certificate { .. }) => assert!(!e.is_retryable(), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.lines().len(), 0);
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused() {
    let pki = Pki::new(&["btps.other.test"]);
    let server = echo_server(&pki).await;
    let r = try_request(
        TlsTrust::CaPem(pki.ca_pem.clone().into_bytes()),
        &pki,
        &server.addr(),
    )
    .await;
    assert!(matches!(r, Err(ClientError::Certificate { .. })), "{r:?}");
    // The name checked is the address's host: an IP address needs an IP certificate.
    let r = try_request(
        TlsTrust::CaPem(pki.ca_pem.clone().into_bytes()),
        &pki,
        &server.ip_addr(),
    )
    .await;
    assert!(matches!(r, Err(ClientError::Certificate { .. })), "{r:?}");
    let ip = Pki::new(&["127.0.0.1"]);
    let server = echo_server(&ip).await;
    try_request(
        TlsTrust::CaPem(ip.ca_pem.clone().into_bytes()),
        &ip,
        &server.ip_addr(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn pinned_certificates() {
    let pki = Pki::new(&["localhost"]);
    let server = echo_server(&pki).await;
    let pin = certificate_fingerprint(pki.leaf.as_ref());
    try_request(TlsTrust::Pinned(vec![[7; 32], pin]), &pki, &server.addr())
        .await
        .unwrap();
    // The pin replaces the chain and name checks.
    try_request(TlsTrust::Pinned(vec![pin]), &pki, &server.ip_addr())
        .await
        .unwrap();
    let r = try_request(TlsTrust::Pinned(vec![[7; 32]]), &pki, &server.addr()).await;
    assert!(matches!(r, Err(ClientError::Certificate { .. })), "{r:?}");
}

#[tokio::test]
async fn the_test_only_mode_accepts_anything() {
    let pki = Pki::new(&["btps.other.test"]);
    let server = echo_server(&pki).await;
    try_request(
        TlsTrust::DangerousAcceptAnyCertificate,
        &pki,
        &server.ip_addr(),
    )
    .await
    .unwrap();
}
