//! The PROTOCOL.md §13.1 server harness: a pipeline over a fresh file store with the
//! vectors' DNS table, hosted domains, identities, trust state, agent record and tokens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use btps_crypto::{KeyPair, PublicKey};
use btps_dns::{CacheConfig, DnsCache, StaticTable};
use btps_server::config::RateLimits;
use btps_server::{FixedClock, Pipeline, PipelineOptions, ReplySigner, Stores};
use btps_test_support::dns_server::TestServer as TestDnsServer;
use btps_trust::file::{FileStore, FileStoreConfig};
use btps_trust::{
    IdentityKey, IdentityRecord, IdentityStore, TokenHash, TokenKind, TokenRecord, TrustRecord,
    TrustStatus, TrustStore, trust_id,
};
use btps_types::artifact::PrivacyType;
use btps_types::json::parse_str;
use btps_types::{Identity, UnixMillis, validate};

/// The vectors directory.
pub(crate) fn vectors_dir() -> PathBuf {
    std::env::var_os("BTPS_VECTORS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
        PathBuf::from,
    )
}

pub(crate) fn read_key(name: &str) -> String {
    std::fs::read_to_string(vectors_dir().join("keys").join(name)).unwrap()
}

pub(crate) const AGENT_ID: &str = "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60";
pub(crate) const AUTH_TOKEN: &str = "YDVKSEU4CEEW";

/// The reference time T of a line: its freshness reference, or a fixed instant for lines
/// without one.
pub(crate) fn reference_time(line: &str) -> UnixMillis {
    parse_str(line)
        .ok()
        .and_then(|p| {
            validate(&p.value)
                .ok()
                .and_then(|a| a.freshness_reference())
        })
        .unwrap_or(UnixMillis::from_millis(1_751_362_200_000))
}

/// A server state for one case.
pub(crate) struct Harness {
    pub(crate) pipeline: Arc<Pipeline>,
    /// The in-process authoritative DNS server serving `vectors/dns.json`, when the harness
    /// resolves through real DNS.
    pub(crate) dns_server: Option<TestDnsServer>,
    pub(crate) store: Arc<FileStore>,
    pub(crate) clock: Arc<FixedClock>,
    pub(crate) _dir: tempfile::TempDir,
}

/// Trust state of `billing$vendorcorp.test → finance$buyer.test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrustState {
    None,
    Pending,
    Accepted,
}

impl TrustState {
    /// §13.1 step 3.
    pub(crate) fn for_case(name: &str) -> Self {
        match name {
            "transporter_trust_res_accepted" => Self::Pending,
            "transporter_trust_req_plain" => Self::None,
            _ => Self::Accepted,
        }
    }
}

/// The §13.1 options: both vector domains hosted, no rate limits.
pub(crate) fn vector_options() -> PipelineOptions {
    PipelineOptions {
        domains: vec!["buyer.test".into(), "vendorcorp.test".into()],
        rate_limits: RateLimits::unlimited(),
        ..PipelineOptions::default()
    }
}

pub(crate) async fn harness(
    now: UnixMillis,
    state: TrustState,
    refresh_token: Option<&str>,
) -> Harness {
    harness_with(now, state, refresh_token, vector_options()).await
}

pub(crate) async fn harness_with(
    now: UnixMillis,
    state: TrustState,
    refresh_token: Option<&str>,
    opts: PipelineOptions,
) -> Harness {
    harness_dns(now, state, refresh_token, opts, false).await
}

/// The harness resolving keys through a real DNS server (hickory) when `real_dns`, else the
/// static table.
pub(crate) async fn harness_dns(
    now: UnixMillis,
    state: TrustState,
    refresh_token: Option<&str>,
    opts: PipelineOptions,
    real_dns: bool,
) -> Harness {
    harness_configured(now, state, refresh_token, opts, real_dns, |p| p).await
}

/// [`harness_dns`] with `configure` applied to the pipeline before it is shared.
pub(crate) async fn harness_configured(
    now: UnixMillis,
    state: TrustState,
    refresh_token: Option<&str>,
    opts: PipelineOptions,
    real_dns: bool,
    configure: impl FnOnce(Pipeline) -> Pipeline,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(&FileStoreConfig::new(dir.path()), now).unwrap());
    let table = StaticTable::load(&vectors_dir().join("dns.json")).unwrap();
    let (dns, dns_server) = if real_dns {
        // Real DNS: an authoritative hickory server on 127.0.0.1 serving the table, asked by
        // the production resolver.
        let server = TestDnsServer::start().await;
        for (name, records) in table.iter() {
            for record in records {
                server.add_txt(name, 300, record).await;
            }
        }
        let dns = DnsCache::with_config(server.resolver(), CacheConfig::default());
        (dns, Some(server))
    } else {
        (DnsCache::with_config(table, CacheConfig::default()), None)
    };

    let finance: Identity = "finance$buyer.test".parse().unwrap();
    let finance_pem = read_key("finance-btps1-public.pem");
    store
        .put_identity(&IdentityRecord::new(
            finance.clone(),
            IdentityKey::rsa("btps1", &finance_pem, now),
        ))
        .await
        .unwrap();

    let sender_key = PublicKey::from_pem(&read_key("billing-btps1-public.pem")).unwrap();
    let status = match state {
        TrustState::None => None,
        TrustState::Pending => Some(TrustStatus::Pending),
        TrustState::Accepted => Some(TrustStatus::Accepted),
    };
    if let Some(status) = status {
        let r = TrustRecord::new("billing$vendorcorp.test", "finance$buyer.test", status, now)
            .with_key(&sender_key.to_base64_spki(), sender_key.fingerprint())
            .with_privacy(PrivacyType::Mixed);
        store.put_trust(&r).await.unwrap();
    }

    // The agent record, owned by both identities (§13.1 step 3).
    let device = PublicKey::from_pem(&read_key("agent-device-public.pem")).unwrap();
    for owner in ["finance$buyer.test", "billing$vendorcorp.test"] {
        let r = TrustRecord::new_agent(
            AGENT_ID,
            owner,
            &device.to_base64_spki(),
            device.fingerprint(),
            "harness",
            None,
            now,
            7 * 24 * 3600 * 1000,
        );
        assert_eq!(r.id, trust_id(AGENT_ID, owner));
        store.put_trust(&r).await.unwrap();
    }
    let token = |kind, token: &str, subject: &str| TokenRecord {
        kind,
        hash: TokenHash::of(token),
        subject: subject.to_owned(),
        user_identity: "finance$buyer.test".to_owned(),
        decrypt_by: "finance$buyer.test".to_owned(),
        metadata: None,
        created_at: now,
        expires_at: now.saturating_add_millis(900_000),
    };
    store
        .create_token(&token(TokenKind::Auth, AUTH_TOKEN, "finance$buyer.test"))
        .await
        .unwrap();
    if let Some(refresh) = refresh_token {
        store
            .create_token(&token(TokenKind::Refresh, refresh, AGENT_ID))
            .await
            .unwrap();
    }

    let clock = Arc::new(FixedClock::new(now));
    let signer = ReplySigner {
        identity: "server$buyer.test".into(),
        selector: "btps1".into(),
        key: KeyPair::from_pem(&read_key("server-buyer-private.pem")).unwrap(),
    };
    let pipeline = configure(
        Pipeline::new(Stores::from_backend(store.clone()), dns, opts)
            .with_clock(clock.clone())
            .with_signer(signer),
    );
    Harness {
        pipeline: Arc::new(pipeline),
        dns_server,
        store,
        clock,
        _dir: dir,
    }
}
