//! `btps-server init` and the embedded default configuration.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_btps-server"))
}

#[test]
fn init_creates_a_working_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = bin()
        .arg("--data-dir")
        .arg(&data)
        .arg("init")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("config.toml"), "{stdout}");
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    let parsed = btps_server::ServerConfig::from_toml(&config).unwrap();
    // The file documents the defaults: apart from the embedded identity, domains and DNS
    // table it equals the built-in defaults.
    let defaults = btps_server::ServerConfig::default();
    assert_eq!(parsed.limits, defaults.limits);
    assert_eq!(parsed.timeouts, defaults.timeouts);
    assert_eq!(parsed.rate_limits, defaults.rate_limits);
    assert_eq!(parsed.tokens, defaults.tokens);
    assert_eq!(parsed.listen, defaults.listen);
    assert_eq!(parsed.domains, ["local.test"]);
    // The static DNS table publishes the server key that was written.
    let table = std::fs::read_to_string(data.join("dns.json")).unwrap();
    assert!(
        table.contains("btps1._btps.identity.server.local.test"),
        "{table}"
    );
    assert!(table.contains("_btps.host.local.test"));
    let key = std::fs::metadata(data.join("keys/server-private.pem")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    // A second init changes nothing.
    let again = bin()
        .arg("--data-dir")
        .arg(&data)
        .arg("init")
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(data.join("config.toml")).unwrap(),
        config
    );
}

#[test]
fn init_for_a_domain_writes_its_identity_addresses_records_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = bin()
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--listen",
            "127.0.0.1:4443",
            "init",
            "--domain",
            "Example.TEST",
            "--http-listen",
            "127.0.0.1:4080",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    let parsed = btps_server::ServerConfig::from_toml(&config).unwrap();
    assert_eq!(parsed.domains, ["example.test"]);
    assert_eq!(parsed.server_identity, "server$example.test");
    assert_eq!(parsed.listen.to_string(), "127.0.0.1:4443");
    assert_eq!(parsed.http.listen.unwrap().to_string(), "127.0.0.1:4080");

    // The static table publishes the host record with the listen address and the server key.
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("dns.json")).unwrap()).unwrap();
    assert_eq!(
        table["_btps.host.example.test"][0],
        "v=1.0.0;u=127.0.0.1:4443;s=btps1"
    );
    let key_record = table["btps1._btps.identity.server.example.test"][0]
        .as_str()
        .unwrap();
    let key = btps_crypto::KeyPair::from_pem(
        &std::fs::read_to_string(data.join("keys/server-private.pem")).unwrap(),
    )
    .unwrap();
    assert!(
        key_record.contains(&key.public_key().to_base64_spki()),
        "{key_record}"
    );

    // The certificate exists before the first start, so peers can be given it.
    let cert = std::fs::read_to_string(data.join("tls/cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");

    // A second init changes nothing.
    let again = bin()
        .arg("--data-dir")
        .arg(&data)
        .args(["init", "--domain", "other.test"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(data.join("config.toml")).unwrap(),
        config
    );
}
