//! The BTPS server as a library (PROTOCOL.md §2, §2.7, §3, §7–§11).
//!
//! * [`config`]: the TOML configuration with documented defaults.
//! * [`Pipeline`]: one line in, exactly one reply out — parse, classify, schema, freshness,
//!   signatures / delegation / attestation (keys from btps-dns), trust rules, replay and the
//!   durable store, the agent actions, identity lookups, rate limits.
//! * [`reply`]: the response envelope, unsigned or signed (§2.5, §3.6).
//! * [`LineHandler`]: the seam between the transport (TLS, framing, limits) and the pipeline.
//! * [`Transport`]: TLS, NDJSON framing, pipelining, limits, timeouts and graceful shutdown
//!   around a [`LineHandler`] (§2.1–§2.4, §11).
//! * [`DeliveryWorker`]: drains the outboxes — a fresh delegation per attempt, delivery
//!   through the [`Deliver`] seam, [`classify`] and the retry schedule, `BTP_DELIVERY_FAILURE`
//!   artifacts after a final failure (§3.3, §9.4, §11.1).
//! * [`Server`]: the pipeline behind the transport, with the observability listener
//!   ([`http`]: `/healthz`, `/readyz`, `/metrics`) and the delivery worker.
//! * [`Metrics`], [`DeliveryLog`], [`RateLimiter`], [`WallClock`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
pub mod config;
mod delivery;
mod delivery_log;
mod error;
mod handler;
pub mod http;
#[doc(hidden)]
pub mod internal;
mod keys;
mod metrics;
mod pipeline;
mod ratelimit;
pub mod reply;
mod server;
mod transport;

pub use clock::{FixedClock, SystemWallClock, WallClock};
pub use config::ServerConfig;
pub use delivery::{
    AttemptVerdict, ClientDeliver, Deliver, DeliverError, DeliveryOptions, DeliveryWorker,
    PeerReply, TickReport, classify,
};
pub use delivery_log::DeliveryLog;
pub use error::{Result, ServerError};
pub use handler::{Handled, LineHandler, Peer, TransportEvent};
pub use keys::{
    KeyRotation, KeyRotationOptions, ProofSource, TRUST_LIST_MAX, WellKnownProofs,
    publish_identity_key, rotation_document, trust_list,
};
pub use metrics::{Histogram, Metrics};
pub use pipeline::{Outcome, Pipeline, PipelineOptions, Stores};
pub use ratelimit::RateLimiter;
pub use reply::{Reply, ReplySigner, SignedLayout};
pub use server::Server;
pub use transport::{
    Shutdown, TlsReloader, TlsSettings, Transport, TransportError, TransportStats,
    TransportStatsSnapshot, ensure_self_signed, serve,
};
