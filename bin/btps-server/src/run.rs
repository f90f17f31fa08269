//! Loading the configuration, opening stores and DNS, and serving.

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use btps_client::{Client, ClientConfig, KeyRing, TlsTrust, WellKnownClient, WellKnownConfig};
use btps_crypto::KeyPair;
use btps_dns::{CacheConfig, DnsCache, HickoryConfig, HickoryResolver, StaticTable};
use btps_server::{
    ClientDeliver, Deliver, DeliveryLog, Pipeline, PipelineOptions, ReplySigner, Server,
    ServerConfig, Shutdown, Stores, TlsReloader, TlsSettings, ensure_self_signed,
};
use btps_store_postgres::{PgStore, PgStoreConfig};
use btps_trust::file::{FileStore, FileStoreConfig};
use btps_types::UnixMillis;

use crate::Cli;
use crate::init;

pub(crate) fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now()).unwrap_or(UnixMillis::EPOCH)
}

/// The configuration: the file (created by the embedded default when missing for `serve`),
/// environment overrides, then command-line options.
pub(crate) fn load_config(cli: &Cli) -> Result<ServerConfig> {
    let path = init::config_path(cli);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read {} (run `btps-server init`)", path.display()))?;
    let mut config = ServerConfig::from_toml_with_env(&text, std::env::vars())
        .with_context(|| format!("{}", path.display()))?;
    config.data_dir.clone_from(&cli.data_dir);
    if let Some(store) = &cli.store {
        config.store.url.clone_from(store);
    }
    if let Some(file) = &cli.dns_file {
        config.dns.file = Some(std::path::absolute(file)?);
    }
    if !cli.nameserver.is_empty() {
        config.dns.file = None;
        config.dns.nameservers.clone_from(&cli.nameserver);
    }
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    Ok(config)
}

/// Opens the configured store backend.
pub(crate) async fn open_stores(config: &ServerConfig) -> Result<Stores> {
    let url = config.store.url.as_str();
    if url == "file" {
        let mut fc = FileStoreConfig::new(config.data_dir.join("store"));
        fc.trust_file = Some(config.resolve(&config.store.trust_file));
        fc.identity_file = Some(config.resolve(&config.store.identity_file));
        fc.sync_interval = std::time::Duration::from_micros(config.store.sync_interval_us);
        for file in [&fc.trust_file, &fc.identity_file].into_iter().flatten() {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("create {}", parent.display()))?;
            }
        }
        let store = match FileStore::open(&fc, now()) {
            Ok(store) => store,
            Err(e @ btps_trust::TrustError::InUse { .. }) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "the file store in {} is in use (a running btps-server holds it: stop it \
                     first, or use Postgres)",
                    fc.dir.display()
                )));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("open the file store in {}", fc.dir.display())));
            }
        };
        let report = store.open_report();
        if report.truncated_bytes > 0 {
            tracing::warn!(
                truncated_bytes = report.truncated_bytes,
                records = report.records,
                "file store: cut a torn log tail (unacknowledged writes of a crashed process)"
            );
        }
        let store = Arc::new(store);
        spawn_compaction(&store);
        Ok(Stores::from_backend(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = PgStore::connect(&PgStoreConfig::new(url).with_pool_size(config.store.pool_size))
            .await
            .context("connect to PostgreSQL")?;
        Ok(Stores::from_backend(Arc::new(pg)))
    } else {
        bail!("store.url must be `file` or a postgres:// URL, not {url:?}")
    }
}

/// DNS: a static table or hickory; keys are parsed under the `[keys]` policy.
pub(crate) fn open_dns(config: &ServerConfig) -> Result<DnsCache> {
    let mut cache = CacheConfig::default();
    cache.key_policy = config.keys.key_policy();
    if let Some(file) = &config.dns.file {
        let path = config.resolve(file);
        let table = StaticTable::load(&path).with_context(|| format!("{}", path.display()))?;
        return Ok(DnsCache::with_config(table, cache));
    }
    let hc = if config.dns.nameservers.is_empty() {
        HickoryConfig::system()
    } else {
        HickoryConfig::with_nameservers(config.dns.nameservers.iter().copied())
    };
    Ok(DnsCache::with_config(HickoryResolver::new(&hc)?, cache))
}

fn init_logging(config: &ServerConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BTPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The CA certificates of a `ca_files` option as one trust anchor set, or `None` when the
/// list is empty (the system trust store).
fn ca_trust(
    config: &ServerConfig,
    files: &[std::path::PathBuf],
    section: &str,
) -> Result<Option<TlsTrust>> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut pem = Vec::new();
    for file in files {
        let path = config.resolve(file);
        pem.extend(
            std::fs::read(&path)
                .with_context(|| format!("read {section} ca_files {}", path.display()))?,
        );
        pem.push(b'\n');
    }
    Ok(Some(TlsTrust::CaPem(pem)))
}

/// The outbound delivery transport: a btps-client over the server's DNS cache, trusting
/// `[delivery] ca_files` (else the system trust store), with the configured request
/// timeout. `None` when delivery is disabled.
fn delivery_transport(config: &ServerConfig, dns: &DnsCache) -> Result<Option<Arc<dyn Deliver>>> {
    if !config.delivery.enabled {
        return Ok(None);
    }
    let mut client = ClientConfig {
        request_timeout: std::time::Duration::from_millis(config.delivery.request_timeout_ms),
        ..ClientConfig::default()
    };
    if let Some(trust) = ca_trust(config, &config.delivery.ca_files, "[delivery]")? {
        client.tls = trust;
    }
    let client = Client::new(client, dns.clone()).context("the delivery client")?;
    Ok(Some(Arc::new(ClientDeliver::new(client))))
}

pub(crate) async fn serve(cli: &Cli) -> Result<()> {
    if cli.config.is_none() {
        init::ensure(cli, &init::InitArgs::default())?.print();
    }
    let config = load_config(cli)?;
    init_logging(&config);

    let stores = open_stores(&config).await?;
    let dns = open_dns(&config)?;
    let keyring = KeyRing::new(config.resolve(&config.key_rotation.keyring));
    let signer = signing_key(
        &keyring,
        &config.server_identity,
        &config.server_selector,
        &config.resolve(&config.server_key),
    )?;
    ensure_server_identity(&stores, &signer).await?;
    let deliver = delivery_transport(&config, &dns)?;
    let mut pipeline =
        Pipeline::new(stores, dns, PipelineOptions::from_config(&config)).with_signer(signer);
    pipeline = add_tenants(pipeline, &config, &keyring).await?;
    if let Some(source) = proof_source(&config)? {
        pipeline = pipeline.with_proof_source(source);
    }
    if let Some(log) = &config.delivery_log {
        pipeline = pipeline.with_delivery_log(DeliveryLog::open(&config.resolve(log))?);
    }

    let cert = config.resolve(&config.tls.cert);
    let tls_key = config.resolve(&config.tls.key);
    if config.tls.self_signed && ensure_self_signed(&cert, &tls_key, &config.tls.self_signed_names)?
    {
        println!(
            "btps-server: generated a self-signed certificate for {:?} in {}",
            config.tls.self_signed_names,
            cert.display()
        );
    }
    let tls = TlsReloader::load(TlsSettings::from_files(cert, tls_key))?;
    // Signal handlers first: until they are installed SIGHUP (a reload) and SIGTERM would
    // kill the process, so "serving" must not be printed before.
    let shutdown = Shutdown::new();
    spawn_signals(tls.clone(), shutdown.clone())?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen on {}", config.listen))?;
    let http = match config.http.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {addr} (http)"))?,
        ),
        None => None,
    };
    println!(
        "btps-server: serving BTPS on {} ({} store){}",
        listener.local_addr()?,
        if config.store.url == "file" {
            "file"
        } else {
            "postgres"
        },
        http.as_ref()
            .and_then(|h| h.local_addr().ok())
            .map(|a| format!(", metrics on http://{a}/metrics"))
            .unwrap_or_default()
    );
    config.key_grace().map_err(anyhow::Error::msg)?;
    let well_known = match config.http.well_known_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {addr} (well-known)"))?,
        ),
        None => None,
    };
    if let Some(w) = &well_known {
        println!(
            "btps-server: serving /.well-known documents on https://{}",
            w.local_addr()?
        );
    }
    let mut server = Server::new(config, Arc::new(pipeline), tls).with_keyring(keyring);
    if let Some(w) = well_known {
        server = server.with_well_known_listener(w);
    }
    server.run(listener, http, shutdown, deliver).await?;
    println!("btps-server: stopped");
    Ok(())
}

/// The signer's server identity is hosted (identity lookups answer for it) with its current
/// key.
async fn ensure_server_identity(stores: &Stores, signer: &ReplySigner) -> Result<()> {
    let identity: btps_types::Identity = signer
        .identity
        .parse()
        .map_err(|e| anyhow::anyhow!("server identity {:?}: {e}", signer.identity))?;
    btps_server::publish_identity_key(
        stores,
        &identity,
        &signer.selector,
        signer.key.public_key(),
        now(),
    )
    .await?;
    Ok(())
}

fn spawn_signals(tls: TlsReloader, shutdown: Shutdown) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    // Reading the files blocks: off the runtime's worker threads.
                    let tls = tls.clone();
                    let reloaded =
                        tokio::task::spawn_blocking(move || tls.reload().map_err(|e| e.to_string()))
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                    match reloaded {
                        Ok(()) => tracing::info!("TLS certificate reloaded"),
                        Err(e) => tracing::error!(
                            error = %e,
                            "TLS reload failed; keeping the old certificate"
                        ),
                    }
                }
            }
        }
        tracing::info!("shutting down");
        shutdown.trigger();
    });
    Ok(())
}

/// The signing key of `identity`: the key ring's active key; on first use, the configured
/// key file is imported into the key ring as active at `selector` (the entry points at the
/// file, which stays where it is).
fn signing_key(
    keyring: &KeyRing,
    identity: &str,
    selector: &str,
    key_file: &std::path::Path,
) -> Result<ReplySigner> {
    let id: btps_types::Identity = identity
        .parse()
        .map_err(|e| anyhow::anyhow!("server identity {identity:?}: {e}"))?;
    let has_keys = keyring
        .load()?
        .iter()
        .any(|k| k.identity.eq_ignore_case(&id) && k.active().is_some());
    if !has_keys {
        let key = KeyPair::from_pem(
            &std::fs::read_to_string(key_file)
                .with_context(|| format!("read the key of {identity} ({})", key_file.display()))?,
        )
        .with_context(|| format!("{}", key_file.display()))?;
        let sel = btps_types::Selector::parse(selector)
            .map_err(|e| anyhow::anyhow!("selector {selector:?}: {e}"))?;
        let file = std::path::absolute(key_file).unwrap_or_else(|_| key_file.to_path_buf());
        keyring.import(&id, &sel, &key, Some(&file), now())?;
    }
    let (selector, key) = keyring.active_key(&id)?;
    Ok(ReplySigner {
        identity: identity.to_owned(),
        selector: selector.to_string(),
        key,
    })
}

/// The rotation-proof fetcher of `[key_rotation]`, or `None` when disabled (or when no
/// trust anchors can be loaded: pinned keys then rotate only with in-band proofs).
fn proof_source(config: &ServerConfig) -> Result<Option<Arc<dyn btps_server::ProofSource>>> {
    let rotation = &config.key_rotation;
    if !rotation.fetch_proofs {
        return Ok(None);
    }
    let mut wk = WellKnownConfig {
        timeout: std::time::Duration::from_millis(rotation.fetch_timeout_ms),
        overrides: rotation
            .proof_urls
            .iter()
            .map(|(d, u)| (d.to_ascii_lowercase(), u.clone()))
            .collect(),
        ..WellKnownConfig::default()
    };
    if let Some(trust) = ca_trust(config, &rotation.ca_files, "[key_rotation]")? {
        wk.trust = trust;
    }
    match WellKnownClient::new(wk) {
        Ok(client) => Ok(Some(Arc::new(btps_server::WellKnownProofs::new(client)))),
        Err(e) => {
            tracing::warn!(error = %e, "rotation proofs will not be fetched");
            Ok(None)
        }
    }
}

/// `[[tenants]]`: each domain's server identity signs the replies about its identities.
async fn add_tenants(
    mut pipeline: Pipeline,
    config: &ServerConfig,
    keyring: &KeyRing,
) -> Result<Pipeline> {
    for tenant in &config.tenants {
        let signer = signing_key(
            keyring,
            &tenant.server_identity,
            &tenant.server_selector,
            &config.resolve(&tenant.server_key),
        )?;
        ensure_server_identity(pipeline.stores(), &signer).await?;
        pipeline = pipeline.with_tenant_signer(&tenant.domain, signer);
    }
    Ok(pipeline)
}

/// The file store's log is compacted on open and hourly (§10.2): expired replay entries and
/// tokens and replaced records are dropped. (Outside a runtime, as in admin commands that
/// exit at once, nothing is scheduled.)
fn spawn_compaction(store: &Arc<FileStore>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(store);
    handle.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(store) = weak.upgrade() else { return };
            match store.compact(now()).await {
                Ok(bytes) => tracing::info!(log_bytes = bytes, "file store compacted"),
                Err(e) => tracing::warn!(error = %e, "file store compaction failed"),
            }
        }
    });
}
