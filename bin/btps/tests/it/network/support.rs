//! A live setting for the network commands: an in-process btps-server (the pipeline over a
//! file store in a temporary directory, behind the TLS transport with a self-signed
//! certificate) hosting `buyer.test` and `vendorcorp.test`, and an in-process DNS server
//! publishing their host records (pointing at the server) and the vectors' key records.
//! The CLI runs as a separate process with its own configuration directory.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::SystemTime;

use btps_crypto::{KeyPair, PublicKey, SystemRandom};
use btps_dns::{CacheConfig, DnsCache, StaticTable};
use btps_server::config::{Limits, RateLimits, Timeouts};
use btps_server::{
    LineHandler, Pipeline, PipelineOptions, ReplySigner, Shutdown, Stores, TlsReloader,
    TlsSettings, Transport,
};
use btps_test_support::dns_server::TestServer;
use btps_trust::file::{FileStore, FileStoreConfig};
use btps_trust::{
    IdentityStore, Mailbox, MessageQuery, MessageStore, StoredMessage, TokenHash, TokenKind,
    TokenRecord, TrustRecord, TrustStatus, TrustStore, generate_auth_token,
};
use btps_types::UnixMillis;
use btps_types::artifact::PrivacyType;
use tokio::net::TcpListener;

use crate::{Env, vectors};

pub(crate) const FINANCE: &str = "finance$buyer.test";
pub(crate) const BILLING: &str = "billing$vendorcorp.test";

/// A vectors key file's path.
pub(crate) fn key(name: &str) -> String {
    vectors()
        .join("keys")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now()).unwrap()
}

/// The server, the DNS server, and a CLI environment.
pub(crate) struct Live {
    /// The CLI's working and configuration directory.
    pub(crate) env: Env,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) store: Arc<FileStore>,
    pub(crate) dns: TestServer,
    /// The server's certificate (its own CA).
    pub(crate) ca: PathBuf,
    shutdown: Shutdown,
    _data: tempfile::TempDir,
}

impl Live {
    pub(crate) fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let (store, dns, shutdown) = runtime.block_on(serve(data.path()));
        Self {
            env: Env::new(),
            runtime,
            store,
            dns,
            ca: data.path().join("tls/cert.pem"),
            shutdown,
            _data: data,
        }
    }

    /// `--nameserver` value of the DNS server.
    pub(crate) fn nameserver(&self) -> String {
        self.dns.addr.to_string()
    }

    /// The CA and nameserver options.
    pub(crate) fn net(&self) -> Vec<String> {
        vec![
            "--ca".into(),
            self.ca.to_string_lossy().into_owned(),
            "--nameserver".into(),
            self.nameserver(),
        ]
    }

    /// Runs the CLI with `args`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.env.run(args)
    }

    /// Runs the CLI with `args` plus the CA and nameserver options.
    pub(crate) fn run_net(&self, args: &[&str]) -> Output {
        let net = self.net();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(net.iter().map(String::as_str));
        self.env.run(&all)
    }

    /// A one-time auth token for `identity`, created in the store.
    pub(crate) fn auth_token(&self, identity: &str) -> String {
        let token = generate_auth_token(&SystemRandom, 12).unwrap();
        let now = now();
        self.runtime
            .block_on(self.store.create_token(&TokenRecord {
                kind: TokenKind::Auth,
                hash: TokenHash::of(&token),
                subject: identity.to_owned(),
                user_identity: identity.to_owned(),
                decrypt_by: identity.to_owned(),
                metadata: None,
                created_at: now,
                expires_at: now.saturating_add_millis(900_000),
            }))
            .unwrap();
        token
    }

    /// Logs `identity` in as profile `profile` (CA and nameserver saved in the profile).
    pub(crate) fn login(&self, profile: &str, identity: &str) -> Output {
        let token = self.auth_token(identity);
        self.run_net(&[
            "--profile",
            profile,
            "agent",
            "login",
            "--identity",
            identity,
            "--token",
            &token,
        ])
    }

    /// An accepted trust record `sender → receiver` with the sender's vectors key.
    pub(crate) fn trust(&self, sender: &str, receiver: &str, sender_key: &str) {
        let key = PublicKey::from_pem(&std::fs::read_to_string(key(sender_key)).unwrap()).unwrap();
        let record = TrustRecord::new(sender, receiver, TrustStatus::Accepted, now())
            .with_key(&key.to_base64_spki(), key.fingerprint())
            .with_privacy(PrivacyType::Mixed);
        self.runtime
            .block_on(self.store.put_trust(&record))
            .unwrap();
    }

    /// Revokes agent `agent_id` of `owner` (PROTOCOL.md §8.5).
    pub(crate) fn revoke_agent(&self, agent_id: &str, owner: &str) {
        self.runtime.block_on(async {
            let id = btps_trust::trust_id(agent_id, owner);
            let mut record = self.store.get_trust(&id).await.unwrap().unwrap();
            record.status = TrustStatus::Revoked;
            self.store.put_trust(&record).await.unwrap();
        });
    }

    /// The messages of `owner` in `mailbox`, straight from the store.
    pub(crate) fn messages(&self, owner: &str, mailbox: Mailbox) -> Vec<StoredMessage> {
        self.runtime
            .block_on(self.store.fetch(owner, mailbox, &MessageQuery::default()))
            .unwrap()
            .results
    }

    /// A file in the working directory.
    pub(crate) fn file(&self, name: &str, contents: &str) -> String {
        self.env.file(name, contents.as_bytes())
    }

    /// The configuration directory.
    pub(crate) fn config_dir(&self) -> PathBuf {
        self.env.config_dir()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts the DNS server and the BTPS server; returns the store, the DNS server and the
/// shutdown handle.
async fn serve(dir: &Path) -> (Arc<FileStore>, TestServer, Shutdown) {
    let now = now();
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    let store = Arc::new(FileStore::open(&FileStoreConfig::new(dir.join("store")), now).unwrap());
    let finance_pem = std::fs::read_to_string(key("finance-btps1-public.pem")).unwrap();
    store
        .put_identity(&btps_trust::IdentityRecord::new(
            FINANCE.parse().unwrap(),
            btps_trust::IdentityKey::rsa("btps1", &finance_pem, now),
        ))
        .await
        .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    // DNS: the vectors' key records; host records pointing at this server.
    let dns = TestServer::start().await;
    let table = StaticTable::load(&vectors().join("dns.json")).unwrap();
    for (name, records) in table.iter() {
        if name.starts_with("_btps.host.") {
            continue;
        }
        for record in records {
            dns.add_txt(name, 300, record).await;
        }
    }
    for domain in ["buyer.test", "vendorcorp.test", "trustauthority.test"] {
        dns.add_txt(
            &format!("_btps.host.{domain}"),
            300,
            &format!("v=1.0.0;u=127.0.0.1:{port};s=btps1"),
        )
        .await;
    }

    let options = PipelineOptions {
        domains: vec!["buyer.test".into(), "vendorcorp.test".into()],
        rate_limits: RateLimits::unlimited(),
        ..PipelineOptions::default()
    };
    let signer = ReplySigner {
        identity: "server$buyer.test".into(),
        selector: "btps1".into(),
        key: KeyPair::from_pem(&std::fs::read_to_string(key("server-buyer-private.pem")).unwrap())
            .unwrap(),
    };
    let cache = DnsCache::with_config(dns.resolver(), CacheConfig::default());
    let pipeline =
        Pipeline::new(Stores::from_backend(store.clone()), cache, options).with_signer(signer);
    let tls = TlsReloader::load(TlsSettings {
        cert: dir.join("tls/cert.pem"),
        key: dir.join("tls/key.pem"),
        self_signed: true,
        self_signed_names: vec!["127.0.0.1".into(), "localhost".into()],
    })
    .unwrap();
    let handler: Arc<dyn LineHandler> = Arc::new(pipeline);
    let transport = Transport::new(tls, handler, Limits::default(), Timeouts::default());
    let shutdown = Shutdown::new();
    tokio::spawn(transport.serve(listener, shutdown.clone()));
    (store, dns, shutdown)
}

/// A valid `BTPS_DOC` invoice (PROTOCOL.md §3.7).
pub(crate) fn invoice(id: &str) -> String {
    serde_json::json!({
        "title": format!("Invoice {id}"),
        "id": id,
        "issuedAt": "2026-11-01T09:00:00.000Z",
        "status": "unpaid",
        "totalAmount": {"value": 1250.5, "currency": "EUR"},
        "lineItems": {
            "columns": ["Description", "Amount"],
            "rows": [{"Description": "Consulting", "Amount": 1250.5}]
        }
    })
    .to_string()
}
