//! Test helpers for the BTPS workspace (not published).
//!
//! - [`dns::StaticDns`]: the DNS table of `vectors/dns.json` as a key source;
//! - [`vectors`]: the interoperability-vector runner behind `cargo xtask vectors` and the
//!   one-test-per-case conformance test;
//! - `dns_server` (feature `dns-server`): a real authoritative DNS server in process.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dns;
#[cfg(feature = "dns-server")]
pub mod dns_server;
pub mod vectors;
