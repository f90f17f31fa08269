//! [`Server`]: the pipeline behind the TLS transport, plus the observability listener and
//! the outbound delivery worker.

use std::sync::Arc;

use btps_types::Identity;
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::delivery::{Deliver, DeliveryOptions, DeliveryWorker};
use crate::error::{Result, ServerError};
use crate::http::{Probe, Routes, serve_http};
use crate::keys::{KeyRotation, KeyRotationOptions, rotation_document, trust_list};
use crate::pipeline::Pipeline;
use crate::transport::{Shutdown, TlsReloader, Transport, TransportStats};

/// A configured server: the pipeline, the TLS configuration (reloadable) and the limits.
pub struct Server {
    config: ServerConfig,
    pipeline: Arc<Pipeline>,
    tls: TlsReloader,
    transport: Transport,
    stats: Arc<TransportStats>,
    keyring: Option<btps_client::KeyRing>,
    well_known: Option<TcpListener>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `config` around `pipeline`, serving TLS with `tls`.
    pub fn new(config: ServerConfig, pipeline: Arc<Pipeline>, tls: TlsReloader) -> Self {
        let transport = Transport::new(
            tls.clone(),
            pipeline.clone(),
            config.limits.clone(),
            config.timeouts.clone(),
        );
        let stats = transport.stats();
        Self {
            config,
            pipeline,
            tls,
            transport,
            stats,
            keyring: None,
            well_known: None,
        }
    }

    /// Rotates the signing identities' keys from `keyring` ([`KeyRotation`]) and publishes
    /// its rotation proofs at `/.well-known/btp-key-rotation.json`.
    #[must_use]
    pub fn with_keyring(mut self, keyring: btps_client::KeyRing) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Serves the `.well-known` documents over HTTPS (the BTPS certificate) on `listener`.
    #[must_use]
    pub fn with_well_known_listener(mut self, listener: TcpListener) -> Self {
        self.well_known = Some(listener);
        self
    }

    /// The TLS configuration: [`TlsReloader::reload`] swaps the certificate for new
    /// connections (SIGHUP in the binary).
    pub fn tls(&self) -> &TlsReloader {
        &self.tls
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The transport counters.
    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.stats
    }

    /// Serves BTPS on `listener` (and the observability endpoints on `http`) until
    /// `shutdown` is triggered; returns when in-flight requests are drained.
    ///
    /// With `deliver` (and `[delivery] enabled`), a [`DeliveryWorker`] sends the artifacts
    /// agents queue in their outboxes through it; on shutdown it stops claiming entries and
    /// lets the attempts in flight finish within the shutdown grace. Without, queued
    /// artifacts stay in the outboxes.
    ///
    /// # Errors
    ///
    /// Invalid limits, timeouts or delivery options.
    pub async fn run(
        mut self,
        listener: TcpListener,
        http: Option<TcpListener>,
        shutdown: Shutdown,
        deliver: Option<Arc<dyn Deliver>>,
    ) -> Result<()> {
        let delivery = match deliver {
            Some(deliver) if self.config.delivery.enabled => {
                let worker = DeliveryWorker::new(
                    self.pipeline.clone(),
                    deliver,
                    DeliveryOptions::from_config(&self.config),
                )?;
                let stop = shutdown.clone();
                Some(tokio::spawn(async move { worker.run(stop).await }))
            }
            Some(_) => {
                tracing::info!("outbound delivery is disabled ([delivery] enabled = false)");
                None
            }
            None => {
                tracing::info!(
                    "no outbound transport: queued artifacts stay in the outboxes until a server with one runs"
                );
                None
            }
        };
        let probe = Arc::new(ServerProbe {
            pipeline: self.pipeline.clone(),
            stats: self.stats.clone(),
            identity: self.config.server_identity.parse().ok(),
            keyring: self.keyring.clone(),
            publish_trust: self.config.http.publish_trust,
        });
        if let Some(http) = http {
            let (probe, stop) = (probe.clone(), shutdown.clone());
            tokio::spawn(async move {
                serve_http(http, probe, None, Routes::All, async move {
                    stop.triggered().await;
                })
                .await;
            });
        }
        if let Some(listener) = self.well_known.take() {
            let (probe, stop, tls) = (probe.clone(), shutdown.clone(), self.tls.clone());
            tokio::spawn(async move {
                serve_http(listener, probe, Some(tls), Routes::WellKnown, async move {
                    stop.triggered().await;
                })
                .await;
            });
        }
        let rotation = match &self.keyring {
            Some(keyring) => {
                let options = KeyRotationOptions {
                    grace: self.config.key_grace().map_err(ServerError::Config)?,
                    interval: std::time::Duration::from_secs(
                        self.config.key_rotation.check_interval_secs.max(1),
                    ),
                };
                let task = KeyRotation::new(self.pipeline.clone(), keyring.clone(), options);
                Some(tokio::spawn(task.run()))
            }
            None => None,
        };
        let maintenance = {
            let pipeline = self.pipeline.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = maintain(pipeline) => {}
                    () = stop.triggered() => {}
                }
            })
        };
        let result = self
            .transport
            .serve(listener, shutdown.clone())
            .await
            .map_err(|e| ServerError::Config(e.to_string()));
        maintenance.abort();
        if let Some(rotation) = rotation {
            rotation.abort();
        }
        if let Some(worker) = delivery {
            if shutdown.is_triggered() {
                // The worker stops on the same signal, bounded by the grace.
                let _ = worker.await;
            } else {
                worker.abort();
            }
        }
        result
    }
}

/// How often expired replay entries and tokens are purged.
const MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Purges expired replay entries (§10.2) and tokens (§8.1) periodically.
async fn maintain(pipeline: Arc<Pipeline>) {
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = pipeline.now();
        let stores = pipeline.stores();
        match stores.replay.purge_replay(now).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired replay entries"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging replay entries failed"),
        }
        match stores.identities.purge_expired_tokens(now).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired tokens"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging tokens failed"),
        }
    }
}

struct ServerProbe {
    pipeline: Arc<Pipeline>,
    stats: Arc<TransportStats>,
    identity: Option<Identity>,
    keyring: Option<btps_client::KeyRing>,
    publish_trust: bool,
}

impl Probe for ServerProbe {
    async fn well_known(&self, path: &str) -> Option<std::result::Result<String, String>> {
        let now = self.pipeline.now();
        match path {
            btps_client::KEY_ROTATION_PATH => {
                let Some(ring) = self.keyring.clone() else {
                    return Some(Ok(btps_crypto::RotationDocument::default().to_json()));
                };
                Some(
                    tokio::task::spawn_blocking(move || rotation_document(&ring, now))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string())),
                )
            }
            btps_client::TRUST_LIST_PATH if self.publish_trust => {
                Some(trust_list(&self.pipeline, now).await)
            }
            _ => None,
        }
    }

    async fn ready(&self) -> std::result::Result<(), String> {
        let stores = self.pipeline.stores();
        // A store that refuses writes (the file store after a failed write) is not ready,
        // although its reads still answer.
        stores
            .messages
            .health()
            .await
            .map_err(|e| format!("message store: {e}"))?;
        stores
            .replay
            .health()
            .await
            .map_err(|e| format!("replay store: {e}"))?;
        stores
            .identities
            .health()
            .await
            .map_err(|e| format!("identity store: {e}"))?;
        stores
            .trust
            .health()
            .await
            .map_err(|e| format!("trust store: {e}"))?;
        stores
            .trust
            .get_trust(&"0".repeat(64))
            .await
            .map_err(|e| format!("trust store: {e}"))?;
        stores
            .identities
            .get_identity("readyz$probe.invalid")
            .await
            .map_err(|e| format!("identity store: {e}"))?;
        if let Some(identity) = &self.identity {
            match self.pipeline.dns().host(identity.domain()).await {
                Err(e) if e.is_temporary() => return Err(format!("dns: {e}")),
                _ => {}
            }
        }
        Ok(())
    }

    fn metrics(&self) -> String {
        let t = self.stats.snapshot();
        let dns = self.pipeline.dns().stats();
        #[allow(clippy::cast_precision_loss, reason = "metrics")]
        let gauges = [
            (
                "btps_open_connections",
                "Open BTPS connections.",
                t.open_connections as f64,
            ),
            (
                "btps_dns_cache_entries",
                "DNS cache entries.",
                dns.entries as f64,
            ),
        ];
        #[allow(clippy::cast_precision_loss, reason = "metrics")]
        let counters = [
            (
                "btps_connections_accepted_total",
                "Connections accepted since start.",
                t.accepted as f64,
            ),
            (
                "btps_connections_rejected_total",
                "Connections refused by limits.",
                t.rejected as f64,
            ),
            (
                "btps_dns_cache_hits_total",
                "DNS cache hits.",
                dns.hits as f64,
            ),
            (
                "btps_dns_cache_misses_total",
                "DNS cache misses.",
                dns.misses as f64,
            ),
        ];
        self.pipeline.metrics().render(&gauges, &counters)
    }
}
