//! The transport (PROTOCOL.md §2.1–§2.4, §11): TLS, NDJSON framing, pipelining with replies
//! in request order, connection limits, timeouts and graceful shutdown.
//!
//! The transport knows nothing about artifacts: it frames lines and hands each non-blank
//! line to a [`LineHandler`](crate::LineHandler), then writes the handler's replies in
//! request order. The only replies it writes itself are the ones of [`TransportEvent`]
//! (line too long, timeouts), built by the handler's
//! [`transport_reply`](crate::LineHandler::transport_reply).
//!
//! [`TransportEvent`]: crate::TransportEvent

mod connection;
mod error;
pub(crate) mod framing;
mod limits;
mod server;
mod shutdown;
mod stats;
mod tls;

pub use error::TransportError;
pub use server::{Transport, serve};
pub use shutdown::Shutdown;
pub use stats::{TransportStats, TransportStatsSnapshot};
pub use tls::{TlsReloader, TlsSettings, ensure_self_signed};
