//! The BTPS server as a library (PROTOCOL.md §2, §2.7, §3, §7–§11).
//!
//! * [`config`]: the TOML configuration with documented defaults.
//! * [`reply`]: the response envelope, unsigned or signed (§2.5, §3.6).
//! * [`LineHandler`]: the seam between the transport (TLS, framing, limits) and the pipeline.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
mod handler;
pub mod reply;

pub use config::ServerConfig;
pub use handler::{Handled, LineHandler, Peer, TransportEvent};
pub use reply::{Reply, ReplySigner, SignedLayout};
