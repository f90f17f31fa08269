//! btps-server integration tests: the pipeline over real stores and the vectors' DNS table.

mod abuse;
mod build;
mod client;
mod delegation;
mod delivery;
mod dns_down;
#[allow(dead_code, reason = "shared with the vectors test")]
mod harness;
mod key_types;
mod keys;
mod pipeline;
mod transport;
#[allow(dead_code, reason = "shared with the vectors test")]
mod wire;
